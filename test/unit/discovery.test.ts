import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { cachePath, discover, loadSettings, writeSnapshot } from '../../src/wireshark/discovery.ts';
import { kubedumpCommand, run } from '../support/kubedump.ts';

function kubeconfigFor(port: number, dir: string): string {
  const path = join(dir, 'kubeconfig');
  writeFileSync(
    path,
    `apiVersion: v1
kind: Config
clusters: [{name: hole, cluster: {server: "https://127.0.0.1:${port}", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: secret-token-value}}]
contexts: [{name: hole, context: {cluster: hole, user: u, namespace: demo}}]
current-context: hole
`,
  );
  return path;
}

/** A server that accepts connections and never answers. */
async function blackHole() {
  const sockets: Socket[] = [];
  const server = createServer((s) => sockets.push(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

test('--extcap-interfaces answers within 1.5 s when the API server is black-holed', async () => {
  const hole = await blackHole();
  const dir = mkdtempSync(join(tmpdir(), 'kubedump-discovery-'));
  try {
    const env = {
      ...process.env,
      KUBECONFIG: kubeconfigFor(hole.port, dir),
      XDG_CACHE_HOME: join(dir, 'cache'),
      XDG_CONFIG_HOME: join(dir, 'config'),
    };
    // A stale cache from an earlier run: its pods are still offered.
    const settings = loadSettings(env);
    const path = cachePath(settings, env);
    writeSnapshot(path, {
      time: 0,
      context: 'hole',
      contexts: ['hole'],
      pods: [{ namespace: 'demo', name: 'web', node: 'n1' }],
    });
    const ran = await run([...kubedumpCommand(), '--extcap-interfaces', '--extcap-version=4.0'], {
      env,
      timeoutMs: 10_000,
    });
    assert.equal(ran.code, 0, ran.stderr);
    assert.ok(ran.ms < 1500, `took ${ran.ms.toFixed(0)} ms`);
    assert.match(ran.stdout, /^extcap \{version=/);
    assert.match(ran.stdout, /interface \{value=kubedump\}/);
    assert.match(ran.stdout, /interface \{value=kubedump\.demo\.web\}/);
    assert.equal(ran.stderr, '');
  } finally {
    hole.close();
  }
});

test('a fresh cache answers without asking the cluster; a cold failure falls back to the cache', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kubedump-discovery-'));
  process.env.XDG_CACHE_HOME = join(dir, 'cache');
  const settings = { ...loadSettings({}), freshMs: 60_000, deadlineMs: 200 };
  let asked = 0;
  const pods = [{ namespace: 'a', name: 'p', node: '' }];
  const list = async () => {
    asked++;
    return { time: Date.now(), context: 'c', contexts: ['c'], pods };
  };
  assert.equal((await discover(settings, list)).source, 'cluster');
  assert.equal((await discover(settings, list)).source, 'fresh-cache');
  assert.equal(asked, 1);
  const never = () => new Promise<never>(() => {});
  const stale = await discover({ ...settings, freshMs: 0 }, never);
  assert.equal(stale.source, 'stale-cache');
  assert.deepEqual(stale.snapshot?.pods, pods);
});

test('discovery from a fresh cache and --extcap-config never load the Kubernetes client', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kubedump-warm-'));
  const env = {
    ...process.env,
    KUBECONFIG: join(dir, 'missing-kubeconfig'),
    XDG_CACHE_HOME: join(dir, 'cache'),
    XDG_CONFIG_HOME: join(dir, 'config'),
  };
  writeSnapshot(cachePath(loadSettings(env), env), {
    time: Date.now(),
    context: 'c',
    contexts: ['c'],
    pods: [{ namespace: 'demo', name: 'web', node: 'n1' }],
  });
  // A resolve hook records every module that is loaded.
  const trace = join(dir, 'modules.txt');
  const hook = join(dir, 'hook.mjs');
  writeFileSync(
    hook,
    `import { registerHooks } from 'node:module';
import { appendFileSync } from 'node:fs';
registerHooks({ resolve(specifier, context, next) { appendFileSync(${JSON.stringify(trace)}, specifier + '\\n'); return next(specifier, context); } });`,
  );
  for (const args of [
    ['--extcap-interfaces', '--extcap-version=4.0'],
    ['--extcap-config', '--extcap-interface', 'kubedump.demo.web'],
  ]) {
    writeFileSync(trace, '');
    const ran = await run(
      [process.execPath, '--import', hook, ...kubedumpCommand('source').slice(1), ...args],
      { env },
    );
    assert.equal(ran.code, 0, ran.stderr);
    assert.match(ran.stdout, /kubedump\.demo\.web|\{call=--pod\}/);
    const loaded = readFileSync(trace, 'utf8');
    assert.match(loaded, /discovery\.ts/, 'the trace saw the modules');
    assert.doesNotMatch(loaded, /@kubernetes\/client-node|kube\/config\.ts|kube\/pods\.ts/);
  }
});
