// Run after every test that uses a cluster and before the real cluster goes
// down: one census of what kubedump could leave behind, in the real cluster,
// on this machine, and from any emulator. It prints the counts and fails on any.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertCensusEmpty, census, censusLine } from '../support/leftovers.ts';
import { realCluster } from '../support/real-cluster.ts';

test('nothing is left: helper pods, remote tcpdumps, uploaded files, ephemeral containers, emulators', async () => {
  const c = await census(realCluster().kubeconfig, { emulator: true });
  console.log(`${censusLine(c)}; emulator leftovers ${c.emulator.length}`);
  console.log(`# census searched pods: ${c.podsSearched.join(' ')}`);
  // A census that looked nowhere would find nothing: the demo pods with a shell were searched.
  assert.ok(c.podsSearched.includes('web'), `pod web was not searched: ${c.podsSearched}`);
  assertCensusEmpty(c);
});
