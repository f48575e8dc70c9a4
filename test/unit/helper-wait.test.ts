import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { test } from 'node:test';
import { WebSocketServer } from 'ws';
import { loadKubeConfig } from '../../src/kube/config.ts';
import { waitUntilExecutable, waitUntilRunning } from '../../src/kube/helper-pod.ts';

// Waiting for the helper pod: a watch sees it run without another read; an
// identity that may not watch pods reads it until it runs; an exec that runs
// before the status says so ends the wait, and the status still names why a
// pod cannot start.

const pod = (phase: string, name = 'kubedump-helper', waiting = 'ContainerCreating') => ({
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
        state: phase === 'Running' ? { running: {} } : { waiting: { reason: waiting } },
      },
    ],
  },
});

/** What a fake exec answers: a refusal before the upgrade (HTTP status), or a run that exits 0. */
type ExecAnswer = { refuse: number; message: string } | 'runs';

/**
 * A fake API server: `reads` counts the pod's GETs; `watch` answers a watch
 * request; `exec` the numbered WebSocket exec upgrades (`execs` counts them).
 */
async function apiServer(
  onRead: (reads: number) => object,
  watch: (res: ServerResponse) => void,
  exec: (attempt: number) => ExecAnswer = () => ({ refuse: 403, message: 'forbidden' }),
): Promise<{ kubeconfig: string; reads: () => number; execs: () => number; close: () => void }> {
  let reads = 0;
  let execs = 0;
  const server = createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    if (req.url?.includes('watch=true')) return watch(res);
    reads++;
    res.end(JSON.stringify(onRead(reads)));
  });
  const wss = new WebSocketServer({ noServer: true });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    // Exec over WebSocket only, as the emulator: SPDY is refused uncounted.
    if (req.headers.upgrade !== 'websocket') {
      socket.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      return;
    }
    const answer = exec(++execs);
    if (answer !== 'runs') {
      const body = JSON.stringify({
        kind: 'Status',
        status: 'Failure',
        message: answer.message,
        code: answer.refuse,
      });
      socket.end(
        `HTTP/1.1 ${answer.refuse} Refused\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
      );
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.send(Buffer.concat([Buffer.from([3]), Buffer.from('{"metadata":{},"status":"Success"}')]));
      ws.close();
    });
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
    execs: () => execs,
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

const helper = { namespace: 'demo', name: 'kubedump-helper' };
const silentWatch = (res: ServerResponse) => res.write('');
const notFound = { refuse: 500, message: 'container not found ("capture")' };

test('the container runs before its status says so: the exec that runs ends the wait', async () => {
  const api = await apiServer(
    () => pod('Pending'),
    silentWatch,
    (attempt) =>
      attempt === 1
        ? { refuse: 404, message: 'pod does not exist' }
        : attempt < 4
          ? notFound
          : 'runs',
  );
  try {
    const kc = loadKubeConfig({ kubeconfig: api.kubeconfig });
    const sign = await waitUntilExecutable(kc, helper, 'capture', { timeoutMs: 10_000 });
    assert.equal(sign, 'exec');
    assert.equal(api.execs(), 4, 'tried again after "no such pod" and "no such container"');
  } finally {
    api.close();
  }
});

test('an exec refused for good (403) leaves the wait to the status', async () => {
  const api = await apiServer(
    () => pod('Pending'),
    (res) => {
      setTimeout(
        () => res.write(`${JSON.stringify({ type: 'MODIFIED', object: pod('Running') })}\n`),
        300,
      );
    },
    () => ({ refuse: 403, message: 'pods "kubedump-helper" is forbidden' }),
  );
  try {
    const kc = loadKubeConfig({ kubeconfig: api.kubeconfig });
    const sign = await waitUntilExecutable(kc, helper, 'capture', { timeoutMs: 10_000 });
    assert.equal(sign, 'status');
    assert.equal(api.execs(), 1, 'a refusal that will not heal is not asked again');
  } finally {
    api.close();
  }
});

test('a pod that cannot start is named by its status while execs still find no container', async () => {
  const api = await apiServer(
    () => pod('Pending', 'kubedump-helper', 'ErrImagePull'),
    silentWatch,
    () => notFound,
  );
  try {
    const kc = loadKubeConfig({ kubeconfig: api.kubeconfig });
    await assert.rejects(
      waitUntilExecutable(kc, helper, 'capture', { timeoutMs: 10_000 }),
      (e: Error & { code?: string }) => e.code === 'IMAGE_PULL',
    );
  } finally {
    api.close();
  }
});
