// Cluster state and the control-plane logic around it: pod defaults, admission, scheduling,
// deletion with grace, and handing pods to the emulated kubelet.
import { randomBytes, randomUUID } from 'node:crypto';
import { ephemeralUpdate } from './ephemeral.ts';
import { defaultFaults, type FaultSettings, Streams } from './faults.ts';
import { enforced, violations } from './podsecurity.ts';
import type { Slot } from './runtime/host.ts';
import { Kubelet, now, runtimeId } from './runtime/kubelet.ts';
import { ApiError, failure, invalid, notFound, podSecurityForbidden } from './status.ts';
import { Clock, Store } from './store.ts';
import type { EphemeralContainer, Namespace, Node, Pod, PodInput, Runtime } from './types.ts';

export interface NodeDef {
  name: string;
  arch: 'amd64' | 'arm64';
  runtime: Runtime;
  taints?: { key: string; value?: string; effect: string }[];
}

const RUNTIME_VERSION: Record<Runtime, string> = {
  containerd: 'containerd://1.7.22',
  docker: 'docker://27.3.1',
  'cri-o': 'cri-o://1.31.1',
};

/** One authenticated request as authorization sees it (before it is allowed or refused). */
export interface RequestRecord {
  user: string;
  verb: string;
  resource: string;
  subresource?: string | undefined;
  namespace?: string | undefined;
  name?: string | undefined;
  /** dryRun=All: admission only, nothing stored. */
  dryRun: boolean;
}

/** The request log keeps this many of the latest requests. */
const REQUEST_LOG_MAX = 100_000;

export interface CreateOptions {
  /** Back the pod with real containers (default true); false gives a Running pod with no process. */
  backed?: boolean;
  /** Apply the admission and pending faults (pods created through the API). */
  admission?: boolean;
}

export class Cluster {
  readonly clock = new Clock();
  readonly namespaces = new Store<Namespace>('namespaces', this.clock);
  readonly nodes = new Store<Node>('nodes', this.clock);
  readonly pods = new Store<Pod>('pods', this.clock);
  readonly streams = new Streams();
  readonly kubelet: Kubelet;
  readonly slot: Slot;
  faults: FaultSettings = defaultFaults();
  /** API requests received (counted on arrival, before any fault delay): tests wait on it. */
  requestsReceived = 0;
  /** What the authenticated requests asked, oldest first: tests check what was (not) tried. */
  readonly requestLog: RequestRecord[] = [];
  /** Pods whose backing is starting, so callers can wait for them. */
  private readonly starting = new Map<string, Promise<void>>();
  private fakeIp = 0;
  private nodeIndex = 0;

  constructor(slot: Slot) {
    this.slot = slot;
    this.kubelet = new Kubelet(slot, this.pods, {
      runtime: (n) => this.runtimeOf(n),
      ip: (n) => this.nodeIp(n),
    });
  }

  logRequest(r: RequestRecord): void {
    this.requestLog.push(r);
    if (this.requestLog.length > REQUEST_LOG_MAX + 1000) this.requestLog.splice(0, 1000);
  }

  runtimeOf(nodeName: string): Runtime {
    const v = this.nodes.find(undefined, nodeName)?.status.nodeInfo.containerRuntimeVersion ?? '';
    return (
      (Object.keys(RUNTIME_VERSION) as Runtime[]).find((r) => v.startsWith(`${r}://`)) ??
      'containerd'
    );
  }

  nodeIp(nodeName: string): string {
    const n = this.nodes.find(undefined, nodeName);
    return (
      n?.status.addresses.find((a) => a.type === 'InternalIP')?.address ?? `${this.slot.net}.1`
    );
  }

  addNamespace(name: string, labels: Record<string, string> = {}): Namespace {
    const existing = this.namespaces.find(undefined, name);
    if (existing) return existing;
    return this.namespaces.create({
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: {
        name,
        uid: randomUUID(),
        resourceVersion: '',
        creationTimestamp: now(),
        labels: { 'kubernetes.io/metadata.name': name, ...labels },
      },
      spec: { finalizers: ['kubernetes'] },
      status: { phase: 'Active' },
    });
  }

