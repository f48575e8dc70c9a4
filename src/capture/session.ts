import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { KubedumpError } from '../errors.ts';
import { contextNamespace, loadKubeConfig } from '../kube/config.ts';
import { execCollect, lineSplitter, openExec } from '../kube/exec.ts';
import {
  getPod,
  hostNetworkNotice,
  nodeArchitecture,
  pickContainer,
  requireLinux,
  requireRunning,
} from '../kube/pods.ts';
import type { Logger } from '../log.ts';
import { buildGlobalHeader, LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL } from '../pcap/format.ts';
import { PcapFramer } from '../pcap/framer.ts';
import type { ModeContext, Placement, TargetContainer } from './capture-mode.ts';
import { MODES } from './mode-registry.ts';
import { validateRequest } from './options.ts';
import {
  hostNetnsRefusal,
  KEEPALIVE_MS,
  killArgv,
  parsePidLine,
  STOP_LINE,
  withWatchdog,
} from './remote-scripts.ts';
import type { CaptureRequest } from './request.ts';
import { isTcpdumpChatter, tcpdumpArgv, tcpdumpFailure } from './tcpdump-command.ts';

// One capture: resolve the target, let the mode place tcpdump, stream its
// pcap output as whole records into the sink, and on any stop undo exactly
// what was created. Every resource is pushed onto one AsyncDisposableStack
// right after it exists; disposal runs once, past failures, within a budget.

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
}

/** How long cleanup may take after a stop before the process gives up waiting. */
export const STOP_BUDGET_MS = 1500;
/** How long the stop line has to end tcpdump before it is killed by PID. */
const KILL_AFTER_MS = 500;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());

export async function runCapture(
  request: CaptureRequest,
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

/** Settles with `promise`, or rejects as soon as `signal` aborts. */
function orStop<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new KubedumpError('ABORTED', 'stopped'));
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

