import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  cpSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { errorLine } from '../../src/errors.ts';
import type { Arch } from '../../src/tcpdump/index.ts';
import {
  archFromNode,
  localTcpdumpPath,
  TcpdumpUnavailableError,
  tcpdumpBinary,
  tcpdumpManifest,
} from '../../src/tcpdump/index.ts';

const run = promisify(execFile);

// ELF e_machine of each arch.
const MACHINE: Record<Arch, number> = { amd64: 0x3e, arm64: 0xb7 };

describe('archFromNode', () => {
  const table: [string, Arch | undefined][] = [
    ['amd64', 'amd64'],
    ['x86_64', 'amd64'],
    ['x64', 'amd64'],
    ['arm64', 'arm64'],
    ['aarch64', 'arm64'],
    ['arm', undefined],
    ['armv7l', undefined],
    ['ia32', undefined],
    ['s390x', undefined],
    ['ppc64le', undefined],
    ['', undefined],
    ['AMD64', undefined],
    ['toString', undefined],
    ['__proto__', undefined],
  ];
  for (const [input, want] of table) {
    test(`${JSON.stringify(input)} -> ${want}`, () => {
      assert.equal(archFromNode(input), want);
    });
  }
});

describe('embedded binaries', () => {
  test('manifest names the Debian bookworm upstream versions', () => {
    const m = tcpdumpManifest();
    assert.match(m.tcpdump, /^4\.99\.\d+$/);
    assert.match(m.libpcap, /^1\.10\.\d+$/);
  });

  for (const arch of ['amd64', 'arm64'] as const) {
    test(`${arch}: static ELF whose sha256 and size match the manifest`, () => {
      const info = tcpdumpManifest().binaries[arch];
      const bin = tcpdumpBinary(arch);
      assert.equal(bin.length, info.size);
      assert.equal(createHash('sha256').update(bin).digest('hex'), info.sha256);
      assert.deepEqual([...bin.subarray(0, 4)], [0x7f, 0x45, 0x4c, 0x46]);
      assert.equal(bin[4], 2, '64-bit');
      assert.equal(bin.readUInt16LE(18), MACHINE[arch]);
      assert.equal(bin.readUInt16LE(16), 2, 'ET_EXEC: statically linked, not PIE');
      // No program interpreter: a static binary runs in a container without a libc.
      assert.equal(bin.includes('/lib/ld-'), false);
      assert.equal(bin.includes('ld-musl'), false);
    });
  }
});

describe('a missing or stale build directory', () => {
  let dir: string;
  let saved: string | undefined;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'kubedump-tcpdump-'));
    saved = process.env.KUBEDUMP_TCPDUMP_DIR;
    process.env.KUBEDUMP_TCPDUMP_DIR = dir;
  });
  afterEach(() => {
    if (saved === undefined) delete process.env.KUBEDUMP_TCPDUMP_DIR;
    else process.env.KUBEDUMP_TCPDUMP_DIR = saved;
    rmSync(dir, { recursive: true, force: true });
  });

  test('empty: the error says how to build', () => {
    assert.throws(
      () => tcpdumpManifest(),
      (e) =>
        e instanceof TcpdumpUnavailableError &&
        e.code === 'TCPDUMP_UNAVAILABLE' &&
        /npm run build/.test(e.message) &&
        !errorLine(e).startsWith('unexpected error'),
    );
    assert.throws(() => tcpdumpBinary('amd64'), /npm run build/);
  });

  test('a binary that differs from its manifest is refused', () => {
    const built = new URL('../../build/tcpdump/', import.meta.url);
    cpSync(built, dir, { recursive: true });
    const file = join(dir, 'linux-arm64', 'tcpdump');
    const bin = readFileSync(file);
    bin[bin.length - 1] = (bin.at(-1) ?? 0) ^ 0xff;
    writeFileSync(file, bin);
    assert.equal(tcpdumpBinary('amd64').length, tcpdumpManifest().binaries.amd64.size);
    assert.throws(() => tcpdumpBinary('arm64'), /does not match its manifest/);
  });
});

describe('localTcpdumpPath', () => {
  let cache: string;
  let saved: string | undefined;
  beforeEach(() => {
    cache = mkdtempSync(join(tmpdir(), 'kubedump-cache-'));
    saved = process.env.XDG_CACHE_HOME;
    process.env.XDG_CACHE_HOME = cache;
  });
  afterEach(() => {
    if (saved === undefined) delete process.env.XDG_CACHE_HOME;
    else process.env.XDG_CACHE_HOME = saved;
    rmSync(cache, { recursive: true, force: true });
  });

  const hostArch = archFromNode(process.arch);
  const skip = process.platform !== 'linux' || hostArch === undefined;

  test('writes the host binary once, named by its checksum, mode 0755', { skip }, async () => {
    const [a, b] = await Promise.all([localTcpdumpPath(), localTcpdumpPath()]);
    assert.equal(a, b);
    const sha = tcpdumpManifest().binaries[hostArch as Arch].sha256;
    assert.equal(a, join(cache, 'kubedump', `tcpdump-${sha.slice(0, 16)}`));
    assert.equal(statSync(a).mode & 0o777, 0o755);
    // The rename left no temp file behind.
    assert.deepEqual(readdirSync(join(cache, 'kubedump')), [basename(a)]);
  });

  test('compiles a good filter with -d', { skip }, async () => {
    const bin = await localTcpdumpPath();
    const { stdout } = await run(bin, ['-d', 'tcp port 80']);
    assert.match(stdout, /^\(\d+\) ldh\s+\[12\]/m);
    assert.match(stdout, /jeq\s+#0x50/);
    assert.match(stdout, /ret\s+#262144/);
  });

  test('rejects a bad filter', { skip }, async () => {
    const bin = await localTcpdumpPath();
    await assert.rejects(
      run(bin, ['-d', 'tcp port eighty']),
      (e: { code?: number; stderr?: string }) => {
        assert.equal(e.code, 1);
        assert.match(String(e.stderr), /eighty/);
        return true;
      },
    );
  });
});
