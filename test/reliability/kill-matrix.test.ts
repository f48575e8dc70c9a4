import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type Emulator, startEmulator } from '../emulator/index.ts';
import { BUILT, run } from '../support/kubedump.ts';
import {
  assertNoLeftovers,
  podPidNamespace,
  type RemoteTcpdump,
  remoteTcpdumps,
  tcpdumpRuns,
  untilTcpdumpsEnd,
  uploadedFiles,
} from '../support/leftovers.ts';
import {
  assertValidCapture,
  type Background,
  background,
  captureArgs,
  countPcapRecords,
  extcapIntoFifo,
  kubeconfigFor,
  readLog,
  sleep,
  startTcpProxy,
  type TcpProxy,
  until,
  wholeRecordsLength,
} from '../support/reliability.ts';
import { wiresharkHome } from '../support/worlds.ts';

// The kill matrix: {SIGTERM, SIGINT, SIGKILL} × {connecting, uploading, helper
// Pending, capturing idle, capturing under load} × {unprivileged, privileged},
// on the emulated cluster (its pods run on this machine, so the remote
// tcpdump is visible in /proc, through the PID namespace of the pod or, for
// the hostPID helper, the host's). Every cell proves it reached its phase before
// the signal. SIGTERM is Wireshark's stop (extcap into a fifo), SIGINT a
// terminal's Ctrl-C (CLI into a file), SIGKILL a crash (CLI into a file).
// Helper pod Pending exists only in privileged mode: 27 cells. Then a Debian
// target and two pods in one pcapng, capturing, under each signal.

const SIGNALS = ['SIGTERM', 'SIGINT', 'SIGKILL'] as const;
const PHASES = ['connecting', 'uploading', 'pending', 'idle', 'load'] as const;
const MODES = ['unprivileged', 'privileged'] as const;
type Phase = (typeof PHASES)[number];

/** Matches nothing the demo pods send: an idle capture. */
const IDLE_FILTER = 'udp port 9';
const HELPER_LABEL = 'app.kubernetes.io/managed-by';
/** The helper timeout of the Pending cells: their run's wait, after which a never-started helper is abandoned. */
const PENDING_WAIT_S = 5;
/** A helper must end by itself this soon after its client died, whatever killed it. */
const HELPER_LIFETIME_AFTER_CLIENT_MS = 60_000;

/**
 * A copy of a pcapng file cut after its last whole block: SIGKILL may stop a
 * write between two pages, so only the last block may be cut, never one before.
 */
function wholePcapngBlocks(file: string): string {
  const data = readFileSync(file);
  let at = 0;
  while (at + 12 <= data.length) {
    const next = at + data.readUInt32LE(at + 4);
    if (next <= at || next > data.length) break;
    at = next;
  }
  assert.ok(at > 0, `${file}: no whole pcapng block`);
  assert.ok(data.length - at < 16 + 262144 + 32, 'more than one block is missing');
  writeFileSync(`${file}.whole`, data.subarray(0, at));
  return `${file}.whole`;
}

