import { execFile } from 'node:child_process';
import { homedir } from 'node:os';
import { join } from 'node:path';
import {
  type CaptureRequest,
  combineFilters,
  DEFAULTS,
  PID_LOOKUPS,
  type PidLookup,
} from '../capture/request.ts';
import { KubedumpError } from '../errors.ts';
import { booleanOption } from '../extcap/argv.ts';
import type { CaptureCall, ExtcapProvider } from '../extcap/dispatcher.ts';
import type { Arg, ArgValue, Interface } from '../extcap/sentences.ts';
import { fileLogger, isLevel, LEVELS, type Logger, silentLogger } from '../log.ts';
import { buildGlobalHeader, LINKTYPE_LINUX_SLL } from '../pcap/format.ts';
import { localTcpdumpPath } from '../tcpdump/index.ts';
import { VERSION } from '../version.ts';
import {
  cachePath,
  type DiscoverySettings,
  discover,
  loadSettings,
  podsForInterfaces,
  readSnapshot,
  refreshInBackground,
} from './discovery.ts';

// Wireshark's view of kubedump: interfaces are pods, the options dialog picks
// the cluster, pod and mode, and a capture runs a CaptureSession.

export const GENERIC_INTERFACE = 'kubedump';
const PREFIX = `${GENERIC_INTERFACE}.`;

/** `kubedump.<namespace>.<pod>`: a namespace has no dot, so the first dot splits. */
export function interfaceName(namespace: string, pod: string): string {
  return `${PREFIX}${namespace}.${pod}`;
}

export function parseInterfaceName(iface: string): { namespace: string; pod: string } | undefined {
  if (!iface.startsWith(PREFIX)) return undefined;
  const rest = iface.slice(PREFIX.length);
  const dot = rest.indexOf('.');
  if (dot <= 0 || dot === rest.length - 1) return undefined;
  return { namespace: rest.slice(0, dot), pod: rest.slice(dot + 1) };
}

function defaultLogFile(): string {
  return join(
    process.env.XDG_STATE_HOME || join(homedir(), '.local', 'state'),
    'kubedump',
    'kubedump.log',
  );
}

/** The log the options ask for: none unless a level or a file is given. */
export function loggerFromOptions(options: Map<string, string>): Logger {
  const level = options.get('log-level') || undefined;
  const file = options.get('log-file') || undefined;
  if (!level && !file) return silentLogger;
  if (level && !isLevel(level)) {
    throw new KubedumpError(
      'BAD_INPUT',
      `log level "${level}" is not one of ${LEVELS.join(', ')}`,
      {
        hint: 'pick a log level from the list',
      },
    );
  }
  const path = file ?? defaultLogFile();
  try {
    return fileLogger(path, level && isLevel(level) ? level : 'info');
  } catch (error) {
    const why = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new KubedumpError('LOG_FILE', `cannot open the log file ${path} (${why})`, {
      hint: 'pick a log file in a directory you can write, or leave the log file empty',
      cause: error,
    });
  }
}

/** The longest time limit a timer can hold (2^31-1 ms, about 24.8 days). */
export const MAX_SECONDS = Math.floor((2 ** 31 - 1) / 1000);

/** Fails with a clear line for a time limit Node's timers cannot hold. */
export function checkMaxSeconds(seconds: number, name = 'max-seconds'): number {
  if (seconds > MAX_SECONDS) {
    throw new KubedumpError(
      'BAD_INPUT',
      `--${name} ${seconds} is more than ${MAX_SECONDS} seconds (24 days)`,
      { hint: `give at most ${MAX_SECONDS}, or 0 for no limit` },
    );
  }
  return seconds;
}

function integerOption(options: Map<string, string>, name: string, fallback: number): number {
  const raw = options.get(name);
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d{1,9}$/.test(raw.trim())) {
    throw new KubedumpError('BAD_INPUT', `--${name} "${raw.slice(0, 40)}" is not a whole number`, {
      hint: `give --${name} a number such as 0`,
    });
  }
  return Number(raw.trim());
}

