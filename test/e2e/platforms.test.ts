import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ROOT } from '../support/kubedump.ts';

// The executables of `scripts/build --all`, checked as files: none of the
// foreign ones can run here, so their format, architecture, payload and (for
// macOS) ad-hoc code signature are read from the bytes.

const DIST = join(ROOT, 'build', 'dist');
const TARGETS = [
  { file: 'kubedump-linux-x64', format: 'elf', machine: 62 },
  { file: 'kubedump-linux-arm64', format: 'elf', machine: 183 },
  { file: 'kubedump-win-x64.exe', format: 'pe', machine: 0x8664 },
  { file: 'kubedump-darwin-x64', format: 'macho', machine: 0x01000007 },
  { file: 'kubedump-darwin-arm64', format: 'macho', machine: 0x0100000c },
] as const;
const FUSE_ON = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2:1';

interface Manifest {
  binaries: Record<string, { sha256: string; size: number }>;
}

function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** A SEA asset: its key then its bytes, each preceded by a 64-bit little-endian length. */
function seaAsset(file: Buffer, key: string): Buffer {
  const name = Buffer.from(key);
  for (let at = file.indexOf(name); at >= 8; at = file.indexOf(name, at + 1)) {
    if (file.readBigUInt64LE(at - 8) !== BigInt(name.length)) continue;
    const start = at + name.length + 8;
    const size = Number(file.readBigUInt64LE(at + name.length));
    return file.subarray(start, start + size);
  }
  throw new Error(`no SEA asset ${key}`);
}

function machine(file: Buffer, format: string): number {
  if (format === 'elf') {
    assert.equal(file.readUInt32BE(0), 0x7f454c46, 'ELF magic');
    return file.readUInt16LE(18);
  }
  if (format === 'pe') {
    assert.equal(file.toString('latin1', 0, 2), 'MZ');
    const pe = file.readUInt32LE(0x3c);
    assert.equal(file.toString('latin1', pe, pe + 4), 'PE\0\0');
    return file.readUInt16LE(pe + 4);
  }
  assert.equal(file.readUInt32LE(0), 0xfeedfacf, 'thin 64-bit Mach-O magic');
  assert.equal(file.readUInt32LE(12), 2, 'MH_EXECUTE');
  return file.readUInt32LE(4);
}

interface Segment {
  name: string;
  fileoff: number;
  filesize: number;
}

function machoLayout(file: Buffer): { segments: Segment[]; signature?: [number, number] } {
  const segments: Segment[] = [];
  let signature: [number, number] | undefined;
  let at = 32;
  for (let i = 0; i < file.readUInt32LE(16); i++) {
    const cmd = file.readUInt32LE(at);
    if (cmd === 0x19) {
      segments.push({
        name: file.toString('latin1', at + 8, at + 24).replace(/\0+$/, ''),
        fileoff: Number(file.readBigUInt64LE(at + 40)),
        filesize: Number(file.readBigUInt64LE(at + 48)),
      });
    }
    if (cmd === 0x1d) signature = [file.readUInt32LE(at + 8), file.readUInt32LE(at + 12)];
    at += file.readUInt32LE(at + 4);
  }
  return { segments, signature };
}

