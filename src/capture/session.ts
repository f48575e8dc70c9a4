import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { contextNamespace, loadKubeConfig } from '../kube/config.ts';
import type { Logger } from '../log.ts';
import { buildGlobalHeader, LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL } from '../pcap/format.ts';
import { PcapFramer } from '../pcap/framer.ts';
import { isViewSink } from '../view-sink.ts';
import { endedBadly, endingError } from './capture-ending.ts';
import type { ModeContext } from './capture-mode.ts';
import type { CreatedRecord } from './created-record.ts';
import { beginEarly, dropEarly, type EarlyStart, startTcpdump } from './mode-start.ts';
import { validateRequest } from './options.ts';
import type { RemoteTcpdump } from './remote-tcpdump.ts';
import type { CaptureRequest } from './request.ts';
import { disposeWithin, StopClock } from './stop-clock.ts';
import { podDeleted, resolveTarget } from './target.ts';

// One capture: resolve the target, let the mode place tcpdump, stream its
// pcap output as whole records into the sink, and on any stop undo exactly
// what was created. Every resource is pushed onto one AsyncDisposableStack
// right after it exists; disposal runs once, past failures, on one deadline.

export interface CaptureSummary {
  packets: number;
  bytes: number;
  /** Why the capture ended. */
  ended: 'stopped' | 'limit' | 'remote-ended' | 'output-closed';
}

export interface CaptureHooks {
  log: Logger;
  /** Called as records pass, for live counters. */
  onProgress?: (packets: number, bytes: number) => void;
  /** Called with lines the user should read before the capture starts (the CLI prints them). */
  onNotice?: (line: string) => void;
  /** Notes what the capture creates in the cluster, for removal after a kill. */
  record?: CreatedRecord;
}

/** A capture of one pod: `pod` is one pod's name. */
export type PodCaptureRequest = CaptureRequest & { pod: string };

export async function runCapture(
  request: PodCaptureRequest,
  sink: Writable,
  signal: AbortSignal,
  hooks: CaptureHooks,
): Promise<CaptureSummary> {
  try {
    return await capture(request, sink, signal, hooks);
  } catch (error) {
    if (!signal.aborted) throw error;
    // Stopped by the user before tcpdump ran (connecting, uploading, waiting
    // for the helper pod): a stop, not a failure. Leave a valid, empty capture.
    hooks.log.info('stopped before the capture started', { error });
    await finishOutput(sink, { header: undefined }, request).catch(() => {});
    return { packets: 0, bytes: 0, ended: 'stopped' };
  }
}

/**
 * A capture's one stop: the first reason wins (the caller's signal, a limit,
 * the output or tcpdump ending) and starts the stop budget's clock.
 */
function captureStop(signal: AbortSignal) {
  const clock = new StopClock();
  const stopping = new AbortController();
  const stop = (why: CaptureSummary['ended']) => {
    if (stopping.signal.aborted) return;
    clock.start();
    stopping.abort(why);
  };
  const onSignal = () => stop('stopped');
  signal.addEventListener('abort', onSignal, { once: true });
  if (signal.aborted) stop('stopped');
  const forget = () => signal.removeEventListener('abort', onSignal);
  return { clock, stopping, stop, forget };
}

/** What only the pod's read tells of its container. */
const UNREAD = {
  containerId: undefined,
  nodeName: undefined,
  hostNetwork: false,
  nonRootPod: false,
} as const;

async function capture(
  request: PodCaptureRequest,
  sink: Writable,
  signal: AbortSignal,
  hooks: CaptureHooks,
): Promise<CaptureSummary> {
  validateRequest(request);
  const { log } = hooks;
  const kc = loadKubeConfig({ kubeconfig: request.kubeconfig, context: request.context });
  const namespace = request.namespace || contextNamespace(kc);
  const ref = { namespace, pod: request.pod, container: request.container };
  const { clock, stopping, stop, forget } = captureStop(signal);
  const cleanup = new AsyncDisposableStack();
  let succeeded = false;
  const framer = new PcapFramer({ maxPackets: request.maxPackets, onLimit: () => stop('limit') });
  try {
    const base = {
      kc,
      request,
      log,
      signal: stopping.signal,
      cleanup,
      clock,
      record: hooks.record,
    };
    const { resolved, early } = await readBesideEarlyStart(base, ref, signal);
    const { target, notices, node } = resolved;
    const notice = (line: string) => {
      log.warn(line);
      hooks.onNotice?.(line);
    };
    for (const line of notices) notice(line);
    const ctx: ModeContext = { ...base, target, ...node };
    const { mode, placement, remote } = await startTcpdump(ctx, notice, early);

    if (request.maxSeconds > 0) {
      const timer = setTimeout(() => stop('limit'), request.maxSeconds * 1000);
      cleanup.defer(() => clearTimeout(timer));
    }
    // The mode's first step (privileged: delete the helper, which ends
    // tcpdump with it) goes out at once, beside the stop line.
    const onStop = () => {
      placement.onStop?.().catch((error) => log.warn('stop failed', { error }));
      void remote.stop();
    };
    stopping.signal.addEventListener('abort', onStop, { once: true });
    const progress = hooks.onProgress;
    const outputError = await streamRecords(remote, framer, sink, progress);
    if (outputError && !isClosedOutput(outputError)) {
      remote.close();
      throw outputError;
    }
    if (outputError) stop('output-closed');
    const result = await remote.result;
    log.info('remote tcpdump ended', { exitCode: result.exitCode, message: result.message });
    if (!stopping.signal.aborted) {
      const gotHeader = framer.header !== undefined;
      if (endedBadly({ result, gotHeader })) {
        const podGone = await podDeleted(kc, placement.exec);
        throw endingError({ result, gotHeader, where: placement.where, mode, podGone });
      }
      stop('remote-ended');
    }
    succeeded = true;
    const ended = stopping.signal.reason as CaptureSummary['ended'];
    return { packets: framer.packets, bytes: framer.bytes, ended };
  } finally {
    forget();
    // A failure before any byte leaves the output to the caller, which
    // reports the error its own way (extcap: stderr, then close the fifo).
    if (succeeded || framer.header) await finishOutput(sink, framer, request).catch(() => {});
    await disposeWithin(cleanup, clock.remainingMs(), log);
  }
}

