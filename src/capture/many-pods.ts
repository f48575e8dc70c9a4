import type { Writable } from 'node:stream';
import type { KubeConfig, V1Pod } from '@kubernetes/client-node';
import { errorLine, KubedumpError } from '../errors.ts';
import { contextNamespace, loadKubeConfig } from '../kube/config.ts';
import { selectableContainers } from '../kube/pods.ts';
import { describeTarget, isSinglePod, parseTarget, type TargetSpec } from '../kube/target-spec.ts';
import { isRunning, namespaceNames, podQuery, runningPods, watchPods } from '../kube/targets.ts';
import { memoryFields } from '../log.ts';
import { LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL } from '../pcap/format.ts';
import { interfaceFromPcap } from '../pcap/pcapng.ts';
import { PcapngOutput } from '../pcap/pcapng-output.ts';
import { VERSION } from '../version.ts';
import { validateRequest } from './options.ts';
import type { CaptureRequest } from './request.ts';
import { type CaptureHooks, type CaptureSummary, runCapture } from './session.ts';
import { orStop } from './stop-clock.ts';

// A capture of what a request names: one pod as pcap (the session alone), or
// several pods (names, a selector, a workload, all) live into one pcapng
// section, one interface per pod. Each pod is its own session on one shared
// stop; one pod's failure is a line and a comment, and the others go on.

export async function captureTarget(
  request: CaptureRequest,
  sink: Writable,
  signal: AbortSignal,
  hooks: CaptureHooks,
): Promise<CaptureSummary> {
  validateRequest(request);
  // At debug level the log tells where the memory goes, for a report of a large RSS.
  const memory = setInterval(() => hooks.log.debug('memory', memoryFields()), 2000).unref();
  try {
    return await captureSpec(request, sink, signal, hooks);
  } finally {
    clearInterval(memory);
    hooks.log.debug('memory', memoryFields());
  }
}

async function captureSpec(
  request: CaptureRequest,
  sink: Writable,
  signal: AbortSignal,
  hooks: CaptureHooks,
): Promise<CaptureSummary> {
  const spec = parseTarget(request.pod, request.selector, request.allPods) as TargetSpec;
  if (spec.kind === 'pods' && isSinglePod(spec) && request.format !== 'pcapng') {
    return runCapture({ ...request, pod: spec.names[0] as string }, sink, signal, hooks);
  }
  if (request.format === 'pcap') {
    throw new KubedumpError(
      'BAD_INPUT',
      `pcap holds one pod, and ${describeTarget(spec)} may be several`,
      {
        hint: 'use --format pcapng (or auto), or name one pod',
      },
    );
  }
  return captureMany(request, spec, sink, signal, hooks);
}

async function captureMany(
  request: CaptureRequest,
  spec: TargetSpec,
  sink: Writable,
  signal: AbortSignal,
  hooks: CaptureHooks,
): Promise<CaptureSummary> {
  const { log } = hooks;
  const notice = (line: string) => {
    log.warn(line);
    hooks.onNotice?.(line);
  };
  const kc = loadKubeConfig({ kubeconfig: request.kubeconfig, context: request.context });
  const namespace = request.namespace || contextNamespace(kc);
  const what = describeTarget(spec);
  const { query, pods, names } = await findPods(
    kc,
    namespace,
    spec,
    request.maxPods,
    signal,
    notice,
  );
  log.info('capturing pods', { target: what, pods: pods.map((p) => p.metadata?.name) });

  // One stop for all: the user's, a limit, or the output closing.
  const all = new AbortController();
  let ended: CaptureSummary['ended'] = 'remote-ended';
  const stopAll = (why: CaptureSummary['ended']) => {
    if (all.signal.aborted) return;
    ended = why;
    all.abort(why);
  };
  const onSignal = () => stopAll('stopped');
  signal.addEventListener('abort', onSignal, { once: true });
  if (signal.aborted) stopAll('stopped');
  const timer =
    request.maxSeconds > 0
      ? setTimeout(() => stopAll('limit'), request.maxSeconds * 1000)
      : undefined;
  sink.once('error', () => stopAll('output-closed'));

  const output = new PcapngOutput(
    sink,
    {
      application: `kubedump ${VERSION}`,
      comment: `kubedump: ${what} in namespace ${namespace}`,
    },
    { maxPackets: request.maxPackets, onLimit: () => stopAll('limit') },
  );
  output.addNames(names);
  const named = new Set(names.map((n) => n.address));
  let failures: { failed: number; started: number; first?: unknown };
  try {
    const watch = 'selector' in query ? query.selector : undefined;
    const capture = (pod: V1Pod, stop: AbortSignal) => {
      nameNewAddresses(output, named, pod, namespace);
      return capturePod(request, pod, namespace, output, stop, hooks).then((ended) => {
        if (ended.failure !== undefined) {
          notice(`${namespace}/${pod.metadata?.name}: ${errorLine(ended.failure)}`);
        }
        return ended;
      });
    };
    const run = { watch, max: request.maxPods, log };
    failures = await runPods(kc, namespace, pods, all.signal, capture, run);
  } finally {
    clearTimeout(timer);
    signal.removeEventListener('abort', onSignal);
    await output.end().catch(() => {});
  }
  // Every pod failed: that is the capture's failure (the file still holds why, per pod).
  if (failures.failed === failures.started && !all.signal.aborted) throw failures.first;
  return { packets: output.packets, bytes: output.bytes, ended };
}

