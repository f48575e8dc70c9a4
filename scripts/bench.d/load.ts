// Benchmarks 4 and 6: capture under load (pcap records delivered vs what the
// remote tcpdump reports) and kubedump's peak RSS, streaming and with a
// stalled consumer. Load: `cat /dev/zero | nc` from pod client to a
// `nc -l` sink in pod web (busybox), as fast as the pod network goes.
import { type ChildProcess, spawn } from 'node:child_process';
import { createReadStream, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  KUBECTL,
  KUBEDUMP,
  kubectl,
  log,
  must,
  pcapRecords,
  RssSampler,
  rows,
  run,
  sleep,
  waitExit,
} from './lib.ts';

const PORT = 5201;

interface TcpdumpStats {
  captured: number;
  received: number;
  dropped: number;
}

function tcpdumpStats(logText: string): TcpdumpStats | undefined {
  const find = (what: string) => {
    const m = new RegExp(`"line":"(\\d+) packets ${what}"`).exec(logText);
    return m ? Number(m[1]) : undefined;
  };
  const captured = find('captured');
  const received = find('received by filter');
  const dropped = find('dropped by kernel');
  if (captured === undefined || received === undefined || dropped === undefined) return undefined;
  return { captured, received, dropped };
}

/** The largest V8 heap and buffers outside it that kubedump's debug log reported (its "memory" lines). */
function heapPeaks(logText: string): { heapMb: number; externalMb: number } {
  let heapMb = 0;
  let externalMb = 0;
  for (const line of logText.split('\n')) {
    if (!line.includes('"message":"memory"')) continue;
    const m = JSON.parse(line) as { heapMb: number; externalMb: number };
    heapMb = Math.max(heapMb, m.heapMb);
    externalMb = Math.max(externalMb, m.externalMb);
  }
  return { heapMb, externalMb };
}