describe('kill matrix on the emulated cluster', () => {
  let emulator: Emulator;
  let proxy: TcpProxy;
  let home: ReturnType<typeof wiresharkHome>;
  let dir: string;
  /** Helper pods and tcpdumps a SIGKILL left behind, with the time of the kill. */
  const killed: { helpers: { name: string; at: number }[]; pids: RemoteTcpdump[] } = {
    helpers: [],
    pids: [],
  };
  /** The PID namespace of pod web's container, where an unprivileged tcpdump runs. */
  let webPidNs: string;
  const exitTimes: number[] = [];
  let cells = 0;

  before(async () => {
    emulator = await startEmulator();
    proxy = await startTcpProxy(Number(new URL(emulator.url).port));
    dir = mkdtempSync(join(tmpdir(), 'kubedump-kill-'));
    const viaProxy = kubeconfigFor(emulator.kubeconfigPath, proxy.url, join(dir, 'kubeconfig'));
    home = wiresharkHome(viaProxy);
    // A file for the load generator to fetch over the pod's loopback.
    const made = await inPod('web', 'dd', 'if=/dev/zero', 'of=/www/big', 'bs=1M', 'count=4');
    assert.equal(made.code, 0, made.stderr);
    webPidNs = await podPidNamespace(emulator.kubeconfigPath, 'demo', 'web');
  });
  after(async () => {
    console.log(
      `# kill matrix: ${cells} cells; SIGTERM/SIGINT exit times ms: max ${Math.round(Math.max(...exitTimes))}, all ${exitTimes.map(Math.round).join(' ')}`,
    );
    try {
      if (emulator)
        await assertNoLeftovers({ name: 'kill matrix', kubeconfig: emulator.kubeconfigPath });
    } finally {
      await proxy?.close();
      await emulator?.close();
    }
  });

  const helpers = () =>
    emulator.api.cluster.pods
      .list()
      .filter((p) => p.metadata.labels?.[HELPER_LABEL] === 'kubedump');
  /** Helper pods other than those SIGKILL cells left for the next run's sweep. */
  const ownHelpers = () =>
    helpers().filter((p) => !killed.helpers.some((k) => k.name === p.metadata.name));
  const inPod = (pod: string, ...command: string[]) =>
    run(
      [
        'kubectl',
        '--kubeconfig',
        emulator.kubeconfigPath,
        'exec',
        '-n',
        'demo',
        pod,
        '--',
        ...command,
      ],
      { timeoutMs: 30_000 },
    );

  /** Private upload directories in the pod's /tmp. */
  const uploads = async () =>
    (await inPod('web', 'ls', '-a', '/tmp')).stdout.split('\n').filter((e) => /kubedump/.test(e));

  /** Full-speed traffic inside the target pod for a while (bounded: it ends by itself). */
  function startLoad(seconds: number) {
    const loop = `end=$(( $(date +%s) + ${seconds} )); while [ $(date +%s) -lt $end ]; do wget -q -O /dev/null http://127.0.0.1/big; done`;
    const child = spawn(
      'kubectl',
      [
        '--kubeconfig',
        emulator.kubeconfigPath,
        'exec',
        '-n',
        'demo',
        'web',
        '--',
        'sh',
        '-c',
        loop,
      ],
      { stdio: 'ignore' },
    );
    return child;
  }

  // The private directories a run's log names (it names them before making them).
  const privateDirs = (log: string) =>
    readLog(log)
      .filter((e) => e.message === 'making a private directory')
      .map((e) => `/${String(e.name)}/`);

  const listening = (log: string) =>
    readLog(log).some((e) => /listening on/.test(String(e.line ?? '')));

  async function reach(
    phase: Phase,
    log: string,
    bg: Background,
    base: { upload: number; requests: number },
  ) {
    const alive = () => bg.child.exitCode === null && bg.child.signalCode === null;
    switch (phase) {
      case 'connecting':
        // The API server holds every answer for 2.5 s: once kubedump's first
        // request has arrived, kubedump waits for it.
        await until(
          'kubedump’s first request at the API server',
          () => emulator.api.cluster.requestsReceived > base.requests,
        );
        break;
      case 'uploading':
        await until(
          'the upload to be under way',
          () => proxy.upstreamBytes - base.upload > 200_000,
        );
        break;
      case 'pending':
        await until('a Pending helper pod', () =>
          helpers().some((p) => p.status.phase === 'Pending'),
        );
        await sleep(300);
        break;
      case 'idle':
        await until('tcpdump to listen', () => listening(log), 30_000);
        await sleep(500);
        break;
      case 'load':
        await until('tcpdump to listen', () => listening(log), 30_000);
        await sleep(1500);
        break;
    }
    assert.ok(alive(), `kubedump ended before the ${phase} phase: ${bg.stderr()}`);
    const started = readLog(log).some((e) => e.message === 'capture started');
    assert.equal(started, phase === 'idle' || phase === 'load', `capture started in ${phase}`);
  }

  for (const mode of MODES) {
    for (const phase of PHASES) {
      if (phase === 'pending' && mode === 'unprivileged') continue;
      for (const signal of SIGNALS) {
        const cell = `${signal} × ${phase} × ${mode}`;
        test(cell, async () => {
          cells++;
          const name = `${signal}-${phase}-${mode}`;
          const log = join(dir, `${name}.log`);
          const out = join(dir, `${name}.pcap`);
          const filter = phase === 'idle' ? IDLE_FILTER : '';
          if (phase === 'connecting') await emulator.api.setFaults({ delayMs: 2500 });
          if (phase === 'pending') await emulator.api.setFaults({ keepPending: 'Unschedulable' });
          if (phase === 'uploading') proxy.throttle(400_000);
          const load = phase === 'load' ? startLoad(8) : undefined;
          const base = {
            upload: proxy.upstreamBytes,
            requests: emulator.api.cluster.requestsReceived,
          };
          let bg: Background & { save?: (file: string) => Promise<number> };
          if (signal === 'SIGTERM') {
            bg = extcapIntoFifo(
              dir,
              [
                '--extcap-interface',
                'kubedump.demo.web',
                '--mode',
                mode,
                ...(phase === 'pending' ? ['--helper-timeout', String(PENDING_WAIT_S)] : []),
                ...(filter ? ['--filter', filter] : []),
                '--log-level',
                'debug',
                '--log-file',
                log,
              ],
              home.env,
            );
          } else {
            bg = background(
              [
                'capture',
                'web',
                '-n',
                'demo',
                ...(mode === 'privileged' ? ['-p'] : ['--mode', 'unprivileged']),
                ...(phase === 'pending' ? ['--helper-timeout', String(PENDING_WAIT_S)] : []),
                ...(filter ? ['-f', filter] : []),
                '--log-level',
                'debug',
                '--log-file',
                log,
                '-w',
                out,
              ],
              home.env,
            );
          }
          try {
            await reach(phase, log, bg, base);
            const remote = () =>
              remoteTcpdumps(
                log,
                mode === 'privileged'
                  ? { privileged: true }
                  : { privileged: false, pidNs: webPidNs, pod: 'web' },
              );
            const hadOutput = phase === 'idle' || phase === 'load';
            if (hadOutput) assert.ok(remote().some(tcpdumpRuns), 'the remote tcpdump runs');
            const present = ownHelpers();
            for (const p of present) {
              assert.ok(
                Number(p.spec.activeDeadlineSeconds) > 0,
                'the helper pod carries a deadline',
              );
            }
            // What a reader finds in the file just before the kill: it must all survive it.
            const before = signal === 'SIGKILL' && existsSync(out) ? readFileSync(out) : undefined;
            const sent = performance.now();
            bg.child.kill(signal);
            const end = await bg.exited;
            const ms = end.at - sent;
            await emulator.api.resetFaults();
            proxy.throttle(null);
            if (signal === 'SIGKILL') {
              assert.equal(end.signal, 'SIGKILL');
              killed.helpers.push(
                ...present.map((p) => ({ name: p.metadata.name, at: Date.now() })),
              );
              killed.pids.push(...remote());
            } else {
              exitTimes.push(ms);
              assert.ok(ms < 2000, `exit took ${Math.round(ms)} ms`);
              assert.equal(end.signal, null, 'killed by a signal, not exited');
              assert.equal(end.code, 0, `exit code ${end.code}: ${bg.stderr()}`);
              assert.equal(bg.stderr().trim(), '', 'a stop is not an error');
              await until('no helper pod', () => ownHelpers().length === 0, 3000);
              const pids = remote();
              if (hadOutput) assert.ok(pids.length > 0, 'the log names the remote tcpdump');
              await untilTcpdumpsEnd(pids, 5000);
            }
            // The output is a valid capture: whole records after a header.
            if (bg.save) await bg.save(out);
            if (signal !== 'SIGKILL') {
              const packets = await assertValidCapture(out);
              if (phase === 'load') assert.ok(packets > 0, 'no packets');
            } else if (hadOutput) {
              // tcpdump ran: the file has its header, and every whole record a
              // reader saw before the kill is still there, byte for byte.
              assert.ok(existsSync(out) && statSync(out).size >= 24, 'the capture file is empty');
              const after = readFileSync(out);
              const seen =
                before && before.length >= 24
                  ? before.subarray(0, wholeRecordsLength(before))
                  : Buffer.alloc(0);
              const seenRecords = seen.length >= 24 ? countPcapRecords(seen) : 0;
              if (phase === 'load') assert.ok(seenRecords > 0, 'no record written before the kill');
              assert.ok(
                after.subarray(0, seen.length).equals(seen),
                'records written before the kill changed',
              );
              const packets = await assertValidCapture(out, undefined, {
                allowCutLastRecord: true,
              });
              assert.ok(
                packets >= seenRecords,
                `the file holds ${packets} whole records, ${seenRecords} were written before the kill`,
              );
            } else if (existsSync(out) && statSync(out).size > 0) {
              // Killed before tcpdump ran: nothing may look like packets.
              assert.equal(
                await assertValidCapture(out, undefined, { allowCutLastRecord: true }),
                0,
              );
            }
            if (mode === 'unprivileged' && signal !== 'SIGKILL') {
              // Only this run's: an upload a SIGKILL'd run left behind lands late and removes itself.
              const ours = privateDirs(log);
              if (phase !== 'connecting')
                assert.ok(ours.length > 0, 'the log names the private directory');
              const left = (
                (await uploadedFiles(emulator.kubeconfigPath, 'demo', 'web')) ?? []
              ).filter((f) => ours.some((d) => f.includes(d)));
              assert.deepEqual(left, [], 'the uploaded tcpdump is still there');
            }
          } finally {
            if (bg.child.exitCode === null && bg.child.signalCode === null)
              bg.child.kill('SIGKILL');
            load?.kill('SIGKILL');
            await emulator.api.resetFaults();
            proxy.throttle(null);
          }
        });
      }
    }
  }

  // A Debian-based target: /bin/sh is dash (no `read -t`) and there is no ps.
  // Its traffic: pod client fetches from it every second.
  const debianTcpdumps = async () =>
    (
      await inPod(
        'debian',
        'sh',
        '-c',
        'for p in /proc/[0-9]*; do c=; read -r c <"$p/comm" 2>/dev/null; case $c in kubedump-tcpd*) echo "$p" ;; esac; done',
      )
    ).stdout
      .split('\n')
      .filter(Boolean);
  const debianUploads = async () =>
    (await inPod('debian', 'ls', '-a', '/tmp')).stdout
      .split('\n')
      .filter((e) => /kubedump/.test(e));

  for (const signal of SIGNALS) {
    test(`${signal} × capturing × unprivileged, Debian target (dash, no ps)`, async () => {
      cells++;
      const log = join(dir, `${signal}-debian.log`);
      const out = join(dir, `${signal}-debian.pcap`);
      const bg = background(
        [
          'capture',
          'debian',
          '-n',
          'demo',
          '--mode',
          'unprivileged',
          '--log-level',
          'debug',
          '--log-file',
          log,
          '-w',
          out,
        ],
        home.env,
      );
      try {
        await until('tcpdump to listen', () => listening(log), 30_000);
        assert.equal((await debianTcpdumps()).length, 1, 'one tcpdump runs in the pod');
        await sleep(1500);
        bg.child.kill(signal);
        const end = await bg.exited;
        if (signal === 'SIGKILL') {
          // Nobody cleans up: the watchdog under dash must.
          await until(
            'the watchdog to stop tcpdump',
            async () => (await debianTcpdumps()).length === 0,
            15_000,
          );
          await until(
            'the upload to be removed',
            async () => (await debianUploads()).length === 0,
            5000,
          );
          await assertValidCapture(out, undefined, { allowCutLastRecord: true });
        } else {
          assert.equal(end.code, 0, bg.stderr());
          assert.deepEqual(await debianTcpdumps(), [], 'a tcpdump still runs in the pod');
          assert.deepEqual(await debianUploads(), [], 'the upload is still there');
          assert.ok((await assertValidCapture(out)) > 0, 'no packets of the Debian pod');
        }
      } finally {
        if (bg.child.exitCode === null && bg.child.signalCode === null) bg.child.kill('SIGKILL');
      }
    });
  }

  // Several pods in one capture (web on node-a, client on node-b): one stop
  // ends every pod's tcpdump, helper and upload within the one-pod budget.
  const MANY = ['web', 'client'];
  for (const mode of MODES) {
    for (const signal of SIGNALS) {
      test(`${signal} × capturing under load × ${mode}, two pods in one pcapng`, async () => {
        cells++;
        const name = `${signal}-many-${mode}`;
        const log = join(dir, `${name}.log`);
        const out = join(dir, `${name}.pcapng`);
        const load = startLoad(8);
        let bg: Background & { save?: (file: string) => Promise<number> };
        const common = ['--log-level', 'debug', '--log-file', log];
        if (signal === 'SIGTERM') {
          bg = extcapIntoFifo(
            dir,
            [
              '--extcap-interface',
              'kubedump',
              '--namespace',
              'demo',
              '--pod',
              MANY.join(','),
              '--mode',
              mode,
              ...common,
            ],
            home.env,
          );
        } else {
          bg = background(
            [
              'capture',
              MANY.join(','),
              '-n',
              'demo',
              ...(mode === 'privileged' ? ['-p'] : ['--mode', 'unprivileged']),
              ...common,
              '-w',
              out,
            ],
            home.env,
          );
        }
        try {
          const listeners = () =>
            readLog(log).filter((e) => /listening on/.test(String(e.line ?? ''))).length;
          await until('every pod’s tcpdump to listen', () => listeners() >= MANY.length, 30_000);
          await sleep(1500);
          const remote = () => manyTcpdumps(log, mode);
          assert.equal(
            new Set(
              remote()
                .filter(tcpdumpRuns)
                .map((t) => `${t.pidNs} ${t.pid}`),
            ).size,
            MANY.length,
            'one remote tcpdump runs per pod',
          );
          const present = ownHelpers();
          assert.equal(present.length, mode === 'privileged' ? MANY.length : 0, 'helper pods');
          const sent = performance.now();
          bg.child.kill(signal);
          const end = await bg.exited;
          const ms = end.at - sent;
          if (signal === 'SIGKILL') {
            assert.equal(end.signal, 'SIGKILL');
            killed.helpers.push(...present.map((p) => ({ name: p.metadata.name, at: Date.now() })));
            killed.pids.push(...remote());
            if (mode === 'unprivileged') {
              // Nobody cleans up: each pod's watchdog ends its tcpdump, then the upload goes.
              await untilTcpdumpsEnd(remote(), 20_000);
              await until(
                'every upload of the killed run to remove itself',
                async () => {
                  const ours = privateDirs(log);
                  return (await manyUploads()).every((f) => !ours.some((d) => f.includes(d)));
                },
                15_000,
              );
            }
          } else {
            exitTimes.push(ms);
            assert.ok(ms < 2000, `exit took ${Math.round(ms)} ms`);
            assert.equal(end.code, 0, `exit code ${end.code}: ${bg.stderr()}`);
            assert.equal(bg.stderr().trim(), '', 'a stop is not an error');
            await until('no helper pod', () => ownHelpers().length === 0, 3000);
            await untilTcpdumpsEnd(remote(), 5000);
            const ours = privateDirs(log);
            if (mode === 'unprivileged')
              assert.ok(ours.length >= 2, 'the log names each pod’s private directory');
            const left = (await manyUploads()).filter((f) => ours.some((d) => f.includes(d)));
            assert.deepEqual(left, [], 'an uploaded tcpdump is still there');
          }
          if (bg.save) await bg.save(out);
          // Every pod's packets, in a file tshark reads (after SIGKILL: its whole blocks).
          const file = signal === 'SIGKILL' ? wholePcapngBlocks(out) : out;
          const names = await run(
            ['tshark', '-r', file, '-T', 'fields', '-e', 'frame.interface_name'],
            { timeoutMs: 60_000 },
          );
          assert.equal(names.code, 0, names.stderr);
          assert.doesNotMatch(names.stderr, /cut short|damaged|isn't a capture file/i);
          assert.deepEqual(
            [...new Set(names.stdout.split('\n').filter(Boolean))].sort(),
            MANY.map((p) => `demo/${p}`).sort(),
            'packets of every pod',
          );
        } finally {
          if (bg.child.exitCode === null && bg.child.signalCode === null) bg.child.kill('SIGKILL');
          load.kill('SIGKILL');
        }
      });
    }
  }

  /** Uploads in the pods of the several-pods cells. */
  const manyUploads = async () =>
    (
      await Promise.all(
        MANY.map(async (p) => (await uploadedFiles(emulator.kubeconfigPath, 'demo', p)) ?? []),
      )
    ).flat();
  /** The remote tcpdumps a several-pods run's log names, in whichever pod's PID namespace. */
  const pidNamespaces = new Map<string, string>();
  function manyTcpdumps(log: string, mode: (typeof MODES)[number]): RemoteTcpdump[] {
    if (mode === 'privileged') return remoteTcpdumps(log, { privileged: true });
    return MANY.flatMap((pod) =>
      remoteTcpdumps(log, {
        privileged: false,
        pidNs: pidNamespaces.get(pod) as string,
        pod,
      }),
    );
  }
  before(async () => {
    for (const pod of MANY) {
      pidNamespaces.set(pod, await podPidNamespace(emulator.kubeconfigPath, 'demo', pod));
    }
  });

  test('after SIGKILL every running helper ends by itself within 60 s; the next run sweeps them all; no tcpdump is left', async () => {
    cells++;
    assert.ok(killed.helpers.length > 0, 'the SIGKILL cells left helper pods behind');
    const pod = (name: string) => helpers().find((p) => p.metadata.name === name);
    const lifetimes: string[] = [];
    for (const { name, at } of killed.helpers) {
      const started = pod(name)?.status.containerStatuses?.some((c) => c.containerID);
      if (!started) continue; // killed while Pending: it never ran, nothing of it runs
      await until(
        `helper ${name} to end by itself`,
        () => ['Succeeded', 'Failed'].includes(pod(name)?.status.phase ?? 'Succeeded'),
        Math.max(1000, at + HELPER_LIFETIME_AFTER_CLIENT_MS + 5000 - Date.now()),
      );
      // The API server's own record of when its container ended.
      const ended = pod(name)?.status.containerStatuses?.[0]?.state.terminated?.finishedAt;
      assert.ok(ended, `helper ${name} has no end time`);
      const after = Date.parse(String(ended)) - at;
      lifetimes.push(`${name} ${Math.round(after / 1000)} s`);
      assert.ok(
        after <= HELPER_LIFETIME_AFTER_CLIENT_MS,
        `helper ${name} ran ${Math.round(after / 1000)} s after its client was killed`,
      );
    }
    console.log(`# helpers ended by themselves after SIGKILL: ${lifetimes.join(', ')}`);
    // A helper killed while Pending is abandoned once its run's wait is over.
    const created = helpers().map((p) => Date.parse(p.metadata.creationTimestamp ?? ''));
    await sleep(
      Math.max(0, ...created.map((c) => c + PENDING_WAIT_S * 1000 + 31_000 - Date.now())),
    );
    const log = join(dir, 'sweep.log');
    const ran = await run(
      [
        BUILT,
        ...captureArgs('web', {
          privileged: true,
          maxPackets: 1,
          log,
          out: join(dir, 'sweep.pcap'),
        }),
      ],
      { env: home.env, timeoutMs: 60_000 },
    );
    assert.equal(ran.code, 0, ran.stderr);
    const swept = readLog(log)
      .filter((e) => e.message === 'abandoned helper pod deleted')
      .map((e) => String(e.pod).replace(/^demo\//, ''));
    for (const { name } of killed.helpers) {
      assert.ok(swept.includes(name) || !pod(name), `${name} was not swept`);
    }
    await until('no helper pod', () => helpers().length === 0, 10_000);
    await until('no remote tcpdump', () => !killed.pids.some(tcpdumpRuns), 10_000);
    // A SIGKILL'd unprivileged run leaves its private upload directory: the
    // watchdog ended its tcpdump; the next unprivileged run makes its own.
    const next = await run(
      [BUILT, 'capture', 'web', '-n', 'demo', '--max-packets', '1', '-w', join(dir, 'next.pcap')],
      { env: home.env, timeoutMs: 60_000 },
    );
    assert.equal(next.code, 0, next.stderr);
    await until(
      'every upload of a killed run to remove itself',
      async () => (await uploads()).length === 0,
      15_000,
    );
  });
});
