import { KubedumpError } from '../errors.ts';

/** Everything one capture needs, from the CLI or from Wireshark's dialog. */
export interface CaptureRequest {
  kubeconfig?: string | undefined;
  context?: string | undefined;
  /** Default: the context's namespace. */
  namespace?: string | undefined;
  pod: string;
  container?: string | undefined;
  /** Interface inside the pod. */
  iface: string;
  filter: string;
  snaplen: number;
  /** 0: no limit. */
  maxPackets: number;
  /** 0: no limit. */
  maxSeconds: number;
  privileged: boolean;
  helperNamespace?: string | undefined;
  helperImage: string;
  keepBinary: boolean;
  /** Privileged mode: seconds to wait for the helper pod to run (default 60). */
  helperTimeout?: number | undefined;
  /** Privileged mode: the container runtime's socket on the node (default: probe known paths). */
  runtimeSocket?: string | undefined;
  /** Privileged mode: how the target's PID is found (default auto: runtime, then cgroups). */
  pidLookup?: PidLookup | undefined;
}

export const PID_LOOKUPS = ['auto', 'runtime', 'cgroup'] as const;
export type PidLookup = (typeof PID_LOOKUPS)[number];

export const DEFAULT_HELPER_IMAGE = 'docker.io/library/busybox:1.36';

export const DEFAULTS = {
  iface: 'any',
  filter: '',
  snaplen: 0,
  maxPackets: 0,
  maxSeconds: 0,
  privileged: false,
  helperImage: DEFAULT_HELPER_IMAGE,
  /** Seconds to wait for the helper pod (privileged mode). */
  helperTimeout: 60,
  keepBinary: false,
} as const;

/** Joins filters that must all match; blanks are dropped. */
export function combineFilters(filters: readonly (string | undefined)[]): string {
  const parts = filters.map((f) => f?.trim() ?? '').filter((f) => f !== '');
  return parts.length > 1 ? parts.map((f) => `(${f})`).join(' and ') : (parts[0] ?? '');
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

/** Checks names before they reach the API, so typos get a clear line. */
export function validateRequest(request: CaptureRequest): void {
  const bad = (what: string, value: string, rule: string) =>
    new KubedumpError('BAD_INPUT', `${what} "${printable(value)}" is not valid: ${rule}`, {
      hint: `check the ${what}`,
    });
  if (!request.pod) {
    throw new KubedumpError('BAD_INPUT', 'no pod given', { hint: 'name the pod to capture' });
  }
  if (request.pod.length > 253 || !DNS_SUBDOMAIN.test(request.pod)) {
    throw bad('pod name', request.pod, 'lowercase letters, digits, "-" and "."');
  }
  for (const [what, value] of [
    ['namespace', request.namespace],
    ['helper namespace', request.helperNamespace],
    ['container name', request.container],
  ] as const) {
    if (value !== undefined && (value.length > 63 || !DNS_LABEL.test(value))) {
      throw bad(what, value, 'lowercase letters, digits and "-", at most 63');
    }
  }
  if (!/^[A-Za-z0-9_.:@-]{1,64}$/.test(request.iface)) {
    throw bad('interface', request.iface, 'an interface name such as eth0, or any');
  }
  for (const [what, value] of [
    ['snaplen', request.snaplen],
    ['packet limit', request.maxPackets],
    ['time limit', request.maxSeconds],
  ] as const) {
    if (!Number.isInteger(value) || value < 0) throw bad(what, String(value), 'a whole number ≥ 0');
  }
  if (request.helperTimeout !== undefined) {
    const t = request.helperTimeout;
    if (!Number.isInteger(t) || t < 1 || t > 3600)
      throw bad('helper timeout', String(t), 'whole seconds from 1 to 3600');
  }
  if (
    request.runtimeSocket !== undefined &&
    !/^\/[A-Za-z0-9_./@:+-]{1,255}$/.test(request.runtimeSocket)
  ) {
    throw bad('runtime socket', request.runtimeSocket, 'an absolute path on the node');
  }
  if (request.pidLookup !== undefined && !PID_LOOKUPS.includes(request.pidLookup)) {
    throw bad('PID lookup', String(request.pidLookup), PID_LOOKUPS.join(', '));
  }
  if (request.filter.length > 8192)
    throw bad('capture filter', request.filter.slice(0, 40), 'too long');
}

function printable(value: string): string {
  const shown = value.length > 60 ? `${value.slice(0, 60)}…` : value;
  return JSON.stringify(shown).slice(1, -1);
}
