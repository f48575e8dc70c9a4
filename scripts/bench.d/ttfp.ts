// Benchmark 5: time to first packet. kubedump (unprivileged with the binary
// present, with upload, privileged) against the same steps done by hand with
// kubectl: check the file with sha256sum, tar upload over `kubectl exec -i`,
// exec tcpdump; privileged: create a helper pod, wait, upload, find the PID
// by cgroup scan, `nsenter -t PID -n tcpdump`. Traffic: ping every 10 ms.
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  K8S_DIR,
  KUBECTL,
  KUBEDUMP,
  kubectl,
  log,
  median,
  ms,
  must,
  ROOT,
  ratio,
  rows,
  run,
  sleep,
  waitExit,
} from './lib.ts';

const LOCAL_TCPDUMP = join(ROOT, 'build', 'tcpdump', 'linux-amd64');
const NAME = 'bench-tcpdump';
const REMOTE = `/tmp/${NAME}`;

/** The containers and sandboxes the local cluster's containerd runs. */
async function nodeTasks(): Promise<number> {
  const sock = join(K8S_DIR, 'containerd', 'containerd.sock');
  const r = await must(['ctr', '-a', sock, '-n', 'k8s.io', 'tasks', 'ls', '-q']);
  return r.stdout.split('\n').filter(Boolean).length;
}

/**
 * Waits until the node runs no more tasks than `baseline`. A deleted pod's
 * teardown (the kubelet stopping its containers, the sandbox, the network)
 * goes on for seconds after the API forgets it, and took CPU from whichever
 * run came next: each round starts on a node at rest.
 */
async function nodeAtRest(baseline: number): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if ((await nodeTasks()) <= baseline) return;
    await sleep(100);
  }
  throw new Error(`the node still runs more than ${baseline} tasks after 30 s`);
}

/** Resolves when `child`'s stdout has carried a pcap header and one whole record. */
function firstRecord(child: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    let got = Buffer.alloc(0);
    const onData = (c: Buffer) => {
      got = Buffer.concat([got, c]);
      if (got.length >= 40 && got.length >= 40 + got.readUInt32LE(32)) {
        child.stdout?.off('data', onData);
        child.stdout?.resume();
        resolve();
      }
    };
    child.stdout?.on('data', onData);
    child.once('exit', (code) => reject(new Error(`exited ${code} before the first packet`)));
  });
}

/** Runs `steps` (the last one streams pcap), timed from the first spawn to the first record. */
async function byHand(
  steps: (() => Promise<void>)[],
  stream: () => string[],
): Promise<{ ms: number; child: ChildProcess }> {
  const started = performance.now();
  for (const step of steps) await step();
  const argv = stream();
  const child = spawn(argv[0] as string, argv.slice(1), { stdio: ['ignore', 'pipe', 'ignore'] });
  await firstRecord(child);
  return { ms: performance.now() - started, child };
}

async function kubedumpFirst(args: string[], kubeconfig: string): Promise<number> {
  const started = performance.now();
  const child = spawn(
    KUBEDUMP,
    ['capture', 'web', '-n', 'demo', '-f', 'icmp', '-w', '-', '--kubeconfig', kubeconfig, ...args],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (c) => (stderr += c));
  try {
    await firstRecord(child);
  } catch (e) {
    throw new Error(`kubedump ${args.join(' ')}: ${(e as Error).message}: ${stderr}`);
  }
  const elapsed = performance.now() - started;
  child.kill('SIGINT'); // and let it clean up (remote tcpdump, upload, helper pod)
  await waitExit(child);
  return elapsed;
}

