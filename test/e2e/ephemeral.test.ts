import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { BUILT, run } from '../support/kubedump.ts';
import { allRemoteTcpdumps } from '../support/leftovers.ts';
import { until } from '../support/process.ts';
import { assertValidCapture } from '../support/reliability.ts';
import { openWorld, type World, wiresharkHome } from '../support/worlds.ts';

// Ephemeral mode on the real cluster (Kubernetes 1.20, the legacy
// EphemeralContainers kind): a container joins the target pod, captures in
// its network namespace, and ends by itself when the capture stops. 1.20
// lets no ephemeral container set its user: a pod that runs as non-root at
// pod level gets one clear line.

let world: World;
let home: ReturnType<typeof wiresharkHome>;
let dir: string;

before(async () => {
  world = await openWorld('real');
  home = wiresharkHome(world.kubeconfig);
  dir = mkdtempSync(join(tmpdir(), 'kubedump-ephemeral-'));
});

interface EphemeralStatus {
  name: string;
  state?: { running?: unknown; terminated?: { reason?: string } };
}

async function ephemeralStatuses(pod: string): Promise<EphemeralStatus[]> {
  const got = await world.kubectl(['get', 'pod', '-n', 'demo', pod, '-o', 'json']);
  assert.equal(got.code, 0, got.stderr);
  return (JSON.parse(got.stdout).status?.ephemeralContainerStatuses ?? []) as EphemeralStatus[];
}

describe('ephemeral mode (real cluster)', () => {
  for (const pod of ['web', 'distroless']) {
    test(`${pod}: captures its traffic; the ephemeral container ends after the stop`, async () => {
      const before = new Set((await ephemeralStatuses(pod)).map((s) => s.name));
      const out = join(dir, `${pod}.pcap`);
      const ran = await run(
        [
          BUILT,
          'capture',
          pod,
          '-n',
          'demo',
          '--mode',
          'ephemeral',
          '--max-packets',
          '6',
          '-w',
          out,
        ],
        { env: home.env, timeoutMs: 90_000 },
      );
      assert.equal(ran.code, 0, ran.stderr);
      assert.equal(ran.stderr, '');
      assert.ok((await assertValidCapture(out)) >= 6, 'fewer packets than asked for');
      const added = (await ephemeralStatuses(pod)).filter((s) => !before.has(s.name));
      assert.equal(added.length, 1, 'one ephemeral container per capture');
      const name = (added[0] as EphemeralStatus).name;
      assert.match(name, /^kubedump-[0-9a-f]{8}$/);
      // Its main process sees the heartbeat file go and ends within its 5 s poll.
      await until(
        `ephemeral container ${name} to end`,
        async () =>
          (await ephemeralStatuses(pod)).find((s) => s.name === name)?.state?.terminated !==
          undefined,
        20_000,
      );
      assert.deepEqual(allRemoteTcpdumps(), [], 'a remote tcpdump is left');
    });
  }

  test('a pod whose own security context is non-root: one line on 1.20, nothing added', async () => {
    const before = (await ephemeralStatuses('nonroot')).length;
    const ran = await run(
      [
        BUILT,
        'capture',
        'nonroot',
        '-n',
        'demo',
        '--mode',
        'ephemeral',
        '-w',
        join(dir, 'nr.pcap'),
      ],
      { env: home.env, timeoutMs: 60_000 },
    );
    assert.equal(ran.code, 1);
    assert.equal(
      ran.stderr.trim(),
      'kubedump: pod demo/nonroot runs its containers as a non-root user, and this cluster does not let an ephemeral container run as root: use privileged mode (-p), or Kubernetes 1.23+',
    );
    assert.equal((await ephemeralStatuses('nonroot')).length, before);
  });
});
