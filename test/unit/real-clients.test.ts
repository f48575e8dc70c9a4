import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createServer as createTcpServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { test } from 'node:test';
import { CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import { WebSocketServer } from 'ws';
import type { KubedumpError } from '../../src/errors.ts';
import { loadKubeConfig, proxyFromEnvironment } from '../../src/kube/config.ts';
import { lineSplitter, openExec } from '../../src/kube/exec.ts';
import {
  getPod,
  hostNetworkNotice,
  pickContainer,
  requireLinux,
  requireRunning,
  selectableContainers,
} from '../../src/kube/pods.ts';
import { openLog } from '../../src/log.ts';
import { requestFromOptions } from '../../src/wireshark/dialog.ts';
import {
  type DiscoveredPod,
  loadSettings,
  podsForInterfaces,
} from '../../src/wireshark/discovery.ts';
import { kubedumpProvider } from '../../src/wireshark/provider.ts';
import { kubedumpCommand, run } from '../support/kubedump.ts';

const tmp = (name: string) => mkdtempSync(join(tmpdir(), `kubedump-${name}-`));

function kubeconfigText(
  server: string,
  options: { context?: string; proxyUrl?: string; namespace?: string; verify?: boolean } = {},
) {
  const context = options.context ?? 'ctx';
  return `apiVersion: v1
kind: Config
clusters: [{name: c-${context}, cluster: {server: "${server}", insecure-skip-tls-verify: ${!options.verify}${options.proxyUrl ? `, proxy-url: "${options.proxyUrl}"` : ''}}}]
users: [{name: u-${context}, user: {token: t}}]
contexts: [{name: ${context}, context: {cluster: c-${context}, user: u-${context}, namespace: ${options.namespace ?? 'demo'}}}]
current-context: ${context}
`;
}

// ------------------------------------------------------------- proxies ---

test('the proxy comes from the environment as Go decides it for kubectl', () => {
  const env = { HTTPS_PROXY: 'http://proxy:3128', HTTP_PROXY: 'http://plain:3128' };
  assert.equal(proxyFromEnvironment('https://api.example.com:6443', env), 'http://proxy:3128');
  assert.equal(proxyFromEnvironment('http://api.example.com:8080', env), 'http://plain:3128');
  // lower case too, upper case first; a bare host:port is an http proxy
  assert.equal(proxyFromEnvironment('https://a.b', { https_proxy: 'p:1' }), 'http://p:1');
  assert.equal(
    proxyFromEnvironment('https://a.b', { HTTPS_PROXY: 'http://up:1', https_proxy: 'http://lo:1' }),
    'http://up:1',
  );
  // never localhost or loopback addresses
  for (const server of ['https://localhost:6443', 'https://127.0.0.1:6443', 'https://[::1]:6443']) {
    assert.equal(proxyFromEnvironment(server, env), undefined, server);
  }
  assert.equal(proxyFromEnvironment('https://api.example.com', {}), undefined);
  // NO_PROXY: a domain and its subdomains, a leading dot, a port, an IP, a CIDR, *
  const noProxy = (value: string, server: string) =>
    proxyFromEnvironment(server, { ...env, NO_PROXY: value });
  assert.equal(noProxy('example.com', 'https://example.com'), undefined);
  assert.equal(noProxy('example.com', 'https://api.example.com'), undefined);
  assert.equal(noProxy('example.com', 'https://notexample.com'), 'http://proxy:3128');
  assert.equal(noProxy('.example.com', 'https://example.com'), 'http://proxy:3128');
  assert.equal(noProxy('*.example.com', 'https://api.example.com'), undefined);
  assert.equal(noProxy('example.com:6443', 'https://example.com:6443'), undefined);
  assert.equal(noProxy('example.com:6443', 'https://example.com:443'), 'http://proxy:3128');
  assert.equal(noProxy('10.0.0.0/8', 'https://10.1.2.3:6443'), undefined);
  assert.equal(noProxy('10.0.0.0/8', 'https://11.1.2.3:6443'), 'http://proxy:3128');
  assert.equal(noProxy('192.168.1.1', 'https://192.168.1.1:6443'), undefined);
  assert.equal(noProxy(' a.com , *', 'https://b.com'), undefined);
  assert.equal(
    proxyFromEnvironment('https://api.example.com', { ...env, no_proxy: 'api.example.com' }),
    undefined,
  );
});

test('loadKubeConfig gives the cluster the environment proxy, and keeps its own proxy-url', () => {
  const dir = tmp('proxy');
  const file = join(dir, 'kubeconfig');
  writeFileSync(file, kubeconfigText('https://api.example.com:6443'));
  const env = { HTTPS_PROXY: 'http://proxy.example:3128' };
  assert.equal(
    loadKubeConfig({ kubeconfig: file }, env).getCurrentCluster()?.proxyUrl,
    'http://proxy.example:3128',
  );
  assert.equal(loadKubeConfig({ kubeconfig: file }, {}).getCurrentCluster()?.proxyUrl, undefined);
  writeFileSync(
    file,
    kubeconfigText('https://api.example.com:6443', { proxyUrl: 'http://own:8888' }),
  );
  assert.equal(
    loadKubeConfig({ kubeconfig: file }, env).getCurrentCluster()?.proxyUrl,
    'http://own:8888',
  );
});

test('a plain http:// server, as `kubectl proxy` serves, is used as kubectl uses it', async () => {
  const seen: string[] = [];
  const server = createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    res.setHeader('Content-Type', 'application/json');
    res.end(JSON.stringify({ kind: 'Pod', apiVersion: 'v1', metadata: { name: 'web' } }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  const dir = tmp('plain-http');
  const file = join(dir, 'kubeconfig');
  writeFileSync(file, kubeconfigText(`http://127.0.0.1:${port}`, { verify: true }));
  try {
    const kc = loadKubeConfig({ kubeconfig: file }, {});
    const path = '/api/v1/namespaces/demo/pods/web';
    assert.equal((await getPod(kc, { namespace: 'demo', name: 'web' })).metadata?.name, 'web');
    const api = kc.makeApiClient(CoreV1Api);
    const read = await api.readNamespacedPod({ namespace: 'demo', name: 'web' });
    assert.equal(read.metadata?.name, 'web');
    assert.deepEqual(seen, [`GET ${path}`, `GET ${path}`], 'both clients asked the http server');
  } finally {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

// ----------------------------------------------------------- KUBECONFIG ---

test('KUBECONFIG with several files skips missing ones, the first one included', () => {
  const dir = tmp('kubeconfigs');
  const a = join(dir, 'a');
  const b = join(dir, 'b');
  writeFileSync(a, kubeconfigText('https://a.example:6443', { context: 'a' }));
  writeFileSync(b, kubeconfigText('https://b.example:6443', { context: 'b' }));
  const saved = process.env.KUBECONFIG;
  try {
    process.env.KUBECONFIG = [join(dir, 'missing'), a, join(dir, 'gone'), b].join(delimiter);
    const kc = loadKubeConfig();
    assert.equal(kc.getCurrentContext(), 'a');
    assert.deepEqual(
      kc.getContexts().map((c) => c.name),
      ['a', 'b'],
    );
    assert.equal(
      loadKubeConfig({ context: 'b' }).getCurrentCluster()?.server,
      'https://b.example:6443',
    );
    process.env.KUBECONFIG = [join(dir, 'missing'), join(dir, 'gone')].join(delimiter);
    assert.throws(
      () => loadKubeConfig(),
      (e: KubedumpError) => e.code === 'KUBECONFIG' && /none of the files/.test(e.message),
    );
  } finally {
    if (saved === undefined) delete process.env.KUBECONFIG;
    else process.env.KUBECONFIG = saved;
  }
});

test("a Wireshark capture uses config.json's kubeconfig and context, as discovery does", () => {
  const dir = tmp('settings');
  const saved = process.env.XDG_CONFIG_HOME;
  try {
    process.env.XDG_CONFIG_HOME = dir;
    mkdirSync(join(dir, 'kubedump'));
    writeFileSync(
      join(dir, 'kubedump', 'config.json'),
      JSON.stringify({ kubeconfig: '/elsewhere/kubeconfig', context: 'prod' }),
    );
    const request = requestFromOptions('kubedump.demo.web', '', new Map());
    assert.equal(request.kubeconfig, '/elsewhere/kubeconfig');
    assert.equal(request.context, 'prod');
    // The dialog's own choice wins.
    const chosen = requestFromOptions(
      'kubedump.demo.web',
      '',
      new Map([
        ['kubeconfig', '/mine'],
        ['context', 'dev'],
      ]),
    );
    assert.equal(chosen.kubeconfig, '/mine');
    assert.equal(chosen.context, 'dev');
  } finally {
    if (saved === undefined) delete process.env.XDG_CONFIG_HOME;
    else process.env.XDG_CONFIG_HOME = saved;
  }
});

// ---------------------------------------------------------- containers ---

function sidecarPod(annotation?: string): V1Pod {
  const running = (name: string, id: string) => ({
    name,
    containerID: `containerd://${id}`,
    image: 'i',
    imageID: '',
    ready: true,
    restartCount: 0,
    state: { running: {} },
  });
  return {
    metadata: {
      namespace: 'demo',
      name: 'web',
      ...(annotation && { annotations: { 'kubectl.kubernetes.io/default-container': annotation } }),
    },
    spec: {
      nodeName: 'n1',
      initContainers: [{ name: 'setup' }, { name: 'proxy', restartPolicy: 'Always' }],
      containers: [{ name: 'app' }],
    },
    status: {
      phase: 'Running',
      containerStatuses: [running('app', 'aaa')],
      initContainerStatuses: [
        { ...running('setup', 'sss'), state: { terminated: { exitCode: 0 } } },
        running('proxy', 'ppp'),
      ],
    },
  } as V1Pod;
}

test('native sidecars can be chosen; plain init containers cannot', () => {
  const pod = sidecarPod();
  assert.deepEqual(selectableContainers(pod), ['app', 'proxy']);
  const proxy = pickContainer(pod, 'proxy');
  assert.equal(proxy.containerId, 'containerd://ppp');
  requireRunning(proxy);
  assert.throws(() => pickContainer(pod, 'setup'), { code: 'CONTAINER_NOT_FOUND' });
  assert.equal(pickContainer(sidecarPod('proxy')).container, 'proxy');
});

test('a default-container annotation naming no container falls back to the first, with a warning', () => {
  const picked = pickContainer(sidecarPod('renamed'));
  assert.equal(picked.container, 'app');
  assert.equal(picked.warnings.length, 1);
  assert.match(picked.warnings[0] as string, /"renamed".*does not exist; using "app"/);
  // An explicit choice that does not exist is still an error.
  assert.throws(() => pickContainer(sidecarPod(), 'renamed'), { code: 'CONTAINER_NOT_FOUND' });
  assert.deepEqual(pickContainer(sidecarPod()).warnings, []);
});

test('a host-network pod is said to be its node', () => {
  const pod = sidecarPod();
  assert.equal(hostNetworkNotice(pickContainer(pod)), undefined);
  (pod.spec as { hostNetwork?: boolean }).hostNetwork = true;
  assert.match(
    hostNetworkNotice(pickContainer(pod)) as string,
    /pod demo\/web uses the host network: this capture holds all of node n1's traffic/,
  );
});

test('a pod on a Windows node fails at once, from the pod or from the node label', async () => {
  let nodeReads = 0;
  let nodeOs = 'windows';
  const server = createServer((req, res) => {
    if (req.url?.startsWith('/api/v1/nodes/n1')) {
      nodeReads++;
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify({
          apiVersion: 'v1',
          kind: 'Node',
          metadata: { name: 'n1', labels: { 'kubernetes.io/os': nodeOs } },
        }),
      );
      return;
    }
    res.statusCode = 404;
    res.end('{}');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const dir = tmp('windows');
    const file = join(dir, 'kubeconfig');
    const port = (server.address() as { port: number }).port;
    writeFileSync(file, kubeconfigText(`http://127.0.0.1:${port}`));
    const windowsPod = sidecarPod();
    (windowsPod.spec as { os?: { name: string } }).os = { name: 'windows' };
    await assert.rejects(
      requireLinux(loadKubeConfig({ kubeconfig: file }), pickContainer(windowsPod)),
      {
        code: 'WINDOWS_NODE',
        message: /pod demo\/web is a Windows pod/,
      },
    );
    assert.equal(nodeReads, 0);
    await assert.rejects(
      requireLinux(loadKubeConfig({ kubeconfig: file }), pickContainer(sidecarPod())),
      {
        code: 'WINDOWS_NODE',
        message: /runs on Windows node n1/,
      },
    );
    nodeOs = 'linux';
    await requireLinux(loadKubeConfig({ kubeconfig: file }), pickContainer(sidecarPod()));
  } finally {
    server.close();
  }
});

test('a capture of a pod on a Windows node, in any mode, fails on the node and changes nothing', async () => {
  // The node is read beside the first steps: the error must still be the node's,
  // and no mode may create anything before it is known.
  const changes: string[] = [];
  const server = createServer((req, res) => {
    // The probe's exec goes out beside the node's read (over SPDY a POST);
    // it changes no object, and a Windows container has no sh to run it.
    if (req.method !== 'GET' && !req.url?.includes('/exec?')) {
      changes.push(`${req.method} ${req.url}`);
    }
    res.setHeader('content-type', 'application/json');
    if (req.url?.startsWith('/api/v1/nodes/n1')) {
      const labels = { 'kubernetes.io/os': 'windows', 'kubernetes.io/arch': 'amd64' };
      res.end(JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1', labels } }));
    } else if (
      req.url?.startsWith('/api/v1/namespaces/demo/pods/web?') ||
      req.url === '/api/v1/namespaces/demo/pods/web'
    ) {
      res.end(JSON.stringify({ apiVersion: 'v1', kind: 'Pod', ...sidecarPod() }));
    } else {
      res.statusCode = 404;
      res.end('{}');
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const dir = tmp('windows-capture');
    const file = join(dir, 'kubeconfig');
    writeFileSync(
      file,
      kubeconfigText(`http://127.0.0.1:${(server.address() as { port: number }).port}`),
    );
    for (const mode of ['unprivileged', 'ephemeral', 'privileged']) {
      const ran = await run(
        [
          ...kubedumpCommand('source'),
          'capture',
          'web',
          '-n',
          'demo',
          '--mode',
          mode,
          '-w',
          join(dir, `${mode}.pcap`),
        ],
        {
          env: {
            ...process.env,
            KUBECONFIG: file,
            XDG_CONFIG_HOME: dir,
            XDG_CACHE_HOME: dir,
            XDG_STATE_HOME: dir,
          },
          timeoutMs: 20_000,
        },
      );
      assert.equal(ran.code, 1, `${mode}: ${ran.stderr}`);
      assert.match(
        ran.stderr.trim(),
        /^kubedump: pod demo\/web runs on Windows node n1: kubedump captures on Linux nodes only/,
        mode,
      );
    }
    assert.deepEqual(changes, [], 'nothing sent that changes the cluster');
  } finally {
    server.close();
  }
});

// ---------------------------------------------------------------- misc ---

test('KUBEDUMP_MAX_INTERFACES=0 means no limit, as 0 does for every other limit', () => {
  const settings = loadSettings({ KUBEDUMP_MAX_INTERFACES: '0', XDG_CONFIG_HOME: tmp('max') });
  assert.equal(settings.maxInterfaces, 0);
  const pods = Array.from({ length: 300 }, (_, i) => ({ namespace: 'n', name: `p${i}`, node: '' }));
  const snapshot = { time: 0, context: 'c', contexts: [], pods };
  assert.equal(podsForInterfaces(snapshot, settings.maxInterfaces).length, 300);
  assert.equal(podsForInterfaces(snapshot, 200).length, 200);
});

test('--max-seconds beyond what a timer holds is refused with one line', () => {
  assert.equal(
    requestFromOptions('kubedump.demo.web', '', new Map([['max-seconds', '2147483']])).maxSeconds,
    2147483,
  );
  assert.throws(
    () => requestFromOptions('kubedump.demo.web', '', new Map([['max-seconds', '3000000']])),
    (e: KubedumpError) =>
      e.code === 'BAD_INPUT' && /max-seconds 3000000 is more than 2147483/.test(e.line),
  );
});

test('a log file that cannot be opened is one clear line', () => {
  const dir = tmp('log');
  const locked = join(dir, 'locked');
  mkdirSync(locked);
  chmodSync(locked, 0o500);
  for (const file of [dir, join(locked, 'sub', 'kubedump.log')]) {
    if (process.getuid?.() === 0 && file !== dir) continue; // root writes anywhere
    assert.throws(
      () => openLog({ file }),
      (e: KubedumpError) =>
        e.code === 'LOG_FILE' && e.line.startsWith(`cannot open the log file ${file} (`),
    );
  }
});

test('a remote stderr line that never ends is cut, not kept', () => {
  const lines: string[] = [];
  const split = lineSplitter((l) => lines.push(l), 1000);
  split(Buffer.from('one\ntw'));
  split(Buffer.from('o\n'));
  for (let i = 0; i < 100; i++) split(Buffer.alloc(100, 'x'));
  split(Buffer.from('still the long line\nthree\n'));
  assert.equal(lines.length, 4);
  assert.deepEqual([lines[0], lines[1], lines[3]], ['one', 'two', 'three']);
  assert.match(lines[2] as string, /^x+… \(cut\)$/);
  assert.ok((lines[2] as string).length < 1100);
  // a character split between two chunks stays whole
  split(Buffer.from([0xc3]));
  split(Buffer.from([0xa9, 0x0a]));
  assert.equal(lines[4], 'é');
});

test('an exec socket that stops answering pings ends the session', async () => {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', autoPong: false });
  let answer = true;
  wss.on('connection', (ws) => {
    ws.on('ping', (data) => answer && ws.pong(data));
  });
  await new Promise((r) => wss.once('listening', r));
  const port = (wss.address() as { port: number }).port;
  const dir = tmp('ping');
  const file = join(dir, 'kubeconfig');
  writeFileSync(file, kubeconfigText(`http://127.0.0.1:${port}`));
  const kc = loadKubeConfig({ kubeconfig: file });
  try {
    const options = {
      namespace: 'demo',
      pod: 'web',
      command: ['sleep'],
      pingMs: 100,
      silenceMs: 1000,
    };
    const alive = await openExec(kc, options);
    const ended = await Promise.race([
      alive.result.then(() => 'ended'),
      new Promise((r) => setTimeout(() => r('alive'), 2500)),
    ]);
    assert.equal(ended, 'alive', 'answered pings keep the session');
    alive.close();
    answer = false;
    const started = Date.now();
    const silent = await openExec(kc, options);
    const result = await Promise.race([
      silent.result,
      new Promise<undefined>((r) => setTimeout(() => r(undefined), 5000)),
    ]);
    silent.close();
    assert.ok(result, 'the session still waits 5 s after the pongs stopped');
    assert.equal(result.exitCode, null);
    assert.ok(Date.now() - started < 5000);
  } finally {
    for (const c of wss.clients) c.terminate();
    wss.close();
  }
});

test('--extcap-reload-option answers within its deadline when the cluster is black-holed', async () => {
  const sockets: Socket[] = [];
  const hole = createTcpServer((s) => sockets.push(s));
  await new Promise<void>((r) => hole.listen(0, '127.0.0.1', r));
  const dir = tmp('reload');
  const file = join(dir, 'kubeconfig');
  writeFileSync(
    file,
    kubeconfigText(`https://127.0.0.1:${(hole.address() as { port: number }).port}`),
  );
  try {
    const ran = await run(
      [
        ...kubedumpCommand('source'),
        '--extcap-config',
        '--extcap-interface',
        'kubedump',
        '--extcap-reload-option',
        'pod',
        '--namespace',
        'demo',
      ],
      {
        env: { ...process.env, KUBECONFIG: file, XDG_CONFIG_HOME: dir, XDG_CACHE_HOME: dir },
        timeoutMs: 20_000,
      },
    );
    assert.equal(ran.signal, null, 'not killed by the test timeout');
    assert.ok(ran.ms < 9000, `took ${ran.ms.toFixed(0)} ms`);
    assert.equal(ran.code, 1);
    assert.match(ran.stderr.trim(), /^kubedump: the cluster did not answer within 5 s/);
  } finally {
    for (const s of sockets) s.destroy();
    hole.close();
  }
});

/**
 * Runs `fn` with a fresh discovery cache holding `pods` (as a listing would
 * write it) and the environment `env` on top; restores the environment after.
 */
async function withListedPods(
  pods: DiscoveredPod[],
  env: Record<string, string>,
  fn: (provider: ReturnType<typeof kubedumpProvider>, dir: string) => Promise<void>,
) {
  const dir = tmp('listed');
  const names = [
    'XDG_CACHE_HOME',
    'XDG_CONFIG_HOME',
    'KUBEDUMP_INTERFACES',
    'KUBECONFIG',
    ...Object.keys(env),
  ];
  const saved = new Map(names.map((n) => [n, process.env[n]]));
  try {
    process.env.XDG_CACHE_HOME = join(dir, 'cache');
    process.env.XDG_CONFIG_HOME = join(dir, 'config');
    Object.assign(process.env, env);
    const { cachePath, writeSnapshot } = await import('../../src/wireshark/discovery.ts');
    writeSnapshot(cachePath(loadSettings()), {
      time: Date.now(),
      context: 'c',
      contexts: ['c'],
      pods,
    });
    await fn(kubedumpProvider({ capture: async () => {}, cleanupAfterKill: async () => {} }), dir);
  } finally {
    for (const [name, value] of saved) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  }
}

test('the provider lists host-network pods as their node', async () => {
  const pods = [
    { namespace: 'demo', name: 'web', node: 'n1' },
    { namespace: 'kube-system', name: 'proxy-x', node: 'n1', hostNetwork: true },
  ];
  await withListedPods(pods, {}, async (provider) => {
    const shown = await provider.interfaces();
    assert.equal(shown[1]?.display, 'Kubernetes pod demo/web on n1');
    assert.match(
      shown[2]?.display ?? '',
      /^Kubernetes node n1 \(all its traffic: pod kube-system\/proxy-x uses the host network\)$/,
    );
  });
});

test('KUBEDUMP_INTERFACES lists workloads only, or the generic interface alone without asking the cluster', async () => {
  const pods = [
    { namespace: 'demo', name: 'web-1', node: 'n1', workload: 'deploy/web' },
    { namespace: 'demo', name: 'web-2', node: 'n1', workload: 'deploy/web' },
    { namespace: 'demo', name: 'lone', node: 'n1' },
  ];
  await withListedPods(pods, {}, async (provider, dir) => {
    const values = async () => (await provider.interfaces()).map((i) => i.value);
    const all = await values();
    assert.deepEqual(all, [
      'kubedump',
      'kubedump.demo.lone',
      'kubedump.demo.web-1',
      'kubedump.demo.web-2',
      'kubedump.demo.deploy.web',
    ]);
    process.env.KUBEDUMP_INTERFACES = 'workloads';
    assert.deepEqual(await values(), ['kubedump', 'kubedump.demo.deploy.web']);
    process.env.KUBEDUMP_INTERFACES = 'everything';
    assert.deepEqual(await values(), all, 'an unknown value keeps the default list');
    // No cluster at all: the generic interface needs none.
    process.env.KUBEDUMP_INTERFACES = 'generic';
    process.env.KUBECONFIG = join(dir, 'no-such-kubeconfig');
    rmSync(join(dir, 'cache'), { recursive: true, force: true });
    assert.deepEqual(await values(), ['kubedump']);
  });
});