/** Turns the dialog's options (and the interface name) into a capture request. */
export function requestFromOptions(
  iface: string,
  captureFilter: string,
  options: Map<string, string>,
): CaptureRequest {
  const fromName = parseInterfaceName(iface);
  const value = (name: string) => options.get(name) || undefined;
  const pod = fromName?.pod ?? value('pod');
  if (!pod) {
    throw new KubedumpError('BAD_INPUT', 'no pod chosen', {
      hint: 'pick a pod in the interface options, or capture from a kubedump.<namespace>.<pod> interface',
    });
  }
  const mode = value('mode');
  if (mode !== undefined && mode !== 'unprivileged' && mode !== 'privileged') {
    throw new KubedumpError(
      'BAD_INPUT',
      `mode "${mode.slice(0, 40)}" is not unprivileged or privileged`,
      {
        hint: 'pick a capture mode',
      },
    );
  }
  // Wireshark's interfaces come from config.json's cluster: capture there too.
  const settings = loadSettings();
  return {
    kubeconfig: value('kubeconfig') ?? settings.kubeconfig,
    context: value('context') ?? settings.context,
    namespace: fromName?.namespace ?? value('namespace'),
    pod,
    container: value('container'),
    iface: value('remote-interface') ?? DEFAULTS.iface,
    filter: combineFilters([value('filter'), captureFilter]),
    snaplen: integerOption(options, 'snaplen', DEFAULTS.snaplen),
    maxPackets: integerOption(options, 'max-packets', DEFAULTS.maxPackets),
    maxSeconds: checkMaxSeconds(integerOption(options, 'max-seconds', DEFAULTS.maxSeconds)),
    privileged: mode === 'privileged' || booleanOption(options, 'privileged'),
    helperNamespace: value('helper-namespace'),
    helperImage: value('helper-image') ?? DEFAULTS.helperImage,
    keepBinary: booleanOption(options, 'keep-binary'),
    ...privilegedOptions(options),
  };
}

function privilegedOptions(
  options: Map<string, string>,
): Pick<CaptureRequest, 'helperTimeout' | 'runtimeSocket' | 'pidLookup'> {
  const out: Pick<CaptureRequest, 'helperTimeout' | 'runtimeSocket' | 'pidLookup'> = {};
  if (options.get('helper-timeout'))
    out.helperTimeout = integerOption(options, 'helper-timeout', 60);
  if (options.get('runtime-socket')) out.runtimeSocket = options.get('runtime-socket');
  const lookup = options.get('pid-lookup');
  if (lookup) {
    if (!(PID_LOOKUPS as readonly string[]).includes(lookup)) {
      throw new KubedumpError(
        'BAD_INPUT',
        `PID lookup "${lookup.slice(0, 40)}" is not one of ${PID_LOOKUPS.join(', ')}`,
        {
          hint: 'pick a PID lookup',
        },
      );
    }
    out.pidLookup = lookup as PidLookup;
  }
  return out;
}

function selectorValues(current: string | undefined, known: readonly string[]): ArgValue[] {
  const all = [...new Set([...(current ? [current] : []), ...known])];
  return all.map((v) => ({ value: v, display: v, default: v === current }));
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
  return [
    {
      call: 'context',
      display: 'Context',
      type: 'selector',
      tooltip: 'kubeconfig context (default: the current context)',
      reload: true,
      group: 'Target',
      values: selectorValues(context, snapshot?.contexts ?? []),
    },
    {
      call: 'namespace',
      display: 'Namespace',
      type: 'selector',
      tooltip: "the pod's namespace (default: the context's namespace)",
      reload: true,
      group: 'Target',
      values: selectorValues(namespace, []),
    },
    {
      call: 'pod',
      display: 'Pod',
      type: 'selector',
      tooltip: 'the pod to capture (fixed by a kubedump.<namespace>.<pod> interface)',
      reload: true,
      group: 'Target',
      values: selectorValues(fromName?.pod, podNames),
    },
    {
      call: 'container',
      display: 'Container',
      type: 'selector',
      tooltip: 'default: the default-container annotation, else the first container',
      reload: true,
      group: 'Target',
      values: [],
    },
    {
      call: 'remote-interface',
      display: 'Interface in the pod',
      type: 'string',
      default: DEFAULTS.iface,
      tooltip: 'network interface inside the pod, or any',
      group: 'Capture',
    },
    {
      call: 'filter',
      display: 'Capture filter',
      type: 'string',
      tooltip: "BPF filter run by tcpdump in the pod; combined with Wireshark's capture filter",
      placeholder: 'tcp port 80',
      group: 'Capture',
    },
    {
      call: 'mode',
      display: 'Mode',
      type: 'radio',
      tooltip:
        'unprivileged: tcpdump runs in the container; privileged: in a helper pod on its node',
      group: 'Capture',
      values: [
        {
          value: 'unprivileged',
          display: 'Unprivileged (tcpdump in the container)',
          default: true,
        },
        { value: 'privileged', display: 'Privileged (helper pod on the node)' },
      ],
    },
    {
      call: 'snaplen',
      display: 'Snapshot length',
      type: 'unsigned',
      default: '0',
      range: [0, 262144],
      tooltip: 'bytes kept per packet; 0 keeps whole packets',
      group: 'Capture',
    },
    {
      call: 'max-packets',
      display: 'Stop after packets',
      type: 'unsigned',
      default: '0',
      tooltip: '0: no limit',
      group: 'Capture',
    },
    {
      call: 'max-seconds',
      display: 'Stop after seconds',
      type: 'unsigned',
      default: '0',
      tooltip: '0: no limit',
      group: 'Capture',
    },
    {
      call: 'helper-namespace',
      display: 'Helper namespace',
      type: 'string',
      tooltip: "namespace for the privileged helper pod (default: the target's namespace)",
      group: 'Privileged mode',
    },
    {
      call: 'helper-image',
      display: 'Helper image',
      type: 'string',
      default: DEFAULTS.helperImage,
      tooltip: 'image with sh and nsenter for the helper pod',
      group: 'Privileged mode',
    },
    {
      call: 'helper-timeout',
      display: 'Helper start timeout',
      type: 'unsigned',
      default: '60',
      range: [1, 3600],
      tooltip: 'seconds to wait for the helper pod to run',
      group: 'Privileged mode',
    },
    {
      call: 'runtime-socket',
      display: 'Runtime socket',
      type: 'string',
      tooltip: 'container runtime socket on the node (default: probe the known paths)',
      group: 'Privileged mode',
    },
    {
      call: 'pid-lookup',
      display: 'PID lookup',
      type: 'selector',
      tooltip: "how the target's process is found on the node",
      group: 'Privileged mode',
      values: PID_LOOKUPS.map((l) => ({ value: l, display: l, default: l === 'auto' })),
    },
    {
      call: 'kubeconfig',
      display: 'Kubeconfig',
      type: 'fileselect',
      mustExist: true,
      tooltip: 'default: $KUBECONFIG, then ~/.kube/config',
      group: 'Cluster',
    },
    {
      call: 'keep-binary',
      display: 'Keep uploaded tcpdump',
      type: 'boolflag',
      tooltip: 'leave the uploaded tcpdump in the container for the next capture',
      group: 'Debug',
    },
    {
      call: 'log-level',
      display: 'Log level',
      type: 'selector',
      group: 'Debug',
      values: LEVELS.map((l) => ({ value: l, display: l, default: l === 'warn' })),
    },
    {
      call: 'log-file',
      display: 'Log file',
      type: 'fileselect',
      mustExist: false,
      tooltip: `default: ${defaultLogFile()}`,
      group: 'Debug',
    },
  ];
}

