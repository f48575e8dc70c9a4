// Benchmark 7: three pods under load in one capture. kubedump captures the
// three pods of a label selector into one pcapng; the peer is three parallel
// `kubectl exec POD -- tcpdump -w -` (the same static tcpdump, the same
// argv). Load: a ring of `cat /dev/zero | nc` streams, pod i to pod i+1, so
// every pod sends and receives. Both count the records they were handed
// against what each remote tcpdump says it captured; runs interleave.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  cpuSeconds,
  KUBECTL,
  KUBEDUMP,
  kubectl,
  log,
  median,
  must,
  pcapRecords,
  ROOT,
  ratio,
  rows,
  run,
  sleep,
  waitExit,
} from './lib.ts';

const NS = 'demo';
const LABEL = 'app=bench-many';
const PODS = ['bench-many-0', 'bench-many-1', 'bench-many-2'];
const PORT = 5201;
const LOCAL_TCPDUMP = join(ROOT, 'build', 'tcpdump', 'linux-amd64');
const NAME = 'bench-tcpdump';
const FILTER = `tcp port ${PORT}`;
/** kubedump's own tcpdump argv (src/capture/tcpdump-command.ts), for the peer. */
const TCPDUMP_ARGS = ['-i', 'any', '-U', '--immediate-mode', '-w', '-', FILTER];

interface Run {
  records: number;
  captured: number;
  seconds: number;
  /** CPU seconds the capturing processes used, start-up included, up to the stop. */
  cpu: number;
}

function pod(name: string) {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: NS, labels: { app: 'bench-many' } },
    spec: {
      nodeName: 'kubedump-node', // the bundled cluster has no scheduler
      terminationGracePeriodSeconds: 0,
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      containers: [
        {
          name: 'app',
          image: 'docker.io/library/busybox:1.36',
          imagePullPolicy: 'Never',
          command: ['sleep', '3600'],
        },
      ],
    },
  };
}

/** Sum of "N packets captured" lines (tcpdump's own count, one line per tcpdump). */
function capturedIn(text: string): number[] {
  return [...text.matchAll(/(\d+) packets captured/g)].map((m) => Number(m[1]));
}

/** Enhanced Packet Blocks in a little-endian pcapng stream (whole blocks only). */
function pcapngPackets(data: Buffer): number {
  let at = 0;
  let n = 0;
  while (at + 12 <= data.length) {
    const length = data.readUInt32LE(at + 4);
    if (length < 12 || at + length > data.length) break;
    if (data.readUInt32LE(at) === 6) n++;
    at += length;
  }
  return n;
}

/** The ring load for `seconds`: sinks first, then every pod streams to the next one. */
async function load(kubeconfig: string, ips: string[], seconds: number): Promise<void> {
  const k = (args: string[]) => kubectl(kubeconfig, args).slice(1);
  const sinks = PODS.map((p) =>
    spawn(
      KUBECTL,
      k([
        'exec',
        '-n',
        NS,
        p,
        '--',
        'timeout',
        String(seconds + 5),
        'sh',
        '-c',
        // busybox nc -l hangs up when its stdin ends: keep stdin open.
        `sleep ${seconds + 5} | nc -l -p ${PORT} >/dev/null`,
      ]),
      { stdio: 'ignore' },
    ),
  );
  await sleep(700);
  await Promise.all(
    PODS.map((p, i) =>
      run(
        kubectl(kubeconfig, [
          'exec',
          '-n',
          NS,
          p,
          '--',
          'timeout',
          String(seconds),
          'sh',
          '-c',
          `cat /dev/zero | nc ${ips[(i + 1) % PODS.length]} ${PORT}`,
        ]),
        { timeoutMs: (seconds + 30) * 1000 },
      ),
    ),
  );
  for (const s of sinks) s.kill('SIGKILL');
  await Promise.all(sinks.map(waitExit));
}