/** Names a pod's addresses not named yet: a pod that joined later is named from its own record on. */
function nameNewAddresses(
  output: PcapngOutput,
  named: Set<string>,
  pod: V1Pod,
  namespace: string,
): void {
  const ips = (pod.status?.podIPs ?? []).map((a) => a.ip).filter((ip) => !named.has(ip));
  if (ips.length === 0) return;
  output.addNames(
    ips.map((address) => ({ address, names: [`${pod.metadata?.name}.${namespace}`] })),
  );
  for (const ip of ips) named.add(ip);
}

/** The target's running pods (at most `max`, with a line when there are more) and the namespace's names. */
async function findPods(
  kc: KubeConfig,
  namespace: string,
  spec: TargetSpec,
  max: number,
  signal: AbortSignal,
  notice: (line: string) => void,
) {
  const what = describeTarget(spec);
  const query = await orStop(podQuery(kc, namespace, spec), signal);
  const [found, names] = await orStop(
    Promise.all([runningPods(kc, namespace, query), namespaceNames(kc, namespace)]),
    signal,
  );
  if (!found.length) {
    throw new KubedumpError('NO_PODS', `${what} has no running pod in namespace "${namespace}"`, {
      hint: `check with: kubectl get pods -n ${namespace}`,
    });
  }
  const pods = found.slice(0, max);
  if (found.length > pods.length) {
    notice(
      `${what} has ${found.length} running pods; capturing the first ${pods.length} (raise --max-pods)`,
    );
  }
  return { query, pods, names };
}

/**
 * Captures every pod at once, and with a `watch` selector each pod that
 * starts later (scale-up, rollout), at most `max` in all; a watched pod that
 * is being deleted has its part stopped, with the deletion as the reason
 * (privileged mode's tcpdump would otherwise outlive the pod, quiet, until
 * the end). Without a watch it ends when every pod's part has ended; with
 * one, only when `signal` aborts, unless every pod failed at its start
 * (before its first packet).
 */
