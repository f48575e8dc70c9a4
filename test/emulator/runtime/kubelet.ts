// Backs pods with runc containers in per-pod network namespaces and reports their status.

import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFile, lstat, mkdir, readlink, rm, writeFile } from 'node:fs/promises';
import { posix } from 'node:path';
import type { Store } from '../store.ts';
import type { Container, ContainerStatus, EphemeralContainer, Pod, Runtime } from '../types.ts';
import { command, must } from './command.ts';
import { createPodNetwork, deletePodNetwork, PREFIX, type Slot } from './host.ts';
import { type Image, resolveImage } from './images.ts';
import { capabilities, cgroupsPath, ociConfig, type ProcessSpec, processSpec } from './oci.ts';
import { deleteContainer, execProcess, killContainer, type Running, runContainer } from './runc.ts';
import {
  joinCgroup,
  removeCgroups,
  type SideProcess,
  startSideProcess,
  stopSideProcess,
} from './side-process.ts';

/**
 * On a pod, starts a process nested in each container (docker-in-docker): a
 * cgroup below the container's, its own network namespace, the container's
 * root. It starts BEFORE the container, so its PID is the lower one, as
 * after a PID wraparound on a busy node; the image needs `sleep`.
 */
export const NESTED_CONTAINER_ANNOTATION = 'emulator.kubedump.test/nested-container';

export interface BackedContainer {
  name: string;
  /** Added to the running pod through pods/ephemeralcontainers: never restarted, never ready. */
  ephemeral: boolean;
  runcId: string;
  runtimeId: string;
  bundle: string;
  rootfs: string;
  /** The cgroup path handed to runc. */
  cgroup: string;
  process: ProcessSpec;
  running?: Running;
  exitCode?: number;
  execs: Set<ChildProcess>;
  /** CRI-O's conmon: outlives the container, ends after it. */
  monitor?: SideProcess;
  /** A container nested in this one. */
  nested?: SideProcess;
}

interface BackedPod {
  uid: string;
  netns: string | null;
  index: number;
  ip: string;
  dir: string;
  containers: BackedContainer[];
  stopping: boolean;
  /** Ephemeral containers being started: a stop waits for them, then stops them too. */
  starting: Set<Promise<void>>;
}

export interface NodeLookup {
  runtime(node: string): Runtime;
  ip(node: string): string;
}

export function now(): string {
  return new Date().toISOString().replace(/\.\d+Z$/, 'Z');
}

export function runtimeId(): string {
  return randomBytes(32).toString('hex');
}

function parseUser(user: string | undefined): { uid?: number; gid?: number } {
  if (!user) return {};
  const [u, g] = user.split(':');
  const uid = u === 'root' ? 0 : Number(u);
  const gid = g === undefined ? undefined : g === 'root' ? 0 : Number(g);
  return {
    ...(Number.isInteger(uid) ? { uid } : {}),
    ...(gid !== undefined && Number.isInteger(gid) ? { gid } : {}),
  };
}

/** Follows a path inside a rootfs the way the container would see it (absolute links stay inside). */
async function resolveInRoot(root: string, path: string): Promise<boolean> {
  let p = posix.normalize(path);
  for (let hops = 0; hops < 40; hops++) {
    try {
      const st = await lstat(root + p);
      if (!st.isSymbolicLink()) return st.isFile() && (st.mode & 0o111) !== 0;
      const target = await readlink(root + p);
      p = target.startsWith('/') ? posix.normalize(target) : posix.join(posix.dirname(p), target);
    } catch {
      return false;
    }
  }
  return false;
}

async function findExecutable(c: BackedContainer, cmd: string, env: string[]): Promise<boolean> {
  if (cmd.includes('/')) return resolveInRoot(c.rootfs, posix.resolve(c.process.cwd, cmd));
  const path = env.find((e) => e.startsWith('PATH='))?.slice(5) ?? '/usr/sbin:/usr/bin:/sbin:/bin';
  for (const dir of path.split(':')) {
    if (dir && (await resolveInRoot(c.rootfs, posix.join(dir, cmd)))) return true;
  }
  return false;
}

/** A container the kubelet refuses before the runtime sees it (CreateContainerConfigError). */
class ConfigError extends Error {}

export class Kubelet {
  private readonly slot: Slot;
  private readonly pods: Store<Pod>;
  private readonly nodes: NodeLookup;
  private readonly backed = new Map<string, BackedPod>();
  private readonly usedIndexes = new Set<number>();
  /** Every cgroup path handed to runc, so a leftover check can look for them. */
  readonly cgroupPaths = new Set<string>();

