import { join } from 'node:path';
import { removeWhatKilledCapturesLeft } from '../capture/after-kill.ts';
import { CreatedRecordFile } from '../capture/created-record.ts';
import { captureTarget } from '../capture/many-pods.ts';
import type { CaptureRequest } from '../capture/request.ts';
import type { CaptureCall } from '../extcap/dispatcher.ts';
import type { Logger } from '../log.ts';
import { cacheDir } from './discovery.ts';

/** Where running captures note what they created, one file per capture process. */
function recordsDir(): string {
  return join(cacheDir(), 'running');
}

/** Runs a capture into Wireshark's fifo. */
export async function captureToFifo(
  request: CaptureRequest,
  call: CaptureCall,
  log: Logger,
): Promise<void> {
  const record = new CreatedRecordFile(recordsDir(), call.iface, {
    kubeconfig: request.kubeconfig,
    context: request.context,
  });
  try {
    const summary = await captureTarget(request, call.output, call.signal, { log, record });
    log.info('capture ended', { ...summary });
  } finally {
    // This process ran its own cleanup: nothing is left for a later one.
    record.discard();
  }
}

/**
 * `--extcap-cleanup-postkill`: Wireshark killed a capture of `iface` without
 * a signal (Windows). Removes the helper pods such captures had created.
 */
export async function cleanupAfterKill(iface: string, log: Logger): Promise<void> {
  const { deleted } = await removeWhatKilledCapturesLeft(recordsDir(), iface || undefined, log);
  log.info('cleanup after a kill', { iface, deleted });
}
