import type { KubeConfig } from '@kubernetes/client-node';
import {
  getPod,
  hostNetworkNotice,
  nodeArchitecture,
  pickContainer,
  requireLinux,
  requireRunning,
} from '../kube/pods.ts';
import type { ModeContext, TargetContainer } from './capture-mode.ts';
import { orStop, STOP_BUDGET_MS } from './stop-clock.ts';

// The container a capture is about, read from the API server, with the
// notices its user should read before the capture starts.

export async function resolveTarget(
  kc: KubeConfig,
  ref: { namespace: string; pod: string; container: string | undefined },
  signal: AbortSignal,
): Promise<{
  target: TargetContainer;
  notices: string[];
  node: Pick<ModeContext, 'linux' | 'nodeArchitecture'>;
  /** The pod has one container: an exec that names none lands in it. */
  soleContainer: boolean;
}> {
  // The API server may be slow or black-holed: a stop must not wait for it.
  const pod = await orStop(getPod(kc, { namespace: ref.namespace, name: ref.pod }), signal);
  const picked = pickContainer(pod, ref.container);
  requireRunning(picked);
  // Read beside what comes next: a mode awaits it before it changes anything.
  const linux = requireLinux(kc, picked);
  linux.catch(() => {}); // a stop may come before a mode asks
  const hostNetwork = hostNetworkNotice(picked);
  return {
    target: {
      namespace: ref.namespace,
      pod: ref.pod,
      container: picked.container,
      containerId: picked.containerId,
      nodeName: picked.nodeName,
      hostNetwork: picked.hostNetwork,
      nonRootPod:
        pod.spec?.securityContext?.runAsNonRoot === true ||
        (pod.spec?.securityContext?.runAsUser ?? 0) !== 0,
    },
    notices: [...picked.warnings, ...(hostNetwork ? [hostNetwork] : [])],
    soleContainer: (pod.spec?.containers.length ?? 0) === 1,
    node: {
      linux,
      nodeArchitecture: () =>
        linux.then(() => (picked.nodeName ? nodeArchitecture(kc, picked.nodeName) : undefined)),
    },
  };
}

/** "pod NS/NAME" when that pod is gone or being deleted; undefined when it is there or unknown. */
export async function podDeleted(
  kc: KubeConfig,
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
