import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadKubeConfig } from '../../src/kube/config.ts';
import { waitUntilRunning } from '../../src/kube/helper-pod.ts';

// Waiting for the helper pod: a watch sees it run without another read; an
// identity that may not watch pods reads it until it runs.

const pod = (phase: string, name = 'kubedump-helper') => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace: 'demo', resourceVersion: '10' },
  spec: { containers: [{ name: 'capture', image: 'busybox' }] },
  status: {
    phase,
    conditions: [{ type: 'PodScheduled', status: 'True' }],
    containerStatuses: [
      {
        name: 'capture',
        ready: phase === 'Running',
        restartCount: 0,
        image: 'busybox',
        imageID: '',
        state: phase === 'Running' ? { running: {} } : { waiting: { reason: 'ContainerCreating' } },
      },
    ],
  },
});

/** A fake API server: `reads` counts the pod's GETs; `watch` answers a watch request. */
async function apiServer(
  onRead: (reads: number) => object,
  watch: (res: ServerResponse) => void,
): Promise<{ kubeconfig: string; reads: () => number; close: () => void }> {
  let reads = 0;
  const server = createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    if (req.url?.includes('watch=true')) return watch(res);
    reads++;
    res.end(JSON.stringify(onRead(reads)));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const dir = mkdtempSync(join(tmpdir(), 'kubedump-wait-'));
  const kubeconfig = join(dir, 'kubeconfig');
  const { port } = server.address() as AddressInfo;
  writeFileSync(
    kubeconfig,
    `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "http://127.0.0.1:${port}", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`,
  );
  return {
    kubeconfig,
    reads: () => reads,
    close: () => {
      server.closeAllConnections();
      server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

test('a watched pod is seen running from the watch event, without another read', async () => {
  const api = await apiServer(
    () => pod('Pending'),
    (res) => {
      // Another pod's event first (a server that ignores the field selector), then ours.
      const line = (type: string, object: object) => `${JSON.stringify({ type, object })}\n`;
      res.write(line('MODIFIED', pod('Running', 'someone-else')));
      setTimeout(() => res.write(line('MODIFIED', pod('Running'))), 300);
    },
  );
  try {
    const kc = loadKubeConfig({ kubeconfig: api.kubeconfig });
    const running = await waitUntilRunning(
      kc,
      { namespace: 'demo', name: 'kubedump-helper' },
      { timeoutMs: 10_000, pollMs: 60_000 },
    );
    assert.equal(running.status?.phase, 'Running');
    assert.equal(running.metadata?.name, 'kubedump-helper');
    assert.equal(api.reads(), 1, 'the pod was read again instead of watched');
  } finally {
    api.close();
  }
});

test('without the right to watch, the pod is read until it runs', async () => {
  const api = await apiServer(
    (reads) => pod(reads < 3 ? 'Pending' : 'Running'),
    (res) => {
      res.statusCode = 403;
      res.end(
        JSON.stringify({ kind: 'Status', status: 'Failure', reason: 'Forbidden', code: 403 }),
      );
    },
  );
  try {
    const kc = loadKubeConfig({ kubeconfig: api.kubeconfig });
    const running = await waitUntilRunning(
      kc,
      { namespace: 'demo', name: 'kubedump-helper' },
      { timeoutMs: 10_000, pollMs: 20 },
    );
    assert.equal(running.status?.phase, 'Running');
    assert.equal(api.reads(), 3);
  } finally {
    api.close();
  }
});
