import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  buildGlobalHeader,
  type GlobalHeader,
  LINKTYPE_ETHERNET,
  parseGlobalHeader,
} from '../../src/pcap/format.ts';
import { PcapFramer } from '../../src/pcap/framer.ts';
import {
  BLOCK_ENHANCED_PACKET,
  BLOCK_INTERFACE_DESCRIPTION,
  BLOCK_NAME_RESOLUTION,
  BLOCK_SECTION_HEADER,
  enhancedPacketBlock,
  interfaceDescriptionBlock,
  interfaceFromPcap,
  nameResolutionBlock,
  putEnhancedPacket,
  sectionHeaderBlock,
} from '../../src/pcap/pcapng.ts';
import { PcapngOutput } from '../../src/pcap/pcapng-output.ts';

interface Block {
  type: number;
  body: Buffer;
}

/** Splits a pcapng byte string into blocks, checking both length fields and the padding. */
function blocks(bytes: Buffer): Block[] {
  const out: Block[] = [];
  let at = 0;
  while (at < bytes.length) {
    const type = bytes.readUInt32LE(at);
    const total = bytes.readUInt32LE(at + 4);
    assert.equal(total % 4, 0, `block at ${at} has length ${total}, not a multiple of 4`);
    assert.equal(
      bytes.readUInt32LE(at + total - 4),
      total,
      `trailing length of the block at ${at}`,
    );
    out.push({ type, body: bytes.subarray(at + 8, at + total - 4) });
    at += total;
  }
  assert.equal(at, bytes.length);
  return out;
}

/** The options of a block body from `start`: code and value, checking padding and opt_endofopt. */
function options(body: Buffer, start: number): [number, Buffer][] {
  const out: [number, Buffer][] = [];
  let at = start;
  if (at === body.length) return out;
  for (;;) {
    const code = body.readUInt16LE(at);
    const length = body.readUInt16LE(at + 2);
    if (code === 0) {
      assert.equal(length, 0, 'opt_endofopt has length 0');
      assert.equal(at + 4, body.length, 'opt_endofopt ends the block');
      return out;
    }
    out.push([code, body.subarray(at + 4, at + 4 + length)]);
    const next = at + 4 + ((length + 3) & ~3);
    assert.ok(
      body.subarray(at + 4 + length, next).every((b) => b === 0),
      'padding is zeros',
    );
    at = next;
  }
}

const text = (opts: [number, Buffer][], code: number): string[] =>
  opts.filter(([c]) => c === code).map(([, v]) => v.toString('utf8'));

