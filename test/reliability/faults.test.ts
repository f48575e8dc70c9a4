import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type Emulator, startEmulator } from '../emulator/index.ts';
import { BUILT, run } from '../support/kubedump.ts';
import {
  allRemoteTcpdumps,
  assertNoLeftovers,
  podPidNamespace,
  remoteTcpdumps,
  tcpdumpRuns,
  untilTcpdumpsEnd,
  uploadedFiles,
} from '../support/leftovers.ts';
import { realCluster } from '../support/real-cluster.ts';
import {
  assertValidCapture,
  background,
  kubeconfigFor,
  oneLine,
  readLog,
  restartRealApiServer,
  sleep,
  startTcpProxy,
  type TcpProxy,
  until,
} from '../support/reliability.ts';
import { wiresharkHome } from '../support/worlds.ts';

// Faults while capturing: the API connection dropped, the target pod deleted,
// the helper pod deleted by someone else, the API server restarted, the
// credentials rejected. Each: one clear line, a valid capture of what
// arrived, nothing left behind (no helper pod, no tcpdump, no uploaded file).

const listening = (log: string) =>
  readLog(log).some((e) => /listening on/.test(String(e.line ?? '')));

/**
 * Starts a CLI capture into a file and waits until tcpdump listens and packets
 * flowed; `remote` is where its tcpdump runs (the pod's PID namespace, or the
 * host's for the hostPID helper), checked to be alive before the fault.
 */
async function capturing(
  args: string[],
  env: NodeJS.ProcessEnv,
  dir: string,
  name: string,
  where: Parameters<typeof remoteTcpdumps>[1],
) {
  const log = join(dir, `${name}.log`);
  const out = join(dir, `${name}.pcap`);
  const bg = background([...args, '--log-level', 'debug', '--log-file', log, '-w', out], env);
  await until('tcpdump to listen', () => listening(log), 30_000);
  await sleep(1500);
  const remote = remoteTcpdumps(log, where);
  assert.ok(remote.length > 0 && remote.every(tcpdumpRuns), 'the remote tcpdump runs');
  return { ...bg, log, out, remote };
}

/** The remote tcpdump must end (the watchdog stops it when kubedump could not). */
async function tcpdumpEnds(c: { remote: Parameters<typeof untilTcpdumpsEnd>[0] }, ms: number) {
  await untilTcpdumpsEnd(c.remote, ms);
}

describe('faults on the emulated cluster', () => {
  let emulator: Emulator;
  let home: ReturnType<typeof wiresharkHome>;
  let dir: string;
  before(async () => {
    emulator = await startEmulator();
    home = wiresharkHome(emulator.kubeconfigPath);
    dir = mkdtempSync(join(tmpdir(), 'kubedump-faults-'));
  });
  after(async () => {
    try {
      if (emulator)
        await assertNoLeftovers({ name: 'faults, emulated', kubeconfig: emulator.kubeconfigPath });
    } finally {
      await emulator?.close();
    }
  });

  const helpers = () =>
    emulator.api.cluster.pods
      .list()
      .filter((p) => p.metadata.labels?.['app.kubernetes.io/managed-by'] === 'kubedump');
  async function nothingLeft(c: Parameters<typeof tcpdumpEnds>[0], pod?: string) {
    assert.deepEqual(
      helpers().map((p) => p.metadata.name),
      [],
    );
    await tcpdumpEnds(c, 15_000);
    if (pod) {
      assert.deepEqual(
        await uploadedFiles(emulator.kubeconfigPath, 'demo', pod),
        [],
        'the uploaded tcpdump is still there',
      );
    }
  }
  const inPodNs = (pod: string) => podPidNamespace(emulator.kubeconfigPath, 'demo', pod);

  test('the exec stream is cut mid-capture (unprivileged)', async () => {
    const c = await capturing(['capture', 'web', '-n', 'demo'], home.env, dir, 'cut', {
      privileged: false,
      pidNs: await inPodNs('web'),
      pod: 'web',
    });
    assert.ok(emulator.api.dropStreams('exec') > 0);
    const end = await c.exited;
    const line = oneLine(c.stderr());
    console.log(`# exec cut: exit ${end.code}: ${line}`);
    assert.equal(end.code, 1);
    assert.match(line, /connection to the API server was lost/);
    assert.ok((await assertValidCapture(c.out)) > 0);
    await nothingLeft(c, 'web');
  });

  test('the target pod is deleted mid-capture', async () => {
    await emulator.api.addPod('demo', {
      metadata: { name: 'victim' },
      spec: {
        nodeName: 'node-a',
        terminationGracePeriodSeconds: 0,
        containers: [
          {
            name: 'victim',
            image: 'docker.io/library/busybox:1.36',
            command: ['sh', '-c', 'while true; do ping -c 1 -W 1 127.0.0.1; sleep 0.2; done'],
          },
        ],
      },
    });
    const c = await capturing(['capture', 'victim', '-n', 'demo'], home.env, dir, 'victim', {
      privileged: false,
      pidNs: await inPodNs('victim'),
      pod: 'victim',
    });
    await emulator.api.removePod('demo', 'victim');
    const end = await c.exited;
    const line = oneLine(c.stderr());
    console.log(`# target deleted: exit ${end.code}: ${line}`);
    assert.equal(end.code, 1);
    assert.match(line, /pod demo\/victim was deleted during the capture/);
    assert.ok((await assertValidCapture(c.out)) > 0);
    await nothingLeft(c);
  });

  test('someone else deletes the helper pod mid-capture (privileged)', async () => {
    const c = await capturing(['capture', 'web', '-n', 'demo', '-p'], home.env, dir, 'helper', {
      privileged: true,
    });
    const [helper] = helpers();
    assert.ok(helper);
    await emulator.api.removePod('demo', helper.metadata.name);
    const end = await c.exited;
    const line = oneLine(c.stderr());
    console.log(`# helper deleted: exit ${end.code}: ${line}`);
    assert.equal(end.code, 1);
    assert.match(line, /pod demo\/kubedump-web-[0-9a-f]{6} was deleted during the capture/);
    assert.ok((await assertValidCapture(c.out)) > 0);
    await nothingLeft(c);
  });

  for (const mode of ['unprivileged', 'privileged'] as const) {
    test(`credentials rejected (401), ${mode}: one line, a valid empty capture, nothing created`, async () => {
      await emulator.api.setFaults({ unauthorized: true });
      try {
        const out = join(dir, `401-${mode}.pcap`);
        const ran = await run(
          [
            BUILT,
            'capture',
            'web',
            '-n',
            'demo',
            ...(mode === 'privileged' ? ['-p'] : ['--mode', 'unprivileged']),
            '-w',
            out,
          ],
          { env: home.env, timeoutMs: 30_000 },
        );
        assert.equal(ran.code, 1);
        const line = oneLine(ran.stderr);
        console.log(`# 401: ${line}`);
        assert.match(line, /401|credentials|Unauthorized/i);
        assert.equal(await assertValidCapture(out), 0);
      } finally {
        await emulator.api.resetFaults();
      }
      assert.deepEqual(helpers(), []);
      // Nothing was started: no request got past the 401 to start a tcpdump or upload.
      assert.deepEqual(allRemoteTcpdumps(), []);
      assert.deepEqual(await uploadedFiles(emulator.kubeconfigPath, 'demo', 'web'), []);
    });
  }
});

