// Shared pieces of `npm run bench`: processes, timing, statistics, the table.
import type { ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type Ran, run } from '../../test/support/kubedump.ts';

export const ROOT = resolve(import.meta.dirname, '..', '..');
export const KUBEDUMP = join(ROOT, 'extcap', 'kubedump');
export const NODE = join(ROOT, 'node_modules', '.bin', 'node');
export const KUBECTL = '/usr/bin/kubectl';
/** scripts/local-k8s's kubeconfig, found the way that script finds its run directory. */
export const K8S_DIR = process.env.KUBEDUMP_K8S_DIR || '/var/lib/kubedump-k8s';
export const REAL_KUBECONFIG = process.env.KUBEDUMP_REAL_KUBECONFIG || join(K8S_DIR, 'kubeconfig');

// The same process runner as the tests use.
export { type Ran, run };

/** Like run() but throws unless the exit code is 0. */
export async function must(
  argv: readonly string[],
  opts: Parameters<typeof run>[1] = {},
): Promise<Ran> {
  const r = await run(argv, opts);
  if (r.code !== 0) {
    throw new Error(`${argv.join(' ')} exited ${r.code}: ${r.stderr.slice(-2000)}`);
  }
  return r;
}

/** Times a command (wall clock, spawn to exit); throws on failure. */
export async function timed(argv: readonly string[], env?: NodeJS.ProcessEnv): Promise<number> {
  return (await must(argv, env ? { env } : {})).ms;
}

/**
 * Runs every contender once per round: one warm-up round that is discarded,
 * then `runs` rounds, each round in the opposite order of the one before so
 * that neither side always runs first (on a warmer or a colder machine).
 * A contender returns one time, or several named times (e.g. cold, then warm).
 */
export async function interleaved(
  runs: number,
  contenders: Record<string, () => Promise<number | Record<string, number>>>,
): Promise<Record<string, number[]>> {
  const times: Record<string, number[]> = {};
  const names = Object.keys(contenders);
  for (let round = -1; round < runs; round++) {
    const order = round % 2 === 0 ? names : [...names].reverse();
    for (const name of order) {
      const got = await (contenders[name] as () => Promise<number | Record<string, number>>)();
      if (round < 0) continue;
      const named = typeof got === 'number' ? { [name]: got } : got;
      for (const [key, value] of Object.entries(named)) {
        times[key] = [...(times[key] ?? []), value];
      }
    }
  }
  return times;
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

export function kubectl(kubeconfig: string, args: readonly string[]): string[] {
  return [KUBECTL, '--kubeconfig', kubeconfig, ...args];
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The CPU seconds (user + system) the processes have used so far; ended ones count 0. */
export function cpuSeconds(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      // Fields 14 and 15 (utime, stime), counted after the command name's ")".
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // the process ended
    }
  }
  return ticks / 100;
}

/** The processes whose command name is one of `names` or starts with one ending in "*". */
export function pidsNamed(names: readonly string[]): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let comm = '';
    try {
      comm = readFileSync(`/proc/${entry}/comm`, 'utf8').trim();
    } catch {
      continue;
    }
    const match = (n: string) => (n.endsWith('*') ? comm.startsWith(n.slice(0, -1)) : comm === n);
    if (names.some(match)) pids.push(Number(entry));
  }
  return pids;
}

/**
 * Peak resident set size of a process, sampled from /proc every `everyMs`:
 * VmRSS (everything, including the pages of the 110 MB executable that were
 * touched) and RssAnon (heap, buffers: what grows with load).
 */
export class RssSampler {
  readonly samples: { t: number; kb: number; anonKb: number; fileKb: number }[] = [];
  readonly #timer: NodeJS.Timeout;
  readonly #start = performance.now();
  constructor(pid: number, everyMs = 100) {
    this.#timer = setInterval(() => {
      try {
        const status = readFileSync(`/proc/${pid}/status`, 'utf8');
        const rss = /VmRSS:\s+(\d+)/.exec(status);
        const anon = /RssAnon:\s+(\d+)/.exec(status);
        const file = /RssFile:\s+(\d+)/.exec(status);
        if (rss && anon && file) {
          const t = performance.now() - this.#start;
          const kb = (m: RegExpExecArray) => Number(m[1]);
          this.samples.push({ t, kb: kb(rss), anonKb: kb(anon), fileKb: kb(file) });
        }
      } catch {
        // the process ended
      }
    }, everyMs);
  }
  stop(): void {
    clearInterval(this.#timer);
  }
  peakMb(
    from = 0,
    to = Number.POSITIVE_INFINITY,
    which: 'kb' | 'anonKb' | 'fileKb' = 'kb',
  ): number {
    let peak = 0;
    for (const s of this.samples) if (s.t >= from && s.t <= to) peak = Math.max(peak, s[which]);
    return peak / 1024;
  }
}

export function waitExit(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((r) => child.once('exit', (code) => r(code)));
}

/** Counts the records of a pcap byte stream (little- or big-endian, µs or ns). */
export function pcapRecords(data: Buffer): { records: number; bytes: number; truncated: number } {
  if (data.length < 24) return { records: 0, bytes: data.length, truncated: data.length };
  const magic = data.readUInt32LE(0);
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  let at = 24;
  let records = 0;
  while (at + 16 <= data.length) {
    const incl = le ? data.readUInt32LE(at + 8) : data.readUInt32BE(at + 8);
    if (at + 16 + incl > data.length) break;
    at += 16 + incl;
    records++;
  }
  return { records, bytes: data.length, truncated: data.length - at };
}

// ---- the table ----

export interface Row {
  benchmark: string;
  kubedump: string;
  peer: string;
  ratio: string;
  target: string;
  met: boolean | undefined;
}

export const rows: Row[] = [];

export function ms(x: number): string {
  return `${Math.round(x)} ms`;
}

export function mbps(bytesPerSecond: number): string {
  return `${(bytesPerSecond / 1e6).toFixed(0)} MB/s`;
}

export function ratio(a: number, b: number): string {
  return `${(a / b).toFixed(2)}×`;
}

export function table(list: readonly Row[]): string {
  const head = ['Benchmark', 'kubedump', 'Peer', 'Ratio', 'Target', 'Met'];
  const lines = list.map((r) => [
    r.benchmark,
    r.kubedump,
    r.peer,
    r.ratio,
    r.target,
    r.met === undefined ? '–' : r.met ? 'yes' : '**no**',
  ]);
  const out = [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`];
  for (const l of lines) out.push(`| ${l.join(' | ')} |`);
  return out.join('\n');
}

export function log(message: string): void {
  process.stderr.write(`[bench] ${message}\n`);
}
