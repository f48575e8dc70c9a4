import { KubedumpError } from '../errors.ts';
import type { ArgType } from '../extcap/sentences.ts';
import { parseTarget, targetTextProblem } from '../kube/target-spec.ts';
import { defaultLogFile, LEVELS, type Level } from '../log.ts';
import {
  CAPTURE_FORMATS,
  CAPTURE_MODES,
  type CaptureRequest,
  combineFilters,
  PID_LOOKUPS,
} from './request.ts';

// Every capture option, once: its type, default, limits and help, the request
// field it fills, and how the CLI (`kubedump capture`) and Wireshark's dialog
// (`--extcap-config`) spell it. The yargs options, the dialog and the parser
// of either argv are generated from these rows; adding an option is one row.

/** What an option fills: a request field, or a setting of the log. */
export type OptionKey = keyof CaptureRequest | 'logLevel' | 'logFile';

export type OptionValue = string | number | boolean;

export interface OptionRow {
  key: OptionKey;
  /** text: free or checked text; count: a whole number; flag: on/off; choice: one of `choices`. */
  kind: 'text' | 'count' | 'flag' | 'choice';
  default?: OptionValue;
  /** Counts: the accepted range, inclusive (default: 0 and up). */
  range?: readonly [number, number];
  /** Said after the upper bound when a count is too large. */
  rangeNote?: { unit: string; hint: string };
  choices?: readonly string[];
  /** A value that must be given (the pod). */
  required?: boolean;
  /** Names the option in messages: `pod name "X" is not valid`. */
  label: string;
  /** Checked text: the rule the value breaks, or undefined when it is good. */
  check?: (value: string) => string | undefined;
  group: 'Target' | 'Capture' | 'Privileged mode' | 'Cluster' | 'Debug';
  /** The CLI's description. */
  help?: string;
  cli: { flag: string; alias?: string; positional?: boolean };
  dialog: {
    call: string;
    display: string;
    type: ArgType;
    tooltip?: string | (() => string);
    reload?: boolean;
    placeholder?: string;
    mustExist?: boolean;
    /** Shown to Wireshark only (tcpdump caps larger snaplens itself). */
    range?: readonly [number, number];
    /** The dialog's preselected choice when it differs from `default`. */
    preselect?: string;
    /** A radio whose values stand for other values of the option. */
    values?: readonly { value: string; display: string; means: OptionValue }[];
  };
  /** A boolean flag both faces accept instead of a value (`-p` for `--mode privileged`). */
  shorthand?: { flag: string; alias?: string; means: OptionValue };
}

export const DEFAULT_HELPER_IMAGE = 'docker.io/library/busybox:1.36';

/** The longest time limit a timer can hold (2^31-1 ms, about 24.8 days). */
export const MAX_SECONDS = Math.floor((2 ** 31 - 1) / 1000);

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const dnsLabel = (v: string) =>
  v.length > 63 || !DNS_LABEL.test(v) ? 'lowercase letters, digits and "-", at most 63' : undefined;