  constructor(slot: Slot, pods: Store<Pod>, nodes: NodeLookup) {
    this.slot = slot;
    this.pods = pods;
    this.nodes = nodes;
  }

  get runcRoot(): string {
    return `${this.slot.dir}/runc`;
  }

  isBacked(pod: Pod): boolean {
    return this.backed.has(pod.metadata.uid);
  }

  container(pod: Pod, name: string): BackedContainer | undefined {
    return this.backed.get(pod.metadata.uid)?.containers.find((c) => c.name === name);
  }

  /** Where the container's stdout and stderr go (the pods/log source). */
  logPath(pod: Pod, container: string): string | undefined {
    const bp = this.backed.get(pod.metadata.uid);
    return bp && this.container(pod, container) ? `${bp.dir}/${container}.log` : undefined;
  }

  private allocIndex(): number {
    for (let i = 2; i < 250; i++) {
      if (!this.usedIndexes.has(i)) {
        this.usedIndexes.add(i);
        return i;
      }
    }
    throw new Error('pod subnet exhausted (247 backed pods per emulator)');
  }

  /** Marks the pod waiting with a reason, as a kubelet does when it cannot start it. */
  waiting(pod: Pod, reason: string, message: string): void {
    pod.status.containerStatuses = pod.spec.containers.map((c) => ({
      name: c.name,
      image: c.image,
      imageID: '',
      ready: false,
      started: false,
      restartCount: 0,
      state: { waiting: { reason, message } },
    }));
    pod.status.conditions = [
      { type: 'PodScheduled', status: 'True', lastProbeTime: null, lastTransitionTime: now() },
      {
        type: 'Ready',
        status: 'False',
        reason: 'ContainersNotReady',
        message: `containers with unready status: [${pod.spec.containers.map((c) => c.name).join(' ')}]`,
        lastProbeTime: null,
        lastTransitionTime: now(),
      },
    ];
    this.pods.touch(pod);
  }

  async start(pod: Pod): Promise<void> {
    const nodeName = pod.spec.nodeName ?? '';
    const images = new Map<string, Image>();
    for (const c of pod.spec.containers) {
      const img = await resolveImage(c.image);
      if (!img) {
        this.waiting(pod, 'ImagePullBackOff', `Back-off pulling image "${c.image}"`);
        return;
      }
      images.set(c.name, img);
    }
    const index = this.allocIndex();
    const hostNet = pod.spec.hostNetwork === true;
    const ip = hostNet ? this.nodes.ip(nodeName) : `${this.slot.net}.${index}`;
    const netns = hostNet ? null : `${PREFIX}${this.slot.n}-${pod.metadata.uid.slice(0, 8)}`;
    const bp: BackedPod = {
      uid: pod.metadata.uid,
      netns,
      index,
      ip,
      dir: `${this.slot.dir}/pods/${pod.metadata.uid}`,
      containers: [],
      stopping: false,
      starting: new Set(),
    };
    this.backed.set(bp.uid, bp);
    pod.status.hostIP = this.nodes.ip(nodeName);
    pod.status.hostIPs = [{ ip: pod.status.hostIP }];
    pod.status.startTime = now();
    this.waiting(pod, 'ContainerCreating', '');
    const rt = this.nodes.runtime(nodeName);
    try {
      if (netns) await createPodNetwork(this.slot, netns, index, ip);
      for (const c of pod.spec.containers) {
        await this.startContainer(pod, bp, c, images.get(c.name) as Image, rt, {});
      }
    } catch (e) {
      await this.stop(pod, 0);
      this.waiting(pod, 'CreateContainerError', (e as Error).message);
      return;
    }
    if (bp.stopping) return;
    pod.status.phase = 'Running';
    pod.status.podIP = ip;
    pod.status.podIPs = [{ ip }];
    pod.status.conditions = ['Initialized', 'Ready', 'ContainersReady', 'PodScheduled'].map(
      (type) => ({ type, status: 'True' as const, lastProbeTime: null, lastTransitionTime: now() }),
    );
    pod.status.containerStatuses = bp.containers.map((bc) => this.runningStatus(pod, bc, rt));
    this.pods.touch(pod);
  }

