import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { isSea } from 'node:sea';
import { fileURLToPath } from 'node:url';
import { KubedumpError } from '../errors.ts';
import {
  currentHost,
  executableName,
  extcapFolders,
  knownExtcapFolders,
} from '../platform-paths.ts';
import { tcpdumpManifest } from '../tcpdump/index.ts';
import { VERSION } from '../version.ts';

// Puts the executable where the local Wireshark looks for extcaps: the
// folder `tshark -G folders` names, else the usual personal folders.

const NAME = 'kubedump';

/** The personal extcap folder of the installed Wireshark, if tshark can tell. */
export function tsharkExtcapFolder(): string | undefined {
  try {
    const out = execFileSync('tshark', ['-G', 'folders'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 10000,
    });
    const line = out.split('\n').find((l) => /^Personal Extcap path:/i.test(l));
    return line?.split(/:\s*/).slice(1).join(':').trim() || undefined;
  } catch {
    return undefined;
  }
}

export function candidateFolders(): string[] {
  return extcapFolders(currentHost(), tsharkExtcapFolder());
}

/** The executable to install: this one when running as a single executable, else the built one. */
function sourceExecutable(): string {
  if (isSea()) return process.execPath;
  const built = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'extcap', NAME);
  if (!existsSync(built)) {
    throw new KubedumpError('NOT_BUILT', `no built executable at ${built}`, {
      hint: 'run npm run build first',
    });
  }
  return built;
}

export async function install(): Promise<number> {
  const source = sourceExecutable();
  for (const folder of candidateFolders()) {
    mkdirSync(folder, { recursive: true });
    const target = join(folder, executableName(currentHost()));
    if (resolve(source) === resolve(target)) {
      process.stdout.write(`${target} is already installed\n`);
      continue;
    }
    // Copy then rename: a running Wireshark never sees half a file.
    const temporary = `${target}.${process.pid}.tmp`;
    copyFileSync(source, temporary);
    chmodSync(temporary, 0o755);
    renameSync(temporary, target);
    process.stdout.write(`installed ${target}\n`);
  }
  return 0;
}

export async function uninstall(): Promise<number> {
  const host = currentHost();
  const folders = new Set([...candidateFolders(), ...knownExtcapFolders(host)]);
  for (const folder of folders) {
    const target = join(folder, executableName(host));
    if (existsSync(target)) {
      rmSync(target);
      process.stdout.write(`removed ${target}\n`);
    }
  }
  return 0;
}

export async function printVersion(): Promise<number> {
  const manifest = tcpdumpManifest();
  const lines = [
    `kubedump ${VERSION} (node ${process.versions.node}, ${isSea() ? 'single executable' : 'from source'})`,
    `tcpdump ${manifest.tcpdump}, libpcap ${manifest.libpcap}`,
    ...Object.entries(manifest.binaries).map(
      ([arch, b]) => `  linux-${arch}: sha256 ${b.sha256}, ${b.size} bytes`,
    ),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}