/** In the dialog's order: Wireshark numbers the arguments by it. */
export const OPTIONS: readonly OptionRow[] = [
  {
    key: 'context',
    kind: 'text',
    label: 'context',
    group: 'Target',
    help: 'kubeconfig context',
    cli: { flag: 'context' },
    dialog: {
      call: 'context',
      display: 'Context',
      type: 'selector',
      tooltip: 'kubeconfig context (default: the current context)',
      reload: true,
    },
  },
  {
    key: 'namespace',
    kind: 'text',
    label: 'namespace',
    check: dnsLabel,
    group: 'Target',
    help: "pod namespace (default: the context's)",
    cli: { flag: 'namespace', alias: 'n' },
    dialog: {
      call: 'namespace',
      display: 'Namespace',
      type: 'selector',
      tooltip: "the pod's namespace (default: the context's namespace)",
      reload: true,
    },
  },
  {
    key: 'pod',
    kind: 'text',
    label: 'pod name',
    check: targetTextProblem,
    group: 'Target',
    help: 'pod name, several joined by ",", or deploy/NAME, sts/, ds/, rs/, job/, svc/NAME',
    cli: { flag: 'pod', positional: true },
    dialog: {
      call: 'pod',
      display: 'Pod',
      type: 'selector',
      tooltip:
        'the pod to capture (fixed by a kubedump.<namespace>.<pod> interface); also deploy/NAME, svc/NAME, ...',
      reload: true,
    },
  },
  {
    key: 'container',
    kind: 'text',
    label: 'container name',
    check: dnsLabel,
    group: 'Target',
    help: 'container (default: the default container)',
    cli: { flag: 'container', alias: 'c' },
    dialog: {
      call: 'container',
      display: 'Container',
      type: 'selector',
      tooltip: 'default: the default-container annotation, else the first container',
      reload: true,
    },
  },
  {
    key: 'selector',
    kind: 'text',
    label: 'label selector',
    check: (v) =>
      v.length > 1024 || !/^[A-Za-z0-9_./=!,() -]+$/.test(v)
        ? 'a label selector such as app=web,tier!=db'
        : undefined,
    group: 'Target',
    help: 'capture every running pod these labels select',
    cli: { flag: 'selector', alias: 'l' },
    dialog: {
      call: 'selector',
      display: 'Label selector',
      type: 'string',
      tooltip: 'capture every running pod these labels select (instead of one pod)',
      placeholder: 'app=web',
    },
  },
  {
    key: 'allPods',
    kind: 'flag',
    default: false,
    label: 'all pods',
    group: 'Target',
    help: 'capture every running pod of the namespace',
    cli: { flag: 'all' },
    dialog: {
      call: 'all-pods',
      display: 'All pods of the namespace',
      type: 'boolflag',
      tooltip: 'capture every running pod of the namespace (instead of one pod)',
    },
  },
  {
    key: 'maxPods',
    kind: 'count',
    default: 32,
    range: [1, 1000],
    label: 'pod limit',
    group: 'Target',
    help: 'capture at most N pods of a selector or workload',
    cli: { flag: 'max-pods' },
    dialog: {
      call: 'max-pods',
      display: 'At most pods',
      type: 'unsigned',
      tooltip: 'a selector or workload with more running pods is captured in its first N pods',
      range: [1, 1000],
    },
  },
  {
    key: 'iface',
    kind: 'text',
    default: 'any',
    label: 'interface',
    check: (v) =>
      /^[A-Za-z0-9_.:@-]{1,64}$/.test(v) ? undefined : 'an interface name such as eth0, or any',
    group: 'Capture',
    help: 'interface inside the pod',
    cli: { flag: 'interface', alias: 'i' },
    dialog: {
      call: 'remote-interface',
      display: 'Interface in the pod',
      type: 'string',
      tooltip: 'network interface inside the pod, or any',
    },
  },
  {
    key: 'filter',
    kind: 'text',
    default: '',
    label: 'capture filter',
    check: (v) => (v.length > 8192 ? 'too long' : undefined),
    group: 'Capture',
    help: 'BPF capture filter',
    cli: { flag: 'filter', alias: 'f' },
    dialog: {
      call: 'filter',
      display: 'Capture filter',
      type: 'string',
      tooltip: "BPF filter run by tcpdump in the pod; combined with Wireshark's capture filter",
      placeholder: 'tcp port 80',
    },
  },
  {
    key: 'mode',
    kind: 'choice',
    choices: CAPTURE_MODES,
    default: 'auto',
    label: 'mode',
    group: 'Capture',
    help: 'where tcpdump runs: in the container, in an ephemeral container of the pod, or in a helper pod on the node; auto: the first of these that can (see kubedump doctor)',
    cli: { flag: 'mode', alias: 'm' },
    shorthand: { flag: 'privileged', alias: 'p', means: 'privileged' },
    dialog: {
      call: 'mode',
      display: 'Mode',
      type: 'radio',
      tooltip:
        'auto: the cheapest way that works for the pod (checked first); unprivileged: tcpdump runs in the container; ephemeral: in an ephemeral container of the pod; privileged: in a helper pod on its node',
      values: [
        { value: 'auto', display: 'Auto (default)', means: 'auto' },
        {
          value: 'unprivileged',
          display: 'Unprivileged (tcpdump in the container)',
          means: 'unprivileged',
        },
        {
          value: 'ephemeral',
          display: 'Ephemeral (a debug container in the pod)',
          means: 'ephemeral',
        },
        {
          value: 'privileged',
          display: 'Privileged (helper pod on the node)',
          means: 'privileged',
        },
      ],
    },
  },
  {
    key: 'format',
    kind: 'choice',
    choices: CAPTURE_FORMATS,
    default: 'auto',
    label: 'format',
    group: 'Capture',
    help: 'pcap or pcapng; auto: pcapng when the target can be several pods',
    cli: { flag: 'format' },
    dialog: {
      call: 'format',
      display: 'Format',
      type: 'selector',
      tooltip: 'pcapng names each pod as an interface; auto: pcapng for several pods',
    },
  },
  {
    key: 'snaplen',
    kind: 'count',
    default: 0,
    label: 'snaplen',
    group: 'Capture',
    help: 'bytes per packet, 0 = whole',
    cli: { flag: 'snaplen', alias: 's' },
    dialog: {
      call: 'snaplen',
      display: 'Snapshot length',
      type: 'unsigned',
      tooltip: 'bytes kept per packet; 0 keeps whole packets',
      range: [0, 262144],
    },
  },
  {
    key: 'maxPackets',
    kind: 'count',
    default: 0,
    label: 'packet limit',
    group: 'Capture',
    help: 'stop after N packets',
    cli: { flag: 'max-packets' },
    dialog: {
      call: 'max-packets',
      display: 'Stop after packets',
      type: 'unsigned',
      tooltip: '0: no limit',
    },
  },
  {
    key: 'maxSeconds',
    kind: 'count',
    default: 0,
    range: [0, MAX_SECONDS],
    rangeNote: {
      unit: 'seconds (24 days)',
      hint: `give at most ${MAX_SECONDS}, or 0 for no limit`,
    },
    label: 'time limit',
    group: 'Capture',
    help: 'stop after N seconds',
    cli: { flag: 'max-seconds' },
    dialog: {
      call: 'max-seconds',
      display: 'Stop after seconds',
      type: 'unsigned',
      tooltip: '0: no limit',
    },
  },
  {
    key: 'helperNamespace',
    kind: 'text',
    label: 'helper namespace',
    check: dnsLabel,
    group: 'Privileged mode',
    help: "helper pod namespace (default: the target's)",
    cli: { flag: 'helper-namespace' },
    dialog: {
      call: 'helper-namespace',
      display: 'Helper namespace',
      type: 'string',
      tooltip: "namespace for the privileged helper pod (default: the target's namespace)",
    },
  },
  {
    key: 'helperImage',
    kind: 'text',
    default: DEFAULT_HELPER_IMAGE,
    label: 'helper image',
    group: 'Privileged mode',
    help: 'helper pod image (sh, nsenter)',
    cli: { flag: 'helper-image' },
    dialog: {
      call: 'helper-image',
      display: 'Helper image',
      type: 'string',
      tooltip: 'image with sh and nsenter for the helper pod',
    },
  },
  {
    key: 'helperTimeout',
    kind: 'count',
    default: 60,
    range: [1, 3600],
    label: 'helper timeout',
    group: 'Privileged mode',
    help: 'seconds to wait for the helper pod to run',
    cli: { flag: 'helper-timeout' },
    dialog: {
      call: 'helper-timeout',
      display: 'Helper start timeout',
      type: 'unsigned',
      tooltip: 'seconds to wait for the helper pod to run',
      range: [1, 3600],
    },
  },
  {
    key: 'runtimeSocket',
    kind: 'text',
    label: 'runtime socket',
    check: (v) =>
      /^\/[A-Za-z0-9_./@:+-]{1,255}$/.test(v) ? undefined : 'an absolute path on the node',
    group: 'Privileged mode',
    help: 'container runtime socket on the node (default: probe the known paths)',
    cli: { flag: 'runtime-socket' },
    dialog: {
      call: 'runtime-socket',
      display: 'Runtime socket',
      type: 'string',
      tooltip: 'container runtime socket on the node (default: probe the known paths)',
    },
  },
  {
    key: 'pidLookup',
    kind: 'choice',
    choices: PID_LOOKUPS,
    default: 'auto',
    label: 'PID lookup',
    group: 'Privileged mode',
    help: 'find the target PID through the runtime, cgroups, or both (auto)',
    cli: { flag: 'pid-lookup' },
    dialog: {
      call: 'pid-lookup',
      display: 'PID lookup',
      type: 'selector',
      tooltip: "how the target's process is found on the node",
    },
  },
  {
    key: 'kubeconfig',
    kind: 'text',
    label: 'kubeconfig',
    group: 'Cluster',
    help: 'kubeconfig file',
    cli: { flag: 'kubeconfig' },
    dialog: {
      call: 'kubeconfig',
      display: 'Kubeconfig',
      type: 'fileselect',
      mustExist: true,
      tooltip: 'default: $KUBECONFIG, then ~/.kube/config',
    },
  },
  {
    key: 'keepBinary',
    kind: 'flag',
    default: false,
    label: 'keep binary',
    group: 'Debug',
    help: 'leave the uploaded tcpdump in the pod',
    cli: { flag: 'keep-binary' },
    dialog: {
      call: 'keep-binary',
      display: 'Keep uploaded tcpdump',
      type: 'boolflag',
      tooltip: 'leave the uploaded tcpdump in the container for the next capture',
    },
  },
  {
    key: 'logLevel',
    kind: 'choice',
    choices: LEVELS,
    label: 'log level',
    group: 'Debug',
    cli: { flag: 'log-level' },
    // Wireshark shows no stderr but errors: its users get a log of problems
    // unless they opt out; a terminal already shows them.
    dialog: { call: 'log-level', display: 'Log level', type: 'selector', preselect: 'warn' },
  },
  {
    key: 'logFile',
    kind: 'text',
    label: 'log file',
    group: 'Debug',
    help: 'log file (created 0600)',
    cli: { flag: 'log-file' },
    dialog: {
      call: 'log-file',
      display: 'Log file',
      type: 'fileselect',
      mustExist: false,
      tooltip: () => `default: ${defaultLogFile()}`,
    },
  },
];

