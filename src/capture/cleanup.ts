import { KubedumpError } from '../errors.ts';
import { contextNamespace, loadKubeConfig } from '../kube/config.ts';
import { deletePodAndWait, listPodsByLabel } from '../kube/helper-pod.ts';
import { HELPER_SELECTOR } from './helper-spec.ts';

// `kubedump cleanup [--all-namespaces]`: deletes every kubedump helper pod,
// stale or not, and waits until each is gone.

export interface CleanupOptions {
  kubeconfig?: string | undefined;
  context?: string | undefined;
  namespace?: string | undefined;
  allNamespaces: boolean;
  print(line: string): void;
}

export async function cleanupCommand(options: CleanupOptions): Promise<number> {
  const kc = loadKubeConfig({ kubeconfig: options.kubeconfig, context: options.context });
  const namespace = options.allNamespaces ? undefined : options.namespace || contextNamespace(kc);
  const pods = await listPodsByLabel(kc, namespace, HELPER_SELECTOR);
  const failures: string[] = [];
  await Promise.all(
    pods.map(async (pod) => {
      const ref = { namespace: pod.metadata?.namespace ?? '', name: pod.metadata?.name ?? '' };
      try {
        const gone = await deletePodAndWait(kc, ref, 30_000);
        options.print(`${gone ? 'deleted' : 'deleting'} pod ${ref.namespace}/${ref.name}`);
      } catch (error) {
        failures.push(error instanceof KubedumpError ? error.message : String(error));
      }
    }),
  );
  if (failures.length) {
    throw new KubedumpError('CLEANUP_FAILED', failures.join('; '), {
      hint: 'delete them with kubectl delete pod -l app.kubernetes.io/managed-by=kubedump',
    });
  }
  const where = namespace ? `namespace ${namespace}` : 'any namespace';
  if (!pods.length) options.print(`no kubedump helper pods in ${where}`);
  return 0;
}
