import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BUILT, run } from '../support/kubedump.ts';
import { allRemoteTcpdumps } from '../support/leftovers.ts';
import { until } from '../support/process.ts';
import { openWorld, type World, wiresharkHome } from '../support/worlds.ts';

// Several pods into one pcapng on the real cluster: a Deployment's replicas
// (made by the real controller manager), the same pods by label selector and
// through their Service, and a set where one pod cannot be captured.

const NAME = 'kdtest-many';
let world: World;
let home: ReturnType<typeof wiresharkHome>;
let dir: string;
/** As many replicas as a small Deployment has; the demo pods beside them are unrelated. */
const REPLICAS = 3;
let replicas: { name: string; ip: string }[] = [];

function manifests(webIp: string): string {
  const labels = { app: NAME };
  const deployment = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: NAME, namespace: 'demo', labels },
    spec: {
      replicas: REPLICAS,
      selector: { matchLabels: labels },
      template: {
        metadata: { labels },
        spec: {
          nodeName: 'kubedump-node', // the bundled cluster has no scheduler
          terminationGracePeriodSeconds: 0,
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          containers: [
            {
              name: 'app',
              image: 'docker.io/library/busybox:1.36',
              imagePullPolicy: 'Never',
              // Each replica keeps asking the web pod: traffic on every interface.
              command: [
                'sh',
                '-c',
                'while true; do timeout 3 wget -q -O - "http://$0/" >/dev/null; sleep 0.3; done',
                webIp,
              ],
            },
          ],
        },
      },
    },
  };
  const service = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: NAME, namespace: 'demo' },
    spec: { selector: labels, ports: [{ port: 80 }] },
  };
  return JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [deployment, service] });
}

const remove = () =>
  world?.kubectl([
    'delete',
    'deployment,service',
    NAME,
    '-n',
    'demo',
    '--ignore-not-found',
    '--wait=false',
  ]);

before(async () => {
  world = await openWorld('real');
  home = wiresharkHome(world.kubeconfig);
  dir = mkdtempSync(join(tmpdir(), 'kubedump-many-'));
  await remove();
  const web = await world.kubectl([
    'get',
    'pod',
    '-n',
    'demo',
    'web',
    '-o',
    'jsonpath={.status.podIP}',
  ]);
  const applied = await world.kubectl(['apply', '-f', '-'], manifests(web.stdout));
  assert.equal(applied.code, 0, applied.stderr);
  replicas = await until(
    `${REPLICAS} running replicas`,
    async () => {
      const got = await world.kubectl([
        'get',
        'pods',
        '-n',
        'demo',
        '-l',
        `app=${NAME}`,
        '-o',
        'jsonpath={range .items[*]}{.metadata.name} {.status.phase} {.status.podIP} {.metadata.deletionTimestamp}{"\\n"}{end}',
      ]);
      const rows = got.stdout
        .trim()
        .split('\n')
        .map((l) => l.trim().split(' '))
        .filter(([, phase, ip, deleting]) => phase === 'Running' && ip && !deleting);
      return rows.length === REPLICAS
        ? rows.map(([name, , ip]) => ({ name, ip }) as never)
        : undefined;
    },
    90_000,
  );
});

after(async () => {
  await remove();
  // Gone before the next file (and the leftover census) looks at the pods.
  const gone = await world.kubectl([
    'wait',
    '--for=delete',
    'pod',
    '-l',
    `app=${NAME}`,
    '-n',
    'demo',
    '--timeout=60s',
  ]);
  assert.ok(gone.code === 0 || /no matching resources/.test(gone.stderr), gone.stderr);
});

async function capture(target: string[], file: string, extra: string[] = []) {
  return run(
    [BUILT, 'capture', ...target, '-n', 'demo', '--max-seconds', '5', '-w', file, ...extra],
    { env: home.env, timeoutMs: 60_000 },
  );
}

