// Benchmark 3: bytes per second from a process in a pod to a local file,
// through kubedump's exec pipeline vs `kubectl exec POD -- CMD > file`, with
// the CPU seconds each process used, and those the cluster's own processes
// used to serve it (both speak SPDY to the real cluster, WebSocket to the
// emulated one, which refuses SPDY); and, in the same rounds, kubedump's exec
// with nothing written: the path's own rate. Each run starts on a machine at
// rest (the last run's file removed and written back), and the row says how
// many of the machine's cores were busy: every byte crosses five processes
// on the same cores, so a client's CPU is taken from the relays' share.

import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  cpuSeconds,
  interleaved,
  KUBECTL,
  log,
  mbps,
  median,
  must,
  NODE,
  ROOT,
  ratio,
  rows,
} from './lib.ts';

const HARNESS = join(ROOT, 'scripts', 'bench.d', 'exec-copy.ts');
const BUNDLE = join(ROOT, 'build', 'bench', 'exec-copy.cjs');

/** The cluster's processes by part (API server, kubelet, ...): the PIDs of each. */
export type ServerParts = Record<string, readonly number[]>;

/** CPU seconds the whole machine has been busy (user, nice, system, irq, softirq, steal). */
function machineBusySeconds(): number {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]?.trim().split(/\s+/) ?? [];
  const [user, nice, system, , , irq, softirq, steal] = cpu.slice(1).map(Number);
  return [user, nice, system, irq, softirq, steal].reduce<number>((a, b) => a + (b ?? 0), 0) / 100;
}

function serverCpuSeconds(server: ServerParts): Record<string, number> {
  return Object.fromEntries(Object.entries(server).map(([part, pids]) => [part, cpuSeconds(pids)]));
}

/**
 * Runs `argv` with its stdout into `file` (what `> file` does), through bash,
 * whose `times` gives the CPU seconds (user + system) the command used, and
 * counts the CPU seconds each part of the `server` spent meanwhile.
 */
function runToFile(
  argv: string[],
  file: string,
  server: ServerParts,
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ ms: number; cpu: number; serverCpu: Record<string, number>; cores: number }> {
  const serverBefore = serverCpuSeconds(server);
  const busyBefore = machineBusySeconds();
  const script = 'f=$1; shift; "$@" >"$f"; s=$?; times >&2; exit $s';
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', script, 'bash', file, ...argv], {
      env,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr?.on('data', (c) => (stderr += c));
    child.on('close', (code) => {
      const ms = performance.now() - started;
      // The last line of `times`: the children's user and system time.
      const m = /(\d+)m([\d.]+)s (\d+)m([\d.]+)s\s*$/.exec(stderr);
      if (code !== 0 || !m) return reject(new Error(`${argv[0]} exited ${code}: ${stderr}`));
      const [mu, su, ms2, ss] = m.slice(1).map(Number) as [number, number, number, number];
      const serverAfter = serverCpuSeconds(server);
      const serverCpu = Object.fromEntries(
        Object.entries(serverAfter).map(([part, s]) => [part, s - (serverBefore[part] ?? 0)]),
      );
      // How many of the machine's cores were busy, on average, during the run.
      const cores = (machineBusySeconds() - busyBefore) / (ms / 1000);
      resolve({ ms, cpu: mu * 60 + su + ms2 * 60 + ss, serverCpu, cores });
    });
  });
}

/** A run's server CPU seconds as named samples: each part and their total. */
function byPart(prefix: string, cpu: Record<string, number>): Record<string, number> {
  const total = Object.values(cpu).reduce((a, b) => a + b, 0);
  return {
    [`${prefix}:total`]: total,
    ...Object.fromEntries(Object.entries(cpu).map(([p, s]) => [`${prefix}:${p}`, s])),
  };
}

/**
 * `server` names the processes that serve the cluster on this machine (API
 * server, kubelet, runtime, shims; the emulator): their CPU seconds are
 * counted per contender's run, part by part, as each relays every byte.
 */
