import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BUILT, run } from '../support/kubedump.ts';
import { openWorld, type World, wiresharkHome } from '../support/worlds.ts';

// Unprivileged capture end to end: real tshark drives the installed extcap
// against the real cluster (exec v4) and the emulated one (exec v5).

const UPLOADED = /kubedump-tcpdump-[0-9a-f]{12}/;

for (const worldName of ['real', 'emulated'] as const) {
  describe(`unprivileged capture on the ${worldName} cluster`, () => {
    let world: World;
    let home: ReturnType<typeof wiresharkHome>;
    before(async () => {
      world = await openWorld(worldName);
      home = wiresharkHome(world.kubeconfig);
    });
    after(() => world?.close());

    const tshark = (args: string[], timeoutMs = 60_000) =>
      run(['tshark', ...args], { env: home.env, timeoutMs });
    const inPod = (pod: string, ...command: string[]) =>
      world.kubectl(['exec', '-n', 'demo', pod, '--', ...command]);

    async function assertNothingLeft(pod: string) {
      const ps = await inPod(pod, 'ps');
      assert.equal(ps.code, 0, ps.stderr);
      assert.doesNotMatch(ps.stdout, UPLOADED, 'a tcpdump still runs in the pod');
      const ls = await inPod(pod, 'ls', '-a', '/tmp');
      assert.doesNotMatch(ls.stdout, /kubedump/, 'the uploaded tcpdump is still there');
    }

    test('tshark lists the pods and captures HTTP from one of them', async () => {
      const listed = await tshark(['-D']);
      assert.equal(listed.code, 0, listed.stderr);
      assert.match(listed.stdout, /\bkubedump \(Kubernetes pod \(choose in options\)\)/);
      assert.match(listed.stdout, /kubedump\.demo\.web \(Kubernetes pod demo\/web/);
      const out = join(home.dir, 'web.pcapng');
      const captured = await tshark(['-i', 'kubedump.demo.web', '-c', '20', '-w', out]);
      assert.equal(captured.code, 0, captured.stderr);
      const http = await tshark([
        '-r',
        out,
        '-Y',
        'http.request',
        '-T',
        'fields',
        '-e',
        'http.request.method',
      ]);
      assert.equal(http.code, 0, http.stderr);
      assert.match(http.stdout, /GET/);
      const count = await tshark(['-r', out, '-T', 'fields', '-e', 'frame.number']);
      assert.equal(count.stdout.trim().split('\n').length, 20);
      await assertNothingLeft('web');
    });

    test('the CLI writes pcap to stdout for tshark -r -', async () => {
      const ran = await run(
        [
          'bash',
          '-c',
          '"$1" capture web -n demo --mode unprivileged --max-packets 20 -w - | tshark -r - -Y http.request -T fields -e http.request.method',
          'sh',
          BUILT,
        ],
        { env: home.env, timeoutMs: 60_000 },
      );
      assert.equal(ran.code, 0, ran.stderr);
      assert.match(ran.stdout, /GET/);
      await assertNothingLeft('web');
    });

    test('a kept binary is reused when its hash matches and replaced when it does not', async () => {
      const log = join(home.dir, 'reuse.log');
      const capture = () =>
        run(
          [
            BUILT,
            'capture',
            'web',
            '-n',
            'demo',
            '--mode',
            'unprivileged',
            '--max-packets',
            '2',
            '--keep-binary',
            '--log-level',
            'info',
            '--log-file',
            log,
            '-w',
            join(home.dir, 'reuse.pcap'),
          ],
          {
            env: home.env,
            timeoutMs: 60_000,
          },
        );
      const entries = () =>
        readFileSync(log, 'utf8')
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l));
      const events = () => entries().map((e) => e.message as string);
      assert.equal((await capture()).code, 0);
      assert.equal((await capture()).code, 0);
      // Kept in the run user's private directory (root here), nowhere else.
      const ls = await inPod('web', 'ls', '-a', '/tmp', '/tmp/.kubedump-keep-0');
      const name = UPLOADED.exec(ls.stdout)?.[0];
      assert.ok(name, `kept binary not found in ${ls.stdout}`);
      const kept = `/tmp/.kubedump-keep-0/${name}`;
      assert.doesNotMatch(
        (await inPod('web', 'ls', '-a', '/tmp')).stdout,
        /kubedump-tcpdump|\.kubedump-[0-9a-f]/,
        'only the kept directory is left',
      );
      // Corrupt the kept copy: the next capture must notice and upload again.
      assert.equal((await inPod('web', 'sh', '-c', 'echo corrupt > "$1"', 'sh', kept)).code, 0);
      assert.equal((await capture()).code, 0);
      assert.deepEqual(
        events().filter((m) => /tcpdump (uploaded|already present)/.test(m)),
        ['tcpdump uploaded', 'tcpdump already present', 'tcpdump uploaded'],
      );
      // The real v1.20 server takes SPDY/3.1 (exec v4); the emulated one
      // refuses SPDY as a WebSocket-only gateway does, and offers v5.
      const protocols = new Set(
        entries()
          .filter((e) => e.message === 'capture started')
          .map((e) => `${e.transport} ${e.protocol}`),
      );
      assert.deepEqual(
        [...protocols],
        [worldName === 'real' ? 'spdy v4.channel.k8s.io' : 'websocket v5.channel.k8s.io'],
      );
      await inPod('web', 'rm', '-rf', '/tmp/.kubedump-keep-0');
      await assertNothingLeft('web');
    });

    test('errors are one clear line and leave nothing behind', async () => {
      const capture = (...args: string[]) =>
        run(
          [
            BUILT,
            'capture',
            ...args,
            '--mode',
            'unprivileged',
            '--max-packets',
            '1',
            '-w',
            join(home.dir, 'err.pcap'),
          ],
          {
            env: home.env,
            timeoutMs: 60_000,
          },
        );
      const cases: [string[], RegExp][] = [
        [['distroless', '-n', 'demo'], /privileged mode/],
        [['nonroot', '-n', 'demo'], /privileged mode/],
        [['web', '-n', 'demo', '-f', 'port 80; touch /tmp/pwned'], /not valid BPF/],
        [['nope', '-n', 'demo'], /pod "nope" not found in namespace "demo"/],
        [['web', '-n', 'nowhere'], /pod "web" not found in namespace "nowhere"/],
        [['web', '-n', 'demo', '-c', 'sidecar'], /container "sidecar" not found in pod demo\/web/],
      ];
      for (const [args, expected] of cases) {
        const ran = await capture(...args);
        assert.equal(ran.code, 1, `${args.join(' ')}: ${ran.stderr}`);
        const lines = ran.stderr.trim().split('\n');
        assert.equal(lines.length, 1, ran.stderr);
        assert.match(lines[0] as string, expected);
        assert.doesNotMatch(ran.stderr, /\bat .*\.(ts|js|cjs):\d+/, 'no stack trace');
      }
      const pwned = await inPod('web', 'ls', '/tmp/pwned');
      assert.notEqual(pwned.code, 0, 'the filter ran as a shell command');
      for (const pod of ['web', 'nonroot']) await assertNothingLeft(pod);
    });

    test('a capture of a pod that does not exist ends at once in tshark with the reason', async () => {
      const started = Date.now();
      const ran = await tshark(
        [
          '-i',
          'kubedump',
          '-o',
          'extcap.kubedump.pod:nope',
          '-c',
          '1',
          '-w',
          join(home.dir, 'none.pcapng'),
        ],
        30_000,
      );
      assert.ok(Date.now() - started < 15_000, 'tshark hung');
      assert.notEqual(ran.code, 0);
      assert.match(ran.stderr, /pod "nope" not found/);
    });
  });
}
