import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type Emulator, startEmulator } from '../emulator/index.ts';
import { BUILT, run } from '../support/kubedump.ts';
import {
  assertValidCapture,
  background,
  kubeconfigFor,
  oneLine,
  readLog,
  sleep,
  startTcpProxy,
  type TcpProxy,
  until,
} from '../support/reliability.ts';
import { wiresharkHome } from '../support/worlds.ts';

// The network goes silent mid-capture (no FIN, no RST: a laptop leaving the
// Wi-Fi, a NAT entry expiring): kubedump must notice within 30 s, not after
// TCP's ~15 minutes of retransmissions. And host-network pods are said to be
// their node's traffic, on the emulated cluster.

const listening = (log: string) =>
  readLog(log).some((e) => /listening on/.test(String(e.line ?? '')));

describe('a silent network drop on the emulated cluster', () => {
  let emulator: Emulator;
  let proxy: TcpProxy;
  let dir: string;
  let env: NodeJS.ProcessEnv;
  before(async () => {
    emulator = await startEmulator();
    dir = mkdtempSync(join(tmpdir(), 'kubedump-drop-'));
    proxy = await startTcpProxy(Number(new URL(emulator.url).port));
    env = wiresharkHome(
      kubeconfigFor(emulator.kubeconfigPath, proxy.url, join(dir, 'kubeconfig')),
    ).env;
  });
  after(async () => {
    await proxy?.close();
    await emulator?.close();
  });

  test('the capture ends with CONNECTION_LOST within 30 s and a valid file', async () => {
    const log = join(dir, 'drop.log');
    const out = join(dir, 'drop.pcap');
    const bg = background(
      ['capture', 'web', '-n', 'demo', '--log-level', 'debug', '--log-file', log, '-w', out],
      env,
    );
    await until('tcpdump to listen', () => listening(log), 30_000);
    await sleep(1500);
    const dropped = performance.now();
    proxy.stall(true);
    const end = await Promise.race([bg.exited, sleep(45_000).then(() => undefined)]);
    if (!end) bg.child.kill('SIGKILL');
    assert.ok(end, 'the capture did not notice the drop within 45 s');
    const seconds = (end.at - dropped) / 1000;
    const line = oneLine(bg.stderr());
    console.log(`# silent drop noticed after ${seconds.toFixed(1)} s: exit ${end.code}: ${line}`);
    assert.ok(seconds < 30, `noticed after ${seconds.toFixed(1)} s`);
    assert.equal(end.code, 1);
    assert.match(line, /connection to the API server was lost/);
    assert.ok((await assertValidCapture(out)) > 0);
    proxy.stall(false);
  });
});

describe('a host-network pod on the emulated cluster', () => {
  let emulator: Emulator;
  let home: ReturnType<typeof wiresharkHome>;
  before(async () => {
    emulator = await startEmulator();
    home = wiresharkHome(emulator.kubeconfigPath);
    await emulator.api.addPod('demo', {
      metadata: { name: 'hostnet' },
      spec: {
        nodeName: 'node-a',
        hostNetwork: true,
        terminationGracePeriodSeconds: 0,
        containers: [
          {
            name: 'hostnet',
            image: 'docker.io/library/busybox:1.36',
            command: ['sh', '-c', 'while true; do sleep 1; done'],
          },
        ],
      },
    });
  });
  after(() => emulator?.close());

  test('the interface, the CLI and the log say the capture is the node', async () => {
    const listed = await run([BUILT, '--extcap-interfaces', '--extcap-version=4.0'], {
      env: home.env,
      timeoutMs: 20_000,
    });
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(
      listed.stdout,
      /interface \{value=kubedump\.demo\.hostnet\}\{display=Kubernetes node node-a \(all its traffic: pod demo\/hostnet uses the host network\)\}/,
    );
    assert.match(listed.stdout, /\{display=Kubernetes pod demo\/web on /);

    const log = join(home.dir, 'hostnet.log');
    const out = join(home.dir, 'hostnet.pcap');
    const ran = await run(
      [
        BUILT,
        'capture',
        'hostnet',
        '-n',
        'demo',
        '--mode',
        'unprivileged',
        '--max-seconds',
        '2',
        '--log-level',
        'info',
        '--log-file',
        log,
        '-w',
        out,
      ],
      { env: home.env, timeoutMs: 60_000 },
    );
    assert.equal(ran.code, 0, ran.stderr);
    assert.equal(
      ran.stderr.trim(),
      "kubedump: pod demo/hostnet uses the host network: this capture holds all of node node-a's traffic, not only the pod's",
    );
    assert.ok(readLog(log).some((e) => /uses the host network/.test(e.message)));
    await assertValidCapture(out);
  });
});
