import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ROOT, run } from '../support/kubedump.ts';
import { realCluster } from '../support/real-cluster.ts';
import {
  remotePids,
  sleep,
  tcpdumpRuns,
  until,
  wholeRecordsLength,
} from '../support/reliability.ts';

// The Windows executable under Wine, against the real local cluster: the
// extcap calls Wireshark makes, then a capture into a Windows named pipe that
// a Windows process reads (as dumpcap does), ended the way Wireshark ends an
// extcap on Windows: abruptly (TerminateProcess), with no signal to catch.

const EXE = join(ROOT, 'build', 'dist', 'kubedump-win-x64.exe');
// The same Node the executable is built on reads the pipe.
const WINDOWS_NODE = '/var/cache/kubedump/node/22.23.3-win-x64/node.exe';
const PREFIX = '/var/cache/kubedump/wine';

/** A Linux path as Windows programs under Wine see it (drive Z: is /). */
function windowsPath(path: string): string {
  return `Z:${path.replaceAll('/', '\\')}`;
}

function wineEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  // No Mono or Gecko: nothing here needs them, and their installers would ask.
  return {
    ...process.env,
    WINEPREFIX: PREFIX,
    WINEDEBUG: '-all',
    WINEDLLOVERRIDES: 'mscoree=;mshtml=',
    ...extra,
  };
}

/** A file for a Windows program's stdout or stderr: Wine's into a Linux pipe fails (EBADF). */
function outputFile(dir: string, name: string): { path: string; fd: number } {
  const path = join(dir, `${name}-${Math.random().toString(16).slice(2)}`);
  return { path, fd: openSync(path, 'w') };
}

async function wine(
  dir: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const out = outputFile(dir, 'stdout');
  const err = outputFile(dir, 'stderr');
  const child = spawn('wine', args, { env, stdio: ['ignore', out.fd, err.fd] });
  closeSync(out.fd);
  closeSync(err.fd);
  const code = await new Promise<number | null>((r) => child.on('close', r));
  return { code, stdout: readFileSync(out.path, 'utf8'), stderr: readFileSync(err.path, 'utf8') };
}