describe('pcapng blocks', () => {
  test('a Section Header Block: magic, version 1.0, unknown length, options', () => {
    const [shb, ...rest] = blocks(sectionHeaderBlock({ application: 'kubedump', comment: 'x' }));
    assert.equal(rest.length, 0);
    assert.equal(shb?.type, BLOCK_SECTION_HEADER);
    const body = shb?.body ?? Buffer.alloc(0);
    assert.equal(body.readUInt32LE(0), 0x1a2b3c4d);
    assert.equal(body.readUInt16LE(4), 1);
    assert.equal(body.readUInt16LE(6), 0);
    assert.equal(body.readBigInt64LE(8), -1n);
    const opts = options(body, 16);
    assert.deepEqual(text(opts, 1), ['x']);
    assert.deepEqual(text(opts, 4), ['kubedump']);
  });

  test('a block without options has no opt_endofopt', () => {
    const [shb] = blocks(sectionHeaderBlock());
    assert.equal(shb?.body.length, 16);
    const [idb] = blocks(interfaceDescriptionBlock({ linktype: 113, snaplen: 0 }));
    assert.equal(idb?.body.length, 8);
  });

  test('an Interface Description Block: link type, snaplen, name, description, os, hardware, tsresol, comment', () => {
    const [idb] = blocks(
      interfaceDescriptionBlock({
        linktype: 113,
        snaplen: 65535,
        resolution: 'nano',
        name: 'demo/web',
        description: 'pod web on node n1, 10.88.0.12',
        os: 'Linux',
        hardware: 'containerd',
        comment: ['one', 'two'],
      }),
    );
    assert.equal(idb?.type, BLOCK_INTERFACE_DESCRIPTION);
    const body = idb?.body ?? Buffer.alloc(0);
    assert.equal(body.readUInt16LE(0), 113);
    assert.equal(body.readUInt16LE(2), 0);
    assert.equal(body.readUInt32LE(4), 65535);
    const opts = options(body, 8);
    assert.deepEqual(text(opts, 2), ['demo/web']);
    assert.deepEqual(text(opts, 3), ['pod web on node n1, 10.88.0.12']);
    assert.deepEqual(text(opts, 12), ['Linux']);
    assert.deepEqual(text(opts, 15), ['containerd']);
    assert.deepEqual(text(opts, 1), ['one', 'two']);
    assert.deepEqual(
      opts.filter(([c]) => c === 9).map(([, v]) => [...v]),
      [[9]],
    );
    // Microseconds are pcapng's default: no if_tsresol then.
    const [micro] = blocks(
      interfaceDescriptionBlock({ linktype: 1, snaplen: 0, resolution: 'micro', name: 'a' }),
    );
    assert.deepEqual(
      options(micro?.body ?? Buffer.alloc(0), 8).map(([c]) => c),
      [2],
    );
  });

  test('an Enhanced Packet Block: interface, 64-bit timestamp, lengths, padded data, comment, flags', () => {
    const data = Buffer.alloc(61, 0xab);
    const timestamp = 1_700_000_000_123_456_789n;
    const bytes = enhancedPacketBlock({
      interfaceId: 3,
      timestamp,
      data,
      originalLength: 1500,
      comment: 'the only one',
      flags: 1,
    });
    const [epb] = blocks(bytes);
    assert.equal(epb?.type, BLOCK_ENHANCED_PACKET);
    const body = epb?.body ?? Buffer.alloc(0);
    assert.equal(body.readUInt32LE(0), 3);
    assert.equal((BigInt(body.readUInt32LE(4)) << 32n) | BigInt(body.readUInt32LE(8)), timestamp);
    assert.equal(body.readUInt32LE(12), 61);
    assert.equal(body.readUInt32LE(16), 1500);
    assert.deepEqual(body.subarray(20, 81), data);
    assert.deepEqual([...body.subarray(81, 84)], [0, 0, 0]);
    const opts = options(body, 84);
    assert.deepEqual(text(opts, 1), ['the only one']);
    assert.deepEqual(
      opts.filter(([c]) => c === 2).map(([, v]) => v.readUInt32LE(0)),
      [1],
    );
  });

  test('a Name Resolution Block: IPv4 and IPv6 records, zero-terminated names, end record, comment', () => {
    const [nrb] = blocks(
      nameResolutionBlock(
        [
          { address: '10.88.0.12', names: ['web-7d9f'] },
          { address: 'fd00::c', names: ['web-7d9f', 'web'] },
        ],
        'pods of demo',
      ),
    );
    assert.equal(nrb?.type, BLOCK_NAME_RESOLUTION);
    const body = nrb?.body ?? Buffer.alloc(0);
    assert.equal(body.readUInt16LE(0), 1);
    assert.equal(body.readUInt16LE(2), 4 + 9);
    assert.deepEqual([...body.subarray(4, 8)], [10, 88, 0, 12]);
    assert.equal(body.subarray(8, 17).toString('latin1'), 'web-7d9f\0');
    const v6 = 4 + 16; // 13 bytes padded to 16
    assert.equal(body.readUInt16LE(v6), 2);
    assert.equal(body.readUInt16LE(v6 + 2), 16 + 9 + 4);
    assert.equal(
      body.subarray(v6 + 4, v6 + 20).toString('hex'),
      'fd00000000000000000000000000000c',
    );
    assert.equal(body.subarray(v6 + 20, v6 + 33).toString('latin1'), 'web-7d9f\0web\0');
    const end = v6 + 4 + 32;
    assert.equal(body.readUInt32LE(end), 0, 'nrb_record_end');
    assert.deepEqual(text(options(body, end + 4), 1), ['pods of demo']);
  });

  test('IPv6 addresses in every text form', () => {
    const bytesOf = (address: string): string => {
      const [nrb] = blocks(nameResolutionBlock([{ address, names: ['n'] }]));
      return nrb?.body.subarray(4, 20).toString('hex') ?? '';
    };
    assert.equal(bytesOf('::1'), '00000000000000000000000000000001');
    assert.equal(bytesOf('::'), '00000000000000000000000000000000');
    assert.equal(bytesOf('2001:db8::1:2'), '20010db8000000000000000000010002');
    assert.equal(bytesOf('fe80::'), 'fe800000000000000000000000000000');
    assert.equal(bytesOf('1:2:3:4:5:6:7:8'), '00010002000300040005000600070008');
    assert.equal(bytesOf('::ffff:10.88.0.12'), '00000000000000000000ffff0a58000c');
    assert.equal(bytesOf('::10.88.0.12'), '0000000000000000000000000a58000c');
    assert.equal(bytesOf('64:ff9b::1:2:3:4.5.6.7'), '0064ff9b000000010002000304050607');
  });

  test('bad input is refused with the value named', () => {
    assert.throws(
      () => nameResolutionBlock([{ address: 'web', names: ['web'] }]),
      /not an IP address for a name record: "web"/,
    );
    assert.throws(
      () => nameResolutionBlock([{ address: 'fe80::1%eth0', names: ['x'] }]),
      /fe80::1%eth0/,
    );
    assert.throws(
      () => nameResolutionBlock([{ address: '10.0.0.1', names: [] }]),
      /no name for 10.0.0.1/,
    );
    assert.throws(
      () => nameResolutionBlock([{ address: '10.0.0.1', names: ['a\0b'] }]),
      /bad name/,
    );
    assert.throws(
      () => interfaceDescriptionBlock({ linktype: 1, snaplen: 0, description: 'x'.repeat(70_000) }),
      /option 3 is 70000 bytes, over 65535/,
    );
  });
});

