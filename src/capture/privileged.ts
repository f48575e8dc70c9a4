import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { KubeConfig, V1Pod } from '@kubernetes/client-node';
import { KubedumpError } from '../errors.ts';
import {
  createPod,
  deletePodAndWait,
  listPodsByLabel,
  type PodRef,
  waitUntilExecutable,
} from '../kube/helper-pod.ts';
import type { Logger } from '../log.ts';
import type { CaptureMode, ModeContext, Placement, TargetContainer } from './capture-mode.ts';
import {
  abandonedBecause,
  HELPER_CONTAINER,
  HELPER_HEARTBEAT,
  HELPER_SELECTOR,
  helperName,
  helperPodSpec,
  isKubedumpHelper,
  SESSION_ANNOTATION,
} from './helper-spec.ts';
import { optionRow } from './options.ts';
import { netnsGuardPrefix } from './remote-scripts.ts';
import type { CaptureRequest } from './request.ts';
import { findPid } from './runtimes/find-pid.ts';
import { bridgeFor, parseContainerId } from './runtimes/index.ts';
import { orStop, type StopClock } from './stop-clock.ts';
import { ensureTcpdump } from './upload.ts';

// Privileged mode: a helper pod on the target's node (hostPID, privileged)
// finds the target container's PID and runs the uploaded tcpdump in the
// target's network namespace with `nsenter -t PID -n`. Nothing is needed in
// the target container, so distroless and non-root pods can be captured.

const DEFAULT_HELPER_TIMEOUT_S = optionRow('helperTimeout').default as number;
/** The sweep of abandoned helpers runs beside the helper's start, never longer than this. */
const SWEEP_BUDGET_MS = 3000;

export const privilegedMode: CaptureMode = {
  name: 'privileged',
  async prepare(ctx: ModeContext): Promise<Placement> {
    const { kc, target, request, log, signal, cleanup } = ctx;
    await orStop(ctx.linux, signal);
    const what = `container ${target.container} of pod ${target.namespace}/${target.pod}`;
    const container = parseContainerId(target.containerId, what);
    const bridge = bridgeFor(container);
    if (!target.nodeName) {
      throw new KubedumpError('NO_NODE', `pod ${target.namespace}/${target.pod} has no node`, {
        hint: 'wait until it is scheduled and runs',
      });
    }
    const pod = helperPodFor(target, request);
    const namespace = pod.metadata?.namespace as string;
    const sweeping = withinBudget(sweepAbandoned(kc, namespace, log), SWEEP_BUDGET_MS);

    const helper: PodRef = { namespace, name: pod.metadata?.name as string };
    const session = pod.metadata?.annotations?.[SESSION_ANNOTATION] as string;
    // Registered before the create call: a create that times out on our side
    // may still have happened on the server's. Deleting a missing pod is fine.
    let removing: Promise<void> | undefined;
    const remove = () => {
      removing ??= removeHelper(kc, helper, log, ctx.clock).then(() =>
        ctx.record?.helperRemoved({ ...helper, session }),
      );
      return removing;
    };
    cleanup.defer(remove);
    ctx.record?.helperCreated({ ...helper, session });
    const started = Date.now();
    try {
      await createPod(kc, namespace, pod);
    } catch (error) {
      throw creationFailure(error, namespace);
    }
    log.info('helper pod created', { pod: `${namespace}/${helper.name}`, node: target.nodeName });

    let sign: 'exec' | 'status';
    try {
      sign = await waitUntilExecutable(kc, helper, HELPER_CONTAINER, {
        timeoutMs: (request.helperTimeout ?? DEFAULT_HELPER_TIMEOUT_S) * 1000,
        signal,
      });
    } catch (error) {
      throw startFailure(error, helper, request);
    }
    log.info('helper pod running', { ms: Date.now() - started, seen: sign });

    const exec = { namespace, pod: helper.name, container: HELPER_CONTAINER };
    // The helper is deleted on stop, and its files with it.
    const [pid, uploaded] = await Promise.all([
      findPid(kc, {
        exec,
        container,
        bridge,
        request,
        hostNetwork: target.hostNetwork,
        log,
        signal,
      }),
      ensureTcpdump(ctx, exec, { keep: false, remove: false }),
      sweeping,
    ]);
    return {
      exec,
      binary: uploaded.binary,
      prefix: netnsGuardPrefix(pid, { hostNetwork: target.hostNetwork }),
      // The helper's main process beats with the capture's watchdog.
      heartbeat: HELPER_HEARTBEAT,
      // Deleting the helper ends everything in it: the first thing a stop does.
      onStop: remove,
      where: `helper pod ${namespace}/${helper.name} (node ${target.nodeName}, PID ${pid} of pod ${target.namespace}/${target.pod})`,
    };
  },
};

/** The helper pod for a target, exactly as a privileged capture creates it (preflight asks about this one). */
export function helperPodFor(
  target: TargetContainer,
  request: Pick<CaptureRequest, 'helperNamespace' | 'helperImage' | 'helperTimeout'>,
): V1Pod {
  return helperPodSpec({
    namespace: request.helperNamespace || target.namespace,
    name: helperName(target.pod),
    nodeName: target.nodeName ?? '',
    image: request.helperImage,
    session: `${hostname()}/${process.pid}/${randomBytes(4).toString('hex')}`,
    target: `${target.namespace}/${target.pod}`,
    startTimeoutSeconds: request.helperTimeout ?? DEFAULT_HELPER_TIMEOUT_S,
  });
}

