import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseSurvey } from '../../src/capture/remote-scripts.ts';
import { parseCrictlInspect } from '../../src/capture/runtimes/bridge.ts';
import { containerdBridge, parseCtrTaskList } from '../../src/capture/runtimes/containerd.ts';
import { crioBridge } from '../../src/capture/runtimes/crio.ts';
import { dockerBridge, parseDockerInspect } from '../../src/capture/runtimes/docker.ts';
import { BRIDGES, bridgeFor, parseContainerId } from '../../src/capture/runtimes/index.ts';
import { KubedumpError } from '../../src/errors.ts';

// Fixtures: ctr-task-ls.txt, proc-cgroup-v1.txt and
// web-container-id.txt were recorded on the real local cluster (containerd
// 1.6); the crictl and docker answers are written in the shape those tools
// print (neither crictl nor dockerd runs on this machine).
const FIX = join(import.meta.dirname, 'fixtures', 'runtimes');
const fixture = (name: string) => readFileSync(join(FIX, name), 'utf8');
const WEB_ID = fixture('web-container-id.txt').trim();

test('container IDs split into runtime and ID; anything else is a clear error', () => {
  assert.deepEqual(parseContainerId(`containerd://${WEB_ID}`, 'x'), {
    runtime: 'containerd',
    id: WEB_ID,
  });
  assert.deepEqual(parseContainerId('cri-o://abcdef012345', 'x'), {
    runtime: 'cri-o',
    id: 'abcdef012345',
  });
  for (const bad of [undefined, '', 'containerd://', 'abc', 'docker://$(reboot)', 'docker://a b']) {
    assert.throws(
      () => parseContainerId(bad, 'container web of pod demo/web'),
      (e: unknown) => e instanceof KubedumpError && e.code === 'NO_CONTAINER_ID',
      String(bad),
    );
  }
});

test('each runtime has exactly one bridge; an unknown one is a typed error', () => {
  for (const [runtime, bridge] of [
    ['containerd', containerdBridge],
    ['docker', dockerBridge],
    ['cri-o', crioBridge],
  ] as const) {
    assert.equal(bridgeFor({ runtime, id: 'abcdef012345' }), bridge);
    assert.equal(BRIDGES.filter((b) => b.owns({ runtime, id: 'x' })).length, 1);
  }
  assert.throws(
    () => bridgeFor({ runtime: 'rkt', id: 'abcdef012345' }),
    (e: unknown) =>
      e instanceof KubedumpError &&
      e.code === 'UNSUPPORTED_RUNTIME' &&
      /"rkt"/.test(e.message) &&
      /containerd:\/\//.test(e.hint ?? ''),
  );
});

test('containerd: ctr task ls (recorded) gives the row of the ID, not a neighbour', () => {
  const out = fixture('ctr-task-ls.txt');
  assert.equal(parseCtrTaskList(out, WEB_ID), 22729);
  assert.equal(
    containerdBridge.parsePid(out, { tool: 'ctr', id: WEB_ID }),
    parseCtrTaskList(out, WEB_ID),
  );
  assert.equal(parseCtrTaskList(out, WEB_ID.slice(0, 12)), undefined, 'no prefix matches');
  assert.equal(parseCtrTaskList(out, 'f'.repeat(64)), undefined);
  assert.equal(parseCtrTaskList('TASK PID STATUS\n', WEB_ID), undefined);
});

test('containerd and cri-o: crictl inspect .info.pid, checked against the ID', () => {
  const containerd = fixture('crictl-inspect-containerd.json');
  assert.equal(containerdBridge.parsePid(containerd, { tool: 'crictl', id: WEB_ID }), 22729);
  assert.equal(parseCrictlInspect(containerd, 'f'.repeat(64)), undefined, 'another container');
  const crio = fixture('crictl-inspect-crio.json');
  const crioId = '8f1d2c3b4a5968778695a4b3c2d1e0f9e8d7c6b5a4938271605f4e3d2c1b0a99';
  assert.equal(crioBridge.parsePid(crio, { tool: 'crictl', id: crioId }), 48213);
  assert.equal(parseCrictlInspect('not json', crioId), undefined);
  assert.equal(parseCrictlInspect('{"info":{"pid":0}}', crioId), undefined, 'not running');
  assert.equal(
    parseCrictlInspect('{"info":{"pid":1}}', crioId),
    undefined,
    "never the node's init",
  );
});

test('docker: inspect --format {{.State.Pid}}; 0 means stopped', () => {
  assert.equal(parseDockerInspect(fixture('docker-inspect-pid.txt')), 31337);
  assert.equal(
    dockerBridge.parsePid(fixture('docker-inspect-stopped.txt'), { tool: 'docker', id: 'x' }),
    undefined,
  );
  assert.equal(parseDockerInspect('Error: No such object: abc\n'), undefined);
  assert.equal(parseDockerInspect('12\n13\n'), undefined);
});

test('bridge argv: arrays with the socket and ID as separate elements, no shell', () => {
  const q = { toolPath: '/usr/bin/x', socket: '/run/s.sock', id: WEB_ID };
  assert.deepEqual(containerdBridge.pidArgv({ ...q, tool: 'ctr' }), [
    '/usr/bin/x',
    '--address',
    '/run/s.sock',
    '--namespace',
    'k8s.io',
    'task',
    'ls',
  ]);
  assert.deepEqual(crioBridge.pidArgv({ ...q, tool: 'crictl' }), [
    '/usr/bin/x',
    '--runtime-endpoint',
    'unix:///run/s.sock',
    'inspect',
    '--output',
    'json',
    WEB_ID,
  ]);
  assert.deepEqual(dockerBridge.pidArgv({ ...q, tool: 'docker' }).slice(-1), [WEB_ID]);
  for (const b of BRIDGES) {
    assert.ok(
      b.sockets.every((s) => s.startsWith('/')),
      b.name,
    );
    assert.ok(b.tools.length > 0, b.name);
  }
  assert.ok(containerdBridge.sockets.includes('/run/k3s/containerd/containerd.sock'));
  assert.ok(containerdBridge.sockets.includes('/var/snap/microk8s/common/run/containerd.sock'));
  assert.ok(containerdBridge.sockets.includes('/run/k0s/containerd.sock'));
});

test('the socket and client survey is parsed line by line', () => {
  const found = parseSurvey(
    'socket /run/containerd/containerd.sock\ntool crictl /usr/local/bin/crictl\ntool ctr /usr/bin/ctr\ntool ctr /bin/ctr\n',
  );
  assert.deepEqual(found.sockets, ['/run/containerd/containerd.sock']);
  assert.deepEqual(
    [...found.tools],
    [
      ['crictl', '/usr/local/bin/crictl'],
      ['ctr', '/usr/bin/ctr'],
    ],
  );
  assert.deepEqual(parseSurvey(''), { sockets: [], tools: new Map() });
});
