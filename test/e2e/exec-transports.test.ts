import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { loadKubeConfig } from '../../src/kube/config.ts';
import { execCollect, openExec } from '../../src/kube/exec.ts';
import { realCluster } from '../support/real-cluster.ts';

// kubedump's exec against the real v1.20 API server, kubelet and containerd:
// SPDY/3.1 by default (the server's pongs keep a quiet exec alive, stdin ends
// with a FIN, bytes arrive exactly), and WebSocket v4 when pinned, the path a
// server or gateway that refuses SPDY gets.

const kc = loadKubeConfig({ kubeconfig: realCluster().kubeconfig });
const web = { namespace: 'demo', pod: 'web' };

/** What `seq 1 N` prints. */
const seq = (n: number) => Array.from({ length: n }, (_, i) => `${i + 1}\n`).join('');

describe('exec transports on the real cluster', () => {
  test('SPDY: a command quiet for 2 s outlives a 400 ms silence limit (the server answers pings), with its output and exit code', async () => {
    const session = await openExec(kc, {
      ...web,
      command: ['sh', '-c', 'sleep 2; echo done; echo said >&2; exit 7'],
      pingMs: 50,
      silenceMs: 400,
    });
    assert.equal(session.transport, 'spdy');
    assert.equal(session.protocol, 'v4.channel.k8s.io');
    const out: Buffer[] = [];
    session.stdout.on('data', (c: Buffer) => out.push(c));
    const result = await session.result;
    session.close();
    assert.equal(result.exitCode, 7, result.message);
    assert.equal(result.stderr, 'said\n');
    assert.equal(Buffer.concat(out).toString(), 'done\n');
  });

  test('SPDY: stdin reaches the command and its end ends it; 8 MB come back byte for byte', async () => {
    const typed = await execCollect(kc, { ...web, command: ['cat'], input: Buffer.from('typed') });
    assert.equal(typed.stdout.toString(), 'typed');
    assert.equal(typed.exitCode, 0);
    const n = 1_000_000;
    const counted = await execCollect(kc, {
      ...web,
      command: ['seq', '1', String(n)],
      maxOutput: 16 * 1024 * 1024,
    });
    assert.equal(counted.exitCode, 0);
    assert.ok(counted.stdout.equals(Buffer.from(seq(n))), 'the bytes differ from seq 1 1000000');
  });

  test('WebSocket, pinned: the v4 protocol, the output and the exit code', async () => {
    const collected = await execCollect(kc, {
      ...web,
      command: ['sh', '-c', 'seq 1 1000; exit 3'],
      transport: 'websocket',
    });
    assert.equal(collected.exitCode, 3);
    assert.equal(collected.stdout.toString(), seq(1000));
    const session = await openExec(kc, { ...web, command: ['true'], transport: 'websocket' });
    assert.equal(session.transport, 'websocket');
    assert.equal(session.protocol, 'v4.channel.k8s.io');
    assert.equal(session.canEndStdin, false);
    assert.equal((await session.result).exitCode, 0);
    session.close();
  });
});
