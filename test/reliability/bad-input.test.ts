import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type Emulator, startEmulator } from '../emulator/index.ts';
import { BUILT, run } from '../support/kubedump.ts';
import { assertNoLeftovers, untilNoRemoteTcpdump } from '../support/leftovers.ts';
import { kubectl, realCluster } from '../support/real-cluster.ts';
import {
  assertValidCapture,
  background,
  captureArgs,
  extcapIntoFifo,
  oneLine,
  readLog,
  until,
} from '../support/reliability.ts';
import { wiresharkHome } from '../support/worlds.ts';

// Bad input: extcap argv in any order with options kubedump never heard of,
// missing, empty, very long and non-ASCII values, names that do not exist,
// and capture filters full of shell syntax in both modes. Each is a clear
// error or a correct capture; never a stack trace, a hang or a side effect.

const CANARY = '/tmp/kubedump-canary';
/**
 * The same file as this machine's /tmp sees it from a helper pod (hostPID):
 * through the root of this test's own process, so the test can look after
 * the helper is gone. In the target pod that PID does not exist, and the
 * plain path is the pod's /tmp.
 */
const CANARY_ON_HOST = `/proc/${process.pid}/root${CANARY}`;
/** touch goes on past a path it cannot create: both are tried wherever it runs. */
const TOUCH = `touch ${CANARY} ${CANARY_ON_HOST}`;
const LONG = 'x'.repeat(10_000);
const NON_ASCII = 'wéb-💥-名前';

