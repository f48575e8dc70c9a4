// Per-instance host resources: a state directory slot, the pod bridge, pod network namespaces.
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { command, must } from './command.ts';

export const STATE_ROOT = '/run/kubedump-emu';
export const PREFIX = 'kdemu';
const SLOTS = 16;

export interface Slot {
  n: number;
  dir: string;
  bridge: string;
  /** First three octets of the pod subnet, e.g. `10.77.0`. */
  net: string;
}

export function slotInfo(n: number): Slot {
  return { n, dir: `${STATE_ROOT}/${n}`, bridge: `${PREFIX}${n}`, net: `10.77.${n}` };
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function slotOwner(n: number): Promise<number | undefined> {
  try {
    return Number((await readFile(`${slotInfo(n).dir}/owner`, 'utf8')).trim()) || undefined;
  } catch {
    return undefined;
  }
}

/**
 * Claims a free slot (mkdir is the lock). A slot whose owner died is swept by `sweep` first.
 */
export async function claimSlot(sweep: (n: number) => Promise<void>): Promise<Slot> {
  await mkdir(STATE_ROOT, { recursive: true });
  for (let n = 0; n < SLOTS; n++) {
    const s = slotInfo(n);
    try {
      await mkdir(s.dir);
    } catch {
      const owner = await slotOwner(n);
      if (owner !== undefined && pidAlive(owner)) continue;
      if (owner === undefined) {
        // Being created right now by another process, or a crash before the owner was written.
        try {
          const st = await stat(s.dir);
          if (Date.now() - st.mtimeMs < 10_000) continue;
        } catch {}
      }
      await sweep(n);
      try {
        await mkdir(s.dir);
      } catch {
        continue;
      }
    }
    await writeFile(`${s.dir}/owner`, `${process.pid}\n`);
    return s;
  }
  throw new Error(`no free emulator slot under ${STATE_ROOT}`);
}

export async function releaseSlot(s: Slot): Promise<void> {
  await rm(s.dir, { recursive: true, force: true });
}

export async function createBridge(s: Slot, extraIps: string[]): Promise<void> {
  await command('ip', ['link', 'del', s.bridge]);
  await must('ip', ['link', 'add', s.bridge, 'type', 'bridge']);
  await must('ip', ['addr', 'add', `${s.net}.1/24`, 'dev', s.bridge]);
  for (const ip of extraIps) await must('ip', ['addr', 'add', `${ip}/32`, 'dev', s.bridge]);
  await must('ip', ['link', 'set', s.bridge, 'up']);
}

export async function deleteBridge(s: Slot): Promise<void> {
  await command('ip', ['link', 'del', s.bridge]);
}

/** A pod's netns with eth0 on the bridge; the host end is named `<bridge>v<index>`. */
export async function createPodNetwork(
  s: Slot,
  netns: string,
  index: number,
  ip: string,
): Promise<void> {
  const veth = `${s.bridge}v${index}`;
  await command('ip', ['netns', 'del', netns]);
  await command('ip', ['link', 'del', veth]);
  await must('ip', ['netns', 'add', netns]);
  await must('ip', ['link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns]);
  await must('ip', ['link', 'set', veth, 'master', s.bridge, 'up']);
  await must('ip', ['-n', netns, 'addr', 'add', `${ip}/24`, 'dev', 'eth0']);
  await must('ip', ['-n', netns, 'link', 'set', 'eth0', 'up']);
  await must('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
  await must('ip', ['-n', netns, 'route', 'add', 'default', 'via', `${s.net}.1`]);
}

export async function deletePodNetwork(s: Slot, netns: string, index: number): Promise<void> {
  // Deleting the netns destroys eth0 and with it the host end of the pair.
  await command('ip', ['netns', 'del', netns]);
  await command('ip', ['link', 'del', `${s.bridge}v${index}`]);
}
