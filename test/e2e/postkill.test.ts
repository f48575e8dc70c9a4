import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { BUILT, run } from '../support/kubedump.ts';
import { kubectl, realCluster } from '../support/real-cluster.ts';
import { extcapIntoFifo, readLog, until } from '../support/reliability.ts';
import { wiresharkHome } from '../support/worlds.ts';

// Wireshark on Windows stops an extcap with TerminateProcess: no signal, so
// none of kubedump's own cleanup runs. It then may run the extcap again with
// --extcap-cleanup-postkill. On the real cluster: a privileged extcap capture
// is SIGKILLed (the same: no cleanup), the postkill call deletes its helper
// pod at once, and a live capture of the same interface keeps its helper.

const IFACE = 'kubedump.demo.web';

describe('--extcap-cleanup-postkill on the real cluster', () => {
  const cluster = realCluster();
  const home = wiresharkHome(cluster.kubeconfig);
  const records = join(home.dir, 'cache', 'kubedump', 'running');
  const k = (args: string[]) => kubectl(args, { kubeconfig: cluster.kubeconfig });
  const started: { child: { kill(s: NodeJS.Signals): boolean }; exited: Promise<unknown> }[] = [];
  // A failed assertion must not leave a capture behind for the next file's
  // leftover checks: stop each one as Wireshark would, and kill what hangs.
  after(async () => {
    for (const s of started) s.child.kill('SIGTERM');
    await Promise.all(
      started.map((s) =>
        Promise.race([s.exited, new Promise((r) => setTimeout(r, 15_000))]).then(() =>
          s.child.kill('SIGKILL'),
        ),
      ),
    );
  });

  async function privilegedExtcap(name: string) {
    const log = join(home.dir, `${name}.log`);
    const args = ['--extcap-interface', IFACE, '--mode', 'privileged'];
    const capture = extcapIntoFifo(
      home.dir,
      [...args, '--log-level', 'debug', '--log-file', log],
      home.env,
    );
    started.push(capture);
    await until(
      `${name}: tcpdump to listen`,
      () => readLog(log).some((e) => /listening on/.test(String(e.line ?? ''))),
      45_000,
    );
    const helper = String(readLog(log).find((e) => e.message === 'helper pod created')?.pod);
    assert.match(helper, /^demo\/kubedump-web-/);
    return { capture, helper: helper.replace(/^demo\//, ''), args };
  }

  // Kept means the pod is there and nobody asked to delete it. Its phase may
  // still read Pending while tcpdump already runs in it: the kubelet reports a
  // started container at its next status sync, up to a second later.
  const state = async (pod: string) => {
    const got = await k([
      ...['get', 'pod', '-n', 'demo', pod],
      ...['-o', 'jsonpath={.metadata.deletionTimestamp}'],
    ]);
    if (got.code !== 0) return 'absent';
    return got.stdout === '' ? 'kept' : 'deleting';
  };

  test('the killed capture’s helper is deleted at once; a live capture of the same interface keeps its own', async () => {
    const killed = await privilegedExtcap('killed');
    const live = await privilegedExtcap('live');
    assert.equal(readdirSync(records).length, 2, 'each running capture keeps a record');

    killed.capture.child.kill('SIGKILL');
    await killed.capture.exited;
    assert.equal(await state(killed.helper), 'kept', 'nothing removed the helper yet');

    const t0 = performance.now();
    const ran = await run(
      [BUILT, '--extcap-cleanup-postkill', ...killed.args, '--fifo', join(home.dir, 'gone')],
      { env: home.env, timeoutMs: 30_000 },
    );
    const ms = performance.now() - t0;
    console.log(`# postkill call: ${Math.round(ms)} ms`);
    assert.equal(ran.code, 0, ran.stderr);
    assert.equal(ran.stderr, '', 'stderr is for errors only');
    assert.equal(await state(killed.helper), 'absent', 'the killed capture’s helper is gone');
    assert.equal(await state(live.helper), 'kept', 'the live capture’s helper is kept');
    assert.equal(
      live.capture.child.exitCode,
      null,
      `the live capture ended: ${live.capture.stderr()}`,
    );
    assert.equal(readdirSync(records).length, 1, 'only the live capture’s record is left');

    live.capture.child.kill('SIGTERM');
    const end = await live.capture.exited;
    assert.equal(end.code, 0, live.capture.stderr());
    assert.deepEqual(readdirSync(records), [], 'a capture that ended by itself leaves no record');
    assert.equal(await state(live.helper), 'absent');
  });

  test('with nothing recorded the call does nothing and says nothing', async () => {
    const ran = await run([BUILT, '--extcap-cleanup-postkill', '--extcap-interface', IFACE], {
      env: home.env,
      timeoutMs: 30_000,
    });
    assert.equal(ran.code, 0, ran.stderr);
    assert.equal(ran.stdout + ran.stderr, '');
    assert.equal(existsSync(records) ? readdirSync(records).length : 0, 0);
  });
});