/** Interface names and packet counts per interface, as tshark reads the file. */
async function perInterface(file: string): Promise<Map<string, number>> {
  const read = await run(['tshark', '-r', file, '-T', 'fields', '-e', 'frame.interface_name'], {
    timeoutMs: 30_000,
  });
  assert.equal(read.code, 0, read.stderr);
  const counts = new Map<string, number>();
  for (const name of read.stdout.trim().split('\n').filter(Boolean)) {
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  return counts;
}

/** Every interface the file describes (with or without packets), as capinfos lists them. */
async function interfaces(file: string): Promise<string[]> {
  const info = await run(['capinfos', '-I', file], { timeoutMs: 30_000 });
  assert.equal(info.code, 0, info.stderr);
  return [...info.stdout.matchAll(/^\s*Name = (.+)$/gm)].map((m) => (m[1] as string).trim());
}

describe('several pods into one pcapng (real cluster)', () => {
  test('deploy/NAME: one interface per replica, each with its own packets, names resolved', async () => {
    const file = join(dir, 'deploy.pcapng');
    const ran = await capture([`deploy/${NAME}`], file);
    assert.equal(ran.code, 0, ran.stderr);
    const counts = await perInterface(file);
    const expected = replicas.map((r) => `demo/${r.name}`).sort();
    assert.deepEqual([...counts.keys()].sort(), expected);
    for (const name of expected) assert.ok((counts.get(name) ?? 0) > 0, `${name}: no packets`);
    // The Name Resolution Block names every replica by its address.
    const named = await run(
      [
        'tshark',
        '-r',
        file,
        '-N',
        'n',
        '-o',
        'nameres.use_external_name_resolver:FALSE',
        '-T',
        'fields',
        '-e',
        'ip.src_host',
      ],
      { timeoutMs: 30_000 },
    );
    const sources = new Set(named.stdout.trim().split('\n'));
    for (const r of replicas) assert.ok(sources.has(`${r.name}.demo`), `${r.ip} is not named`);
    assert.deepEqual(allRemoteTcpdumps(), [], 'a remote tcpdump is left');
  });

  test('-l SELECTOR and svc/NAME capture the same pods', async () => {
    const expected = replicas.map((r) => `demo/${r.name}`).sort();
    for (const target of [['-l', `app=${NAME}`], [`svc/${NAME}`]]) {
      const file = join(dir, `${target.join('-').replace(/[^a-z-]/g, '')}.pcapng`);
      const ran = await capture(target, file, ['--max-packets', '6']);
      assert.equal(ran.code, 0, `${target.join(' ')}: ${ran.stderr}`);
      assert.deepEqual((await interfaces(file)).sort(), expected, target.join(' '));
      const packets = [...(await perInterface(file)).values()].reduce((a, b) => a + b, 0);
      assert.equal(packets, 6, `${target.join(' ')}: --max-packets counts the whole capture`);
    }
  });

  test('one pod that cannot be captured is one line; the other pod is captured', async () => {
    const file = join(dir, 'mixed.pcapng');
    // Unprivileged: auto would capture distroless in an ephemeral container.
    const ran = await capture(['web,distroless'], file, ['--mode', 'unprivileged']);
    assert.equal(ran.code, 0, ran.stderr);
    const lines = ran.stderr.trim().split('\n');
    assert.equal(lines.length, 1, ran.stderr);
    assert.match(lines[0] ?? '', /^kubedump: demo\/distroless: .*no \/bin\/sh|shell/);
    assert.deepEqual((await interfaces(file)).sort(), ['demo/distroless', 'demo/web']);
    assert.deepEqual([...(await perInterface(file)).keys()], ['demo/web']);
  });

  test('from tshark: the label selector in the options, each pod an interface of the file', async () => {
    const file = join(dir, 'tshark.pcapng');
    const ran = await run(
      [
        'tshark',
        '-i',
        'kubedump',
        '-o',
        'extcap.kubedump.namespace:demo',
        '-o',
        `extcap.kubedump.selector:app=${NAME}`,
        '-a',
        'duration:6',
        '-w',
        file,
      ],
      { env: home.env, timeoutMs: 60_000 },
    );
    assert.equal(ran.code, 0, ran.stderr);
    const counts = await perInterface(file);
    assert.deepEqual([...counts.keys()].sort(), replicas.map((r) => `demo/${r.name}`).sort());
  });

  test('from tshark: the Deployment is an interface of its own, kubedump.demo.deploy.NAME', async () => {
    const listed = await run(['tshark', '-D'], { env: home.env, timeoutMs: 60_000 });
    assert.match(
      listed.stdout,
      new RegExp(
        `kubedump\\.demo\\.deploy\\.${NAME} \\(Kubernetes deploy demo/${NAME} \\(${REPLICAS} pods\\)\\)`,
      ),
    );
    const file = join(dir, 'deploy-iface.pcapng');
    const ran = await run(
      ['tshark', '-i', `kubedump.demo.deploy.${NAME}`, '-a', 'duration:6', '-w', file],
      { env: home.env, timeoutMs: 60_000 },
    );
    assert.equal(ran.code, 0, ran.stderr);
    const counts = await perInterface(file);
    assert.deepEqual([...counts.keys()].sort(), replicas.map((r) => `demo/${r.name}`).sort());
  });

  test('a pod that starts during the capture (a scale-up) joins it with an interface of its own', async () => {
    const file = join(dir, 'scaled.pcapng');
    const capturing = run(
      [BUILT, 'capture', `deploy/${NAME}`, '-n', 'demo', '--max-seconds', '25', '-w', file],
      { env: home.env, timeoutMs: 60_000 },
    );
    try {
      await new Promise((r) => setTimeout(r, 3000));
      const scaled = await world.kubectl([
        'scale',
        `deploy/${NAME}`,
        '-n',
        'demo',
        `--replicas=${REPLICAS + 1}`,
      ]);
      assert.equal(scaled.code, 0, scaled.stderr);
      const ran = await capturing;
      assert.equal(ran.code, 0, ran.stderr);
      const counts = await perInterface(file);
      const joined = [...counts.keys()].filter(
        (n) => !replicas.some((r) => n === `demo/${r.name}`),
      );
      assert.equal(joined.length, 1, `interfaces: ${[...counts.keys()].join(' ')}`);
      assert.ok((counts.get(joined[0] as string) ?? 0) > 0, 'the new pod has no packets');
    } finally {
      await capturing;
      await world.kubectl(['scale', `deploy/${NAME}`, '-n', 'demo', `--replicas=${REPLICAS}`]);
    }
  });

  test('a target without running pods and a pcap request for many are one-line errors', async () => {
    const none = await capture(['-l', 'app=nothing-has-this'], join(dir, 'none.pcapng'));
    assert.equal(none.code, 1);
    assert.equal(
      none.stderr.trim(),
      'kubedump: -l app=nothing-has-this has no running pod in namespace "demo": check with: kubectl get pods -n demo',
    );
    const pcap = await capture([`deploy/${NAME}`], join(dir, 'pcap.pcap'), ['--format', 'pcap']);
    assert.equal(pcap.code, 1);
    assert.match(
      pcap.stderr,
      /^kubedump: pcap holds one pod, and deployment\/kdtest-many may be several/,
    );
  });
});
