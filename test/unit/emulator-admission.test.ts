// The emulator's Pod Security checks and ephemeral-container patches, without a server: what
// test/world/emulator.test.ts shows through kubectl, case by case.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ephemeralUpdate, patchPod } from '../emulator/ephemeral.ts';
import { enforced, violations } from '../emulator/podsecurity.ts';
import { ApiError } from '../emulator/status.ts';
import type { Namespace, Pod, PodSpec } from '../emulator/types.ts';

const spec = (over: Partial<PodSpec> = {}): PodSpec => ({
  containers: [{ name: 'c', image: 'busybox:1.36' }],
  ...over,
});

const pod = (over: Partial<PodSpec> = {}): Pod => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: {
    name: 'web',
    namespace: 'demo',
    uid: 'u',
    resourceVersion: '1',
    creationTimestamp: '',
  },
  spec: spec(over),
  status: { phase: 'Running' },
});

test('the level comes from the enforce label; unlabelled is privileged', () => {
  const ns = (labels: Record<string, string>) => ({ metadata: { labels } }) as unknown as Namespace;
  assert.deepEqual(enforced(undefined), { level: 'privileged', version: 'latest' });
  assert.deepEqual(enforced(ns({ 'pod-security.kubernetes.io/enforce': 'baseline' })), {
    level: 'baseline',
    version: 'latest',
  });
  assert.equal(
    enforced(
      ns({
        'pod-security.kubernetes.io/enforce': 'restricted',
        'pod-security.kubernetes.io/enforce-version': 'v1.31',
      }),
    ).version,
    'v1.31',
  );
});

test('baseline: a root container with the default capabilities passes, each breach is named', () => {
  assert.deepEqual(violations('baseline', spec()), []);
  assert.deepEqual(
    violations(
      'baseline',
      spec({ containers: [{ name: 'c', image: 'x', securityContext: { runAsUser: 0 } }] }),
    ),
    [],
  );
  assert.deepEqual(
    violations(
      'baseline',
      spec({
        hostPID: true,
        hostIPC: true,
        volumes: [
          { name: 'a', hostPath: { path: '/' } },
          { name: 'b', hostPath: { path: '/run' } },
        ],
        containers: [
          {
            name: 'x',
            image: 'i',
            ports: [{ containerPort: 80, hostPort: 80 }],
            securityContext: { privileged: true, capabilities: { add: ['NET_RAW', 'CHOWN'] } },
          },
          { name: 'y', image: 'i', securityContext: { privileged: true } },
        ],
        ephemeralContainers: [
          { name: 'e', image: 'i', securityContext: { capabilities: { add: ['NET_ADMIN'] } } },
        ],
      }),
    ),
    [
      'non-default capabilities (containers "x", "e" must not include "NET_ADMIN", "NET_RAW" in securityContext.capabilities.add)',
      'host namespaces (hostIPC=true, hostPID=true)',
      'hostPath volumes (volumes "a", "b")',
      'hostPort (container "x" uses hostPort 80)',
      'privileged (containers "x", "y" must not set securityContext.privileged=true)',
    ],
  );
});

test('restricted: a compliant non-root pod passes; a plain one fails four checks', () => {
  const ok = spec({
    securityContext: { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } },
    containers: [
      {
        name: 'c',
        image: 'i',
        securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } },
      },
    ],
  });
  assert.deepEqual(violations('restricted', ok), []);
  assert.deepEqual(
    violations('restricted', spec()).map((v) => v.split(' (')[0]),
    [
      'allowPrivilegeEscalation != false',
      'unrestricted capabilities',
      'runAsNonRoot != true',
      'seccompProfile',
    ],
  );
  assert.deepEqual(violations('privileged', spec({ hostPID: true })), []);
});

test('a strategic-merge patch appends by name; $setElementOrder is a directive, not a field', () => {
  const p = pod({ ephemeralContainers: [{ name: 'a', image: 'i' }] });
  const next = patchPod(p, 'application/strategic-merge-patch+json; charset=utf-8', {
    spec: {
      $setElementOrder: [{ name: 'a' }, { name: 'b' }],
      ephemeralContainers: [{ name: 'b', image: 'i' }],
      '$setElementOrder/ephemeralContainers': [{ name: 'a' }, { name: 'b' }],
    },
  });
  assert.deepEqual(
    next.spec.ephemeralContainers?.map((c) => c.name),
    ['a', 'b'],
  );
  assert.equal(p.spec.ephemeralContainers?.length, 1, 'the stored pod is not touched');
  assert.equal((next.spec as Record<string, unknown>).$setElementOrder, undefined);
});

test('merge patch replaces the list; JSON patch adds to it; other types are 415', () => {
  const p = pod({ ephemeralContainers: [{ name: 'a', image: 'i' }] });
  const merged = patchPod(p, 'application/merge-patch+json', {
    spec: { ephemeralContainers: [{ name: 'b', image: 'i' }] },
  });
  assert.deepEqual(
    merged.spec.ephemeralContainers?.map((c) => c.name),
    ['b'],
  );
  const json = patchPod(p, 'application/json-patch+json', [
    { op: 'add', path: '/spec/ephemeralContainers/-', value: { name: 'b', image: 'i' } },
  ]);
  assert.deepEqual(
    json.spec.ephemeralContainers?.map((c) => c.name),
    ['a', 'b'],
  );
  assert.throws(
    () => patchPod(p, 'application/json', {}),
    (e: unknown) => e instanceof ApiError && e.code === 415,
  );
});

test('ephemeral containers only grow, with defaults; breaches are one 422 naming each field', () => {
  const p = pod({
    ephemeralContainers: ephemeralUpdate(pod(), [{ name: 'a', image: 'busybox:1.36' }]),
  });
  assert.equal(p.spec.ephemeralContainers?.[0]?.terminationMessagePolicy, 'File');
  const grown = ephemeralUpdate(p, [
    { name: 'a', image: 'busybox:1.36' },
    { name: 'b', image: 'i' },
  ]);
  assert.deepEqual(
    grown.map((c) => c.name),
    ['a', 'b'],
  );
  const fail = (next: Parameters<typeof ephemeralUpdate>[1]) => {
    try {
      ephemeralUpdate(p, next);
    } catch (e) {
      assert.ok(e instanceof ApiError);
      assert.equal(e.code, 422);
      return e.status.message ?? '';
    }
    assert.fail('accepted');
  };
  assert.equal(
    fail([]),
    'Pod "web" is invalid: spec.ephemeralContainers: Forbidden: existing ephemeral containers "a" may not be removed\n',
  );
  assert.match(fail([{ name: 'a', image: 'other' }]), /"a" may not be changed/);
  assert.equal(
    fail([
      { name: 'a', image: 'busybox:1.36' },
      { name: 'c', image: '', targetContainerName: 'nope', ports: [{ containerPort: 1 }] },
    ]),
    'Pod "web" is invalid: [spec.ephemeralContainers[1].name: Duplicate value: "c", spec.ephemeralContainers[1].image: Required value, spec.ephemeralContainers[1].targetContainerName: Not found: "nope", spec.ephemeralContainers[1].ports: Forbidden: cannot be set for an Ephemeral Container]',
  );
});