/** A classic pcap record: 16-byte header in the given byte order, then data. */
function pcapRecord(
  seconds: number,
  fraction: number,
  data: Buffer,
  littleEndian = true,
  originalLength = data.length,
): Buffer {
  const header = Buffer.alloc(16);
  const write = (v: number, at: number) =>
    littleEndian ? header.writeUInt32LE(v, at) : header.writeUInt32BE(v, at);
  write(seconds, 0);
  write(fraction, 4);
  write(data.length, 8);
  write(originalLength, 12);
  return Buffer.concat([header, data]);
}

function nanoHeader(): Buffer {
  const h = buildGlobalHeader(LINKTYPE_ETHERNET, 65535);
  h.writeUInt32LE(0xa1b23c4d, 0);
  return h;
}

function bigEndianHeader(): Buffer {
  const h = Buffer.alloc(24);
  h.writeUInt32BE(0xa1b2c3d4, 0);
  h.writeUInt16BE(2, 4);
  h.writeUInt16BE(4, 6);
  h.writeUInt32BE(9000, 16);
  h.writeUInt32BE(113, 20);
  return h;
}

/**
 * Pcap bytes in odd-sized chunks through the real framer into a PcapngOutput
 * source, both ways a capture feeds it: as a stream, and as views of one
 * reused read buffer into an output that takes views. Both must write the
 * same bytes; the EPBs as parsed blocks.
 */
async function convert(pcap: Buffer, interfaceId: number) {
  const chunks: Buffer[] = [];
  for (let at = 0; at < pcap.length; at += 7) chunks.push(pcap.subarray(at, at + 7));
  const headers: GlobalHeader[] = [];
  const pick = (h: GlobalHeader) => {
    headers.push(h);
    return interfaceId;
  };

  const streamed = collector();
  const viaStream = new PcapngOutput(streamed.sink, {});
  const source = viaStream.source(pick);
  await pipeline(Readable.from(chunks), new PcapFramer(), source);

  const viewed = collector();
  const viaViews = new PcapngOutput(viewed.sink, {});
  const viewSource = viaViews.source(pick);
  const framer = new PcapFramer();
  const readBuffer = Buffer.alloc(7);
  for (const chunk of chunks) {
    readBuffer.fill(0xee);
    chunk.copy(readBuffer);
    const taken = framer.takeView(readBuffer.subarray(0, chunk.length), (r) => viewSource.take(r));
    assert.equal(taken, true);
  }
  const [streamBytes, viewBytes] = [streamed.bytes(), viewed.bytes()];
  assert.deepEqual(viewBytes, streamBytes, 'views and stream give the same blocks');
  assert.equal(headers.length, 2, 'the interface is picked once per source');
  const [shb, ...epbs] = blocks(streamBytes);
  assert.equal(shb?.type, BLOCK_SECTION_HEADER);
  assert.equal(viaViews.packets, viaStream.packets);
  return { output: viaStream, header: source.header, headers, blocks: epbs };
}

