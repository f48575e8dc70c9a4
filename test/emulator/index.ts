// startEmulator(): an emulated Kubernetes API server with pods backed by runc on this machine.
import { rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { grant, type Rule, TOKENS } from './auth.ts';
import { checkClean, sweepSlot } from './cleanup.ts';
import { Cluster, type RequestRecord } from './cluster.ts';
import { V4, V5 } from './exec.ts';
import { defaultFaults, type FaultSettings, type StreamKind } from './faults.ts';
import { writeKubeconfig } from './kubeconfig.ts';
import { claimSlot, createBridge, deleteBridge, releaseSlot } from './runtime/host.ts';
import { type ApiServer, startServer } from './server.ts';
import { serverTls } from './tls.ts';
import type { Pod, PodInput } from './types.ts';
import { baseWorld, demoPods } from './world.ts';

export type { Rule } from './auth.ts';
export { checkClean, sweep } from './cleanup.ts';
export type { RequestRecord } from './cluster.ts';
export type { FaultSettings, RequestMatch, StreamKind } from './faults.ts';
export { ENFORCE_LABEL } from './podsecurity.ts';
export type { Pod, PodInput } from './types.ts';
export { IMAGES, NODES, POD_SECURITY_NAMESPACES } from './world.ts';

export interface EmulatorOptions {
  /**
   * Start web, client, distroless, nonroot and debian in namespace demo, and the pods of the
   * namespaces baseline and restricted (default true; world.ts lists them).
   */
  demoPods?: boolean;
  /** Unbacked Running pods to add at start (e.g. 5000). */
  bulkPods?: number;
  /** Namespaces the bulk pods are spread over (default 10: bulk-0 .. bulk-9). */
  bulkNamespaces?: number;
  /** WebSocket exec subprotocols offered, best first; [V4] behaves like clusters before 1.30. */
  execProtocols?: string[];
  /** What a client disconnect does to an exec'd process's stdin (default 'keep', as measured). */
  stdinOnDisconnect?: 'keep' | 'eof';
  /** Directory for the kubeconfig (default: a new temp dir, removed on close). */
  kubeconfigDir?: string;
}

export interface EmulatorApi {
  /** The state behind the server, for assertions beyond what the API exposes. */
  cluster: Cluster;
  /** Creates a pod (backed unless `backed: false`) and waits for its backing to settle. */
  addPod(namespace: string, pod: PodInput, opts?: { backed?: boolean }): Promise<Pod>;
  /** Deletes a pod (default grace 0) and waits until it is gone. */
  removePod(namespace: string, name: string, gracePeriodSeconds?: number): Promise<void>;
  addUnbackedPods(count: number, namespaces?: string[]): void;
  addNamespace(name: string, labels?: Record<string, string>): void;
  /** An identity bound to exactly these rules; returns a kubeconfig path that uses it. */
  addIdentity(user: string, rules: Rule[], dir: string): Promise<string>;
  getPod(namespace: string, name: string): Pod | undefined;
  /** Host PID of a backed container's init process. */
  containerPid(namespace: string, name: string, container?: string): number | undefined;
  faults(): FaultSettings;
  setFaults(f: Partial<FaultSettings>): Promise<void>;
  resetFaults(): Promise<void>;
  /** Cuts live exec and/or watch streams now; returns how many. */
  dropStreams(kind?: StreamKind): number;
  /** The authenticated requests so far, oldest first (the latest 100,000). */
  requests(): RequestRecord[];
  liveStreams(kind?: StreamKind): number;
}

export interface Emulator {
  url: string;
  kubeconfigPath: string;
  /** PEM of the CA that signed the server certificate. */
  ca: string;
  tokens: { admin: string; restricted: string; nopatch: string; ephemeral: string };
  slot: number;
  api: EmulatorApi;
  close(): Promise<void>;
  /** What this instance left on the host (after close(): should be empty). */
  checkClean(): Promise<string[]>;
}

function tokenFor(user: string): string {
  return Object.entries(TOKENS).find(([, u]) => u === user)?.[0] ?? '';
}

export async function startEmulator(options: EmulatorOptions = {}): Promise<Emulator> {
  const tls = await serverTls();
  const slot = await claimSlot((n) => sweepSlot(n));
  const cluster = new Cluster(slot);
  let server: ApiServer | undefined;
  let kubeconfigPath = '';
  const closeAll = async (): Promise<void> => {
    await server?.close();
    await cluster.close();
    await deleteBridge(slot);
    await sweepSlot(slot.n, cluster.kubelet.cgroupPaths);
    await releaseSlot(slot);
    if (kubeconfigPath && !options.kubeconfigDir)
      await rm(dirname(kubeconfigPath), { recursive: true, force: true });
  };
  try {
    baseWorld(cluster);
    const nodeIps = cluster.nodes.list().map((n) => cluster.nodeIp(n.metadata.name));
    await createBridge(slot, nodeIps);
    if (options.bulkPods) {
      const k = options.bulkNamespaces ?? 10;
      cluster.addUnbackedPods(
        options.bulkPods,
        Array.from({ length: k }, (_, i) => `bulk-${i}`),
      );
    }
    server = await startServer(cluster, tls, {
      protocols: options.execProtocols ?? [V5, V4],
      stdinOnDisconnect: options.stdinOnDisconnect ?? 'keep',
    });
    kubeconfigPath = await writeKubeconfig(server.url, tls.ca, options.kubeconfigDir);
    if (options.demoPods !== false) await demoPods(cluster);
  } catch (e) {
    await closeAll().catch(() => {});
    throw e;
  }
  const srv = server;
  let closed: Promise<void> | undefined;

  const api: EmulatorApi = {
    cluster,
    async addPod(namespace, pod, opts = {}) {
      cluster.addNamespace(namespace);
      const p = cluster.createPod(namespace, pod, { backed: opts.backed ?? true });
      return cluster.settled(p);
    },
    async removePod(namespace, name, grace = 0) {
      const p = cluster.pods.find(namespace, name);
      if (!p) return;
      cluster.deletePod(p, grace);
      while (cluster.pods.find(namespace, name) === p) await new Promise((r) => setTimeout(r, 20));
    },
    addUnbackedPods(count, namespaces = ['bulk-0']) {
      cluster.addUnbackedPods(count, namespaces);
    },
    addNamespace(name, labels) {
      cluster.addNamespace(name, labels);
    },
    addIdentity: (user, rules, dir) =>
      writeKubeconfig(srv.url, tls.ca, dir, { user, token: grant(user, rules) }),
    getPod: (namespace, name) => cluster.pods.find(namespace, name),
    containerPid(namespace, name, container) {
      const p = cluster.pods.find(namespace, name);
      if (!p) return undefined;
      return cluster.kubelet.container(p, container ?? p.spec.containers[0]?.name ?? '')?.running
        ?.pid;
    },
    faults: () => structuredClone(cluster.faults),
    async setFaults(f) {
      cluster.faults = { ...cluster.faults, ...f };
      await srv.setListening(!cluster.faults.refuseConnections);
    },
    async resetFaults() {
      cluster.faults = defaultFaults();
      await srv.setListening(true);
    },
    dropStreams: (kind) => cluster.streams.drop(kind),
    liveStreams: (kind) => cluster.streams.count(kind),
    requests: () => structuredClone(cluster.requestLog),
  };

  return {
    url: srv.url,
    kubeconfigPath,
    ca: tls.ca,
    tokens: {
      admin: tokenFor('admin'),
      restricted: tokenFor('restricted'),
      nopatch: tokenFor('nopatch'),
      ephemeral: tokenFor('ephemeral'),
    },
    slot: slot.n,
    api,
    close() {
      closed ??= closeAll();
      return closed;
    },
    checkClean: () => checkClean({ slot: slot.n, cgroupPaths: cluster.kubelet.cgroupPaths }),
  };
}
