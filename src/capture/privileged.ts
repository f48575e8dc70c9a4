import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { KubeConfig } from '@kubernetes/client-node';
import { KubedumpError } from '../errors.ts';
import {
  annotatePod,
  createPod,
  deletePodAndWait,
  listPodsByLabel,
  type PodRef,
  waitUntilRunning,
} from '../kube/helper-pod.ts';
import type { Logger } from '../log.ts';
import { archFromNode, tcpdumpBinary, tcpdumpManifest } from '../tcpdump/index.ts';
import {
  HEARTBEAT_ANNOTATION,
  HEARTBEAT_MS,
  HELPER_CONTAINER,
  HELPER_SELECTOR,
  helperName,
  helperPodSpec,
  isStale,
} from './helper-spec.ts';
import type { CaptureMode, ModeContext, Placement } from './mode.ts';
import type { CaptureRequest } from './request.ts';
import { findPid, type HelperExec } from './runtimes/find-pid.ts';
import { bridgeFor, parseContainerId } from './runtimes/index.ts';
import { netnsGuardPrefix } from './runtimes/netns-guard.ts';
import { binaryName } from './unprivileged.ts';
import { probeContainer, uploadExecutable } from './upload.ts';

// Privileged mode: a helper pod on the target's node (hostPID, privileged)
// finds the target container's PID and runs the uploaded tcpdump in the
// target's network namespace with `nsenter -t PID -n`. Nothing is needed in
// the target container, so distroless and non-root pods can be captured.

export const DEFAULT_HELPER_TIMEOUT_S = 60;
/** How long the stop may wait for the helper pod to disappear. */
const DELETE_WAIT_MS = 1200;

export const privilegedMode: CaptureMode = {
  name: 'privileged',
  async prepare(ctx: ModeContext): Promise<Placement> {
    const { kc, target, request, log, signal, cleanup } = ctx;
    const what = `container ${target.container} of pod ${target.namespace}/${target.pod}`;
    const container = parseContainerId(target.containerId, what);
    const bridge = bridgeFor(container);
    if (!target.nodeName) {
      throw new KubedumpError('NO_NODE', `pod ${target.namespace}/${target.pod} has no node`, {
        hint: 'wait until it is scheduled and runs',
      });
    }
    const namespace = request.helperNamespace || target.namespace;
    await sweepStale(kc, namespace, log);
    signal.throwIfAborted();

    const helper: PodRef = { namespace, name: helperName(target.pod) };
    const session = `${hostname()}/${process.pid}/${randomBytes(4).toString('hex')}`;
    // Registered before the create call: a create that times out on our side
    // may still have happened on the server's. Deleting a missing pod is fine.
    cleanup.defer(() => removeHelper(kc, helper, log));
    const started = Date.now();
    try {
      await createPod(
        kc,
        namespace,
        helperPodSpec({
          ...helper,
          nodeName: target.nodeName,
          image: request.helperImage,
          session,
          target: `${target.namespace}/${target.pod}`,
          now: new Date(),
        }),
      );
    } catch (error) {
      throw creationFailure(error, namespace);
    }
    log.info('helper pod created', { pod: `${namespace}/${helper.name}`, node: target.nodeName });
    const heartbeat = setInterval(() => {
      annotatePod(kc, helper, { [HEARTBEAT_ANNOTATION]: new Date().toISOString() }).catch((error) =>
        log.debug('heartbeat not refreshed', { error }),
      );
    }, HEARTBEAT_MS);
    heartbeat.unref();
    cleanup.defer(() => clearInterval(heartbeat));

    try {
      await waitUntilRunning(kc, helper, {
        timeoutMs: (request.helperTimeout ?? DEFAULT_HELPER_TIMEOUT_S) * 1000,
        signal,
      });
    } catch (error) {
      throw startFailure(error, helper, request);
    }
    log.info('helper pod running', { ms: Date.now() - started });

    const exec = { namespace, pod: helper.name, container: HELPER_CONTAINER };
    const [pid, binary] = await Promise.all([
      findPid(kc, {
        exec,
        container,
        bridge,
        request,
        hostNetwork: target.hostNetwork,
        log,
        signal,
      }),
      uploadTcpdump(ctx, exec),
    ]);
    return {
      exec,
      binary,
      prefix: netnsGuardPrefix(pid, { hostNetwork: target.hostNetwork }),
      // The helper pod and everything in it are deleted on stop.
      where: `helper pod ${namespace}/${helper.name} (node ${target.nodeName}, PID ${pid} of pod ${target.namespace}/${target.pod})`,
    };
  },
};