/** A stream that keeps what is written, and also takes views (copying them), as an output does. */
function collector() {
  const out: Buffer[] = [];
  const sink = Object.assign(
    new Writable({
      write(chunk: Buffer, _e, cb) {
        out.push(chunk);
        cb();
      },
    }),
    {
      take: (bytes: Buffer) => out.push(Buffer.from(bytes)) > 0,
      onDrain: () => {},
    },
  );
  return { sink, bytes: () => Buffer.concat(out) };
}

function epbFields(block: Block | undefined) {
  assert.equal(block?.type, BLOCK_ENHANCED_PACKET);
  const body = block?.body ?? Buffer.alloc(0);
  const captured = body.readUInt32LE(12);
  return {
    interfaceId: body.readUInt32LE(0),
    timestamp: (BigInt(body.readUInt32LE(4)) << 32n) | BigInt(body.readUInt32LE(8)),
    captured,
    original: body.readUInt32LE(16),
    data: body.subarray(20, 20 + captured),
  };
}

describe('pcap records to Enhanced Packet Blocks', () => {
  test('microsecond pcap: timestamps in microseconds, lengths and data kept, the interface id set', async () => {
    const a = Buffer.alloc(60, 1);
    const b = Buffer.alloc(3, 2);
    const pcap = Buffer.concat([
      buildGlobalHeader(LINKTYPE_ETHERNET, 262144),
      pcapRecord(1_700_000_000, 123_456, a, true, 1514),
      pcapRecord(1_700_000_001, 999_999, b),
    ]);
    const { output, header, blocks: out } = await convert(pcap, 2);
    assert.equal(output.packets, 2);
    assert.equal(out.length, 2);
    const first = epbFields(out[0]);
    assert.deepEqual(
      { ...first, data: [...first.data] },
      {
        interfaceId: 2,
        timestamp: 1_700_000_000_123_456n,
        captured: 60,
        original: 1514,
        data: [...a],
      },
    );
    const second = epbFields(out[1]);
    assert.equal(second.timestamp, 1_700_000_001_999_999n);
    assert.deepEqual(second.data, b);
    assert.ok(header);
    assert.deepEqual(interfaceFromPcap(header, { name: 'demo/web' }), {
      name: 'demo/web',
      linktype: LINKTYPE_ETHERNET,
      snaplen: 262144,
      resolution: 'micro',
    });
  });

  test('nanosecond pcap: timestamps in nanoseconds and an interface with if_tsresol 9', async () => {
    const pcap = Buffer.concat([
      nanoHeader(),
      pcapRecord(1_700_000_000, 123_456_789, Buffer.alloc(20, 5)),
    ]);
    const { header, blocks: out } = await convert(pcap, 0);
    assert.equal(epbFields(out[0]).timestamp, 1_700_000_000_123_456_789n);
    assert.ok(header);
    assert.equal(interfaceFromPcap(header).resolution, 'nano');
  });

  test('big-endian pcap: the record header is read in its own byte order', async () => {
    const pcap = Buffer.concat([
      bigEndianHeader(),
      pcapRecord(1_600_000_000, 42, Buffer.alloc(10, 9), false, 77),
    ]);
    const { header, blocks: out } = await convert(pcap, 1);
    const epb = epbFields(out[0]);
    assert.equal(epb.timestamp, 1_600_000_000_000_042n);
    assert.equal(epb.captured, 10);
    assert.equal(epb.original, 77);
    assert.equal(header?.linktype, 113);
    assert.equal(header?.snaplen, 9000);
  });

  test('each record, in pieces, is the block the reference encoder writes', () => {
    // Seeded: timestamps up to the last second pcap can hold, every padding, both byte orders and units.
    let seed = 7;
    const next = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (let i = 0; i < 400; i++) {
      const littleEndian = i % 2 === 0;
      const nanos = i % 3 === 0;
      const seconds = i === 0 ? 0xffffffff : next(2 ** 31) * 2 + (i % 2);
      const fraction = next(nanos ? 1_000_000_000 : 1_000_000);
      const data = Buffer.alloc(next(70), i);
      const original = data.length + next(1500);
      const header = { littleEndian, nanos, snaplen: 262144, linktype: 1 };
      const record = pcapRecord(seconds, fraction, data, littleEndian, original);
      const at = next(5);
      const bytes = Buffer.concat([Buffer.alloc(at, 0xee), record, Buffer.alloc(3, 0xee)]);
      const pieces: Buffer[] = [];
      const end = putEnhancedPacket(bytes, at, header, i % 4, (p) => pieces.push(Buffer.from(p)));
      assert.equal(end, at + record.length);
      const units = nanos ? 1_000_000_000n : 1_000_000n;
      const expected = enhancedPacketBlock({
        interfaceId: i % 4,
        timestamp: BigInt(seconds) * units + BigInt(fraction),
        data,
        originalLength: original,
      });
      assert.deepEqual(Buffer.concat(pieces), expected, `record ${i}`);
    }
  });

  test('a record cut short is refused, and the source that got it stops with why', async () => {
    const header = parseGlobalHeader(buildGlobalHeader(1));
    assert.ok(header);
    const record = pcapRecord(1, 2, Buffer.alloc(10));
    assert.throws(
      () => putEnhancedPacket(record.subarray(0, 20), 0, header, 0, () => {}),
      /torn pcap record/,
    );
    assert.throws(
      () => putEnhancedPacket(record.subarray(0, 9), 0, header, 0, () => {}),
      /torn pcap record header/,
    );
    const { sink } = collector();
    const source = new PcapngOutput(sink, {}).source(() => 0);
    const errors: Error[] = [];
    source.on('error', (e) => errors.push(e)); // as a capture listens
    assert.equal(source.take(Buffer.concat([buildGlobalHeader(1), record.subarray(0, 20)])), true);
    assert.equal(source.destroyed, true);
    assert.match(String(source.errored), /torn pcap record/);
    await new Promise((r) => setImmediate(r));
    assert.match(String(errors[0]), /torn pcap record/);
  });
});

