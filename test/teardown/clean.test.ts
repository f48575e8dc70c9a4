// Run last by the project's test runner: the real cluster comes down without
// leaving anything behind, and can be brought up and down again.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import type { RunResult } from '../support/real-cluster.ts';
import { kubectl, localK8s, realCluster } from '../support/real-cluster.ts';

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
  assert.equal(pods.stdout.match(/\sRunning\s/g)?.length, 4, pods.stdout);

  ok(await localK8s('down'), 'final down');
  await assertClean('after the final down');
});
