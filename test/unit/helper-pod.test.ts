import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { V1Pod } from '@kubernetes/client-node';
import {
  abandonedBecause,
  HELPER_DEADLINE_SECONDS,
  HELPER_IDLE_SECONDS,
  helperCommand,
  helperName,
  helperPodSpec,
  isKubedumpHelper,
  PENDING_MARGIN_MS,
} from '../../src/capture/helper-spec.ts';
import { creationFailure, startFailure } from '../../src/capture/privileged.ts';
import { KubedumpError } from '../../src/errors.ts';
import { podProgress } from '../../src/kube/helper-pod.ts';

const NOW = new Date('2026-01-01T00:00:00Z');

function spec(): V1Pod {
  return helperPodSpec({
    name: 'kubedump-web-abc123',
    namespace: 'tools',
    nodeName: 'node-a',
    image: 'registry.local/busybox:1',
    session: 'host/1/abcd',
    target: 'demo/web',
    startTimeoutSeconds: 60,
  });
}

test('the helper pod: pinned, hostPID, privileged, bounded, labelled, no token', () => {
  const pod = spec();
  assert.equal(pod.metadata?.name, 'kubedump-web-abc123');
  assert.equal(pod.metadata?.namespace, 'tools');
  assert.equal(pod.metadata?.labels?.['app.kubernetes.io/managed-by'], 'kubedump');
  assert.equal(pod.metadata?.annotations?.['kubedump.io/session'], 'host/1/abcd');
  assert.equal(pod.metadata?.annotations?.['kubedump.io/target'], 'demo/web');
  const s = pod.spec;
  assert.ok(s);
  assert.equal(s.nodeName, 'node-a');
  assert.equal(s.hostPID, true);
  assert.equal(s.hostNetwork, undefined, 'the target network is entered with nsenter instead');
  assert.equal(s.restartPolicy, 'Never');
  assert.equal(s.activeDeadlineSeconds, HELPER_DEADLINE_SECONDS);
  assert.equal(s.automountServiceAccountToken, false);
  assert.deepEqual(s.tolerations, [{ operator: 'Exists' }], 'tolerates every taint');
  assert.equal(s.containers.length, 1);
  const c = s.containers[0];
  assert.ok(c);
  assert.equal(c.image, 'registry.local/busybox:1');
  assert.equal(c.imagePullPolicy, 'IfNotPresent');
  assert.deepEqual(c.command, helperCommand(HELPER_IDLE_SECONDS));
  assert.equal(c.securityContext?.privileged, true);
  assert.ok(c.resources?.requests?.cpu && c.resources.requests.memory);
  assert.ok(c.resources?.limits?.cpu && c.resources.limits.memory);
  assert.deepEqual(c.volumeMounts, [{ name: 'host-root', mountPath: '/host', readOnly: true }]);
  assert.deepEqual(s.volumes?.[0]?.hostPath, { path: '/', type: 'Directory' });
});

