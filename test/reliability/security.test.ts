import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  HELPER_DEADLINE_SECONDS,
  HELPER_IDLE_SECONDS,
  HOST_ROOT,
  helperCommand,
  helperPodSpec,
  isKubedumpHelper,
} from '../../src/capture/helper-spec.ts';
import { type Emulator, startEmulator } from '../emulator/index.ts';
import { BUILT, run } from '../support/kubedump.ts';
import { assertNoLeftovers } from '../support/leftovers.ts';
import { realCluster } from '../support/real-cluster.ts';
import {
  assertValidCapture,
  background,
  captureArgs,
  oneLine,
  readLog,
  until,
} from '../support/reliability.ts';
import { wiresharkHome } from '../support/worlds.ts';

// Secrets never reach the log; logs are 0600; the helper pod asks for what
// its runtime bridges need and nothing more, and dies by its own deadline.

/** Every secret-looking value of a kubeconfig (tokens, keys, passwords), base64 and decoded. */
function secretsOf(kubeconfig: string): string[] {
  const text = readFileSync(kubeconfig, 'utf8');
  const found: string[] = [];
  for (const m of text.matchAll(
    /"?(token|password|client-key-data|client-certificate-data)"?\s*:\s*"?([^"\s,]+)/g,
  )) {
    const value = m[2] as string;
    found.push(value);
    if (m[1]?.endsWith('-data')) {
      const pem = Buffer.from(value, 'base64').toString('utf8');
      // A distinctive line from inside the PEM body.
      const body = pem.split('\n').find((l) => l.length > 40 && !l.startsWith('-----'));
      if (body) found.push(body);
    }
  }
  return found;
}

function assertNoSecrets(log: string, secrets: string[]) {
  const text = readFileSync(log, 'utf8');
  assert.ok(text.length > 0, 'the log is empty');
  for (const secret of secrets) {
    assert.ok(!text.includes(secret), `the log contains a secret (${secret.slice(0, 6)}…)`);
  }
  assert.doesNotMatch(text, /PRIVATE KEY-----\n?[A-Za-z0-9+/]/);
  assert.equal(statSync(log).mode & 0o777, 0o600, 'the log file is not 0600');
}

describe('secrets and the log on the real cluster', () => {
  const cluster = realCluster();
  const home = wiresharkHome(cluster.kubeconfig);
  const secrets = secretsOf(cluster.kubeconfig);

  test('a debug log of a privileged and an unprivileged capture holds no token; it is 0600', async () => {
    assert.ok(secrets.length >= 2, 'the kubeconfig has tokens to look for');
    for (const mode of ['unprivileged', 'privileged'] as const) {
      const log = join(home.dir, `secrets-${mode}.log`);
      // An existing, wider file must be narrowed to 0600 too.
      writeFileSync(log, '', { mode: 0o644 });
      const ran = await run(
        [
          BUILT,
          'capture',
          'web',
          '-n',
          'demo',
          ...(mode === 'privileged'
            ? ['-p', '--pid-lookup', 'cgroup']
            : ['--mode', 'unprivileged']),
          '--max-packets',
          '5',
          '--log-level',
          'debug',
          '--log-file',
          log,
          '-w',
          join(home.dir, `secrets-${mode}.pcap`),
        ],
        { env: home.env, timeoutMs: 60_000 },
      );
      assert.equal(ran.code, 0, ran.stderr);
      assert.ok(readLog(log).some((e) => e.message === 'capture started'));
      assertNoSecrets(log, secrets);
    }
  });

  test('the extcap default log file is created 0600 in a 0700 directory', async () => {
    const bg = background(
      [
        '--capture',
        '--extcap-interface',
        'kubedump.demo.nope',
        '--fifo',
        join(home.dir, 'no-reader-needed'),
        '--log-level',
        'debug',
      ],
      home.env,
    );
    // No reader: the error is written, the fifo open gives up; we only need the log.
    const log = join(String(home.env.XDG_STATE_HOME), 'kubedump', 'kubedump.log');
    await until('the default log', () => readLog(log).length > 0, 10_000);
    bg.child.kill('SIGKILL');
    await bg.exited;
    assert.equal(statSync(log).mode & 0o777, 0o600);
    assert.equal(statSync(join(String(home.env.XDG_STATE_HOME), 'kubedump')).mode & 0o777, 0o700);
    assertNoSecrets(log, secrets);
  });
});

