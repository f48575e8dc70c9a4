import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BUILT, run } from '../support/kubedump.ts';
import { allRemoteTcpdumps, untilNoRemoteTcpdump } from '../support/leftovers.ts';
import { extcapIntoFifo } from '../support/reliability.ts';
import { openWorld, type World, wiresharkHome } from '../support/worlds.ts';

// The extcap contract, checked on the built executable against the real
// cluster: Wireshark's calls, the fifo lifecycle, signals and EPIPE.

describe('extcap contract of the built executable', () => {
  let world: World;
  let home: ReturnType<typeof wiresharkHome>;
  before(async () => {
    world = await openWorld('real');
    home = wiresharkHome(world.kubeconfig);
  });
  after(() => world?.close());

  const kubedump = (args: string[], timeoutMs = 30_000) =>
    run([BUILT, ...args], { env: home.env, timeoutMs });
  const tshark = (args: string[]) => run(['tshark', ...args], { env: home.env, timeoutMs: 60_000 });

  test('answers discovery with and without --extcap-version, and the link type', async () => {
    for (const args of [['--extcap-interfaces', '--extcap-version=4.0'], ['--extcap-interfaces']]) {
      const ran = await kubedump(args);
      assert.equal(ran.code, 0, ran.stderr);
      const lines = ran.stdout.trim().split('\n');
      assert.match(
        lines[0] as string,
        /^extcap \{version=\d+\.\d+\.\d+\}\{help=[^}]+\}\{display=[^}]+\}$/,
      );
      assert.ok(
        lines.includes('interface {value=kubedump}{display=Kubernetes pod (choose in options)}'),
      );
      for (const pod of ['client', 'debian', 'distroless', 'nonroot', 'web']) {
        assert.ok(
          lines.some((l) => l.startsWith(`interface {value=kubedump.demo.${pod}}`)),
          pod,
        );
      }
      assert.equal(ran.stderr, '');
    }
    const dlts = await kubedump(['--extcap-dlts', '--extcap-interface', 'kubedump.demo.web']);
    assert.equal(
      dlts.stdout.trim(),
      'dlt {number=113}{name=LINUX_SLL}{display=Linux cooked capture}',
    );
  });

  test('reload fills the selectors from the cluster', async () => {
    const reload = (option: string, ...extra: string[]) =>
      kubedump([
        '--extcap-config',
        '--extcap-interface',
        'kubedump',
        '--extcap-reload-option',
        option,
        ...extra,
      ]);
    const pods = await reload('pod', '--namespace', 'demo');
    assert.equal(pods.code, 0, pods.stderr);
    const values = [...pods.stdout.matchAll(/^value \{arg=2\}\{value=([^}]+)\}/gm)].map(
      (m) => m[1],
    );
    assert.deepEqual(values.sort(), ['client', 'debian', 'distroless', 'nonroot', 'web']);
    const containers = await reload('container', '--namespace', 'demo', '--pod', 'distroless');
    assert.match(
      containers.stdout,
      /^value \{arg=3\}\{value=server\}\{display=server\}\{default=true\}$/m,
    );
    const contexts = await reload('context');
    assert.match(contexts.stdout, /\{value=local-restricted\}/);
  });

  test('checks capture filters by compiling them, without capturing', async () => {
    const check = (filter: string) =>
      kubedump(['--extcap-capture-filter', filter, '--extcap-interface', 'kubedump.demo.web']);
    const good = await check('tcp port 80 and host 10.88.0.2');
    assert.equal(good.code, 0);
    assert.equal(good.stdout, '');
    const bad = await check('port 80; touch /tmp/pwned');
    assert.equal(bad.code, 0);
    assert.match(bad.stdout, /syntax error/);
    assert.equal(existsSync('/tmp/pwned'), false);
  });

  test('tshark shows the options as preferences and the link type', async () => {
    const prefs = await tshark(['-G', 'currentprefs']);
    assert.equal(prefs.code, 0, prefs.stderr);
    for (const call of [
      'context',
      'namespace',
      'pod',
      'container',
      'remoteinterface',
      'mode',
      'helperimage',
      'snaplen',
      'maxpackets',
      'loglevel',
    ]) {
      assert.match(prefs.stdout, new RegExp(`extcap\\.kubedump\\.${call}:`), call);
    }
    const linkTypes = await tshark(['-i', 'kubedump.demo.web', '-L']);
    assert.equal(linkTypes.code, 0, linkTypes.stderr);
    assert.match(linkTypes.stdout, /LINUX_SLL/);
  });

  const captureIntoFifo = (iface: string) => {
    const dir = mkdtempSync(join(tmpdir(), 'kubedump-fifo-'));
    return { dir, ...extcapIntoFifo(dir, ['--extcap-interface', iface], home.env) };
  };

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    test(`${signal} during a capture: exit 0 within 2 s, a valid capture, nothing left`, async () => {
      const capture = captureIntoFifo('kubedump.demo.web');
      await capture.firstBytes;
      await new Promise((r) => setTimeout(r, 1500)); // let some packets flow
      assert.equal(allRemoteTcpdumps().length, 1, 'the remote tcpdump runs');
      const sent = performance.now();
      capture.child.kill(signal);
      const { code, at } = await capture.exited;
      await capture.closed;
      assert.equal(code, 0, capture.stderr());
      assert.ok(at - sent < 2000, `exit took ${at - sent} ms`);
      assert.equal(capture.stderr(), '');
      const file = join(capture.dir, 'out.pcap');
      writeFileSync(file, Buffer.concat(capture.chunks));
      const read = await tshark(['-r', file, '-Y', 'http']);
      assert.equal(read.code, 0, read.stderr);
      assert.doesNotMatch(read.stderr, /cut short|appears to be damaged/);
      assert.match(read.stdout, /HTTP/);
      // Pod web has no ps: the process table of this machine, where it runs, is read instead.
      await untilNoRemoteTcpdump(2000);
    });
  }

  test('EPIPE (the reader went away) is a normal stop', async () => {
    const capture = captureIntoFifo('kubedump.demo.web');
    await capture.firstBytes;
    capture.reader.destroy();
    const { code } = await capture.exited;
    assert.equal(code, 0, capture.stderr());
    assert.equal(capture.stderr(), '');
    await untilNoRemoteTcpdump(2000);
  });

  test('a failed capture writes its reason to stderr, then opens and closes the fifo', async () => {
    const capture = captureIntoFifo('kubedump.demo.no-such-pod');
    const { code } = await capture.exited;
    await capture.closed;
    assert.equal(code, 1);
    assert.equal(Buffer.concat(capture.chunks).length, 0);
    // The whole line: what was not found, and what to do.
    assert.match(
      capture.stderr(),
      /^pod "no-such-pod" not found in namespace "demo": list the pods with: kubectl get pods -n demo\n$/,
    );
  });

  test('install puts the executable where tshark looks; uninstall removes it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kubedump-install-'));
    const env = { ...home.env, WIRESHARK_CONFIG_DIR: dir, HOME: dir };
    const installed = await run([BUILT, 'install'], { env });
    assert.equal(installed.code, 0, installed.stderr);
    const target = join(dir, 'extcap', 'kubedump');
    assert.match(installed.stdout, new RegExp(`installed ${target}`));
    assert.deepEqual(readFileSync(target), readFileSync(BUILT));
    const listed = await run(['tshark', '-D'], { env });
    assert.match(listed.stdout, /kubedump\.demo\.web/);
    const removed = await run([BUILT, 'uninstall'], { env });
    assert.equal(removed.code, 0, removed.stderr);
    assert.equal(existsSync(target), false);
    const after = await run(['tshark', '-D'], { env });
    // (kubedump0 is the local cluster's bridge, a host interface.)
    assert.doesNotMatch(after.stdout, /kubedump \(|kubedump\.demo/);
  });

  test('version names the embedded tcpdump and its hashes', async () => {
    const ran = await kubedump(['version']);
    assert.equal(ran.code, 0, ran.stderr);
    assert.match(ran.stdout, /single executable/);
    assert.match(ran.stdout, /tcpdump 4\.\d+\.\d+, libpcap 1\.\d+\.\d+/);
    assert.match(ran.stdout, /linux-amd64: sha256 [0-9a-f]{64}/);
    assert.match(ran.stdout, /linux-arm64: sha256 [0-9a-f]{64}/);
  });
});
