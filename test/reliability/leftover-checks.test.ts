import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ROOT } from '../support/kubedump.ts';
import {
  assertNoLeftovers,
  census,
  HOST_PID_NS,
  podPidNamespace,
  remoteTcpdumps,
  tcpdumpRuns,
  untilTcpdumpsEnd,
} from '../support/leftovers.ts';
import { kubectl } from '../support/real-cluster.ts';
import { until } from '../support/reliability.ts';
import { openWorld, type World } from '../support/worlds.ts';

// The leftover checks find what they look for: a tcpdump left running in a
// pod, as a SIGKILLed unprivileged run would leave it (the real tcpdump
// binary, uploaded under kubedump's name, started the way kubedump starts
// it), is seen by tcpdumpRuns() through the pod's PID namespace and by the
// census, and then no longer once it is killed and removed.

const TCPDUMP = join(ROOT, 'build', 'tcpdump', 'linux-amd64', 'tcpdump');
const LEFT = '/tmp/kubedump-tcpdump-leftover-check';

for (const name of ['real', 'emulated'] as const) {
  describe(`the leftover checks fail on a tcpdump left in pod web (${name} cluster)`, () => {
    let world: World;
    let dir: string;
    let running: ChildProcess | undefined;
    before(async () => {
      world = await openWorld(name);
      dir = mkdtempSync(join(tmpdir(), 'kubedump-leftover-check-'));
    });
    after(async () => {
      running?.kill('SIGKILL');
      await world?.kubectl(['exec', '-n', 'demo', 'web', '--', 'rm', '-f', LEFT]);
      if (world) await assertNoLeftovers(world);
      await world?.close();
    });

    test('seen while it runs, not after it is killed and removed', async () => {
      const upload = await kubectl(
        [
          'exec',
          '-i',
          '-n',
          'demo',
          'web',
          '--',
          'sh',
          '-c',
          'cat >"$1" && chmod 755 "$1"',
          'sh',
          LEFT,
        ],
        { kubeconfig: world.kubeconfig, input: readFileSync(TCPDUMP) },
      );
      assert.equal(upload.code, 0, upload.stderr);
      // As the wrapper does: report the shell's PID, then exec tcpdump in its place.
      running = spawn(
        'kubectl',
        [
          ...['--kubeconfig', world.kubeconfig, 'exec', '-n', 'demo', 'web', '--'],
          ...[
            'sh',
            '-c',
            'echo "kubedump-pid $$" >&2; exec "$@"',
            'sh',
            LEFT,
            '-i',
            'lo',
            '-w',
            '/dev/null',
          ],
        ],
        { stdio: ['ignore', 'ignore', 'pipe'] },
      );
      let stderr = '';
      running.stderr?.on('data', (c) => (stderr += c));
      await until('the PID report', () => /kubedump-pid \d+/.test(stderr));
      const log = join(dir, `${name}.log`);
      const line = /kubedump-pid \d+/.exec(stderr)?.[0];
      writeFileSync(log, `${JSON.stringify({ message: 'remote stderr', line })}\n`);
      const pidNs = await podPidNamespace(world.kubeconfig, 'demo', 'web');
      const remote = remoteTcpdumps(log, { privileged: false, pidNs, pod: 'web' });
      assert.equal(remote.length, 1);
      await until('tcpdump to be found in the pod', () => remote.every(tcpdumpRuns), 10_000);
      // The same PID in the host's namespace is not this tcpdump.
      assert.equal(
        tcpdumpRuns({ ...(remote[0] as (typeof remote)[number]), pidNs: HOST_PID_NS }),
        false,
      );

      const found = await census(world.kubeconfig, { graceMs: 0 });
      assert.ok(found.tcpdumps.length >= 1, 'the census missed the running tcpdump');
      assert.ok(
        found.uploadedFiles.includes(`web:${LEFT}`),
        `the census missed ${LEFT}: ${found.uploadedFiles}`,
      );
      await assert.rejects(assertNoLeftovers(world), /leftovers/);

      const pid = String(remote[0]?.pid);
      const killed = await world.kubectl(['exec', '-n', 'demo', 'web', '--', 'kill', pid]);
      assert.equal(killed.code, 0, killed.stderr);
      await untilTcpdumpsEnd(remote, 5000);
      await world.kubectl(['exec', '-n', 'demo', 'web', '--', 'rm', '-f', LEFT]);
      await assertNoLeftovers(world);
    });
  });
}