describe('the Windows executable under Wine', () => {
  let dir: string;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    assert.ok(existsSync(EXE), `no ${EXE}: run scripts/build --all first`);
    dir = mkdtempSync(join(tmpdir(), 'kubedump-wine-'));
    if (!existsSync(join(PREFIX, 'system.reg'))) {
      mkdirSync(PREFIX, { recursive: true });
      const boot = await run(['wine', 'wineboot', '-i'], { env: wineEnv(), timeoutMs: 180_000 });
      assert.equal(boot.code, 0, boot.stderr);
    }
    // Node refuses to start on what Wine reports by default (Windows 7).
    const version = await run(
      ['wine', 'reg', 'add', 'HKCU\\Software\\Wine', '/v', 'Version', '/d', 'win10', '/f'],
      { env: wineEnv(), timeoutMs: 60_000 },
    );
    assert.equal(version.code, 0, version.stderr);
    env = wineEnv({ KUBECONFIG: windowsPath(realCluster().kubeconfig) });
  });

  after(async () => {
    // wineserver outlives the programs by a few seconds: end it now.
    await run(['wineserver', '-k'], { env: wineEnv(), timeoutMs: 30_000 });
    rmSync(dir, { recursive: true, force: true });
  });

  test('--extcap-interfaces lists the pods of the real cluster; --extcap-config answers', async () => {
    // The first call may answer before the pod list (its deadline is 1 s,
    // and a cold start under Wine is slower); a background refresh fills the
    // cache for the next one, as Wireshark's next start would see.
    let listed = { code: null as number | null, stdout: '', stderr: '' };
    await until(
      'the pods in --extcap-interfaces',
      async () => {
        listed = await wine(dir, [EXE, '--extcap-interfaces', '--extcap-version=4.0'], env);
        assert.equal(listed.code, 0, listed.stderr);
        assert.match(listed.stdout, /^extcap \{version=\d+\.\d+\.\d+\}/m);
        return /^interface \{value=kubedump\.demo\.web\}/m.test(listed.stdout);
      },
      60_000,
    );
    const started = performance.now();
    const config = await wine(
      dir,
      [EXE, '--extcap-config', '--extcap-interface', 'kubedump.demo.web'],
      env,
    );
    const configMs = performance.now() - started;
    assert.equal(config.code, 0, config.stderr);
    assert.match(config.stdout, /^arg \{number=\d+\}\{call=--pod\}/m);
    process.stdout.write(`# wine --extcap-config: ${Math.round(configMs)} ms\n`);
    const reload = await wine(
      dir,
      [
        EXE,
        '--extcap-config',
        '--extcap-interface',
        'kubedump',
        '--extcap-reload-option',
        'pod',
        '--namespace',
        'demo',
      ],
      env,
    );
    assert.equal(reload.code, 0, reload.stderr);
    assert.match(reload.stdout, /^value \{arg=\d+\}\{value=web\}/m);
  });

  test('install puts kubedump.exe into %APPDATA%\\Wireshark\\extcap; uninstall removes it', async () => {
    const installed = join(
      PREFIX,
      'drive_c/users',
      userInfo().username,
      'AppData/Roaming/Wireshark/extcap/kubedump.exe',
    );
    const install = await wine(dir, [EXE, 'install'], env);
    assert.equal(install.code, 0, install.stderr);
    assert.match(
      install.stdout,
      /^installed C:\\users\\.+\\AppData\\Roaming\\Wireshark\\extcap\\kubedump\.exe$/m,
    );
    assert.equal(statSync(installed).size, statSync(EXE).size);
    const uninstall = await wine(dir, [EXE, 'uninstall'], env);
    assert.equal(uninstall.code, 0, uninstall.stderr);
    assert.equal(existsSync(installed), false);
  });

  test('captures into a named pipe; terminated abruptly, it leaves nothing running', async () => {
    const pipe = `\\\\.\\pipe\\kubedump-test-${process.pid}`;
    const received = join(dir, 'received.pcap');
    const log = join(dir, 'kubedump.log');
    const reader = join(dir, 'reader.js');
    // The Windows side creates the pipe and drains it into a file, like dumpcap.
    writeFileSync(
      reader,
      `const fs = require('fs');
const out = fs.createWriteStream(process.argv[3]);
const server = require('net').createServer((c) => { c.pipe(out); c.on('end', () => server.close()); });
server.listen(process.argv[2], () => fs.writeFileSync(process.argv[3] + '.ready', ''));`,
    );
    const children: ChildProcess[] = [];
    try {
      const readerChild = spawn(
        'wine',
        [WINDOWS_NODE, windowsPath(reader), pipe, windowsPath(received)],
        { env, stdio: 'ignore' },
      );
      children.push(readerChild);
      await until('the pipe reader to listen', () => existsSync(`${received}.ready`), 60_000);
      const captureErr = outputFile(dir, 'capture-stderr');
      const capture = spawn(
        'wine',
        [
          EXE,
          '--capture',
          '--extcap-interface',
          'kubedump.demo.web',
          '--fifo',
          pipe,
          '--log-level',
          'debug',
          '--log-file',
          windowsPath(log),
        ],
        { env, stdio: ['ignore', 'ignore', captureErr.fd] },
      );
      closeSync(captureErr.fd);
      children.push(capture);
      const stderr = () => readFileSync(captureErr.path, 'utf8');
      await until(
        'packets through the named pipe',
        () => existsSync(received) && statSync(received).size > 24 + 16,
        90_000,
      ).catch((error) => assert.fail(`${error.message}; stderr: ${stderr()}`));
      const data = readFileSync(received);
      assert.ok([0xa1b2c3d4, 0xa1b23c4d].includes(data.readUInt32LE(0)), 'pcap magic');
      assert.ok(wholeRecordsLength(data) > 24, 'at least one whole record');
      const pids = remotePids(log);
      assert.ok(pids.length > 0, 'the log names the remote tcpdump');
      // No signal on Windows: SIGKILL of the Wine process is TerminateProcess.
      capture.kill('SIGKILL');
      await new Promise((r) => capture.once('close', r));
      // The remote side must end by itself (the helper's and tcpdump's own watchdogs).
      await until('the remote tcpdump to end by itself', () => !pids.some(tcpdumpRuns), 120_000);
    } finally {
      for (const child of children) child.kill('SIGKILL');
      await sleep(100);
    }
  });
});
