import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { HELPER_SELECTOR } from '../../src/capture/helper-spec.ts';
import { binaryName } from '../../src/capture/remote-scripts.ts';
import { tcpdumpBinary, tcpdumpManifest } from '../../src/tcpdump/index.ts';
import { BUILT, run } from '../support/kubedump.ts';
import { allRemoteTcpdumps } from '../support/leftovers.ts';
import { until } from '../support/process.ts';
import { assertValidCapture, readLog } from '../support/reliability.ts';
import { openWorld, type World, wiresharkHome } from '../support/worlds.ts';

// Auto mode on the real cluster (Kubernetes 1.20, the EphemeralContainers
// gate on): `kubedump doctor` says which mode a pod needs, and a capture with
// --mode auto takes that very mode and holds the pod's HTTP. busybox `web`
// runs as root: unprivileged. `distroless` has no shell: ephemeral. `nonroot`
// is non-root at pod level, which 1.20 refuses to an ephemeral container:
// privileged. The restricted identity (read and exec only) cannot capture
// `distroless` any way: one line naming every blocker.

let world: World;
let home: ReturnType<typeof wiresharkHome>;
let dir: string;

before(async () => {
  world = await openWorld('real');
  home = wiresharkHome(world.kubeconfig);
  dir = mkdtempSync(join(tmpdir(), 'kubedump-auto-'));
});

interface DoctorJson {
  auto: string | null;
  checks: { check: string; result: string; detail: string; todo: string | null }[];
  modes: { mode: string; canCapture: boolean; blockers: string[] }[];
}

async function doctor(pod: string, ...more: string[]) {
  const ran = await run([BUILT, 'doctor', pod, '-n', 'demo', '-o', 'json', ...more], {
    env: home.env,
    timeoutMs: 60_000,
  });
  assert.equal(ran.stderr, '');
  return { code: ran.code, json: JSON.parse(ran.stdout) as DoctorJson };
}

async function ephemeralCount(pod: string): Promise<number> {
  const got = await world.kubectl(['get', 'pod', '-n', 'demo', pod, '-o', 'json']);
  assert.equal(got.code, 0, got.stderr);
  return (JSON.parse(got.stdout).spec?.ephemeralContainers ?? []).length;
}

async function helperPods(): Promise<string[]> {
  const got = await world.kubectl(['get', 'pods', '-A', '-l', HELPER_SELECTOR, '-o', 'name']);
  assert.equal(got.code, 0, got.stderr);
  return got.stdout.split('\n').filter(Boolean);
}

const CASES = [
  { pod: 'web', port: 80, mode: 'unprivileged', skipped: '' },
  {
    pod: 'distroless',
    port: 8080,
    mode: 'ephemeral',
    skipped: ' (unprivileged: container "server" has no shell)',
  },
  {
    pod: 'nonroot',
    port: 8080,
    mode: 'privileged',
    skipped:
      ' (unprivileged: container "web" runs as uid 1000 without CAP_NET_RAW; ephemeral: pod demo/nonroot runs its containers as a non-root user, and this cluster does not let an ephemeral container run as root)',
  },
] as const;

