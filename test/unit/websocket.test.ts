import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { WebSocketServer } from 'ws';
import { UpgradeRefused } from '../../src/kube/upgrade.ts';
import { type ChannelSocket, connectChannelSocket, FrameReader } from '../../src/kube/websocket.ts';

// The WebSocket client: server frames read across any split of the bytes
// (headers and payloads cut anywhere, fragmented messages, control frames in
// between), and the client's side checked by a real server (ws): masking,
// subprotocols, a refused upgrade, ping, close.

/** A server frame (unmasked). */
function serverFrame(opcode: number, payload: Buffer, fin = true): Buffer {
  const n = payload.length;
  const head =
    n < 126
      ? Buffer.from([0, n])
      : n < 65536
        ? Buffer.from([0, 126, n >> 8, n & 0xff])
        : Buffer.concat([Buffer.from([0, 127]), Buffer.alloc(8)]);
  if (n >= 65536) head.writeBigUInt64BE(BigInt(n), 2);
  head[0] = (fin ? 0x80 : 0) | opcode;
  return Buffer.concat([head, payload]);
}

const message = (channel: number, body: Buffer) => Buffer.concat([Buffer.from([channel]), body]);

/** Feeds `bytes` to a reader in pieces cut by `cuts` and records what it says. */
function read(bytes: Buffer, cuts: number[]) {
  const events: string[] = [];
  const data = new Map<number, Buffer[]>();
  const reader = new FrameReader({
    data: (channel, chunk, last) => {
      data.set(channel, [...(data.get(channel) ?? []), chunk]);
      if (last) events.push(`end ${channel}`);
    },
    ping: (p) => events.push(`ping ${p.toString()}`),
    pong: () => events.push('pong'),
    close: (code) => events.push(`close ${code}`),
    error: (e) => events.push(`error ${e.message}`),
  });
  let at = 0;
  for (const cut of [...cuts, bytes.length]) {
    if (cut > at) reader.push(bytes.subarray(at, cut));
    at = Math.max(at, cut);
  }
  const joined = new Map([...data].map(([c, list]) => [c, Buffer.concat(list)]));
  return { events, data: joined };
}

test('frames cut anywhere: each channel gets its bytes in order, messages end where they end', () => {
  const big = Buffer.alloc(70_000, 0xab); // a 64-bit length
  const mid = Buffer.alloc(300, 0xcd); // a 16-bit length
  const stream = Buffer.concat([
    serverFrame(2, message(1, Buffer.from('hello '))),
    // One stdout message in three fragments, a ping between the second and third.
    serverFrame(2, message(1, mid), false),
    serverFrame(0, big, false),
    serverFrame(9, Buffer.from('p1')),
    serverFrame(0, Buffer.from('!')),
    serverFrame(2, message(2, Buffer.from('warning\n'))),
    serverFrame(2, message(3, Buffer.from('{"status":"Success"}'))),
    serverFrame(10, Buffer.alloc(0)),
    serverFrame(8, Buffer.from([0x03, 0xe8])),
  ]);
  const expectedStdout = Buffer.concat([Buffer.from('hello '), mid, big, Buffer.from('!')]);
  const expectedEvents = ['end 1', 'ping p1', 'end 1', 'end 2', 'end 3', 'pong', 'close 1000'];
  // Whole, byte by byte over the headers, and at 200 seeded random cut sets.
  let seed = 7;
  const random = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  const cutSets = [[], Array.from({ length: 40 }, (_, i) => i)];
  for (let i = 0; i < 200; i++) {
    const cuts = Array.from({ length: 1 + Math.floor(random() * 30) }, () =>
      Math.floor(random() * stream.length),
    );
    cutSets.push(cuts.sort((a, b) => a - b));
  }
  for (const cuts of cutSets) {
    const { events, data } = read(stream, cuts);
    assert.deepEqual(events, expectedEvents, `cuts ${cuts.join(',')}`);
    assert.deepEqual(data.get(1), expectedStdout, `cuts ${cuts.join(',')}`);
    assert.equal(data.get(2)?.toString(), 'warning\n');
    assert.equal(data.get(3)?.toString(), '{"status":"Success"}');
  }
});

test('stdout bytes are views of the bytes read, not copies', () => {
  const chunk = serverFrame(2, message(1, Buffer.alloc(1000, 5)));
  const views: Buffer[] = [];
  const reader = new FrameReader({
    data: (_c, bytes) => views.push(bytes),
    ping: () => {},
    pong: () => {},
    close: () => {},
    error: (e) => assert.fail(e),
  });
  reader.push(chunk);
  assert.equal(views.length, 1);
  assert.equal(views[0]?.buffer, chunk.buffer);
});

test('a masked server frame, reserved bits or a long control frame is an error', () => {
  const masked = serverFrame(2, message(1, Buffer.from('x')));
  masked[1] = (masked[1] as number) | 0x80;
  assert.deepEqual(read(masked, []).events, ['error the server sent a masked frame']);
  const compressed = serverFrame(2, message(1, Buffer.from('x')));
  compressed[0] = (compressed[0] as number) | 0x40;
  assert.match(read(compressed, []).events[0] ?? '', /^error .*reserved bits/);
  assert.match(read(serverFrame(9, Buffer.alloc(200)), []).events[0] ?? '', /malformed control/);
});