  private runningStatus(pod: Pod, bc: BackedContainer, rt: Runtime): ContainerStatus {
    const spec = [...pod.spec.containers, ...(pod.spec.ephemeralContainers ?? [])].find(
      (c) => c.name === bc.name,
    ) as Container;
    return {
      name: bc.name,
      image: spec.image,
      imageID: `${spec.image.includes('/') ? spec.image : `docker.io/library/${spec.image}`}@sha256:${bc.runtimeId.slice(0, 64)}`,
      containerID: `${rt}://${bc.runtimeId}`,
      ready: !bc.ephemeral,
      started: true,
      restartCount: 0,
      state: { running: { startedAt: now() } },
    };
  }

  private async startContainer(
    pod: Pod,
    bp: BackedPod,
    c: Container,
    img: Image,
    rt: Runtime,
    opts: { ephemeral?: boolean; pidNs?: string },
  ): Promise<BackedContainer> {
    const id = runtimeId();
    const bundle = `${bp.dir}/${c.name}`;
    const rootfs = `${bundle}/rootfs`;
    for (const d of ['upper', 'work', 'rootfs']) await mkdir(`${bundle}/${d}`, { recursive: true });
    await must('mount', [
      '-t',
      'overlay',
      'overlay',
      '-o',
      `lowerdir=${img.rootfs},upperdir=${bundle}/upper,workdir=${bundle}/work`,
      rootfs,
    ]);
    const bc: BackedContainer = {
      name: c.name,
      ephemeral: opts.ephemeral === true,
      runcId: `${PREFIX}${this.slot.n}-${id.slice(0, 12)}`,
      runtimeId: id,
      bundle,
      rootfs,
      cgroup: cgroupsPath(rt, id),
      process: { args: [], env: [], cwd: '/', uid: 0, gid: 0, caps: [] },
      execs: new Set(),
    };
    // Registered as soon as it is mounted, so a failure below still unmounts it.
    bp.containers.push(bc);
    const sc = c.securityContext ?? {};
    const psc = pod.spec.securityContext ?? {};
    const imgUser = parseUser(img.config.user);
    const uid = sc.runAsUser ?? psc.runAsUser ?? imgUser.uid ?? 0;
    const gid = sc.runAsGroup ?? psc.runAsGroup ?? imgUser.gid ?? 0;
    if ((sc.runAsNonRoot ?? psc.runAsNonRoot) === true && uid === 0) {
      // The kubelet's own check, before the runtime is asked.
      throw new ConfigError(
        `container's runAsUser breaks non-root policy (pod: "${pod.metadata.name}_${pod.metadata.namespace}(${pod.metadata.uid})", container: ${c.name})`,
      );
    }
    const args = c.command
      ? [...c.command, ...(c.args ?? [])]
      : [...(img.config.entrypoint ?? []), ...(c.args ?? img.config.cmd ?? [])];
    const env = [
      ...(img.config.env ?? []),
      `HOSTNAME=${pod.metadata.name}`,
      ...(c.env ?? []).map((e) => `${e.name}=${e.value ?? ''}`),
    ];
    const privileged = sc.privileged === true;
    bc.process = {
      args: args.length ? args : ['sh'],
      env,
      cwd: c.workingDir ?? img.config.workingDir ?? '/',
      uid,
      gid,
      caps: capabilities(privileged, sc.capabilities?.add, sc.capabilities?.drop),
    };
    await mkdir(`${rootfs}/etc`, { recursive: true });
    await writeFile(`${rootfs}/etc/hostname`, `${pod.metadata.name}\n`);
    await writeFile(
      `${rootfs}/etc/hosts`,
      `127.0.0.1\tlocalhost\n${bp.ip}\t${pod.metadata.name}\n`,
    );
    const cg = bc.cgroup;
    await this.recordCgroups([cg]);
    if (rt === 'cri-o') {
      // conmon is started first and stays in the node's network namespace.
      bc.monitor = await startSideProcess({
        argv: ['sleep', 'infinity'],
        argv0: `${bp.dir}/conmon-${c.name}`,
      });
      await joinCgroup(bc.monitor, `/crio-conmon-${id}`, '', (paths) => this.recordCgroups(paths));
    }
    // Started now for the lower PID; it joins its cgroup once runc made the container's.
    if (!bc.ephemeral && pod.metadata.annotations?.[NESTED_CONTAINER_ANNOTATION] === 'true') {
      bc.nested = await startSideProcess({
        argv: ['unshare', '--net', 'chroot', rootfs, 'sleep', '1000000'],
      });
    }
    const config = ociConfig({
      process: bc.process,
      rootfs,
      hostname: pod.metadata.name,
      netns: bp.netns ? `/run/netns/${bp.netns}` : null,
      hostPID: pod.spec.hostPID === true,
      ...(opts.pidNs ? { pidNs: opts.pidNs } : {}),
      privileged,
      cgroupsPath: cg,
    });
    await writeFile(`${bundle}/config.json`, JSON.stringify(config));
    bc.running = await runContainer(this.runcRoot, bundle, bc.runcId, `${bp.dir}/${c.name}.log`);
    if (bc.nested) {
      await joinCgroup(bc.nested, `${cg}/docker/${runtimeId()}`, cg, (paths) =>
        this.recordCgroups(paths),
      );
    }
    void bc.running.exited.then((code) => this.containerExited(pod, bp, bc, code));
    return bc;
  }

