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

/** A server that accepts connections and never answers; it counts them. */
async function blackHole() {
  const sockets: Socket[] = [];
  const server = createServer((s) => sockets.push(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    connections: () => sockets.length,
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

/** The deadline the README promises for a cluster that does not answer. */
const DEADLINE_MS = 1000;
/**
 * What the whole call may take beyond a fresh-cache call and the deadline:
 * loading the Kubernetes client from the sources, which a busy machine slows
 * by seconds. A process kept alive by its unanswered connection is killed at
 * the 10 s limit. The deadline itself is checked on a mocked clock below.
 */
const LOADING_MS = 3000;

test('--extcap-interfaces against a black-holed API server lists the cached pods and exits', async () => {
  const hole = await blackHole();
  const dir = mkdtempSync(join(tmpdir(), 'kubedump-discovery-'));
  try {
    const env = {
      ...process.env,
      KUBECONFIG: kubeconfigFor(hole.port, dir),
      XDG_CACHE_HOME: join(dir, 'cache'),
      XDG_CONFIG_HOME: join(dir, 'config'),
    };
    const path = cachePath(loadSettings(env), env);
    const snapshot = (time: number) => ({
      time,
      context: 'hole',
      contexts: ['hole'],
      pods: [{ namespace: 'demo', name: 'web', node: 'n1' }],
    });
    // The sources, not a build. The refresh in the background is kept from
    // starting: its process would only add load.
    const command = [...kubedumpCommand('source'), '--extcap-interfaces', '--extcap-version=4.0'];
    writeSnapshot(path, snapshot(Date.now()));
    writeFileSync(`${path}.refreshing`, 'held by the test');
    const fresh = await run(command, { env, timeoutMs: 10_000 });
    assert.equal(fresh.code, 0, fresh.stderr);
    assert.match(fresh.stdout, /interface \{value=kubedump\.demo\.web\}/);
    assert.equal(hole.connections(), 0, 'a fresh cache does not ask the cluster');
    writeSnapshot(path, snapshot(0));
    const ran = await run(command, { env, timeoutMs: 10_000 });
    assert.equal(ran.signal, null, 'not killed at the 10 s limit');
    assert.equal(ran.code, 0, ran.stderr);
    const beyond = ran.ms - fresh.ms;
    assert.ok(
      beyond < DEADLINE_MS + LOADING_MS,
      `the call took ${beyond.toFixed(0)} ms beyond a fresh-cache call (${fresh.ms.toFixed(0)} ms)`,
    );
    assert.match(ran.stdout, /^extcap \{version=/);
    assert.match(ran.stdout, /interface \{value=kubedump\}/);
    assert.match(ran.stdout, /interface \{value=kubedump\.demo\.web\}/);
    assert.equal(ran.stderr, '');
  } finally {
    hole.close();
  }
});

test('a cluster that does not answer gets the default 1 s: the cached pods at 1000 ms, not at 999', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kubedump-discovery-'));
  process.env.XDG_CACHE_HOME = join(dir, 'cache');
  const settings = loadSettings({ XDG_CONFIG_HOME: join(dir, 'config') });
  const pods = [{ namespace: 'demo', name: 'web', node: 'n1' }];
  writeSnapshot(cachePath(settings), { time: 0, context: 'c', contexts: ['c'], pods });
  t.mock.timers.enable({ apis: ['setTimeout'] });
  let answer: Awaited<ReturnType<typeof discover>> | undefined;
  const discovering = discover(settings, () => new Promise<never>(() => {})).then((r) => {
    answer = r;
  });
  const answered = () => answer;
  const settle = () => new Promise((r) => setImmediate(r));
  t.mock.timers.tick(DEADLINE_MS - 1);
  await settle();
  assert.equal(answered(), undefined, 'still waiting at 999 ms');
  t.mock.timers.tick(1);
  await settle();
  const result = answered();
  assert.ok(result, 'answered at 1000 ms');
  await discovering;
  assert.equal(result.source, 'stale-cache');
  assert.equal(result.late, true);
  assert.deepEqual(result.snapshot?.pods, pods);
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