test('helper names are DNS labels starting with kubedump-', () => {
  assert.equal(helperName('web', 'abc123'), 'kubedump-web-abc123');
  const long = helperName(`${'a'.repeat(80)}.x`, 'abc123');
  assert.ok(long.length <= 63, long);
  assert.match(long, /^kubedump-[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
  assert.match(helperName('web.v1.example', 'abc123'), /^kubedump-web-v1-example-abc123$/);
  assert.match(helperName('web'), /^kubedump-web-[0-9a-f]{6}$/);
});

function aged(ms: number, phase?: string): V1Pod {
  const pod = spec();
  (pod.metadata as { creationTimestamp: Date }).creationTimestamp = new Date(NOW.getTime() - ms);
  if (phase) pod.status = { phase };
  return pod;
}

test('a helper is known by its whole shape, not by its label alone', () => {
  assert.equal(isKubedumpHelper(spec()), true);
  const labelled: V1Pod = {
    metadata: {
      name: 'kubedump-mine',
      labels: { 'app.kubernetes.io/managed-by': 'kubedump' },
      annotations: { 'kubedump.io/session': 'x' },
    },
    spec: { hostPID: true, containers: [{ name: 'kubedump', command: ['sleep', '28800'] }] },
  };
  assert.equal(isKubedumpHelper(labelled), false, 'a pod a user labelled');
  const renamed = spec();
  (renamed.metadata as { name: string }).name = 'web';
  assert.equal(isKubedumpHelper(renamed), false);
  const extra = spec();
  extra.spec?.containers.push({ name: 'app', image: 'x' });
  assert.equal(isKubedumpHelper(extra), false);
  const unprivileged = spec();
  (unprivileged.spec as { hostPID: boolean }).hostPID = false;
  assert.equal(isKubedumpHelper(unprivileged), false);
});

test('abandoned: ended, or Pending past any run by the server clock; running is alive', () => {
  const now = NOW.getTime();
  assert.equal(abandonedBecause(aged(10 * 3600_000, 'Running'), now), undefined, 'running');
  assert.match(abandonedBecause(aged(1000, 'Succeeded'), now) ?? '', /ended \(Succeeded\)/);
  assert.match(abandonedBecause(aged(1000, 'Failed'), now) ?? '', /ended/);
  const limit = 60_000 + PENDING_MARGIN_MS;
  assert.equal(abandonedBecause(aged(limit - 1000, 'Pending'), now), undefined, 'its run waits');
  assert.match(abandonedBecause(aged(limit + 1000, 'Pending'), now) ?? '', /never ran/);
  const undeclared = aged(limit + 1000, 'Pending');
  delete undeclared.metadata?.annotations?.['kubedump.io/start-timeout-seconds'];
  assert.equal(abandonedBecause(undeclared, now), undefined, 'the longest wait counts');
  const going = aged(1000, 'Succeeded');
  (going.metadata as { deletionTimestamp: Date }).deletionTimestamp = NOW;
  assert.equal(abandonedBecause(going, now), undefined, 'already being deleted');
  const foreign = aged(1000, 'Succeeded');
  (foreign.metadata as { labels: Record<string, string> }).labels['app.kubernetes.io/managed-by'] =
    'someone-else';
  assert.equal(abandonedBecause(foreign, now), undefined, 'not ours');
  // No client clock is read: the same pod with the same server time gets the same verdict.
  const pending = aged(limit + 1000, 'Pending');
  assert.equal(abandonedBecause(pending, now), abandonedBecause(pending, now));
});

test('pod progress: running, image pull, unschedulable, ended', () => {
  assert.deepEqual(
    podProgress({
      status: {
        phase: 'Running',
        containerStatuses: [
          {
            name: 'k',
            image: 'i',
            imageID: '',
            ready: true,
            restartCount: 0,
            state: { running: {} },
          },
        ],
      },
    }),
    { state: 'running' },
  );
  const pull = podProgress({
    status: {
      phase: 'Pending',
      containerStatuses: [
        {
          name: 'k',
          image: 'bad/img:1',
          imageID: '',
          ready: false,
          restartCount: 0,
          state: {
            waiting: { reason: 'ImagePullBackOff', message: 'Back-off pulling image "bad/img:1"' },
          },
        },
      ],
    },
  });
  assert.equal(pull.state === 'failed' && pull.code, 'IMAGE_PULL');
  const unsched = podProgress({
    status: {
      phase: 'Pending',
      conditions: [
        {
          type: 'PodScheduled',
          status: 'False',
          reason: 'Unschedulable',
          message: '0/3 nodes are available',
        },
      ],
    },
  });
  assert.equal(unsched.state === 'waiting' && unsched.unschedulable, '0/3 nodes are available');
  const ended = podProgress({ status: { phase: 'Failed', reason: 'DeadlineExceeded' } });
  assert.equal(ended.state === 'failed' && ended.code, 'POD_ENDED');
  assert.match(ended.state === 'failed' ? ended.detail : '', /DeadlineExceeded/);
});

test('refusals become one line naming the policy, the permission or the image', () => {
  const psa = creationFailure(
    new KubedumpError(
      'FORBIDDEN',
      'create pod demo/kubedump-x: forbidden: pods "kubedump-x" is forbidden: violates PodSecurity "baseline:latest": host namespaces (hostPID=true)',
    ),
    'demo',
  );
  assert.equal(psa.code, 'POD_SECURITY');
  assert.match(psa.line, /pod-security\.kubernetes\.io\/enforce/);
  assert.match(psa.line, /--helper-namespace/);
  const rbac = creationFailure(
    new KubedumpError(
      'FORBIDDEN',
      'create pod demo/kubedump-x: forbidden: pods is forbidden: User "u" cannot create resource "pods" in API group "" in the namespace "demo"',
    ),
    'demo',
  );
  assert.equal(rbac.code, 'RBAC_CREATE_PODS');
  assert.match(rbac.line, /create pods/);
  const image = startFailure(
    new KubedumpError('IMAGE_PULL', 'pod demo/kubedump-x cannot run: ErrImagePull: not found'),
    { namespace: 'demo', name: 'kubedump-x' },
    { helperImage: 'bad/img:1' },
  ) as KubedumpError;
  assert.equal(image.code, 'HELPER_IMAGE_PULL');
  assert.match(image.line, /"bad\/img:1".*--helper-image/);
  const timeout = startFailure(
    new KubedumpError(
      'POD_START_TIMEOUT',
      'pod demo/kubedump-x did not start within 5 s (phase Pending)',
    ),
    { namespace: 'demo', name: 'kubedump-x' },
    { helperImage: 'i' },
  ) as KubedumpError;
  assert.equal(
    timeout.line,
    'helper pod demo/kubedump-x did not start within 5 s (phase Pending): raise --helper-timeout, or check the pod with kubectl describe',
  );
});