function withinBudget(work: Promise<unknown>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    void work.finally(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/**
 * Deletes kubedump's helper pods that serve no capture any more: ended, or
 * never started long ago by the server's clock. A running helper is never
 * touched: it ends by itself once its capture is gone. Best effort: without
 * the permission to list pods, nothing is swept.
 */
export async function sweepAbandoned(
  kc: KubeConfig,
  namespace: string | undefined,
  log: Logger,
  print?: (line: string) => void,
): Promise<{ deleted: number; live: number }> {
  let listing: Awaited<ReturnType<typeof listPodsByLabel>>;
  try {
    listing = await listPodsByLabel(kc, namespace, HELPER_SELECTOR);
  } catch (error) {
    log.info('cannot look for abandoned helper pods', { error });
    if (print) throw error;
    return { deleted: 0, live: 0 };
  }
  const helpers = listing.pods.filter(isKubedumpHelper);
  const abandoned = helpers
    .map((pod) => ({ pod, why: abandonedBecause(pod, listing.serverNow) }))
    .filter((h): h is { pod: V1Pod; why: string } => h.why !== undefined);
  await Promise.all(
    abandoned.map(async ({ pod, why }) => {
      const ref = { namespace: pod.metadata?.namespace ?? '', name: pod.metadata?.name ?? '' };
      try {
        await deletePodAndWait(kc, ref, 2000);
        log.info('abandoned helper pod deleted', { pod: `${ref.namespace}/${ref.name}`, why });
        print?.(`deleted pod ${ref.namespace}/${ref.name}: ${why}`);
      } catch (error) {
        log.warn('cannot delete abandoned helper pod', { pod: ref.name, error });
        if (print) throw error;
      }
    }),
  );
  return { deleted: abandoned.length, live: helpers.length - abandoned.length };
}

async function removeHelper(
  kc: KubeConfig,
  helper: PodRef,
  log: Logger,
  clock: StopClock,
): Promise<void> {
  // It may wait for the pod to disappear until the stop's deadline.
  const gone = await deletePodAndWait(kc, helper, clock.remainingMs());
  log.info(gone ? 'helper pod deleted' : 'helper pod deletion still running', {
    pod: `${helper.namespace}/${helper.name}`,
  });
}

/** One clear line for a helper pod the API server refused. */
export function creationFailure(error: unknown, namespace: string): KubedumpError {
  if (!(error instanceof KubedumpError)) return error as KubedumpError;
  // The server's own words when its Status came with the error.
  const said = error.status?.message ?? error.message.replace(/^.*?: forbidden: /, '');
  if (error.code === 'FORBIDDEN' && /violates PodSecurity/.test(said)) {
    const violations = /violates PodSecurity (.*)$/.exec(said)?.[1] ?? said;
    return new KubedumpError(
      'POD_SECURITY',
      `Pod Security refuses the privileged helper pod in namespace "${namespace}": ${violations}`,
      {
        hint: `the namespace label pod-security.kubernetes.io/enforce of "${namespace}" forbids privileged pods; use --helper-namespace with a namespace labelled pod-security.kubernetes.io/enforce=privileged`,
        cause: error,
      },
    );
  }
  if (error.code === 'FORBIDDEN') {
    return new KubedumpError(
      'RBAC_CREATE_PODS',
      `not allowed to create pods in namespace "${namespace}" (RBAC: ${error.message.replace(/^.*?: forbidden: /, '')})`,
      {
        hint: `ask for the RBAC permission "create pods" in namespace ${namespace}, or use --helper-namespace with a namespace where you have it`,
        cause: error,
      },
    );
  }
  if (error.code === 'INVALID') {
    return new KubedumpError(
      'HELPER_REJECTED',
      `the cluster refuses the privileged helper pod in namespace "${namespace}": ${error.status?.message ?? error.message.replace(/^.*?rejected as invalid: /, '')}`,
      {
        hint: 'a policy forbids privileged or hostPID pods there; use --helper-namespace with a namespace that allows them',
        cause: error,
      },
    );
  }
  return error;
}

/** One clear line for a helper pod that never ran. */
export function startFailure(
  error: unknown,
  helper: PodRef,
  request: Pick<CaptureRequest, 'helperImage' | 'helperTimeout'>,
): unknown {
  if (!(error instanceof KubedumpError)) return error;
  const pod = `helper pod ${helper.namespace}/${helper.name}`;
  const detail = error.message.replace(/^pod \S+ /, '');
  switch (error.code) {
    case 'IMAGE_PULL':
      return new KubedumpError(
        'HELPER_IMAGE_PULL',
        `the node cannot pull the helper image "${request.helperImage}" (${detail.replace(/^cannot run: /, '')})`,
        {
          hint: 'use --helper-image with an image the node can pull (it needs sh and nsenter, e.g. busybox)',
          cause: error,
        },
      );
    case 'UNSCHEDULABLE':
      return new KubedumpError('HELPER_UNSCHEDULABLE', `${pod} ${detail}`, {
        hint: 'the node does not accept the helper pod; check its taints, capacity and state',
        cause: error,
      });
    case 'POD_START_TIMEOUT':
      return new KubedumpError('HELPER_TIMEOUT', `${pod} ${detail}`, {
        hint: 'raise --helper-timeout, or check the pod with kubectl describe',
        cause: error,
      });
    case 'CONTAINER_FAILED':
    case 'POD_ENDED':
      return new KubedumpError('HELPER_FAILED', `${pod} ${detail}`, {
        hint: 'check the helper image (--helper-image needs sh and nsenter) and the pod events',
        cause: error,
      });
  }
  return error;
}