export function optionRow(key: OptionKey): OptionRow {
  const row = OPTIONS.find((r) => r.key === key);
  if (!row) throw new Error(`no option row for ${key}`);
  return row;
}

/** Option values by key, as a face read them from its argv (strings, or yargs' typed values). */
export type RawOptions = Partial<Record<OptionKey, unknown>>;

/** The values of the CLI's parsed arguments (yargs output). */
export function rawFromCli(args: Record<string, unknown>): RawOptions {
  const raw: RawOptions = {};
  for (const row of OPTIONS) {
    raw[row.key] = args[row.cli.flag];
    if (row.shorthand && args[row.shorthand.flag] === true) raw[row.key] = row.shorthand.means;
  }
  return raw;
}

/** The values of Wireshark's options (`--call value`); a flag given without a value is on. */
export function rawFromDialog(options: ReadonlyMap<string, string>): RawOptions {
  const raw: RawOptions = {};
  for (const row of OPTIONS) {
    const { call, values } = row.dialog;
    const given = options.get(call);
    raw[row.key] = row.kind === 'flag' && !values && given === '' ? true : given;
    const short = row.shorthand;
    if (short && options.has(short.flag) && readFlag(options.get(short.flag) || true)) {
      raw[row.key] = short.means;
    }
  }
  return raw;
}

