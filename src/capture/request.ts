/** Everything one capture needs, from the CLI or from Wireshark's dialog (see options.ts). */
export interface CaptureRequest {
  kubeconfig?: string | undefined;
  context?: string | undefined;
  /** Default: the context's namespace. */
  namespace?: string | undefined;
  /** A pod name, several joined by ",", or KIND/NAME (deploy/web, svc/api, ...). */
  pod?: string | undefined;
  /** A label selector: every running pod it selects. */
  selector?: string | undefined;
  /** Every running pod of the namespace. */
  allPods: boolean;
  /** At most this many pods of a selector or workload. */
  maxPods: number;
  format: CaptureFormat;
  container?: string | undefined;
  /** Interface inside the pod. */
  iface: string;
  filter: string;
  snaplen: number;
  /** 0: no limit. */
  maxPackets: number;
  /** 0: no limit. */
  maxSeconds: number;
  /** Where tcpdump runs; auto: the cheapest mode the preflight finds able to. */
  mode: CaptureModeName;
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

export const CAPTURE_FORMATS = ['auto', 'pcap', 'pcapng'] as const;
export type CaptureFormat = (typeof CAPTURE_FORMATS)[number];

/** Where tcpdump can run, cheapest first: auto tries them in this order. */
export const PLACEMENTS = ['unprivileged', 'ephemeral', 'privileged'] as const;
export type PlacementName = (typeof PLACEMENTS)[number];

export const CAPTURE_MODES = ['auto', ...PLACEMENTS] as const;
export type CaptureModeName = (typeof CAPTURE_MODES)[number];

export const PID_LOOKUPS = ['auto', 'runtime', 'cgroup'] as const;
export type PidLookup = (typeof PID_LOOKUPS)[number];

/** Joins filters that must all match; blanks are dropped. */
export function combineFilters(filters: readonly (string | undefined)[]): string {
  const parts = filters.map((f) => f?.trim() ?? '').filter((f) => f !== '');
  return parts.length > 1 ? parts.map((f) => `(${f})`).join(' and ') : (parts[0] ?? '');
}
