// The static tcpdump binaries (one per arch) and their manifest.
// Inside the single executable they are SEA assets; when the TypeScript sources
// run directly (tests, development) they come from build/tcpdump/.

import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as sea from 'node:sea';
import { fileURLToPath } from 'node:url';
import { KubedumpError } from '../errors.ts';
import { currentHost, cacheDir as platformCacheDir } from '../platform-paths.ts';

export type Arch = 'amd64' | 'arm64';

export const ARCHES: readonly Arch[] = ['amd64', 'arm64'];

export interface TcpdumpBinaryInfo {
  sha256: string;
  size: number;
}

export interface TcpdumpManifest {
  tcpdump: string;
  libpcap: string;
  binaries: Record<Arch, TcpdumpBinaryInfo>;
}

/** SEA asset names; scripts/build uses the same ones. */
export const MANIFEST_ASSET = 'tcpdump-manifest.json';
export function binaryAssetName(arch: Arch): string {
  return `tcpdump-linux-${arch}`;
}

/** The embedded tcpdump binaries are missing or damaged: the build is incomplete. */
export class TcpdumpUnavailableError extends KubedumpError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('TCPDUMP_UNAVAILABLE', message, {
      ...options,
      hint: 'reinstall kubedump, or build it again with npm run build',
    });
    this.name = 'TcpdumpUnavailableError';
  }
}

const ARCH_ALIASES: Record<string, Arch> = {
  amd64: 'amd64',
  x86_64: 'amd64',
  x64: 'amd64',
  arm64: 'arm64',
  aarch64: 'arm64',
};

/**
 * Maps an architecture name as Node (`process.arch`), Kubernetes
 * (`kubernetes.io/arch`) or `uname -m` spell it to the binary that runs there.
 */
export function archFromNode(nodeArch: string): Arch | undefined {
  return Object.hasOwn(ARCH_ALIASES, nodeArch) ? ARCH_ALIASES[nodeArch] : undefined;
}

interface Source {
  describe: string;
  read(name: string): Buffer | undefined;
}

function seaSource(): Source {
  return {
    describe: 'the executable',
    read(name) {
      try {
        return Buffer.from(sea.getAsset(name));
      } catch {
        return undefined;
      }
    },
  };
}

function dirSource(dir: string): Source {
  const files: Record<string, string> = {
    [MANIFEST_ASSET]: 'manifest.json',
    [binaryAssetName('amd64')]: 'linux-amd64/tcpdump',
    [binaryAssetName('arm64')]: 'linux-arm64/tcpdump',
  };
  return {
    describe: dir,
    read(name) {
      const file = files[name];
      if (file === undefined) return undefined;
      try {
        return readFileSync(join(dir, file));
      } catch {
        return undefined;
      }
    },
  };
}

// The sources tree keeps this file at src/tcpdump/; a plain bundle sits in build/.
function defaultDir(): string {
  const candidates = [
    new URL('../../build/tcpdump/', import.meta.url),
    new URL('tcpdump/', import.meta.url),
  ]
    .filter((url) => url.protocol === 'file:')
    .map((url) => fileURLToPath(url));
  return candidates.find((dir) => existsSync(join(dir, 'manifest.json'))) ?? candidates[0] ?? '';
}

function source(): Source {
  if (sea.isSea()) return seaSource();
  const dir = process.env.KUBEDUMP_TCPDUMP_DIR || defaultDir();
  return dirSource(dir);
}

const HINT = 'run `npm run build` (or scripts/build-tcpdump) to build the static tcpdump binaries';

function parseManifest(raw: Buffer, where: string): TcpdumpManifest {
  let value: unknown;
  try {
    value = JSON.parse(raw.toString('utf8'));
  } catch (cause) {
    throw new TcpdumpUnavailableError(`tcpdump manifest in ${where} is not JSON`, { cause });
  }
  const m = value as Partial<TcpdumpManifest> | null;
  const ok =
    typeof m?.tcpdump === 'string' &&
    typeof m.libpcap === 'string' &&
    ARCHES.every((arch) => {
      const b = m.binaries?.[arch];
      return (
        typeof b?.sha256 === 'string' &&
        /^[0-9a-f]{64}$/.test(b.sha256) &&
        Number.isSafeInteger(b.size)
      );
    });
  if (!ok) throw new TcpdumpUnavailableError(`tcpdump manifest in ${where} is malformed`);
  return m as TcpdumpManifest;
}

/** Versions and checksums of the embedded binaries. */
export function tcpdumpManifest(): TcpdumpManifest {
  const src = source();
  const raw = src.read(MANIFEST_ASSET);
  if (raw === undefined) {
    throw new TcpdumpUnavailableError(`no tcpdump manifest in ${src.describe}: ${HINT}`);
  }
  return parseManifest(raw, src.describe);
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** The static tcpdump for `arch`, checked against the manifest. */
export function tcpdumpBinary(arch: Arch): Buffer {
  const src = source();
  const manifest = tcpdumpManifest();
  const data = src.read(binaryAssetName(arch));
  if (data === undefined) {
    throw new TcpdumpUnavailableError(`no tcpdump for linux-${arch} in ${src.describe}: ${HINT}`);
  }
  // A stale build/ directory would otherwise upload a binary that is not the one described.
  if (sha256(data) !== manifest.binaries[arch].sha256) {
    throw new TcpdumpUnavailableError(
      `tcpdump for linux-${arch} in ${src.describe} does not match its manifest: ${HINT}`,
    );
  }
  return data;
}

function cacheDir(): string {
  return platformCacheDir(currentHost());
}

const pending = new Map<string, Promise<string>>();

/**
 * Path of a runnable tcpdump for this host (to compile capture filters with
 * `tcpdump -d`). Written once per user, named by its checksum so versions never mix.
 */
export function localTcpdumpPath(): Promise<string> {
  const arch = archFromNode(process.arch);
  if (process.platform !== 'linux' || arch === undefined) {
    return Promise.reject(
      new TcpdumpUnavailableError(
        `no local tcpdump for ${process.platform}-${process.arch}: only linux-amd64 and linux-arm64 are embedded`,
      ),
    );
  }
  const dir = cacheDir();
  let p = pending.get(dir);
  if (p === undefined) {
    p = materialize(dir, arch);
    pending.set(dir, p);
    // A failure (full disk, read-only home) may be transient: let the next call retry.
    p.catch(() => pending.delete(dir));
  }
  return p;
}

async function materialize(dir: string, arch: Arch): Promise<string> {
  const want = tcpdumpManifest().binaries[arch];
  const path = join(dir, `tcpdump-${want.sha256.slice(0, 16)}`);
  const existing = await readFile(path).catch(() => undefined);
  if (existing !== undefined && existing.length === want.size && sha256(existing) === want.sha256) {
    return path;
  }
  const data = tcpdumpBinary(arch);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  // Temp file + rename: a concurrent run never sees (or executes) a half-written binary.
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await writeFile(tmp, data, { mode: 0o755, flag: 'wx' });
    await chmod(tmp, 0o755); // whatever the umask
    await rename(tmp, path);
  } catch (cause) {
    await rm(tmp, { force: true });
    throw new TcpdumpUnavailableError(`cannot write a local tcpdump to ${path}`, { cause });
  }
  return path;
}
