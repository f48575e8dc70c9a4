import { randomBytes } from 'node:crypto';
import type { KubeConfig } from '@kubernetes/client-node';
import { pack } from 'tar-stream';
import { KubedumpError } from '../errors.ts';
import { type ExecOptions, execCollect } from '../kube/exec.ts';
import type { Logger } from '../log.ts';
import { type Arch, archFromNode, tcpdumpBinary, tcpdumpManifest } from '../tcpdump/index.ts';

// Puts the static tcpdump into a container, in a directory of its own: other
// processes in the pod (another user, or anything that can write to a shared
// /tmp) must never get to swap the file we then execute. The probe creates
// that directory with `mkdir -m 700` under a random name (mkdir fails on
// anything that exists, so nobody can plant it beforehand), checks that files
// there can be executed (a noexec or read-only /tmp is common), and reports
// the CPU architecture and whether tar exists. Every command is argv; the
// scripts are constant text.

export const UPLOAD_DIRS = ['/tmp', '/var/tmp', '/dev/shm', '/run', '/home', '/'];

/** The private directory of one run; `.kubedump-keep-UID` when the binary is kept. */
export const PRIVATE_DIR_PREFIX = '.kubedump-';

// $1 tag (random), $2 keep (yes/no), $3..$6 name and sha256 for amd64, arm64.
// A kept directory is trusted only when it is ours, not a link, and 0700.
const PROBE = `tag=$1; keep=$2; n64=$3; s64=$4; na=$5; sa=$6; shift 6
arch=$(uname -m 2>/dev/null)
case $arch in x86_64|amd64) name=$n64; sum=$s64 ;; aarch64|arm64) name=$na; sum=$sa ;; *) name=; sum= ;; esac
if command -v tar >/dev/null 2>&1; then tar=yes; else tar=no; fi
for d in "$@"; do
  [ -d "$d" ] && [ -w "$d" ] || continue
  p=; b=\${d%/}
  if [ "$keep" = yes ] && u=$(id -u 2>/dev/null); then
    k="$b/.kubedump-keep-$u"
    if mkdir -m 700 "$k" 2>/dev/null; then p=$k
    elif [ -d "$k" ] && [ ! -h "$k" ] && [ -O "$k" ]; then
      m=$(ls -ld "$k" 2>/dev/null); case $m in drwx------*) p=$k ;; esac
    fi
    if [ -n "$p" ] && [ -n "$name" ] && [ -f "$p/$name" ] && command -v sha256sum >/dev/null 2>&1; then
      s=$(sha256sum "$p/$name" 2>/dev/null); s=\${s%% *}
      if [ "$s" = "$sum" ]; then echo "present $p $arch $tar"; exit 0; fi
    fi
  fi
  if [ -z "$p" ]; then p="$b/.kubedump-$tag"; mkdir -m 700 "$p" 2>/dev/null || continue; fi
  if printf '#!/bin/sh\\nexit 0\\n' >"$p/probe" 2>/dev/null && chmod 700 "$p/probe" 2>/dev/null && "$p/probe" 2>/dev/null; then
    rm -f "$p/probe"; echo "absent $p $arch $tar"; exit 0
  fi
  rm -rf "$p" 2>/dev/null
done
echo "nowhere - $arch $tar"`;

// $1 size, $2 the private directory, $3 the file's name, $4 tar (yes/no).
// head stops after the payload's size, so the command ends and reports its
// exit status even over exec v4, where stdin cannot be closed. If the
// payload stops growing for 10 s (kubedump was killed or cut off mid-upload:
// the exec's stdin then stays open forever), the upload removes itself and
// its directory; so does a run's upload whose capture has not started
// (no heartbeat file) 30 s later. That last watch is a process of its own
// that ends as soon as the capture starts.
const EXTRACT = `EXPIRE='i=0; while [ $i -lt 30 ]; do sleep 1; [ -d "$1" ] || exit 0
  for h in "$1"/heartbeat-*; do [ -e "$h" ] && exit 0; done; i=$((i+1)); done; rm -rf "$1"'
n=$1; d=$2; f=$3; p="$2/.upload"
exec 3<&0
head -c "$n" <&3 >"$p" 3<&- & h=$!
exec 3<&-
( last=; m=0
  while sleep 2 && kill -0 $h 2>/dev/null; do
    s=$(wc -c <"$p" 2>/dev/null)
    if [ "$s" != "$last" ]; then last=$s; m=0; else m=$((m+2)); fi
    if [ $m -ge 10 ]; then kill $h; rm -rf "$d"; break; fi
  done ) </dev/null >/dev/null 2>&1 &
k=$!
wait $h; s=$?; kill $k 2>/dev/null
[ $s -eq 0 ] && [ "$(wc -c <"$p")" -eq "$n" ] || { rm -f "$p"; exit 1; }
if [ "$4" = yes ]; then tar -xf "$p" -C "$d" && rm -f "$p"
else chmod 700 "$p" && mv -f "$p" "$d/$f"; fi || exit 1
case $d in */.kubedump-????????????????)
  sh -c "$EXPIRE" sh "$d" </dev/null >/dev/null 2>&1 &
esac`;