describe('faults on the real cluster', () => {
  const cluster = realCluster();
  let proxy: TcpProxy;
  let home: ReturnType<typeof wiresharkHome>;
  let dir: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kubedump-faults-real-'));
    proxy = await startTcpProxy(6443);
    home = wiresharkHome(kubeconfigFor(cluster.kubeconfig, proxy.url, join(dir, 'kubeconfig')));
  });
  after(async () => {
    try {
      await assertNoLeftovers({ name: 'faults, real', kubeconfig: cluster.kubeconfig });
    } finally {
      await proxy?.close();
    }
  });

  /** Unprivileged: no helper pod to look for; our tcpdump must end. */
  async function nothingLeft(c: Parameters<typeof tcpdumpEnds>[0]) {
    // The remote watchdog stops tcpdump when kubedump could not.
    await tcpdumpEnds(c, 20_000);
  }
  let webPidNs: string;
  const web = async () => {
    webPidNs ??= await podPidNamespace(cluster.kubeconfig, 'demo', 'web');
    return { privileged: false as const, pidNs: webPidNs, pod: 'web' };
  };

  /** The next capture removes what an interrupted one could not (the uploaded file). */
  async function nextRunCleans() {
    const ran = await run(
      [BUILT, 'capture', 'web', '-n', 'demo', '--max-packets', '1', '-w', join(dir, 'next.pcap')],
      { env: home.env, timeoutMs: 60_000 },
    );
    assert.equal(ran.code, 0, ran.stderr);
    assert.deepEqual(await uploadedFiles(cluster.kubeconfig, 'demo', 'web'), []);
  }

  test('the API connection is dropped mid-capture (TCP proxy)', async () => {
    const c = await capturing(['capture', 'web', '-n', 'demo'], home.env, dir, 'drop', await web());
    assert.ok(proxy.dropAll() > 0);
    const end = await c.exited;
    const line = oneLine(c.stderr());
    console.log(`# connection dropped: exit ${end.code}: ${line}`);
    assert.equal(end.code, 1);
    assert.match(line, /connection to the API server was lost/);
    assert.ok((await assertValidCapture(c.out)) > 0);
    await nothingLeft(c);
    await nextRunCleans();
  });

  test('the API server is restarted mid-capture', async () => {
    const c = await capturing(
      ['capture', 'web', '-n', 'demo'],
      home.env,
      dir,
      'restart',
      await web(),
    );
    const restarted = restartRealApiServer(cluster.kubeconfig);
    const end = await c.exited;
    await restarted;
    const line = oneLine(c.stderr());
    console.log(`# API server restarted: exit ${end.code}: ${line}`);
    assert.equal(end.code, 1);
    assert.match(line, /connection to the API server was lost/);
    assert.ok((await assertValidCapture(c.out)) > 0);
    await nothingLeft(c);
    await nextRunCleans();
  });
});
