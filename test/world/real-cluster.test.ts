// Smoke test of the real local Kubernetes world (scripts/local-k8s up):
// the real kubectl against the real v1.20 kube-apiserver, kubelet and containerd.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { KubectlOptions, RunResult } from '../support/real-cluster.ts';
import { DEMO_PODS, kubectl, realCluster } from '../support/real-cluster.ts';

const cluster = realCluster();
const admin: KubectlOptions = { kubeconfig: cluster.kubeconfig };
const restricted: KubectlOptions = {
  kubeconfig: cluster.kubeconfig,
  context: cluster.restrictedContext,
};

interface PodJson {
  metadata: {
    name: string;
    deletionTimestamp?: string;
    ownerReferences?: { kind: string; name: string }[];
  };
  spec: { nodeName?: string };
  status: {
    phase?: string;
    podIP?: string;
    containerStatuses?: { ready: boolean; containerID?: string }[];
  };
}

function ok(r: RunResult, what: string): string {
  assert.equal(r.code, 0, `${what} failed (exit ${r.code}): ${r.stderr}`);
  return r.stdout;
}

describe('real local cluster', () => {
  const pods = new Map<string, PodJson>();

  before(async () => {
    const out = ok(
      await kubectl(['get', 'pods', '-n', cluster.namespace, '-o', 'json'], admin),
      'kubectl get pods',
    );
    for (const p of (JSON.parse(out) as { items: PodJson[] }).items) pods.set(p.metadata.name, p);
  });

  test('the kubeconfig current context is local, namespace demo', async () => {
    const ctx = ok(await kubectl(['config', 'current-context'], admin), 'current-context');
    assert.equal(ctx.trim(), cluster.context);
    const ns = ok(
      await kubectl(
        ['config', 'view', '--minify', '-o', 'jsonpath={.contexts[0].context.namespace}'],
        admin,
      ),
      'config view',
    );
    assert.equal(ns.trim(), 'demo');
  });

  test('the server is the Kubernetes v1.20 built from Debian', async () => {
    const out = ok(await kubectl(['version', '-o', 'json'], admin), 'kubectl version');
    const v = JSON.parse(out) as { serverVersion?: { gitVersion?: string } };
    assert.match(v.serverVersion?.gitVersion ?? '', /^v1\.20\./);
  });

  test('kubectl get pods shows web, client, distroless, nonroot and debian Running', async () => {
    const table = ok(await kubectl(['get', 'pods', '-n', cluster.namespace], admin), 'get pods');
    for (const name of DEMO_PODS) {
      assert.match(
        table,
        new RegExp(`^${name}\\s+1/1\\s+Running\\s`, 'm'),
        `${name} in:\n${table}`,
      );
      const pod = pods.get(name);
      assert.ok(pod, `pod ${name} missing`);
      assert.equal(pod.status.phase, 'Running');
      assert.match(pod.status.podIP ?? '', /^10\.88\.\d+\.\d+$/);
      assert.equal(pod.spec.nodeName, 'kubedump-node');
      const cs = pod.status.containerStatuses?.[0];
      assert.equal(cs?.ready, true);
      assert.match(cs?.containerID ?? '', /^containerd:\/\/[0-9a-f]{64}$/);
    }
  });

  test('the node reports InternalIP 127.0.0.1', async () => {
    const out = ok(
      await kubectl(['get', 'node', 'kubedump-node', '-o', 'jsonpath={.status.addresses}'], admin),
      'get node',
    );
    const addrs = JSON.parse(out) as { type: string; address: string }[];
    assert.ok(
      addrs.some((a) => a.type === 'InternalIP' && a.address === '127.0.0.1'),
      `addresses: ${out}`,
    );
  });

  test('kubectl exec runs commands in web', async () => {
    const out = ok(
      await kubectl(['exec', 'web', '--', 'cat', '/var/www/index.html'], admin),
      'exec cat',
    );
    assert.equal(out, 'hello from kubedump busybox\n');
    const uname = ok(await kubectl(['exec', 'web', '--', 'uname', '-s'], admin), 'exec uname');
    assert.equal(uname.trim(), 'Linux');
  });

  test('exec exit codes propagate', async () => {
    const r3 = await kubectl(['exec', 'web', '--', 'sh', '-c', 'exit 3'], admin);
    assert.equal(r3.code, 3, r3.stderr);
    const r0 = await kubectl(['exec', 'web', '--', 'sh', '-c', 'exit 0'], admin);
    assert.equal(r0.code, 0, r0.stderr);
  });

  test('exec stdin reaches the remote process', async () => {
    const input = `line one\nline two ${Date.now()}\n`;
    const r = await kubectl(['exec', '-i', 'web', '--', 'cat'], { ...admin, input });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, input);
    const bin = Buffer.alloc(100_000, 0x61);
    const sum = await kubectl(['exec', '-i', 'web', '--', 'sh', '-c', 'wc -c'], {
      ...admin,
      input: bin,
    });
    assert.equal(sum.code, 0, sum.stderr);
    assert.equal(sum.stdout.trim(), '100000');
  });

  test('from the client pod, web, distroless, nonroot and debian answer HTTP', async () => {
    const ip = (name: string): string => {
      const v = pods.get(name)?.status.podIP;
      assert.ok(v, `no IP for ${name}`);
      return v;
    };
    const targets: [string, string][] = [
      [`http://${ip('web')}/`, 'hello from kubedump busybox'],
      [`http://${ip('distroless')}:8080/`, 'hello from distroless'],
      [`http://${ip('nonroot')}:8080/`, 'hello from kubedump busybox'],
      [`http://${ip('debian')}:8080/`, 'hello from debian'],
    ];
    for (const [url, body] of targets) {
      const r = await kubectl(
        ['exec', 'client', '--', 'timeout', '5', 'wget', '-q', '-O', '-', url],
        admin,
      );
      assert.equal(r.code, 0, `${url}: ${r.stderr}`);
      assert.equal(r.stdout.trim(), body, url);
    }
  });

  test('debian is Debian bookworm minbase: dash as /bin/sh, no ps, no docs', async () => {
    const sh = ok(
      await kubectl(['exec', 'debian', '--', 'readlink', '-f', '/bin/sh'], admin),
      'sh',
    );
    assert.equal(sh.trim(), '/usr/bin/dash');
    const v = ok(await kubectl(['exec', 'debian', '--', 'cat', '/etc/debian_version'], admin), 'v');
    assert.match(v, /^12\./);
    const ps = await kubectl(['exec', 'debian', '--', 'sh', '-c', 'command -v ps'], admin);
    assert.notEqual(ps.code, 0, `ps found: ${ps.stdout}`);
    // dash has no `read -t`, which busybox ash has.
    const readT = await kubectl(
      ['exec', 'debian', '--', 'sh', '-c', 'read -t 1 x </dev/null'],
      admin,
    );
    assert.match(readT.stderr, /Illegal option -t/);
    const docs = ok(
      await kubectl(['exec', 'debian', '--', 'sh', '-c', 'ls /usr/share/doc | wc -l'], admin),
      'ls docs',
    );
    assert.equal(docs.trim(), '0');
  });

  test('distroless has no shell and no tar; nonroot runs as uid 1000', async () => {
    const sh = await kubectl(['exec', 'distroless', '--', 'sh', '-c', 'true'], admin);
    assert.notEqual(sh.code, 0);
    assert.match(sh.stderr, /no such file|not found|executable file/i);
    const tar = await kubectl(['exec', 'distroless', '--', 'tar', '--help'], admin);
    assert.notEqual(tar.code, 0);
    const id = ok(await kubectl(['exec', 'nonroot', '--', 'id', '-u'], admin), 'exec id');
    assert.equal(id.trim(), '1000');
    const caps = ok(
      await kubectl(['exec', 'nonroot', '--', 'sh', '-c', 'grep CapEff /proc/self/status'], admin),
      'exec grep CapEff',
    );
    assert.match(caps, /CapEff:\s+0+\s*$/);
  });

  test('the restricted context is denied creating pods but can list and exec', async () => {
    const manifest = JSON.stringify({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'denied', namespace: 'demo' },
      spec: {
        nodeName: 'kubedump-node',
        containers: [{ name: 'c', image: 'docker.io/library/busybox:1.36' }],
      },
    });
    const create = await kubectl(['create', '-f', '-'], { ...restricted, input: manifest });
    assert.notEqual(create.code, 0);
    assert.match(create.stderr, /Forbidden/);
    assert.match(create.stderr, /User "restricted" cannot create resource "pods"/);

    const nodes = await kubectl(['get', 'nodes'], restricted);
    assert.notEqual(nodes.code, 0);
    assert.match(nodes.stderr, /Forbidden/);

    const list = ok(
      await kubectl(['get', 'pods', '-n', 'demo', '-o', 'name'], restricted),
      'restricted get pods',
    );
    for (const name of DEMO_PODS) assert.match(list, new RegExp(`^pod/${name}$`, 'm'));

    const exec = await kubectl(['exec', 'web', '--', 'sh', '-c', 'exit 5'], restricted);
    assert.equal(exec.code, 5, exec.stderr);

    const other = await kubectl(['get', 'pods', '-n', 'default'], restricted);
    assert.notEqual(other.code, 0);
    assert.match(other.stderr, /Forbidden/);
  });

  test('the nopatch context may create, delete and exec into pods but not patch them', async () => {
    const nopatch: KubectlOptions = { ...admin, context: cluster.nopatchContext };
    const can = async (...args: string[]) =>
      (await kubectl(['auth', 'can-i', ...args, '-n', 'demo'], nopatch)).stdout.trim();
    for (const verb of ['get', 'list', 'create', 'delete']) {
      assert.equal(await can(verb, 'pods'), 'yes', verb);
    }
    for (const verb of ['get', 'create']) {
      assert.equal(await can(verb, 'pods', '--subresource=exec'), 'yes', `${verb} pods/exec`);
    }
    assert.equal(await can('patch', 'pods'), 'no');
    const patch = await kubectl(['annotate', 'pod', 'web', 'kubedump.test/heartbeat=1'], nopatch);
    assert.notEqual(patch.code, 0);
    assert.match(patch.stderr, /User "nopatch" cannot patch resource "pods"/);
    const exec = await kubectl(['exec', 'web', '--', 'sh', '-c', 'exit 4'], nopatch);
    assert.equal(exec.code, 4, exec.stderr);
  });
});

