import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { BUILT, run } from '../support/kubedump.ts';
import { captureArgs, countPcapRecords } from '../support/reliability.ts';
import { applyReadyPod, openWorld, type World, wiresharkHome } from '../support/worlds.ts';

// A capture's exec goes out before the pod is read, naming no container: the
// API server then takes the pod's only one. A pod with two containers, whose
// default (by kubectl's annotation) is the second, must still be captured in
// that container: the early exec is refused, dropped, and sent again once the
// read names the default. Nothing is left in either container.

const POD = 'two-containers';
let world: World;
let home: ReturnType<typeof wiresharkHome>;

const pinging = (name: string) => ({
  name,
  image: 'docker.io/library/busybox:1.36',
  imagePullPolicy: 'Never',
  command: ['sh', '-c', 'exec ping -q -i 0.2 127.0.0.1'],
});

before(async () => {
  world = await openWorld('real');
  home = wiresharkHome(world.kubeconfig);
  const pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: POD,
      namespace: 'demo',
      annotations: { 'kubectl.kubernetes.io/default-container': 'side' },
    },
    spec: {
      nodeName: 'kubedump-node',
      terminationGracePeriodSeconds: 0,
      containers: [pinging('app'), pinging('side')],
    },
  };
  await applyReadyPod(world, pod);
});

after(async () => {
  await world?.kubectl(['delete', 'pod', '-n', 'demo', POD, '--grace-period=0', '--wait=true']);
  await world?.close();
});

test('no container named: the capture runs in the default one of two', async () => {
  const log = join(home.dir, 'two.log');
  const out = join(home.dir, 'two.pcap');
  const ran = await run([BUILT, ...captureArgs(POD, { maxPackets: 4, log, out }), 'icmp'], {
    env: home.env,
    timeoutMs: 60_000,
  });
  assert.equal(ran.code, 0, ran.stderr);
  assert.equal(countPcapRecords(readFileSync(out)), 4);
  const events = readFileSync(log, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  const dirs = events.filter((e) => e.message === 'making a private directory');
  assert.deepEqual(
    dirs.map((e) => e.target),
    [`pod demo/${POD}`, `pod demo/${POD} container side`],
    'the early exec named no container; the one that ran named the default',
  );
  const started = events.find((e) => e.message === 'capture started');
  assert.ok(started, 'no capture started');
  for (const container of ['app', 'side']) {
    const ls = await world.kubectl([
      'exec',
      '-n',
      'demo',
      POD,
      '-c',
      container,
      '--',
      'ls',
      '-a',
      '/tmp',
    ]);
    assert.equal(ls.code, 0, ls.stderr);
    assert.doesNotMatch(ls.stdout, /kubedump/, `left in ${container}`);
  }
});
