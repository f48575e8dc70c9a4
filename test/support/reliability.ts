import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  closeSync,
  createReadStream,
  existsSync,
  constants as fsConstants,
  openSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { assertBuiltIsCurrent, BUILT } from './kubedump.ts';
import { run, until } from './process.ts';

export { until };

import { HOST_PID_NS, reportedPids, tcpdumpRuns as runsIn } from './leftovers.ts';
import { kubectl } from './real-cluster.ts';

// Helpers for the reliability suite (test/reliability): a kubedump process in
// the background with its debug log, the remote tcpdump seen from this
// machine's process table, capture files read back by tshark, a loopback TCP
// proxy with fault switches, and a restart of the real API server alone.

// The reliability suite runs the built executable: it must be current.
assertBuiltIsCurrent();

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface LogEntry {
  message: string;
  [key: string]: unknown;
}

export function readLog(file: string): LogEntry[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as LogEntry);
}

/** The PIDs the remote wrapper reported (tcpdump's own, in the namespace it runs in). */
export const remotePids = reportedPids;

/**
 * Is the tcpdump with this host PID alive? Only for privileged runs, whose
 * helper pod shares the host's PID namespace; an unprivileged run's PID is
 * the pod's own: use remoteTcpdumps() from leftovers.ts.
 */
export function tcpdumpRuns(hostPid: number): boolean {
  return runsIn({ pid: hostPid, pidNs: HOST_PID_NS, where: 'host' });
}