async function uploadTcpdump(ctx: ModeContext, exec: HelperExec): Promise<string> {
  const { kc, log, signal } = ctx;
  const manifest = tcpdumpManifest();
  const amd64 = manifest.binaries.amd64.sha256;
  // The node's architecture decides the binary; the probe sees the helper's too.
  const [nodeArch, probeAmd64] = await Promise.all([
    ctx.nodeArchitecture(),
    probeContainer(kc, exec, binaryName(amd64), amd64, signal),
  ]);
  const arch = archFromNode(nodeArch ?? probeAmd64.arch);
  if (!arch) {
    throw new KubedumpError(
      'UNSUPPORTED_ARCH',
      `no tcpdump for CPU architecture "${nodeArch ?? probeAmd64.arch}"`,
      { hint: 'kubedump ships tcpdump for amd64 and arm64' },
    );
  }
  const { sha256 } = manifest.binaries[arch];
  const name = binaryName(sha256);
  const probe =
    arch === 'amd64' ? probeAmd64 : await probeContainer(kc, exec, name, sha256, signal);
  const binary = `${probe.dir.replace(/\/$/, '')}/${name}`;
  if (probe.state !== 'present') {
    const started = Date.now();
    await uploadExecutable(kc, exec, probe, name, tcpdumpBinary(arch), signal);
    log.info('tcpdump uploaded', { binary, ms: Date.now() - started, tar: probe.hasTar });
  }
  return binary;
}

/** Deletes helper pods left behind by runs that died (stale heartbeat). Best effort. */
export async function sweepStale(kc: KubeConfig, namespace: string, log: Logger): Promise<void> {
  let pods: Awaited<ReturnType<typeof listPodsByLabel>>;
  try {
    pods = await listPodsByLabel(kc, namespace, HELPER_SELECTOR);
  } catch (error) {
    log.warn('cannot look for stale helper pods', { error });
    return;
  }
  const now = Date.now();
  const stale = pods.filter((p) => isStale(p, now));
  await Promise.all(
    stale.map(async (p) => {
      const ref = { namespace, name: p.metadata?.name ?? '' };
      try {
        await deletePodAndWait(kc, ref, 5000);
        log.info('stale helper pod deleted', { pod: `${namespace}/${ref.name}` });
      } catch (error) {
        log.warn('cannot delete stale helper pod', { pod: ref.name, error });
      }
    }),
  );
}

async function removeHelper(kc: KubeConfig, helper: PodRef, log: Logger): Promise<void> {
  const gone = await deletePodAndWait(kc, helper, DELETE_WAIT_MS);
  log.info(gone ? 'helper pod deleted' : 'helper pod deletion still running', {
    pod: `${helper.namespace}/${helper.name}`,
  });
}

/** One clear line for a helper pod the API server refused. */
export function creationFailure(error: unknown, namespace: string): KubedumpError {
  if (!(error instanceof KubedumpError)) return error as KubedumpError;
  const said = error.message.replace(/^.*?: forbidden: /, '');
  if (error.code === 'FORBIDDEN' && /violates PodSecurity/.test(error.message)) {
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
      `not allowed to create pods in namespace "${namespace}" (RBAC: ${said})`,
      {
        hint: `ask for the RBAC permission "create pods" in namespace ${namespace}, or use --helper-namespace with a namespace where you have it`,
        cause: error,
      },
    );
  }
  if (error.code === 'INVALID') {
    return new KubedumpError(
      'HELPER_REJECTED',
      `the cluster refuses the privileged helper pod in namespace "${namespace}": ${error.message.replace(/^.*?rejected as invalid: /, '')}`,
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
