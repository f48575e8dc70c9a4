import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  BINARY_TOKEN,
  binaryName,
  canCapturePackets,
  endHelperArgv,
  extractArgv,
  HELPER_MAIN,
  installAndRunArgv,
  isPrivateDir,
  killArgv,
  lookOfProbe,
  parseProbe,
  parseProbeLine,
  parseSurvey,
  probeArgv,
  putAnswer,
  QUIT_ANSWER,
  runAnswer,
  runsKeptAtOnce,
  STOP_LINE,
  surveyArgv,
  UPLOAD_STALL_S,
  WATCHDOG_TIMEOUT_S,
  withWatchdog,
} from '../../src/capture/remote-scripts.ts';
import { tarOf } from '../../src/capture/upload.ts';
import { tcpdumpBinary, tcpdumpManifest } from '../../src/tcpdump/index.ts';

// The constant sh scripts kubedump runs in pods, run here under the shells
// real images have: dash (/bin/sh of Debian and Ubuntu images, no `read -t`)
// and busybox ash.

const CANDIDATES: [string, string[]][] = [
  ['dash', ['dash']],
  ['busybox sh', ['busybox', 'sh']],
];
const runs = (argv: string[]) =>
  spawnSync(argv[0] as string, [...argv.slice(1), '-c', 'exit 0']).status === 0;
const SHELLS = CANDIDATES.filter(([, argv]) => runs(argv));

const dir = mkdtempSync(join(tmpdir(), 'kubedump-scripts-'));
after(() => rmSync(dir, { recursive: true, force: true }));

// Its name makes its comm "kubedump-tcpdum", as the uploaded tcpdump's is.
const FAKE_TCPDUMP = join(dir, 'kubedump-tcpdump-test');
writeFileSync(FAKE_TCPDUMP, '#!/bin/sh\nwhile :; do sleep 1; done\n');
chmodSync(FAKE_TCPDUMP, 0o755);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Whether `check` holds within `ms`: generous, as a machine busy starting a cluster is slow. */
async function eventually(check: () => boolean, ms = 10_000): Promise<boolean> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() >= end) return false;
    await sleep(20);
  }
  return true;
}

function alive(pid: number): boolean {
  try {
    const stat = spawnSync('cat', [`/proc/${pid}/stat`]).stdout.toString();
    return stat !== '' && !/\) Z /.test(stat);
  } catch {
    return false;
  }
}

/** PIDs of live processes whose command line holds `text`. */
function processesNaming(text: string): number[] {
  return readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e) && Number(e) !== process.pid)
    .filter((e) => {
      try {
        return readFileSync(`/proc/${e}/cmdline`, 'utf8').includes(text) && alive(Number(e));
      } catch {
        return false;
      }
    })
    .map(Number);
}

