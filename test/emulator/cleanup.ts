// Finding and removing what an emulator left on the host: containers, processes, mounts,
// network namespaces, links, cgroups, state directories.
import { readdir, readFile, readlink, rm, rmdir } from 'node:fs/promises';
import { command } from './runtime/command.ts';
import { PREFIX, pidAlive, STATE_ROOT, slotInfo, slotOwner } from './runtime/host.ts';
import { CGROUP_PARENTS } from './runtime/oci.ts';
import { deleteContainer, killContainer, listContainers } from './runtime/runc.ts';

async function ls(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch {
    return [];
  }
}

async function slots(): Promise<number[]> {
  return (await ls(STATE_ROOT)).filter((d) => /^\d+$/.test(d)).map(Number);
}

function netnsPattern(slot?: number): RegExp {
  return slot === undefined ? new RegExp(`^${PREFIX}\\d+-`) : new RegExp(`^${PREFIX}${slot}-`);
}

function linkPattern(slot?: number): RegExp {
  return slot === undefined
    ? new RegExp(`^${PREFIX}\\d+(v\\d+)?$`)
    : new RegExp(`^${PREFIX}${slot}(v\\d+)?$`);
}

async function netnsList(slot?: number): Promise<string[]> {
  const re = netnsPattern(slot);
  return (await ls('/run/netns')).filter((n) => re.test(n));
}

async function links(slot?: number): Promise<string[]> {
  const r = await command('ip', ['-o', 'link', 'show']);
  const re = linkPattern(slot);
  return r.stdout
    .split('\n')
    .map((l) => /^\d+:\s+([^:@\s]+)/.exec(l)?.[1] ?? '')
    .filter((n) => re.test(n));
}

async function mounts(slot?: number): Promise<string[]> {
  const dir = slot === undefined ? `${STATE_ROOT}/` : `${slotInfo(slot).dir}/`;
  const ns = slot === undefined ? `/run/netns/${PREFIX}` : `/run/netns/${PREFIX}${slot}-`;
  const text = await readFile('/proc/self/mounts', 'utf8');
  return text
    .split('\n')
    .map((l) => l.split(' ')[1] ?? '')
    .filter((m) => m.startsWith(dir) || m.startsWith(ns));
}

/** Live (non-zombie) processes that belong to an emulator: its runc processes and containers. */
async function processes(slot?: number): Promise<{ pid: number; what: string }[]> {
  const dir = slot === undefined ? STATE_ROOT : slotInfo(slot).dir;
  const out: { pid: number; what: string }[] = [];
  for (const p of await ls('/proc')) {
    if (!/^\d+$/.test(p) || Number(p) === process.pid) continue;
    try {
      const stat = await readFile(`/proc/${p}/stat`, 'utf8');
      if (/\) Z /.test(stat)) continue;
      const cmd = (await readFile(`/proc/${p}/cmdline`, 'utf8')).split('\0').join(' ').trim();
      let root = '';
      try {
        root = await readlink(`/proc/${p}/root`);
      } catch {}
      if (cmd.includes(`${dir}/`) || root.startsWith(`${dir}/`))
        out.push({ pid: Number(p), what: cmd || root });
    } catch {}
  }
  return out;
}

async function cgroupLeftovers(paths: Iterable<string>): Promise<string[]> {
  const ctrls = await ls('/sys/fs/cgroup');
  const found: string[] = [];
  for (const p of paths) {
    for (const c of ctrls) {
      const d = `/sys/fs/cgroup/${c}${p}`;
      if ((await ls(d)).length) found.push(d);
    }
  }
  return found;
}

async function recordedCgroups(slot: number): Promise<string[]> {
  try {
    return (await readFile(`${slotInfo(slot).dir}/cgroups`, 'utf8')).split('\n').filter(Boolean);
  } catch {
    return [];
  }
}

export interface CleanScope {
  /** Only this emulator instance; all instances when absent. */
  slot?: number;
  /** Cgroup paths the instance handed to runc (they carry no emulator prefix). */
  cgroupPaths?: Iterable<string>;
}

/** Lists everything an emulator left behind; empty means clean. */
export async function checkClean(scope: CleanScope = {}): Promise<string[]> {
  const { slot } = scope;
  const found: string[] = [];
  for (const n of slot === undefined ? await slots() : [slot]) {
    for (const id of await listContainers(`${slotInfo(n).dir}/runc`))
      found.push(`runc container ${id}`);
  }
  for (const n of await netnsList(slot)) found.push(`netns ${n}`);
  for (const l of await links(slot)) found.push(`link ${l}`);
  for (const m of await mounts(slot)) found.push(`mount ${m}`);
  for (const p of await processes(slot)) found.push(`process ${p.pid} ${p.what}`);
  for (const c of await cgroupLeftovers(scope.cgroupPaths ?? [])) found.push(`cgroup ${c}`);
  if (slot !== undefined && (await ls(slotInfo(slot).dir)).length)
    found.push(`dir ${slotInfo(slot).dir}`);
  return found;
}

/** Removes an instance's leftovers (the owner must be dead or be the caller closing it). */
export async function sweepSlot(n: number, extraCgroups: Iterable<string> = []): Promise<void> {
  const s = slotInfo(n);
  const root = `${s.dir}/runc`;
  for (const id of await listContainers(root)) {
    await killContainer(root, id, 'KILL');
  }
  for (const p of await processes(n)) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {}
  }
  await new Promise((r) => setTimeout(r, 100));
  for (const id of await listContainers(root)) await deleteContainer(root, id);
  for (const m of (await mounts(n)).sort().reverse()) await command('umount', ['-l', m]);
  for (const ns of await netnsList(n)) await command('ip', ['netns', 'del', ns]);
  for (const l of (await links(n)).sort().reverse()) await command('ip', ['link', 'del', l]);
  // Deepest first: a nested container's cgroup lives inside its container's.
  const cgroups = [...new Set([...(await recordedCgroups(n)), ...extraCgroups])].sort(
    (a, b) => b.split('/').length - a.split('/').length,
  );
  const ctrls = await ls('/sys/fs/cgroup');
  for (const p of cgroups) {
    for (const c of ctrls) await rmdir(`/sys/fs/cgroup/${c}${p}`).catch(() => {});
  }
  // Parents runc made for /docker/<id> and /k8s.io/<id>; rmdir keeps them if anything else lives there.
  if (cgroups.length) {
    for (const c of ctrls)
      for (const p of CGROUP_PARENTS) await rmdir(`/sys/fs/cgroup/${c}/${p}`).catch(() => {});
  }
  await rm(s.dir, { recursive: true, force: true });
}

/** Sweeps instances whose owner process is gone (all instances with `all`); returns them. */
export async function sweep(all = false): Promise<number[]> {
  const swept: number[] = [];
  const candidates = new Set(await slots());
  // Prefixed links or netns without a state dir (a run killed mid-teardown).
  for (const name of [...(await netnsList()), ...(await links())]) {
    const m = new RegExp(`^${PREFIX}(\\d+)`).exec(name);
    if (m) candidates.add(Number(m[1]));
  }
  for (const n of candidates) {
    const owner = await slotOwner(n);
    if (!all && owner !== undefined && pidAlive(owner)) continue;
    await sweepSlot(n);
    swept.push(n);
  }
  return swept;
}
