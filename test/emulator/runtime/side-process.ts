// Processes a real node keeps beside a container, outside runc: CRI-O's conmon
// monitor (its own cgroup `crio-conmon-<id>`, the node's network namespace,
// started before the container) and a container nested inside the target
// (docker-in-docker: a cgroup below the target's, another network namespace).
// They carry the container ID in their cgroup paths, as on real nodes, so the
// privileged PID lookup meets them here too.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, rmdir, writeFile } from 'node:fs/promises';

const CGROUP_ROOT = '/sys/fs/cgroup';

export interface SideProcess {
  child: ChildProcess;
  exited: Promise<void>;
  /** Cgroup paths this process made, deepest first (removed in that order). */
  cgroups: string[];
}

/** The hierarchies to join: every v1 one but cpuset (a new cpuset has no CPUs), or the v2 root. */
async function hierarchies(): Promise<string[]> {
  if (existsSync(`${CGROUP_ROOT}/cgroup.procs`)) return [CGROUP_ROOT];
  const entries = await readdir(CGROUP_ROOT, { withFileTypes: true }).catch(() => []);
  return entries
    .filter((e) => e.isDirectory() && e.name !== 'cpuset')
    .map((e) => `${CGROUP_ROOT}/${e.name}`);
}

/** Every cgroup directory from `cgroup` up to, not including, `below`. */
function madePaths(cgroup: string, below: string): string[] {
  const paths: string[] = [];
  for (let p = cgroup; p.length > below.length && p !== '/'; p = p.slice(0, p.lastIndexOf('/')))
    paths.push(p);
  return paths;
}

/**
 * Starts `argv`; it joins a cgroup with `joinCgroup`, so it can start before
 * the cgroup it joins exists (a lower PID than the container's).
 */
export async function startSideProcess(options: {
  argv: string[];
  /** Shown as the process's argv[0]: a path under the emulator's state, so a sweep finds it. */
  argv0?: string;
}): Promise<SideProcess> {
  const [file, ...args] = options.argv;
  const child = spawn(file as string, args, {
    stdio: 'ignore',
    ...(options.argv0 ? { argv0: options.argv0 } : {}),
  });
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.once('error', () => resolve());
  });
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
  return { child, exited, cgroups: [] };
}

/**
 * Moves the process into `cgroup` in every hierarchy. `below` is the part of
 * the path that belongs to someone else (runc); the directories under it are
 * this process's, recorded (before they exist, so a crash leaves them
 * recorded) and removed when it stops.
 */
export async function joinCgroup(
  side: SideProcess,
  cgroup: string,
  below: string,
  record: (paths: string[]) => Promise<void>,
): Promise<void> {
  side.cgroups = madePaths(cgroup, below);
  await record(side.cgroups);
  let joined = 0;
  let failure = '';
  for (const h of await hierarchies()) {
    try {
      await mkdir(`${h}${cgroup}`, { recursive: true });
      await writeFile(`${h}${cgroup}/cgroup.procs`, String(side.child.pid));
      joined++;
    } catch (e) {
      failure = (e as Error).message;
    }
  }
  if (!joined)
    throw new Error(`cannot move PID ${side.child.pid} into cgroup ${cgroup}: ${failure}`);
}

/** Kills it, waits for it to end, and removes its cgroups. */
export async function stopSideProcess(side: SideProcess): Promise<void> {
  if (side.child.exitCode === null && side.child.signalCode === null) side.child.kill('SIGKILL');
  await Promise.race([side.exited, new Promise((r) => setTimeout(r, 5000))]);
  await removeCgroups(side.cgroups);
}

export async function removeCgroups(paths: string[]): Promise<void> {
  const hs = (await readdir(CGROUP_ROOT).catch(() => [])).map((h) => `${CGROUP_ROOT}/${h}`);
  if (existsSync(`${CGROUP_ROOT}/cgroup.procs`)) hs.push(CGROUP_ROOT);
  for (const p of paths) for (const h of hs) await rmdir(`${h}${p}`).catch(() => {});
}
