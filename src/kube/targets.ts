import {
  AppsV1Api,
  BatchV1Api,
  CoreV1Api,
  type KubeConfig,
  type V1LabelSelector,
  type V1Pod,
} from '@kubernetes/client-node';
import { KubedumpError } from '../errors.ts';
import { apiError } from './api-errors.ts';
import { selectorText, type TargetSpec, type WorkloadResource } from './target-spec.ts';
import { watchUntil } from './watch.ts';

// The pods a target names, from the API server: a workload's selector (or a
// service's endpoints), the running pods, a watch for the ones that start
// later, and the names of the namespace's pods and services by address.

/**
 * How to find the target's pods: a label selector, or fixed names (pod
 * names, a service without a selector through its endpoints).
 */
export type PodQuery = { selector: string } | { names: string[] };

export async function podQuery(
  kc: KubeConfig,
  namespace: string,
  spec: TargetSpec,
): Promise<PodQuery> {
  switch (spec.kind) {
    case 'pods':
      return { names: spec.names };
    case 'selector':
      return { selector: spec.selector };
    case 'all':
      return { selector: '' };
    case 'workload':
      return workloadQuery(kc, namespace, spec.resource, spec.name);
  }
}

async function workloadQuery(
  kc: KubeConfig,
  namespace: string,
  resource: WorkloadResource,
  name: string,
): Promise<PodQuery> {
  const what = `get ${resource} ${namespace}/${name}`;
  try {
    const apps = kc.makeApiClient(AppsV1Api);
    const args = { namespace, name };
    switch (resource) {
      case 'deployment':
        return selected((await apps.readNamespacedDeployment(args)).spec?.selector);
      case 'statefulset':
        return selected((await apps.readNamespacedStatefulSet(args)).spec?.selector);
      case 'daemonset':
        return selected((await apps.readNamespacedDaemonSet(args)).spec?.selector);
      case 'replicaset':
        return selected((await apps.readNamespacedReplicaSet(args)).spec?.selector);
      case 'job':
        return selected(
          (await kc.makeApiClient(BatchV1Api).readNamespacedJob(args)).spec?.selector,
        );
      case 'service': {
        const core = kc.makeApiClient(CoreV1Api);
        const service = await core.readNamespacedService(args);
        const labels = service.spec?.selector;
        if (labels && Object.keys(labels).length) return selected({ matchLabels: labels });
        // A service without a selector: the pods its endpoints name.
        const endpoints = await core.readNamespacedEndpoints(args);
        const names = (endpoints.subsets ?? [])
          .flatMap((s) => s.addresses ?? [])
          .filter((a) => a.targetRef?.kind === 'Pod' && a.targetRef.name)
          .map((a) => a.targetRef?.name as string);
        return { names: [...new Set(names)] };
      }
    }
  } catch (error) {
    const e = apiError(error, what);
    if (e.code === 'NOT_FOUND') {
      throw new KubedumpError(
        'TARGET_NOT_FOUND',
        `${resource} "${name}" not found in namespace "${namespace}"`,
        {
          hint: `list them with: kubectl get ${resource} -n ${namespace}`,
        },
      );
    }
    throw e;
  }
}

function selected(selector: V1LabelSelector | undefined): PodQuery {
  const text = selectorText(selector);
  // An empty selector would select every pod: never what a workload means.
  if (!text) throw new KubedumpError('BAD_INPUT', 'the workload has an empty pod selector');
  return { selector: text };
}

/** The running pods of a query, sorted by name. */
export async function runningPods(
  kc: KubeConfig,
  namespace: string,
  query: PodQuery,
): Promise<V1Pod[]> {
  const api = kc.makeApiClient(CoreV1Api);
  let pods: V1Pod[];
  try {
    const list = await api.listNamespacedPod({
      namespace,
      ...('selector' in query && query.selector && { labelSelector: query.selector }),
    });
    pods = list.items;
  } catch (error) {
    throw apiError(error, `list pods in ${namespace}`);
  }
  if ('names' in query) {
    const wanted = new Set(query.names);
    pods = pods.filter((p) => wanted.has(p.metadata?.name ?? ''));
  }
  return pods
    .filter(isRunning)
    .sort((a, b) => (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? ''));
}

/** Every pod IP and service cluster IP of the namespace, with its name. */
export async function namespaceNames(
  kc: KubeConfig,
  namespace: string,
): Promise<{ address: string; names: string[] }[]> {
  const api = kc.makeApiClient(CoreV1Api);
  const [pods, services] = await Promise.all([
    api.listNamespacedPod({ namespace }).catch(() => ({ items: [] as V1Pod[] })),
    api.listNamespacedService({ namespace }).catch(() => ({ items: [] })),
  ]);
  const byAddress = new Map<string, Set<string>>();
  const add = (address: string | undefined, name: string) => {
    if (!address || address === 'None') return;
    const names = byAddress.get(address) ?? new Set<string>();
    byAddress.set(address, names.add(name));
  };
  for (const pod of pods.items) {
    // Host-network pods share the node's address: that address is not theirs.
    if (pod.spec?.hostNetwork || pod.status?.phase !== 'Running') continue;
    const name = `${pod.metadata?.name}.${namespace}`;
    for (const ip of pod.status?.podIPs ?? []) add(ip.ip, name);
    add(pod.status?.podIP, name);
  }
  for (const service of services.items) {
    const name = `${service.metadata?.name}.${namespace}.svc`;
    for (const ip of service.spec?.clusterIPs ?? []) add(ip, name);
    add(service.spec?.clusterIP, name);
  }
  return [...byAddress].map(([address, names]) => ({ address, names: [...names] }));
}

/** True for a pod that runs and is not going away. */
export function isRunning(pod: V1Pod): boolean {
  return pod.status?.phase === 'Running' && !pod.metadata?.deletionTimestamp;
}

/**
 * Calls `onPod` with every pod of the selector as the server reports it
 * (the ones that exist first, then each change) until `signal` aborts: how
 * pods that appear during a capture (a scale-up, a rollout) are found.
 */
export function watchPods(
  kc: KubeConfig,
  namespace: string,
  selector: string,
  onPod: (pod: V1Pod) => void,
  onError: (error: unknown) => void,
  signal: AbortSignal,
): void {
  const path = `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods`;
  watchUntil(
    kc,
    path,
    { ...(selector && { labelSelector: selector }) },
    (type, pod) => {
      if (type === 'ADDED' || type === 'MODIFIED') onPod(pod as V1Pod);
    },
    onError,
    signal,
  );
}