function collect(child: ChildProcess): { out: () => Buffer; err: () => string } {
  const chunks: Buffer[] = [];
  let err = '';
  child.stdout?.on('data', (c: Buffer) => chunks.push(c));
  child.stderr?.on('data', (c) => (err += c));
  return { out: () => Buffer.concat(chunks), err: () => err };
}

/** A run whose tcpdumps did not all report their counts: it cannot say what was lost. */
class MissingStats extends Error {}

/** One run; a run without every count is logged and done again (at most twice). */
async function counted(what: () => Promise<Run>): Promise<Run> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await what();
    } catch (error) {
      if (!(error instanceof MissingStats) || attempt === 3) throw error;
      log(`3 pods: ${error.message}; again`);
    }
  }
}

async function waitFor(test: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!test()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

async function kubedumpRun(kubeconfig: string, ips: string[], seconds: number): Promise<Run> {
  const dir = mkdtempSync(join(tmpdir(), 'kubedump-bench-many-'));
  const logFile = join(dir, 'kubedump.log');
  const readLog = () => {
    try {
      return readFileSync(logFile, 'utf8');
    } catch {
      return '';
    }
  };
  const child = spawn(
    KUBEDUMP,
    [
      'capture',
      '-l',
      LABEL,
      '-n',
      NS,
      '--keep-binary',
      '-f',
      FILTER,
      '-w',
      '-',
      '--log-level',
      'debug',
      '--log-file',
      logFile,
      '--kubeconfig',
      kubeconfig,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const got = collect(child);
  try {
    await waitFor(
      () => (readLog().match(/listening on/g) ?? []).length >= PODS.length,
      30_000,
      'kubedump’s three tcpdumps to listen',
    );
    await load(kubeconfig, ips, seconds);
    await sleep(500);
    const cpu = cpuSeconds(child.pid ? [child.pid] : []);
    child.kill('SIGINT');
    const code = await waitExit(child);
    if (code !== 0) throw new Error(`kubedump exited ${code}: ${got.err()}`);
    const captured = capturedIn(readLog());
    if (captured.length !== PODS.length) {
      const ends = readLog()
        .split('\n')
        .filter((l) => /remote tcpdump ended|packets|stop failed/.test(l));
      throw new MissingStats(`kubedump: ${captured.length} of 3 tcpdump counts; ${ends.join(' ')}`);
    }
    return {
      records: pcapngPackets(got.out()),
      captured: captured.reduce((a, b) => a + b, 0),
      seconds,
      cpu,
    };
  } finally {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

async function peerRun(kubeconfig: string, ips: string[], seconds: number): Promise<Run> {
  const children = PODS.map((p) =>
    spawn(
      KUBECTL,
      kubectl(kubeconfig, ['exec', '-n', NS, p, '--', `/tmp/${NAME}`, ...TCPDUMP_ARGS]).slice(1),
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    ),
  );
  const got = children.map(collect);
  try {
    await waitFor(
      () => got.every((g) => /listening on/.test(g.err())),
      30_000,
      'the three tcpdumps to listen',
    );
    await load(kubeconfig, ips, seconds);
    await sleep(500);
    const cpu = cpuSeconds(children.flatMap((c) => (c.pid ? [c.pid] : [])));
    // SIGINT: tcpdump flushes and prints its counts, which kubectl relays.
    await Promise.all(
      PODS.map((p) =>
        must(kubectl(kubeconfig, ['exec', '-n', NS, p, '--', 'killall', '-INT', NAME])),
      ),
    );
    await Promise.all(children.map(waitExit));
    const captured = got.flatMap((g) => capturedIn(g.err()));
    if (captured.length !== PODS.length) {
      throw new MissingStats(`peer: ${captured.length} of 3 tcpdump counts`);
    }
    return {
      records: got.reduce((n, g) => n + pcapRecords(g.out()).records, 0),
      captured: captured.reduce((a, b) => a + b, 0),
      seconds,
      cpu,
    };
  } finally {
    for (const c of children) c.kill('SIGKILL');
  }
}

async function setUp(kubeconfig: string): Promise<string[]> {
  const list = { apiVersion: 'v1', kind: 'List', items: PODS.map(pod) };
  await must(kubectl(kubeconfig, ['apply', '-f', '-']), { input: JSON.stringify(list) });
  await must(
    kubectl(kubeconfig, [
      'wait',
      '--for=condition=Ready',
      'pod',
      '-l',
      LABEL,
      '-n',
      NS,
      '--timeout=90s',
    ]),
  );
  // The peer's tcpdump, uploaded once, as a by-hand user would.
  for (const p of PODS) {
    await must([
      'sh',
      '-c',
      `tar -C "$1" -cf - --transform "s,^tcpdump$,${NAME}," tcpdump | "$2" --kubeconfig "$3" exec -i -n "$4" "$5" -- tar -xf - -C /tmp`,
      'sh',
      LOCAL_TCPDUMP,
      KUBECTL,
      kubeconfig,
      NS,
      p,
    ]);
  }
  const ips = await Promise.all(
    PODS.map(async (p) =>
      (
        await must(
          kubectl(kubeconfig, ['get', 'pod', '-n', NS, p, '-o', 'jsonpath={.status.podIP}']),
        )
      ).stdout.trim(),
    ),
  );
  return ips;
}

async function tearDown(kubeconfig: string): Promise<void> {
  await run(
    kubectl(kubeconfig, [
      'delete',
      'pod',
      '-l',
      LABEL,
      '-n',
      NS,
      '--grace-period=0',
      '--wait=true',
    ]),
    { timeoutMs: 90_000 },
  );
}

/**
 * `runs` interleaved rounds (after one discarded warm-up round, which also
 * leaves kubedump's binary in the pods), `seconds` of load each.
 */
export async function benchLoadMany(
  kubeconfig: string,
  runs: number,
  seconds: number,
): Promise<void> {
  const started = performance.now();
  const ips = await setUp(kubeconfig);
  const kd: Run[] = [];
  const peer: Run[] = [];
  try {
    for (let round = -1; round < runs; round++) {
      const order = round % 2 === 0 ? ['kd', 'peer'] : ['peer', 'kd'];
      for (const who of order) {
        const r = await counted(() =>
          who === 'kd' ? kubedumpRun(kubeconfig, ips, seconds) : peerRun(kubeconfig, ips, seconds),
        );
        const at = ((performance.now() - started) / 1000).toFixed(0);
        log(`3 pods, ${who} (at ${at} s): ${JSON.stringify(r)}`);
        if (round >= 0) (who === 'kd' ? kd : peer).push(r);
      }
    }
  } finally {
    await tearDown(kubeconfig);
  }
  const rate = (r: Run) => r.records / r.seconds;
  const lost = (r: Run) => r.captured - r.records;
  const kdRate = median(kd.map(rate));
  const peerRate = median(peer.map(rate));
  const kdLost = median(kd.map(lost));
  const peerLost = median(peer.map(lost));
  // Per 100,000 records: the contenders capture different numbers of packets.
  const cpuPer = (runs: Run[]) =>
    `${median(runs.map((r) => (r.cpu / r.records) * 100_000)).toFixed(2)} CPU s per 100k records`;
  const took = ((performance.now() - started) / 1000).toFixed(0);
  log(`3 pods: ${runs} runs in ${took} s`);
  rows.push({
    benchmark: `7. capture under load, 3 pods (\`-l\`, one pcapng), real cluster, ${seconds} s ring of \`cat /dev/zero \\| nc\`, median of ${runs} interleaved runs (fewer than the other rows: about 10 s each)`,
    kubedump: `${kdRate.toFixed(0)} records/s, ${cpuPer(kd)}, ${kdLost} lost after tcpdump`,
    peer: `3 × \`kubectl exec POD -- tcpdump -w -\`: ${peerRate.toFixed(0)} records/s, ${cpuPer(peer)}, ${peerLost} lost`,
    ratio: ratio(kdRate, peerRate),
    target: '≥ 1×, 0 lost after tcpdump',
    met: kdRate >= peerRate && kd.every((r) => lost(r) === 0),
  });
}
