import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type Emulator, startEmulator } from '../emulator/index.ts';
import { BUILT, run } from '../support/kubedump.ts';
import { kubectl, realCluster } from '../support/real-cluster.ts';
import {
  background,
  captureArgs,
  K8S_DIR,
  oneLine,
  readLog,
  remotePids,
  sleep,
  tcpdumpRuns,
  until,
} from '../support/reliability.ts';
import { wiresharkHome } from '../support/worlds.ts';

// Privileged capture end to end: a helper pod on the target's node finds the
// target's PID and runs tcpdump in its network namespace. Real tshark and the
// CLI against the real cluster (containerd, exec v4) and the emulated one
// (docker and cri-o nodes, admission and scheduling faults).

const HELPERS = 'app.kubernetes.io/managed-by=kubedump';
/** The real cluster's containerd socket is not at a stock path. */
const REAL_SOCKET = `${K8S_DIR}/containerd/containerd.sock`;

/** Starts `capture web -p` in the background and waits until tcpdump listens. */
async function privilegedCaptureOfWeb(home: { dir: string; env: NodeJS.ProcessEnv }, name: string) {
  const log = join(home.dir, `${name}.log`);
  const bg = background(
    captureArgs('web', { privileged: true, log, out: join(home.dir, `${name}.pcap`) }),
    home.env,
  );
  await until(
    'tcpdump to listen',
    () => readLog(log).some((e) => /listening on/.test(String(e.line ?? ''))),
    30_000,
  );
  return { bg, log };
}