describe('auto mode and kubedump doctor (real cluster)', () => {
  for (const c of CASES) {
    test(`${c.pod}: doctor says ${c.mode}, and the capture takes it and holds the pod's HTTP`, async () => {
      const ephemeralBefore = await ephemeralCount(c.pod);
      const found = await doctor(c.pod);
      assert.equal(found.code, 0, JSON.stringify(found.json));
      assert.equal(found.json.auto, c.mode, JSON.stringify(found.json.checks));
      // Dry runs only: doctor adds no ephemeral container and no helper pod.
      assert.equal(
        await ephemeralCount(c.pod),
        ephemeralBefore,
        'doctor added an ephemeral container',
      );
      assert.deepEqual(await helperPods(), [], 'doctor left a helper pod');

      const out = join(dir, `${c.pod}.pcap`);
      const log = join(dir, `${c.pod}.log`);
      const ran = await run(
        [
          BUILT,
          'capture',
          c.pod,
          '-n',
          'demo',
          '--mode',
          'auto',
          '-f',
          `tcp port ${c.port}`,
          '--max-packets',
          '30',
          '--max-seconds',
          '30',
          '--log-level',
          'info',
          '--log-file',
          log,
          '-w',
          out,
        ],
        { env: home.env, timeoutMs: 90_000 },
      );
      assert.equal(ran.code, 0, ran.stderr);
      const line = `mode: ${found.json.auto} for demo/${c.pod}${c.skipped}`;
      assert.equal(ran.stderr, `kubedump: ${line}\n`);
      assert.equal(readLog(log)[0]?.message, line, 'the log starts with the mode');
      assert.ok((await assertValidCapture(out)) > 0);
      const http = await run(
        ['tshark', '-r', out, '-Y', 'http.request', '-T', 'fields', '-e', 'http.request.method'],
        {
          timeoutMs: 30_000,
        },
      );
      assert.match(http.stdout, /GET/, `no HTTP request in the ${c.mode} capture of ${c.pod}`);
      // After the stop: nothing runs, no helper stays, the ephemeral container ends.
      await until('the helper pod to go', async () => (await helperPods()).length === 0, 15_000);
      await until('the remote tcpdump to end', () => allRemoteTcpdumps().length === 0, 10_000);
      assert.equal(
        await ephemeralCount(c.pod),
        ephemeralBefore + (c.mode === 'ephemeral' ? 1 : 0),
        'one ephemeral container for an ephemeral capture, none otherwise',
      );
    });
  }

  test('a kept copy starts at once only where auto would pick it: web runs it, nonroot never', async () => {
    const capture = async (pod: string, port: number) => {
      const log = join(dir, `kept-${pod}-${Date.now()}.log`);
      const out = join(dir, `kept-${pod}.pcap`);
      const ran = await run(
        [
          BUILT,
          ...['capture', pod, '-n', 'demo', '--mode', 'auto', '--keep-binary'],
          ...['-f', `tcp port ${port}`, '--max-packets', '4', '--max-seconds', '30'],
          ...['--log-level', 'debug', '--log-file', log, '-w', out],
        ],
        { env: home.env, timeoutMs: 90_000 },
      );
      assert.equal(ran.code, 0, ran.stderr);
      assert.ok((await assertValidCapture(out)) > 0);
      return readLog(log);
    };
    // web: the second capture finds the first one's copy and runs it without an answer.
    try {
      await capture('web', 80);
      const web = await capture('web', 80);
      assert.equal(web[0]?.message, 'mode: unprivileged for demo/web');
      assert.ok(web.some((l) => l.message === 'tcpdump already present'));
    } finally {
      await world.kubectl([
        'exec',
        '-n',
        'demo',
        'web',
        '--',
        'rm',
        '-rf',
        '/tmp/.kubedump-keep-0',
      ]);
    }
    // nonroot (uid 1000, no CAP_NET_RAW): a kept copy in place does not run
    // there; auto takes privileged, and the only tcpdump is the helper's.
    const name = binaryName(tcpdumpManifest().binaries.amd64.sha256);
    const keep = '/tmp/.kubedump-keep-1000';
    const put = await run(
      [
        'kubectl',
        ...['--kubeconfig', world.kubeconfig, 'exec', '-i', '-n', 'demo', 'nonroot', '--'],
        ...[
          'sh',
          '-c',
          'mkdir -p -m 700 "$1" && cat >"$1/$2" && chmod 700 "$1/$2"',
          'sh',
          keep,
          name,
        ],
      ],
      { input: tcpdumpBinary('amd64'), timeoutMs: 60_000 },
    );
    assert.equal(put.code, 0, put.stderr);
    try {
      const nonroot = await capture('nonroot', 8080);
      assert.match(nonroot[0]?.message ?? '', /^mode: privileged for demo\/nonroot /);
      const started = nonroot.findIndex((l) => l.message === 'capture started');
      assert.ok(started > 0, 'no capture started line');
      assert.deepEqual(
        nonroot.slice(0, started).filter((l) => l.message === 'remote stderr'),
        [],
        'the kept copy ran in a container that cannot capture',
      );
      const left = await world.kubectl(['exec', '-n', 'demo', 'nonroot', '--', 'ls', keep]);
      assert.equal(left.stdout.trim(), name, 'the kept copy stays');
    } finally {
      await world.kubectl(['exec', '-n', 'demo', 'nonroot', '--', 'rm', '-rf', keep]);
    }
  });

  test('the doctor table for people: every check, each mode, what auto takes', async (t) => {
    const ran = await run([BUILT, 'doctor', 'distroless', '-n', 'demo'], {
      env: home.env,
      timeoutMs: 60_000,
    });
    assert.equal(ran.code, 0, ran.stderr);
    t.diagnostic(ran.stdout);
    const lines = ran.stdout.split('\n');
    assert.match(lines[0] as string, /^pod demo\/distroless, container server, node \S+$/);
    assert.ok(
      lines.some((l) =>
        /^shell in the container +fail +container "server" has no \/bin\/sh/.test(l),
      ),
      ran.stdout,
    );
    assert.ok(lines.includes('  ephemeral     can capture'), ran.stdout);
    assert.match(ran.stdout, /\nauto takes: ephemeral\n$/);
  });

  test('restricted identity on distroless: doctor exits 1, the capture is one line naming every blocker', async () => {
    const found = await doctor('distroless', '--context', 'local-restricted');
    assert.equal(found.code, 1);
    assert.equal(found.json.auto, null);
    assert.deepEqual(
      found.json.modes.map((m) => m.canCapture),
      [false, false, false],
    );
    const ran = await run(
      [
        BUILT,
        'capture',
        'distroless',
        '-n',
        'demo',
        '--context',
        'local-restricted',
        '-w',
        join(dir, 'none.pcap'),
      ],
      { env: home.env, timeoutMs: 60_000 },
    );
    assert.equal(ran.code, 1);
    const lines = ran.stderr.trim().split('\n');
    assert.equal(lines.length, 1, ran.stderr);
    assert.match(
      lines[0] as string,
      /^kubedump: no mode can capture pod demo\/distroless: unprivileged: container "server" has no shell; ephemeral: not allowed to "get pods\/ephemeralcontainers", not allowed to "update pods\/ephemeralcontainers"; privileged: not allowed to "create pods", not allowed to "delete pods": .*kubedump doctor distroless -n demo shows every check$/,
    );
    assert.equal(await assertValidCapture(join(dir, 'none.pcap')), 0);
  });
});
