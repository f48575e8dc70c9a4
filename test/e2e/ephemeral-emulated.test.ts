import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadAllYaml } from '@kubernetes/client-node';
import { BUILT, run } from '../support/kubedump.ts';
import { allRemoteTcpdumps, assertNoLeftovers } from '../support/leftovers.ts';
import { until } from '../support/process.ts';
import { REPO_ROOT } from '../support/real-cluster.ts';
import { assertValidCapture, oneLine } from '../support/reliability.ts';
import { openWorld, type World, wiresharkHome } from '../support/worlds.ts';

// Ephemeral mode against the emulated 1.31 API server: the Pod-shaped
// subresource (a strategic-merge patch of spec.ephemeralContainers), which
// the real 1.20 cluster cannot show, and the 1.16-1.21 shape racing the
// kubelet, which the real one shows only by chance. A distroless pod, and a pod that is
// non-root at pod level in a namespace that enforces Pod Security baseline:
// kubedump gives its ephemeral container user 0 with the runtime's default
// capabilities, which baseline admits. Each capture adds a container of its
// own, which ends by itself after the stop.

let world: World;
let home: ReturnType<typeof wiresharkHome>;
let dir: string;

before(async () => {
  world = await openWorld('emulated');
  home = wiresharkHome(world.kubeconfig);
  dir = mkdtempSync(join(tmpdir(), 'kubedump-ephemeral-emu-'));
});

after(async () => {
  await world?.close();
});

interface Ephemeral {
  name: string;
  securityContext?: { runAsUser?: number; runAsNonRoot?: boolean };
  status?: { state?: { running?: unknown; terminated?: { reason?: string } } };
}

async function ephemerals(namespace: string, pod: string): Promise<Ephemeral[]> {
  const got = await world.kubectl(['get', 'pod', '-n', namespace, pod, '-o', 'json']);
  assert.equal(got.code, 0, got.stderr);
  const p = JSON.parse(got.stdout) as {
    spec: { ephemeralContainers?: Ephemeral[] };
    status: {
      ephemeralContainerStatuses?: (NonNullable<Ephemeral['status']> & { name: string })[];
    };
  };
  return (p.spec.ephemeralContainers ?? []).map((c) => ({
    ...c,
    status: (p.status.ephemeralContainerStatuses ?? []).find((s) => s.name === c.name),
  }));
}

/** HTTP requests and responses tshark finds in a capture file. */
async function httpMessages(file: string): Promise<number> {
  const r = await run(['tshark', '-r', file, '-Y', 'http', '-T', 'fields', '-e', 'frame.number'], {
    timeoutMs: 60_000,
  });
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.split('\n').filter(Boolean).length;
}

async function capture(namespace: string, pod: string, label: string, extra: string[] = []) {
  const out = join(dir, `${label}.pcap`);
  const ran = await run(
    [
      BUILT,
      'capture',
      pod,
      '-n',
      namespace,
      '--mode',
      'ephemeral',
      '--max-packets',
      '30',
      ...extra,
      '-w',
      out,
    ],
    { env: home.env, timeoutMs: 90_000 },
  );
  return { ...ran, out };
}

