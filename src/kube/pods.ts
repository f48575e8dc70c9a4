import { CoreV1Api, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { KubedumpError } from '../errors.ts';
import { apiError } from './api-errors.ts';

export interface PodRef {
  namespace: string;
  name: string;
}

export interface ResolvedContainer {
  pod: V1Pod;
  container: string;
  /** `<runtime>://<id>`, when the container has started. */
  containerId: string | undefined;
  nodeName: string | undefined;
  /** The pod shares the node's network namespace: its traffic is the node's. */
  hostNetwork: boolean;
}

const DEFAULT_CONTAINER_ANNOTATION = 'kubectl.kubernetes.io/default-container';

export async function getPod(kc: KubeConfig, ref: PodRef): Promise<V1Pod> {
  const api = kc.makeApiClient(CoreV1Api);
  try {
    return await api.readNamespacedPod({ name: ref.name, namespace: ref.namespace });
  } catch (error) {
    const e = apiError(error, `get pod ${ref.namespace}/${ref.name}`);
    if (e.code === 'NOT_FOUND') {
      throw new KubedumpError(
        'POD_NOT_FOUND',
        `pod "${ref.name}" not found in namespace "${ref.namespace}"`,
        {
          hint: `list the pods with: kubectl get pods -n ${ref.namespace}`,
        },
      );
    }
    throw e;
  }
}

/** Picks the container as kubectl does: the default-container annotation, else the first. */
export function pickContainer(pod: V1Pod, wanted?: string): ResolvedContainer {
  const names = (pod.spec?.containers ?? []).map((c) => c.name);
  const ref = `${pod.metadata?.namespace}/${pod.metadata?.name}`;
  const chosen =
    wanted || pod.metadata?.annotations?.[DEFAULT_CONTAINER_ANNOTATION] || names[0] || '';
  if (!names.includes(chosen)) {
    throw new KubedumpError(
      'CONTAINER_NOT_FOUND',
      `container "${chosen}" not found in pod ${ref}`,
      {
        hint: `its containers are: ${names.join(', ') || '(none)'}`,
      },
    );
  }
  const status = pod.status?.containerStatuses?.find((s) => s.name === chosen);
  return {
    pod,
    container: chosen,
    containerId: status?.containerID || undefined,
    nodeName: pod.spec?.nodeName || undefined,
    hostNetwork: pod.spec?.hostNetwork === true,
  };
}

/** Fails with a clear line unless the container is running. */
export function requireRunning(target: ResolvedContainer): void {
  const ref = `${target.pod.metadata?.namespace}/${target.pod.metadata?.name}`;
  const phase = target.pod.status?.phase;
  const status = target.pod.status?.containerStatuses?.find((s) => s.name === target.container);
  if (phase !== 'Running' || !status?.state?.running) {
    const waiting = status?.state?.waiting?.reason ?? status?.state?.terminated?.reason;
    throw new KubedumpError(
      'POD_NOT_RUNNING',
      `container ${target.container} of pod ${ref} is not running (phase ${phase ?? 'unknown'}${waiting ? `, ${waiting}` : ''})`,
      { hint: 'wait until it runs: kubectl get pod -w' },
    );
  }
}

/** The node's CPU architecture, or undefined when nodes can't be read. */
export async function nodeArchitecture(
  kc: KubeConfig,
  nodeName: string,
): Promise<string | undefined> {
  const api = kc.makeApiClient(CoreV1Api);
  try {
    const node = await api.readNode({ name: nodeName });
    return node.status?.nodeInfo?.architecture || undefined;
  } catch {
    return undefined; // e.g. RBAC forbids nodes: the caller asks the container instead
  }
}

export async function listRunningPods(
  kc: KubeConfig,
  namespace: string | undefined,
  limit: number,
) {
  const api = kc.makeApiClient(CoreV1Api);
  const fieldSelector = 'status.phase=Running';
  const list = namespace
    ? await api.listNamespacedPod({ namespace, fieldSelector, limit })
    : await api.listPodForAllNamespaces({ fieldSelector, limit });
  return list.items.map((pod) => ({
    namespace: pod.metadata?.namespace ?? '',
    name: pod.metadata?.name ?? '',
    node: pod.spec?.nodeName ?? '',
    containers: (pod.spec?.containers ?? []).map((c) => c.name),
  }));
}

export async function listNamespaces(kc: KubeConfig): Promise<string[]> {
  const api = kc.makeApiClient(CoreV1Api);
  const list = await api.listNamespace({ limit: 500 });
  return list.items.map((ns) => ns.metadata?.name ?? '').filter(Boolean);
}