export async function benchThroughput(
  label: string,
  kubeconfig: string,
  runs: number,
  mib: number,
  server: ServerParts,
): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'kubedump-bench-tp-'));
  const bytes = mib * 1024 * 1024;
  const command = ['dd', 'if=/dev/zero', 'bs=65536', `count=${mib * 16}`];
  const file = join(dir, 'out');
  const report = join(dir, 'report.json');
  // Bundled as the executable is, so neither side pays for compiling sources.
  await must([NODE, join(ROOT, 'scripts', 'sea', 'bundle.mjs'), HARNESS, BUNDLE]);
  // The executable carries V8's code cache for its bundle; the harness gets
  // one from its first (warm-up) run.
  const compileCache = { ...process.env, NODE_COMPILE_CACHE: join(dir, 'compile-cache') };
  let protocol = '';
  // Each run starts with no file to truncate and the last run's 512 MiB
  // written back (untimed): else whoever runs next pays for the page cache's
  // writeback of the file before it, on the same cores.
  const atRest = () => {
    rmSync(file, { force: true });
    if (spawnSync('sync').status !== 0) throw new Error('sync failed');
  };
  /** kubedump's exec into `outfile`, or with its bytes dropped (`-`). */
  const kubedump = async (outfile: string) => {
    atRest();
    // The whole process is timed, start-up included, as kubectl's is. The
    // V8 flag is the one the executable runs with (scripts/build EXEC_ARGV).
    const argv = [NODE, '--max-semi-space-size=1', BUNDLE, kubeconfig, 'demo', 'web', outfile];
    const r = await runToFile([...argv, '--', ...command], report, server, compileCache);
    const out = JSON.parse(readFileSync(report, 'utf8')) as { bytes: number; protocol: string };
    if (out.bytes !== bytes || (outfile !== '-' && statSync(outfile).size !== bytes)) {
      throw new Error(`kubedump exec delivered ${out.bytes} bytes, expected ${bytes}`);
    }
    protocol = out.protocol;
    return r;
  };
  const t = await interleaved(runs, {
    kd: async () => {
      const r = await kubedump(file);
      return { kd: r.ms, kdCpu: r.cpu, kdCores: r.cores, ...byPart('kdServer', r.serverCpu) };
    },
    k: async () => {
      const argv = [KUBECTL, '--kubeconfig', kubeconfig, 'exec', '-n', 'demo', 'web', '--'];
      atRest();
      const r = await runToFile([...argv, ...command], file, server);
      if (statSync(file).size !== bytes) throw new Error('kubectl exec delivered a short file');
      return { k: r.ms, kCpu: r.cpu, kCores: r.cores, ...byPart('kServer', r.serverCpu) };
    },
    // The path without the output: the same exec with its bytes dropped, the
    // most this client could reach if writing the file cost nothing.
    path: async () => ({ path: (await kubedump('-')).ms }),
  });
  rmSync(dir, { recursive: true, force: true });
  const rate = (ms: number[] | undefined) => bytes / (median(ms ?? []) / 1000);
  const [kd, k, path] = [rate(t.kd), rate(t.k), rate(t.path)];
  const perGiB = (cpu: number[] | undefined) => (median(cpu ?? []) / (mib / 1024)).toFixed(1);
  // The server's parts only where there is more than one.
  const serverCpu = (prefix: string) => {
    const parts = Object.keys(server);
    const whole = perGiB(t[`${prefix}:total`]);
    if (parts.length < 2) return `server ${whole}`;
    return `server ${whole}: ${parts.map((p) => `${p} ${perGiB(t[`${prefix}:${p}`])}`).join(', ')}`;
  };
  const cores = (key: string) =>
    `${median(t[key] ?? []).toFixed(1)} of ${availableParallelism()} cores busy`;
  const kdFigures = `${perGiB(t.kdCpu)} CPU s/GiB (${serverCpu('kdServer')}; ${cores('kdCores')}); nothing written: ${mbps(path)}, ${ratio(path, k)} kubectl`;
  const kCpu = `${perGiB(t.kCpu)} CPU s/GiB (${serverCpu('kServer')}; ${cores('kCores')})`;
  log(
    `throughput ${label}: kubedump ${mbps(kd)} ${kdFigures} (${protocol}) kubectl ${mbps(k)} ${kCpu}`,
  );
  rows.push({
    benchmark: `3. exec throughput, ${label} (${mib} MiB \`dd\`, kubedump ${protocol.replace('.channel.k8s.io', '')})`,
    kubedump: `${mbps(kd)}, ${kdFigures}`,
    peer: `\`kubectl exec\` ${mbps(k)}, ${kCpu}`,
    ratio: ratio(kd, k),
    target: '≥ 1.2×',
    met: kd >= 1.2 * k,
  });
}
