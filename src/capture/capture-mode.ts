import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from '../log.ts';
import type { CreatedRecord } from './created-record.ts';
import type { ContainerLook } from './remote-scripts.ts';
import type { RemoteTcpdump } from './remote-tcpdump.ts';
import type { CaptureRequest, PlacementName } from './request.ts';
import type { StopClock } from './stop-clock.ts';
import type { ExecTarget } from './upload.ts';

// A capture mode decides where tcpdump runs. `prepare` may create things in
// the cluster; it pushes their removal onto `ctx.cleanup` as it creates them.

export interface TargetContainer {
  namespace: string;
  pod: string;
  container: string;
  containerId: string | undefined;
  nodeName: string | undefined;
  /** The pod uses the node's network namespace (hostNetwork: true). */
  hostNetwork: boolean;
  /** The pod's own security context makes its containers run as a non-root user. */
  nonRootPod: boolean;
}

export interface ModeContext {
  kc: KubeConfig;
  request: CaptureRequest;
  target: TargetContainer;
  log: Logger;
  signal: AbortSignal;
  cleanup: AsyncDisposableStack;
  /** The stop's one deadline: cleanup steps take what remains of it. */
  clock: StopClock;
  /** Where what the mode creates is noted, for a later process to remove after a kill. */
  record?: CreatedRecord | undefined;
  /**
   * Rejects when the target runs on a Windows node. Read while the capture
   * starts: a mode awaits it before its first change in the cluster.
   */
  linux: Promise<void>;
  /** The target node's architecture (undefined when nodes can't be read); rejects as `linux`. */
  nodeArchitecture(): Promise<string | undefined>;
}

export interface Placement {
  /** Where the tcpdump command is exec'd. */
  exec: ExecTarget;
  /** Path of tcpdump in that container. */
  binary: string;
  /** Prepended to tcpdump's argv, e.g. nsenter into the target's network. */
  prefix: string[];
  /** For messages: where tcpdump runs. */
  where: string;
  /** A file the remote watchdog counts keepalive lines into. */
  heartbeat: string;
  /** Started first when the capture stops (e.g. delete the helper pod). */
  onStop?: () => Promise<void>;
  /** tcpdump already runs under its watchdog (the mode's own exec started it). */
  started?: RemoteTcpdump;
  /** Told once tcpdump's wrapper runs: from then on the wrapper ends what the mode started. */
  handedOver?: () => void;
}

export interface CaptureMode {
  name: PlacementName;
  prepare(ctx: ModeContext): Promise<Placement>;
  /**
   * prepare in two steps, for a mode whose first step auto may run beside its
   * preflight: that step starts now, every change it makes already on
   * `ctx.cleanup`.
   */
  begin?(ctx: ModeContext): Begun;
}

export interface Begun {
  /** What the first step learns of the container, for the preflight to use. */
  look?: Promise<ContainerLook>;
  /** The rest of prepare. */
  finish(): Promise<Placement>;
}
