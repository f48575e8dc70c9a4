import assert from 'node:assert/strict';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { test } from 'node:test';
import { errorLine, KubedumpError } from '../../src/errors.ts';
import { buildGlobalHeader, LINKTYPE_LINUX_SLL, parseGlobalHeader } from '../../src/pcap/format.ts';
import { PcapFramer } from '../../src/pcap/framer.ts';

function record(length: number, fill: number, bigEndian = false): Buffer {
  const header = Buffer.alloc(16);
  const write = (v: number, at: number) =>
    bigEndian ? header.writeUInt32BE(v, at) : header.writeUInt32LE(v, at);
  write(1700000000, 0);
  write(fill, 4);
  write(length, 8);
  write(length, 12);
  return Buffer.concat([header, Buffer.alloc(length, fill)]);
}

function bigEndianHeader(): Buffer {
  const h = Buffer.alloc(24);
  h.writeUInt32BE(0xa1b2c3d4, 0);
  h.writeUInt16BE(2, 4);
  h.writeUInt16BE(4, 6);
  h.writeUInt32BE(65535, 16);
  h.writeUInt32BE(1, 20);
  return h;
}

async function frame(chunks: Buffer[], maxPackets = 0) {
  const framer = new PcapFramer({ maxPackets });
  const out: Buffer[] = [];
  await pipeline(
    Readable.from(chunks),
    framer,
    new Writable({
      write(chunk, _e, cb) {
        out.push(chunk);
        cb();
      },
    }),
  );
  return { framer, out, bytes: Buffer.concat(out) };
}

function splitRandomly(data: Buffer, seed: number): Buffer[] {
  const chunks: Buffer[] = [];
  let at = 0;
  let s = seed;
  while (at < data.length) {
    s = (s * 48271) % 2147483647;
    const size = 1 + (s % 97);
    chunks.push(data.subarray(at, at + size));
    at += size;
  }
  return chunks;
}

test('passes whole records however the bytes are split', async () => {
  const records = [record(60, 1), record(1514, 2), record(0, 3), record(300, 4)];
  const stream = Buffer.concat([buildGlobalHeader(LINKTYPE_LINUX_SLL), ...records]);
  for (const seed of [1, 7, 99, 12345]) {
    const { framer, out, bytes } = await frame(splitRandomly(stream, seed));
    assert.deepEqual(bytes, stream);
    assert.equal(framer.packets, 4);
    // Every chunk written ends on a record boundary.
    let total = 0;
    for (const chunk of out) {
      total += chunk.length;
      assert.ok(
        [24, 24 + 76, 24 + 76 + 1530, 24 + 76 + 1530 + 16, stream.length].includes(total),
        `cut at ${total}`,
      );
    }
  }
});

test('drops a torn tail so the output stays a valid capture', async () => {
  const whole = Buffer.concat([buildGlobalHeader(1), record(100, 1)]);
  const torn = record(200, 2).subarray(0, 50);
  const { framer, bytes } = await frame([whole, torn]);
  assert.deepEqual(bytes, whole);
  assert.equal(framer.packets, 1);
  assert.equal(framer.pendingBytes, 50);
});

test('reads big-endian captures and stops at the packet limit', async () => {
  const stream = Buffer.concat([
    bigEndianHeader(),
    record(10, 1, true),
    record(20, 2, true),
    record(30, 3, true),
  ]);
  assert.equal(parseGlobalHeader(stream)?.littleEndian, false);
  const { framer, bytes } = await frame([stream], 2);
  assert.equal(framer.packets, 2);
  assert.equal(bytes.length, 24 + 26 + 36);
});

test('rejects a stream that is not pcap', async () => {
  await assert.rejects(
    frame([Buffer.from('OCI runtime exec failed: exec failed: no such file ....')]),
    (e: unknown) =>
      e instanceof KubedumpError &&
      e.code === 'PCAP_FORMAT' &&
      /^the remote tcpdump did not write a pcap stream: .*log level debug/.test(errorLine(e)),
  );
});

test('a chunk of many whole records goes out as one slice of that chunk, not a copy', async () => {
  const records = Array.from({ length: 50 }, (_, i) => record(100 + i, i));
  const chunk = Buffer.concat([buildGlobalHeader(1), ...records]);
  const { framer, out } = await frame([chunk]);
  assert.equal(out.length, 1);
  assert.equal(out[0]?.buffer, chunk.buffer);
  assert.equal(out[0]?.byteOffset, chunk.byteOffset);
  assert.equal(out[0]?.length, chunk.length);
  assert.equal(framer.packets, 50);
});

