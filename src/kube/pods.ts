import type {
  KubeConfig,
  V1NamespaceList,
  V1Node,
  V1Pod,
  V1PodList,
} from '@kubernetes/client-node';
import { KubedumpError } from '../errors.ts';
import { apiError } from './api-errors.ts';
import { apiJson } from './api-json.ts';

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
  /** Things the user should know, e.g. a default-container annotation that names no container. */
  warnings: string[];
}

const DEFAULT_CONTAINER_ANNOTATION = 'kubectl.kubernetes.io/default-container';

/** Reads the pod (over node:https: the first request of every capture). */
export async function getPod(kc: KubeConfig, ref: PodRef): Promise<V1Pod> {
  const what = `get pod ${ref.namespace}/${ref.name}`;
  const path = `/api/v1/namespaces/${encodeURIComponent(ref.namespace)}/pods/${encodeURIComponent(ref.name)}`;
  try {
    return await getJson<V1Pod>(kc, path, what);
  } catch (error) {
    if ((error as KubedumpError).code !== 'NOT_FOUND') throw error;
    throw new KubedumpError(
      'POD_NOT_FOUND',
      `pod "${ref.name}" not found in namespace "${ref.namespace}"`,
      { hint: `list the pods with: kubectl get pods -n ${ref.namespace}` },
    );
  }
}

/**
 * The containers one can capture: the regular ones, then native sidecars
 * (init containers with `restartPolicy: Always`, which run beside them).
 */
export function selectableContainers(pod: V1Pod): string[] {
  const sidecars = (pod.spec?.initContainers ?? []).filter((c) => c.restartPolicy === 'Always');
  return [...(pod.spec?.containers ?? []), ...sidecars].map((c) => c.name);
}

function containerStatus(pod: V1Pod, name: string) {
  return (
    pod.status?.containerStatuses?.find((s) => s.name === name) ??
    pod.status?.initContainerStatuses?.find((s) => s.name === name)
  );
}

/**
 * Picks the container as kubectl does: the one asked for, else the
 * default-container annotation, else the first. An annotation naming no
 * container falls back to the first, with a warning, as kubectl does.
 */
export function pickContainer(pod: V1Pod, wanted?: string): ResolvedContainer {
  const names = selectableContainers(pod);
  const ref = `${pod.metadata?.namespace}/${pod.metadata?.name}`;
  const annotated = pod.metadata?.annotations?.[DEFAULT_CONTAINER_ANNOTATION] || undefined;
  const warnings: string[] = [];
  let chosen = wanted || annotated || names[0] || '';
  if (!wanted && annotated && !names.includes(annotated)) {
    chosen = names[0] ?? '';
    warnings.push(
      `default container "${annotated}" named by the ${DEFAULT_CONTAINER_ANNOTATION} annotation of pod ${ref} does not exist; using "${chosen}"`,
    );
  }
  if (!names.includes(chosen)) {
    throw new KubedumpError(
      'CONTAINER_NOT_FOUND',
      `container "${chosen}" not found in pod ${ref}`,
      {
        hint: `its containers are: ${names.join(', ') || '(none)'}`,
      },
    );
  }
  const status = containerStatus(pod, chosen);
  return {
    pod,
    container: chosen,
    containerId: status?.containerID || undefined,
    nodeName: pod.spec?.nodeName || undefined,
    hostNetwork: pod.spec?.hostNetwork === true,
    warnings,
  };
}

/** The line that says a host-network pod's capture is its node's traffic. */
export function hostNetworkNotice(target: ResolvedContainer): string | undefined {
  if (!target.hostNetwork) return undefined;
  const ref = `${target.pod.metadata?.namespace}/${target.pod.metadata?.name}`;
  const node = target.nodeName ? `node ${target.nodeName}` : 'its node';
  return `pod ${ref} uses the host network: this capture holds all of ${node}'s traffic, not only the pod's`;
}

/** Fails with a clear line unless the container is running. */
export function requireRunning(target: ResolvedContainer): void {
  const ref = `${target.pod.metadata?.namespace}/${target.pod.metadata?.name}`;
  const phase = target.pod.status?.phase;
  const status = containerStatus(target.pod, target.container);
  if (phase !== 'Running' || !status?.state?.running) {
    const waiting = status?.state?.waiting?.reason ?? status?.state?.terminated?.reason;
    throw new KubedumpError(
      'POD_NOT_RUNNING',
      `container ${target.container} of pod ${ref} is not running (phase ${phase ?? 'unknown'}${waiting ? `, ${waiting}` : ''})`,
      { hint: 'wait until it runs: kubectl get pod -w' },
    );
  }
}

// One read of a node per client and name: the OS check and the architecture
// lookup share it.
const nodeReads = new WeakMap<KubeConfig, Map<string, Promise<V1Node | undefined>>>();

