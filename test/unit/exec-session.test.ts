import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import { ExecSession, exitFromStatus } from '../../src/kube/exec.ts';
import type { ExecChannels } from '../../src/kube/exec-channels.ts';

// The exec session over a socket that is not a network: the channel framing
// of v4/v5, backpressure, stdin, errors after open and silence.

class FakeSocket extends EventEmitter {
  readyState = 1; // OPEN
  isPaused = false;
  sent: Buffer[] = [];
  pings = 0;
  terminated = false;
  readonly protocol: string;
  constructor(protocol: string) {
    super();
    this.protocol = protocol;
  }
  pause() {
    this.isPaused = true;
  }
  resume() {
    this.isPaused = false;
  }
  ping() {
    this.pings++;
  }
  start() {}
  get canEndStdin() {
    return this.protocol !== 'v4.channel.k8s.io';
  }
  endStdin(callback: (error?: Error) => void) {
    this.sent.push(Buffer.from('end of stdin'));
    callback();
  }
  send(channel: number, data: Buffer, callback: (error?: Error) => void) {
    this.sent.push(Buffer.concat([Buffer.from([channel]), data]));
    callback();
  }
  close() {
    this.readyState = 3;
    this.emit('close');
  }
  terminate() {
    this.terminated = true;
    this.close();
  }
  /** A whole message from the server on `channel`. */
  frame(channel: number, payload: string | Buffer) {
    this.emit('data', channel, Buffer.from(payload), true);
  }
}

function session(
  protocol: string,
  options: Partial<ConstructorParameters<typeof ExecSession>[1]> = {},
) {
  const ws = new FakeSocket(protocol);
  const exec = new ExecSession(ws as unknown as ExecChannels, {
    namespace: 'demo',
    pod: 'web',
    command: ['true'],
    ...options,
  });
  return { ws, exec };
}

const EXIT_3 = JSON.stringify({
  status: 'Failure',
  reason: 'NonZeroExitCode',
  message: 'command terminated with non-zero exit code',
  details: { causes: [{ reason: 'ExitCode', message: '3' }] },
});

test('channels: stdout to the stream, stderr kept and passed on, the status gives the exit code', async () => {
  const seen: string[] = [];
  const { ws, exec } = session('v5.channel.k8s.io', { onStderr: (c) => seen.push(c.toString()) });
  const chunks: Buffer[] = [];
  exec.stdout.on('data', (c: Buffer) => chunks.push(c));
  ws.frame(1, 'pcap bytes');
  ws.frame(2, 'tcpdump: listening\n');
  ws.frame(3, EXIT_3);
  ws.close();
  const result = await exec.result;
  await new Promise((r) => exec.stdout.once('end', r).resume());
  assert.equal(Buffer.concat(chunks).toString(), 'pcap bytes');
  assert.deepEqual(seen, ['tcpdump: listening\n']);
  assert.deepEqual(result, {
    exitCode: 3,
    message: 'command terminated with non-zero exit code',
    stderr: 'tcpdump: listening\n',
  });
});

test('the status: success is 0, a failure without an exit code keeps its message, none is null', () => {
  assert.deepEqual(exitFromStatus(JSON.stringify({ status: 'Success' })), { exitCode: 0 });
  assert.deepEqual(
    exitFromStatus(JSON.stringify({ status: 'Failure', message: 'container not found' })),
    { exitCode: null, message: 'container not found' },
  );
  assert.deepEqual(exitFromStatus(''), { exitCode: null });
});

test('stdin: writes go on channel 0; it ends when the connection can end it (not v4 WebSocket)', async () => {
  const v5 = session('v5.channel.k8s.io');
  await v5.exec.write(Buffer.from('keepalive\n'));
  await v5.exec.endStdin();
  assert.deepEqual(v5.ws.sent, [Buffer.from('\x00keepalive\n'), Buffer.from('end of stdin')]);
  assert.equal(v5.exec.canEndStdin, true);
  const v4 = session('v4.channel.k8s.io');
  assert.equal(v4.exec.canEndStdin, false);
  assert.throws(() => v4.exec.endStdin(), /cannot end stdin over v4/);
  v5.ws.close();
  v4.ws.close();
});

test('backpressure: a full reader pauses the socket, reading resumes it', async () => {
  const { ws, exec } = session('v4.channel.k8s.io');
  const big = Buffer.alloc(64 * 1024, 1);
  for (let i = 0; i < 4 && !ws.isPaused; i++) ws.frame(1, big);
  assert.equal(ws.isPaused, true, 'the socket was not paused');
  exec.stdout.read();
  await new Promise((r) => setImmediate(r));
  assert.equal(ws.isPaused, false, 'reading did not resume the socket');
  ws.close();
});

test('pipeTo: what the stream held goes first, then views as they come; a full sink pauses the socket until it drains', async () => {
  const { ws, exec } = session('v5.channel.k8s.io');
  ws.frame(1, 'before ');
  const got: string[] = [];
  let drain: (() => void) | undefined;
  let full = false;
  exec.pipeTo({
    take: (bytes) => {
      got.push(bytes.toString());
      return !full;
    },
    onDrain: (listener) => {
      drain = listener;
    },
  });
  ws.frame(1, 'after');
  assert.deepEqual(got, ['before ', 'after']);
  assert.equal(ws.isPaused, false);
  full = true;
  ws.frame(1, '!');
  assert.equal(ws.isPaused, true, 'a full sink did not pause the socket');
  full = false;
  drain?.();
  assert.equal(ws.isPaused, false, 'the drain did not resume the socket');
  ws.close();
  await exec.result;
});

test('an error after open ends the session, with what was said so far', async () => {
  const { ws, exec } = session('v5.channel.k8s.io');
  ws.frame(2, 'half a line');
  ws.emit('error', new Error('socket hang up'));
  const result = await exec.result;
  assert.equal(ws.terminated, true);
  assert.deepEqual(result, { exitCode: null, message: undefined, stderr: 'half a line' });
});

test('silence ends the session; a socket paused by our reader is not silent', async () => {
  const quiet = session('v5.channel.k8s.io', { pingMs: 20, silenceMs: 100 });
  const paused = session('v5.channel.k8s.io', { pingMs: 20, silenceMs: 100 });
  paused.ws.pause();
  await quiet.exec.result;
  await new Promise((r) => setTimeout(r, 200)); // past the silence limit for the paused one too
  assert.equal(quiet.ws.terminated, true);
  assert.ok(quiet.ws.pings > 0, 'no ping was sent');
  assert.equal(paused.ws.terminated, false);
  paused.ws.close();
});
