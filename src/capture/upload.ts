import type { KubeConfig } from '@kubernetes/client-node';
import { pack } from 'tar-stream';
import { KubedumpError } from '../errors.ts';
import { type ExecOptions, execCollect } from '../kube/exec.ts';
import type { Logger } from '../log.ts';

/** How long removing the uploaded file may take during a stop. */
const REMOVE_BUDGET_MS = 1500;

// Puts the static tcpdump into the container. A probe finds a directory where
// files can be written AND executed (a noexec or read-only /tmp is common),
// checks an existing copy by sha256, and reports the CPU architecture and
// whether tar exists. Every command is argv; the scripts are constant text.

export const UPLOAD_DIRS = ['/tmp', '/var/tmp', '/dev/shm', '/run', '/home', '/'];

const PROBE = `name=$1; sum=$2; shift 2
arch=$(uname -m 2>/dev/null)
if command -v tar >/dev/null 2>&1; then tar=yes; else tar=no; fi
for d in "$@"; do
  [ -d "$d" ] && [ -w "$d" ] || continue
  f="$d/$name"
  if [ -f "$f" ] && command -v sha256sum >/dev/null 2>&1; then
    s=$(sha256sum "$f" 2>/dev/null); s=\${s%% *}
    if [ "$s" = "$sum" ] && "$f" --version >/dev/null 2>&1; then
      echo "present $d $arch $tar"; exit 0
    fi
  fi
  p="$d/.kubedump-probe-$$"
  if printf '#!/bin/sh\\nexit 0\\n' >"$p" 2>/dev/null && chmod 700 "$p" 2>/dev/null && "$p" 2>/dev/null; then
    rm -f "$p"; echo "absent $d $arch $tar"; exit 0
  fi
  rm -f "$p" 2>/dev/null
done
echo "nowhere - $arch $tar"`;

// head stops after the archive's size, so the command ends and reports its
// exit status even over exec v4, where stdin cannot be closed.
const EXTRACT_TAR = 'head -c "$1" | tar -xf - -C "$2" && mv -f "$2/$3" "$2/$4"';
const EXTRACT_RAW = 'head -c "$1" >"$2/$3" && chmod 755 "$2/$3" && mv -f "$2/$3" "$2/$4"';

export interface ProbeResult {
  state: 'present' | 'absent' | 'nowhere';
  dir: string;
  arch: string;
  hasTar: boolean;
}

export type ExecTarget = Pick<ExecOptions, 'namespace' | 'pod' | 'container'>;

function describe(target: ExecTarget): string {
  return `pod ${target.namespace}/${target.pod}${target.container ? ` container ${target.container}` : ''}`;
}

export function parseProbe(output: string): ProbeResult | undefined {
  const match = /^(present|absent|nowhere) (\S+) (\S*) (yes|no)$/m.exec(output);
  if (!match) return undefined;
  return {
    state: match[1] as ProbeResult['state'],
    dir: match[2] as string,
    arch: match[3] as string,
    hasTar: match[4] === 'yes',
  };
}

export async function probeContainer(
  kc: KubeConfig,
  target: ExecTarget,
  name: string,
  sha256: string,
  signal?: AbortSignal,
): Promise<ProbeResult> {
  const result = await execCollect(kc, {
    ...target,
    command: ['sh', '-c', PROBE, 'sh', name, sha256, ...UPLOAD_DIRS],
    signal,
  });
  const probe = parseProbe(result.stdout.toString('utf8'));
  if (!probe) {
    const why = `${result.message ?? ''} ${result.stderr}`.trim();
    if (/no such file|not found|executable file/i.test(why) || result.exitCode === 127) {
      throw new KubedumpError(
        'NO_SHELL',
        `${describe(target)} has no /bin/sh, so tcpdump cannot be uploaded`,
        {
          hint: 'use privileged mode (--privileged), which needs nothing in the container',
        },
      );
    }
    throw new KubedumpError(
      'PROBE_FAILED',
      `cannot inspect ${describe(target)}: ${why || `exit ${result.exitCode}`}`,
      {
        hint: 'use privileged mode (--privileged)',
      },
    );
  }
  if (probe.state === 'nowhere') {
    throw new KubedumpError(
      'NO_WRITABLE_DIR',
      `${describe(target)} has no directory that is both writable and executable (tried ${UPLOAD_DIRS.join(' ')})`,
      { hint: 'use privileged mode (--privileged)' },
    );
  }
  return probe;
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
  archive.entry({ name, mode: 0o755, mtime: new Date(0), uid: 0, gid: 0 }, content);
  archive.finalize();
  await done;
  return Buffer.concat(chunks);
}

export async function uploadExecutable(
  kc: KubeConfig,
  target: ExecTarget,
  probe: ProbeResult,
  name: string,
  content: Buffer,
  signal?: AbortSignal,
): Promise<void> {
  const temporary = temporaryName(name);
  const payload = probe.hasTar ? await tarOf(temporary, content) : content;
  const script = probe.hasTar ? EXTRACT_TAR : EXTRACT_RAW;
  const result = await execCollect(kc, {
    ...target,
    command: ['sh', '-c', script, 'sh', String(payload.length), probe.dir, temporary, name],
    input: payload,
    signal,
  });
  if (result.exitCode !== 0) {
    throw new KubedumpError(
      'UPLOAD_FAILED',
      `uploading tcpdump into ${describe(target)}:${probe.dir} failed (exit ${result.exitCode ?? 'unknown'}): ${result.stderr.trim() || result.message || ''}`.trim(),
      { hint: 'use privileged mode (--privileged)' },
    );
  }
}

/** The name an upload is written under before it is moved into place. */
export function temporaryName(name: string): string {
  return `.${name}.${process.pid}.part`;
}

/** Removes the uploaded tcpdump and a partial upload; bounded by the stop budget. */
export async function removeUploaded(
  kc: KubeConfig,
  target: ExecTarget,
  dir: string,
  name: string,
  log: Logger,
): Promise<void> {
  const base = dir.replace(/\/$/, '');
  const binary = `${base}/${name}`;
  const result = await execCollect(kc, {
    ...target,
    command: ['rm', '-f', binary, `${base}/${temporaryName(name)}`],
    signal: AbortSignal.timeout(REMOVE_BUDGET_MS),
  });
  log.info('uploaded tcpdump removed', { binary, exitCode: result.exitCode });
}