// ---- Read back by the real tshark and dumpcap ----

/** Ethernet + IPv4 + UDP from `src` to `dst` carrying `payload`. */
function udpFrame(src: string, dst: string, payload: string): Buffer {
  const data = Buffer.from(payload);
  const ip = Buffer.alloc(28 + data.length);
  ip[0] = 0x45;
  ip.writeUInt16BE(ip.length, 2);
  ip[8] = 64;
  ip[9] = 17;
  Buffer.from(src.split('.').map(Number)).copy(ip, 12);
  Buffer.from(dst.split('.').map(Number)).copy(ip, 16);
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += ip.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
  ip.writeUInt16BE(~sum & 0xffff, 10);
  ip.writeUInt16BE(40000, 20);
  ip.writeUInt16BE(9999, 22);
  ip.writeUInt16BE(8 + data.length, 24);
  data.copy(ip, 28);
  const ethernet = Buffer.alloc(14);
  ethernet.writeUInt16BE(0x0800, 12);
  return Buffer.concat([ethernet, ip]);
}

const WEB_IP = '10.88.0.12';
const CLIENT_IP = '10.88.0.13';

/**
 * A merged capture as a live merge writes it: the web pod's interface and
 * packets first, the client pod's interface added later (nanosecond pcap),
 * the names of both, a failed pod's interface with its note.
 */
