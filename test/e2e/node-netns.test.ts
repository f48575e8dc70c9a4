import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type Emulator, startEmulator } from '../emulator/index.ts';
import { NESTED_CONTAINER_ANNOTATION } from '../emulator/runtime/kubelet.ts';
import { IMAGES } from '../emulator/world.ts';
import { BUILT, run } from '../support/kubedump.ts';
import { readLog, sleep } from '../support/reliability.ts';
import { wiresharkHome } from '../support/worlds.ts';

// A privileged capture found by the cgroup scan holds the POD's traffic, never
// the node's: on a CRI-O node, whose conmon carries the container ID, starts
// first and runs in the node's network namespace; and for a pod with a nested
// container below its cgroup (docker-in-docker) that has the lower PID.

/** Sent on the node's loopback during each capture: the pod's namespace never sees it. */
const NODE_ONLY_PORT = 5999;

function netns(pid: number): string {
  try {
    return readlinkSync(`/proc/${pid}/ns/net`);
  } catch {
    return `(no network namespace for PID ${pid})`;
  }
}

/** PIDs on this machine whose cgroup file holds `text`. */
function pidsWithCgroup(text: string): number[] {
  const pids: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      if (readFileSync(`/proc/${p}/cgroup`, 'utf8').includes(text)) pids.push(Number(p));
    } catch {}
  }
  return pids.sort((a, b) => a - b);
}

