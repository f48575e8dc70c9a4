import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type Emulator, IMAGES, type PodInput, startEmulator } from '../emulator/index.ts';
import { run } from '../support/kubedump.ts';
import {
  allRemoteTcpdumps,
  assertNoLeftovers,
  untilNoRemoteTcpdump,
} from '../support/leftovers.ts';
import { background, readLog, sleep, until } from '../support/reliability.ts';
import { wiresharkHome } from '../support/worlds.ts';

// Several pods of one label selector on the emulated cluster, whose nodes
// report different runtimes: containerd (node-a), docker (node-b), cri-o
// (node-d). One pod is distroless (no shell: unprivileged mode cannot run
// tcpdump in it), one joins during the capture, one is deleted during it.
// Unprivileged: the distroless pod fails alone, as one line and an interface
// whose comment says why. Privileged: every pod is captured, on every runtime.

const SELECTOR = 'group=kdmany';
const LABELS = { group: 'kdmany' };

let emulator: Emulator;
let home: ReturnType<typeof wiresharkHome>;
let dir: string;

before(async () => {
  emulator = await startEmulator();
  home = wiresharkHome(emulator.kubeconfigPath);
  dir = mkdtempSync(join(tmpdir(), 'kubedump-many-emu-'));
});

after(async () => {
  try {
    if (emulator)
      await assertNoLeftovers({
        name: 'many pods (emulated)',
        kubeconfig: emulator.kubeconfigPath,
      });
  } finally {
    await emulator?.close();
  }
});

/** A busybox pod that keeps fetching from `targets` (HOST:PORT): packets on its interface. */
function client(name: string, node: string, targets: string[]): PodInput {
  return {
    metadata: { name, labels: LABELS },
    spec: {
      nodeName: node,
      terminationGracePeriodSeconds: 0,
      containers: [
        {
          name: 'app',
          image: IMAGES.busybox,
          env: [{ name: 'TARGETS', value: targets.join(' ') }],
          command: [
            'sh',
            '-c',
            'while true; do for t in $TARGETS; do timeout 2 wget -q -O - "http://$t/" >/dev/null 2>&1; done; sleep 0.2; done',
          ],
        },
      ],
    },
  };
}

/** Per interface name: packet count and the first and last packet's time (epoch seconds). */
async function perInterface(
  file: string,
): Promise<Map<string, { packets: number; first: number; last: number; description: string }>> {
  const read = await run(
    [
      'tshark',
      '-r',
      file,
      '-T',
      'fields',
      '-E',
      'separator=|',
      '-e',
      'frame.interface_name',
      '-e',
      'frame.interface_description',
      '-e',
      'frame.time_epoch',
    ],
    { timeoutMs: 60_000 },
  );
  assert.equal(read.code, 0, read.stderr);
  const seen = new Map<
    string,
    { packets: number; first: number; last: number; description: string }
  >();
  for (const line of read.stdout.split('\n').filter(Boolean)) {
    const [name = '', description = '', time = ''] = line.split('|');
    const t = Number(time);
    const s = seen.get(name) ?? { packets: 0, first: t, last: t, description };
    seen.set(name, {
      ...s,
      packets: s.packets + 1,
      first: Math.min(s.first, t),
      last: Math.max(s.last, t),
    });
  }
  return seen;
}

