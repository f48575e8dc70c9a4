import { createWriteStream, type WriteStream } from 'node:fs';
import { open } from 'node:fs/promises';

// Wireshark's dumpcap waits on the fifo, with no timeout, for a pcap header.
// A capture that fails must therefore still open and close the fifo, after
// writing its reason to stderr, or tshark hangs forever.

/** Opens the fifo for writing. Each chunk becomes one write(2): no buffering. */
export function openFifo(path: string): WriteStream {
  // 'w' does not truncate a fifo; the open completes once dumpcap reads.
  return createWriteStream(path, { flags: 'w', highWaterMark: 256 * 1024 });
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
