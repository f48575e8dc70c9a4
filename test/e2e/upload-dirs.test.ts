import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { BUILT, ROOT, run } from '../support/kubedump.ts';
import { kubectl } from '../support/real-cluster.ts';
import { captureArgs } from '../support/reliability.ts';
import { applyReadyPod, openWorld, type World, wiresharkHome } from '../support/worlds.ts';

// A container whose /tmp and /var/tmp are read-only and whose /dev/shm is
// noexec (as containerd mounts it) must still be captured unprivileged: the
// probe moves on to the next directory that is writable and executable. And
// in a shared, world-writable /tmp (an emptyDir) nothing another user of the
// pod planted is ever executed: uploads go into a directory of their own.

let world: World;
let home: ReturnType<typeof wiresharkHome>;

before(async () => {
  world = await openWorld('real');
  home = wiresharkHome(world.kubeconfig);
  const web = await world.kubectl([
    'get',
    'pod',
    '-n',
    'demo',
    'web',
    '-o',
    'jsonpath={.status.podIP}',
  ]);
  assert.match(web.stdout, /^\d+\.\d+\.\d+\.\d+$/);
  await startPod('readonly', {
    command: [
      'sh',
      '-c',
      'while true; do timeout 3 wget -q -O - "http://$0/" >/dev/null; sleep 0.3; done',
      web.stdout,
    ],
    securityContext: { readOnlyRootFilesystem: true },
    volumeMounts: [{ name: 'scratch', mountPath: '/run' }],
  });
});

/** A busybox pod on the node with one emptyDir volume (`scratch`), once it is Ready. */
async function startPod(name: string, container: Record<string, unknown>) {
  const pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'demo' },
    spec: {
      nodeName: 'kubedump-node',
      terminationGracePeriodSeconds: 0,
      containers: [
        {
          name: 'app',
          image: 'docker.io/library/busybox:1.36',
          imagePullPolicy: 'Never',
          ...container,
        },
      ],
      volumes: [{ name: 'scratch', emptyDir: {} }],
    },
  };
  await applyReadyPod(world, pod);
}

after(async () => {
  await world?.kubectl([
    'delete',
    'pod',
    '-n',
    'demo',
    'readonly',
    'shared',
    '--grace-period=0',
    '--ignore-not-found',
    '--wait=true',
  ]);
  await world?.close();
});

test('read-only /tmp and noexec /dev/shm do not end the capture', async () => {
  const mounts = await world.kubectl([
    'exec',
    '-n',
    'demo',
    'readonly',
    '--',
    'cat',
    '/proc/mounts',
  ]);
  assert.match(mounts.stdout, / \/dev\/shm tmpfs [^ ]*noexec/);
  assert.notEqual(
    (await world.kubectl(['exec', '-n', 'demo', 'readonly', '--', 'touch', '/tmp/x'])).code,
    0,
  );
  const log = join(home.dir, 'readonly.log');
  const out = join(home.dir, 'readonly.pcap');
  const ran = await run(
    [BUILT, ...captureArgs('readonly', { maxPackets: 10, log, level: 'info', out: out })],
    {
      env: home.env,
      timeoutMs: 60_000,
    },
  );
  assert.equal(ran.code, 0, ran.stderr);
  const uploaded = readFileSync(log, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
    .find((e) => e.message === 'tcpdump uploaded');
  assert.match(String(uploaded?.binary), /^\/run\/\.kubedump-[0-9a-f]{16}\/kubedump-tcpdump-/);
  const http = await run(['tshark', '-r', out, '-Y', 'http.request'], { env: home.env });
  assert.match(http.stdout, /GET/);
  const left = await world.kubectl([
    'exec',
    '-n',
    'demo',
    'readonly',
    '--',
    'ls',
    '-a',
    '/run',
    '/dev/shm',
  ]);
  assert.doesNotMatch(left.stdout, /kubedump/);
});

test('files planted in a shared /tmp are never executed; the upload goes into a private directory', async () => {
  await startPod('shared', {
    command: ['sh', '-c', 'chmod 777 /tmp; exec sleep 3600'],
    volumeMounts: [{ name: 'scratch', mountPath: '/tmp' }],
  });
  // Another user of the pod (uid 1000) plants the genuine binary where an
  // earlier run kept it, and a world-writable "kept" directory holding it too.
  const manifest = JSON.parse(
    readFileSync(join(ROOT, 'build', 'tcpdump', 'manifest.json'), 'utf8'),
  );
  const name = `kubedump-tcpdump-${String(manifest.binaries.amd64.sha256).slice(0, 12)}`;
  const binary = readFileSync(join(ROOT, 'build', 'tcpdump', 'linux-amd64', 'tcpdump'));
  const plant = `cat >/tmp/${name} && mkdir -p /tmp/.kubedump-keep-0 && cp /tmp/${name} /tmp/.kubedump-keep-0/ && chmod 777 /tmp/${name} /tmp/.kubedump-keep-0 /tmp/.kubedump-keep-0/${name} && chown -R 1000 /tmp/${name} /tmp/.kubedump-keep-0`;
  const planted = await kubectl(['exec', '-i', '-n', 'demo', 'shared', '--', 'sh', '-c', plant], {
    kubeconfig: world.kubeconfig,
    input: binary,
  });
  assert.equal(planted.code, 0, planted.stderr);
  const log = join(home.dir, 'shared.log');
  const ran = await run(
    [
      BUILT,
      ...captureArgs('shared', {
        maxPackets: 1,
        log,
        level: 'info',
        out: join(home.dir, 'shared.pcap'),
      }),
      '--keep-binary',
      '--max-seconds',
      '3',
    ],
    { env: home.env, timeoutMs: 60_000 },
  );
  assert.equal(ran.code, 0, ran.stderr);
  const entries = readFileSync(log, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { message: string; binary?: string });
  const used = entries.find(
    (e) => e.message === 'tcpdump uploaded' || e.message === 'tcpdump already present',
  );
  assert.equal(used?.message, 'tcpdump uploaded', 'a planted copy was trusted');
  assert.match(String(used?.binary), /^\/tmp\/\.kubedump-[0-9a-f]{16}\//);
});
