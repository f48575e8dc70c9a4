import {
  captureRequest,
  OPTIONS,
  type OptionRow,
  rawFromDialog,
  readFlag,
} from '../capture/options.ts';
import type { CaptureRequest } from '../capture/request.ts';
import { KubedumpError } from '../errors.ts';
import type { Arg, ArgValue } from '../extcap/sentences.ts';
import { cachePath, type DiscoverySettings, loadSettings, readSnapshot } from './discovery.ts';
import { parseInterfaceName } from './interfaces.ts';

// The options dialog, rendered from the options table; the selectors that
// depend on the cluster (context, namespace, pod, container) are filled from
// the discovery cache and refreshed on reload.

function selectorValues(current: string | undefined, known: readonly string[]): ArgValue[] {
  const all = [...new Set([...(current ? [current] : []), ...known])];
  return all.map((v) => ({ value: v, display: v, default: v === current }));
}

/** One row as a dialog argument; `values` fills a cluster-dependent selector. */
function dialogArg(row: OptionRow, values: ArgValue[] | undefined): Arg {
  const d = row.dialog;
  const arg: Arg = { call: d.call, display: d.display, type: d.type };
  if (d.tooltip !== undefined)
    arg.tooltip = typeof d.tooltip === 'function' ? d.tooltip() : d.tooltip;
  if (d.placeholder !== undefined) arg.placeholder = d.placeholder;
  const shownDefault = d.type === 'string' || d.type === 'unsigned' ? row.default : undefined;
  if (shownDefault !== undefined && shownDefault !== '') arg.default = String(shownDefault);
  if (d.range) arg.range = [d.range[0], d.range[1]];
  if (d.mustExist !== undefined) arg.mustExist = d.mustExist;
  if (d.reload) arg.reload = true;
  arg.group = row.group;
  if (d.values) {
    arg.values = d.values.map((v) => ({
      value: v.value,
      display: v.display,
      ...(v.means === row.default && { default: true }),
    }));
  } else if (row.choices) {
    const preselected = d.preselect ?? row.default;
    arg.values = row.choices.map((c) => ({ value: c, display: c, default: c === preselected }));
  } else if (d.type === 'selector') {
    arg.values = values ?? [];
  }
  return arg;
}

/** The options dialog. Cluster-dependent selectors are filled on reload. */
export function configArgs(iface: string): Arg[] {
  const settings = loadSettings();
  const snapshot = readSnapshot(cachePath(settings));
  const fromName = parseInterfaceName(iface);
  const context = settings.context ?? snapshot?.context;
  const pods = snapshot?.pods ?? [];
  const namespace = fromName?.namespace ?? pods[0]?.namespace;
  const podNames = pods.filter((p) => p.namespace === namespace).map((p) => p.name);
  const known: Partial<Record<OptionRow['key'], ArgValue[]>> = {
    context: selectorValues(context, snapshot?.contexts ?? []),
    namespace: selectorValues(namespace, []),
    pod: selectorValues(fromName?.pod, podNames),
  };
  return OPTIONS.map((row) => dialogArg(row, known[row.key]));
}

/** Turns the dialog's options (and the interface name) into a capture request. */
export function requestFromOptions(
  iface: string,
  captureFilter: string,
  options: ReadonlyMap<string, string>,
): CaptureRequest {
  const fromName = parseInterfaceName(iface);
  const raw = rawFromDialog(options);
  if (fromName) {
    raw.namespace = fromName.namespace;
    raw.pod = fromName.pod;
  }
  // A selector or "all pods" in the dialog stands instead of the interface's pod.
  if (raw.selector || (raw.allPods && readFlag(raw.allPods))) raw.pod = undefined;
  if (!raw.pod && !raw.selector && !raw.allPods) {
    throw new KubedumpError('BAD_INPUT', 'no pod chosen', {
      hint: 'pick a pod in the interface options, or capture from a kubedump.<namespace>.<pod> interface',
    });
  }
  // Wireshark's interfaces come from config.json's cluster: capture there too.
  const settings = loadSettings();
  raw.kubeconfig ||= settings.kubeconfig;
  raw.context ||= settings.context;
  return captureRequest(raw, 'dialog', [captureFilter]);
}

/** How long a dialog reload may wait for the cluster: Wireshark's dialog waits with it. */
export const RELOAD_DEADLINE_MS = 5000;

export async function reloadWithin(
  iface: string,
  option: string,
  options: Map<string, string>,
  settings: DiscoverySettings = loadSettings(),
  deadlineMs = RELOAD_DEADLINE_MS,
): Promise<ArgValue[]> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(
        new KubedumpError(
          'CLUSTER_UNREACHABLE',
          `the cluster did not answer within ${deadlineMs / 1000} s`,
          { hint: 'check the network and the kubeconfig context, or type the value' },
        ),
      );
    }, deadlineMs);
  });
  try {
    return await Promise.race([reloadValues(iface, option, options, settings), deadline]);
  } finally {
    clearTimeout(timer);
  }
}

async function reloadValues(
  iface: string,
  option: string,
  options: Map<string, string>,
  settings: DiscoverySettings,
): Promise<ArgValue[]> {
  const { loadKubeConfig, contextNamespace } = await import('../kube/config.ts');
  const kube = await import('../kube/pods.ts');
  const fromName = parseInterfaceName(iface);
  const kc = loadKubeConfig({
    kubeconfig: options.get('kubeconfig') || settings.kubeconfig,
    context: options.get('context') || settings.context,
  });
  const namespace = fromName?.namespace ?? (options.get('namespace') || contextNamespace(kc));
  switch (option) {
    case 'context':
      return selectorValues(
        kc.getCurrentContext(),
        kc.getContexts().map((c) => c.name),
      );
    case 'namespace':
      return selectorValues(namespace, await kube.listNamespaces(kc).catch(() => []));
    case 'pod': {
      const pods = await kube.listRunningPods(kc, namespace, 500);
      return selectorValues(
        fromName?.pod ?? options.get('pod'),
        pods.map((p) => p.name),
      );
    }
    case 'container': {
      const podName = fromName?.pod ?? options.get('pod');
      // A workload's pods may differ: their own default containers apply.
      if (!podName || podName.includes('/') || podName.includes(',')) return [];
      const pod = await kube.getPod(kc, { namespace, name: podName });
      const names = kube.selectableContainers(pod);
      return selectorValues(options.get('container') || kube.pickContainer(pod).container, names);
    }
  }
  return [];
}