/** A seeded shuffle, so a failure names an order that can be replayed. */
function shuffled<T>(items: readonly T[], seed: number): T[] {
  const out = [...items];
  let s = seed;
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

/** Splits argv into option groups (`--name [value]`) so a shuffle keeps pairs. */
function groups(argv: string[]): string[][] {
  const out: string[][] = [];
  for (const a of argv) {
    if (a.startsWith('--') || out.length === 0) out.push([a]);
    else (out[out.length - 1] as string[]).push(a);
  }
  return out;
}

function assertNoStack(text: string) {
  assert.doesNotMatch(text, /\bat .*\.(ts|js|cjs|mjs):\d+|^\s+at |TypeError|ReferenceError/m);
}

describe('bad extcap and CLI input on the real cluster', () => {
  const cluster = realCluster();
  const home = wiresharkHome(cluster.kubeconfig);
  const kubedump = (args: string[], timeoutMs = 20_000) =>
    run([BUILT, ...args], { env: home.env, timeoutMs });
  let cases = 0;
  after(() => console.log(`# bad input (real cluster): ${cases} cases`));

  test('extcap argv in random order, with unknown options, answers as in order', async () => {
    const calls = [
      ['--extcap-interfaces', '--extcap-version', '4.0'],
      ['--extcap-dlts', '--extcap-interface', 'kubedump.demo.web'],
      ['--extcap-config', '--extcap-interface', 'kubedump.demo.web'],
      [
        '--extcap-config',
        '--extcap-interface',
        'kubedump',
        '--extcap-reload-option',
        'pod',
        '--namespace',
        'demo',
      ],
    ];
    const unknown = [['--extcap-future-option', 'on'], ['--frobnicate'], ['--x=1']];
    for (const call of calls) {
      const reference = await kubedump(call);
      assert.equal(reference.code, 0, reference.stderr);
      for (let seed = 1; seed <= 4; seed++) {
        cases++;
        const argv = shuffled([...groups(call), ...unknown], seed).flat();
        const ran = await kubedump(argv);
        assert.equal(ran.code, 0, `${argv.join(' ')}: ${ran.stderr}`);
        assert.equal(ran.stdout, reference.stdout, argv.join(' '));
        assert.equal(ran.stderr, '');
      }
    }
  });

  test('missing, empty, very long and non-ASCII values are a clear line or a harmless answer', async () => {
    const values: [string, string[]][] = [
      ['missing', []],
      ['empty', ['']],
      ['long', [LONG]],
      ['non-ASCII', [NON_ASCII]],
    ];
    for (const [what, value] of values) {
      for (const verb of [['--extcap-dlts'], ['--extcap-config']]) {
        cases++;
        const ran = await kubedump([...verb, '--extcap-interface', ...value]);
        assertNoStack(ran.stderr);
        assert.ok(ran.code === 0 || ran.code === 1, `${what} ${verb}: ${ran.code}`);
        if (ran.code === 1) oneLine(ran.stderr);
      }
      // A capture: the reason on stderr, the fifo opened and closed, exit 1.
      cases++;
      const capture = extcapIntoFifo(
        home.dir,
        ['--extcap-interface', ...value, '--namespace', ...value, '--mode', ...value],
        home.env,
      );
      const end = await capture.exited;
      await capture.save(join(home.dir, 'bad.pcap'));
      assert.equal(end.code, 1, `${what}: ${capture.stderr()}`);
      const line = oneLine(capture.stderr());
      assert.ok(line.length < 1000, `${what}: the line is ${line.length} characters`);
    }
    cases++;
    const noFifo = await kubedump(['--capture', '--extcap-interface', 'kubedump.demo.web']);
    assert.equal(noFifo.code, 1);
    assert.match(oneLine(noFifo.stderr), /--capture needs --fifo PATH \(Wireshark passes it\)$/);
  });

  test('names that do not exist, and bad CLI options, are one clear line', async () => {
    const out = join(home.dir, 'none.pcap');
    // Each line names what was wrong and says what to do: the pattern needs both,
    // so an error that merely echoes the input does not pass.
    const cases_: [string[], RegExp][] = [
      [
        ['capture', 'nope', '-n', 'demo'],
        /pod "nope" not found in namespace "demo": list the pods with: kubectl get pods -n demo$/,
      ],
      [
        ['capture', 'web', '-n', 'nowhere'],
        /pod "web" not found in namespace "nowhere": list the pods with: kubectl get pods -n nowhere$/,
      ],
      [
        ['capture', 'web', '-n', 'demo', '-c', 'sidecar'],
        /container "sidecar" not found in pod \S*web: its containers are: \S/,
      ],
      [
        ['capture', LONG, '-n', 'demo'],
        /pod name "x{60}…" is not valid: lowercase letters, .*: check the pod name$/,
      ],
      [
        ['capture', NON_ASCII, '-n', 'demo'],
        /pod name "wéb-💥-名前" is not valid: lowercase letters, .*: check the pod name$/,
      ],
      [
        ['capture', 'web', '-n', NON_ASCII],
        /namespace "wéb-💥-名前" is not valid: lowercase letters, .*: check the namespace$/,
      ],
      [
        ['capture', 'web', '-n', 'demo', '--context', 'nope'],
        /context "nope" not found: known contexts: .*\blocal\b/,
      ],
      [['capture', 'web', '--frobnicate'], /Unknown argument: frobnicate: see kubedump --help$/],
      [
        ['capture', 'web', '--max-packets', 'many'],
        /--max-packets "many" is not a whole number: give --max-packets a number such as 0$/,
      ],
      [
        ['capture', 'web', '-n', 'demo', '-i', NON_ASCII],
        /interface "wéb-💥-名前" is not valid: an interface name such as eth0, or any: check the interface$/,
      ],
      [
        ['capture', 'web', '-n', 'demo', '--kubeconfig', '/nonexistent'],
        /cannot read kubeconfig \/nonexistent: check the file, or pass --kubeconfig$/,
      ],
    ];
    for (const [args, expected] of cases_) {
      cases++;
      // A repeated option takes its last value: add a limit only where none is under test.
      const limit = args.includes('--max-packets') ? [] : ['--max-packets', '1'];
      const ran = await kubedump([...args, ...limit, '-w', out], 30_000);
      assert.equal(ran.code, 1, `${args.join(' ').slice(0, 80)}: ${ran.stderr}`);
      const line = oneLine(ran.stderr);
      assert.match(line, expected);
      assert.ok(line.length < 1000, `the line is ${line.length} characters`);
    }
  });
});

describe('filter strings with shell syntax, both modes, on the emulated cluster', () => {
  let emulator: Emulator;
  let home: ReturnType<typeof wiresharkHome>;
  let dir: string;
  before(async () => {
    emulator = await startEmulator();
    home = wiresharkHome(emulator.kubeconfigPath);
    dir = mkdtempSync(join(tmpdir(), 'kubedump-filters-'));
    rmSync(CANARY, { force: true });
  });
  after(async () => {
    try {
      if (emulator)
        await assertNoLeftovers({
          name: 'bad input, emulated',
          kubeconfig: emulator.kubeconfigPath,
        });
    } finally {
      await emulator?.close();
    }
  });

  const FILTERS = [
    `port 80; ${TOUCH}`,
    `port 80 && ${TOUCH}`,
    `port 80 || ${TOUCH}`,
    `$(${TOUCH})`,
    `\`${TOUCH}\``,
    `port 80 | ${TOUCH}`,
    `port 80\n${TOUCH}`,
    `'port 80' "; ${TOUCH} #"`,
    `port 80 > ${CANARY}`,
    `port 80 > ${CANARY_ON_HOST}`,
    `-w ${CANARY}`,
    `-w ${CANARY_ON_HOST}`,
    `-z /bin/touch -Z root`,
    `port 80 '`,
    'tcp[13] & 2 != 0 or (port 80 and not udp)',
    'tcp port 80',
  ];
  const exec = (pod: string, ...command: string[]) =>
    kubectl(['exec', '-n', 'demo', pod, '--', ...command], {
      kubeconfig: emulator.kubeconfigPath,
    });
  /** Is the canary in pod web? A failed look is a failure, never "no canary". */
  async function canaryInPod(): Promise<boolean> {
    const r = await exec(
      'web',
      'sh',
      '-c',
      '[ -e "$1" ] && echo present || echo absent',
      'sh',
      CANARY,
    );
    assert.equal(r.code, 0, `cannot look for the canary in pod web: ${r.stderr}`);
    assert.match(r.stdout, /^(present|absent)\n$/);
    return r.stdout === 'present\n';
  }

  test('the canary checks see a file an injected command would make, in both places', async () => {
    // In the target pod (the host path does not exist there: touch says so and goes on).
    await exec('web', 'sh', '-c', TOUCH);
    assert.equal(await canaryInPod(), true);
    assert.equal((await exec('web', 'rm', '-f', CANARY)).code, 0);
    assert.equal(await canaryInPod(), false);
    // In a helper pod: a command there reaches this machine's /tmp through this process's root.
    const log = join(dir, 'canary-probe.log');
    const bg = background(
      captureArgs('web', { privileged: true, log, out: join(dir, 'canary-probe.pcap') }),
      home.env,
    );
    try {
      await until(
        'the helper pod to run',
        () => readLog(log).some((e) => e.message === 'capture started'),
        30_000,
      );
      const helper = emulator.api.cluster.pods
        .list()
        .find((p) => p.metadata.labels?.['app.kubernetes.io/managed-by'] === 'kubedump');
      assert.ok(helper, 'a helper pod');
      const touched = await exec(helper.metadata.name, 'sh', '-c', TOUCH);
      assert.equal(touched.code, 0, touched.stderr);
      assert.equal(
        existsSync(CANARY),
        true,
        'the helper pod’s command is not seen on this machine',
      );
    } finally {
      bg.child.kill('SIGTERM');
      await bg.exited;
      rmSync(CANARY, { force: true });
    }
  });

  for (const mode of ['unprivileged', 'privileged'] as const) {
    test(`${mode}: each filter is a clear error or a correct capture, never a command`, async () => {
      // No canary from an earlier test: each mode is judged on its own runs.
      rmSync(CANARY, { force: true });
      assert.equal((await exec('web', 'rm', '-f', CANARY)).code, 0);
      let captured = 0;
      let refused = 0;
      for (const [i, filter] of FILTERS.entries()) {
        const out = join(dir, `${mode}-${i}.pcap`);
        const ran = await run(
          [
            BUILT,
            'capture',
            'web',
            '-n',
            'demo',
            ...(mode === 'privileged' ? ['-p'] : ['--mode', 'unprivileged']),
            '-f',
            filter,
            '--max-seconds',
            '2',
            '-w',
            out,
          ],
          { env: home.env, timeoutMs: 60_000 },
        );
        assertNoStack(ran.stderr);
        if (ran.code === 0) {
          captured++;
          assert.equal(ran.stderr, '', JSON.stringify(filter));
          await assertValidCapture(out);
        } else {
          refused++;
          assert.equal(ran.code, 1, JSON.stringify(filter));
          assert.match(oneLine(ran.stderr), /not valid BPF/, JSON.stringify(filter));
        }
        assert.equal(
          existsSync(CANARY),
          false,
          `${JSON.stringify(filter)} ran on the node or in the helper pod`,
        );
        assert.equal(await canaryInPod(), false, `${JSON.stringify(filter)} ran in the pod`);
      }
      console.log(`# filters ${mode}: ${captured} captured, ${refused} refused as invalid BPF`);
      // The valid ones did capture; the shell-looking ones were refused.
      assert.ok(captured >= 2 && refused >= FILTERS.length - 4);
      await untilNoRemoteTcpdump(5000);
      const helpers = emulator.api.cluster.pods
        .list()
        .filter((p) => p.metadata.labels?.['app.kubernetes.io/managed-by'] === 'kubedump');
      assert.deepEqual(helpers, []);
    });
  }
});
