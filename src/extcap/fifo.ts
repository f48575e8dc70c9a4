import { open } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import { openOutput } from '../output.ts';

// Wireshark's dumpcap waits on the fifo, with no timeout, for a pcap header.
// A capture that fails must therefore still open and close the fifo, after
// writing its reason to stderr, or tshark hangs forever.

/** Opens the fifo for writing; the open completes once dumpcap reads. */
export function openFifo(path: string): Writable {
  return openOutput(path);
}

/**
 * Opens and closes the fifo so that dumpcap sees the end of the capture. The
 * open blocks until dumpcap reads; if dumpcap is gone it never returns, so
 * give up after `waitMs` (the process is about to exit anyway).
 */
export async function closeFifo(path: string, waitMs = 5000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const opened = open(path, 'w').then(
    (handle) => handle.close(),
    () => {}, // nothing is waiting on it any more
  );
  await Promise.race([opened, new Promise((resolve) => (timer = setTimeout(resolve, waitMs)))]);
  clearTimeout(timer);
}