function notOneOf(row: OptionRow, value: string, choices: readonly string[]): KubedumpError {
  return new KubedumpError(
    'BAD_INPUT',
    `${row.label} "${printable(value)}" is not one of ${choices.join(', ')}`,
    { hint: `pick a ${row.label}` },
  );
}

/** A flag's value as Wireshark, the CLI or a file gives it: true, or any text but false/0/no/off. */
export function readFlag(value: unknown): boolean {
  if (typeof value === 'boolean') return value;
  return !/^(false|0|no|off)$/i.test(String(value));
}

/** Reads one option's value: its default when empty, else a checked value of its kind. */
function readOption(row: OptionRow, value: unknown, face: Face): OptionValue | undefined {
  if (value === undefined || value === null || value === '') {
    if (row.required) {
      throw new KubedumpError('BAD_INPUT', `no ${row.cli.flag} given`, {
        hint: `name the ${row.cli.flag} to capture`,
      });
    }
    return row.default;
  }
  const radio = row.dialog.values;
  if (face === 'dialog' && radio && typeof value === 'string') {
    const picked = radio.find((v) => v.value === value);
    if (!picked)
      throw notOneOf(
        row,
        value,
        radio.map((v) => v.value),
      );
    return picked.means;
  }
  switch (row.kind) {
    case 'flag':
      return readFlag(value);
    case 'choice': {
      const text = String(value);
      if (!row.choices?.includes(text)) throw notOneOf(row, text, row.choices ?? []);
      return text;
    }
    case 'count':
      return readCount(row, value, spelling(row, face));
    case 'text': {
      const text = String(value);
      const broken = row.check?.(text);
      if (broken !== undefined) {
        throw new KubedumpError(
          'BAD_INPUT',
          `${row.label} "${printable(text)}" is not valid: ${broken}`,
          { hint: `check the ${row.label}` },
        );
      }
      return text;
    }
  }
}