async function mergedCapture(): Promise<Buffer[]> {
  const web = Buffer.concat([
    buildGlobalHeader(LINKTYPE_ETHERNET, 262144),
    pcapRecord(1_700_000_000, 100_000, udpFrame(WEB_IP, CLIENT_IP, 'one')),
    pcapRecord(1_700_000_002, 300_000, udpFrame(WEB_IP, CLIENT_IP, 'three')),
  ]);
  const client = Buffer.concat([
    nanoHeader(),
    pcapRecord(1_700_000_001, 200_000_123, udpFrame(CLIENT_IP, WEB_IP, 'two')),
  ]);
  const webBlocks = await convert(web, 0);
  const clientBlocks = await convert(client, 1);
  const whole = (b: Block) => {
    const out = Buffer.alloc(b.body.length + 12);
    out.writeUInt32LE(b.type, 0);
    out.writeUInt32LE(out.length, 4);
    b.body.copy(out, 8);
    out.writeUInt32LE(out.length, out.length - 4);
    return out;
  };
  const webHeader = webBlocks.header;
  const clientHeader = clientBlocks.header;
  assert.ok(webHeader && clientHeader);
  const [web1, web2] = webBlocks.blocks;
  const [client1] = clientBlocks.blocks;
  assert.ok(web1 && web2 && client1);
  return [
    sectionHeaderBlock({ application: 'kubedump test' }),
    interfaceDescriptionBlock(
      interfaceFromPcap(webHeader, {
        name: 'demo/web',
        description: `pod web on node kubedump-node, IP ${WEB_IP}, container web, app=web`,
        os: 'Linux',
      }),
    ),
    nameResolutionBlock([
      { address: WEB_IP, names: ['web'] },
      { address: CLIENT_IP, names: ['client'] },
    ]),
    whole(web1),
    interfaceDescriptionBlock(
      interfaceFromPcap(clientHeader, {
        name: 'demo/client',
        description: `pod client on node kubedump-node, IP ${CLIENT_IP}, container client`,
      }),
    ),
    enhancedPacketBlock({
      interfaceId: 1,
      timestamp: epbFields(client1).timestamp,
      data: epbFields(client1).data,
      comment: 'the client asks',
    }),
    whole(web2),
    interfaceDescriptionBlock({
      linktype: LINKTYPE_ETHERNET,
      snaplen: 0,
      name: 'demo/distroless',
      comment: 'demo/distroless: has no /bin/sh; use privileged mode',
    }),
  ];
}

function run(
  file: string,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const options = { timeout: 30_000, killSignal: 'SIGKILL' as const, encoding: 'utf8' as const };
    execFile(file, args, options, (error, stdout, stderr) => {
      const code = error ? ((error as { code?: unknown }).code as number) : 0;
      resolve({ code: typeof code === 'number' ? code : -1, stdout, stderr });
    });
  });
}

const FIELDS = [
  '-T',
  'fields',
  '-E',
  'separator=|',
  '-e',
  'frame.interface_id',
  '-e',
  'frame.interface_name',
  '-e',
  'frame.interface_description',
  '-e',
  'frame.time_epoch',
  '-e',
  'ip.src',
  '-e',
  'ip.src_host',
  '-e',
  'ip.dst_host',
  '-e',
  'frame.comment',
];
// Names from the file's NRB only: no DNS, no /etc/hosts look-ups for these addresses.
const NAMES = ['-N', 'n', '-o', 'nameres.use_external_name_resolver:FALSE'];

const EXPECTED_ROWS = [
  `0|demo/web|pod web on node kubedump-node, IP ${WEB_IP}, container web, app=web|1700000000.100000000|${WEB_IP}|web|client|`,
  `1|demo/client|pod client on node kubedump-node, IP ${CLIENT_IP}, container client|1700000001.200000123|${CLIENT_IP}|client|web|the client asks`,
  `0|demo/web|pod web on node kubedump-node, IP ${WEB_IP}, container web, app=web|1700000002.300000000|${WEB_IP}|web|client|`,
];

function rows(stdout: string): string[] {
  return stdout.split('\n').filter((l) => l !== '');
}