export async function benchTtfp(kubeconfig: string, runs: number): Promise<void> {
  const k = (args: string[]) => kubectl(kubeconfig, args);
  const webIp = (
    await must(k(['get', 'pod', '-n', 'demo', 'web', '-o', 'jsonpath={.status.podIP}']))
  ).stdout.trim();
  const node = (
    await must(k(['get', 'pod', '-n', 'demo', 'web', '-o', 'jsonpath={.spec.nodeName}']))
  ).stdout.trim();
  const sum = createHash('sha256')
    .update(readFileSync(join(LOCAL_TCPDUMP, 'tcpdump')))
    .digest('hex');
  // Steady traffic for the whole benchmark; ends by itself.
  const pinger = spawn(
    KUBECTL,
    k([
      'exec',
      '-n',
      'demo',
      'client',
      '--',
      'timeout',
      '900',
      'ping',
      '-q',
      '-i',
      '0.01',
      webIp,
    ]).slice(1),
    { stdio: 'ignore' },
  );
  const stopRemote = (pod: string) =>
    run(k(['exec', '-n', 'demo', pod, '--', 'killall', NAME]), { timeoutMs: 20_000 });
  const removeRemote = () =>
    run(
      k(['exec', '-n', 'demo', 'web', '--', 'sh', '-c', `rm -f /tmp/kubedump-tcpdump-* ${REMOTE}`]),
    );
  const check = (pod: string) => async () => {
    const r = await run(k(['exec', '-n', 'demo', pod, '--', 'sha256sum', REMOTE]));
    if (r.code === 0 && !r.stdout.startsWith(sum)) throw new Error('wrong remote tcpdump');
  };
  const upload = (pod: string) => async () => {
    await must([
      'sh',
      '-c',
      `tar -C "$1" -cf - --transform "s,^tcpdump$,${NAME}," tcpdump | "$2" --kubeconfig "$3" exec -i -n demo "$4" -- tar -xf - -C /tmp`,
      'sh',
      LOCAL_TCPDUMP,
      KUBECTL,
      kubeconfig,
      pod,
    ]);
  };
  const tcpdump = ['-i', 'any', '-U', '--immediate-mode', '-w', '-', 'icmp'];
  const stream = (pod: string, prefix: string[] = []) =>
    k(['exec', '-n', 'demo', pod, '--', ...prefix, REMOTE, ...tcpdump]);
  const t: Record<string, { kd: number[]; k: number[] }> = {
    present: { kd: [], k: [] },
    upload: { kd: [], k: [] },
    privileged: { kd: [], k: [] },
  };
  // Auto (the default) against the mode it picks for web, binary present.
  const auto = { kd: [] as number[], unprivileged: [] as number[] };
  const unprivileged = ['--mode', 'unprivileged'];
  const baseline = await nodeTasks();
  try {
    for (let i = 0; i < runs; i++) {
      await nodeAtRest(baseline);
      // binary present: both copies in place first (untimed)
      await kubedumpFirst(['--keep-binary', ...unprivileged], kubeconfig);
      await upload('web')();
      // The first run after the upload is the slower one: the two take turns.
      const runAuto = async () =>
        auto.kd.push(await kubedumpFirst(['--keep-binary', '--mode', 'auto'], kubeconfig));
      if (i % 2 === 1) await runAuto();
      const present = await kubedumpFirst(['--keep-binary', ...unprivileged], kubeconfig);
      t.present?.kd.push(present);
      auto.unprivileged.push(present);
      if (i % 2 === 0) await runAuto();
      let h = await byHand([check('web')], () => stream('web'));
      h.child.kill('SIGKILL');
      await stopRemote('web');
      t.present?.k.push(h.ms);
      // with upload: nothing in the pod
      await removeRemote();
      t.upload?.kd.push(await kubedumpFirst(unprivileged, kubeconfig));
      await removeRemote();
      h = await byHand([check('web'), upload('web')], () => stream('web'));
      h.child.kill('SIGKILL');
      await stopRemote('web');
      t.upload?.k.push(h.ms);
      // privileged: kubedump's helper pod is gone before the by-hand one is made
      t.privileged?.kd.push(await kubedumpFirst(['-p'], kubeconfig));
      await nodeAtRest(baseline);
      const helper = `bench-helper-${process.pid}-${i}`;
      const spec = {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: helper, namespace: 'demo' },
        spec: {
          nodeName: node,
          hostPID: true,
          restartPolicy: 'Never',
          activeDeadlineSeconds: 300,
          tolerations: [{ operator: 'Exists' }],
          containers: [
            {
              name: 'helper',
              image: 'docker.io/library/busybox:1.36',
              imagePullPolicy: 'IfNotPresent',
              command: ['sleep', '300'],
              securityContext: { privileged: true },
            },
          ],
        },
      };
      let pid = '';
      h = await byHand(
        [
          async () => {
            await must(k(['create', '-f', '-']), { input: JSON.stringify(spec) });
          },
          async () => {
            await must(
              k(['wait', '-n', 'demo', '--for=condition=Ready', `pod/${helper}`, '--timeout=60s']),
            );
          },
          check(helper),
          upload(helper),
          async () => {
            const id = (
              await must(
                k([
                  'get',
                  'pod',
                  '-n',
                  'demo',
                  'web',
                  '-o',
                  'jsonpath={.status.containerStatuses[0].containerID}',
                ]),
              )
            ).stdout.replace(/^.*:\/\//, '');
            const scan = await must(
              k([
                'exec',
                '-n',
                'demo',
                helper,
                '--',
                'sh',
                '-c',
                `grep -l ${id} /proc/[0-9]*/cgroup | head -1`,
              ]),
            );
            pid = /\/proc\/(\d+)\//.exec(scan.stdout)?.[1] ?? '';
            if (!pid) throw new Error('cgroup scan found no PID');
          },
        ],
        () => stream(helper, ['nsenter', '-t', pid, '-n', '--']),
      ).catch(async (e) => {
        await run(k(['delete', 'pod', '-n', 'demo', helper, '--grace-period=0', '--wait=false']));
        throw e;
      });
      h.child.kill('SIGKILL');
      t.privileged?.k.push(h.ms);
      await run(k(['delete', 'pod', '-n', 'demo', helper, '--grace-period=0', '--wait=false']));
    }
  } finally {
    pinger.kill('SIGKILL');
    await run(k(['exec', '-n', 'demo', 'client', '--', 'killall', 'ping']));
    await removeRemote();
  }
  for (const [what, v] of Object.entries(t)) {
    const [kd, kk] = [median(v.kd), median(v.k)];
    log(`ttfp ${what}: kubedump ${ms(kd)} kubectl ${ms(kk)}`);
    rows.push({
      benchmark: `5. time to first packet, ${what === 'present' ? 'unprivileged, binary present (--keep-binary)' : what === 'upload' ? 'unprivileged with upload' : 'privileged (helper pod)'}`,
      kubedump: ms(kd),
      peer: `kubectl by hand ${ms(kk)}`,
      ratio: ratio(kd, kk),
      target: what === 'privileged' ? '≤ 1.0×' : '≤ 0.7×',
      met: kd <= (what === 'privileged' ? 1.0 : 0.7) * kk,
    });
  }
  const [a, u] = [median(auto.kd), median(auto.unprivileged)];
  log(`ttfp auto: ${ms(a)} against unprivileged ${ms(u)}`);
  rows.push({
    benchmark: '5. time to first packet, auto (picks unprivileged; binary present)',
    kubedump: ms(a),
    peer: `kubedump --mode unprivileged ${ms(u)}`,
    ratio: ratio(a, u),
    target: '≤ 1.1×',
    met: a <= 1.1 * u,
  });
  await waitExit(pinger);
}
