import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { V1Pod } from '@kubernetes/client-node';
import { KubedumpError } from '../../src/errors.ts';
import { pickContainer, requireRunning } from '../../src/kube/pods.ts';
import { podsForInterfaces } from '../../src/wireshark/discovery.ts';

function pod(annotations: Record<string, string> = {}, running = true): V1Pod {
  return {
    metadata: { namespace: 'demo', name: 'web', annotations },
    spec: { nodeName: 'n1', containers: [{ name: 'app' }, { name: 'sidecar' }] },
    status: {
      phase: running ? 'Running' : 'Pending',
      containerStatuses: [
        {
          name: 'app',
          containerID: 'containerd://abc',
          image: 'i',
          imageID: '',
          ready: running,
          restartCount: 0,
          state: running ? { running: {} } : { waiting: { reason: 'ContainerCreating' } },
        },
        {
          name: 'sidecar',
          containerID: 'containerd://def',
          image: 'i',
          imageID: '',
          ready: true,
          restartCount: 0,
          state: { running: {} },
        },
      ],
    },
  };
}

test('the container is picked as kubectl picks it', () => {
  assert.equal(pickContainer(pod()).container, 'app');
  assert.equal(
    pickContainer(pod({ 'kubectl.kubernetes.io/default-container': 'sidecar' })).container,
    'sidecar',
  );
  const chosen = pickContainer(pod(), 'sidecar');
  assert.equal(chosen.containerId, 'containerd://def');
  assert.equal(chosen.nodeName, 'n1');
  assert.throws(
    () => pickContainer(pod(), 'nope'),
    (e: unknown) =>
      e instanceof KubedumpError &&
      /container "nope" not found in pod demo\/web/.test(e.line) &&
      /app, sidecar/.test(e.line),
  );
});

test('a container that does not run is a clear line', () => {
  assert.throws(
    () => requireRunning(pickContainer(pod({}, false))),
    /not running \(phase Pending, ContainerCreating\)/,
  );
  requireRunning(pickContainer(pod()));
});

test('interfaces are sorted by namespace and name, and capped', () => {
  const pods = ['b/z', 'a/y', 'b/a', 'a/x'].map((s) => {
    const [namespace, name] = s.split('/') as [string, string];
    return { namespace, name, node: '' };
  });
  const listed = podsForInterfaces({ time: 0, context: 'c', contexts: [], pods }, 3);
  assert.deepEqual(
    listed.map((p) => `${p.namespace}/${p.name}`),
    ['a/x', 'a/y', 'b/a'],
  );
  assert.deepEqual(podsForInterfaces(undefined, 10), []);
});
