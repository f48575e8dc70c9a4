// The emulated API server, checked with the real kubectl and with small clients.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { EmuClient } from '../emulator/client.ts';
import { checkClean, type Emulator, startEmulator } from '../emulator/index.ts';
import { until } from '../support/process.ts';
import { type RunResult, runFile } from '../support/real-cluster.ts';

const KUBECTL = '/usr/bin/kubectl';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function kubectl(emu: Emulator, args: string[], input?: string): Promise<RunResult> {
  const env = { ...process.env, KUBECONFIG: emu.kubeconfigPath };
  return runFile(KUBECTL, args, { env, timeoutMs: 30_000, ...(input !== undefined && { input }) });
}

describe('default world against the real kubectl', () => {
  let emu: Emulator;
  let admin: EmuClient;
  before(async () => {
    emu = await startEmulator();
    admin = new EmuClient(emu.url, emu.ca, emu.tokens.admin);
  });
  after(async () => {
    await emu?.close();
  });

  test('version is v1.31.0', async () => {
    const r = await kubectl(emu, ['version', '-o', 'json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).serverVersion.gitVersion, 'v1.31.0');
  });

  test('get pods -n demo lists the five demo pods, Running', async () => {
    const r = await kubectl(emu, ['get', 'pods', '-n', 'demo', '--no-headers']);
    assert.equal(r.code, 0, r.stderr);
    const rows = r.stdout
      .trim()
      .split('\n')
      .map((l) => l.split(/\s+/));
    assert.deepEqual(rows.map((c) => c[0]).sort(), [
      'client',
      'debian',
      'distroless',
      'nonroot',
      'web',
    ]);
    for (const c of rows) assert.equal(c[2], 'Running', c.join(' '));
  });

  test('exec passes the exit code through (v5)', async () => {
    const r = await kubectl(emu, ['exec', 'web', '--', 'sh', '-c', 'exit 3']);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /command terminated with exit code 3/);
  });

  test('exec -i echoes stdin and ends with the v5 close frame', async () => {
    const r = await kubectl(emu, ['exec', '-i', 'web', '--', 'cat'], 'hello over v5\n');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'hello over v5\n');
  });

  test('debian is a real Debian: dash as /bin/sh, no ps, serving HTTP to the client', async () => {
    const sh = await kubectl(emu, ['exec', 'debian', '--', 'readlink', '-f', '/bin/sh']);
    assert.equal(sh.stdout.trim(), '/usr/bin/dash', sh.stderr);
    const release = await kubectl(emu, ['exec', 'debian', '--', 'cat', '/etc/debian_version']);
    assert.match(release.stdout, /^12\./, release.stderr);
    const ps = await kubectl(emu, ['exec', 'debian', '--', 'sh', '-c', 'command -v ps']);
    assert.notEqual(ps.code, 0, `ps found: ${ps.stdout}`);
    const ip = await kubectl(emu, ['get', 'pod', 'debian', '-o', 'jsonpath={.status.podIP}']);
    const get = await kubectl(emu, [
      'exec',
      'client',
      '--',
      'timeout',
      '5',
      'wget',
      '-q',
      '-O',
      '-',
      `http://${ip.stdout.trim()}:8080/`,
    ]);
    assert.equal(get.stdout, 'hello from debian\n', get.stderr);
  });

  test('users: root in web, 1000 without capabilities in nonroot', async () => {
    assert.equal((await kubectl(emu, ['exec', 'web', '--', 'id', '-u'])).stdout.trim(), '0');
    assert.equal((await kubectl(emu, ['exec', 'nonroot', '--', 'id', '-u'])).stdout.trim(), '1000');
    const caps = await kubectl(emu, [
      'exec',
      'nonroot',
      '--',
      'grep',
      'CapEff',
      '/proc/self/status',
    ]);
    assert.match(caps.stdout, /CapEff:\s+0+$/m);
    const root = await kubectl(emu, ['exec', 'web', '--', 'grep', 'CapEff', '/proc/self/status']);
    // containerd's default set includes CAP_NET_RAW (bit 13).
    const eff = BigInt(`0x${/CapEff:\s+(\w+)/.exec(root.stdout)?.[1]}`);
    assert.equal((eff >> 13n) & 1n, 1n);
  });

  test('the web pod is reachable from the client pod', async () => {
    const ip = (await kubectl(emu, ['get', 'pod', 'web', '-o', 'jsonpath={.status.podIP}'])).stdout;
    assert.match(ip, /^10\.77\.\d+\.\d+$/);
    const r = await kubectl(emu, [
      'exec',
      'client',
      '--',
      'wget',
      '-q',
      '-O',
      '-',
      `http://${ip}/`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'web');
  });

  test('distroless has no shell: exec fails as containerd words it', async () => {
    const r = await kubectl(emu, ['exec', 'distroless', '--', 'sh']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /exec: "sh": executable file not found in \$PATH/);
  });

  test('restricted may list and exec but not create pods or read nodes', async () => {
    const ctx = ['--context', 'emu-restricted'];
    const list = await kubectl(emu, [...ctx, 'get', 'pods']);
    assert.equal(list.code, 0, list.stderr);
    const ex = await kubectl(emu, [...ctx, 'exec', 'web', '--', 'true']);
    assert.equal(ex.code, 0, ex.stderr);
    const run = await kubectl(emu, [...ctx, 'run', 'x', '--image=busybox', '--restart=Never']);
    assert.notEqual(run.code, 0);
    assert.match(
      run.stderr,
      /Error from server \(Forbidden\): pods is forbidden: User "restricted" cannot create resource "pods" in API group "" in the namespace "demo"/,
    );
    const nodes = await kubectl(emu, [...ctx, 'get', 'node', 'node-a']);
    assert.match(
      nodes.stderr,
      /nodes "node-a" is forbidden: User "restricted" cannot get resource "nodes" in API group "" at the cluster scope/,
    );
    const can = await kubectl(emu, [...ctx, 'auth', 'can-i', 'create', 'pods']);
    assert.equal(can.stdout.trim(), 'no');
    const canExec = await kubectl(emu, [
      ...ctx,
      'auth',
      'can-i',
      'create',
      'pods',
      '--subresource=exec',
    ]);
    assert.equal(canExec.stdout.trim(), 'yes');
  });

  test('nopatch may create, delete and exec into pods but not patch them', async () => {
    const ctx = ['--context', 'emu-nopatch'];
    const can = async (...args: string[]) =>
      (await kubectl(emu, [...ctx, 'auth', 'can-i', ...args])).stdout.trim();
    for (const verb of ['get', 'list', 'create', 'delete'])
      assert.equal(await can(verb, 'pods'), 'yes', verb);
    for (const verb of ['get', 'create']) {
      assert.equal(await can(verb, 'pods', '--subresource=exec'), 'yes', `${verb} pods/exec`);
    }
    assert.equal(await can('patch', 'pods'), 'no');
    const patch = await kubectl(emu, [
      ...ctx,
      'annotate',
      'pod',
      'web',
      'kubedump.test/heartbeat=1',
    ]);
    assert.notEqual(patch.code, 0);
    assert.match(patch.stderr, /User "nopatch" cannot patch resource "pods"/);
    const ex = await kubectl(emu, [...ctx, 'exec', 'web', '--', 'true']);
    assert.equal(ex.code, 0, ex.stderr);
  });

  test('an unknown token gets 401', async () => {
    const r = await kubectl(emu, ['--token', 'nope', 'get', 'pods']);
    assert.match(r.stderr, /Unauthorized/);
    const c = new EmuClient(emu.url, emu.ca, 'nope');
    const res = await c.request('GET', '/api/v1/namespaces/demo/pods');
    assert.equal(res.status, 401);
    assert.equal(res.body.reason, 'Unauthorized');
  });

  test('nodes report architecture and runtime; pods report matching container IDs', async () => {
    const n = await admin.request('GET', '/api/v1/nodes');
    const info = Object.fromEntries(
      n.body.items.map(
        (x: { metadata: { name: string }; status: { nodeInfo: Record<string, string> } }) => [
          x.metadata.name,
          `${x.status.nodeInfo.architecture} ${x.status.nodeInfo.containerRuntimeVersion?.split('://')[0]}`,
        ],
      ),
    );
    assert.deepEqual(info, {
      'node-a': 'amd64 containerd',
      'node-b': 'amd64 docker',
      'node-c': 'arm64 cri-o',
      'node-d': 'amd64 cri-o',
    });
    const ids = await kubectl(emu, [
      'get',
      'pods',
      '-o',
      'jsonpath={range .items[*]}{.metadata.name}={.status.containerStatuses[0].containerID}{"\\n"}{end}',
    ]);
    const m = Object.fromEntries(
      ids.stdout
        .trim()
        .split('\n')
        .map((l) => l.split('=')),
    );
    assert.match(m.web, /^containerd:\/\/[0-9a-f]{64}$/);
    assert.match(m.client, /^docker:\/\/[0-9a-f]{64}$/);
    assert.match(m.nonroot, /^cri-o:\/\/[0-9a-f]{64}$/);
  });

  test('a privileged hostPID helper finds the target by its cgroup and enters its netns', async () => {
    const pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        generateName: 'kubedump-',
        labels: { 'app.kubernetes.io/managed-by': 'kubedump' },
      },
      spec: {
        nodeName: 'node-b',
        hostPID: true,
        restartPolicy: 'Never',
        containers: [
          {
            name: 'c',
            image: 'docker.io/library/busybox:1.36',
            command: ['sleep', '3600'],
            securityContext: { privileged: true },
          },
        ],
      },
    };
    const created = await kubectl(
      emu,
      ['create', '--validate=false', '-o', 'name', '-f', '-'],
      JSON.stringify(pod),
    );
    assert.equal(created.code, 0, created.stderr);
    const name = created.stdout.trim().replace('pod/', '');
    await until(
      'helper running',
      async () => emu.api.getPod('demo', name)?.status.phase === 'Running',
    );
    const id = emu.api
      .getPod('demo', 'client')
      ?.status.containerStatuses?.[0]?.containerID?.split('://')[1];
    const ip = emu.api.getPod('demo', 'client')?.status.podIP;
    // Every process of the container is a candidate: one started by an exec
    // may end between the scan and nsenter.
    const script = `for f in $(grep -l ${id} /proc/[0-9]*/cgroup); do P=$(echo $f | cut -d/ -f3); nsenter -t $P -n ip -4 -o addr show eth0 2>/dev/null && exit 0; done; echo "no process of ${id} to enter" >&2; exit 1`;
    const r = await kubectl(emu, ['exec', name, '--', 'sh', '-c', script]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdout.includes(`inet ${ip}/`), r.stdout);
    const del = await kubectl(emu, ['delete', 'pod', name, '--grace-period=0']);
    assert.equal(del.code, 0, del.stderr);
    assert.equal(emu.api.getPod('demo', name), undefined);
  });

  test('watch streams ADDED, MODIFIED and DELETED for one pod', async () => {
    const events: string[] = [];
    const w = admin.watch(
      '/api/v1/namespaces/demo/pods?watch=true&fieldSelector=metadata.name%3Dwatched',
      (ev) => events.push(ev.type),
    );
    await sleep(100);
    const res = await admin.request('POST', '/api/v1/namespaces/demo/pods', {
      metadata: { name: 'watched' },
      spec: { containers: [{ name: 'c', image: 'busybox:1.36', command: ['sleep', '600'] }] },
    });
    assert.equal(res.status, 201, res.text);
    await until('running', () => emu.api.getPod('demo', 'watched')?.status.phase === 'Running');
    const del = await admin.request(
      'DELETE',
      '/api/v1/namespaces/demo/pods/watched?gracePeriodSeconds=1',
    );
    assert.equal(del.status, 200);
    assert.ok(del.body.metadata.deletionTimestamp);
    await until('deleted event', () => events.includes('DELETED'));
    w.close();
    assert.equal(events[0], 'ADDED');
    assert.ok(events.includes('MODIFIED'));
  });

  test('v5 over a plain WebSocket client: close frame, stderr, protocol refusal', async () => {
    const r = await admin.exec('demo', 'web', ['sh', '-c', 'cat; echo err >&2; exit 5'], {
      stdin: 'abc',
    });
    assert.equal(r.protocol, 'v5.channel.k8s.io');
    assert.equal(r.stdout.toString(), 'abc');
    assert.equal(r.stderr.toString(), 'err\n');
    assert.equal(r.exitCode, 5);
    assert.equal(r.status?.reason, 'NonZeroExitCode');
    await assert.rejects(
      admin.openExec('demo', 'web', ['true'], {
        protocols: ['v3.channel.k8s.io', 'channel.k8s.io'],
      }),
      /403/,
    );
  });

  test('closing the socket does not kill the remote process', async () => {
    const ws = await admin.openExec('demo', 'web', ['sleep', '987']);
    await sleep(300);
    ws.close();
    await sleep(300);
    const ps = await admin.exec('demo', 'web', ['ps']);
    assert.match(ps.stdout.toString(), /sleep 987/);
    await admin.exec('demo', 'web', ['pkill', '-f', 'sleep 987']);
  });

  test('stdout respects backpressure from a slow client', async () => {
    const script =
      'i=0; while true; do head -c 65536 /dev/zero; i=$((i+1)); echo $i > /tmp/progress; done';
    const ws = await admin.openExec('demo', 'web', ['sh', '-c', script]);
    const sock = (ws as unknown as { _socket: { pause(): void } })._socket;
    sock.pause();
    await sleep(1500);
    const progress = async () =>
      Number((await admin.exec('demo', 'web', ['cat', '/tmp/progress'])).stdout.toString());
    const a = await progress();
    await sleep(1000);
    const b = await progress();
    ws.terminate();
    await admin.exec('demo', 'web', ['pkill', '-f', 'head -c 65536|progress']);
    await admin.exec('demo', 'web', ['sh', '-c', 'pkill -f progress; true']);
    // Without backpressure this runs at hundreds of MB/s; paused it stalls after a few MB.
    assert.ok(b - a <= 2, `still producing: ${a} -> ${b}`);
    assert.ok(b < 400, `buffered ${b * 64} KiB`);
  });

  test('pods created through the API: unknown image is ImagePullBackOff', async () => {
    const res = await admin.request('POST', '/api/v1/namespaces/demo/pods', {
      metadata: { name: 'nosuchimage' },
      spec: { containers: [{ name: 'c', image: 'quay.io/nope/nothing:1' }] },
    });
    assert.equal(res.status, 201);
    const p = await until(
      'waiting',
      () => emu.api.getPod('demo', 'nosuchimage')?.status.containerStatuses?.[0],
    );
    assert.equal(p.state.waiting?.reason, 'ImagePullBackOff');
    await emu.api.removePod('demo', 'nosuchimage');
  });

  const ecPath = (ns: string, pod: string) =>
    `/api/v1/namespaces/${ns}/pods/${pod}/ephemeralcontainers`;
  interface EcStatus {
    name: string;
    state: { running?: unknown; terminated?: { exitCode: number; reason: string } };
  }
  const ecStatus = (ns: string, pod: string, name: string) =>
    (emu.api.getPod(ns, pod)?.status.ephemeralContainerStatuses ?? []).find(
      (s) => s.name === name,
    ) as EcStatus | undefined;

  test('kubectl debug --target: root with NET_RAW in the pod network and the target PID namespace, then terminated for good', async () => {
    const script =
      'echo hi; id -u; grep CapEff /proc/self/status; tr "\\0" " " < /proc/1/cmdline; echo; ip -4 -o addr show eth0';
    const r = await kubectl(emu, [
      'debug',
      'web',
      '--image=busybox:1.36',
      '--target=web',
      '--',
      'sh',
      '-c',
      script,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const name = /Defaulting debug container name to (debugger-\w+)/.exec(r.stdout)?.[1];
    assert.ok(name, r.stdout);
    await until(
      'the debug container to end',
      () => ecStatus('demo', 'web', name)?.state.terminated,
    );
    const state = await kubectl(emu, [
      'get',
      'pod',
      'web',
      '-o',
      `jsonpath={.status.ephemeralContainerStatuses[?(@.name=="${name}")].state.terminated.reason}`,
    ]);
    assert.equal(state.stdout, 'Completed', state.stderr);
    const logs = await kubectl(emu, ['logs', 'web', '-c', name]);
    assert.equal(logs.code, 0, logs.stderr);
    const [hi, uid, capLine, pid1, addr] = logs.stdout.trim().split('\n');
    assert.equal(hi, 'hi');
    assert.equal(uid, '0');
    const eff = BigInt(`0x${/CapEff:\s+(\w+)/.exec(capLine ?? '')?.[1]}`);
    assert.equal((eff >> 13n) & 1n, 1n, 'NET_RAW in the default set');
    assert.equal((eff >> 21n) & 1n, 0n, 'no SYS_ADMIN');
    // PID 1 is the target container's httpd: the debug container joined its PID namespace.
    assert.match(pid1 ?? '', /httpd -f -p 80/);
    assert.ok(addr?.includes(`inet ${emu.api.getPod('demo', 'web')?.status.podIP}/`), addr);
    // Never restarted: it stays terminated, and the pod stays Running and ready.
    await sleep(500);
    assert.ok(ecStatus('demo', 'web', name)?.state.terminated);
    assert.equal(emu.api.getPod('demo', 'web')?.status.phase, 'Running');
  });

  test('ephemeral containers only grow: changed or removed is 422, dry run changes nothing', async () => {
    const add = (name: string, extra: Record<string, unknown> = {}) => ({
      spec: {
        ephemeralContainers: [{ name, image: 'busybox:1.36', command: ['sleep', '600'], ...extra }],
      },
    });
    const smp = 'application/strategic-merge-patch+json';
    const got = await admin.request('GET', ecPath('demo', 'client'));
    assert.equal(got.status, 200);
    assert.equal(got.body.kind, 'Pod');
    const dry = await admin.request(
      'PATCH',
      `${ecPath('demo', 'client')}?dryRun=All`,
      add('dry'),
      smp,
    );
    assert.equal(dry.status, 200, dry.text);
    assert.ok(dry.body.spec.ephemeralContainers.some((c: { name: string }) => c.name === 'dry'));
    assert.equal(emu.api.getPod('demo', 'client')?.spec.ephemeralContainers, undefined);
    const ok = await admin.request('PATCH', ecPath('demo', 'client'), add('keeper'), smp);
    assert.equal(ok.status, 200, ok.text);
    await until('keeper running', () => ecStatus('demo', 'client', 'keeper')?.state.running);
    const changed = await admin.request(
      'PATCH',
      ecPath('demo', 'client'),
      add('keeper', { image: 'busybox:latest' }),
      smp,
    );
    assert.equal(changed.status, 422);
    assert.match(
      changed.body.message,
      /^Pod "client" is invalid: spec\.ephemeralContainers: Forbidden: existing ephemeral containers "keeper" may not be changed/,
    );
    const removed = await admin.request(
      'PATCH',
      ecPath('demo', 'client'),
      { spec: { ephemeralContainers: [] } },
      'application/merge-patch+json',
    );
    assert.equal(removed.status, 422);
    assert.match(removed.body.message, /existing ephemeral containers "keeper" may not be removed/);
    const dup = await admin.request('PATCH', ecPath('demo', 'client'), add('client'), smp);
    assert.equal(dup.status, 422);
    assert.match(
      dup.body.message,
      /spec\.ephemeralContainers\[1\]\.name: Duplicate value: "client"/,
    );
    const badTarget = await admin.request(
      'PATCH',
      ecPath('demo', 'client'),
      add('x', { targetContainerName: 'nope' }),
      smp,
    );
    assert.match(badTarget.body.message, /targetContainerName: Not found: "nope"/);
    const json = await admin.request(
      'PATCH',
      ecPath('demo', 'client'),
      [
        {
          op: 'add',
          path: '/spec/ephemeralContainers/-',
          value: { name: 'second', image: 'busybox:1.36', command: ['true'] },
        },
      ],
      'application/json-patch+json',
    );
    assert.equal(json.status, 200, json.text);
    await until('second ended', () => ecStatus('demo', 'client', 'second')?.state.terminated);
    // The 1.16-1.21 shape is not what a 1.31 server takes.
    const legacy = await admin.request('PUT', ecPath('demo', 'client'), {
      kind: 'EphemeralContainers',
      apiVersion: 'v1',
      metadata: { name: 'client', namespace: 'demo' },
      ephemeralContainers: [],
    });
    assert.equal(legacy.status, 400);
    assert.deepEqual(
      emu.api.getPod('demo', 'client')?.spec.ephemeralContainers?.map((c) => c.name),
      ['keeper', 'second'],
    );
    assert.ok(ecStatus('demo', 'client', 'keeper')?.state.running, 'keeper still runs');
  });

  test('RBAC: pods/ephemeralcontainers is granted to emu-ephemeral, refused to emu-restricted', async () => {
    const can = async (ctx: string, verb: string) =>
      (
        await kubectl(emu, [
          '--context',
          ctx,
          'auth',
          'can-i',
          verb,
          'pods',
          '--subresource=ephemeralcontainers',
        ])
      ).stdout.trim();
    for (const verb of ['get', 'patch', 'update']) {
      assert.equal(await can('emu-ephemeral', verb), 'yes', verb);
      assert.equal(await can('emu-restricted', verb), 'no', verb);
    }
    assert.equal(
      (
        await kubectl(emu, ['--context', 'emu-ephemeral', 'auth', 'can-i', 'create', 'pods'])
      ).stdout.trim(),
      'no',
    );
    const refused = await kubectl(emu, [
      '--context',
      'emu-restricted',
      'debug',
      'nonroot',
      '--image=busybox:1.36',
      '--',
      'true',
    ]);
    assert.notEqual(refused.code, 0);
    assert.match(
      refused.stderr,
      /User "restricted" cannot patch resource "pods\/ephemeralcontainers" in API group "" in the namespace "demo"/,
    );
    assert.equal(emu.api.getPod('demo', 'nonroot')?.spec.ephemeralContainers, undefined);
  });

  test('Pod Security baseline: kubectl run --dry-run=server refuses a privileged pod, accepts a plain one', async () => {
    const privileged = JSON.stringify({
      spec: {
        hostNetwork: true,
        volumes: [{ name: 'root', hostPath: { path: '/' } }],
        containers: [
          {
            name: 'p',
            image: 'busybox:1.36',
            securityContext: { privileged: true, capabilities: { add: ['NET_ADMIN', 'NET_RAW'] } },
          },
        ],
      },
    });
    const refused = await kubectl(emu, [
      'run',
      'p',
      '-n',
      'baseline',
      '--image=busybox:1.36',
      '--dry-run=server',
      `--overrides=${privileged}`,
    ]);
    assert.equal(refused.code, 1);
    assert.equal(
      refused.stderr.trim(),
      'Error from server (Forbidden): pods "p" is forbidden: violates PodSecurity "baseline:latest": non-default capabilities (container "p" must not include "NET_ADMIN", "NET_RAW" in securityContext.capabilities.add), host namespaces (hostNetwork=true), hostPath volumes (volume "root"), privileged (container "p" must not set securityContext.privileged=true)',
    );
    const plain = await kubectl(emu, [
      'run',
      'p',
      '-n',
      'baseline',
      '--image=busybox:1.36',
      '--dry-run=server',
      '-o',
      'name',
    ]);
    assert.equal(plain.code, 0, plain.stderr);
    assert.equal(plain.stdout.trim(), 'pod/p');
    assert.equal(emu.api.getPod('baseline', 'p'), undefined, 'a dry run stores nothing');
    // The same privileged pod is fine where no level is enforced.
    const demo = await kubectl(emu, [
      'run',
      'p',
      '-n',
      'demo',
      '--image=busybox:1.36',
      '--dry-run=server',
      `--overrides=${privileged}`,
    ]);
    assert.equal(demo.code, 0, demo.stderr);
    const restricted = await kubectl(emu, [
      'run',
      'p',
      '-n',
      'restricted',
      '--image=busybox:1.36',
      '--dry-run=server',
    ]);
    assert.match(
      restricted.stderr,
      /violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false \(container "p" must set securityContext.allowPrivilegeEscalation=false\), unrestricted capabilities \(container "p" must set securityContext.capabilities.drop=\["ALL"\]\), runAsNonRoot != true \(pod or container "p" must set securityContext.runAsNonRoot=true\), seccompProfile \(pod or container "p" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost"\)/,
    );
  });

  test('Pod Security baseline checks ephemeral containers: privileged refused, root admitted (then refused by the pod runAsNonRoot)', async () => {
    const smp = 'application/strategic-merge-patch+json';
    const priv = await admin.request(
      'PATCH',
      ecPath('baseline', 'web'),
      {
        spec: {
          ephemeralContainers: [
            { name: 'priv', image: 'busybox:1.36', securityContext: { privileged: true } },
          ],
        },
      },
      smp,
    );
    assert.equal(priv.status, 403);
    assert.equal(
      priv.body.message,
      'pods "web" is forbidden: violates PodSecurity "baseline:latest": privileged (container "priv" must not set securityContext.privileged=true)',
    );
    const r = await kubectl(emu, [
      'debug',
      '-n',
      'baseline',
      'locked',
      '--image=busybox:1.36',
      '--target=locked',
      '--',
      'id',
      '-u',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const name = /Defaulting debug container name to (debugger-\w+)/.exec(r.stdout)?.[1] ?? '';
    await until('ended', () => ecStatus('baseline', 'locked', name)?.state.terminated);
    // The pod's runAsUser applies to it too.
    const logs = await kubectl(emu, ['logs', '-n', 'baseline', 'locked', '-c', name]);
    assert.equal(logs.stdout.trim(), '1000', logs.stderr);
    const root = await admin.request(
      'PATCH',
      ecPath('baseline', 'locked'),
      {
        spec: {
          ephemeralContainers: [
            {
              name: 'asroot',
              image: 'busybox:1.36',
              command: ['id', '-u'],
              securityContext: { runAsUser: 0 },
            },
          ],
        },
      },
      smp,
    );
    assert.equal(root.status, 200, root.text);
    // runAsNonRoot of the pod still holds: the kubelet refuses user 0.
    const st = await until('refused', () => {
      const s = emu.api
        .getPod('baseline', 'locked')
        ?.status.ephemeralContainerStatuses?.find((x) => x.name === 'asroot');
      return s?.state.waiting?.reason === 'CreateContainerConfigError' ? s : undefined;
    });
    assert.match(String(st.state.waiting?.message), /runAsUser breaks non-root policy/);
  });
});

describe('5,000 pods, v4-only exec, faults', () => {
  let emu: Emulator;
  let admin: EmuClient;
  before(async () => {
    emu = await startEmulator({ bulkPods: 5000, execProtocols: ['v4.channel.k8s.io'] });
    admin = new EmuClient(emu.url, emu.ca, emu.tokens.admin);
  });
  after(async () => {
    await emu?.close();
  });

  test('5,000 pods listed in pages of 500 with continue', async () => {
    let cont = '';
    let total = 0;
    let pages = 0;
    do {
      const r = await admin.request(
        'GET',
        `/api/v1/pods?limit=500${cont ? `&continue=${cont}` : ''}`,
      );
      assert.equal(r.status, 200, r.text);
      total += r.body.items.length;
      pages++;
      cont = r.body.metadata.continue ?? '';
    } while (cont);
    // The bulk pods and the eight of the default world (demo, baseline, restricted).
    assert.equal(total, 5008);
    assert.equal(pages, 11);
    const k = await kubectl(emu, ['get', 'pods', '-A', '--no-headers', '--chunk-size=500']);
    assert.equal(k.stdout.trim().split('\n').length, 5008);
  });

  test('selectors: label, spec.nodeName, status.phase, metadata.name', async () => {
    const byLabel = await admin.request(
      'GET',
      '/api/v1/namespaces/bulk-3/pods?labelSelector=shard%3D3',
    );
    assert.ok(byLabel.body.items.length > 0);
    assert.ok(
      byLabel.body.items.every(
        (p: { metadata: { labels: { shard: string } } }) => p.metadata.labels.shard === '3',
      ),
    );
    const onC = await admin.request('GET', '/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-c');
    assert.equal(onC.body.items.length, 1250);
    const pending = await admin.request('GET', '/api/v1/pods?fieldSelector=status.phase%3DPending');
    assert.equal(pending.body.items.length, 0);
    const one = await admin.request(
      'GET',
      '/api/v1/namespaces/demo/pods?fieldSelector=metadata.name%3Dweb',
    );
    assert.deepEqual(
      one.body.items.map((p: { metadata: { name: string } }) => p.metadata.name),
      ['web'],
    );
    const bad = await admin.request('GET', '/api/v1/pods?fieldSelector=spec.bogus%3Dx');
    assert.equal(bad.status, 400);
  });

  test('v4 only: kubectl cannot exec (its fallback is SPDY, not emulated); a v4 client can', async () => {
    const k = await kubectl(emu, ['exec', 'web', '--', 'true']);
    assert.notEqual(k.code, 0);
    await assert.rejects(
      admin.openExec('demo', 'web', ['true'], { protocols: ['v5.channel.k8s.io'] }),
      /403/,
    );
    const r = await admin.exec('demo', 'web', ['sh', '-c', 'echo hi; exit 4']);
    assert.equal(r.protocol, 'v4.channel.k8s.io');
    assert.equal(r.stdout.toString(), 'hi\n');
    assert.equal(r.exitCode, 4);
    // v4 has no close frame: a size-limited reader is how an upload ends.
    const up = await admin.exec('demo', 'web', ['sh', '-c', 'head -c 5 | wc -c'], {
      stdin: '12345',
    });
    assert.equal(up.stdout.toString().trim(), '5');
  });

  test('faults: delay, 403 by verb/resource, 401, refused connections', async () => {
    await emu.api.setFaults({ delayMs: 300 });
    const t0 = Date.now();
    await admin.request('GET', '/version');
    assert.ok(Date.now() - t0 >= 300);
    await emu.api.setFaults({ delayMs: 0, forbid: [{ verb: 'list', resource: 'pods' }] });
    const f = await admin.request('GET', '/api/v1/namespaces/demo/pods');
    assert.equal(f.status, 403);
    assert.equal(
      f.body.message,
      'pods is forbidden: User "admin" cannot list resource "pods" in API group "" in the namespace "demo"',
    );
    assert.equal((await admin.request('GET', '/api/v1/namespaces/demo/pods/web')).status, 200);
    await emu.api.setFaults({ forbid: [], unauthorized: true });
    assert.equal((await admin.request('GET', '/api/v1/namespaces/demo/pods/web')).status, 401);
    await emu.api.setFaults({ unauthorized: false, refuseConnections: true });
    await assert.rejects(admin.request('GET', '/version'), /ECONNREFUSED/);
    await emu.api.resetFaults();
    assert.equal((await admin.request('GET', '/version')).status, 200);
  });

  test('faults: watch and exec streams cut after N bytes or on command', async () => {
    await emu.api.setFaults({ dropWatchAfterBytes: 20_000 });
    const w = admin.watch('/api/v1/pods?watch=true', () => {});
    const res = await w.done;
    assert.equal(res.complete, false);
    assert.ok(res.bytes >= 20_000 && res.bytes < 200_000, String(res.bytes));
    await emu.api.setFaults({ dropWatchAfterBytes: null, dropExecAfterBytes: 100_000 });
    const r = await admin.exec('demo', 'web', ['head', '-c', '1000000', '/dev/zero']);
    assert.equal(r.status, undefined);
    assert.ok(r.stdout.length < 1_000_000);
    await emu.api.resetFaults();
    const ws = await admin.openExec('demo', 'web', ['sleep', '30']);
    const closed = new Promise((r) => ws.once('close', r));
    assert.equal(emu.api.dropStreams('exec'), 1);
    await closed;
    await admin.exec('demo', 'web', ['pkill', 'sleep']);
  });

  test('faults: privileged pods refused by Pod Security (403) or as Invalid (422)', async () => {
    const body = {
      metadata: { name: 'x' },
      spec: {
        hostPID: true,
        containers: [{ name: 'c', image: 'busybox:1.36', securityContext: { privileged: true } }],
      },
    };
    await emu.api.setFaults({ rejectPrivileged: 'podsecurity' });
    const ps = await admin.request('POST', '/api/v1/namespaces/demo/pods', body);
    assert.equal(ps.status, 403);
    assert.equal(
      ps.body.message,
      'pods "x" is forbidden: violates PodSecurity "baseline:latest": host namespaces (hostPID=true), privileged (container "c" must not set securityContext.privileged=true)',
    );
    await emu.api.setFaults({ rejectPrivileged: 'invalid' });
    const inv = await admin.request('POST', '/api/v1/namespaces/demo/pods', body);
    assert.equal(inv.status, 422);
    assert.equal(inv.body.reason, 'Invalid');
    await emu.api.resetFaults();
  });

  test('faults: created pods kept Pending (ImagePullBackOff, Unschedulable)', async () => {
    const spec = { containers: [{ name: 'c', image: 'busybox:1.36', command: ['sleep', '60'] }] };
    await emu.api.setFaults({ keepPending: 'ImagePullBackOff' });
    const a = await admin.request('POST', '/api/v1/namespaces/demo/pods', {
      metadata: { name: 'pa' },
      spec,
    });
    assert.equal(a.body.status.phase, 'Pending');
    assert.equal(a.body.status.containerStatuses[0].state.waiting.reason, 'ImagePullBackOff');
    await emu.api.setFaults({ keepPending: 'Unschedulable' });
    const b = await admin.request('POST', '/api/v1/namespaces/demo/pods', {
      metadata: { name: 'pb' },
      spec,
    });
    const cond = b.body.status.conditions.find((c: { type: string }) => c.type === 'PodScheduled');
    assert.equal(cond.status, 'False');
    assert.equal(cond.reason, 'Unschedulable');
    assert.match(cond.message, /untolerated taint/);
    await emu.api.resetFaults();
    for (const n of ['pa', 'pb']) {
      assert.equal(
        (await admin.request('DELETE', `/api/v1/namespaces/demo/pods/${n}`)).status,
        200,
      );
    }
  });
});

describe('cleanup', () => {
  test('close() leaves no container, netns, link, mount, process or cgroup', async () => {
    const emu = await startEmulator();
    const pid = emu.api.containerPid('demo', 'web');
    assert.ok(pid);
    // A running ephemeral container goes with the pod too.
    const admin = new EmuClient(emu.url, emu.ca, emu.tokens.admin);
    const added = await admin.request(
      'PATCH',
      '/api/v1/namespaces/demo/pods/web/ephemeralcontainers',
      {
        spec: {
          ephemeralContainers: [{ name: 'e', image: 'busybox:1.36', command: ['sleep', '600'] }],
        },
      },
      'application/strategic-merge-patch+json',
    );
    assert.equal(added.status, 200, added.text);
    await until(
      'running',
      () => emu.api.getPod('demo', 'web')?.status.ephemeralContainerStatuses?.[0]?.state.running,
    );
    await emu.close();
    assert.deepEqual(await emu.checkClean(), []);
  });

  test('`main.ts cleanup` sweeps the leftovers of a killed run', async () => {
    const node = process.execPath;
    const child = spawn(node, ['test/emulator/main.ts'], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => {
      child.stdout?.on('data', (d: Buffer) => {
        if (d.toString().includes('KUBECONFIG=')) resolve();
      });
    });
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    assert.notDeepEqual(await checkClean(), []);
    const sweep = await runFile(node, ['test/emulator/main.ts', 'cleanup']);
    assert.equal(sweep.code, 0, sweep.stderr);
    assert.deepEqual(await checkClean(), []);
  });
});