  /** Every cgroup path made for a container, in memory and on disk (a sweep after a crash reads it). */
  private async recordCgroups(paths: string[]): Promise<void> {
    for (const p of paths) this.cgroupPaths.add(p);
    await appendFile(`${this.slot.dir}/cgroups`, paths.map((p) => `${p}\n`).join(''));
  }

  private containerExited(pod: Pod, bp: BackedPod, bc: BackedContainer, code: number): void {
    bc.exitCode = code;
    if (bp.stopping) return;
    let cs = (
      bc.ephemeral ? pod.status.ephemeralContainerStatuses : pod.status.containerStatuses
    )?.find((s) => s.name === bc.name);
    if (bc.ephemeral && cs && !cs.containerID) {
      // Ended before its running status was written (a process that exits at once).
      const rt = this.nodes.runtime(pod.spec.nodeName ?? '');
      const spec = pod.spec.ephemeralContainers?.find((c) => c.name === bc.name);
      if (spec) {
        this.ephemeralStatus(pod, spec, this.runningStatus(pod, bc, rt));
        cs = pod.status.ephemeralContainerStatuses?.find((s) => s.name === bc.name);
      }
    }
    if (cs) {
      const startedAt = (cs.state.running?.startedAt as string | undefined) ?? now();
      cs.ready = false;
      cs.started = false;
      cs.state = {
        terminated: {
          exitCode: code,
          reason: code === 0 ? 'Completed' : 'Error',
          startedAt,
          finishedAt: now(),
          containerID: cs.containerID ?? '',
        },
      };
    }
    if (bc.ephemeral) {
      // An ephemeral container's end changes neither the pod's phase nor its readiness.
      this.pods.touch(pod);
      return;
    }
    const regular = bp.containers.filter((c) => !c.ephemeral);
    if (regular.every((c) => c.exitCode !== undefined)) {
      pod.status.phase = regular.every((c) => c.exitCode === 0) ? 'Succeeded' : 'Failed';
    }
    for (const cond of pod.status.conditions ?? []) {
      if (cond.type === 'Ready' || cond.type === 'ContainersReady') cond.status = 'False';
    }
    this.pods.touch(pod);
  }

  private ephemeralStatus(pod: Pod, c: EphemeralContainer, status: ContainerStatus): void {
    pod.status.ephemeralContainerStatuses ??= [];
    const list = pod.status.ephemeralContainerStatuses;
    const at = list.findIndex((s) => s.name === c.name);
    if (at >= 0) list[at] = status;
    else list.push(status);
    this.pods.touch(pod);
  }

  private ephemeralWaiting(pod: Pod, c: EphemeralContainer, reason: string, message = ''): void {
    this.ephemeralStatus(pod, c, {
      name: c.name,
      image: c.image,
      imageID: '',
      ready: false,
      started: false,
      restartCount: 0,
      state: { waiting: { reason, ...(message && { message }) } },
    });
  }