type Progress = ((packets: number, bytes: number) => void) | undefined;

/**
 * The remote pcap stream into the output as whole records; resolves, once
 * the stream ended, with the error that stopped it (a format error, the
 * output's), if any. An output that takes views (src/output.ts) gets the
 * exec socket's bytes straight through the framer, copied once into its own
 * blocks; any other output, through streams.
 */
function streamRecords(
  remote: RemoteTcpdump,
  framer: PcapFramer,
  sink: Writable,
  progress: Progress,
): Promise<unknown> {
  if (!isViewSink(sink)) {
    if (progress) framer.on('data', () => progress(framer.packets, framer.bytes));
    return pipeline(remote.stdout, framer, sink, { end: false }).then(
      () => undefined,
      (error: unknown) => error,
    );
  }
  if (sink.destroyed) return Promise.resolve(sink.errored ?? closedOutput());
  return new Promise((resolve) => {
    let failed: unknown;
    const fail = (error: unknown) => {
      failed ??= error;
      resolve(failed);
    };
    // Kept after the end: an error of the last flush is the caller's to see, not a crash.
    sink.on('error', fail);
    remote.pipeTo({
      take: (bytes) => {
        if (failed !== undefined) return true;
        if (sink.destroyed) {
          fail(sink.errored ?? closedOutput());
          return true;
        }
        const open = framer.takeView(bytes, (records) => sink.take(records));
        if (open instanceof Error) {
          fail(open);
          return true;
        }
        progress?.(framer.packets, framer.bytes);
        return open;
      },
      onDrain: (listener) => sink.onDrain(listener),
    });
    remote.result.then(() => resolve(failed));
  });
}

/** What a stream says when written after it was destroyed without an error. */
function closedOutput(): Error {
  return Object.assign(new Error('the output was closed'), { code: 'ERR_STREAM_DESTROYED' });
}

/**
 * Reads the pod while the cheapest mode's exec already goes out: until the
 * read is in, that exec knows only the names; what the node says comes
 * after. An early start the read shows to be of no use (several containers,
 * none named) is dropped; one whose read failed is undone with the capture.
 */
async function readBesideEarlyStart(
  base: Omit<ModeContext, 'target' | 'linux' | 'nodeArchitecture'>,
  ref: { namespace: string; pod: string; container: string | undefined },
  signal: AbortSignal,
): Promise<{ resolved: Awaited<ReturnType<typeof resolveTarget>>; early?: EarlyStart }> {
  const read = Promise.withResolvers<Awaited<ReturnType<typeof resolveTarget>>>();
  read.promise.catch(() => {}); // only an early start that is used asks
  const linux = read.promise.then((r) => r.node.linux);
  linux.catch(() => {}); // a mode asks before it changes anything
  const early = beginEarly({
    ...base,
    target: { ...ref, container: ref.container ?? '', ...UNREAD },
    linux,
    nodeArchitecture: () => read.promise.then((r) => r.node.nodeArchitecture()),
  });
  const resolved = await resolveTarget(base.kc, ref, signal).catch((error) => {
    early?.held.release();
    if (early) base.cleanup.use(early.attempt.stack);
    throw error;
  });
  read.resolve(resolved);
  if (early && !ref.container && !resolved.soleContainer) {
    await dropEarly(early, base.log);
    return { resolved };
  }
  return { resolved, early };
}

/** Leaves a valid capture: a header even when no packet ever arrived. */
export async function finishOutput(
  sink: Writable,
  framer: { header: unknown },
  request: Pick<CaptureRequest, 'iface' | 'snaplen'>,
) {
  if (sink.destroyed || sink.writableEnded) return;
  if (!framer.header) {
    const linktype = request.iface === 'any' ? LINKTYPE_LINUX_SLL : LINKTYPE_ETHERNET;
    sink.write(buildGlobalHeader(linktype, request.snaplen || 262144));
  }
  await new Promise<void>((resolve) => sink.end(resolve));
}

function isClosedOutput(error: unknown): boolean {
  const code = (error as { code?: string })?.code;
  return (
    code === 'EPIPE' || code === 'ERR_STREAM_DESTROYED' || code === 'ERR_STREAM_PREMATURE_CLOSE'
  );
}