async function withServer(
  handle: (ws: import('ws').WebSocket) => void,
  body: (url: string) => Promise<void>,
) {
  const server = createServer((_req, res) => {
    res.writeHead(403, { 'content-type': 'application/json' });
    res.end('{"kind":"Status","message":"pods \\"web\\" is forbidden"}');
  });
  const wss = new WebSocketServer({
    noServer: true,
    handleProtocols: () => 'v5.channel.k8s.io',
  });
  server.on('upgrade', (req, socket, head) => {
    if (req.url?.startsWith('/refuse')) {
      socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 12\r\n\r\nnot for you.');
      return;
    }
    if (req.url?.startsWith('/chunked')) {
      // As Go writes a body it does not know the length of: in chunks.
      socket.end(
        'HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n9\r\ncontainer\r\ne\r\n "x" not found\r\n0\r\n\r\n',
      );
      return;
    }
    if (req.url?.startsWith('/odd')) {
      // A switch to a subprotocol no client offered.
      const key = String(req.headers['sec-websocket-key']);
      const accept = createHash('sha1')
        .update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`)
        .digest('base64');
      socket.end(
        `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\nSec-WebSocket-Protocol: v9.channel.k8s.io\r\n\r\n`,
      );
      return;
    }
    wss.handleUpgrade(req, socket, head, handle);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  try {
    await body(`ws://127.0.0.1:${port}`);
  } finally {
    for (const client of wss.clients) client.terminate();
    wss.close();
    server.close();
    server.closeAllConnections();
  }
}

/** Whole messages as "channel:length:first bytes". */
function collect(socket: ChannelSocket) {
  const got: string[] = [];
  let parts: Buffer[] = [];
  socket.on('data', (channel: number, bytes: Buffer, last: boolean) => {
    parts.push(bytes);
    if (!last) return;
    const whole = Buffer.concat(parts);
    got.push(`${channel}:${whole.length}:${whole.subarray(0, 8).toString()}`);
    parts = [];
  });
  return got;
}

for (const direct of [false, true]) {
  const how = direct ? 'on a socket of our own' : 'through https.request';
  test(`${how}, against a real server: masked client frames, the subprotocol, ping, and the close handshake`, () =>
    withServer(
      (ws) => {
        ws.on('message', (data: Buffer) =>
          ws.send(Buffer.concat([Buffer.from([1]), data.subarray(1)])),
        );
        ws.on('ping', () => ws.send(Buffer.from('\x02pinged')));
      },
      async (url) => {
        const socket = await connectChannelSocket(
          `${url}/exec`,
          ['v5.channel.k8s.io', 'v4.channel.k8s.io'],
          { direct },
        );
        assert.equal(socket.protocol, 'v5.channel.k8s.io');
        const got = collect(socket);
        let pongs = 0;
        socket.on('pong', () => pongs++);
        socket.start();
        // 70,000 bytes: a 64-bit length, masked; ws closes the connection on an unmasked frame.
        const big = Buffer.alloc(70_000, 0x61);
        await new Promise<void>((resolve, reject) =>
          socket.send(0, big, (e) => (e ? reject(e) : resolve())),
        );
        // v5 ends stdin with a message on channel 255 naming channel 0 (echoed on 1 here).
        assert.equal(socket.canEndStdin, true);
        await new Promise<void>((resolve, reject) =>
          socket.endStdin((e) => (e ? reject(e) : resolve())),
        );
        socket.ping();
        while (got.length < 3 || pongs < 1) await new Promise((r) => setTimeout(r, 10));
        assert.deepEqual(got, ['1:70000:aaaaaaaa', '1:1:\x00', '2:6:pinged']);
        const closed = once(socket, 'close');
        socket.close();
        await closed;
      },
    ));

  test(`${how}: an upgrade the server refuses is its status and body; an unoffered subprotocol is an error`, () =>
    withServer(
      () => {},
      async (url) => {
        await assert.rejects(
          connectChannelSocket(`${url}/refuse`, ['v5.channel.k8s.io'], { direct }),
          (e: unknown) =>
            e instanceof UpgradeRefused && e.statusCode === 403 && e.body === 'not for you.',
        );
        await assert.rejects(
          connectChannelSocket(`${url}/chunked`, ['v5.channel.k8s.io'], { direct }),
          (e: unknown) =>
            e instanceof UpgradeRefused &&
            e.statusCode === 400 &&
            e.body === 'container "x" not found',
        );
        await assert.rejects(
          connectChannelSocket(`${url}/odd`, ['v5.channel.k8s.io'], { direct }),
          /a subprotocol not offered \(v9.channel.k8s.io\)/,
        );
      },
    ));
}

test('on a socket of our own: a header value with a line break is refused before anything is sent', async () => {
  await assert.rejects(
    connectChannelSocket('ws://127.0.0.1:9/exec', ['v5.channel.k8s.io'], {
      direct: true,
      headers: { Authorization: 'Bearer x\r\nX-Evil: 1' },
    }),
    /the request header "Authorization" holds a line break/,
  );
});
