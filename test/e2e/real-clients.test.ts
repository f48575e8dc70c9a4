import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  appendFileSync,
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import { HELPER_SELECTOR } from '../../src/capture/helper-spec.ts';
import { startEmulator } from '../emulator/index.ts';
import { kubedumpCommand, run } from '../support/kubedump.ts';
import { kubectl, realCluster } from '../support/real-cluster.ts';
import { assertValidCapture, readLog, sleep, until } from '../support/reliability.ts';

// Real clients against the real cluster: a real HTTP proxy (tinyproxy) in
// front of it, reached by a name that is not loopback; an exec credential
// plugin slower than the discovery deadline; config.json naming another
// kubeconfig whose context shares its name with one in $KUBECONFIG; `kubectl
// proxy`, a plain http:// server that refuses exec unless told otherwise.

const API_ALIAS = 'kubedump-api.test';
const kubedump = kubedumpCommand();

/** Adds `127.0.0.1 <alias>` to /etc/hosts once. */
function ensureHostAlias() {
  const hosts = readFileSync('/etc/hosts', 'utf8');
  if (
    !new RegExp(`^127\\.0\\.0\\.1\\s.*\\b${API_ALIAS.replace(/\./g, '\\.')}\\b`, 'm').test(hosts)
  ) {
    appendFileSync('/etc/hosts', `${hosts.endsWith('\n') ? '' : '\n'}127.0.0.1 ${API_ALIAS}\n`);
  }
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  await new Promise((r) => server.close(r));
  return port;
}

interface Proxy {
  url: string;
  port: number;
  /** CONNECT requests the proxy received so far, e.g. "kubedump-api.test:6443". */
  connects(): string[];
  /** Client connections to the proxy open now. */
  openClients(): number;
  stop(): Promise<void>;
}

async function startTinyproxy(dir: string): Promise<Proxy> {
  const port = await freePort();
  const log = join(dir, 'tinyproxy.log');
  const conf = join(dir, 'tinyproxy.conf');
  writeFileSync(
    conf,
    [
      `Port ${port}`,
      'Listen 127.0.0.1',
      'Timeout 600',
      `LogFile "${log}"`,
      'LogLevel Info',
      'MaxClients 50',
      'Allow 127.0.0.1',
      '',
    ].join('\n'),
  );
  const child: ChildProcess = spawn('tinyproxy', ['-d', '-c', conf], { stdio: 'ignore' });
  const exited = new Promise((r) => child.once('exit', r));
  await until(
    'tinyproxy to listen',
    () => existsSync(log) && /Accepting connections/.test(readFileSync(log, 'utf8')),
    10_000,
  );
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    connects: () =>
      [
        ...readFileSync(log, 'utf8').matchAll(/Request \(file descriptor \d+\): CONNECT (\S+)/g),
      ].map((m) => m[1] as string),
    openClients: () => {
      const ss = spawnSync('ss', ['-Htn', 'state', 'established', `( dport = :${port} )`]);
      return ss.stdout.toString().split('\n').filter(Boolean).length;
    },
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** A copy of the real kubeconfig that reaches the API server by the alias (tls-server-name from its SANs). */
async function aliasKubeconfig(
  source: string,
  file: string,
  extra: string[] = [],
): Promise<string> {
  writeFileSync(file, readFileSync(source), { mode: 0o600 });
  const kc = new KubeConfig();
  kc.loadFromFile(file);
  const cluster = kc.getCurrentCluster();
  assert.ok(cluster);
  const port = new URL(cluster.server).port;
  const set = await kubectl(
    [
      'config',
      'set-cluster',
      cluster.name,
      `--server=https://${API_ALIAS}:${port}`,
      '--tls-server-name=kubernetes',
      ...extra,
    ],
    { kubeconfig: file },
  );
  assert.equal(set.code, 0, set.stderr);
  return file;
}

function homeEnv(dir: string, kubeconfig: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, KUBECONFIG: kubeconfig };
  for (const name of [
    'HTTPS_PROXY',
    'https_proxy',
    'HTTP_PROXY',
    'http_proxy',
    'NO_PROXY',
    'no_proxy',
  ]) {
    delete env[name];
  }
  env.XDG_CACHE_HOME = join(dir, 'cache');
  env.XDG_CONFIG_HOME = join(dir, 'config');
  env.XDG_STATE_HOME = join(dir, 'state');
  return env;
}

const interfaces = (env: NodeJS.ProcessEnv) =>
  run([...kubedump, '--extcap-interfaces', '--extcap-version=4.0'], { env, timeoutMs: 20_000 });