function readCount(row: OptionRow, value: unknown, spelling: string): number {
  const text = String(value).trim();
  const whole =
    typeof value === 'number' ? Number.isInteger(value) && value >= 0 : /^\d{1,9}$/.test(text);
  if (!whole) {
    throw new KubedumpError(
      'BAD_INPUT',
      `${spelling} "${printable(text.slice(0, 40))}" is not a whole number`,
      { hint: `give ${spelling} a number such as ${row.default ?? 0}` },
    );
  }
  const n = Number(text);
  const [min, max] = row.range ?? [0, Number.MAX_SAFE_INTEGER];
  if (n < min || n > max) {
    const note = row.rangeNote;
    const bound = n < min ? `less than ${min}` : `more than ${max}${note ? ` ${note.unit}` : ''}`;
    throw new KubedumpError('BAD_INPUT', `${spelling} ${n} is ${bound}`, {
      hint: note?.hint ?? `give a number from ${min} to ${max}`,
    });
  }
  return n;
}

export type Face = 'cli' | 'dialog';

function spelling(row: OptionRow, face: Face): string {
  return `--${face === 'cli' ? row.cli.flag : row.dialog.call}`;
}

/**
 * The one parser of capture options: defaults, types, ranges and names are
 * checked here, whichever face read the argv. Extra filters (tcpdump words
 * after the pod, Wireshark's capture filter) are and-ed with `filter`.
 */
export function captureRequest(
  raw: RawOptions,
  face: Face,
  extraFilters: readonly (string | undefined)[] = [],
): CaptureRequest {
  const out: Record<string, OptionValue | undefined> = {};
  for (const row of OPTIONS) {
    if (row.key === 'logLevel' || row.key === 'logFile') continue;
    let value = raw[row.key];
    if (row.key === 'filter')
      value = combineFilters([value as string | undefined, ...extraFilters]);
    out[row.key] = readOption(row, value, face);
  }
  const request = out as unknown as CaptureRequest;
  requireTarget(request);
  return request;
}

export interface LogSettings {
  level?: Level | undefined;
  file?: string | undefined;
}

/** The log the options ask for; read apart from the request so a bad request is still logged. */
export function logSettings(raw: RawOptions, face: Face): LogSettings {
  const read = (key: 'logLevel' | 'logFile') => {
    const row = optionRow(key);
    return readOption(row, raw[key], face) as string | undefined;
  };
  return { level: read('logLevel') as Level | undefined, file: read('logFile') };
}

/** One target, and only one: pods, a workload, a selector or all. */
function requireTarget(request: CaptureRequest): void {
  if (!parseTarget(request.pod, request.selector, request.allPods)) {
    throw new KubedumpError('BAD_INPUT', 'no pod given', {
      hint: 'name the pod to capture (or KIND/NAME, -l SELECTOR, --all)',
    });
  }
}

/** Checks a request built in code (not parsed) by the same rules. */
export function validateRequest(request: CaptureRequest): void {
  for (const row of OPTIONS) {
    if (row.key === 'logLevel' || row.key === 'logFile') continue;
    const value = request[row.key];
    if (value === undefined && !row.required) continue;
    readOption(row, value, 'cli');
  }
  requireTarget(request);
}

function printable(value: string): string {
  const shown = value.length > 60 ? `${value.slice(0, 60)}…` : value;
  return JSON.stringify(shown).slice(1, -1);
}
