import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { HELPER_SELECTOR } from '../../src/capture/helper-spec.ts';
import type { Emulator, RequestRecord, Rule } from '../emulator/index.ts';
import { BUILT, type Ran, run } from '../support/kubedump.ts';
import { assertNoLeftovers } from '../support/leftovers.ts';
import { until } from '../support/process.ts';
import { assertValidCapture, type LogEntry, readLog } from '../support/reliability.ts';
import { openWorld, type World, wiresharkHome } from '../support/worlds.ts';

// Auto mode on the emulated 1.31 API server, where ephemeral containers take
// the Pod-subresource shape and namespace `baseline` enforces Pod Security.
// Two identities: the admin, and one that may read pods and exec into them
// but neither add ephemeral containers nor create pods. For each of
// baseline/locked (non-root at pod level), baseline/web (root, a shell) and
// demo/distroless (no shell), `kubedump doctor` (table and JSON) names the
// mode the capture then takes, and the capture holds the pod's HTTP or is one
// line naming every blocker. The emulator's request log shows what was tried:
// in `baseline` the helper pod goes no further than the preflight's dry run.
// Last, a mode that passed the preflight fails at its start (the first exec
// into the new ephemeral container is refused): auto ends that container at
// once and captures in the next mode.

const EXEC_ONLY: Rule[] = [
  { resources: ['pods'], verbs: ['get', 'list', 'watch'] },
  { resources: ['pods/exec'], verbs: ['create', 'get'] },
  { resources: ['selfsubjectaccessreviews'], verbs: ['create'] },
];

/** How far apart the failed attempt's container may start and end (its idle limit is 30 s). */
const ENDED_WITHIN_S = 12;

let world: World;
let emu: Emulator;
let home: ReturnType<typeof wiresharkHome>;
let dir: string;
let execOnly: string;

before(async () => {
  world = await openWorld('emulated');
  assert.ok(world.emulator, 'the emulated world has its emulator');
  emu = world.emulator;
  home = wiresharkHome(world.kubeconfig);
  dir = mkdtempSync(join(tmpdir(), 'kubedump-auto-emu-'));
  execOnly = await emu.api.addIdentity('kd-exec-only', EXEC_ONLY, dir);
});

after(async () => {
  await world?.close();
});

type Identity = 'admin' | 'exec-only';

const identityArgs = (id: Identity) => (id === 'admin' ? [] : ['--kubeconfig', execOnly]);

interface DoctorJson {
  auto: string | null;
  checks: { check: string; result: string; detail: string }[];
  modes: { mode: string; canCapture: boolean; blockers: string[] }[];
}

async function doctor(id: Identity, namespace: string, pod: string) {
  const args = [BUILT, 'doctor', pod, '-n', namespace, ...identityArgs(id)];
  const [table, json] = await Promise.all([
    run(args, { env: home.env, timeoutMs: 60_000 }),
    run([...args, '-o', 'json'], { env: home.env, timeoutMs: 60_000 }),
  ]);
  assert.equal(table.stderr, '');
  assert.equal(json.stderr, '');
  assert.equal(table.code, json.code);
  const said = /\nauto takes: (\S+)/.exec(table.stdout)?.[1];
  assert.ok(said, table.stdout);
  const parsed = JSON.parse(json.stdout) as DoctorJson;
  return {
    code: json.code,
    table: said === 'nothing:' ? null : said,
    json: parsed,
    text: table.stdout,
  };
}

interface Capture extends Ran {
  out: string;
  log: string;
  /** The modes the `mode: X for NS/POD (...)` lines named, in order. */
  modes: string[];
}

async function capture(id: Identity, namespace: string, pod: string, label: string) {
  const out = join(dir, `${label}.pcap`);
  const log = join(dir, `${label}.log`);
  const ran = await run(
    [
      BUILT,
      'capture',
      pod,
      '-n',
      namespace,
      ...identityArgs(id),
      '--mode',
      'auto',
      '--max-packets',
      '30',
      '--max-seconds',
      '30',
      '--log-level',
      'debug',
      '--log-file',
      log,
      '-w',
      out,
    ],
    { env: home.env, timeoutMs: 90_000 },
  );
  const line = new RegExp(`^kubedump: mode: (\\S+) for ${namespace}/${pod}(?: \\(.*\\))?$`);
  const modes = ran.stderr
    .split('\n')
    .map((l) => line.exec(l)?.[1])
    .filter((m): m is string => m !== undefined);
  return { ...ran, out, log, modes } satisfies Capture;
}

