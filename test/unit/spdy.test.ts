import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { test } from 'node:test';
import { constants, inflateSync } from 'node:zlib';
import { KubeConfig } from '@kubernetes/client-node';
import { WebSocketServer } from 'ws';
import { execCollect, openExec } from '../../src/kube/exec.ts';
import { headerBlock, SpdyFrameReader } from '../../src/kube/spdy.ts';

// The SPDY/3.1 exec client: server frames read across any split of the bytes,
// and a whole exec against a server written here from the SPDY/3 framing
// (streams opened at once, header blocks any zlib inflater reads, stdin data
// and its end, pings both ways, the status on the error stream), then the
// fallback to WebSocket where a server refuses SPDY.

const control = (type: number, payload: Buffer, flags = 0) => {
  const frame = Buffer.alloc(8 + payload.length);
  frame.writeUInt16BE(0x8003, 0);
  frame.writeUInt16BE(type, 2);
  frame.writeUInt32BE(payload.length, 4);
  frame[4] = flags;
  payload.copy(frame, 8);
  return frame;
};
const data = (stream: number, payload: string | Buffer, fin = false) => {
  const bytes = Buffer.from(payload);
  const frame = Buffer.alloc(8 + bytes.length);
  frame.writeUInt32BE(stream, 0);
  frame.writeUInt32BE(bytes.length, 4);
  frame[4] = fin ? 1 : 0;
  bytes.copy(frame, 8);
  return frame;
};
const u32 = (...values: number[]) => {
  const b = Buffer.alloc(4 * values.length);
  for (const [i, v] of values.entries()) b.writeUInt32BE(v, 4 * i);
  return b;
};

test('frames cut anywhere: each stream gets its bytes in order, FIN where it ends, control frames whole', () => {
  const bytes = Buffer.concat([
    control(2, Buffer.concat([u32(1), Buffer.from('zlib bytes of no interest')])),
    data(3, 'hello '),
    control(6, u32(2)),
    data(3, ''),
    data(5, 'oops', true),
    data(3, 'world', true),
    data(1, '{"status":"Success"}', true),
  ]);
  const expected = [
    'control 2 29',
    '3:hello ',
    'control 6 4',
    '5:oops',
    'FIN 5',
    '3:world',
    'FIN 3',
    '1:{"status":"Success"}',
    'FIN 1',
  ];
  for (let cut = 0; cut <= bytes.length; cut++) {
    for (const step of [1, 7, bytes.length]) {
      // Pieces of one stream's bytes in a row are joined: a frame may come in pieces.
      const got: string[] = [];
      const reader = new SpdyFrameReader({
        data: (stream, piece, fin) => {
          assert.ok(piece.length > 0 || fin, 'an empty piece that ends nothing');
          const last = got.at(-1);
          if (piece.length > 0) {
            if (last?.startsWith(`${stream}:`)) got[got.length - 1] = last + piece.toString();
            else got.push(`${stream}:${piece}`);
          }
          if (fin) got.push(`FIN ${stream}`);
        },
        control: (type, payload) => got.push(`control ${type} ${payload.length}`),
        error: (e) => assert.fail(e),
      });
      for (const part of [bytes.subarray(0, cut), bytes.subarray(cut)]) {
        for (let at = 0; at < part.length; at += step) reader.push(part.subarray(at, at + step));
      }
      assert.deepEqual(got, expected, `cut at ${cut}, pieces of ${step}`);
    }
  }
});

test('a frame of another SPDY version or a huge control frame is an error', () => {
  for (const [bytes, said] of [
    [Buffer.from([0x80, 0x02, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1]), /SPDY version 2/],
    [Buffer.from([0x80, 0x03, 0, 2, 0, 0xff, 0xff, 0xff]), /a control frame of 16777215 bytes/],
  ] as const) {
    const errors: Error[] = [];
    new SpdyFrameReader({ data: () => {}, control: () => {}, error: (e) => errors.push(e) }).push(
      bytes,
    );
    assert.equal(errors.length, 1);
    assert.match(errors[0]?.message ?? '', said);
  }
});

