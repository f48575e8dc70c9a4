import { logSettings, rawFromDialog } from '../capture/options.ts';
import type { CaptureRequest } from '../capture/request.ts';
import type { CaptureCall, ExtcapProvider } from '../extcap/dispatcher.ts';
import type { Interface } from '../extcap/sentences.ts';
import { type Logger, openLog } from '../log.ts';
import { LINKTYPE_LINUX_SLL } from '../pcap/format.ts';
import { VERSION } from '../version.ts';
import { configArgs, reloadWithin, requestFromOptions } from './dialog.ts';
import { discover, loadSettings, podsForInterfaces, refreshInBackground } from './discovery.ts';
import { checkFilter } from './filter-check.ts';
import { GENERIC_INTERFACE, interfaceName } from './interfaces.ts';

// Wireshark's view of kubedump: interfaces are pods, the options dialog picks
// the cluster, pod and mode, and a capture runs a capture session.

export interface ProviderDeps {
  capture(request: CaptureRequest, call: CaptureCall, log: Logger): Promise<void>;
  cleanupAfterKill(iface: string, log: Logger): Promise<void>;
}

export function kubedumpProvider(deps: ProviderDeps): ExtcapProvider {
  return {
    info: {
      version: VERSION,
      help: 'kubedump --help',
      display: 'Kubernetes pod capture',
    },
    async interfaces(): Promise<Interface[]> {
      const settings = loadSettings();
      const generic: Interface = {
        value: GENERIC_INTERFACE,
        display: 'Kubernetes pod (choose in options)',
      };
      // The generic interface alone asks nothing of the cluster.
      if (settings.list === 'generic') return [generic];
      const { snapshot, late } = await discover(settings);
      // Never delay the answer: a late listing is finished by a detached child.
      if (late) await refreshInBackground(settings).catch(() => {});
      const pods = podsForInterfaces(snapshot, settings.maxInterfaces).map((p) => ({
        value: interfaceName(p.namespace, p.name),
        display: p.hostNetwork
          ? `Kubernetes node ${p.node || '?'} (all its traffic: pod ${p.namespace}/${p.name} uses the host network)`
          : `Kubernetes pod ${p.namespace}/${p.name}${p.node ? ` on ${p.node}` : ''}`,
      }));
      // Each workload of the listed pods: all its pods as one capture.
      const workloads = new Map<string, { namespace: string; workload: string; pods: number }>();
      for (const p of podsForInterfaces(snapshot, settings.maxInterfaces)) {
        if (!p.workload) continue;
        const key = `${p.namespace}/${p.workload}`;
        const seen = workloads.get(key) ?? {
          namespace: p.namespace,
          workload: p.workload,
          pods: 0,
        };
        seen.pods++;
        workloads.set(key, seen);
      }
      const groups = [...workloads.values()].map((w) => ({
        value: interfaceName(w.namespace, w.workload),
        display: `Kubernetes ${w.workload.replace('/', ` ${w.namespace}/`)} (${w.pods} pod${w.pods === 1 ? '' : 's'})`,
      }));
      return settings.list === 'workloads' ? [generic, ...groups] : [generic, ...pods, ...groups];
    },
    dlts: () => [
      { number: LINKTYPE_LINUX_SLL, name: 'LINUX_SLL', display: 'Linux cooked capture' },
    ],
    config: async (iface) => configArgs(iface),
    reload: (iface, option, options) => reloadWithin(iface, option, options),
    checkFilter: (_iface, filter) => checkFilter(filter),
    async capture(call) {
      const log = openLog(logSettings(rawFromDialog(call.options), 'dialog'));
      try {
        const request = requestFromOptions(call.iface, call.captureFilter, call.options);
        await deps.capture(request, call, log);
      } catch (error) {
        log.error('capture failed', { error });
        throw error;
      } finally {
        log.close();
      }
    },
    async cleanupAfterKill(iface, options) {
      const log = openLog(logSettings(rawFromDialog(options), 'dialog'));
      try {
        await deps.cleanupAfterKill(iface, log);
      } catch (error) {
        // Best effort: what is left still ends by itself within a minute.
        log.warn('cleanup after a kill failed', { error });
      } finally {
        log.close();
      }
    },
  };
}