async function capture(
  request: CaptureRequest,
  sink: Writable,
  signal: AbortSignal,
  hooks: CaptureHooks,
): Promise<CaptureSummary> {
  validateRequest(request);
  const { log } = hooks;
  const kc = loadKubeConfig({ kubeconfig: request.kubeconfig, context: request.context });
  const namespace = request.namespace || contextNamespace(kc);
  // The API server may be slow or black-holed: a stop must not wait for it.
  const pod = await orStop(getPod(kc, { namespace, name: request.pod }), signal);
  const picked = pickContainer(pod, request.container);
  requireRunning(picked);
  await orStop(requireLinux(kc, picked), signal);
  const hostNetwork = hostNetworkNotice(picked);
  for (const line of [...picked.warnings, ...(hostNetwork ? [hostNetwork] : [])]) {
    log.warn(line);
    hooks.onNotice?.(line);
  }
  const target: TargetContainer = {
    namespace,
    pod: request.pod,
    container: picked.container,
    containerId: picked.containerId,
    nodeName: picked.nodeName,
    hostNetwork: picked.hostNetwork,
  };
  const mode = MODES[request.privileged ? 'privileged' : 'unprivileged'];

  const stopping = new AbortController();
  // One deadline for every cleanup step, fixed when the stop comes.
  let stopDeadline: number | undefined;
  const deadline = () => (stopDeadline ??= Date.now() + STOP_BUDGET_MS);
  const stop = (why: CaptureSummary['ended']) => {
    if (stopping.signal.aborted) return;
    deadline();
    stopping.abort(why);
  };
  const onSignal = () => stop('stopped');
  signal.addEventListener('abort', onSignal, { once: true });
  if (signal.aborted) stop('stopped');

  const cleanup = new AsyncDisposableStack();
  let succeeded = false;
  const framer = new PcapFramer({
    maxPackets: request.maxPackets,
    onLimit: () => stop('limit'),
  });
  try {
    const ctx: ModeContext = {
      kc,
      request,
      target,
      log,
      signal: stopping.signal,
      cleanup,
      nodeArchitecture: () =>
        target.nodeName ? nodeArchitecture(kc, target.nodeName) : Promise.resolve(undefined),
    };
    const placement = await mode.prepare(ctx);
    stopping.signal.throwIfAborted();

    let pid: number | undefined;
    const argv = tcpdumpArgv({
      binary: placement.binary,
      iface: request.iface,
      filter: request.filter,
      snaplen: request.snaplen,
    });
    const session = await openExec(kc, {
      ...placement.exec,
      command: withWatchdog([...placement.prefix, ...argv], placement.heartbeat),
      // stdin carries the keepalive lines the remote watchdog waits for.
      stdin: true,
      signal: stopping.signal,
      onStderr: lineSplitter((line) => {
        pid ??= parsePidLine(line);
        if (!isTcpdumpChatter(line)) log.warn('remote stderr', { line });
        else log.debug('remote stderr', { line });
      }),
    });
    cleanup.defer(() => session.close());
    const send = (line: string) => session.write(Buffer.from(line)).catch(() => {});
    const keepalive = setInterval(() => send('\n'), KEEPALIVE_MS);
    keepalive.unref();
    cleanup.defer(() => clearInterval(keepalive));
    // Closing the exec stream does not stop tcpdump. The stop line asks the
    // remote watchdog to stop it (tcpdump flushes and exits, which ends the
    // stream); if the stream has not ended soon after, kill it by PID.
    let stoppingRemote: Promise<void> | undefined;
    const stopRemote = () => {
      stoppingRemote ??= (async () => {
        void send(STOP_LINE);
        // Ended means the remote process said so (a status); a stream that
        // was cut says nothing of the process, which may still run.
        const ended = await Promise.race([
          session.result.then((r) => r.exitCode !== null || r.message !== undefined),
          sleep(KILL_AFTER_MS).then(() => false),
        ]);
        if (!ended && pid !== undefined) await killProcess(kc, placement, pid, log, deadline());
      })().catch((error) => log.warn('remote stop failed', { error }));
      return stoppingRemote;
    };
    cleanup.defer(stopRemote);
    log.info('capture started', { where: placement.where, protocol: session.protocol, argv });

    let timer: NodeJS.Timeout | undefined;
    if (request.maxSeconds > 0) timer = setTimeout(() => stop('limit'), request.maxSeconds * 1000);
    cleanup.defer(() => clearTimeout(timer));
    stopping.signal.addEventListener(
      'abort',
      () => {
        // The mode's first step (privileged: delete the helper, which ends
        // tcpdump with it) goes out at once, beside the stop line.
        placement.onStop?.().catch((error) => log.warn('stop failed', { error }));
        void stopRemote();
        // If tcpdump's end takes too long, the socket is closed under it.
        setTimeout(() => session.close(), 1000).unref();
      },
      { once: true },
    );
    if (hooks.onProgress) {
      const progress = hooks.onProgress;
      framer.on('data', () => progress(framer.packets, framer.bytes));
    }
    let outputError: unknown;
    await pipeline(session.stdout, framer, sink, { end: false }).catch((error) => {
      outputError = error;
    });
    if (outputError && isClosedOutput(outputError)) {
      stop('output-closed');
    } else if (outputError) {
      session.close();
      throw outputError;
    }
    const result = await session.result;
    log.info('remote tcpdump ended', { exitCode: result.exitCode, message: result.message });
    if (!stopping.signal.aborted) {
      // The remote side ended by itself: that is an error unless it said nothing.
      if (result.exitCode !== 0 || framer.header === undefined) {
        // A capture labelled as the pod never holds the node's traffic.
        const refused = hostNetnsRefusal(result.stderr, placement.where);
        if (refused) throw refused;
        // Say what really happened: the pod went away, or the connection did.
        const gone = await podDeleted(kc, placement.exec);
        if (gone) {
          throw new KubedumpError('POD_DELETED', `${gone} was deleted during the capture`, {
            hint: 'the output holds what arrived before; capture again once the pod runs',
          });
        }
        if (result.exitCode === null && !result.message) {
          throw new KubedumpError(
            'CONNECTION_LOST',
            `the connection to the API server was lost while capturing in ${placement.where}`,
            {
              hint: 'the output holds what arrived before; check the network and the API server, then capture again',
            },
          );
        }
        // The status message repeats the whole command line: only use it
        // when there is no exit code to go by.
        throw tcpdumpFailure(
          result.exitCode === null ? `${result.stderr}\n${result.message ?? ''}` : result.stderr,
          result.exitCode,
          placement.where,
          mode.name,
        );
      }
      stop('remote-ended');
    }
    succeeded = true;
    return {
      packets: framer.packets,
      bytes: framer.bytes,
      ended: stopping.signal.reason as CaptureSummary['ended'],
    };
  } finally {
    signal.removeEventListener('abort', onSignal);
    // A failure before any byte leaves the output to the caller, which
    // reports the error its own way (extcap: stderr, then close the fifo).
    if (succeeded || framer.header) await finishOutput(sink, framer, request).catch(() => {});
    await disposeWithin(cleanup, Math.max(0, deadline() - Date.now()), log);
  }
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

async function disposeWithin(stack: AsyncDisposableStack, ms: number, log: Logger) {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      log.warn('cleanup exceeded its budget', { ms });
      resolve();
    }, ms);
  });
  await Promise.race([
    stack.disposeAsync().catch((error) => log.warn('cleanup failed', { error })),
    deadline,
  ]);
  clearTimeout(timer);
}

function isClosedOutput(error: unknown): boolean {
  const code = (error as { code?: string })?.code;
  return (
    code === 'EPIPE' || code === 'ERR_STREAM_DESTROYED' || code === 'ERR_STREAM_PREMATURE_CLOSE'
  );
}

async function killProcess(
  kc: Parameters<typeof execCollect>[0],
  placement: Placement,
  pid: number,
  log: Logger,
  deadline: number,
) {
  const result = await execCollect(kc, {
    ...placement.exec,
    command: killArgv(pid),
    signal: AbortSignal.timeout(Math.max(1, deadline - Date.now())),
  });
  log.info('remote tcpdump killed by PID', { pid, exitCode: result.exitCode });
}

/** "pod NS/NAME" when that pod is gone or being deleted; undefined when it is there or unknown. */
async function podDeleted(
  kc: Parameters<typeof getPod>[0],
  ref: { namespace: string; pod: string },
): Promise<string | undefined> {
  const what = `pod ${ref.namespace}/${ref.pod}`;
  try {
    const pod = await orStop(
      getPod(kc, { namespace: ref.namespace, name: ref.pod }),
      AbortSignal.timeout(STOP_BUDGET_MS),
    );
    return pod.metadata?.deletionTimestamp ? what : undefined;
  } catch (error) {
    return (error as { code?: string }).code === 'POD_NOT_FOUND' ? what : undefined;
  }
}
