import { CoreV1Api, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { KubedumpError } from '../errors.ts';
import { apiError } from './api-errors.ts';
import { execCollect } from './exec.ts';
import { watchUntil } from './watch.ts';

// Short-lived helper pods: create one from a spec, wait until it runs (or say
// in one line why it never will), list them by label with the server's time,
// delete them and wait until they are gone. Generic: a spec in, a pod out.

export interface PodRef {
  namespace: string;
  name: string;
}

function ref(pod: PodRef): string {
  return `${pod.namespace}/${pod.name}`;
}

function aborted(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** Creates the pod; with `dryRun` the server admits and validates it but stores nothing. */
export async function createPod(
  kc: KubeConfig,
  namespace: string,
  body: V1Pod,
  options: { dryRun?: boolean } = {},
): Promise<V1Pod> {
  const api = kc.makeApiClient(CoreV1Api);
  try {
    return await api.createNamespacedPod({
      namespace,
      body,
      ...(options.dryRun && { dryRun: 'All' }),
    });
  } catch (error) {
    throw apiError(error, `create pod ${namespace}/${body.metadata?.name ?? ''}`);
  }
}

/** Container waiting reasons that will not fix themselves while we wait. */
const IMAGE_REASONS = new Set([
  'ErrImagePull',
  'ImagePullBackOff',
  'InvalidImageName',
  'ErrImageNeverPull',
]);
const CREATE_REASONS = new Set([
  'CreateContainerConfigError',
  'CreateContainerError',
  'RunContainerError',
]);

/** Why a pod does not run (yet): the decision of one poll, pure so it can be tested. */
export type PodProgress =
  | { state: 'running' }
  | { state: 'waiting'; detail: string; unschedulable?: string }
  | {
      state: 'failed';
      code: 'IMAGE_PULL' | 'CONTAINER_FAILED' | 'POD_ENDED';
      detail: string;
      image?: string;
    };

export function podProgress(pod: V1Pod): PodProgress {
  const phase = pod.status?.phase ?? 'Pending';
  const statuses = pod.status?.containerStatuses ?? [];
  if (phase === 'Running' && statuses.length > 0 && statuses.every((s) => s.state?.running)) {
    return { state: 'running' };
  }
  if (phase === 'Succeeded' || phase === 'Failed') {
    const t = statuses.find((s) => s.state?.terminated)?.state?.terminated;
    const why = pod.status?.reason ?? t?.reason ?? phase;
    return {
      state: 'failed',
      code: 'POD_ENDED',
      detail: `it ended (${why}${t?.exitCode !== undefined ? `, exit ${t.exitCode}` : ''})${pod.status?.message ? `: ${pod.status.message}` : ''}`,
    };
  }
  for (const s of statuses) {
    const waiting = s.state?.waiting;
    if (!waiting?.reason) continue;
    if (IMAGE_REASONS.has(waiting.reason)) {
      return {
        state: 'failed',
        code: 'IMAGE_PULL',
        image: s.image,
        detail: `${waiting.reason}${waiting.message ? `: ${waiting.message}` : ''}`,
      };
    }
    if (CREATE_REASONS.has(waiting.reason)) {
      return {
        state: 'failed',
        code: 'CONTAINER_FAILED',
        detail: `${waiting.reason}${waiting.message ? `: ${waiting.message}` : ''}`,
      };
    }
  }
  const scheduled = pod.status?.conditions?.find((c) => c.type === 'PodScheduled');
  if (scheduled?.status === 'False') {
    return {
      state: 'waiting',
      detail: `not scheduled (${scheduled.reason ?? 'Pending'})`,
      unschedulable: scheduled.message ?? scheduled.reason ?? 'no node fits',
    };
  }
  const reason = statuses.find((s) => s.state?.waiting?.reason)?.state?.waiting?.reason;
  return { state: 'waiting', detail: `phase ${phase}${reason ? `, ${reason}` : ''}` };
}

export interface WaitOptions {
  timeoutMs: number;
  signal?: AbortSignal | undefined;
  /** How often to read the pod when it cannot be watched. */
  pollMs?: number;
}

/** While watching works, a read now and then only backs it up. */
const POLL_WHILE_WATCHING_MS = 1000;

/**
 * Waits until the pod runs: it watches the pod, so the change is seen the
 * moment the API server has it, and reads it every `pollMs` instead when the
 * identity may not watch pods. Throws KubedumpError: IMAGE_PULL (with the
 * image in `cause`), CONTAINER_FAILED, POD_ENDED, UNSCHEDULABLE,
 * POD_START_TIMEOUT, ABORTED.
 */
export async function waitUntilRunning(
  kc: KubeConfig,
  pod: PodRef,
  options: WaitOptions,
): Promise<V1Pod> {
  const api = kc.makeApiClient(CoreV1Api);
  const deadline = Date.now() + options.timeoutMs;
  let last: PodProgress = { state: 'waiting', detail: 'not created yet' };
  const watching = new AbortController();
  const signals = (first: AbortSignal) => (options.signal ? [first, options.signal] : [first]);
  let seen: V1Pod | undefined;
  let wake: (() => void) | undefined;
  let canWatch = true;
  watchUntil(
    kc,
    `/api/v1/namespaces/${encodeURIComponent(pod.namespace)}/pods`,
    { fieldSelector: `metadata.name=${pod.name}` },
    (type, object) => {
      const current = object as V1Pod;
      if (type === 'DELETED' || current.metadata?.name !== pod.name) return;
      seen = current;
      wake?.();
    },
    () => {
      // Forbidden, most likely: read instead, and stop asking.
      canWatch = false;
      watching.abort();
      wake?.();
    },
    AbortSignal.any(signals(watching.signal)),
  );
  try {
    while (!aborted(options.signal)) {
      let current = seen;
      seen = undefined;
      if (!current) {
        try {
          current = await api.readNamespacedPod({ name: pod.name, namespace: pod.namespace });
        } catch (error) {
          if (aborted(options.signal)) break;
          throw apiError(error, `get pod ${ref(pod)}`);
        }
      }
      last = podProgress(current);
      if (last.state === 'running') return current;
      if (last.state === 'failed') {
        throw new KubedumpError(last.code, `pod ${ref(pod)} cannot run: ${last.detail}`, {
          cause: { image: last.image },
        });
      }
      const left = deadline - Date.now();
      if (left <= 0) break;
      if (seen) continue;
      const pollMs = canWatch ? POLL_WHILE_WATCHING_MS : (options.pollMs ?? 250);
      const nap = new AbortController();
      wake = () => nap.abort();
      await sleep(Math.min(pollMs, left), AbortSignal.any(signals(nap.signal)));
      wake = undefined;
    }
  } finally {
    watching.abort();
  }
  if (aborted(options.signal)) {
    throw new KubedumpError('ABORTED', `waiting for pod ${ref(pod)}: stopped`);
  }
  const seconds = Math.round(options.timeoutMs / 1000);
  if (last.state === 'waiting' && last.unschedulable) {
    throw new KubedumpError(
      'UNSCHEDULABLE',
      `pod ${ref(pod)} was not scheduled within ${seconds} s: ${last.unschedulable}`,
    );
  }
  throw new KubedumpError(
    'POD_START_TIMEOUT',
    `pod ${ref(pod)} did not start within ${seconds} s (${last.detail})`,
  );
}

/**
 * While a pod starts, an exec into it is tried every 100 ms for 2 s (a
 * helper whose image is on the node runs within that), then every second
 * (an image being pulled: fewer requests that can only fail).
 */
const EXEC_TRY_MS = 100;
const EXEC_TRY_SLOW_MS = 1000;
const EXEC_TRY_FAST_FOR_MS = 2000;

/**
 * Waits until commands can run in the pod's `container`; says which sign came
 * first. The kubelet runs an exec as soon as the runtime runs the container,
 * but reports it running only at its next status sync (up to a second later
 * on 1.20's PLEG): so an exec is tried beside the wait for the status. The
 * status still says in one line why a pod cannot start.
 */
export async function waitUntilExecutable(
  kc: KubeConfig,
  pod: PodRef,
  container: string,
  options: WaitOptions,
): Promise<'exec' | 'status'> {
  const stop = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
  const running = waitUntilRunning(kc, pod, { ...options, signal }).then(() => 'status' as const);
  // The loser of the race ends with ABORTED once the winner is in.
  running.catch(() => {});
  try {
    return await Promise.race([
      running,
      execRuns(kc, pod, container, signal).then((ran) => (ran ? ('exec' as const) : running)),
    ]);
  } finally {
    stop.abort();
  }
}

/**
 * Tries `sh -c :` until it runs. False on an answer other than "not yet"
 * (404: the kubelet has no such pod yet; 500: no such container running).
 */
async function execRuns(
  kc: KubeConfig,
  pod: PodRef,
  container: string,
  signal: AbortSignal,
): Promise<boolean> {
  const where = { namespace: pod.namespace, pod: pod.name, container };
  const started = Date.now();
  while (!signal.aborted) {
    try {
      const ran = await execCollect(kc, { ...where, command: ['sh', '-c', ':'], signal });
      return ran.exitCode === 0;
    } catch (error) {
      const code = error instanceof KubedumpError ? error.code : '';
      if (code !== 'POD_NOT_FOUND' && code !== 'EXEC_REFUSED') return false;
    }
    const fast = Date.now() - started < EXEC_TRY_FAST_FOR_MS;
    await sleep(fast ? EXEC_TRY_MS : EXEC_TRY_SLOW_MS, signal);
  }
  return false;
}

export interface PodListing {
  pods: V1Pod[];
  /** The API server's clock when it answered (its Date header), else ours. */
  serverNow: number;
}

/** Lists pods by label, with the server's time: ages are judged by its clock, never a client's. */
export async function listPodsByLabel(
  kc: KubeConfig,
  namespace: string | undefined,
  labelSelector: string,
): Promise<PodListing> {
  const api = kc.makeApiClient(CoreV1Api);
  try {
    const answer = namespace
      ? await api.listNamespacedPodWithHttpInfo({ namespace, labelSelector })
      : await api.listPodForAllNamespacesWithHttpInfo({ labelSelector });
    const date = Date.parse(answer.headers.date ?? '');
    return { pods: answer.data.items, serverNow: Number.isFinite(date) ? date : Date.now() };
  } catch (error) {
    throw apiError(error, `list pods${namespace ? ` in namespace ${namespace}` : ''}`);
  }
}

/**
 * Deletes the pod with grace period 0 and waits until the API no longer has
 * it. A pod that does not exist is already gone. Resolves false when
 * `waitMs` passed first.
 */
export async function deletePodAndWait(
  kc: KubeConfig,
  pod: PodRef,
  waitMs: number,
): Promise<boolean> {
  const api = kc.makeApiClient(CoreV1Api);
  const deadline = Date.now() + waitMs;
  try {
    await api.deleteNamespacedPod({
      name: pod.name,
      namespace: pod.namespace,
      gracePeriodSeconds: 0,
    });
  } catch (error) {
    const e = apiError(error, `delete pod ${ref(pod)}`);
    if (e.code === 'NOT_FOUND') return true;
    throw e;
  }
  while (Date.now() < deadline) {
    try {
      await api.readNamespacedPod({ name: pod.name, namespace: pod.namespace });
    } catch (error) {
      const e = apiError(error, `get pod ${ref(pod)}`);
      if (e.code === 'NOT_FOUND') return true;
      throw e;
    }
    await sleep(Math.min(100, Math.max(0, deadline - Date.now())));
  }
  return false;
}