export interface ProbeResult {
  state: 'present' | 'absent' | 'nowhere';
  /** The private directory (created by the probe unless `nowhere`). */
  dir: string;
  arch: string;
  hasTar: boolean;
}

export type ExecTarget = Pick<ExecOptions, 'namespace' | 'pod' | 'container'>;

export function describeTarget(target: ExecTarget): string {
  return `pod ${target.namespace}/${target.pod}${target.container ? ` container ${target.container}` : ''}`;
}

export function parseProbe(output: string): ProbeResult | undefined {
  const match = /^(present|absent|nowhere) (\S+) (\S*) (yes|no)$/m.exec(output);
  if (!match) return undefined;
  const dir = match[2] as string;
  // Only a directory the probe made may be written to, executed from, removed.
  if (match[1] !== 'nowhere' && !isPrivateDir(dir)) return undefined;
  return {
    state: match[1] as ProbeResult['state'],
    dir,
    arch: match[3] as string,
    hasTar: match[4] === 'yes',
  };
}

/** `<one of UPLOAD_DIRS>/.kubedump-<tag or keep-UID>`, nothing else. */
export function isPrivateDir(dir: string): boolean {
  const slash = dir.lastIndexOf('/');
  const parent = dir.slice(0, slash) || '/';
  const base = dir.slice(slash + 1);
  return (
    UPLOAD_DIRS.includes(parent) &&
    /^\.kubedump-(keep-\d{1,10}|[0-9a-f]{16})$/.test(base) &&
    !dir.startsWith('//')
  );
}

export function probeArgv(tag: string, keep: boolean): string[] {
  const { binaries } = tcpdumpManifest();
  return [
    'sh',
    '-c',
    PROBE,
    'sh',
    tag,
    keep ? 'yes' : 'no',
    binaryName(binaries.amd64.sha256),
    binaries.amd64.sha256,
    binaryName(binaries.arm64.sha256),
    binaries.arm64.sha256,
    ...UPLOAD_DIRS,
  ];
}

export async function probeContainer(
  kc: KubeConfig,
  target: ExecTarget,
  options: { tag: string; keep: boolean; signal?: AbortSignal | undefined },
): Promise<ProbeResult> {
  const result = await execCollect(kc, {
    ...target,
    command: probeArgv(options.tag, options.keep),
    signal: options.signal,
  });
  const probe = parseProbe(result.stdout.toString('utf8'));
  if (!probe) {
    const why = `${result.message ?? ''} ${result.stderr}`.trim();
    if (/no such file|not found|executable file/i.test(why) || result.exitCode === 127) {
      throw new KubedumpError(
        'NO_SHELL',
        `${describeTarget(target)} has no /bin/sh, so tcpdump cannot be uploaded`,
        {
          hint: 'use privileged mode (--privileged), which needs nothing in the container',
        },
      );
    }
    throw new KubedumpError(
      'PROBE_FAILED',
      `cannot inspect ${describeTarget(target)}: ${why || `exit ${result.exitCode}`}`,
      {
        hint: 'use privileged mode (--privileged)',
      },
    );
  }
  if (probe.state === 'nowhere') {
    throw new KubedumpError(
      'NO_WRITABLE_DIR',
      `${describeTarget(target)} has no directory where a new private directory can be made and files executed (tried ${UPLOAD_DIRS.join(' ')})`,
      { hint: 'use privileged mode (--privileged)' },
    );
  }
  return probe;
}

export function extractArgv(size: number, dir: string, name: string, tar: boolean): string[] {
  return ['sh', '-c', EXTRACT, 'sh', String(size), dir, name, tar ? 'yes' : 'no'];
}

/** A tar archive holding one executable file. */
export async function tarOf(name: string, content: Buffer): Promise<Buffer> {
  const archive = pack();
  const chunks: Buffer[] = [];
  archive.on('data', (c) => chunks.push(c as Buffer));
  const done = new Promise<void>((resolve, reject) => {
    archive.on('end', resolve);
    archive.on('error', reject);
  });
  archive.entry({ name, mode: 0o700, mtime: new Date(0), uid: 0, gid: 0 }, content);
  archive.finalize();
  await done;
  return Buffer.concat(chunks);
}