/** Every interface of the file with its comment, as capinfos lists them (packets or not). */
async function interfaceComments(file: string): Promise<Map<string, string>> {
  const info = await run(['capinfos', '-I', file], { timeoutMs: 30_000 });
  assert.equal(info.code, 0, info.stderr);
  const found = new Map<string, string>();
  for (const block of info.stdout.split(/^Interface #\d+ info:$/m).slice(1)) {
    const name = /^\s*Name = (.+)$/m.exec(block)?.[1]?.trim() ?? '';
    found.set(name, /^\s*Comment = (.+)$/m.exec(block)?.[1]?.trim() ?? '');
  }
  return found;
}

const helpers = () =>
  emulator.api.cluster.pods
    .list()
    .filter((p) => p.metadata.labels?.['app.kubernetes.io/managed-by'] === 'kubedump');

for (const mode of ['unprivileged', 'privileged'] as const) {
  describe(`several pods on three runtimes, ${mode} (emulated cluster)`, () => {
    const p = mode === 'privileged' ? 'p' : 'u';
    const names = {
      distroless: `many-${p}-distroless`,
      containerd: `many-${p}-containerd`,
      docker: `many-${p}-docker`,
      gone: `many-${p}-gone`,
      late: `many-${p}-late`,
    };

    after(async () => {
      for (const name of Object.values(names)) await emulator.api.removePod('demo', name);
    });

    test('a selector on containerd, docker and cri-o nodes; one pod joins, one is deleted, the rest go on', async () => {
      const web = emulator.api.getPod('demo', 'web')?.status.podIP;
      assert.ok(web, 'pod web has an IP');
      const distroless = await emulator.api.addPod('demo', {
        metadata: { name: names.distroless, labels: LABELS },
        spec: {
          nodeName: 'node-d',
          terminationGracePeriodSeconds: 0,
          containers: [{ name: 'app', image: IMAGES.distroless }],
        },
      });
      const targets = [`${web}:80`, `${distroless.status.podIP}:8080`];
      await Promise.all([
        emulator.api.addPod('demo', client(names.containerd, 'node-a', targets)),
        emulator.api.addPod('demo', client(names.docker, 'node-b', targets)),
        emulator.api.addPod('demo', client(names.gone, 'node-a', targets)),
      ]);
      for (const [name, runtime] of [
        [names.containerd, 'containerd'],
        [names.docker, 'docker'],
        [names.distroless, 'cri-o'],
      ] as const) {
        const id = emulator.api.getPod('demo', name)?.status.containerStatuses?.[0]?.containerID;
        assert.match(id ?? '', new RegExp(`^${runtime}://`), name);
      }

      const log = join(dir, `${mode}.log`);
      const file = join(dir, `${mode}.pcapng`);
      const bg = background(
        [
          'capture',
          '-l',
          SELECTOR,
          '-n',
          'demo',
          ...(mode === 'privileged' ? ['-p'] : ['--mode', 'unprivileged']),
          '--log-level',
          'debug',
          '--log-file',
          log,
          '-w',
          file,
        ],
        home.env,
      );
      const listening = () =>
        readLog(log).filter((e) => /listening on/.test(String(e.line ?? ''))).length;
      try {
        // Every capturable pod's tcpdump listens (the distroless one too, when privileged).
        const first = mode === 'privileged' ? 4 : 3;
        await until(`${first} tcpdumps to listen`, () => listening() >= first, 60_000);
        await sleep(1500);

        await emulator.api.addPod('demo', client(names.late, 'node-d', targets));
        await until('the pod that joined to be captured', () => listening() >= first + 1, 60_000);
        await sleep(1500);

        const deletedAt = Date.now() / 1000;
        await emulator.api.removePod('demo', names.gone);
        await sleep(3000);
        // Its part has stopped: privileged, its helper pod is gone before the capture ends.
        assert.deepEqual(
          helpers()
            .map((h) => h.metadata.name)
            .filter((h) => h.startsWith(`kubedump-${names.gone}-`)),
          [],
          'the deleted pod’s helper pod',
        );
        assert.equal(
          bg.child.exitCode,
          null,
          `the capture ended with the deleted pod: ${bg.stderr()}`,
        );

        bg.child.kill('SIGINT');
        const end = await bg.exited;
        assert.equal(end.code, 0, bg.stderr());

        // stderr: one line per pod that failed, naming it.
        const lines = bg.stderr().trim().split('\n').filter(Boolean);
        const expectedLines = [
          ...(mode === 'unprivileged'
            ? [new RegExp(`^kubedump: demo/${names.distroless}: .*(shell|privileged)`)]
            : []),
          new RegExp(
            `^kubedump: demo/${names.gone}: pod demo/${names.gone} was deleted during the capture`,
          ),
        ];
        assert.equal(lines.length, expectedLines.length, bg.stderr());
        for (const re of expectedLines)
          assert.ok(
            lines.some((l) => re.test(l)),
            `${re}: ${bg.stderr()}`,
          );

        const packets = await perInterface(file);
        const comments = await interfaceComments(file);
        const all = Object.values(names)
          .map((n) => `demo/${n}`)
          .sort();
        assert.deepEqual([...comments.keys()].sort(), all, 'one interface per pod');
        const captured = [names.containerd, names.docker, names.gone, names.late];
        if (mode === 'privileged') captured.push(names.distroless);
        assert.deepEqual(
          [...packets.keys()].sort(),
          captured.map((n) => `demo/${n}`).sort(),
          'interfaces with packets',
        );
        for (const [name, seen] of packets) {
          assert.ok(seen.packets > 0, `${name}: no packets`);
          assert.match(
            seen.description,
            /^node node-[abd]; pod IP [\d.]+; container app; labels group=kdmany$/,
          );
        }
        if (mode === 'unprivileged') {
          assert.match(
            comments.get(`demo/${names.distroless}`) ?? '',
            /^kubedump: not captured: .*(shell|privileged)/,
          );
        }
        // The deleted pod's part ends with it; the others' go on after it.
        const gone = packets.get(`demo/${names.gone}`);
        assert.ok(
          gone && gone.last < deletedAt + 1,
          `${names.gone}: packets ${gone?.last} after deletion ${deletedAt}`,
        );
        for (const name of [names.containerd, names.docker, names.late]) {
          const seen = packets.get(`demo/${name}`);
          assert.ok(seen && seen.last > deletedAt + 1.5, `${name}: no packet after the deletion`);
        }
        // Every pod is named by its address, the one that joined too.
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
          { timeoutMs: 60_000 },
        );
        const sources = new Set(named.stdout.split('\n'));
        for (const name of [names.containerd, names.docker, names.late]) {
          assert.ok(sources.has(`${name}.demo`), `${name} is not named`);
        }
        // The pod that joined starts after the others.
        const late = packets.get(`demo/${names.late}`);
        const early = packets.get(`demo/${names.containerd}`);
        assert.ok(late && early && late.first > early.first, 'the late pod joined later');
        console.log(
          `# ${mode}: ${[...packets].map(([n, s]) => `${n} ${s.packets}`).join(', ')}; comments: ${[...comments.values()].filter(Boolean).join(' | ')}`,
        );
      } finally {
        if (bg.child.exitCode === null && bg.child.signalCode === null) bg.child.kill('SIGKILL');
      }
      await until('no helper pod', () => helpers().length === 0, 10_000);
      await untilNoRemoteTcpdump(10_000);
      assert.deepEqual(allRemoteTcpdumps(), []);
    });
  });
}