  /** Node IPs are extra addresses on the pod bridge (.250 down), so hostIP is reachable. */
  addNode(def: NodeDef): Node {
    const ip = `${this.slot.net}.${250 - this.nodeIndex++}`;
    return this.nodes.create({
      apiVersion: 'v1',
      kind: 'Node',
      metadata: {
        name: def.name,
        uid: randomUUID(),
        resourceVersion: '',
        creationTimestamp: now(),
        labels: {
          'kubernetes.io/arch': def.arch,
          'kubernetes.io/os': 'linux',
          'kubernetes.io/hostname': def.name,
          'beta.kubernetes.io/arch': def.arch,
          'beta.kubernetes.io/os': 'linux',
        },
      },
      spec: { podCIDR: `${this.slot.net}.0/24`, ...(def.taints ? { taints: def.taints } : {}) },
      status: {
        addresses: [
          { type: 'InternalIP', address: ip },
          { type: 'Hostname', address: def.name },
        ],
        nodeInfo: {
          architecture: def.arch,
          operatingSystem: 'linux',
          osImage: 'Debian GNU/Linux 12 (bookworm)',
          kernelVersion: '6.1.0-28-amd64',
          containerRuntimeVersion: RUNTIME_VERSION[def.runtime],
          kubeletVersion: 'v1.31.0',
          kubeProxyVersion: '',
          machineID: randomBytes(16).toString('hex'),
          systemUUID: randomUUID(),
          bootID: randomUUID(),
        },
        conditions: [
          {
            type: 'Ready',
            status: 'True',
            reason: 'KubeletReady',
            message: 'kubelet is posting ready status',
            lastHeartbeatTime: now(),
            lastTransitionTime: now(),
          },
        ],
        capacity: { cpu: '2', memory: '8148560Ki', pods: '110' },
        allocatable: { cpu: '2', memory: '8046160Ki', pods: '110' },
      },
    });
  }