/** Resident set size of a process in KiB (0 when it is gone). */
export function rssKiB(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

export interface Background {
  child: ChildProcess;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
  stderr(): string;
}

/** Starts kubedump (argv after the executable) in the background. */
export function background(
  args: string[],
  env: NodeJS.ProcessEnv,
  stdout: 'ignore' | 'pipe' = 'ignore',
): Background {
  const child = spawn(BUILT, args, { env, stdio: ['ignore', stdout, 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (c) => (stderr += c));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>(
    (r) => child.on('close', (code, signal) => r({ code, signal, at: performance.now() })),
  );
  return { child, exited, stderr: () => stderr };
}

/** An extcap capture into a fifo that a reader drains into `file`, as dumpcap does. */
export function extcapIntoFifo(dir: string, args: string[], env: NodeJS.ProcessEnv) {
  const fifo = join(dir, `fifo-${Math.random().toString(16).slice(2)}`);
  assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
  const bg = background(['--capture', '--fifo', fifo, ...args], env);
  const chunks: Buffer[] = [];
  const reader = createReadStream(fifo);
  reader.on('data', (c) => chunks.push(c as Buffer));
  reader.on('error', () => {});
  const closed = new Promise<void>((r) => reader.once('close', () => r()));
  const firstBytes = new Promise<void>((r) => reader.once('data', () => r()));
  // A kubedump that died before opening the fifo would leave the reader's
  // open() blocked forever (and this test process with it): be its writer.
  let opened = false;
  reader.once('open', () => (opened = true));
  void bg.exited.then(() => {
    if (opened) return;
    try {
      closeSync(openSync(fifo, fsConstants.O_WRONLY | fsConstants.O_NONBLOCK));
    } catch {
      // the reader is gone already
    }
  });
  return {
    ...bg,
    reader,
    chunks,
    /** The first bytes reached the reader. */
    firstBytes,
    /** The reader saw EOF (or was destroyed). */
    closed,
    /** Waits for the reader to see EOF, then writes what it read to `file`. */
    async save(file: string): Promise<number> {
      await Promise.race([closed, sleep(5000)]);
      reader.destroy();
      const data = Buffer.concat(chunks);
      writeFileSync(file, data);
      return data.length;
    },
  };
}

/**
 * Reads a capture file back with tshark: it must be a capture file with no
 * "cut short" or damage message. Returns the number of packets.
 */
export async function assertValidCapture(
  file: string,
  env?: NodeJS.ProcessEnv,
  options: { allowCutLastRecord?: boolean } = {},
): Promise<number> {
  if (options.allowCutLastRecord) {
    // SIGKILL cannot be caught, and the kernel may stop a write(2) between two
    // pages: the last record may be cut, never one before it. Check the whole
    // records, then read them with tshark.
    const data = readFileSync(file);
    const whole = data.subarray(0, wholeRecordsLength(data));
    assert.ok(data.length - whole.length < 16 + 262144, 'more than one record is missing');
    file = `${file}.whole`;
    writeFileSync(file, whole);
  }
  const read = await run(['tshark', '-r', file, '-T', 'fields', '-e', 'frame.number'], {
    timeoutMs: 60_000,
    ...(env && { env }),
  });
  assert.doesNotMatch(read.stderr, /cut short|damaged|isn't a capture file|unknown format/i);
  assert.equal(read.code, 0, `tshark -r ${file}: ${read.stderr}`);
  return read.stdout.split('\n').filter(Boolean).length;
}

/** The length of the pcap header plus every whole record at the start of `data`. */
export function wholeRecordsLength(data: Buffer): number {
  assert.ok(data.length >= 24, 'no pcap header');
  const magic = data.readUInt32LE(0);
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  let at = 24;
  while (at + 16 <= data.length) {
    const next = at + 16 + (le ? data.readUInt32LE(at + 8) : data.readUInt32BE(at + 8));
    if (next > data.length) break;
    at = next;
  }
  return at;
}

/** Counts whole pcap records in a buffer; fails on a torn record. */
export function countPcapRecords(data: Buffer): number {
  assert.ok(data.length >= 24, 'no pcap header');
  const magic = data.readUInt32LE(0);
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  let at = 24;
  let n = 0;
  while (at + 16 <= data.length) {
    const incl = le ? data.readUInt32LE(at + 8) : data.readUInt32BE(at + 8);
    at += 16 + incl;
    n++;
  }
  assert.equal(at, data.length, 'the stream ends in a torn record');
  return n;
}

/**
 * The one line an error must be: no stack trace, one line (tshark's root
 * warning and auto's line naming the mode it took, a notice, aside).
 */
export function oneLine(stderr: string): string {
  assert.doesNotMatch(stderr, /\bat .*\.(ts|js|cjs|mjs):\d+|^\s+at /m, 'no stack trace');
  const lines = stderr
    .trim()
    .split('\n')
    .filter((l) => l && !/^Running as user "root"|^kubedump: mode: \S+ for /.test(l));
  assert.equal(lines.length, 1, `expected one line, got: ${stderr}`);
  return lines[0] as string;
}

// ---------------------------------------------------------------- proxy ---

export interface TcpProxy {
  port: number;
  url: string;
  /** Bytes sent from clients to the server, over all connections. */
  upstreamBytes: number;
  /** Limit client→server bytes per second (null: no limit). */
  throttle(bytesPerSecond: number | null): void;
  /** Accept connections but never forward or answer them. */
  blackhole(on: boolean): void;
  /**
   * A silent network drop: live connections stay open but nothing passes
   * either way any more (bytes are discarded), and new ones are held unanswered.
   */
  stall(on: boolean): void;
  /** Cuts every live connection now; returns how many. */
  dropAll(): number;
  close(): Promise<void>;
}

/** A loopback TCP proxy in front of 127.0.0.1:targetPort (TLS passes through untouched). */
export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  const live = new Set<Socket>();
  let rate: number | null = null;
  let hole = false;
  let stalled = false;
  const proxy: TcpProxy = {
    port: 0,
    url: '',
    upstreamBytes: 0,
    throttle: (r) => {
      rate = r;
    },
    blackhole: (on) => {
      hole = on;
    },
    stall: (on) => {
      stalled = on;
    },
    dropAll() {
      const n = live.size;
      for (const s of live) s.destroy();
      live.clear();
      return n;
    },
    close: () =>
      new Promise<void>((resolve) => {
        proxy.dropAll();
        server.close(() => resolve());
      }),
  };
  const server: Server = createServer((client) => {
    live.add(client);
    client.on('close', () => live.delete(client));
    client.on('error', () => {});
    if (hole || stalled) return;
    const upstream = connect(targetPort, '127.0.0.1');
    live.add(upstream);
    upstream.on('close', () => {
      live.delete(upstream);
      client.destroy();
    });
    client.on('close', () => upstream.destroy());
    upstream.on('error', () => {});
    upstream.on('data', (chunk: Buffer) => {
      if (stalled) return;
      if (!client.write(chunk)) upstream.pause();
    });
    client.on('drain', () => upstream.resume());
    client.on('data', (chunk: Buffer) => {
      if (stalled) return;
      proxy.upstreamBytes += chunk.length;
      if (!upstream.write(chunk)) client.pause();
      if (rate !== null) {
        client.pause();
        setTimeout(() => client.resume(), Math.ceil((chunk.length / rate) * 1000));
      }
    });
    upstream.on('drain', () => client.resume());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  proxy.port = typeof address === 'object' && address ? address.port : 0;
  proxy.url = `https://127.0.0.1:${proxy.port}`;
  return proxy;
}

/** A copy of a kubeconfig whose clusters point at `server`. */
export function kubeconfigFor(source: string, server: string, file: string): string {
  const text = readFileSync(source, 'utf8').replace(
    /^(\s*"?server"?\s*:\s*"?)[^"\s,]+/gm,
    `$1${server}`,
  );
  writeFileSync(file, text, { mode: 0o600 });
  return file;
}

// ----------------------------------------------------- real API server ---

/** scripts/local-k8s's run directory, found the way that script finds it. */
export const K8S_DIR = process.env.KUBEDUMP_K8S_DIR || '/var/lib/kubedump-k8s';

function procStart(pid: number): string {
  return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ')[19] ?? '';
}

/**
 * Restarts only the real cluster's kube-apiserver: the same argv as
 * scripts/local-k8s started it with, the same log, and the pid file that
 * `local-k8s down|status` read (PID and start time) updated.
 */
export async function restartRealApiServer(kubeconfig: string): Promise<void> {
  // Hold local-k8s's own lock meanwhile: a concurrent `local-k8s up` would
  // otherwise see the world half down and rebuild all of it.
  const holder = spawn('flock', [`${K8S_DIR}.lock`, 'sh', '-c', 'echo held; read _'], {
    stdio: ['pipe', 'pipe', 'ignore'],
  });
  await new Promise((resolve) => holder.stdout?.once('data', resolve));
  try {
    await restartHeld(kubeconfig);
  } finally {
    holder.stdin?.end();
  }
}

async function restartHeld(kubeconfig: string): Promise<void> {
  const pidFile = join(K8S_DIR, 'pids', 'kube-apiserver.pid');
  const [pidText] = readFileSync(pidFile, 'utf8').trim().split(' ');
  const pid = Number(pidText);
  const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  assert.match(argv[0] ?? '', /kube-apiserver$/);
  process.kill(pid, 'SIGTERM');
  // v1.20 lets open watches (the controller-manager's) run out their 60 s
  // timeout before it exits; after a grace period, kill it as a kubelet would.
  const stopped = () => !existsSync(`/proc/${pid}`);
  const graceful = await until('kube-apiserver to stop', stopped, 20_000).then(
    () => true,
    () => false,
  );
  if (!graceful) {
    process.kill(pid, 'SIGKILL');
    await until('kube-apiserver to die', stopped, 10_000);
  }
  // detached: the daemon gets its own session, as `setsid` gives it in local-k8s.
  const logFd = openSync(join(K8S_DIR, 'logs', 'kube-apiserver.log'), 'a');
  const child = spawn(argv[0] as string, argv.slice(1), {
    stdio: ['ignore', logFd, logFd],
    detached: true,
  });
  closeSync(logFd);
  child.unref();
  const newPid = child.pid as number;
  await until('the new kube-apiserver process', () => procStart(newPid) !== '', 5000);
  writeFileSync(pidFile, `${newPid} ${procStart(newPid)}\n`);
  await until(
    'kube-apiserver to be ready',
    async () =>
      (await kubectl(['get', '--raw', '/readyz'], { kubeconfig, timeoutMs: 3000 })).stdout === 'ok',
    60_000,
  );
}

/** `capture POD -n demo -p|--mode unprivileged [--max-packets N] --log-level L --log-file LOG -w OUT`, as tests run it. */
export function captureArgs(
  pod: string,
  options: { out: string; log: string; level?: string; privileged?: boolean; maxPackets?: number },
): string[] {
  return [
    'capture',
    pod,
    '-n',
    'demo',
    ...(options.privileged ? ['-p'] : ['--mode', 'unprivileged']),
    ...(options.maxPackets ? ['--max-packets', String(options.maxPackets)] : []),
    ...['--log-level', options.level ?? 'debug', '--log-file', options.log],
    ...['-w', options.out],
  ];
}