/** How long a dialog reload may wait for the cluster: Wireshark's dialog waits with it. */
export const RELOAD_DEADLINE_MS = 5000;

async function reloadWithin(
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
      if (!podName) return [];
      const pod = await kube.getPod(kc, { namespace, name: podName });
      const names = kube.selectableContainers(pod);
      return selectorValues(options.get('container') || kube.pickContainer(pod).container, names);
    }
  }
  return [];
}

/** Compiles the filter with the embedded tcpdump, reading a header-only pcap: no capture, no privileges. */
export async function checkFilter(filter: string): Promise<string | undefined> {
  if (!filter.trim()) return undefined;
  const tcpdump = await localTcpdumpPath();
  return new Promise((resolve) => {
    const child = execFile(
      tcpdump,
      ['-d', '-r', '-', '--', filter],
      { timeout: 5000, maxBuffer: 4 * 1024 * 1024 },
      (error, _stdout, stderr) => {
        if (!error) return resolve(undefined);
        const said = stderr
          .split('\n')
          .filter((l) => l && !l.startsWith('reading from file'))
          .map((l) => l.replace(/^[^:\s]*tcpdump[^:\s]*: /, ''))
          .join(' ');
        resolve(said || 'invalid capture filter');
      },
    );
    child.stdin?.on('error', () => {});
    child.stdin?.end(buildGlobalHeader(LINKTYPE_LINUX_SLL));
  });
}

export interface ProviderDeps {
  capture(request: CaptureRequest, call: CaptureCall, log: Logger): Promise<void>;
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
      const { snapshot, late } = await discover(settings);
      // Never delay the answer: a late listing is finished by a detached child.
      if (late) await refreshInBackground(settings).catch(() => {});
      const generic: Interface = {
        value: GENERIC_INTERFACE,
        display: 'Kubernetes pod (choose in options)',
      };
      const pods = podsForInterfaces(snapshot, settings.maxInterfaces).map((p) => ({
        value: interfaceName(p.namespace, p.name),
        display: p.hostNetwork
          ? `Kubernetes node ${p.node || '?'} (all its traffic: pod ${p.namespace}/${p.name} uses the host network)`
          : `Kubernetes pod ${p.namespace}/${p.name}${p.node ? ` on ${p.node}` : ''}`,
      }));
      return [generic, ...pods];
    },
    dlts: () => [
      { number: LINKTYPE_LINUX_SLL, name: 'LINUX_SLL', display: 'Linux cooked capture' },
    ],
    config: async (iface) => configArgs(iface),
    reload: (iface, option, options) => reloadWithin(iface, option, options),
    checkFilter: (_iface, filter) => checkFilter(filter),
    async capture(call) {
      const log = loggerFromOptions(call.options);
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
  };
}