  /**
   * The pod a create would store: validated, admitted (Pod Security of the namespace, and with
   * `admission` the faults) and defaulted. A server-side dry run stops here.
   */
  buildPod(namespace: string, input: PodInput, opts: CreateOptions = {}): Pod {
    if (!this.namespaces.find(undefined, namespace)) throw notFound('namespaces', namespace);
    const meta = input.metadata ?? {};
    let name = meta.name;
    if (!name && meta.generateName)
      name = meta.generateName + randomBytes(3).toString('hex').slice(0, 5);
    if (!name) {
      throw new ApiError(
        failure(
          422,
          'Invalid',
          'Pod "" is invalid: metadata.name: Required value: name or generateName is required',
          {
            kind: 'Pod',
          },
        ),
      );
    }
    const spec = input.spec;
    if (!spec?.containers?.length) {
      throw new ApiError(
        failure(422, 'Invalid', `Pod "${name}" is invalid: spec.containers: Required value`, {
          name,
          kind: 'Pod',
        }),
      );
    }
    if (opts.admission) this.admitFaults(name, spec);
    this.admitPodSecurity(namespace, name, spec);
    return {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        ...meta,
        name,
        namespace,
        uid: randomUUID(),
        resourceVersion: '',
        creationTimestamp: now(),
      },
      spec: {
        restartPolicy: 'Always',
        terminationGracePeriodSeconds: 30,
        dnsPolicy: 'ClusterFirst',
        schedulerName: 'default-scheduler',
        securityContext: {},
        enableServiceLinks: true,
        ...spec,
        containers: spec.containers.map((c) => ({
          terminationMessagePath: '/dev/termination-log',
          terminationMessagePolicy: 'File',
          imagePullPolicy: /:(?!latest$)[^/]+$/.test(c.image) ? 'IfNotPresent' : 'Always',
          resources: {},
          ...c,
        })),
      },
      status: { phase: 'Pending', qosClass: 'BestEffort' },
    };
  }

  /** Applies defaults and admission, stores the pod and (if backed) starts its containers. */
  createPod(namespace: string, input: PodInput, opts: CreateOptions = {}): Pod {
    const pod = this.buildPod(namespace, input, opts);
    const pending = opts.admission ? this.faults.keepPending : null;
    if (pending === 'Unschedulable') {
      this.unschedulable(pod);
      return this.pods.create(pod);
    }
    if (!pod.spec.nodeName) pod.spec.nodeName = this.schedule();
    pod.status.conditions = [
      { type: 'PodScheduled', status: 'True', lastProbeTime: null, lastTransitionTime: now() },
    ];
    if (!pending && opts.backed === false) {
      // Complete before storing: one ADDED event, no MODIFIED, which matters for 5,000 pods.
      this.fakeRunning(pod);
      return this.pods.create(pod);
    }
    this.pods.create(pod);
    if (pending === 'ImagePullBackOff') {
      const image = pod.spec.containers[0]?.image ?? '';
      this.kubelet.waiting(pod, 'ImagePullBackOff', `Back-off pulling image "${image}"`);
    } else {
      const p = this.kubelet.start(pod).catch((e: Error) => {
        this.kubelet.waiting(pod, 'CreateContainerError', e.message);
      });
      this.starting.set(pod.metadata.uid, p);
      void p.finally(() => this.starting.delete(pod.metadata.uid));
    }
    return pod;
  }

  /** Resolves once the pod's backing has started (or failed). */
  async settled(pod: Pod): Promise<Pod> {
    await this.starting.get(pod.metadata.uid);
    return pod;
  }

  /**
   * Replaces the pod's ephemeral containers with `next` (validation lets the list only grow),
   * admits the result and starts the new ones. With `dryRun` nothing changes.
   */
  updateEphemeral(pod: Pod, next: EphemeralContainer[] | undefined, dryRun: boolean): Pod {
    const list = ephemeralUpdate(pod, next);
    const spec = { ...pod.spec, ephemeralContainers: list };
    this.admitPodSecurity(pod.metadata.namespace ?? '', pod.metadata.name, spec);
    if (dryRun) return { ...structuredClone(pod), spec: structuredClone(spec) };
    const old = new Set((pod.spec.ephemeralContainers ?? []).map((c) => c.name));
    const added = list.filter((c) => !old.has(c.name));
    if (!added.length) return pod;
    pod.spec.ephemeralContainers = list;
    this.pods.touch(pod);
    for (const c of added) void this.kubelet.startEphemeral(pod, c);
    return pod;
  }

  /** Pod Security admission at the level the namespace enforces (none when unlabelled). */
  private admitPodSecurity(namespace: string, name: string, spec: Pod['spec']): void {
    const { level, version } = enforced(this.namespaces.find(undefined, namespace));
    const failed = violations(level, spec);
    if (failed.length) throw podSecurityForbidden(name, failed, `${level}:${version}`);
  }

  private admitFaults(name: string, spec: Pod['spec']): void {
    const mode = this.faults.rejectPrivileged;
    if (!mode) return;
    const privileged = spec.containers.filter((c) => c.securityContext?.privileged);
    const hostNs = (['hostNetwork', 'hostPID', 'hostIPC'] as const).filter((k) => spec[k] === true);
    if (!privileged.length && !hostNs.length) return;
    if (mode === 'invalid') {
      const i = spec.containers.findIndex((c) => c.securityContext?.privileged);
      if (i >= 0) {
        throw invalid(
          name,
          `spec.containers[${i}].securityContext.privileged`,
          'disallowed by cluster policy',
        );
      }
      throw invalid(name, `spec.${hostNs[0]}`, 'disallowed by cluster policy');
    }
    // As if the namespace enforced baseline.
    throw podSecurityForbidden(name, violations('baseline', spec), 'baseline:latest');
  }

  private unschedulable(pod: Pod): void {
    const total = this.nodes.size;
    delete pod.spec.nodeName;
    pod.status.conditions = [
      {
        type: 'PodScheduled',
        status: 'False',
        reason: 'Unschedulable',
        message: `0/${total} nodes are available: ${total} node(s) had untolerated taint {node.kubernetes.io/unreachable: }. preemption: 0/${total} nodes are available: ${total} Preemption is not helpful for scheduling.`,
        lastProbeTime: null,
        lastTransitionTime: now(),
      },
    ];
  }

  /** First node without an untolerated NoSchedule taint, preferring amd64 (this machine). */
  private schedule(): string {
    const nodes = this.nodes
      .list()
      .filter((n) => !(n.spec.taints ?? []).some((t) => t.effect === 'NoSchedule'));
    const amd = nodes.filter((n) => n.status.nodeInfo.architecture === 'amd64');
    const pick = amd[0] ?? nodes[0];
    if (!pick) throw new Error('no schedulable node');
    return pick.metadata.name;
  }

  /** Status of a pod that runs nowhere: plausible IDs and IPs, nothing to exec into. */
  private fakeRunning(pod: Pod): void {
    const i = this.fakeIp++;
    const ip = `10.${100 + ((i >> 16) & 0x7f)}.${(i >> 8) & 0xff}.${(i & 0xff) + 1}`;
    const rt = this.runtimeOf(pod.spec.nodeName ?? '');
    const t = pod.metadata.creationTimestamp;
    pod.status = {
      phase: 'Running',
      conditions: ['Initialized', 'Ready', 'ContainersReady', 'PodScheduled'].map((type) => ({
        type,
        status: 'True' as const,
        lastProbeTime: null,
        lastTransitionTime: t,
      })),
      hostIP: this.nodeIp(pod.spec.nodeName ?? ''),
      podIP: ip,
      podIPs: [{ ip }],
      startTime: t,
      qosClass: 'BestEffort',
      containerStatuses: pod.spec.containers.map((c) => ({
        name: c.name,
        image: c.image,
        imageID: '',
        containerID: `${rt}://${runtimeId()}`,
        ready: true,
        started: true,
        restartCount: 0,
        state: { running: { startedAt: t } },
      })),
    };
    pod.status.hostIPs = [{ ip: pod.status.hostIP ?? '' }];
    this.pods.touch(pod);
  }

  /**
   * Marks the pod for deletion and removes it once its containers stopped (SIGTERM, then
   * SIGKILL after the grace period), as API server and kubelet do together.
   */
  deletePod(pod: Pod, gracePeriodSeconds?: number): Pod {
    const grace = gracePeriodSeconds ?? pod.spec.terminationGracePeriodSeconds ?? 30;
    if (pod.metadata.deletionTimestamp) return pod;
    const backed = this.kubelet.isBacked(pod) || this.starting.has(pod.metadata.uid);
    if (!backed) {
      this.pods.remove(pod);
      return pod;
    }
    pod.metadata.deletionTimestamp = new Date(Date.now() + grace * 1000)
      .toISOString()
      .replace(/\.\d+Z$/, 'Z');
    pod.metadata.deletionGracePeriodSeconds = grace;
    this.pods.touch(pod);
    void (async () => {
      await this.starting.get(pod.metadata.uid);
      await this.kubelet.stop(pod, grace);
      this.pods.remove(pod);
    })();
    return structuredClone(pod);
  }

  /** Adds `count` unbacked Running pods spread over namespaces and nodes. */
  addUnbackedPods(count: number, namespaces: string[], prefix = 'bulk'): void {
    for (const ns of namespaces) this.addNamespace(ns);
    const nodes = this.nodes.list().map((n) => n.metadata.name);
    const start = this.pods.size;
    for (let i = 0; i < count; i++) {
      const ns = namespaces[i % namespaces.length] as string;
      const idx = start + i;
      this.createPod(
        ns,
        {
          metadata: { name: `${prefix}-${idx}`, labels: { app: prefix, shard: String(i % 10) } },
          spec: {
            nodeName: nodes[i % nodes.length] as string,
            containers: [
              { name: 'main', image: 'docker.io/library/busybox:1.36', command: ['sleep', '3600'] },
            ],
          },
        },
        { backed: false },
      );
    }
  }

  async close(): Promise<void> {
    this.streams.drop();
    await Promise.allSettled([...this.starting.values()]);
    await this.kubelet.stopAll();
  }
}
