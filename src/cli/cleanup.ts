import { sweepAbandoned } from '../capture/privileged.ts';
import { contextNamespace, loadKubeConfig } from '../kube/config.ts';
import { type Logger, silentLogger } from '../log.ts';

// `kubedump cleanup [--all-namespaces]`: deletes the helper pods that serve
// no capture any more (ended, or never started). A running helper belongs to
// a live capture, perhaps another user's: it is kept, and ends by itself
// within a minute of its capture.

export interface CleanupOptions {
  kubeconfig?: string | undefined;
  context?: string | undefined;
  namespace?: string | undefined;
  allNamespaces: boolean;
  log?: Logger;
  print(line: string): void;
}

export async function cleanupCommand(options: CleanupOptions): Promise<number> {
  const kc = loadKubeConfig({ kubeconfig: options.kubeconfig, context: options.context });
  const namespace = options.allNamespaces ? undefined : options.namespace || contextNamespace(kc);
  const { deleted, live } = await sweepAbandoned(
    kc,
    namespace,
    options.log ?? silentLogger,
    options.print,
  );
  const where = namespace ? `namespace ${namespace}` : 'any namespace';
  if (!deleted) options.print(`no abandoned kubedump helper pods in ${where}`);
  if (live) {
    options.print(
      `kept ${live} running helper pod${live === 1 ? '' : 's'}: ${live === 1 ? 'its capture is' : 'their captures are'} alive (a helper ends by itself within a minute of its capture)`,
    );
  }
  return 0;
}