/** HTTP requests and responses tshark finds in a capture file. */
async function httpMessages(file: string): Promise<number> {
  const r = await run(['tshark', '-r', file, '-Y', 'http', '-T', 'fields', '-e', 'frame.number'], {
    timeoutMs: 60_000,
  });
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.split('\n').filter(Boolean).length;
}

interface Ephemeral {
  name: string;
  state?: {
    running?: { startedAt: string };
    terminated?: { startedAt?: string; finishedAt?: string; reason?: string };
  };
}

async function ephemerals(namespace: string, pod: string): Promise<Ephemeral[]> {
  const got = await world.kubectl(['get', 'pod', '-n', namespace, pod, '-o', 'json']);
  assert.equal(got.code, 0, got.stderr);
  const p = JSON.parse(got.stdout) as {
    spec: { ephemeralContainers?: { name: string }[] };
    status: { ephemeralContainerStatuses?: (Ephemeral & { name: string })[] };
  };
  return (p.spec.ephemeralContainers ?? []).map((c) => ({
    name: c.name,
    state: (p.status.ephemeralContainerStatuses ?? []).find((s) => s.name === c.name)?.state,
  }));
}

async function helperPods(): Promise<string[]> {
  const got = await world.kubectl(['get', 'pods', '-A', '-l', HELPER_SELECTOR, '-o', 'name']);
  assert.equal(got.code, 0, got.stderr);
  return got.stdout.split('\n').filter(Boolean);
}

/** Requests that change something (or would, but for dryRun=All), besides exec and reviews. */
function writes(requests: RequestRecord[]): RequestRecord[] {
  return requests.filter(
    (r) =>
      ['create', 'update', 'patch', 'delete'].includes(r.verb) &&
      r.subresource !== 'exec' &&
      r.resource !== 'selfsubjectaccessreviews',
  );
}

const describeWrite = (r: RequestRecord) =>
  `${r.dryRun ? 'dry-run ' : ''}${r.verb} ${r.resource}${r.subresource ? `/${r.subresource}` : ''} ${r.namespace ?? ''}`.trim();

interface Case {
  id: Identity;
  namespace: string;
  pod: string;
  /** What auto takes; null: nothing can capture. */
  mode: 'unprivileged' | 'ephemeral' | null;
}

const CASES: Case[] = [
  { id: 'admin', namespace: 'baseline', pod: 'locked', mode: 'ephemeral' },
  { id: 'admin', namespace: 'baseline', pod: 'web', mode: 'unprivileged' },
  { id: 'admin', namespace: 'demo', pod: 'distroless', mode: 'ephemeral' },
  { id: 'exec-only', namespace: 'baseline', pod: 'web', mode: 'unprivileged' },
  { id: 'exec-only', namespace: 'baseline', pod: 'locked', mode: null },
  { id: 'exec-only', namespace: 'demo', pod: 'distroless', mode: null },
];

interface Outcome {
  doctor: Awaited<ReturnType<typeof doctor>>;
  capture: Capture;
  /** Every write the doctor runs and the capture sent, in order. */
  writes: RequestRecord[];
  ephemeralsAdded: Ephemeral[];
}

const outcomes = new Map<string, Outcome>();
const key = (c: Pick<Case, 'id' | 'namespace' | 'pod'>) => `${c.id} ${c.namespace}/${c.pod}`;

function outcome(c: Pick<Case, 'id' | 'namespace' | 'pod'>): Outcome {
  const o = outcomes.get(key(c));
  assert.ok(o, `${key(c)} ran first`);
  return o;
}