/** --extcap-interfaces until the pod interfaces show (the first cold call may miss the 1 s deadline). */
async function listedPods(env: NodeJS.ProcessEnv): Promise<string> {
  for (let attempt = 0; attempt < 10; attempt++) {
    const ran = await interfaces(env);
    assert.equal(ran.code, 0, ran.stderr);
    if (/kubedump\.demo\.web/.test(ran.stdout)) return ran.stdout;
    await sleep(500);
  }
  assert.fail('the pod interfaces never appeared');
}

describe('a real HTTP proxy in front of the real cluster', () => {
  let dir: string;
  let proxy: Proxy;
  let viaAlias: string;
  before(async () => {
    ensureHostAlias();
    dir = mkdtempSync(join(tmpdir(), 'kubedump-proxy-'));
    proxy = await startTinyproxy(dir);
    viaAlias = await aliasKubeconfig(realCluster().kubeconfig, join(dir, 'kubeconfig'));
  });
  after(() => proxy?.stop());

  /** What the proxy is asked to CONNECT to. */
  const target = () => `${API_ALIAS}:${new URL(readServer(viaAlias)).port}`;

  test('HTTPS_PROXY carries discovery and a capture (REST and exec)', async () => {
    const env = { ...homeEnv(join(dir, 'env'), viaAlias), HTTPS_PROXY: proxy.url };
    const before = proxy.connects().length;
    await listedPods(env);
    assert.ok(
      proxy.connects().slice(before).includes(target()),
      'discovery went through the proxy',
    );

    const log = join(dir, 'capture.log');
    const out = join(dir, 'capture.pcap');
    const sinceCapture = proxy.connects().length;
    const capture = spawn(
      kubedump[0] as string,
      [
        ...kubedump.slice(1),
        'capture',
        'web',
        '-n',
        'demo',
        '--max-seconds',
        '12',
        '--log-level',
        'debug',
        '--log-file',
        log,
        '-w',
        out,
      ],
      { env, stdio: 'ignore' },
    );
    const ended = new Promise<number | null>((r) => capture.once('exit', (code) => r(code)));
    await until(
      'tcpdump to listen',
      () => readLog(log).some((e) => /listening on/.test(String(e.line ?? ''))),
      40_000,
    );
    // The REST pool's idle connection closes after 4 s; the capture's exec stays open.
    await sleep(5000);
    const open = proxy.openClients();
    assert.equal(await ended, 0);
    assert.ok(open >= 1, `no connection through the proxy while capturing (${open})`);
    assert.ok(
      proxy.connects().length - sinceCapture >= 2,
      'the capture opened its connections through the proxy',
    );
    assert.ok((await assertValidCapture(out)) > 0);
  });

  test("the kubeconfig's proxy-url carries discovery", async () => {
    const withProxyUrl = await aliasKubeconfig(
      realCluster().kubeconfig,
      join(dir, 'kubeconfig-proxy-url'),
      [`--proxy-url=${proxy.url}`],
    );
    const before = proxy.connects().length;
    await listedPods(homeEnv(join(dir, 'proxy-url'), withProxyUrl));
    assert.ok(proxy.connects().slice(before).includes(target()));
  });

  test('NO_PROXY, and a loopback server, bypass it', async () => {
    const before = proxy.connects().length;
    await listedPods({
      ...homeEnv(join(dir, 'no-proxy'), viaAlias),
      HTTPS_PROXY: proxy.url,
      NO_PROXY: `localhost,${API_ALIAS}`,
    });
    await listedPods({
      ...homeEnv(join(dir, 'loopback'), realCluster().kubeconfig),
      https_proxy: proxy.url,
    });
    assert.deepEqual(proxy.connects().slice(before), []);
  });
});

