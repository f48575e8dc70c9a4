import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  assertNoLeftovers,
  podPidNamespace,
  remoteTcpdumps,
  tcpdumpRuns,
  untilTcpdumpsEnd,
} from '../support/leftovers.ts';
import { background, readLog, rssKiB, sleep, until } from '../support/reliability.ts';
import { openWorld, type World, wiresharkHome } from '../support/worlds.ts';

// A reader that stops reading for 10 s while the pod sends at full speed:
// kubedump's memory stays bounded (backpressure reaches the exec stream), and
// every record tcpdump wrote reaches the reader whole. On the real cluster
// (exec v4 through the real API server and kubelet).

/** Counts pcap records in a stream, keeping only the incomplete tail. */
class RecordCounter {
  records = 0;
  bytes = 0;
  #tail: Buffer = Buffer.alloc(0);
  #header = false;
  push(chunk: Buffer) {
    this.bytes += chunk.length;
    let data: Buffer = this.#tail.length ? Buffer.concat([this.#tail, chunk]) : chunk;
    if (!this.#header) {
      if (data.length < 24) {
        this.#tail = data;
        return;
      }
      assert.equal(data.readUInt32LE(0), 0xa1b2c3d4, 'pcap magic');
      data = data.subarray(24);
      this.#header = true;
    }
    let at = 0;
    while (data.length - at >= 16) {
      const length = 16 + data.readUInt32LE(at + 8);
      if (data.length - at < length) break;
      at += length;
      this.records++;
    }
    this.#tail = Buffer.from(data.subarray(at));
  }
  /** The stream ended: nothing torn may remain. */
  end() {
    assert.ok(this.#header, 'no pcap header');
    assert.equal(this.#tail.length, 0, 'the stream ends in a torn record');
  }
}

describe('a stalled reader on the real cluster', () => {
  let world: World;
  let home: ReturnType<typeof wiresharkHome>;
  let dir: string;
  let webPidNs: string;
  before(async () => {
    world = await openWorld('real');
    home = wiresharkHome(world.kubeconfig);
    dir = mkdtempSync(join(tmpdir(), 'kubedump-slow-'));
    const made = await world.kubectl([
      'exec',
      '-n',
      'demo',
      'web',
      '--',
      'dd',
      'if=/dev/zero',
      'of=/var/www/big',
      'bs=1M',
      'count=4',
    ]);
    assert.equal(made.code, 0, made.stderr);
    webPidNs = await podPidNamespace(world.kubeconfig, 'demo', 'web');
  });
  after(async () => {
    try {
      await world?.kubectl(['exec', '-n', 'demo', 'web', '--', 'rm', '-f', '/var/www/big']);
      if (world) await assertNoLeftovers(world);
    } finally {
      await world?.close();
    }
  });

  test('memory stays bounded and no record is lost or torn', async () => {
    const log = join(dir, 'slow.log');
    const SECONDS = 18;
    // Full-speed HTTP over the pod's loopback for the whole capture; it ends by itself.
    const loop = `end=$(( $(date +%s) + ${SECONDS + 2} )); while [ $(date +%s) -lt $end ]; do wget -q -O /dev/null http://127.0.0.1/big; done`;
    const load = spawn(
      'kubectl',
      ['--kubeconfig', world.kubeconfig, 'exec', '-n', 'demo', 'web', '--', 'sh', '-c', loop],
      { stdio: 'ignore' },
    );
    const bg = background(
      [
        'capture',
        'web',
        '-n',
        'demo',
        '-f',
        'tcp port 80',
        '--max-seconds',
        String(SECONDS),
        '--log-level',
        'debug',
        '--log-file',
        log,
        '-w',
        '-',
      ],
      home.env,
      'pipe',
    );
    const stdout = bg.child.stdout;
    assert.ok(stdout);
    const counter = new RecordCounter();
    stdout.on('data', (c: Buffer) => counter.push(c));
    const pid = bg.child.pid as number;
    const remote = () => remoteTcpdumps(log, { privileged: false, pidNs: webPidNs, pod: 'web' });
    const samples: { t: number; rss: number; phase: string }[] = [];
    let phase = 'before';
    const sampler = setInterval(
      () => samples.push({ t: Date.now(), rss: rssKiB(pid), phase }),
      200,
    );
    try {
      await until(
        'tcpdump to listen',
        () => readLog(log).some((e) => /listening on/.test(String(e.line ?? ''))),
        30_000,
      );
      await sleep(2000);
      assert.ok(remote().some(tcpdumpRuns), 'the remote tcpdump runs in pod web');
      const beforeStall = counter.bytes;
      assert.ok(beforeStall > 1_000_000, `the load is too light: ${beforeStall} bytes in 2 s`);
      // The reader stops reading for 10 s.
      stdout.pause();
      phase = 'stalled';
      const stallStart = counter.bytes;
      await sleep(10_000);
      assert.ok(counter.bytes - stallStart < 1_000_000, 'the pause did not stop the reader');
      phase = 'after';
      stdout.resume();
      const end = await bg.exited;
      assert.equal(end.code, 0, bg.stderr());
      counter.end();
    } finally {
      clearInterval(sampler);
      load.kill('SIGKILL');
      if (bg.child.exitCode === null) bg.child.kill('SIGKILL');
    }
    // What the remote tcpdump says it wrote, from its own stderr in the debug log.
    const captured = readLog(log)
      .map((e) => /^(\d+) packets? captured$/.exec(String(e.line ?? ''))?.[1])
      .find((n) => n !== undefined);
    assert.ok(captured !== undefined, 'the remote tcpdump reported its count');
    const peak = (p: string) => Math.max(...samples.filter((s) => s.phase === p).map((s) => s.rss));
    console.log(
      `# stalled reader: tcpdump captured ${captured}, reader got ${counter.records} records (${Math.round(counter.bytes / 1e6)} MB); RSS KiB peak before ${peak('before')}, during the 10 s stall ${peak('stalled')}, after ${peak('after')}`,
    );
    assert.equal(counter.records, Number(captured), 'records lost between tcpdump and the reader');
    // Bounded: a stall of 10 s at full speed would be hundreds of MB if buffered.
    assert.ok(peak('stalled') < peak('before') + 64 * 1024, 'memory grew during the stall');
    await untilTcpdumpsEnd(remote(), 5000);
  });
});