test('header blocks: one zlib stream across frames, each block ending in a sync flush', () => {
  const blocks = ['error', 'stdout'].map((type, i) => headerBlock({ streamtype: type }, i === 0));
  // Go's inflater hands on a stored block's bytes only when the next block
  // starts: each frame's block ends with an empty one, as zlib's sync flush.
  for (const block of blocks)
    assert.deepEqual(block.subarray(-5), Buffer.from([0, 0, 0, 255, 255]));
  const raw = inflateSync(Buffer.concat(blocks), { finishFlush: constants.Z_SYNC_FLUSH });
  assert.deepEqual(readHeaderBlocks(raw), [{ streamtype: 'error' }, { streamtype: 'stdout' }]);
});

/** Name/value blocks, one after another, as a SPDY/3 server reads them. */
function readHeaderBlocks(raw: Buffer): Record<string, string>[] {
  const blocks: Record<string, string>[] = [];
  let at = 0;
  const text = () => {
    const n = raw.readUInt32BE(at);
    const s = raw.subarray(at + 4, at + 4 + n).toString();
    at += 4 + n;
    return s;
  };
  while (at < raw.length) {
    const pairs = raw.readUInt32BE(at);
    at += 4;
    const block: Record<string, string> = {};
    for (let i = 0; i < pairs; i++) block[text()] = text();
    blocks.push(block);
  }
  return blocks;
}

/** What a server saw of one connection. */
interface Seen {
  request: string;
  /** streamtype by stream id, from the SYN_STREAMs. */
  streams: Map<number, string>;
  stdin: string;
  stdinEnded: boolean;
  /** The client's pings (echoed), and its answers to the server's. */
  pings: number;
  pongs: number;
}

/**
 * A SPDY/3.1 exec server of one "command": once the client's streams are
 * open it writes to stdout and stderr, pings, then (after the client's stdin
 * ended, or after a ping from the client) echoes stdin on stdout and exits 3.
 */
function serveSpdy(req: IncomingMessage, socket: Duplex, seen: Seen[]) {
  const me: Seen = {
    request: `${req.method} ${req.headers.upgrade} ${req.headers['x-stream-protocol-version']}`,
    streams: new Map(),
    stdin: '',
    stdinEnded: false,
    pings: 0,
    pongs: 0,
  };
  seen.push(me);
  socket.write(
    'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n',
  );
  const id = (type: string) => [...me.streams].find(([, t]) => t === type)?.[0] ?? 0;
  let got = Buffer.alloc(0);
  const compressed: Buffer[] = [];
  let state: 'opening' | 'running' | 'done' = 'opening';
  socket.on('data', (chunk: Buffer) => {
    got = Buffer.concat([got, chunk]);
    while (got.length >= 8 && got.length >= 8 + got.readUIntBE(5, 3)) {
      const frame = got.subarray(0, 8 + got.readUIntBE(5, 3));
      got = got.subarray(frame.length);
      const type = frame[0] === 0x80 ? frame.readUInt16BE(2) : 0;
      if (type === 1) {
        compressed.push(frame.subarray(18));
        const raw = inflateSync(Buffer.concat(compressed), { finishFlush: constants.Z_SYNC_FLUSH });
        me.streams.set(frame.readUInt32BE(8), readHeaderBlocks(raw).at(-1)?.streamtype ?? '?');
      } else if (type === 6) {
        if (frame.readUInt32BE(8) % 2 === 0) me.pongs++;
        else {
          me.pings++;
          // The client pings on its own clock, also after the server said goodbye.
          if (!socket.writableEnded) socket.write(frame);
        }
      } else if (type === 0) {
        me.stdin += frame.subarray(8).toString();
        if (frame[4] === 1) me.stdinEnded = true;
      }
    }
    if (state === 'opening' && me.streams.size === (id('stdin') ? 4 : 3)) {
      state = 'running';
      const out = Buffer.concat([
        ...[...me.streams.keys()].map((s) => control(2, u32(s, 0x78f9e3c6))),
        control(6, u32(2)),
        data(id('stdout'), 'hello '),
        data(id('stderr'), 'oops', true),
      ]);
      // One byte a write: the client reads frames across any split.
      for (let i = 0; i < out.length; i++) socket.write(out.subarray(i, i + 1));
    }
    if (state === 'running' && (id('stdin') ? me.stdinEnded : me.pings > 0)) {
      state = 'done';
      const status = {
        status: 'Failure',
        details: { causes: [{ reason: 'ExitCode', message: '3' }] },
      };
      socket.end(
        Buffer.concat([
          data(id('stdout'), `world ${me.stdin}`, true),
          data(id('error'), JSON.stringify(status), true),
          control(7, u32(0, 0)),
        ]),
      );
    }
  });
}