/** Starts the wrapped fake tcpdump under `shell`; resolves with its reported PID. */
async function wrapped(shell: string[], heartbeat: string) {
  const [, ...rest] = withWatchdog([FAKE_TCPDUMP], heartbeat);
  // rest = ['-c', SCRIPT, 'sh', heartbeat, ...argv]
  const child = spawn(shell[0] as string, [...shell.slice(1), ...rest], {
    stdio: ['pipe', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (c) => (stderr += c));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  await eventually(() => /kubedump-pid (\d+)/.test(stderr));
  const pid = Number(/kubedump-pid (\d+)/.exec(stderr)?.[1]);
  assert.ok(pid > 0, `no PID reported: ${stderr}`);
  return { child, pid, exited };
}

async function gone(child: ChildProcess, exited: Promise<void>, ms: number): Promise<boolean> {
  const timer = sleep(ms).then(() => false);
  const ok = await Promise.race([exited.then(() => true), timer]);
  if (!ok) child.kill('SIGKILL');
  return ok;
}

for (const [name, shell] of SHELLS) {
  describe(`the tcpdump watchdog under ${name}`, () => {
    test('the stop line stops tcpdump at once', async () => {
      const w = await wrapped(shell, join(dir, `hb-stop-${name}`));
      w.child.stdin?.write('\n');
      await sleep(300);
      assert.ok(alive(w.pid), 'runs while kept alive');
      w.child.stdin?.write(STOP_LINE);
      assert.ok(await gone(w.child, w.exited, 3000), 'tcpdump still runs after the stop line');
      assert.ok(
        await eventually(() => processesNaming(`hb-stop-${name}`).length === 0),
        'a watchdog process is left',
      );
    });

    test('the end of stdin (the connection closed) stops tcpdump and removes the upload', async () => {
      const upload = mkdtempSync('/tmp/.kubedump-');
      const privateDir = `/tmp/.kubedump-${Math.random().toString(16).slice(2).padEnd(16, '0').slice(0, 16)}`;
      renameSync(upload, privateDir);
      try {
        const w = await wrapped(shell, `${privateDir}/heartbeat-1`);
        await sleep(300);
        assert.ok(existsSync(`${privateDir}/heartbeat-1`));
        w.child.stdin?.end();
        assert.ok(await gone(w.child, w.exited, 3000), 'tcpdump still runs after stdin ended');
        assert.ok(
          await eventually(() => !existsSync(privateDir)),
          'the private upload directory is left',
        );
      } finally {
        rmSync(privateDir, { recursive: true, force: true });
      }
    });

    test(`silence for ${WATCHDOG_TIMEOUT_S} s stops tcpdump; keepalives keep it running`, async () => {
      const silent = await wrapped(shell, join(dir, `hb-silent-${name}`));
      const kept = await wrapped(shell, join(dir, `hb-kept-${name}`));
      const beat = setInterval(() => kept.child.stdin?.write('\n'), 1000);
      try {
        assert.ok(
          await gone(silent.child, silent.exited, (WATCHDOG_TIMEOUT_S + 2) * 2000),
          'a silent client did not stop tcpdump',
        );
        assert.ok(alive(kept.pid), 'a client that beats lost its tcpdump');
        // Outside a private upload directory the heartbeat is a helper's: it says "end".
        assert.equal(readFileSync(join(dir, `hb-silent-${name}`), 'utf8'), 'end\n');
      } finally {
        clearInterval(beat);
        kept.child.stdin?.write(STOP_LINE);
        assert.ok(await gone(kept.child, kept.exited, 3000));
      }
    });

    test('a PID that is no longer our tcpdump is never killed', async () => {
      // The wrapper's shell runs `sleep` instead of tcpdump: its comm is not ours.
      const [, ...rest] = withWatchdog(['sleep', '30'], join(dir, `hb-foreign-${name}`));
      const child = spawn(shell[0] as string, [...shell.slice(1), ...rest], {
        stdio: ['pipe', 'ignore', 'ignore'],
      });
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      await sleep(300);
      child.stdin?.write(STOP_LINE);
      assert.equal(await gone(child, exited, 1500), false, 'a foreign process was killed');
    });
  });

  describe(`the helper's main process under ${name}`, () => {
    test('ends once the heartbeat stops changing, lives while it changes', async () => {
      const quiet = join(dir, `helper-quiet-${name}`);
      const beaten = join(dir, `helper-beaten-${name}`);
      const start = (file: string) => {
        const child = spawn(
          shell[0] as string,
          [...shell.slice(1), '-c', HELPER_MAIN, 'sh', file, '5'],
          {
            stdio: 'ignore',
          },
        );
        return { child, exited: new Promise<void>((r) => child.once('exit', () => r())) };
      };
      const a = start(quiet);
      const b = start(beaten);
      let n = 0;
      const beat = setInterval(() => writeFileSync(beaten, `${++n}\n`), 1000);
      try {
        assert.ok(await gone(a.child, a.exited, 25_000), 'the idle helper did not end');
        assert.equal(b.child.exitCode, null, 'a helper whose capture beats ended');
      } finally {
        clearInterval(beat);
        b.child.kill('SIGKILL');
      }
    });
  });

  describe(`the helper's main process under ${name}, after its capture`, () => {
    test('ends within one poll once the capture wrote "end" into its heartbeat', async () => {
      const file = join(dir, `helper-removed-${name}`);
      writeFileSync(file, '1\n');
      const child = spawn(
        shell[0] as string,
        [...shell.slice(1), '-c', HELPER_MAIN, 'sh', file, '600'],
        {
          stdio: 'ignore',
        },
      );
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      await sleep(6000); // one poll has seen the heartbeat
      assert.equal(child.exitCode, null, 'it ended while its capture ran');
      writeFileSync(file, 'end\n');
      // One 5 s poll, with slack for a busy machine; the idle limit is 600 s.
      assert.ok(await gone(child, exited, 15_000), 'it waits out its idle limit instead');
    });

    test('kubedump writes that same "end" itself when its capture failed before tcpdump ran', () => {
      const file = join(dir, `helper-failed-${name}`);
      writeFileSync(file, '3\n');
      const [, ...rest] = endHelperArgv(file);
      const out = spawnSync(shell[0] as string, [...shell.slice(1), ...rest]);
      assert.equal(out.status, 0, out.stderr.toString());
      assert.equal(readFileSync(file, 'utf8'), 'end\n');
    });
  });

  describe(`the upload under ${name}`, () => {
    const content = Buffer.from('#!/bin/sh\necho uploaded\n');
    const newDir = () => mkdtempSync(join(dir, 'up-'));

    for (const tar of [true, false]) {
      test(`${tar ? 'a tar archive' : 'a raw file'} becomes an executable file`, async () => {
        const d = newDir();
        const payload = tar ? await tarOf('x', content) : content;
        const [, ...rest] = extractArgv(payload.length, d, 'x', tar);
        const out = spawnSync(shell[0] as string, [...shell.slice(1), ...rest], { input: payload });
        assert.equal(out.status, 0, out.stderr.toString());
        assert.equal(spawnSync(join(d, 'x')).stdout.toString(), 'uploaded\n');
        assert.deepEqual(readdirSync(d), ['x'], 'nothing else is left');
      });
    }

    test('an upload cut off midway removes itself and its directory', async () => {
      const d = newDir();
      const [, ...rest] = extractArgv(1000, d, 'x', false);
      const child = spawn(shell[0] as string, [...shell.slice(1), ...rest], {
        stdio: ['pipe', 'ignore', 'ignore'],
      });
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.stdin?.write(Buffer.alloc(100)); // and then nothing, the stream still open
      // The stall is seen within one 2 s poll of the limit; the rest is slack
      // for a machine busy starting a cluster (this asks "does it end", not "how fast").
      const budget = (UPLOAD_STALL_S + 2) * 2000;
      assert.ok(await gone(child, exited, budget), `the upload still waits after ${budget} ms`);
      assert.equal(child.exitCode === 0, false);
      // Removed before the upload ends, not beside it: nothing races the removal.
      assert.ok(!existsSync(d), 'the partial upload is left');
    });
  });

  describe(`the kill by PID under ${name}`, () => {
    const kill = (pid: number) => {
      const [, ...rest] = killArgv(pid);
      return spawnSync(shell[0] as string, [...shell.slice(1), ...rest], { timeout: 5000 });
    };

    test('kills our tcpdump, and nothing else', async () => {
      const ours = spawn(FAKE_TCPDUMP, [], { stdio: 'ignore' });
      const foreign = spawn('sleep', ['30'], { stdio: 'ignore' });
      await sleep(100);
      try {
        assert.equal(kill(foreign.pid as number).status, 0);
        assert.ok(alive(foreign.pid as number), 'a foreign process was killed');
        assert.equal(kill(ours.pid as number).status, 0);
        assert.ok(await eventually(() => !alive(ours.pid as number)), 'our tcpdump lives on');
        assert.equal(kill(ours.pid as number).status, 0, 'a PID that is gone is no error');
      } finally {
        ours.kill('SIGKILL');
        foreign.kill('SIGKILL');
      }
    });
  });

  describe(`the runtime survey under ${name}`, () => {
    test('lists the sockets and clients that exist under the root, the first path of each', () => {
      const root = mkdtempSync(join(dir, 'root-'));
      for (const d of ['/run/containerd', '/usr/bin', '/usr/local/bin']) {
        mkdirSync(join(root, d), { recursive: true });
      }
      const server = createServer().listen(join(root, '/run/containerd/containerd.sock'));
      try {
        for (const [d, tool] of [
          ['/usr/local/bin', 'ctr'],
          ['/usr/bin', 'ctr'],
          ['/usr/bin', 'crictl'],
        ] as const) {
          writeFileSync(join(root, d, tool), '');
          chmodSync(join(root, d, tool), 0o755);
        }
        writeFileSync(join(root, '/usr/bin/docker'), ''); // not executable
        const [, ...rest] = surveyArgv(
          root,
          ['/run/containerd/containerd.sock', '/run/crio/crio.sock'],
          ['ctr', 'crictl', 'docker'],
        );
        const out = spawnSync(shell[0] as string, [...shell.slice(1), ...rest]);
        assert.equal(out.status, 0, out.stderr.toString());
        const found = parseSurvey(out.stdout.toString());
        assert.deepEqual(found.sockets, ['/run/containerd/containerd.sock']);
        assert.deepEqual(
          [...found.tools],
          [
            ['ctr', '/usr/local/bin/ctr'],
            ['crictl', '/usr/bin/crictl'],
          ],
        );
      } finally {
        server.close();
      }
    });
  });

  describe(`the upload probe under ${name}`, () => {
    const probe = (tag: string, keep: boolean) => {
      const [, ...rest] = probeArgv(tag, keep);
      const out = spawnSync(shell[0] as string, [...shell.slice(1), ...rest]);
      return { stdout: out.stdout.toString(), parsed: parseProbe(out.stdout.toString()) };
    };

    test('makes a new private directory (0700, ours) under a random name', () => {
      const tag = Math.random().toString(16).slice(2).padEnd(16, '0').slice(0, 16);
      const { parsed, stdout } = probe(tag, false);
      assert.ok(parsed, stdout);
      assert.equal(parsed.state, 'absent');
      assert.equal(parsed.dir, `/tmp/.kubedump-${tag}`);
      // It says what the container look says: user, capabilities, where uploads go.
      const status = readFileSync('/proc/self/status', 'utf8');
      assert.equal(parsed.uid, process.getuid?.());
      assert.equal(parsed.capEff, BigInt(`0x${/^CapEff:\s*(\S+)/m.exec(status)?.[1]}`));
      assert.deepEqual(lookOfProbe(parsed), {
        uid: parsed.uid,
        capEff: parsed.capEff,
        arch: process.arch === 'x64' ? 'x86_64' : 'aarch64',
        hasTar: parsed.hasTar,
        uploadDir: '/tmp',
      });
      try {
        const st = statSync(parsed.dir);
        assert.ok(st.isDirectory());
        assert.equal(st.mode & 0o777, 0o700);
        assert.equal(st.uid, process.getuid?.());
        // A second probe with the same tag must not take over what exists.
        assert.notEqual(probe(tag, false).parsed?.dir, parsed.dir);
      } finally {
        rmSync(`/tmp/.kubedump-${tag}`, { recursive: true, force: true });
      }
    });

    test('a kept directory is trusted only when it is ours and 0700', () => {
      const keep = `/tmp/.kubedump-keep-${process.getuid?.()}`;
      rmSync(keep, { recursive: true, force: true });
      try {
        mkdirSync(keep, { mode: 0o777 });
        chmodSync(keep, 0o777);
        const { parsed } = probe('0123456789abcdef', true);
        assert.ok(parsed);
        assert.notEqual(parsed.dir, keep, 'a world-writable kept directory was trusted');
        rmSync(parsed.dir, { recursive: true, force: true });
        chmodSync(keep, 0o700);
        assert.equal(probe('0123456789abcdef', true).parsed?.dir, keep);
      } finally {
        rmSync(keep, { recursive: true, force: true });
        rmSync('/tmp/.kubedump-0123456789abcdef', { recursive: true, force: true });
      }
    });
  });
  describe(`the one-exec start under ${name}`, () => {
    const tagOf = () => Math.random().toString(16).slice(2).padEnd(16, '0').slice(0, 16);
    const arch = process.arch === 'x64' ? 'amd64' : 'arm64';
    const real = tcpdumpManifest().binaries[arch];
    const realName = binaryName(real.sha256);

    /** Runs the script with `argv`; resolves once the probe's answer is on stderr. */
    async function begin(
      tag: string,
      keep: boolean,
      argv: string[],
      runKeptAtOnce = false,
      prefix: string[] = [],
    ) {
      const [, ...rest] = installAndRunArgv(tag, keep, 'heartbeat-1', argv, { runKeptAtOnce });
      const [command, ...args] = [...prefix, ...shell, ...rest];
      const child = spawn(command as string, args, {
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let stderr = '';
      let stdout = '';
      child.stderr?.on('data', (c) => (stderr += c));
      child.stdout?.on('data', (c) => (stdout += c));
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      await eventually(() => stderr.includes('\n'));
      const probe = parseProbeLine(stderr.split('\n')[0] ?? '');
      assert.ok(probe, `no probe line: ${stderr}`);
      return { child, probe, exited, out: () => stdout, err: () => stderr };
    }

    test('absent: the upload arrives, runs with its arguments, and the stop line ends it', async () => {
      const fake = Buffer.from('#!/bin/sh\necho "ran $*"\nwhile :; do sleep 1; done\n');
      {
        const run = await begin(tagOf(), false, [BINARY_TOKEN, '-i', 'any']);
        const dir = run.probe.dir;
        try {
          assert.equal(run.probe.state, 'absent');
          const name = 'kubedump-tcpdump-000000000000';
          // As kubedump sends it: a tar archive when the probe found tar.
          const payload = run.probe.hasTar ? await tarOf(name, fake) : fake;
          run.child.stdin?.write(putAnswer(payload.length, name));
          run.child.stdin?.write(payload);
          await eventually(() => run.out().includes('ran'));
          assert.equal(run.out(), `ran -i any\n`);
          assert.match(run.err(), /kubedump-pid \d+/);
          assert.ok(existsSync(`${dir}/heartbeat-1`), 'the watchdog counts into the heartbeat');
          run.child.stdin?.write(STOP_LINE);
          assert.ok(
            await gone(run.child, run.exited.then(), 3000),
            'still runs after the stop line',
          );
          assert.ok(
            await eventually(() => !existsSync(dir)),
            'the private directory is left after tcpdump ended',
          );
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      }
    });

    test("a run's own directory is removed when the answer is to quit or stdin ends", async () => {
      for (const end of ['quit', 'eof']) {
        const run = await begin(tagOf(), false, [BINARY_TOKEN]);
        assert.equal(run.probe.state, 'absent');
        assert.ok(existsSync(run.probe.dir));
        if (end === 'quit') run.child.stdin?.write(QUIT_ANSWER);
        else run.child.stdin?.end();
        assert.equal(await run.exited, 0, run.err());
        assert.ok(!existsSync(run.probe.dir), `${end}: the private directory is left`);
        assert.equal(run.out(), '', 'nothing ran');
      }
    });

    test('present: the kept copy runs at once; a wrong name or a bad size runs nothing', async () => {
      const keep = `/tmp/.kubedump-keep-${process.getuid?.()}`;
      rmSync(keep, { recursive: true, force: true });
      mkdirSync(keep, { mode: 0o700 });
      try {
        writeFileSync(`${keep}/${realName}`, tcpdumpBinary(arch), { mode: 0o700 });
        const run = await begin(tagOf(), true, [BINARY_TOKEN, '--version']);
        assert.equal(run.probe.state, 'present');
        assert.equal(run.probe.dir, keep);
        run.child.stdin?.write(runAnswer(realName));
        assert.equal(await run.exited, 0, run.err());
        assert.match(run.out(), /^kubedump-tcpdump-\w+ version 4\./);
        assert.ok(existsSync(`${keep}/${realName}`), 'the kept copy stays');
        // Asked to, it runs the kept copy with no answer at all.
        const atOnce = await begin(tagOf(), true, [BINARY_TOKEN, '--version'], true);
        assert.equal(atOnce.probe.state, 'present');
        assert.equal(await atOnce.exited, 0, atOnce.err());
        assert.match(atOnce.out(), /^kubedump-tcpdump-\w+ version 4\./);
        assert.equal(runsKeptAtOnce(atOnce.probe), true);
        // Not in a container that cannot capture (root without CAP_NET_RAW,
        // as Pod Security's restricted profile leaves it): the answer decides.
        const unable = await begin(tagOf(), true, [BINARY_TOKEN, '--version'], true, [
          'setpriv',
          '--bounding-set=-net_raw',
          '--inh-caps=-net_raw',
          '--',
        ]);
        assert.equal(unable.probe.state, 'present');
        assert.equal(canCapturePackets(lookOfProbe(unable.probe)), false, unable.err());
        assert.equal(runsKeptAtOnce(unable.probe), false);
        unable.child.stdin?.write(QUIT_ANSWER);
        assert.equal(await unable.exited, 0, unable.err());
        assert.equal(unable.out(), '', 'the kept copy ran without an answer');
        // A copy that is not there is still waited for.
        rmSync(`${keep}/${realName}`);
        const absent = await begin(tagOf(), true, [BINARY_TOKEN, '--version'], true);
        assert.equal(absent.probe.state, 'absent');
        absent.child.stdin?.write(QUIT_ANSWER);
        assert.equal(await absent.exited, 0, absent.err());
        assert.equal(absent.out(), '', 'nothing ran');
        writeFileSync(`${keep}/${realName}`, tcpdumpBinary(arch), { mode: 0o700 });
        for (const answer of [
          runAnswer('kubedump-tcpdump-000000000000'),
          'put 12x kubedump-tcpdump-0\n',
          'run - ../x\n',
        ]) {
          const refused = await begin(tagOf(), true, [BINARY_TOKEN, '--version']);
          refused.child.stdin?.write(answer);
          assert.equal(await refused.exited, 0, refused.err());
          assert.equal(refused.out(), '', `${answer.trim()}: something ran`);
        }
        assert.ok(existsSync(`${keep}/${realName}`), 'the kept copy stays');
      } finally {
        rmSync(keep, { recursive: true, force: true });
      }
    });
  });
}

test('only directories the probe makes may be used or removed', () => {
  assert.equal(isPrivateDir('/tmp/.kubedump-0123456789abcdef'), true);
  assert.equal(isPrivateDir('/.kubedump-0123456789abcdef'), true);
  assert.equal(isPrivateDir('/tmp/.kubedump-keep-1000'), true);
  assert.equal(isPrivateDir('/tmp'), false);
  assert.equal(isPrivateDir('/etc/.kubedump-0123456789abcdef'), false);
  assert.equal(isPrivateDir('/tmp/.kubedump-0123456789abcdef/..'), false);
  assert.equal(isPrivateDir('/tmp/x/.kubedump-0123456789abcdef'), false);
  assert.equal(parseProbe('absent /etc ok x86_64 yes'), undefined);
  assert.equal(parseProbe('absent /etc x86_64 yes'), undefined);
});

test('dash and busybox are here to run the scripts under', () => {
  assert.deepEqual(
    SHELLS.map(([n]) => n),
    ['dash', 'busybox sh'],
    'install dash and busybox (scripts/setup does)',
  );
});