describe('real local cluster: the controller manager', () => {
  const name = 'kdtest-replicas';
  const selector = `app=${name}`;
  const deployment = JSON.stringify({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: 'demo', labels: { app: name } },
    spec: {
      replicas: 3,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: {
          // The bundled cluster has no scheduler.
          nodeName: 'kubedump-node',
          terminationGracePeriodSeconds: 1,
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          containers: [
            {
              name: 'web',
              image: 'docker.io/library/busybox:1.36',
              imagePullPolicy: 'Never',
              command: ['httpd', '-f', '-p', '80', '-h', '/var/www'],
              ports: [{ containerPort: 80 }],
            },
          ],
        },
      },
    },
  });

  async function replicaPods(): Promise<PodJson[]> {
    const out = ok(
      await kubectl(['get', 'pods', '-n', 'demo', '-l', selector, '-o', 'json'], admin),
      'get the replicas',
    );
    return (JSON.parse(out) as { items: PodJson[] }).items;
  }

  /** Polls until `done` holds for the replica pods; fails with the last list. */
  async function waitForPods(what: string, done: (pods: PodJson[]) => boolean): Promise<PodJson[]> {
    const deadline = Date.now() + 90_000;
    let pods: PodJson[] = [];
    while (Date.now() < deadline) {
      pods = await replicaPods();
      if (done(pods)) return pods;
      await sleep(500);
    }
    const seen = pods.map((p) => `${p.metadata.name} ${p.status.phase ?? '?'}`).join(', ');
    assert.fail(`${what}: not within 90 s; pods: ${seen || 'none'}`);
  }

  const remove = () =>
    kubectl(
      ['delete', 'deployment', name, '-n', 'demo', '--ignore-not-found', '--wait=false'],
      admin,
    );
  before(remove);
  after(remove);

  test(
    'a Deployment of 3 replicas gets its ReplicaSet and 3 Ready pods, all gone when it is deleted',
    {
      timeout: 240_000,
    },
    async () => {
      ok(
        await kubectl(['apply', '-f', '-'], { ...admin, input: deployment }),
        'apply the Deployment',
      );
      const ready = await waitForPods('3 Ready replicas', (pods) => {
        const live = pods.filter((p) => !p.metadata.deletionTimestamp);
        return (
          live.length === 3 &&
          live.every((p) => p.status.phase === 'Running' && p.status.containerStatuses?.[0]?.ready)
        );
      });
      const owners = new Set(ready.map((p) => p.metadata.ownerReferences?.[0]?.name));
      assert.equal(owners.size, 1, `one owner expected: ${[...owners].join(', ')}`);
      const [replicaSet] = [...owners];
      assert.match(replicaSet ?? '', new RegExp(`^${name}-[0-9a-z]+$`));
      for (const p of ready) {
        assert.equal(p.metadata.ownerReferences?.[0]?.kind, 'ReplicaSet');
        assert.match(p.status.podIP ?? '', /^10\.88\.\d+\.\d+$/);
      }
      const rs = ok(
        await kubectl(
          [
            'get',
            'replicaset',
            replicaSet ?? '',
            '-n',
            'demo',
            '-o',
            'jsonpath={.status.readyReplicas}',
          ],
          admin,
        ),
        'get the ReplicaSet',
      );
      assert.equal(rs, '3');

      ok(
        await kubectl(['delete', 'deployment', name, '-n', 'demo'], admin),
        'delete the Deployment',
      );
      await waitForPods('the replicas gone', (pods) => pods.length === 0);
      const left = await kubectl(
        ['get', 'replicaset', '-n', 'demo', '-l', selector, '-o', 'name'],
        admin,
      );
      assert.equal(ok(left, 'list ReplicaSets'), '');
    },
  );
});
