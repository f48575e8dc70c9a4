// Fault switches, settable while the server runs, and the live streams they can cut.

export interface RequestMatch {
  verb?: string;
  resource?: string;
  subresource?: string;
  namespace?: string;
  name?: string;
}

export interface FaultSettings {
  /** Stop listening: clients get ECONNREFUSED. */
  refuseConnections: boolean;
  /** 401 for every request, as for expired credentials. */
  unauthorized: boolean;
  /** Delay before every response (and before an exec upgrade) in ms. */
  delayMs: number;
  /** 403 Forbidden (RBAC wording) for matching requests. */
  forbid: RequestMatch[];
  /** Cut a stream after it has sent this many bytes (exec: stdout+stderr payload; watch: body). */
  dropExecAfterBytes: number | null;
  dropWatchAfterBytes: number | null;
  /** How privileged pods are refused at creation: Pod Security 403, or 422 Invalid. */
  rejectPrivileged: 'podsecurity' | 'invalid' | null;
  /** Pods created through the API stay Pending for this reason. */
  keepPending: 'ImagePullBackOff' | 'Unschedulable' | null;
  /**
   * The next `count` execs into a container whose name starts with `containerPrefix` are
   * refused at the upgrade as the kubelet refuses one into a container it cannot find (500);
   * each one refused counts down, and at 0 the switch turns itself off.
   */
  failExecs: { containerPrefix: string; count: number } | null;
  /**
   * The ephemeralcontainers subresource speaks 1.16-1.21's EphemeralContainers kind, read
   * and replaced whole, instead of 1.22+'s Pod.
   */
  legacyEphemeral: boolean;
  /**
   * After each of the next this many reads of that kind the pod changes, as the kubelet's
   * status updates change it: the replace that follows the read gets 409 Conflict.
   */
  modifyAfterEphemeralRead: number;
}

export function defaultFaults(): FaultSettings {
  return {
    refuseConnections: false,
    unauthorized: false,
    delayMs: 0,
    forbid: [],
    dropExecAfterBytes: null,
    dropWatchAfterBytes: null,
    rejectPrivileged: null,
    keepPending: null,
    failExecs: null,
    legacyEphemeral: false,
    modifyAfterEphemeralRead: 0,
  };
}

export function matches(
  m: RequestMatch,
  r: Required<Pick<RequestMatch, 'verb' | 'resource'>> & RequestMatch,
): boolean {
  return (
    (m.verb === undefined || m.verb === '*' || m.verb === r.verb) &&
    (m.resource === undefined || m.resource === '*' || m.resource === r.resource) &&
    (m.subresource === undefined || m.subresource === r.subresource) &&
    (m.namespace === undefined || m.namespace === r.namespace) &&
    (m.name === undefined || m.name === r.name)
  );
}

export type StreamKind = 'exec' | 'watch';

/** Live exec and watch streams, so a test can cut them on command. */
export class Streams {
  private readonly live = new Set<{ kind: StreamKind; cut: () => void }>();

  add(kind: StreamKind, cut: () => void): () => void {
    const s = { kind, cut };
    this.live.add(s);
    return () => this.live.delete(s);
  }

  /** Cuts every live stream of that kind (or all); returns how many. */
  drop(kind?: StreamKind): number {
    let n = 0;
    for (const s of [...this.live]) {
      if (kind && s.kind !== kind) continue;
      this.live.delete(s);
      s.cut();
      n++;
    }
    return n;
  }

  count(kind?: StreamKind): number {
    return [...this.live].filter((s) => !kind || s.kind === kind).length;
  }
}