/** `kubectl proxy` on a free port, with `extra` flags; resolves once it serves. */
async function startKubectlProxy(dir: string, extra: string[]) {
  const port = await freePort();
  const child = spawn(
    'kubectl',
    ['proxy', `--port=${port}`, `--kubeconfig=${realCluster().kubeconfig}`, ...extra],
    { stdio: ['ignore', 'pipe', 'ignore'] },
  );
  let said = '';
  child.stdout?.on('data', (c) => (said += c));
  const exited = new Promise((r) => child.once('exit', r));
  await until('kubectl proxy to serve', () => said.includes('Starting to serve'), 10_000);
  // No user: the proxy brings the credentials, as a kubeconfig for it would.
  const kubeconfig = join(dir, `kubeconfig-${port}`);
  writeFileSync(
    kubeconfig,
    `apiVersion: v1
kind: Config
clusters: [{name: proxy, cluster: {server: "http://127.0.0.1:${port}"}}]
users: [{name: proxy, user: {}}]
contexts: [{name: proxy, context: {cluster: proxy, user: proxy, namespace: demo}}]
current-context: proxy
`,
  );
  return {
    env: homeEnv(join(dir, String(port)), kubeconfig),
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

describe('`kubectl proxy` in front of the real cluster (a plain http:// server)', () => {
  let dir: string;
  const stops: (() => Promise<void>)[] = [];
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'kubedump-kubectl-proxy-'));
  });
  after(() => Promise.all(stops.map((stop) => stop())));

  const helperPods = async () => {
    const got = await kubectl(['get', 'pods', '-A', '-l', HELPER_SELECTOR, '-o', 'name'], {
      kubeconfig: realCluster().kubeconfig,
    });
    assert.equal(got.code, 0, got.stderr);
    return got.stdout.split('\n').filter(Boolean);
  };

  test("with exec allowed (--reject-paths='^$'): the pods are listed and a capture holds packets", async () => {
    const proxy = await startKubectlProxy(dir, ['--reject-paths=^$']);
    stops.push(proxy.stop);
    await listedPods(proxy.env);
    const out = join(dir, 'allowed.pcap');
    const ran = await run(
      [...kubedump, 'capture', 'web', '--mode', 'unprivileged', '--max-seconds', '6', '-w', out],
      { env: proxy.env, timeoutMs: 40_000 },
    );
    assert.equal(ran.code, 0, ran.stderr);
    assert.ok((await assertValidCapture(out)) > 0, 'the capture holds the pod’s packets');
  });

  test('by default (exec refused): one line naming the proxy and its flag; nothing is created', async () => {
    const proxy = await startKubectlProxy(dir, []);
    stops.push(proxy.stop);
    const before = await helperPods();
    const out = join(dir, 'refused.pcap');
    const ran = await run([...kubedump, 'capture', 'web', '--max-seconds', '6', '-w', out], {
      env: proxy.env,
      timeoutMs: 40_000,
    });
    assert.equal(ran.code, 1);
    assert.equal(ran.stderr.trim().split('\n').length, 1, ran.stderr);
    assert.match(ran.stderr, /privileged: a proxy refuses exec/);
    const doctor = await run([...kubedump, 'doctor', 'web'], { env: proxy.env, timeoutMs: 40_000 });
    assert.match(doctor.stdout, /--reject-paths='\^\$'/, 'doctor says what to do');
    assert.deepEqual(await helperPods(), before, 'no helper pod was created');
    assert.equal(await assertValidCapture(out), 0, 'the file is a valid, empty capture');
  });
});

function readServer(file: string): string {
  const kc = new KubeConfig();
  kc.loadFromFile(file);
  return kc.getCurrentCluster()?.server ?? '';
}

describe('an exec credential plugin slower than the discovery deadline', () => {
  test('the first call answers at once; the listing is finished in the background for the next', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kubedump-plugin-'));
    const real = new KubeConfig();
    real.loadFromFile(realCluster().kubeconfig);
    const token = real.getCurrentUser()?.token;
    assert.ok(token, 'the real kubeconfig carries a token');
    const plugin = join(dir, 'slow-plugin');
    writeFileSync(
      plugin,
      `#!/bin/sh
sleep 1.5
echo run >> "${join(dir, 'plugin-runs')}"
cat "${join(dir, 'credential.json')}"
`,
    );
    chmodSync(plugin, 0o755);
    writeFileSync(
      join(dir, 'credential.json'),
      JSON.stringify({
        apiVersion: 'client.authentication.k8s.io/v1',
        kind: 'ExecCredential',
        status: { token },
      }),
      { mode: 0o600 },
    );
    // Written here: kubectl would store the command relative to the kubeconfig's folder.
    const config = JSON.parse(real.exportConfig());
    const user = config.users.find((u: { name: string }) => u.name === real.getCurrentUser()?.name);
    user.user = {
      exec: {
        apiVersion: 'client.authentication.k8s.io/v1',
        command: plugin,
        interactiveMode: 'Never',
      },
    };
    const kubeconfig = join(dir, 'kubeconfig');
    writeFileSync(kubeconfig, JSON.stringify(config), { mode: 0o600 });
    const env = homeEnv(dir, kubeconfig);

    const first = await interfaces(env);
    assert.equal(first.code, 0, first.stderr);
    assert.ok(first.ms < 1500, `the first answer took ${first.ms.toFixed(0)} ms`);
    assert.match(first.stdout, /interface \{value=kubedump\}/);
    assert.doesNotMatch(
      first.stdout,
      /kubedump\.demo\.web/,
      'the plugin is slower than the deadline',
    );
    // The background listing needs the plugin's 1.5 s plus the listing itself.
    let next = first;
    await until(
      'a later call to list the pods',
      async () => {
        next = await interfaces(env);
        return /interface \{value=kubedump\.demo\.web\}/.test(next.stdout);
      },
      20_000,
    );
    assert.ok(next.ms < 1500, `a later answer took ${next.ms.toFixed(0)} ms`);
  });
});

