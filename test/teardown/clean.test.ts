// Run last by the project's test runner: the real cluster comes down without
// leaving anything behind, and can be brought up and down again.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import type { RunResult } from '../support/real-cluster.ts';
import { kubectl, localK8s, realCluster, runFile } from '../support/real-cluster.ts';

function ok(r: RunResult, what: string): void {
  assert.equal(r.code, 0, `${what} failed (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
}

async function assertClean(when: string): Promise<void> {
  const check = await localK8s('check-clean');
  assert.equal(check.code, 0, `leftovers ${when}:\n${check.stdout}${check.stderr}`);
  assert.match(check.stdout, /^clean$/m);
  const status = await localK8s('status');
  assert.equal(status.code, 3, `status ${when}: ${status.stdout}`);
}

test('down leaves nothing behind; up and down work again', { timeout: 900_000 }, async () => {
  const cluster = realCluster();

  ok(await localK8s('down'), 'down');
  await assertClean('after the first down');
  assert.equal(existsSync(cluster.kubeconfig), false, 'the kubeconfig outlived down');

  // down is idempotent.
  ok(await localK8s('down'), 'second down');
  await assertClean('after a down of a down cluster');

  ok(await localK8s('up'), 'up after down');
  const status = await localK8s('status');
  assert.equal(status.code, 0, status.stdout);
  const pods = await kubectl(['get', 'pods', '-n', 'demo', '--no-headers'], {
    kubeconfig: cluster.kubeconfig,
  });
  ok(pods, 'get pods after the second up');
  assert.equal(pods.stdout.match(/\sRunning\s/g)?.length, 5, pods.stdout);

  ok(await localK8s('down'), 'final down');
  await assertClean('after the final down');
});

// On a new machine /run/netns is no mount point yet. `ip netns add` (the
// emulated cluster's pods use it) then bind-mounts /run/netns over itself and
// hides every CNI netns mounted there before, out of reach of `down`.

/** Makes /run/netns a plain directory again, as on a machine that never ran `ip netns add`. */
async function plainNetnsDir(): Promise<void> {
  for (let i = 0; i < 10; i++) {
    if ((await runFile('mountpoint', ['-q', '/run/netns'])).code !== 0) return;
    ok(
      await runFile('umount', ['/run/netns']),
      'umount /run/netns (is a network namespace still mounted there?)',
    );
  }
  assert.fail('/run/netns is still a mount point after 10 umounts');
}

async function ipNetns(...args: string[]): Promise<RunResult> {
  return runFile('ip', ['netns', ...args]);
}

test(
  'on a new machine, up then ip netns add then down leaves no CNI netns',
  { timeout: 900_000 },
  async () => {
    const name = `kdtest-${process.pid}`;
    ok(await localK8s('down'), 'down');
    await plainNetnsDir();
    try {
      ok(await localK8s('up'), 'up from a plain /run/netns');
      ok(await ipNetns('add', name), 'ip netns add');
      ok(await localK8s('down'), 'down');
      await assertClean('after up, ip netns add, down');
    } finally {
      await ipNetns('del', name);
      await localK8s('down');
    }
  },
);

test(
  'down cleans CNI netns hidden under a /run/netns layer and keeps other namespaces',
  { timeout: 300_000 },
  async () => {
    const name = `kdtest-${process.pid}`;
    const cni = '/run/netns/cni-kdtest';
    ok(await localK8s('down'), 'down');
    await plainNetnsDir();
    try {
      // What an older up left: a CNI netns mounted on the plain directory, then hidden.
      ok(await runFile('mkdir', ['-p', '/run/netns']), 'mkdir');
      ok(await runFile('touch', [cni]), 'touch');
      ok(await runFile('mount', ['--bind', '/proc/self/ns/net', cni]), 'mount the CNI netns');
      ok(await ipNetns('add', name), 'ip netns add');
      const before = await localK8s('check-clean');
      assert.equal(before.code, 1, `check-clean should see the CNI netns:\n${before.stdout}`);
      assert.match(before.stdout, /mount: \/run\/netns\/cni-kdtest/);

      ok(await localK8s('down'), 'down of the hidden mounts');
      await assertClean('after down of the hidden mounts');
      const exec = await ipNetns('exec', name, 'true');
      assert.equal(exec.code, 0, `the other netns ${name} did not survive down: ${exec.stderr}`);
    } finally {
      await ipNetns('del', name);
      await runFile('umount', [cni]);
      await runFile('rm', ['-f', cni]);
    }
  },
);
