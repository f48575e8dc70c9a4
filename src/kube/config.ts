import { delimiter } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { KubedumpError } from '../errors.ts';

export interface ClusterSelection {
  /** A kubeconfig file; default: $KUBECONFIG, then ~/.kube/config, then in-cluster. */
  kubeconfig?: string | undefined;
  /** A context name; default: the kubeconfig's current context. */
  context?: string | undefined;
}

// client-node throws "Duplicate cluster" when two $KUBECONFIG files share a
// name; kubectl merges them with the first file winning. Do as kubectl does.
function loadDefault(): KubeConfig {
  const files = (process.env.KUBECONFIG ?? '').split(delimiter).filter(Boolean);
  const kc = new KubeConfig();
  if (files.length <= 1) {
    kc.loadFromDefault();
    return kc;
  }
  kc.loadFromFile(files[0] as string);
  for (const file of files.slice(1)) {
    const more = new KubeConfig();
    try {
      more.loadFromFile(file);
    } catch {
      continue; // kubectl skips missing files in $KUBECONFIG
    }
    const names = (list: { name: string }[]) => new Set(list.map((x) => x.name));
    const clusters = names(kc.getClusters());
    const users = names(kc.getUsers());
    const contexts = names(kc.getContexts());
    for (const c of more.getClusters()) if (!clusters.has(c.name)) kc.addCluster(c);
    for (const u of more.getUsers()) if (!users.has(u.name)) kc.addUser(u);
    for (const c of more.getContexts()) if (!contexts.has(c.name)) kc.addContext(c);
    if (!kc.getCurrentContext()) kc.setCurrentContext(more.getCurrentContext());
  }
  return kc;
}

export function loadKubeConfig(selection: ClusterSelection = {}): KubeConfig {
  let kc: KubeConfig;
  try {
    if (selection.kubeconfig) {
      kc = new KubeConfig();
      kc.loadFromFile(selection.kubeconfig);
    } else {
      kc = loadDefault();
    }
  } catch (error) {
    const where = selection.kubeconfig ?? process.env.KUBECONFIG ?? '~/.kube/config';
    throw new KubedumpError('KUBECONFIG', `cannot read kubeconfig ${where}`, {
      hint: 'check the file, or pass --kubeconfig',
      cause: error,
    });
  }
  if (selection.context) {
    if (!kc.getContextObject(selection.context)) {
      const known = kc
        .getContexts()
        .map((c) => c.name)
        .join(', ');
      throw new KubedumpError('CONTEXT_NOT_FOUND', `context "${selection.context}" not found`, {
        hint: known ? `known contexts: ${known}` : 'the kubeconfig has no contexts',
      });
    }
    kc.setCurrentContext(selection.context);
  }
  if (!kc.getCurrentCluster()) {
    throw new KubedumpError(
      'NO_CLUSTER',
      'the kubeconfig names no cluster for the current context',
      {
        hint: 'set a context with --context, or check the kubeconfig',
      },
    );
  }
  return kc;
}

/** The namespace of the selected context, as kubectl uses it. */
export function contextNamespace(kc: KubeConfig): string {
  return kc.getContextObject(kc.getCurrentContext())?.namespace || 'default';
}