async function waitFor(test: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!test()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

function readOr(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/** Generator: sink in web, `cat /dev/zero | nc` in client for `seconds`. Both end by themselves. */
async function generate(kubeconfig: string, webIp: string, seconds: number): Promise<void> {
  const sink = spawn(
    KUBECTL,
    kubectl(kubeconfig, [
      'exec',
      '-n',
      'demo',
      'web',
      '--',
      'timeout',
      String(seconds + 10),
      'sh',
      '-c',
      // busybox nc -l hangs up when its stdin ends: keep stdin open.
      `sleep ${seconds + 10} | nc -l -p ${PORT} >/dev/null`,
    ]).slice(1),
    { stdio: 'ignore' },
  );
  await sleep(700);
  await run(
    kubectl(kubeconfig, [
      'exec',
      '-n',
      'demo',
      'client',
      '--',
      'timeout',
      String(seconds),
      'sh',
      '-c',
      `cat /dev/zero | nc ${webIp} ${PORT}`,
    ]),
    { timeoutMs: (seconds + 30) * 1000 },
  );
  await waitExit(sink);
}

interface LoadResult {
  stats: TcpdumpStats;
  records: number;
  bytes: number;
  truncated: number;
  peakMb: number;
  peakAnonMb: number;
  peakFileMb: number;
  heapMb: number;
  externalMb: number;
  firstHalfMb: number;
  secondHalfMb: number;
  seconds: number;
}

/** One capture under load; `stallMs` > 0 stops reading kubedump's stdout for that long. */
async function captureUnderLoad(
  kubeconfig: string,
  webIp: string,
  seconds: number,
  stallMs: number,
): Promise<LoadResult> {
  const dir = mkdtempSync(join(tmpdir(), 'kubedump-bench-load-'));
  const logFile = join(dir, 'kubedump.log');
  // The output is a fifo, as Wireshark's: reading it pauses like a stalled dumpcap.
  const fifo = join(dir, 'fifo');
  await must(['mkfifo', fifo]);
  const child: ChildProcess = spawn(
    KUBEDUMP,
    [
      'capture',
      'web',
      '-n',
      'demo',
      '--keep-binary',
      '--mode',
      'unprivileged',
      '-f',
      `tcp port ${PORT}`,
      '-w',
      fifo,
      '--log-level',
      'debug',
      '--log-file',
      logFile,
      '--kubeconfig',
      kubeconfig,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const chunks: Buffer[] = [];
  const out = createReadStream(fifo, { highWaterMark: 1 << 20 });
  out.on('data', (c) => chunks.push(c as Buffer));
  const drained = new Promise<void>((r) => out.once('close', () => r()));
  let stderr = '';
  child.stderr?.on('data', (c) => (stderr += c));
  const rss = new RssSampler(child.pid as number);
  try {
    await waitFor(() => readOr(logFile).includes('listening on'), 30_000, 'tcpdump to listen');
    const loadStart = rss.samples.at(-1)?.t ?? 0;
    const load = generate(kubeconfig, webIp, seconds);
    if (stallMs > 0) {
      out.pause();
      await sleep(stallMs);
      out.resume();
    }
    await load;
    await sleep(1500);
    const loadEnd = rss.samples.at(-1)?.t ?? 0;
    child.kill('SIGINT');
    const code = await waitExit(child);
    if (code !== 0) throw new Error(`kubedump capture exited ${code}: ${stderr}`);
    await drained;
    rss.stop();
    const stats = tcpdumpStats(readOr(logFile));
    if (!stats) throw new Error(`no tcpdump statistics in ${logFile}`);
    const pcap = pcapRecords(Buffer.concat(chunks));
    const mid = (loadStart + loadEnd) / 2;
    return {
      stats,
      ...pcap,
      peakMb: rss.peakMb(),
      peakAnonMb: rss.peakMb(0, Number.POSITIVE_INFINITY, 'anonKb'),
      peakFileMb: rss.peakMb(0, Number.POSITIVE_INFINITY, 'fileKb'),
      ...heapPeaks(readOr(logFile)),
      // Flat is judged on anonymous memory: the executable's pages (file-backed,
      // shared, reclaimable) are mapped in as code paths are first used.
      firstHalfMb: rss.peakMb(loadStart, mid, 'anonKb'),
      secondHalfMb: rss.peakMb(mid, Number.POSITIVE_INFINITY, 'anonKb'),
      seconds,
    };
  } finally {
    rss.stop();
    child.kill('SIGKILL');
    out.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

function memory(r: LoadResult): string {
  // File-backed pages are the executable's own (code, read-only data, the
  // bundle); the anonymous ones hold V8's heap, buffers and the rest of malloc.
  return `${r.peakMb.toFixed(0)} MB RSS: ${r.peakFileMb.toFixed(0)} MB the executable's pages, ${r.peakAnonMb.toFixed(0)} MB anon (V8 heap ≤ ${r.heapMb} MB, buffers ≤ ${r.externalMb} MB)`;
}

export async function benchLoad(kubeconfig: string, seconds: number): Promise<void> {
  const webIp = (
    await must(
      kubectl(kubeconfig, ['get', 'pod', '-n', 'demo', 'web', '-o', 'jsonpath={.status.podIP}']),
    )
  ).stdout.trim();
  const r = await captureUnderLoad(kubeconfig, webIp, seconds, 0);
  const lost = r.stats.captured - r.records;
  log(`load: ${JSON.stringify(r)}`);
  rows.push({
    benchmark: `4. capture under load, real cluster, ${seconds} s \`cat /dev/zero \\| nc\` pod→pod`,
    kubedump: `${r.records} records, ${(r.bytes / 1e6).toFixed(0)} MB (${(r.bytes / 1e6 / seconds).toFixed(0)} MB/s)`,
    peer: `tcpdump: ${r.stats.captured} captured, ${r.stats.dropped} dropped by kernel`,
    // "Lost" is between tcpdump and the reader; the kernel's drops happen
    // before tcpdump sees a packet and are stated beside it.
    ratio: `${lost} lost after tcpdump; kernel dropped ${r.stats.dropped} of ${r.stats.received} (${((100 * r.stats.dropped) / Math.max(1, r.stats.received)).toFixed(0)} %)`,
    target: '0 lost after tcpdump',
    met: lost === 0 && r.truncated === 0,
  });
  rows.push({
    benchmark: '6. peak memory during 4',
    kubedump: memory(r),
    peer: `anon peak, 1st / 2nd half of the load: ${r.firstHalfMb.toFixed(0)} / ${r.secondHalfMb.toFixed(0)} MB`,
    ratio: '–',
    target: '≤ 100 MB, flat',
    met: r.peakMb <= 100 && r.secondHalfMb <= r.firstHalfMb * 1.1,
  });
  const stall = 10;
  const s = await captureUnderLoad(kubeconfig, webIp, stall + 2, stall * 1000);
  const lostS = s.stats.captured - s.records;
  log(`stall: ${JSON.stringify(s)}`);
  rows.push({
    benchmark: `6. peak memory, consumer stalled ${stall} s under load`,
    kubedump: memory(s),
    peer: `anon peak, 1st / 2nd half: ${s.firstHalfMb.toFixed(0)} / ${s.secondHalfMb.toFixed(0)} MB; ${lostS} records lost, tcpdump dropped ${s.stats.dropped}`,
    ratio: '–',
    target: '≤ 100 MB, flat',
    met: s.peakMb <= 100 && s.secondHalfMb <= s.firstHalfMb * 1.1 && lostS === 0,
  });
}