describe('privileged capture on the real cluster', () => {
  const cluster = realCluster();
  const home = wiresharkHome(cluster.kubeconfig);
  const k = (args: string[]) => kubectl(args, { kubeconfig: cluster.kubeconfig });
  const cli = (args: string[], timeoutMs = 60_000) =>
    run([BUILT, ...args], { env: home.env, timeoutMs });

  async function helperPods(): Promise<string[]> {
    const got = await k(['get', 'pods', '-A', '-l', HELPERS, '-o', 'name']);
    assert.equal(got.code, 0, got.stderr);
    return got.stdout.split('\n').filter(Boolean);
  }

  async function assertNothingLeft(log: string) {
    assert.deepEqual(await helperPods(), [], 'a helper pod is left');
    const pids = remotePids(log);
    assert.ok(pids.length > 0, 'the log names the remote tcpdump');
    await until('the remote tcpdump to end', () => pids.every((p) => !tcpdumpRuns(p)));
  }

  async function containerId(pod: string): Promise<string> {
    const got = await k([
      'get',
      'pod',
      '-n',
      'demo',
      pod,
      '-o',
      'jsonpath={.status.containerStatuses[0].containerID}',
    ]);
    return got.stdout.replace(/^containerd:\/\//, '');
  }

  before(async () => {
    // Another run's leftovers would make the checks below lie.
    assert.equal(
      (await cli(['cleanup', '--all-namespaces', '--kubeconfig', cluster.kubeconfig])).code,
      0,
    );
  });

  for (const [pod, port] of [
    ['distroless', 8080],
    ['nonroot', 8080],
  ] as const) {
    test(`tshark captures client→${pod} HTTP in privileged mode, then nothing is left`, async () => {
      const log = join(home.dir, `${pod}.log`);
      const out = join(home.dir, `${pod}.pcapng`);
      const started = performance.now();
      const captured = await run(
        [
          'tshark',
          '-i',
          'kubedump',
          '-o',
          `extcap.kubedump.pod:${pod}`,
          '-o',
          'extcap.kubedump.namespace:demo',
          '-o',
          'extcap.kubedump.mode:privileged',
          '-o',
          'extcap.kubedump.loglevel:debug',
          '-o',
          `extcap.kubedump.logfile:${log}`,
          '-f',
          `tcp port ${port}`,
          '-c',
          '20',
          '-w',
          out,
        ],
        { env: home.env, timeoutMs: 90_000 },
      );
      assert.equal(captured.code, 0, captured.stderr);
      const http = await run(
        [
          'tshark',
          '-r',
          out,
          '-Y',
          'http.request',
          '-T',
          'fields',
          '-e',
          'ip.src',
          '-e',
          'http.request.method',
        ],
        { env: home.env },
      );
      assert.match(http.stdout, /GET/);
      const first = readLog(log).find((e) => e.message === 'capture started');
      assert.ok(first, 'capture started');
      console.log(
        `# ${pod}: tshark run ${Math.round(performance.now() - started)} ms for 20 packets`,
      );
      await assertNothingLeft(log);
    });
  }

  for (const lookup of ['runtime', 'cgroup'] as const) {
    test(`the PID is found through ${lookup === 'runtime' ? 'the containerd bridge' : 'the cgroup scan, bridges disabled'}`, async () => {
      const log = join(home.dir, `lookup-${lookup}.log`);
      const t0 = performance.now();
      const ran = await cli([
        'capture',
        'web',
        '-n',
        'demo',
        '-p',
        '--pid-lookup',
        lookup,
        ...(lookup === 'runtime' ? ['--runtime-socket', REAL_SOCKET] : []),
        '--max-packets',
        '5',
        '--log-level',
        'debug',
        '--log-file',
        log,
        '-w',
        join(home.dir, `lookup-${lookup}.pcap`),
      ]);
      assert.equal(ran.code, 0, ran.stderr);
      const entries = readLog(log);
      const found = entries.find((e) => e.message === 'target PID found');
      assert.ok(found, 'the log says how the PID was found');
      assert.equal(found.method, lookup === 'runtime' ? 'containerd bridge' : 'cgroup scan');
      // Independent check: that PID is in the target container's cgroup on this node.
      const id = await containerId('web');
      assert.match(id, /^[0-9a-f]{64}$/);
      const cgroup = readFileSync(`/proc/${found.targetPid}/cgroup`, 'utf8');
      assert.ok(cgroup.includes(id), `PID ${found.targetPid} is not in container ${id}`);
      const created = entries.find((e) => e.message === 'helper pod created');
      const first = entries.find((e) => /listening on/.test(String(e.line ?? '')));
      assert.ok(created && first);
      console.log(
        `# ${lookup}: helper created → tcpdump listening ${Date.parse(String(first.time)) - Date.parse(String(created.time))} ms; whole run ${Math.round(performance.now() - t0)} ms`,
      );
      await assertNothingLeft(log);
    });
  }

  test('without the socket option the containerd bridge finds no socket, and says so', async () => {
    const ran = await cli([
      'capture',
      'web',
      '-n',
      'demo',
      '-p',
      '--pid-lookup',
      'runtime',
      '--max-packets',
      '1',
      '-w',
      join(home.dir, 'nosocket.pcap'),
    ]);
    assert.equal(ran.code, 1);
    assert.match(
      oneLine(ran.stderr),
      /no containerd socket at \/run\/containerd\/containerd\.sock.*--runtime-socket/,
    );
    assert.deepEqual(await helperPods(), []);
  });

  test('SIGTERM while capturing: tcpdump killed, helper pod gone, exit within 2 s', async () => {
    const { bg, log } = await privilegedCaptureOfWeb(home, 'term');
    const pids = remotePids(log);
    assert.ok(pids.length === 1 && tcpdumpRuns(pids[0] as number), 'tcpdump runs on the node');
    const sent = performance.now();
    bg.child.kill('SIGTERM');
    const end = await bg.exited;
    assert.ok(end.at - sent < 2000, `exit took ${Math.round(end.at - sent)} ms`);
    assert.equal(end.code, 0, bg.stderr());
    await assertNothingLeft(log);
  });

  test('SIGKILL: tcpdump stops, the helper ends by itself within 60 s; cleanup deletes it and keeps a live one', async () => {
    const killed = await privilegedCaptureOfWeb(home, 'kill');
    const live = await privilegedCaptureOfWeb(home, 'live');
    try {
      const [pid] = remotePids(killed.log);
      assert.ok(pid && tcpdumpRuns(pid));
      const helper = String(
        readLog(killed.log).find((e) => e.message === 'helper pod created')?.pod,
      ).replace(/^demo\//, '');
      const killedAt = Date.now();
      killed.bg.child.kill('SIGKILL');
      await killed.bg.exited;
      // No one cleans up after SIGKILL: the watchdog stops tcpdump once the
      // keepalive lines stop, and the helper's main process exits by itself.
      await until('the watchdog to stop the orphaned tcpdump', () => !tcpdumpRuns(pid), 15_000);
      const phase = async () =>
        (await k(['get', 'pod', '-n', 'demo', helper, '-o', 'jsonpath={.status.phase}'])).stdout;
      await until(
        'the helper to end by itself',
        async () => (await phase()) === 'Succeeded',
        65_000,
      );
      const seconds = (Date.now() - killedAt) / 1000;
      console.log(`# real cluster: the helper ended ${seconds.toFixed(1)} s after SIGKILL`);
      assert.ok(seconds <= 60, `the helper ran ${seconds} s after its client died`);

      const ran = await cli(['cleanup', '--all-namespaces']);
      assert.equal(ran.code, 0, ran.stderr);
      assert.match(
        ran.stdout,
        new RegExp(`^deleted pod demo/${helper}: it ended \\(Succeeded\\)$`, 'm'),
      );
      assert.match(ran.stdout, /^kept 1 running helper pod: its capture is alive/m);
      assert.equal(live.bg.child.exitCode, null, `the live capture ended: ${live.bg.stderr()}`);
    } finally {
      live.bg.child.kill('SIGINT');
    }
    const end = await live.bg.exited;
    assert.equal(end.code, 0, live.bg.stderr());
    await assertNothingLeft(live.log);
    const again = await cli(['cleanup', '--all-namespaces']);
    assert.match(again.stdout, /no abandoned kubedump helper pods in any namespace/);
  });

  test('an identity that may not create pods gets the RBAC line', async () => {
    const ran = await cli([
      'capture',
      'web',
      '-n',
      'demo',
      '-p',
      '--context',
      cluster.restrictedContext,
      '--max-packets',
      '1',
      '-w',
      join(home.dir, 'rbac.pcap'),
    ]);
    assert.equal(ran.code, 1);
    assert.match(
      oneLine(ran.stderr),
      /not allowed to create pods in namespace "demo" \(RBAC: User "restricted" may not "create pods" in namespace "demo"\)/,
    );
    assert.deepEqual(await helperPods(), []);
  });
});

describe('privileged capture on the emulated cluster', () => {
  let emulator: Emulator;
  let home: ReturnType<typeof wiresharkHome>;
  before(async () => {
    emulator = await startEmulator();
    home = wiresharkHome(emulator.kubeconfigPath);
  });
  after(() => emulator?.close());

  const helpers = () =>
    emulator.api.cluster.pods
      .list()
      .filter((p) => p.metadata.labels?.['app.kubernetes.io/managed-by'] === 'kubedump')
      .map((p) => `${p.metadata.namespace}/${p.metadata.name}`);

  for (const [pod, runtime, node] of [
    ['client', 'docker', 'node-b'],
    ['distroless', 'cri-o', 'node-d'],
  ] as const) {
    test(`a ${runtime}:// target on ${node}: the helper lands there and captures`, async () => {
      const target = emulator.api.getPod('demo', pod);
      assert.equal(target?.spec.nodeName, node);
      assert.match(
        target?.status.containerStatuses?.[0]?.containerID ?? '',
        new RegExp(`^${runtime}://`),
      );
      const log = join(home.dir, `${pod}.log`);
      const seenNodes = new Set<string>();
      const watch = setInterval(() => {
        for (const p of emulator.api.cluster.pods.list())
          if (p.metadata.name.startsWith('kubedump-')) seenNodes.add(p.spec.nodeName ?? '');
      }, 20);
      const out = join(home.dir, `${pod}.pcapng`);
      const ran = await run(
        [
          'tshark',
          '-i',
          `kubedump.demo.${pod}`,
          '-o',
          `extcap.kubedump_demo_${pod}.mode:privileged`,
          '-o',
          `extcap.kubedump_demo_${pod}.loglevel:debug`,
          '-o',
          `extcap.kubedump_demo_${pod}.logfile:${log}`,
          '-c',
          '10',
          '-w',
          out,
        ],
        { env: home.env, timeoutMs: 60_000 },
      ).finally(() => clearInterval(watch));
      assert.equal(ran.code, 0, ran.stderr);
      assert.deepEqual([...seenNodes], [node]);
      const found = readLog(log).find((e) => e.message === 'target PID found');
      // The emulated nodes have no runtime socket: the cgroup scan finds the PID.
      assert.equal(found?.method, 'cgroup scan');
      assert.equal(found?.targetPid, emulator.api.containerPid('demo', pod));
      const count = await run(['tshark', '-r', out, '-T', 'fields', '-e', 'frame.number'], {
        env: home.env,
      });
      assert.equal(count.stdout.trim().split('\n').length, 10);
      assert.deepEqual(helpers(), []);
      for (const pid of remotePids(log)) assert.ok(!tcpdumpRuns(pid), 'tcpdump left running');
    });
  }

  const failures: [string, Parameters<Emulator['api']['setFaults']>[0], string[], RegExp][] = [
    [
      'Pod Security rejection',
      { rejectPrivileged: 'podsecurity' },
      [],
      /Pod Security refuses the privileged helper pod in namespace "demo": "baseline:latest": .*pod-security\.kubernetes\.io\/enforce.*--helper-namespace/,
    ],
    [
      'RBAC denial',
      { forbid: [{ verb: 'create', resource: 'pods' }] },
      [],
      /not allowed to create pods in namespace "demo" \(RBAC: User "admin" may not "create pods" in namespace "demo"\): ask for the RBAC permission "create pods"/,
    ],
    [
      'image pull failure',
      { keepPending: 'ImagePullBackOff' },
      [],
      /cannot pull the helper image "docker\.io\/library\/busybox:1\.36".*--helper-image/,
    ],
    [
      'a helper pod never scheduled',
      { keepPending: 'Unschedulable' },
      ['-o', 'extcap.kubedump_demo_web.helpertimeout:2'],
      /helper pod demo\/kubedump-web-[0-9a-f]{6} was not scheduled within 2 s: 0\/4 nodes are available/,
    ],
  ];
  for (const [name, faults, extra, expected] of failures) {
    test(`${name}: one clear line in tshark, which ends at once, nothing left`, async () => {
      await emulator.api.setFaults(faults);
      try {
        const ran = await run(
          [
            'tshark',
            '-i',
            'kubedump.demo.web',
            '-o',
            'extcap.kubedump_demo_web.mode:privileged',
            ...extra,
            '-c',
            '1',
            '-w',
            join(home.dir, 'fail.pcapng'),
          ],
          { env: home.env, timeoutMs: 30_000 },
        );
        assert.notEqual(ran.code, 0);
        assert.match(ran.stderr, expected);
        assert.ok(ran.ms < 10_000, `tshark took ${Math.round(ran.ms)} ms`);
        console.log(`# ${name}: ${ran.stderr.split('\n').find((l) => expected.test(l))}`);
        await until('no helper pod', () => helpers().length === 0, 5000);
      } finally {
        await emulator.api.resetFaults();
      }
    });
  }

  test('SIGTERM while the helper pod is Pending: exit within 2 s, the pod is gone', async () => {
    await emulator.api.setFaults({ keepPending: 'Unschedulable' });
    try {
      const bg = background(
        ['capture', 'web', '-n', 'demo', '-p', '-w', join(home.dir, 'pending.pcap')],
        home.env,
      );
      await until('the helper pod', () => helpers().length === 1);
      await sleep(300);
      assert.equal(
        emulator.api.cluster.pods.list().find((p) => p.metadata.name.startsWith('kubedump-'))
          ?.status.phase,
        'Pending',
      );
      const sent = performance.now();
      bg.child.kill('SIGTERM');
      const end = await bg.exited;
      assert.ok(end.at - sent < 2000, `exit took ${Math.round(end.at - sent)} ms`);
      assert.notEqual(end.signal, 'SIGKILL');
      assert.deepEqual(helpers(), []);
    } finally {
      await emulator.api.resetFaults();
    }
  });

  test('an unknown runtime is a clear line, nothing created', async () => {
    const pod = await emulator.api.addPod(
      'demo',
      {
        metadata: { name: 'odd' },
        spec: {
          nodeName: 'node-a',
          containers: [
            { name: 'odd', image: 'docker.io/library/busybox:1.36', command: ['sleep', '600'] },
          ],
        },
      },
      { backed: false },
    );
    const status = pod.status.containerStatuses?.[0];
    assert.ok(status);
    status.containerID = `rkt://${'a'.repeat(64)}`;
    emulator.api.cluster.pods.touch(pod);
    const ran = await run(
      [BUILT, 'capture', 'odd', '-n', 'demo', '-p', '-w', join(home.dir, 'odd.pcap')],
      {
        env: home.env,
      },
    );
    assert.equal(ran.code, 1);
    assert.match(
      oneLine(ran.stderr),
      /container runtime "rkt" is not supported in privileged mode/,
    );
    assert.deepEqual(helpers(), []);
    await emulator.api.removePod('demo', 'odd');
  });
});
