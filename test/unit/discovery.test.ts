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

/** The deadline the README promises for a cluster that does not answer. */
const DEADLINE_MS = 1000;
/**
 * Time the deadline may overrun: from the sources, the Kubernetes client's
 * modules are compiled during the wait and can hold the timer up on a busy machine.
 */
const MARGIN_MS = 500;

test('--extcap-interfaces waits at most the 1 s deadline for a black-holed API server, then lists the cached pods', async () => {
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
    // The sources, not a build: start-up is slow, so it is measured. The
    // baseline is the same call with a fresh cache, which answers without
    // asking the cluster: what the call with a stale cache takes beyond it
    // is the wait for the black-holed cluster.
    const command = [...kubedumpCommand('source'), '--extcap-interfaces', '--extcap-version=4.0'];
    writeSnapshot(path, snapshot(Date.now()));
    const fresh = await run(command, { env, timeoutMs: 10_000 });
    assert.equal(fresh.code, 0, fresh.stderr);
    assert.match(fresh.stdout, /interface \{value=kubedump\.demo\.web\}/);
    writeSnapshot(path, snapshot(0));
    const ran = await run(command, { env, timeoutMs: 10_000 });
    assert.equal(ran.code, 0, ran.stderr);
    const waited = ran.ms - fresh.ms;
    assert.ok(
      waited < DEADLINE_MS + MARGIN_MS,
      `waited ${waited.toFixed(0)} ms beyond a fresh-cache call (${fresh.ms.toFixed(0)} ms)`,
    );
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