describe('ephemeral mode (emulated 1.31: the Pod-shaped subresource)', () => {
  const cases = [
    { namespace: 'demo', pod: 'distroless', nonRoot: false },
    { namespace: 'baseline', pod: 'locked', nonRoot: true },
  ];
  for (const c of cases) {
    test(`${c.namespace}/${c.pod}: two captures hold its HTTP; each container ends after the stop`, async () => {
      const names: string[] = [];
      for (const round of [1, 2]) {
        const before = new Set((await ephemerals(c.namespace, c.pod)).map((e) => e.name));
        const ran = await capture(c.namespace, c.pod, `${c.pod}-${round}`);
        assert.equal(ran.code, 0, ran.stderr);
        assert.equal(ran.stderr, '');
        assert.ok((await assertValidCapture(ran.out)) >= 30, 'fewer packets than asked for');
        assert.ok((await httpMessages(ran.out)) > 0, `no HTTP in ${ran.out}`);
        const added = (await ephemerals(c.namespace, c.pod)).filter((e) => !before.has(e.name));
        assert.equal(added.length, 1, 'one ephemeral container per capture');
        const e = added[0] as Ephemeral;
        assert.match(e.name, /^kubedump-[0-9a-f]{8}$/);
        // Root only where the pod makes its containers non-root, and nothing more.
        assert.deepEqual(
          e.securityContext,
          c.nonRoot ? { runAsUser: 0, runAsNonRoot: false } : undefined,
        );
        names.push(e.name);
        await until(
          `ephemeral container ${e.name} to end`,
          async () =>
            (await ephemerals(c.namespace, c.pod)).find((x) => x.name === e.name)?.status?.state
              ?.terminated,
          20_000,
        );
        assert.deepEqual(allRemoteTcpdumps(), [], 'a remote tcpdump is left');
      }
      assert.notEqual(names[0], names[1], 'a new container for the second capture');
      const all = await ephemerals(c.namespace, c.pod);
      for (const n of names) {
        assert.ok(all.find((x) => x.name === n)?.status?.state?.terminated, `${n} stays ended`);
      }
    });
  }

  test('scripts/rbac/kubedump-ephemeral.yaml on 1.31: exactly the Role captures; each rule fewer, one line, or nothing missed for the old shape read and replace', async (t) => {
    const emu = world.emulator;
    assert.ok(emu, 'the emulated world has its emulator');
    const [role] = loadAllYaml(
      readFileSync(join(REPO_ROOT, 'scripts', 'rbac', 'kubedump-ephemeral.yaml'), 'utf8'),
    ) as { rules: { resources: string[]; verbs: string[] }[] }[];
    const rules = role?.rules ?? [];
    const describeRule = (r: { resources: string[]; verbs: string[] }) =>
      `${r.verbs.join(',')} ${r.resources.join(',')}`;
    // What the one line must name once the rule is gone; null: not needed on 1.22+.
    const expected: Record<string, RegExp | null> = {
      'get pods': /may not "get pods"/,
      'watch pods': /may not "watch pods"/,
      'patch pods/ephemeralcontainers': /may not "patch pods\/ephemeralcontainers"/,
      'get,update pods/ephemeralcontainers': null,
      'create,get pods/exec': /"create pods\/exec"/,
    };
    assert.deepEqual(rules.map(describeRule).sort(), Object.keys(expected).sort());
    const full = await emu.api.addIdentity('kd-role', rules, dir);
    const ok = await capture('demo', 'web', 'role', ['--kubeconfig', full]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.ok((await assertValidCapture(ok.out)) >= 30);
    for (const [i, rule] of rules.entries()) {
      const what = `without "${describeRule(rule)}"`;
      const kubeconfig = await emu.api.addIdentity(
        `kd-role-${i}`,
        rules.filter((_, j) => j !== i),
        dir,
      );
      const before = (await ephemerals('demo', 'nonroot')).length;
      const ran = await capture('demo', 'nonroot', `role-${i}`, ['--kubeconfig', kubeconfig]);
      await assertValidCapture(ran.out);
      const refused = expected[describeRule(rule)];
      assert.ok(refused !== undefined, what);
      if (refused === null) {
        assert.equal(ran.code, 0, `${what}: ${ran.stderr}`);
        continue;
      }
      const user = `kd-role-${i}`;
      if (ran.code === 0 && describeRule(rule) === 'watch pods') {
        // The container already ran at kubedump's first read of the pod: no
        // watch was needed, so none may have been asked for.
        const watched = emu.api.requests().some((r) => r.user === user && r.verb === 'watch');
        assert.equal(watched, false, `${what}: exit 0 after a refused watch`);
        t.diagnostic(`${what}: the container ran at the first read; no watch asked`);
        continue;
      }
      assert.equal(ran.code, 1, `${what}: exit ${ran.code}, ${ran.stderr}`);
      const line = oneLine(ran.stderr);
      t.diagnostic(`${what}: ${line}`);
      assert.match(line, refused, what);
      assert.match(line, /forbidden/, what);
      // Refused before the patch: nothing added; after it: the container ends by itself.
      const added = (await ephemerals('demo', 'nonroot')).length - before;
      if (/get pods"|patch/.test(describeRule(rule))) assert.equal(added, 0, what);
    }
  });

  test('1.16-1.21 shape, the pod changed between the read and the replace: read again, one container added', async () => {
    const emu = world.emulator;
    assert.ok(emu, 'the emulated world has its emulator');
    const before = (await ephemerals('demo', 'distroless')).length;
    const logged = emu.api.requests().length;
    // The kubelet's status updates move a busy pod's resourceVersion at any time.
    await emu.api.setFaults({ legacyEphemeral: true, modifyAfterEphemeralRead: 2 });
    try {
      const ran = await capture('demo', 'distroless', 'legacy-conflict');
      assert.equal(ran.code, 0, ran.stderr);
      assert.ok((await assertValidCapture(ran.out)) >= 30, 'fewer packets than asked for');
    } finally {
      await emu.api.resetFaults();
    }
    const replaces = emu.api
      .requests()
      .slice(logged)
      .filter((x) => x.subresource === 'ephemeralcontainers' && x.verb === 'update');
    // Two replaces lost the race (409), then the third went through.
    assert.equal(replaces.length, 3, JSON.stringify(replaces));
    assert.equal((await ephemerals('demo', 'distroless')).length - before, 1);
  });

  test('nothing is left: no running ephemeral container, tcpdump or uploaded file', async () => {
    await until(
      'every ephemeral container to end',
      async () => {
        const r = await world.kubectl([
          'get',
          'pods',
          '-A',
          '-o',
          'jsonpath={.items[*].status.ephemeralContainerStatuses[*].state.running}',
        ]);
        return r.code === 0 && r.stdout.trim() === '';
      },
      // One whose capture was refused after it was added ends 30 s after its start.
      45_000,
    );
    await assertNoLeftovers(world);
  });
});
