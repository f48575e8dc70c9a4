import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type Emulator, startEmulator } from '../emulator/index.ts';
import { BUILT, run } from '../support/kubedump.ts';
import {
  assertValidCapture,
  background,
  captureArgs,
  readLog,
  sleep,
  until,
} from '../support/reliability.ts';
import { wiresharkHome } from '../support/worlds.ts';

// Helper pods of other runs are never touched while their capture lives,
// whoever runs it and whatever their clocks say: a capture by an identity
// that may not patch pods, a second user whose clock is 30 s ahead, a pod a
// user labelled as kubedump's, and `kubedump cleanup --all-namespaces`.

const LIBFAKETIME = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';
/** An identity with what a privileged capture needs, and no `patch pods`. */
const NOPATCH_CONTEXT = 'emu-nopatch';
/** Longer than any heartbeat staleness a client clock could be judged by. */
const OUTLIVE_MS = 25_000;

describe('helper pods of live captures survive other runs', () => {
  let emulator: Emulator;
  let home: ReturnType<typeof wiresharkHome>;

  before(async () => {
    emulator = await startEmulator();
    home = wiresharkHome(emulator.kubeconfigPath);
  });
  after(async () => {
    await emulator?.close();
  });

  const helpers = () =>
    emulator.api.cluster.pods.list().filter((p) => p.metadata.name.startsWith('kubedump-'));

  test('a no-patch capture, a skewed second user, a look-alike pod and cleanup', async () => {
    assert.ok(existsSync(LIBFAKETIME), 'libfaketime is installed (scripts/setup)');
    // A pod a user made and labelled as kubedump's: never ours to delete.
    await emulator.api.addPod('demo', {
      metadata: {
        name: 'kubedump-lookalike',
        labels: { 'app.kubernetes.io/managed-by': 'kubedump' },
        annotations: { 'kubedump.io/session': 'someone/1/abcd' },
      },
      spec: {
        containers: [{ name: 'kubedump', image: 'busybox:1.36', command: ['sleep', '3600'] }],
      },
    });

    const logA = join(home.dir, 'a.log');
    const outA = join(home.dir, 'a.pcap');
    const a = background(
      [
        ...captureArgs('web', { privileged: true, log: logA, out: outA }),
        '--context',
        NOPATCH_CONTEXT,
      ],
      home.env,
    );
    try {
      await until(
        'capture A to listen',
        () => readLog(logA).some((e) => /listening on/.test(String(e.line ?? ''))),
        30_000,
      );
      const helperA = helpers().find((p) => p.metadata.name !== 'kubedump-lookalike');
      assert.ok(helperA, 'capture A has a helper pod');
      await sleep(OUTLIVE_MS);

      // B: another user, a clock 30 s ahead, a privileged capture in the same namespace.
      const logB = join(home.dir, 'b.log');
      const b = await run(
        [
          BUILT,
          ...captureArgs('client', {
            privileged: true,
            maxPackets: 1,
            log: logB,
            out: join(home.dir, 'b.pcap'),
          }),
        ],
        {
          env: { ...home.env, LD_PRELOAD: LIBFAKETIME, FAKETIME: '+30s' },
          timeoutMs: 90_000,
        },
      );
      assert.equal(b.code, 0, b.stderr);
      assert.ok(
        readLog(logB).some((e) => e.message === 'capture started'),
        'capture B ran under the skewed clock',
      );

      const cleanup = await run([BUILT, 'cleanup', '--all-namespaces'], {
        env: home.env,
        timeoutMs: 30_000,
      });
      assert.equal(cleanup.code, 0, cleanup.stderr);
      assert.match(cleanup.stdout, /kept 1 running helper pod: its capture is alive/);

      const names = helpers().map((p) => p.metadata.name);
      assert.ok(names.includes(helperA.metadata.name), "A's helper was deleted by another run");
      assert.ok(names.includes('kubedump-lookalike'), 'a pod kubedump did not make was deleted');
      assert.equal(a.child.exitCode, null, `capture A ended: ${a.stderr()}`);
    } finally {
      a.child.kill('SIGINT');
    }
    const end = await a.exited;
    assert.equal(end.code, 0, `capture A: ${a.stderr()}`);
    assert.equal(a.stderr().trim(), '', 'capture A was not cut short');
    await assertValidCapture(outA);
    await until(
      "A's helper to go",
      () => helpers().every((p) => p.metadata.name === 'kubedump-lookalike'),
      10_000,
    );
    await emulator.api.removePod('demo', 'kubedump-lookalike');
  });
});
