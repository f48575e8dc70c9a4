import { randomBytes } from 'node:crypto';
import type { V1EphemeralContainer } from '@kubernetes/client-node';
import { KubedumpError } from '../errors.ts';
import { addEphemeralContainer, waitForEphemeralContainer } from '../kube/ephemeral.ts';
import { execCollect } from '../kube/exec.ts';
import type { CaptureMode, ModeContext, Placement, TargetContainer } from './capture-mode.ts';
import { HELPER_IDLE_SECONDS } from './helper-spec.ts';
import { optionRow } from './options.ts';
import { endHelperArgv, helperMainArgv } from './remote-scripts.ts';
import type { CaptureRequest } from './request.ts';
import { orStop } from './stop-clock.ts';
import { type ExecTarget, ensureTcpdump } from './upload.ts';

// Ephemeral mode: a container of the helper image joins the target pod
// (`kubectl debug` style), shares its network namespace, and tcpdump is
// uploaded into it and run there as root with the runtime's default
// capabilities (NET_RAW among them). Nothing is needed in the target's own
// image, so distroless and non-root pods can be captured where Pod Security
// forbids privileged helper pods. An ephemeral container cannot be removed:
// its main process ends when "end" is written into its heartbeat file (by
// tcpdump's wrapper after a stop, by kubedump when the capture fails before
// tcpdump runs) or when the file stops changing (kubedump died), as the
// helper pod's does.

const DEFAULT_TIMEOUT_S = optionRow('helperTimeout').default as number;
/** The heartbeat file in the ephemeral container's own filesystem. */
const HEARTBEAT = '/tmp/kubedump-heartbeat';

/** The ephemeral container kubedump adds (preflight asks the server about this very one). */
export function ephemeralContainer(
  name: string,
  target: TargetContainer,
  request: Pick<CaptureRequest, 'helperImage'>,
): V1EphemeralContainer {
  return {
    name,
    image: request.helperImage,
    imagePullPolicy: 'IfNotPresent',
    command: helperMainArgv(HEARTBEAT, HELPER_IDLE_SECONDS),
    // The target container's process namespace when it is shared.
    targetContainerName: target.container,
    // tcpdump needs NET_RAW, which the runtime gives root by default: a
    // pod that makes its containers non-root gets this one back to root.
    // Nothing beyond that is asked for.
    ...(target.nonRootPod && { securityContext: { runAsUser: 0, runAsNonRoot: false } }),
    stdin: false,
    tty: false,
  };
}

/** One clear line for an ephemeral container the server refused. */
export function ephemeralFailure(error: unknown, target: TargetContainer): unknown {
  // Before Kubernetes 1.23 an ephemeral container may not set its own user.
  if (error instanceof KubedumpError && /securityContext.*cannot be set/i.test(error.message)) {
    return new KubedumpError(
      'EPHEMERAL_NONROOT',
      `pod ${target.namespace}/${target.pod} runs its containers as a non-root user, and this cluster does not let an ephemeral container run as root`,
      { hint: 'use privileged mode (-p), or Kubernetes 1.23+', cause: error },
    );
  }
  return error;
}

export const ephemeralMode: CaptureMode = {
  name: 'ephemeral',
  async prepare(ctx: ModeContext): Promise<Placement> {
    const { kc, target, request, log, signal } = ctx;
    await orStop(ctx.linux, signal);
    const pod = { namespace: target.namespace, name: target.pod };
    if (target.hostNetwork)
      log.info('the pod uses the node network: so does its ephemeral container');
    // A new name each time: an ephemeral container, once added, stays.
    const name = `kubedump-${randomBytes(4).toString('hex')}`;
    const started = Date.now();
    try {
      await addEphemeralContainer(kc, pod, ephemeralContainer(name, target, request));
    } catch (error) {
      throw ephemeralFailure(error, target);
    }
    log.info('ephemeral container added', { pod: `${pod.namespace}/${pod.name}`, name });
    try {
      await waitForEphemeralContainer(kc, pod, name, {
        timeoutMs: (request.helperTimeout ?? DEFAULT_TIMEOUT_S) * 1000,
        signal,
      });
    } catch (error) {
      if (error instanceof KubedumpError && error.code === 'IMAGE_PULL') {
        throw new KubedumpError('HELPER_IMAGE_PULL', error.message, {
          hint: 'use --helper-image with an image the node can pull (it needs sh)',
          cause: error,
        });
      }
      throw error;
    }
    log.info('ephemeral container running', { ms: Date.now() - started });
    const exec = { namespace: pod.namespace, pod: pod.name, container: name };
    // Until tcpdump's wrapper runs (it writes "end" when tcpdump ends), a
    // failure must end the container's main process itself, or it idles on
    // for HELPER_IDLE_SECONDS.
    let wrapperRuns = false;
    ctx.cleanup.defer(async () => {
      if (!wrapperRuns) await endMainProcess(ctx, exec);
    });
    // The container is ours alone and goes with its process: no removal.
    const uploaded = await ensureTcpdump(ctx, exec, { keep: false, remove: false });
    return {
      exec,
      binary: uploaded.binary,
      prefix: [],
      heartbeat: HEARTBEAT,
      where: `ephemeral container ${name} of pod ${pod.namespace}/${pod.name}`,
      handedOver: () => {
        wrapperRuns = true;
      },
    };
  },
};

async function endMainProcess(ctx: ModeContext, exec: ExecTarget): Promise<void> {
  try {
    const result = await execCollect(ctx.kc, {
      ...exec,
      command: endHelperArgv(HEARTBEAT),
      signal: ctx.clock.signal(),
    });
    ctx.log.info('ephemeral container told to end', {
      container: exec.container,
      exitCode: result.exitCode,
    });
  } catch (error) {
    // An exec that is refused now ends nothing: the container idles out by itself.
    ctx.log.warn('ephemeral container not told to end', { container: exec.container, error });
  }
}