function readNodeOnce(kc: KubeConfig, nodeName: string): Promise<V1Node | undefined> {
  let reads = nodeReads.get(kc);
  if (!reads) {
    reads = new Map();
    nodeReads.set(kc, reads);
  }
  let read = reads.get(nodeName);
  if (!read) {
    read = apiJson(kc, 'GET', `/api/v1/nodes/${encodeURIComponent(nodeName)}`).then(
      // e.g. RBAC forbids nodes: callers fall back to what the pod says
      (reply) => (reply.status < 300 ? (reply.body as V1Node) : undefined),
      () => undefined,
    );
    reads.set(nodeName, read);
  }
  return read;
}

/**
 * Fails at once for a pod on a Windows node (the pod's `spec.os.name`, else
 * the node's `kubernetes.io/os` label when nodes can be read): tcpdump, sh
 * and the helper pod are Linux-only.
 */
export async function requireLinux(kc: KubeConfig, target: ResolvedContainer): Promise<void> {
  const ref = `${target.pod.metadata?.namespace}/${target.pod.metadata?.name}`;
  let os = target.pod.spec?.os?.name;
  let where = `pod ${ref} is a Windows pod`;
  if (!os && target.nodeName) {
    const node = await readNodeOnce(kc, target.nodeName);
    os = node?.metadata?.labels?.['kubernetes.io/os'] ?? node?.status?.nodeInfo?.operatingSystem;
    where = `pod ${ref} runs on Windows node ${target.nodeName}`;
  }
  if (os?.toLowerCase() === 'windows') {
    throw new KubedumpError('WINDOWS_NODE', `${where}: kubedump captures on Linux nodes only`, {
      hint: 'capture a pod on a Linux node, or capture on the Windows node with pktmon',
    });
  }
}

/** The node's OS and CPU architecture, or undefined when nodes can't be read. */
export async function nodeFacts(
  kc: KubeConfig,
  nodeName: string,
): Promise<{ os: string | undefined; arch: string | undefined } | undefined> {
  const node = await readNodeOnce(kc, nodeName);
  if (!node) return undefined;
  return {
    os: node.metadata?.labels?.['kubernetes.io/os'] ?? node.status?.nodeInfo?.operatingSystem,
    arch: node.status?.nodeInfo?.architecture || undefined,
  };
}

/** The node's CPU architecture, or undefined when nodes can't be read. */
export async function nodeArchitecture(
  kc: KubeConfig,
  nodeName: string,
): Promise<string | undefined> {
  // undefined when nodes can't be read: the caller asks the container instead
  const node = await readNodeOnce(kc, nodeName);
  return node?.status?.nodeInfo?.architecture || undefined;
}

export async function listRunningPods(
  kc: KubeConfig,
  namespace: string | undefined,
  limit: number,
) {
  const query = new URLSearchParams({
    fieldSelector: 'status.phase=Running',
    limit: String(limit),
  });
  const path = namespace
    ? `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods?${query}`
    : `/api/v1/pods?${query}`;
  const list = await getJson<V1PodList>(
    kc,
    path,
    namespace ? `list pods in namespace ${namespace}` : 'list pods',
  );
  return list.items.map((pod) => ({
    namespace: pod.metadata?.namespace ?? '',
    name: pod.metadata?.name ?? '',
    node: pod.spec?.nodeName ?? '',
    hostNetwork: pod.spec?.hostNetwork === true,
    containers: selectableContainers(pod),
    workload: workloadOf(pod),
  }));
}

export async function listNamespaces(kc: KubeConfig): Promise<string[]> {
  const list = await getJson<V1NamespaceList>(
    kc,
    '/api/v1/namespaces?limit=500',
    'list namespaces',
  );
  return list.items.map((ns) => ns.metadata?.name ?? '').filter(Boolean);
}

/**
 * A GET whose answer is read as JSON, not through the client's serializer:
 * for thousands of pods that walk cost more than the request.
 */
async function getJson<T>(kc: KubeConfig, path: string, what: string): Promise<T> {
  const reply = await apiJson(kc, 'GET', path, { what });
  if (reply.status >= 300) throw apiError({ code: reply.status, body: reply.body }, what);
  return reply.body as T;
}

/**
 * The workload that owns a pod, as kubectl spells it (`deploy/web`,
 * `sts/db`, `ds/agent`, `job/backup`, `rs/x`), from its owner reference
 * alone: a Deployment's ReplicaSet is named `<deployment>-<pod-template-hash>`.
 */
export function workloadOf(pod: V1Pod): string | undefined {
  const owner =
    pod.metadata?.ownerReferences?.find((o) => o.controller) ?? pod.metadata?.ownerReferences?.[0];
  if (!owner?.name) return undefined;
  switch (owner.kind) {
    case 'ReplicaSet': {
      const hash = pod.metadata?.labels?.['pod-template-hash'];
      return hash && owner.name.endsWith(`-${hash}`)
        ? `deploy/${owner.name.slice(0, -hash.length - 1)}`
        : `rs/${owner.name}`;
    }
    case 'StatefulSet':
      return `sts/${owner.name}`;
    case 'DaemonSet':
      return `ds/${owner.name}`;
    case 'Job':
      return `job/${owner.name}`;
  }
  return undefined;
}