describe('privileged capture by cgroup scan: the pod, never the node', () => {
  let emulator: Emulator;
  let home: ReturnType<typeof wiresharkHome>;
  const hostNetns = netns(process.pid);

  before(async () => {
    emulator = await startEmulator();
    home = wiresharkHome(emulator.kubeconfigPath);
    await emulator.api.addPod('demo', {
      metadata: {
        name: 'nested',
        labels: { app: 'nested' },
        annotations: { [NESTED_CONTAINER_ANNOTATION]: 'true' },
      },
      spec: {
        nodeName: 'node-a',
        terminationGracePeriodSeconds: 1,
        containers: [
          {
            name: 'nested',
            image: IMAGES.busybox,
            command: [
              'sh',
              '-c',
              'mkdir -p /www && echo n > /www/index.html && exec httpd -f -p 80 -h /www',
            ],
          },
        ],
      },
    });
  });
  after(async () => {
    if (!emulator) return;
    await emulator.close();
    assert.deepEqual(await emulator.checkClean(), [], 'conmon and nested processes left nothing');
  });

  const cases = [
    {
      pod: 'nonroot',
      port: 8080,
      what: 'on a cri-o node, whose conmon is older and in the node network',
      decoy: (id: string, target: number) => {
        const [conmon] = pidsWithCgroup(`crio-conmon-${id}`);
        assert.ok(
          conmon && conmon < target,
          `conmon ${conmon} starts before the container ${target}`,
        );
        assert.equal(netns(conmon), hostNetns, "conmon is in the node's network namespace");
        return conmon;
      },
    },
    {
      pod: 'nested',
      port: 80,
      what: 'with a nested container of lower PID below its cgroup',
      decoy: (id: string, target: number) => {
        const [nested] = pidsWithCgroup(`${id}/docker/`);
        assert.ok(nested && nested < target, `nested ${nested} has a lower PID than ${target}`);
        assert.notEqual(netns(nested), netns(target));
        assert.notEqual(netns(nested), hostNetns);
        return nested;
      },
    },
  ];

  /** A privileged cgroup-scan capture of `pod` while HTTP goes to it and UDP to the node's loopback. */
  async function captureWithTraffic(pod: string, port: number) {
    const ip = emulator.api.getPod('demo', pod)?.status.podIP ?? '';
    const log = join(home.dir, `${pod}.log`);
    const out = join(home.dir, `${pod}.pcap`);
    let capturing = true;
    const udp = createSocket('udp4');
    const traffic = (async () => {
      while (capturing) {
        udp.send('node only', NODE_ONLY_PORT, '127.0.0.1');
        await fetch(`http://${ip}:${port}/`, { signal: AbortSignal.timeout(1000) })
          .then((r) => r.text())
          .catch(() => {});
        await sleep(100);
      }
    })();
    const ran = await run(
      [
        BUILT,
        'capture',
        pod,
        '-n',
        'demo',
        '-p',
        '--pid-lookup',
        'cgroup',
        '-f',
        `tcp port ${port} or udp port ${NODE_ONLY_PORT}`,
        '--max-seconds',
        '4',
        '--log-level',
        'debug',
        '--log-file',
        log,
        '-w',
        out,
      ],
      { env: home.env, timeoutMs: 60_000 },
    ).finally(async () => {
      capturing = false;
      await traffic;
      udp.close();
    });
    assert.equal(ran.code, 0, ran.stderr);
    const found = readLog(log).find((e) => e.message === 'target PID found');
    assert.equal(found?.method, 'cgroup scan');
    const read = await run(
      [
        'tshark',
        '-r',
        out,
        '-T',
        'fields',
        '-e',
        'ip.dst',
        '-e',
        'udp.dstport',
        '-e',
        'http.request.method',
      ],
      { env: home.env },
    );
    assert.equal(read.code, 0, read.stderr);
    const rows = read.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split('\t'));
    return {
      targetPid: Number(found?.targetPid),
      httpTo: (dst: string) => rows.some(([d, , method]) => d === dst && method === 'GET'),
      nodeOnly: rows.filter(([, udpPort]) => udpPort === String(NODE_ONLY_PORT)).length,
      packets: rows.length,
    };
  }

  for (const { pod, port, what, decoy } of cases) {
    test(`a pod ${what}: its HTTP, none of the node's traffic`, async () => {
      const target = emulator.api.getPod('demo', pod);
      const id = target?.status.containerStatuses?.[0]?.containerID?.split('://')[1] ?? '';
      const ip = target?.status.podIP ?? '';
      const pid = emulator.api.containerPid('demo', pod);
      assert.ok(id && ip && pid, JSON.stringify(target?.status.containerStatuses));
      const other = decoy(id, pid);

      const got = await captureWithTraffic(pod, port);
      // Every check at once, so a failure shows all that went wrong.
      const problems: string[] = [];
      if (got.targetPid !== pid)
        problems.push(`target PID ${got.targetPid}, not the container's ${pid}`);
      if (netns(got.targetPid) !== netns(pid))
        problems.push(`PID ${got.targetPid} is not in the pod's netns`);
      if (!got.httpTo(ip)) problems.push(`no HTTP GET to ${ip} in ${got.packets} packets`);
      if (got.nodeOnly) problems.push(`${got.nodeOnly} packets of the node's own traffic`);
      assert.deepEqual(problems, []);
      console.log(`# ${pod}: ${got.packets} packets, PID ${pid} (refused ${other})`);
    });
  }

  test("a hostNetwork pod: its process in the node's network is accepted, conmon still is not", async () => {
    const pod = await emulator.api.addPod('demo', {
      metadata: { name: 'hostnet', labels: { app: 'hostnet' } },
      spec: {
        nodeName: 'node-d',
        hostNetwork: true,
        terminationGracePeriodSeconds: 1,
        containers: [{ name: 'hostnet', image: IMAGES.busybox, command: ['sleep', '3600'] }],
      },
    });
    try {
      const pid = emulator.api.containerPid('demo', 'hostnet');
      assert.ok(pid, JSON.stringify(pod.status.containerStatuses));
      assert.equal(netns(pid), hostNetns);
      const got = await captureWithTraffic('hostnet', 80);
      assert.equal(got.targetPid, pid);
      assert.ok(got.nodeOnly > 0, "the node's traffic is the pod's here");
    } finally {
      await emulator.api.removePod('demo', 'hostnet');
    }
  });
});
