import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { cachePath, loadSettings, writeSnapshot } from '../../src/wireshark/discovery.ts';
import { type Emulator, startEmulator } from '../emulator/index.ts';
import { serverTls } from '../emulator/tls.ts';
import { BUILT, run } from '../support/kubedump.ts';
import { assertNoLeftovers } from '../support/leftovers.ts';
import { kubeconfigFor, startTcpProxy, type TcpProxy } from '../support/reliability.ts';
import { wiresharkHome } from '../support/worlds.ts';

// Discovery when the cluster is down, black-holed, slow, or answers garbage:
// Wireshark's interface list still appears within the deadline: 1 s for the
// cluster, beyond what the same call takes when a fresh cache spares it the
// cluster (the executable's start-up), measured in the same test.

const DEADLINE_MS = 1000;
/** Time the deadline may overrun: timers, TLS set-up, a busy machine. */
const MARGIN_MS = 300;
/** "At once": a fresh cache answers within this much of a plain start-up (best of two each). */
const AT_ONCE_MS = 200;
const GENERIC = 'interface {value=kubedump}{display=Kubernetes pod (choose in options)}';

function listen(server: Server | ReturnType<typeof createHttpsServer>): Promise<number> {
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => {
      const a = server.address();
      resolve(typeof a === 'object' && a ? a.port : 0);
    }),
  );
}