describe('a merged pcapng read by the real tshark', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'kubedump-pcapng-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('interface names, descriptions, timestamps, comments and NRB names', async () => {
    const file = path.join(dir, 'merged.pcapng');
    writeFileSync(file, Buffer.concat(await mergedCapture()));
    const named = await run('tshark', ['-r', file, ...NAMES, ...FIELDS]);
    assert.equal(named.code, 0, named.stderr);
    assert.deepEqual(rows(named.stdout), EXPECTED_ROWS);
    // Without name resolution the addresses stay addresses: the names came from the NRB.
    const plain = await run('tshark', ['-r', file, '-n', ...FIELDS]);
    assert.equal(plain.code, 0, plain.stderr);
    assert.deepEqual(
      rows(plain.stdout).map((r) => r.split('|').slice(4, 7).join('|')),
      [
        `${WEB_IP}|${WEB_IP}|${CLIENT_IP}`,
        `${CLIENT_IP}|${CLIENT_IP}|${WEB_IP}`,
        `${WEB_IP}|${WEB_IP}|${CLIENT_IP}`,
      ],
    );
    // The failed pod's note is on its interface.
    const info = await run('capinfos', [file]);
    assert.equal(info.code, 0, info.stderr);
    assert.match(info.stdout, /Number of interfaces in file: 3/);
    assert.match(
      info.stdout,
      /Name = demo\/distroless\n(.*\n)*?\s+Comment = demo\/distroless: has no \/bin\/sh; use privileged mode/,
    );
    assert.match(info.stdout, /Number of resolved IPv4 addresses in file: 2/);
  });

  /**
   * Writes the blocks into a fifo one at a time, as a live capture does.
   * Opening blocks until the reader opens it: give up if the reader exits first.
   */
  async function feedFifo(
    fifo: string,
    parts: Buffer[],
    reader: Promise<{ code: number; stderr: string }>,
  ): Promise<void> {
    const gone = reader.then((r) => {
      throw new Error(`the reader exited (${r.code}) before opening the fifo: ${r.stderr}`);
    });
    const handle = await Promise.race([open(fifo, 'w'), gone]);
    try {
      for (const part of parts) {
        await handle.write(part);
        await sleep(20);
      }
    } finally {
      await handle.close();
    }
  }

  async function mkfifo(name: string): Promise<string> {
    const fifo = path.join(dir, name);
    const made = await run('mkfifo', [fifo]);
    assert.equal(made.code, 0, made.stderr);
    return fifo;
  }

  test('dumpcap takes it through a fifo: interfaces added mid-stream, NRB and comments kept', async () => {
    const fifo = await mkfifo('dumpcap.fifo');
    const out = path.join(dir, 'dumpcap.pcapng');
    const dumpcap = run('dumpcap', ['-q', '-i', fifo, '-w', out]);
    await feedFifo(fifo, await mergedCapture(), dumpcap);
    const done = await dumpcap;
    assert.equal(done.code, 0, done.stderr);
    const read = await run('tshark', ['-r', out, ...NAMES, ...FIELDS]);
    assert.equal(read.code, 0, read.stderr);
    assert.deepEqual(rows(read.stdout), EXPECTED_ROWS);
  });

  test('tshark -i - takes it on stdin, as it takes an extcap fifo', async () => {
    // Its own process group, so that the deadline kills its dumpcap too: a
    // stream dumpcap cannot parse would leave both waiting.
    const tshark = spawn('tshark', ['-i', '-', ...NAMES, ...FIELDS], {
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true,
    });
    const pid = tshark.pid;
    assert.ok(pid, 'tshark did not start');
    const deadline = setTimeout(() => process.kill(-pid, 'SIGKILL'), 30_000);
    tshark.stdin.on('error', () => {});
    let stdout = '';
    let stderr = '';
    tshark.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    tshark.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    const exited = new Promise<number | null>((resolve) => tshark.on('close', resolve));
    for (const part of await mergedCapture()) {
      tshark.stdin.write(part);
      await sleep(20);
    }
    tshark.stdin.end();
    const code = await exited;
    clearTimeout(deadline);
    assert.equal(code, 0, stderr);
    assert.deepEqual(rows(stdout), EXPECTED_ROWS);
    assert.match(stderr, /3 packets captured/);
  });
});