async function uploadExecutable(
  kc: KubeConfig,
  target: ExecTarget,
  probe: ProbeResult,
  name: string,
  content: Buffer,
  signal?: AbortSignal,
): Promise<void> {
  const payload = probe.hasTar ? await tarOf(name, content) : content;
  const result = await execCollect(kc, {
    ...target,
    command: extractArgv(payload.length, probe.dir, name, probe.hasTar),
    input: payload,
    signal,
  });
  if (result.exitCode !== 0) {
    throw new KubedumpError(
      'UPLOAD_FAILED',
      `uploading tcpdump into ${describeTarget(target)}:${probe.dir} failed (exit ${result.exitCode ?? 'unknown'}): ${result.stderr.trim() || result.message || ''}`.trim(),
      { hint: 'use privileged mode (--privileged)' },
    );
  }
}

/** The uploaded file's name carries its hash, so versions never collide. */
export function binaryName(sha256: string): string {
  return `kubedump-tcpdump-${sha256.slice(0, 12)}`;
}

export interface UploadContext {
  kc: KubeConfig;
  log: Logger;
  signal: AbortSignal;
  cleanup: AsyncDisposableStack;
  /** The target node's architecture, or undefined when nodes can't be read. */
  nodeArchitecture(): Promise<string | undefined>;
}

export interface Uploaded {
  /** The tcpdump to run. */
  binary: string;
  /** The run's private directory, which also holds the watchdog's heartbeat. */
  dir: string;
}

/**
 * Makes sure the container has our tcpdump, in a private directory. With
 * `keep`, the directory is `.kubedump-keep-UID` and survives for the next run.
 * Its removal (unless kept, or `remove: false` for a pod that is deleted
 * anyway) is registered before the upload: a stop during it must not leave
 * the file or its temporary behind.
 */
export async function ensureTcpdump(
  ctx: UploadContext,
  target: ExecTarget,
  options: { keep: boolean; remove?: boolean },
): Promise<Uploaded> {
  const { kc, log, signal } = ctx;
  const tag = randomBytes(8).toString('hex');
  let answered: ProbeResult | 'failed' | undefined;
  const probing = probeContainer(kc, target, { tag, keep: options.keep, signal }).then(
    (probe) => (answered = probe),
    (error) => {
      answered = 'failed';
      throw error;
    },
  );
  // Registered before the answer: a stop may come between the probe making
  // the directory and our hearing which one it made.
  const remove = options.remove ?? true;
  ctx.cleanup.defer(async () => {
    if (!remove || answered === 'failed' || (options.keep && answered !== undefined)) return;
    const dirs = answered
      ? [answered.dir]
      : UPLOAD_DIRS.map((d) => `${d === '/' ? '' : d}/${PRIVATE_DIR_PREFIX}${tag}`);
    await removeDirs(kc, target, dirs, log);
  });
  const [nodeArch, probe] = await Promise.all([ctx.nodeArchitecture(), probing]);
  const arch: Arch | undefined = archFromNode(nodeArch ?? probe.arch);
  if (!arch) {
    throw new KubedumpError(
      'UNSUPPORTED_ARCH',
      `no tcpdump for CPU architecture "${nodeArch ?? probe.arch}"`,
      { hint: 'kubedump ships tcpdump for amd64 and arm64' },
    );
  }
  const name = binaryName(tcpdumpManifest().binaries[arch].sha256);
  const binary = `${probe.dir}/${name}`;
  // The probe checked the copy for the container's own architecture.
  if (probe.state === 'present' && archFromNode(probe.arch) === arch) {
    log.info('tcpdump already present', { binary });
  } else {
    const started = Date.now();
    await uploadExecutable(kc, target, probe, name, tcpdumpBinary(arch), signal);
    log.info('tcpdump uploaded', { binary, ms: Date.now() - started, tar: probe.hasTar });
  }
  return { binary, dir: probe.dir };
}

/** How long removing the upload may take during a stop. */
const REMOVE_BUDGET_MS = 1500;

async function removeDirs(kc: KubeConfig, target: ExecTarget, dirs: string[], log: Logger) {
  const ours = dirs.filter(isPrivateDir);
  if (!ours.length) return;
  const result = await execCollect(kc, {
    ...target,
    command: ['rm', '-rf', '--', ...ours],
    signal: AbortSignal.timeout(REMOVE_BUDGET_MS),
  });
  log.info('uploaded tcpdump removed', { dirs: ours, exitCode: result.exitCode });
}