describe("config.json's cluster is the one Wireshark captures from", () => {
  test('a context of the same name in $KUBECONFIG, pointing elsewhere, is not used', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kubedump-selection-'));
    const emulator = await startEmulator();
    try {
      // $KUBECONFIG: the emulated cluster, its context renamed to the real one's name.
      const decoy = join(dir, 'decoy-kubeconfig');
      writeFileSync(decoy, readFileSync(emulator.kubeconfigPath), { mode: 0o600 });
      const decoyKc = new KubeConfig();
      decoyKc.loadFromFile(decoy);
      const renamed = await kubectl(
        ['config', 'rename-context', decoyKc.getCurrentContext(), realCluster().context],
        {
          kubeconfig: decoy,
        },
      );
      assert.equal(renamed.code, 0, renamed.stderr);
      const env = homeEnv(dir, decoy);
      mkdirSync(join(dir, 'config', 'kubedump'), { recursive: true });
      writeFileSync(
        join(dir, 'config', 'kubedump', 'config.json'),
        JSON.stringify({ kubeconfig: realCluster().kubeconfig, context: realCluster().context }),
      );
      // A pod that exists only in the real cluster, named by a label the emulator lacks.
      const realOnly = `kubedump-selection-${process.pid}`;
      // The real cluster has no scheduler: the pod names its node, the web pod's.
      const node = await kubectl(
        ['get', 'pod', 'web', '-n', 'demo', '-o', 'jsonpath={.spec.nodeName}'],
        { kubeconfig: realCluster().kubeconfig },
      );
      assert.equal(node.code, 0, node.stderr);
      const spec = {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: realOnly, namespace: 'demo' },
        spec: {
          nodeName: node.stdout.trim(),
          terminationGracePeriodSeconds: 0,
          containers: [
            {
              name: 'pinger',
              image: 'docker.io/library/busybox:1.36',
              imagePullPolicy: 'IfNotPresent',
              command: ['sh', '-c', 'while true; do ping -c 1 127.0.0.1; sleep 0.2; done'],
            },
          ],
        },
      };
      const made = await kubectl(['create', '-f', '-'], {
        kubeconfig: realCluster().kubeconfig,
        input: JSON.stringify(spec),
      });
      assert.equal(made.code, 0, made.stderr);
      try {
        const ready = await kubectl(
          ['wait', '-n', 'demo', '--for=condition=Ready', `pod/${realOnly}`, '--timeout=60s'],
          {
            kubeconfig: realCluster().kubeconfig,
            timeoutMs: 70_000,
          },
        );
        assert.equal(ready.code, 0, ready.stderr);
        const listed = await listedPods(env);
        assert.match(listed, new RegExp(`kubedump\\.demo\\.${realOnly}`));
        const fifo = join(dir, 'fifo');
        assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
        const out = join(dir, 'out.pcap');
        const reader = spawn('sh', ['-c', 'cat "$1" > "$2"', 'sh', fifo, out]);
        const readerDone = new Promise((r) => reader.once('exit', r));
        const captured = await run(
          [
            ...kubedump,
            '--capture',
            '--extcap-interface',
            `kubedump.demo.${realOnly}`,
            '--fifo',
            fifo,
            '--max-packets',
            '4',
          ],
          { env, timeoutMs: 60_000 },
        );
        await readerDone;
        assert.equal(captured.code, 0, captured.stderr);
        assert.ok((await assertValidCapture(out)) >= 4);
      } finally {
        await kubectl(
          ['delete', 'pod', '-n', 'demo', realOnly, '--grace-period=0', '--force', '--wait=false'],
          {
            kubeconfig: realCluster().kubeconfig,
          },
        );
      }
    } finally {
      await emulator.close();
    }
  });
});