describe('client keys, a password and a token in a good and a rejected run (emulated cluster)', () => {
  let emulator: Emulator;
  let dir: string;
  before(async () => {
    emulator = await startEmulator();
    dir = mkdtempSync(join(tmpdir(), 'kubedump-secrets-'));
  });
  after(async () => {
    try {
      if (emulator)
        await assertNoLeftovers({
          name: 'security, emulated',
          kubeconfig: emulator.kubeconfigPath,
        });
    } finally {
      await emulator?.close();
    }
  });

  test('a kubeconfig with a client key, a password and a token: none reaches the log or stderr', async () => {
    const key = join(dir, 'client.key');
    const cert = join(dir, 'client.crt');
    assert.equal(
      spawnSync('openssl', [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        key,
        '-out',
        cert,
        '-subj',
        '/CN=kubedump-test',
        '-days',
        '1',
      ]).status,
      0,
    );
    const b64 = (f: string) => readFileSync(f).toString('base64');
    const config = JSON.parse(readFileSync(emulator.kubeconfigPath, 'utf8'));
    config.users = [
      {
        name: config.users[0].name,
        user: {
          'client-certificate-data': b64(cert),
          'client-key-data': b64(key),
          username: 'admin',
          password: 'hunter2-very-secret-password',
          // The emulator's own admin token: the good run must really capture.
          token: emulator.tokens.admin,
        },
      },
    ];
    const file = join(dir, 'kubeconfig');
    writeFileSync(file, JSON.stringify(config), { mode: 0o600 });
    const secrets = secretsOf(file);
    assert.ok(secrets.length >= 5);
    assert.ok(secrets.includes(emulator.tokens.admin));
    for (const faults of [{}, { unauthorized: true }]) {
      const good = !('unauthorized' in faults);
      await emulator.api.setFaults(faults);
      const log = join(dir, `keys-${good ? 'ok' : 'unauthorized'}.log`);
      const ran = await run(
        [
          BUILT,
          'capture',
          'web',
          '-n',
          'demo',
          '--kubeconfig',
          file,
          '--max-packets',
          '1',
          '--log-level',
          'debug',
          '--log-file',
          log,
          '-w',
          join(dir, 'keys.pcap'),
        ],
        { timeoutMs: 60_000 },
      );
      await emulator.api.resetFaults();
      if (good) {
        assert.equal(ran.code, 0, `the good run failed: ${ran.stderr}`);
        assert.ok(readLog(log).some((e) => e.message === 'capture started'));
        assert.equal(await assertValidCapture(join(dir, 'keys.pcap')), 1);
      } else {
        assert.equal(ran.code, 1, `the rejected run: exit ${ran.code}`);
        assert.match(oneLine(ran.stderr), /401|credentials|Unauthorized/i);
      }
      for (const secret of secrets) assert.ok(!ran.stderr.includes(secret), 'stderr has a secret');
      assertNoSecrets(log, secrets);
    }
  });
});

describe('the helper pod asks only for what it needs', () => {
  const spec = helperPodSpec({
    name: 'kubedump-web-abc123',
    namespace: 'demo',
    nodeName: 'node-a',
    image: 'docker.io/library/busybox:1.36',
    session: 'host/1/abcd',
    target: 'demo/web',
    startTimeoutSeconds: 60,
  });
  const pod = spec.spec;
  const container = pod?.containers[0];

  test('one container; host PID namespace (to find and enter the target); nothing else of the host', () => {
    assert.ok(pod && container);
    assert.equal(pod.containers.length, 1);
    assert.equal(pod.initContainers, undefined);
    assert.equal(pod.hostPID, true);
    assert.notEqual(pod.hostNetwork, true);
    assert.notEqual(pod.hostIPC, true);
    assert.equal(pod.nodeName, 'node-a');
  });

  test('no service account token, no service links, no ports, no env', () => {
    assert.equal(pod?.automountServiceAccountToken, false);
    assert.equal(pod?.enableServiceLinks, false);
    assert.equal(container?.ports, undefined);
    assert.equal(container?.env, undefined);
    assert.equal(pod?.serviceAccountName, undefined);
  });

  test('the only host path is the node root, read-only, for the runtime client and socket', () => {
    assert.deepEqual(pod?.volumes, [
      { name: 'host-root', hostPath: { path: '/', type: 'Directory' } },
    ]);
    assert.deepEqual(container?.volumeMounts, [
      { name: 'host-root', mountPath: HOST_ROOT, readOnly: true },
    ]);
  });

  test('privileged for nsenter into another network namespace; bounded resources', () => {
    assert.equal(container?.securityContext?.privileged, true);
    assert.equal(container?.securityContext?.runAsUser, 0);
    assert.deepEqual(container?.resources?.limits, { cpu: '1', memory: '256Mi' });
    assert.ok(container?.resources?.requests);
  });

  test('it dies by itself: idle without its capture, a deadline, never restarted, no grace period', () => {
    assert.equal(pod?.activeDeadlineSeconds, HELPER_DEADLINE_SECONDS);
    assert.ok(HELPER_DEADLINE_SECONDS > 0 && HELPER_DEADLINE_SECONDS <= 24 * 3600);
    assert.deepEqual(container?.command, helperCommand(HELPER_IDLE_SECONDS));
    assert.ok(HELPER_IDLE_SECONDS > 0 && HELPER_IDLE_SECONDS <= 50);
    assert.equal(pod?.restartPolicy, 'Never');
    assert.equal(pod?.terminationGracePeriodSeconds, 0);
    assert.equal(spec.metadata?.labels?.['app.kubernetes.io/managed-by'], 'kubedump');
    assert.ok(isKubedumpHelper(spec), 'recognised as a helper by its whole shape');
  });

  test('the pod the real cluster runs carries the same deadline', async () => {
    const cluster = realCluster();
    const home = wiresharkHome(cluster.kubeconfig);
    const log = join(home.dir, 'spec.log');
    const bg = background(
      captureArgs('web', {
        privileged: true,
        log,
        level: 'info',
        out: join(home.dir, 'spec.pcap'),
      }),
      home.env,
    );
    try {
      await until(
        'the helper pod',
        () => readLog(log).some((e) => e.message === 'helper pod created'),
        30_000,
      );
      const name = String(
        readLog(log)
          .find((e) => e.message === 'helper pod created')
          ?.pod?.toString()
          .split('/')[1],
      );
      const got = await run(
        [
          'kubectl',
          '--kubeconfig',
          cluster.kubeconfig,
          'get',
          'pod',
          '-n',
          'demo',
          name,
          '-o',
          'jsonpath={.spec.activeDeadlineSeconds} {.spec.restartPolicy} {.spec.hostNetwork}',
        ],
        { timeoutMs: 20_000 },
      );
      assert.equal(got.stdout.trim(), `${HELPER_DEADLINE_SECONDS} Never`);
    } finally {
      bg.child.kill('SIGTERM');
      await bg.exited;
    }
  });
});