test('a record cut inside its own header, and one cut in its data, are put together whole', async () => {
  const head = buildGlobalHeader(1);
  const [a, b, c, d] = [record(40, 1), record(0, 2), record(700, 3), record(5, 4)];
  const stream = Buffer.concat([head, a, b, c, d]);
  // Cuts: inside a's 16-byte header (byte 8: its length not yet known), just
  // after b's header (a zero-length record), inside c's data.
  const cuts = [24 + 8, 24 + 56 + 16, 24 + 56 + 16 + 300, stream.length];
  const chunks: Buffer[] = [];
  let from = 0;
  for (const cut of cuts) {
    chunks.push(Buffer.from(stream.subarray(from, cut)));
    from = cut;
  }
  const { framer, out, bytes } = await frame(chunks);
  assert.deepEqual(bytes, stream);
  assert.equal(framer.packets, 4);
  assert.equal(framer.pendingBytes, 0);
  // Each written piece is whole records: header, a, b, then c, then d.
  assert.deepEqual(
    out.map((o) => o.length),
    [24, 56, 16, 716, 21],
  );
});

test('the packet limit stops inside a chunk, after a record that was put together', async () => {
  const stream = Buffer.concat([buildGlobalHeader(1), record(30, 1), record(30, 2), record(30, 3)]);
  let limits = 0;
  const framer = new PcapFramer({ maxPackets: 2, onLimit: () => limits++ });
  const out: Buffer[] = [];
  framer.on('data', (c: Buffer) => out.push(c));
  // The first record arrives in two pieces; the rest in one chunk.
  framer.write(stream.subarray(0, 24 + 20));
  framer.write(stream.subarray(24 + 20));
  framer.end();
  await new Promise((r) => framer.once('end', r));
  assert.equal(framer.packets, 2);
  assert.equal(limits, 1);
  assert.equal(Buffer.concat(out).length, 24 + 46 * 2);
});

test('an implausible record length is an error even when its header arrives in pieces', async () => {
  const bad = record(10, 1);
  bad.writeUInt32LE(100 * 1024 * 1024, 8);
  const stream = Buffer.concat([buildGlobalHeader(1), bad]);
  await assert.rejects(
    frame([stream.subarray(0, 30), stream.subarray(30)]),
    (e: unknown) => e instanceof KubedumpError && e.code === 'PCAP_FORMAT',
  );
});

test('takeView: records from views of one reused buffer come out whole, cut ones put together in one reused buffer; a full consumer is told', () => {
  const stream = Buffer.concat([
    buildGlobalHeader(LINKTYPE_LINUX_SLL, 65535),
    // Over 4 KiB each, so that no buffer put together comes from Node's shared pool.
    ...Array.from({ length: 40 }, (_, i) => record(4100 + ((i * 53) % 3000), i)),
  ]);
  const framer = new PcapFramer();
  const scratch = Buffer.alloc(1500);
  const out: Buffer[] = [];
  let closed = 0;
  // Records cut by the pieces are put together in one buffer, reused.
  const assembled = new Set<ArrayBufferLike>();
  for (let at = 0; at < stream.length; at += scratch.length) {
    const n = stream.copy(scratch, 0, at, at + scratch.length);
    // Each view is overwritten by the next piece: the consumer keeps copies.
    const open = framer.takeView(scratch.subarray(0, n), (bytes) => {
      if (bytes.buffer !== scratch.buffer) assembled.add(bytes.buffer);
      out.push(Buffer.from(bytes));
      return out.length % 5 !== 0;
    });
    assert.ok(!(open instanceof Error));
    if (!open) closed++;
  }
  assert.deepEqual(Buffer.concat(out), stream);
  assert.equal(framer.packets, 40);
  assert.ok(closed > 0, 'a consumer that said "full" was not reported');
  assert.ok(assembled.size <= 2, `${assembled.size} buffers put records together`);
  const bad = new PcapFramer().takeView(Buffer.alloc(24, 7), () => true);
  assert.ok(bad instanceof Error && /not write a pcap stream/.test(bad.message));
});