async function runPods(
  kc: KubeConfig,
  namespace: string,
  pods: V1Pod[],
  signal: AbortSignal,
  capture: (pod: V1Pod, signal: AbortSignal) => Promise<{ failure?: unknown; captured: boolean }>,
  { watch, max, log }: { watch: string | undefined; max: number; log: CaptureHooks['log'] },
): Promise<{ failed: number; started: number; first?: unknown }> {
  const failures: unknown[] = [];
  const running = new Set<Promise<void>>();
  const started = new Set<string>();
  /** Each running part's own stop, by pod uid. */
  const stops = new Map<string, AbortController>();
  let wake = () => {};
  signal.addEventListener('abort', () => wake(), { once: true });
  const uidOf = (pod: V1Pod) => pod.metadata?.uid || pod.metadata?.name || '';
  const start = (pod: V1Pod) => {
    const uid = uidOf(pod);
    if (started.has(uid) || signal.aborted || started.size >= max) return;
    if (started.size) log.info('pod joins the capture', { pod: pod.metadata?.name });
    started.add(uid);
    const own = new AbortController();
    const stopOwn = () => own.abort(signal.reason);
    signal.addEventListener('abort', stopOwn, { once: true });
    stops.set(uid, own);
    const one = capture(pod, own.signal).then((ended) => {
      signal.removeEventListener('abort', stopOwn);
      stops.delete(uid);
      running.delete(one);
      if (ended.failure !== undefined && !ended.captured) failures.push(ended.failure);
    });
    running.add(one);
    wake();
  };
  const deleted = (pod: V1Pod) => {
    const own = stops.get(uidOf(pod));
    if (!own || own.signal.aborted) return;
    log.info('pod deleted during the capture', { pod: pod.metadata?.name });
    own.abort(podDeletedError(namespace, pod));
  };
  for (const pod of pods) start(pod);
  if (watch !== undefined) {
    watchPods(
      kc,
      namespace,
      watch,
      (pod) => {
        if (pod.metadata?.deletionTimestamp) deleted(pod);
        else if (isRunning(pod)) start(pod);
      },
      (error) => log.warn('pod watch failed; it starts again', { error }),
      signal,
    );
  }
  for (;;) {
    if (running.size) {
      await Promise.race(running);
      continue;
    }
    if (watch === undefined || signal.aborted || failures.length === started.size) break;
    await new Promise<void>((resolve) => {
      wake = resolve;
    });
  }
  return { failed: failures.length, started: started.size, first: failures[0] };
}

/** One pod's session into its own interface; resolves with how it ended. */
async function capturePod(
  request: CaptureRequest,
  pod: V1Pod,
  namespace: string,
  output: PcapngOutput,
  signal: AbortSignal,
  hooks: CaptureHooks,
): Promise<{ failure?: unknown; captured: boolean }> {
  const name = pod.metadata?.name ?? '';
  const container = request.container ?? selectableContainers(pod)[0];
  const several = (pod.spec?.containers.length ?? 0) > 1;
  const iface = {
    name: `${namespace}/${name}${several && container ? `/${container}` : ''}`,
    description: podDescription(pod, container),
    os: 'Linux',
  };
  const source = output.source((header) => output.addInterface(interfaceFromPcap(header, iface)));
  const podRequest = {
    ...request,
    pod: name,
    selector: undefined,
    allPods: false,
    // The limits are the whole capture's, kept by the output.
    maxPackets: 0,
    maxSeconds: 0,
  };
  let failure: unknown;
  try {
    await runCapture(podRequest, source, signal, { ...hooks, onProgress: undefined });
    // Stopped alone (the pod is being deleted): that is why its part ended.
    if (signal.reason instanceof KubedumpError) throw signal.reason;
  } catch (error) {
    failure = error;
    if (source.header) {
      output.addNames([], `${iface.name}: kubedump: capture ended: ${errorLine(error)}`);
    } else {
      const comment = `kubedump: not captured: ${errorLine(error)}`;
      // An interface with no packets, whose comment says why.
      const linktype = request.iface === 'any' ? LINKTYPE_LINUX_SLL : LINKTYPE_ETHERNET;
      output.addInterface({ ...iface, linktype, snaplen: request.snaplen || 262144, comment });
    }
  }
  if (!source.writableEnded) source.end();
  return { failure, captured: source.header !== undefined };
}

function podDeletedError(namespace: string, pod: V1Pod): KubedumpError {
  return new KubedumpError(
    'POD_DELETED',
    `pod ${namespace}/${pod.metadata?.name} was deleted during the capture`,
    { hint: 'the output holds what arrived before' },
  );
}

/** `if_description`: where the pod runs and what it is. */
function podDescription(pod: V1Pod, container: string | undefined): string {
  const labels = Object.entries(pod.metadata?.labels ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  return [
    `node ${pod.spec?.nodeName ?? '?'}`,
    `pod IP ${pod.status?.podIP ?? '?'}`,
    `container ${container ?? '?'}`,
    ...(labels ? [`labels ${labels}`] : []),
  ].join('; ');
}
