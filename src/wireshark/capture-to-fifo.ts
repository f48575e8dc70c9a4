import { captureTarget } from '../capture/many-pods.ts';
import type { CaptureRequest } from '../capture/request.ts';
import type { CaptureCall } from '../extcap/dispatcher.ts';
import type { Logger } from '../log.ts';

/** Runs a capture into Wireshark's fifo. */
export async function captureToFifo(
  request: CaptureRequest,
  call: CaptureCall,
  log: Logger,
): Promise<void> {
  const summary = await captureTarget(request, call.output, call.signal, { log });
  log.info('capture ended', { ...summary });
}