  /**
   * Starts an ephemeral container in the pod's network namespace and, when it names a running
   * target container, that container's PID namespace. It runs once: when its process ends it
   * stays terminated.
   */
  startEphemeral(pod: Pod, c: EphemeralContainer): Promise<void> {
    const bp = this.backed.get(pod.metadata.uid);
    if (!bp || bp.stopping || pod.status.phase !== 'Running') {
      this.ephemeralWaiting(
        pod,
        c,
        'ContainerCreating',
        bp ? '' : 'the pod runs nowhere on this machine (unbacked)',
      );
      return Promise.resolve();
    }
    const p = (async () => {
      this.ephemeralWaiting(pod, c, 'ContainerCreating');
      const img = await resolveImage(c.image);
      if (!img) {
        this.ephemeralWaiting(pod, c, 'ImagePullBackOff', `Back-off pulling image "${c.image}"`);
        return;
      }
      const target = c.targetContainerName
        ? bp.containers.find((t) => t.name === c.targetContainerName && !t.ephemeral)
        : undefined;
      const pid = target?.exitCode === undefined ? target?.running?.pid : undefined;
      const rt = this.nodes.runtime(pod.spec.nodeName ?? '');
      try {
        const bc = await this.startContainer(pod, bp, c, img, rt, {
          ephemeral: true,
          ...(pid ? { pidNs: `/proc/${pid}/ns/pid` } : {}),
        });
        if (bc.exitCode === undefined)
          this.ephemeralStatus(pod, c, this.runningStatus(pod, bc, rt));
      } catch (e) {
        const reason =
          e instanceof ConfigError ? 'CreateContainerConfigError' : 'CreateContainerError';
        this.ephemeralWaiting(pod, c, reason, (e as Error).message);
      }
    })();
    bp.starting.add(p);
    void p.finally(() => bp.starting.delete(p));
    return p;
  }

  /**
   * Starts `argv` in the container as its user. Returns an error message worded like
   * containerd's when the executable does not exist.
   */
  async exec(
    pod: Pod,
    bc: BackedContainer,
    argv: string[],
    stdin: boolean,
  ): Promise<ChildProcess | string> {
    const cmd = argv[0] ?? '';
    if (!(await findExecutable(bc, cmd, bc.process.env))) {
      return `failed to exec in container: failed to start exec "${runtimeId()}": OCI runtime exec failed: exec failed: unable to start container process: exec: "${cmd}": executable file not found in $PATH: unknown`;
    }
    const bp = this.backed.get(pod.metadata.uid);
    const file = `${bp?.dir ?? this.slot.dir}/exec-${randomBytes(6).toString('hex')}.json`;
    const child = await execProcess(
      this.runcRoot,
      bc.runcId,
      file,
      processSpec({ ...bc.process, args: argv }),
      stdin,
    );
    bc.execs.add(child);
    child.on('exit', () => {
      bc.execs.delete(child);
      void rm(file, { force: true });
    });
    return child;
  }

  /** Stops the pod's containers: SIGTERM, SIGKILL after the grace period, then frees everything. */
  async stop(pod: Pod, graceSeconds: number): Promise<void> {
    const bp = this.backed.get(pod.metadata.uid);
    if (!bp || bp.stopping) return;
    bp.stopping = true;
    await Promise.allSettled([...bp.starting]);
    const live = bp.containers.filter((c) => c.running && c.exitCode === undefined);
    if (graceSeconds > 0 && live.length) {
      await Promise.all(live.map((c) => killContainer(this.runcRoot, c.runcId, 'TERM')));
      await Promise.race([
        Promise.all(live.map((c) => c.running?.exited)),
        new Promise((r) => setTimeout(r, graceSeconds * 1000)),
      ]);
    }
    await Promise.all(
      bp.containers.map(async (c) => {
        if (c.running && c.exitCode === undefined) {
          await killContainer(this.runcRoot, c.runcId, 'KILL');
          await Promise.race([c.running.exited, new Promise((r) => setTimeout(r, 5000))]);
        }
        for (const e of c.execs) e.kill('SIGKILL');
        if (c.nested) await stopSideProcess(c.nested);
        await deleteContainer(this.runcRoot, c.runcId);
        // The nested cgroup made the container's in hierarchies runc does not use.
        if (c.nested) await removeCgroups([c.cgroup]);
        if (c.monitor) await stopSideProcess(c.monitor);
        await command('umount', [c.rootfs]);
      }),
    );
    if (bp.netns) await deletePodNetwork(this.slot, bp.netns, bp.index);
    await rm(bp.dir, { recursive: true, force: true });
    this.usedIndexes.delete(bp.index);
    this.backed.delete(bp.uid);
  }

  async stopAll(): Promise<void> {
    // stop() reads nothing but the uid, which also covers pods already gone from the store.
    await Promise.all(
      [...this.backed.keys()].map((uid) => this.stop({ metadata: { uid } } as Pod, 0)),
    );
  }
}