describe('discovery against a broken cluster', () => {
  let emulator: Emulator;
  let blackhole: TcpProxy;
  let garbageTcp: Server;
  let garbageHttp: ReturnType<typeof createHttpsServer>;
  let dir: string;
  const servers: Record<string, string> = {};
  const timings: string[] = [];

  before(async () => {
    emulator = await startEmulator();
    dir = mkdtempSync(join(tmpdir(), 'kubedump-discovery-'));
    // Down: a port that was just free and has nobody listening.
    const probe = createServer();
    const freePort = await listen(probe);
    await new Promise((r) => probe.close(r));
    servers.down = `https://127.0.0.1:${freePort}`;
    blackhole = await startTcpProxy(1);
    blackhole.blackhole(true);
    servers['black-holed'] = blackhole.url;
    servers.slow = emulator.url; // with delayMs below
    garbageTcp = createServer((s) => {
      s.on('error', () => {});
      s.end(Buffer.from('\u0000\u00ffnot TLS at all\r\n'.repeat(50)));
    });
    servers['garbage bytes'] = `https://127.0.0.1:${await listen(garbageTcp)}`;
    const tls = await serverTls();
    garbageHttp = createHttpsServer({ cert: tls.cert, key: tls.key }, (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"kind":"PodList","items":[{"metadata":null},42,"}{');
    });
    servers['garbage JSON'] = `https://127.0.0.1:${await listen(garbageHttp)}`;
  });
  after(async () => {
    console.log(`# discovery: ${timings.join('; ')}`);
    await blackhole?.close();
    garbageTcp?.close();
    garbageHttp?.close();
    try {
      if (emulator)
        await assertNoLeftovers({
          name: 'discovery, emulated',
          kubeconfig: emulator.kubeconfigPath,
        });
    } finally {
      await emulator?.close();
    }
  });

  /** The same call answered from a fresh cache, so the cluster is never asked: start-up alone. */
  async function startUp(env: NodeJS.ProcessEnv): Promise<number> {
    const path = cachePath(loadSettings(env), env);
    writeSnapshot(path, { time: Date.now(), context: 'x', contexts: ['x'], pods: [] });
    const ran = await run([BUILT, '--extcap-interfaces', '--extcap-version=4.0'], {
      env,
      timeoutMs: 30_000,
    });
    rmSync(path, { force: true });
    assert.equal(ran.code, 0, ran.stderr);
    return ran.ms;
  }

  async function interfaces(server: string, name: string) {
    const kubeconfig = kubeconfigFor(
      emulator.kubeconfigPath,
      server,
      join(dir, `${name.replace(/\W/g, '-')}.kubeconfig`),
    );
    const home = wiresharkHome(kubeconfig);
    return {
      home,
      list: () =>
        run([BUILT, '--extcap-interfaces', '--extcap-version=4.0'], {
          env: home.env,
          timeoutMs: 30_000,
        }),
    };
  }

  for (const name of ['down', 'black-holed', 'slow', 'garbage bytes', 'garbage JSON']) {
    test(`cluster ${name}: the interface list appears within the deadline`, async () => {
      if (name === 'slow') await emulator.api.setFaults({ delayMs: 5000 });
      try {
        const { list, home } = await interfaces(servers[name] as string, name);
        const base = await startUp(home.env);
        const ran = await list();
        timings.push(`${name} ${Math.round(ran.ms)} ms (start-up ${Math.round(base)} ms)`);
        assert.equal(ran.code, 0, ran.stderr);
        assert.ok(
          ran.ms - base < DEADLINE_MS + MARGIN_MS,
          `took ${Math.round(ran.ms)} ms, start-up ${Math.round(base)} ms`,
        );
        const lines = ran.stdout.trim().split('\n');
        assert.match(lines[0] as string, /^extcap \{version=/);
        assert.ok(lines.includes(GENERIC), ran.stdout);
        assert.doesNotMatch(ran.stderr, /\bat .*\.(ts|js|cjs):\d+/);
      } finally {
        await emulator.api.resetFaults();
      }
    });
  }

  test('a cluster that went away: the last pods seen are still listed, at once', async () => {
    // One kubeconfig (so one cache) whose server is first the emulator, then black-holed.
    const file = join(dir, 'moving.kubeconfig');
    kubeconfigFor(emulator.kubeconfigPath, emulator.url, file);
    const home = wiresharkHome(file);
    const list = () =>
      run([BUILT, '--extcap-interfaces'], {
        env: { ...home.env, KUBEDUMP_NAMESPACES: 'demo' },
        timeoutMs: 30_000,
      });
    const first = await list();
    assert.match(first.stdout, /kubedump\.demo\.web/);
    kubeconfigFor(emulator.kubeconfigPath, blackhole.url, file);
    // Fresh cache: no cluster call at all, so as fast as the executable starts.
    let version = Infinity;
    let fastest = Infinity;
    for (let i = 0; i < 2; i++) {
      const v = await run([BUILT, '--version'], { env: home.env });
      assert.equal(v.code, 0, v.stderr);
      version = Math.min(version, v.ms);
      const cached = await list();
      assert.match(cached.stdout, /kubedump\.demo\.web/);
      fastest = Math.min(fastest, cached.ms);
    }
    timings.push(`fresh cache ${Math.round(fastest)} ms (--version ${Math.round(version)} ms)`);
    assert.ok(
      fastest - version < AT_ONCE_MS,
      `a fresh cache took ${Math.round(fastest)} ms, --version ${Math.round(version)} ms`,
    );
    // Stale cache (however old) and a black-holed cluster: the old pods, within the deadline.
    const cacheDir = join(String(home.env.XDG_CACHE_HOME), 'kubedump');
    for (const f of readdirSync(cacheDir).filter((n) => n.endsWith('.json'))) {
      const snapshot = JSON.parse(readFileSync(join(cacheDir, f), 'utf8'));
      writeFileSync(join(cacheDir, f), JSON.stringify({ ...snapshot, time: 0 }));
    }
    const stale = await list();
    timings.push(`stale cache, black-holed ${Math.round(stale.ms)} ms`);
    assert.equal(stale.code, 0, stale.stderr);
    assert.match(stale.stdout, /kubedump\.demo\.web/);
    assert.ok(
      stale.ms - fastest < DEADLINE_MS + MARGIN_MS,
      `took ${Math.round(stale.ms)} ms, from a fresh cache ${Math.round(fastest)} ms`,
    );
    // tshark -D runs it too, and must not hang either.
    const tshark = await run(['tshark', '-D'], { env: home.env, timeoutMs: 30_000 });
    assert.equal(tshark.code, 0, tshark.stderr);
    assert.match(tshark.stdout, /kubedump/);
    // tshark starts every extcap and its own dissectors: bounded, not to the deadline.
    assert.ok(tshark.ms < 8000, `tshark -D took ${Math.round(tshark.ms)} ms`);
  });
});