async function withServer(
  onUpgrade: (req: IncomingMessage, socket: Duplex, head: Buffer, wss: WebSocketServer) => void,
  body: (kc: KubeConfig) => Promise<void>,
) {
  const server = createServer((_req, res) => res.writeHead(404).end());
  const wss = new WebSocketServer({ noServer: true, handleProtocols: () => 'v5.channel.k8s.io' });
  server.on('upgrade', (req, socket, head) => onUpgrade(req, socket, head, wss));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
    users: [{ name: 'u', token: 't' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  try {
    await body(kc);
  } finally {
    for (const client of wss.clients) client.terminate();
    wss.close();
    server.close();
    server.closeAllConnections();
  }
}

const options = { namespace: 'demo', pod: 'web', command: ['cat'] };

test('an exec over SPDY: POST with the stream protocol, every stream opened at once, pings both ways, stdin ended, the exit code', async () => {
  const seen: Seen[] = [];
  await withServer(
    (req, socket) => serveSpdy(req, socket, seen),
    async (kc) => {
      const session = await openExec(kc, { ...options, pingMs: 10 });
      assert.equal(session.transport, 'spdy');
      assert.equal(session.protocol, 'v4.channel.k8s.io');
      const out: string[] = [];
      session.stdout.on('data', (c: Buffer) => out.push(c.toString()));
      assert.deepEqual(await session.result, {
        exitCode: 3,
        message: undefined,
        stderr: 'oops',
      });
      assert.equal(out.join(''), 'hello world ');

      const collected = await execCollect(kc, { ...options, input: Buffer.from('typed') });
      assert.equal(collected.stdout.toString(), 'hello world typed');
      assert.equal(collected.exitCode, 3);
    },
  );
  assert.deepEqual(
    seen.map((s) => [s.request, [...s.streams], s.stdin, s.stdinEnded, s.pongs]),
    [
      [
        'POST SPDY/3.1 v4.channel.k8s.io',
        [
          [1, 'error'],
          [3, 'stdout'],
          [5, 'stderr'],
        ],
        '',
        false,
        1,
      ],
      [
        'POST SPDY/3.1 v4.channel.k8s.io',
        [
          [1, 'error'],
          [3, 'stdin'],
          [5, 'stdout'],
          [7, 'stderr'],
        ],
        'typed',
        true,
        1,
      ],
    ],
  );
  assert.ok(seen[0] && seen[0].pings > 0, "the client's pings are sent");
});

test('a server that refuses SPDY gets WebSocket, and this process asks it for WebSocket from then on', async () => {
  const asked: string[] = [];
  await withServer(
    (req, socket, head, wss) => {
      asked.push(String(req.headers.upgrade));
      if (req.headers.upgrade !== 'websocket') {
        socket.end(
          'HTTP/1.1 400 Bad Request\r\nContent-Length: 25\r\n\r\nSPDY/3.1 is not supported',
        );
        return;
      }
      wss.handleUpgrade(req, socket, head, (ws) => {
        ws.send(Buffer.from('\x01over websocket'));
        ws.send(Buffer.from('\x03{"status":"Success"}'));
        ws.close();
      });
    },
    async (kc) => {
      for (let i = 0; i < 2; i++) {
        const collected = await execCollect(kc, options);
        assert.equal(collected.stdout.toString(), 'over websocket');
        assert.equal(collected.exitCode, 0);
      }
      // Pinned to SPDY, the refusal is the error.
      await assert.rejects(
        openExec(kc, { ...options, transport: 'spdy' }),
        /SPDY\/3.1 is not supported/,
      );
    },
  );
  assert.deepEqual(asked, ['SPDY/3.1', 'websocket', 'websocket', 'SPDY/3.1']);
});