describe('auto mode and kubedump doctor (emulated 1.31, Pod Security)', () => {
  for (const c of CASES) {
    test(`${key(c)}: doctor says ${c.mode ?? 'nothing'}, and the capture ${c.mode ? 'takes it and holds the pod HTTP' : 'is one line, exit 1'}`, async (t) => {
      const first = emu.api.requests().length;
      const ephemeralBefore = new Set((await ephemerals(c.namespace, c.pod)).map((e) => e.name));
      const found = await doctor(c.id, c.namespace, c.pod);
      t.diagnostic(found.text);
      assert.equal(found.table, c.mode);
      assert.equal(found.json.auto, c.mode);
      assert.equal(found.code, c.mode ? 0 : 1);

      const ran = await capture(c.id, c.namespace, c.pod, `${c.id}-${c.namespace}-${c.pod}`);
      t.diagnostic(ran.stderr.trim());
      const added = (await ephemerals(c.namespace, c.pod)).filter(
        (e) => !ephemeralBefore.has(e.name),
      );
      outcomes.set(key(c), {
        doctor: found,
        capture: ran,
        writes: writes(emu.api.requests().slice(first)),
        ephemeralsAdded: added,
      });
      if (c.mode) {
        assert.equal(ran.code, 0, ran.stderr);
        // Doctor's pick is the capture's, and the mode line is the only stderr line.
        assert.deepEqual(ran.modes, [found.json.auto]);
        assert.equal(ran.stderr.trim().split('\n').length, 1, ran.stderr);
        const line = ran.stderr.trim().replace(/^kubedump: /, '');
        assert.ok(
          readLog(ran.log).some((e) => e.message === line),
          'the log holds the mode line',
        );
        assert.ok((await assertValidCapture(ran.out)) >= 30, 'fewer packets than asked for');
        assert.ok((await httpMessages(ran.out)) > 0, `no HTTP in ${ran.out}`);
        assert.equal(added.length, c.mode === 'ephemeral' ? 1 : 0, 'ephemeral containers added');
      } else {
        assert.equal(ran.code, 1, ran.stderr);
        assert.deepEqual(ran.modes, [], 'no mode line when no mode can capture');
        assert.equal(await assertValidCapture(ran.out), 0);
        assert.deepEqual(added, [], 'no ephemeral container');
      }
      assert.deepEqual(await helperPods(), [], 'no helper pod');
    });
  }

  test('baseline/locked: ephemeral in the Pod-subresource shape; the helper pod never goes past the dry run Pod Security refuses', async () => {
    const o = outcome({ id: 'admin', namespace: 'baseline', pod: 'locked' });
    assert.equal(
      o.capture.stderr,
      'kubedump: mode: ephemeral for baseline/locked (unprivileged: container "locked" runs as uid 1000 without CAP_NET_RAW)\n',
    );
    // The two doctor runs and the capture's preflight each ask once with dryRun=All; only
    // the capture adds, with one patch. No pod was ever created.
    assert.deepEqual(o.writes.map(describeWrite).sort(), [
      'dry-run create pods baseline',
      'dry-run create pods baseline',
      'dry-run create pods baseline',
      'dry-run patch pods/ephemeralcontainers baseline',
      'dry-run patch pods/ephemeralcontainers baseline',
      'dry-run patch pods/ephemeralcontainers baseline',
      'patch pods/ephemeralcontainers baseline',
    ]);
    // Why privileged was ruled out: in the capture's log, and in doctor's verdict.
    const preflight = readLog(o.capture.log).find((e) => e.message === 'preflight') as
      | (LogEntry & { checks: { check: string; result: string; detail: string }[] })
      | undefined;
    assert.ok(preflight, 'the preflight checks are in the log');
    const helper = preflight.checks.find((c) => c.check === 'helper pod admission (dry run)');
    assert.equal(helper?.result, 'fail');
    const refused =
      /^Pod Security refuses the privileged helper pod in namespace "baseline": .*privileged/;
    assert.match(helper?.detail ?? '', refused);
    const privileged = o.doctor.json.modes.find((m) => m.mode === 'privileged');
    assert.equal(privileged?.canCapture, false);
    assert.match(privileged?.blockers.join('; ') ?? '', refused);
    // The one container it added ends after the stop.
    const [e] = o.ephemeralsAdded;
    assert.match(e?.name ?? '', /^kubedump-[0-9a-f]{8}$/);
    await until(
      `ephemeral container ${e?.name} to end`,
      async () =>
        (await ephemerals('baseline', 'locked')).find((x) => x.name === e?.name)?.state?.terminated,
      20_000,
    );
  });

  test('the exec-only identity: unprivileged where the container can capture, else one line naming every blocker, nothing created', () => {
    const web = outcome({ id: 'exec-only', namespace: 'baseline', pod: 'web' });
    assert.equal(web.capture.stderr, 'kubedump: mode: unprivileged for baseline/web\n');
    const blockers: Record<string, string> = {
      'baseline/locked': 'container "locked" runs as uid 1000 without CAP_NET_RAW',
      'demo/distroless': 'container "distroless" has no shell',
    };
    for (const [where, unprivileged] of Object.entries(blockers)) {
      const [namespace, pod] = where.split('/') as [string, string];
      const o = outcome({ id: 'exec-only', namespace, pod });
      const lines = o.capture.stderr.trim().split('\n');
      assert.equal(lines.length, 1, o.capture.stderr);
      assert.equal(
        lines[0]?.replace(/: [^:]*kubedump doctor .*$/, ''),
        `kubedump: no mode can capture pod ${where}: unprivileged: ${unprivileged}; ephemeral: not allowed to "patch pods/ephemeralcontainers"; privileged: not allowed to "create pods", not allowed to "delete pods"`,
      );
      assert.match(
        lines[0] as string,
        new RegExp(
          `ask for "patch pods/ephemeralcontainers".*kubedump doctor ${pod} -n ${namespace} shows every check$`,
        ),
      );
      // Denied by RBAC, so not even a dry run.
      assert.deepEqual(o.writes.map(describeWrite), [], `${where}: nothing sent that writes`);
    }
    assert.deepEqual(web.writes.map(describeWrite), [], 'baseline/web: nothing sent that writes');
  });

  test('fall-through: the first exec into the new ephemeral container is refused; auto ends that container at once and captures privileged', async (t) => {
    const before = new Set((await ephemerals('demo', 'distroless')).map((e) => e.name));
    await emu.api.setFaults({ failExecs: { containerPrefix: 'kubedump-', count: 1 } });
    let ran: Capture;
    try {
      ran = await capture('admin', 'demo', 'distroless', 'fall-through');
    } finally {
      await emu.api.resetFaults();
    }
    t.diagnostic(ran.stderr.trim());
    assert.equal(ran.code, 0, ran.stderr);
    assert.deepEqual(ran.modes, ['ephemeral', 'privileged']);
    const lines = ran.stderr.trim().split('\n');
    assert.equal(lines.length, 2, ran.stderr);
    assert.match(
      lines[1] as string,
      /^kubedump: mode: privileged for demo\/distroless \(unprivileged: container "distroless" has no shell; ephemeral: failed at its start: .*container not found \("kubedump-[0-9a-f]{8}"\)\)$/,
    );
    assert.ok((await assertValidCapture(ran.out)) >= 30, 'fewer packets than asked for');
    assert.ok((await httpMessages(ran.out)) > 0, `no HTTP in ${ran.out}`);
    // The failed attempt's container cannot be removed: it was told to end, and did.
    const added = (await ephemerals('demo', 'distroless')).filter((e) => !before.has(e.name));
    assert.equal(added.length, 1, 'one ephemeral container, from the failed attempt');
    const name = (added[0] as Ephemeral).name;
    assert.ok(
      readLog(ran.log).some(
        (e) =>
          e.message === 'ephemeral container told to end' &&
          e.container === name &&
          e.exitCode === 0,
      ),
      'kubedump told it to end',
    );
    const ended = await until(
      `ephemeral container ${name} to end`,
      async () =>
        (await ephemerals('demo', 'distroless')).find((x) => x.name === name)?.state?.terminated,
      ENDED_WITHIN_S * 1000,
    );
    const lived = (Date.parse(ended.finishedAt ?? '') - Date.parse(ended.startedAt ?? '')) / 1000;
    t.diagnostic(`the failed attempt's container ran ${lived} s`);
    assert.ok(lived <= ENDED_WITHIN_S, `it ran ${lived} s, as if left to idle out`);
    await until('the helper pod to go', async () => (await helperPods()).length === 0, 15_000);
  });

  test('nothing is left: no running ephemeral container, helper pod, tcpdump or upload', async () => {
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
      15_000,
    );
    await assertNoLeftovers(world);
  });
});