/** Checks the embedded signature the way the kernel does: every page hash of the CodeDirectory. */
function checkAdhocSignature(file: Buffer): void {
  const { segments, signature } = machoLayout(file);
  assert.ok(signature, 'LC_CODE_SIGNATURE present');
  const [dataoff, datasize] = signature;
  const linkedit = segments.find((s) => s.name === '__LINKEDIT');
  assert.ok(linkedit, '__LINKEDIT present');
  assert.equal(segments.at(-1)?.name, '__LINKEDIT', '__LINKEDIT is the last segment');
  assert.ok(
    dataoff >= linkedit.fileoff && dataoff + datasize <= linkedit.fileoff + linkedit.filesize,
  );
  assert.equal(linkedit.fileoff + linkedit.filesize, file.length, '__LINKEDIT ends the file');

  const blob = file.subarray(dataoff, dataoff + datasize);
  assert.equal(blob.readUInt32BE(0), 0xfade0cc0, 'embedded signature SuperBlob');
  const slots = new Map<number, number>();
  for (let i = 0; i < blob.readUInt32BE(8); i++) {
    slots.set(blob.readUInt32BE(12 + i * 8), blob.readUInt32BE(16 + i * 8));
  }
  const cdAt = slots.get(0);
  assert.ok(cdAt !== undefined, 'CodeDirectory slot');
  const cd = blob.subarray(cdAt, cdAt + blob.readUInt32BE(cdAt + 4));
  assert.equal(cd.readUInt32BE(0), 0xfade0c02, 'CodeDirectory magic');
  assert.ok(cd.readUInt32BE(12) & 0x2, 'ad-hoc flag');
  const hashOffset = cd.readUInt32BE(16);
  const identOffset = cd.readUInt32BE(20);
  assert.equal(cd.toString('latin1', identOffset, cd.indexOf(0, identOffset)), 'kubedump');
  const codeSlots = cd.readUInt32BE(28);
  const codeLimit = cd.readUInt32BE(32);
  assert.equal(cd[36], 32, 'hash size');
  assert.equal(cd[37], 2, 'SHA-256');
  const page = 1 << cd.readUInt8(39);
  assert.equal(codeLimit, dataoff, 'the hashes cover everything before the signature');
  assert.equal(codeSlots, Math.ceil(codeLimit / page));
  for (let i = 0; i < codeSlots; i++) {
    const expected = cd.toString('hex', hashOffset + i * 32, hashOffset + (i + 1) * 32);
    const actual = sha256(file.subarray(i * page, Math.min((i + 1) * page, codeLimit)));
    if (actual !== expected) assert.fail(`page ${i} hash differs`);
  }
  const requirementsAt = slots.get(2);
  assert.ok(requirementsAt !== undefined, 'requirements slot');
  const requirements = blob.subarray(
    requirementsAt,
    requirementsAt + blob.readUInt32BE(requirementsAt + 4),
  );
  assert.equal(requirements.readUInt32BE(0), 0xfade0c01, 'requirements magic');
  assert.ok(cd.readUInt32BE(24) >= 2, 'special slots');
  assert.equal(cd.toString('hex', hashOffset - 64, hashOffset - 32), sha256(requirements));
}

describe('scripts/build --all', () => {
  const built = existsSync(join(DIST, 'SHA256SUMS'));
  const pinned = JSON.parse(
    readFileSync(join(ROOT, 'build', 'tcpdump', 'manifest.json'), 'utf8'),
  ) as Manifest;

  test('SHA256SUMS lists the five executables with their sha256', () => {
    assert.ok(built, `no ${DIST}/SHA256SUMS: run scripts/build --all first`);
    const lines = readFileSync(join(DIST, 'SHA256SUMS'), 'utf8').trim().split('\n');
    const sums = new Map(lines.map((l) => l.split(/\s+\*?/).reverse() as [string, string]));
    assert.deepEqual([...sums.keys()].sort(), TARGETS.map((t) => t.file).sort());
    for (const target of TARGETS) {
      assert.equal(sums.get(target.file), sha256(readFileSync(join(DIST, target.file))));
    }
  });

  for (const target of TARGETS) {
    test(`${target.file}: format, architecture, SEA payload and embedded tcpdumps`, () => {
      assert.ok(built, `no ${DIST}/SHA256SUMS: run scripts/build --all first`);
      const file = readFileSync(join(DIST, target.file));
      assert.equal(machine(file, target.format), target.machine);
      assert.ok(file.includes(FUSE_ON), 'the SEA fuse is flipped: Node runs the blob');
      const manifest = JSON.parse(seaAsset(file, 'tcpdump-manifest.json').toString()) as Manifest;
      assert.deepEqual(manifest.binaries, pinned.binaries);
      for (const arch of ['amd64', 'arm64']) {
        const tcpdump = seaAsset(file, `tcpdump-linux-${arch}`);
        assert.equal(tcpdump.length, manifest.binaries[arch]?.size);
        assert.equal(sha256(tcpdump), manifest.binaries[arch]?.sha256);
      }
      if (target.format === 'macho') {
        const sea = machoLayout(file).segments.find((s) => s.name === 'NODE_SEA');
        assert.ok(sea, 'NODE_SEA segment');
        const segment = file.subarray(sea.fileoff, sea.fileoff + sea.filesize);
        assert.ok(segment.includes('tcpdump-linux-arm64'), 'the SEA blob is in NODE_SEA');
        checkAdhocSignature(file);
      }
    });
  }
});
