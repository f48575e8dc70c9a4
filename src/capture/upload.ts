import { randomBytes } from 'node:crypto';
import type { KubeConfig } from '@kubernetes/client-node';
import { pack } from 'tar-stream';
import { KubedumpError } from '../errors.ts';
import { type ExecOptions, type ExecResult, execCollect } from '../kube/exec.ts';
import type { Logger } from '../log.ts';
import { type Arch, archFromNode, tcpdumpBinary, tcpdumpManifest } from '../tcpdump/index.ts';
import {
  binaryName,
  extractArgv,
  isPrivateDir,
  PRIVATE_DIR_PREFIX,
  type ProbeResult,
  parseProbe,
  probeArgv,
  UPLOAD_DIRS,
} from './remote-scripts.ts';
import type { StopClock } from './stop-clock.ts';

// Puts the static tcpdump into a container, in a directory of its own: other
// processes in the pod (another user, or anything that can write to a shared
// /tmp) must never get to swap the file we then execute. The probe creates
// that directory with `mkdir -m 700` under a random name (mkdir fails on
// anything that exists, so nobody can plant it beforehand), checks that files
// there can be executed (a noexec or read-only /tmp is common), and reports
// the CPU architecture and whether tar exists. Every command is argv; the
// scripts are constant text.

export type ExecTarget = Pick<ExecOptions, 'namespace' | 'pod' | 'container'>;

export function describeTarget(target: ExecTarget): string {
  return `pod ${target.namespace}/${target.pod}${target.container ? ` container ${target.container}` : ''}`;
}

/** Did an exec of `sh` fail because the container has none (distroless)? */
export function lacksShell(result: Pick<ExecResult, 'exitCode' | 'message' | 'stderr'>): boolean {
  const why = `${result.message ?? ''} ${result.stderr}`;
  return /no such file|not found|executable file/i.test(why) || result.exitCode === 127;
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
  if (!probe) throw probeFailure(target, result);
  return usableProbe(target, probe);
}

/** Why a probe gave no answer, from how its exec ended. */
export function probeFailure(
  target: ExecTarget,
  result: Pick<ExecResult, 'exitCode' | 'message' | 'stderr'>,
): KubedumpError {
  const why = `${result.message ?? ''} ${result.stderr}`.trim();
  if (lacksShell(result)) {
    return new KubedumpError(
      'NO_SHELL',
      `${describeTarget(target)} has no /bin/sh, so tcpdump cannot be uploaded`,
      {
        hint: 'use privileged mode (--privileged), which needs nothing in the container',
      },
    );
  }
  return new KubedumpError(
    'PROBE_FAILED',
    `cannot inspect ${describeTarget(target)}: ${why || `exit ${result.exitCode}`}`,
    {
      hint: 'use privileged mode (--privileged)',
    },
  );
}

/** The probe's answer, or the error when it found nowhere to put tcpdump. */
export function usableProbe(target: ExecTarget, probe: ProbeResult): ProbeResult {
  if (probe.state === 'nowhere') {
    throw new KubedumpError(
      'NO_WRITABLE_DIR',
      `${describeTarget(target)} has no directory where a new private directory can be made and files executed (tried ${UPLOAD_DIRS.join(' ')})`,
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
  archive.entry({ name, mode: 0o700, mtime: new Date(0), uid: 0, gid: 0 }, content);
  archive.finalize();
  await done;
  return Buffer.concat(chunks);
}

async function uploadExecutable(
  kc: KubeConfig,
  target: ExecTarget,
  probe: ProbeResult,
  needed: Needed,
  signal?: AbortSignal,
): Promise<void> {
  const payload = await payloadFor(probe, needed);
  const result = await execCollect(kc, {
    ...target,
    command: extractArgv(payload.length, probe.dir, needed.name, probe.hasTar),
    input: payload,
    signal,
  });
  if (result.exitCode !== 0) throw uploadFailure(target, probe.dir, result);
}

export function uploadFailure(
  target: ExecTarget,
  dir: string,
  result: Pick<ExecResult, 'exitCode' | 'message' | 'stderr'>,
): KubedumpError {
  return new KubedumpError(
    'UPLOAD_FAILED',
    `uploading tcpdump into ${describeTarget(target)}:${dir} failed (exit ${result.exitCode ?? 'unknown'}): ${result.stderr.trim() || result.message || ''}`.trim(),
    { hint: 'use privileged mode (--privileged)' },
  );
}

export interface UploadContext {
  kc: KubeConfig;
  log: Logger;
  signal: AbortSignal;
  cleanup: AsyncDisposableStack;
  /** The stop's one deadline: the removal takes what remains of it. */
  clock: StopClock;
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
export function ensureTcpdump(
  ctx: UploadContext,
  target: ExecTarget,
  options: { keep: boolean; remove?: boolean },
): Promise<Uploaded> {
  const tag = newTag(ctx, target);
  const probe = probeContainer(ctx.kc, target, { tag, keep: options.keep, signal: ctx.signal });
  return finishUpload(ctx, target, keepTrack(ctx, target, tag, options, probe));
}

/** A new run's tag, which names its private directory. */
export function newTag(ctx: Pick<UploadContext, 'log'>, target: ExecTarget): string {
  const tag = randomBytes(8).toString('hex');
  // Names the directory before it exists: a run stopped mid-probe can still be told apart.
  ctx.log.debug('making a private directory', {
    name: `${PRIVATE_DIR_PREFIX}${tag}`,
    target: describeTarget(target),
  });
  return tag;
}

/**
 * Follows a probe's answer and registers the removal of the directory it
 * makes, before the answer: a stop may come between the probe making the
 * directory and our hearing which one it made.
 */
export function keepTrack(
  ctx: UploadContext,
  target: ExecTarget,
  tag: string,
  options: { keep: boolean; remove?: boolean },
  probe: Promise<ProbeResult>,
): Promise<ProbeResult> {
  let answered: ProbeResult | 'failed' | undefined;
  const probing = probe.then(
    (found) => (answered = found),
    (error) => {
      answered = 'failed';
      throw error;
    },
  );
  probing.catch(() => {}); // neither step may be asked for
  const remove = options.remove ?? true;
  ctx.cleanup.defer(async () => {
    if (!remove || answered === 'failed' || (options.keep && answered !== undefined)) return;
    const dirs = answered
      ? [answered.dir]
      : UPLOAD_DIRS.map((d) => `${d === '/' ? '' : d}/${PRIVATE_DIR_PREFIX}${tag}`);
    await removeDirs(ctx.kc, target, dirs, ctx.log, ctx.clock.signal());
  });
  return probing;
}

export interface Needed {
  arch: Arch;
  /** The binary's file name, which carries its hash. */
  name: string;
  /** Its path in the private directory. */
  binary: string;
  /** The probe found this very copy there. */
  present: boolean;
}

/** Which tcpdump the container needs, and whether the probe found it. */
export async function neededBinary(
  ctx: Pick<UploadContext, 'nodeArchitecture'>,
  probing: Promise<ProbeResult>,
): Promise<{ probe: ProbeResult; needed: Needed }> {
  // The probe runs beside the node's read; on a Windows node, that is the error to tell.
  const [nodeArch, probe] = await Promise.all([
    ctx.nodeArchitecture(),
    probing.catch(async (error) => {
      await ctx.nodeArchitecture();
      throw error;
    }),
  ]);
  const arch: Arch | undefined = archFromNode(nodeArch ?? probe.arch);
  if (!arch) {
    throw new KubedumpError(
      'UNSUPPORTED_ARCH',
      `no tcpdump for CPU architecture "${nodeArch ?? probe.arch}"`,
      { hint: 'kubedump ships tcpdump for amd64 and arm64' },
    );
  }
  const name = binaryName(tcpdumpManifest().binaries[arch].sha256);
  // The probe checked the copy for the container's own architecture.
  const present = probe.state === 'present' && archFromNode(probe.arch) === arch;
  return { probe, needed: { arch, name, binary: `${probe.dir}/${name}`, present } };
}

/** What goes over stdin: a tar archive when the container has tar, else the file. */
export async function payloadFor(probe: ProbeResult, needed: Needed): Promise<Buffer> {
  const content = tcpdumpBinary(needed.arch);
  return probe.hasTar ? tarOf(needed.name, content) : content;
}

async function finishUpload(
  ctx: UploadContext,
  target: ExecTarget,
  probing: Promise<ProbeResult>,
): Promise<Uploaded> {
  const { probe, needed } = await neededBinary(ctx, probing);
  const { binary } = needed;
  if (needed.present) {
    ctx.log.info('tcpdump already present', { binary });
  } else {
    const started = Date.now();
    await uploadExecutable(ctx.kc, target, probe, needed, ctx.signal);
    ctx.log.info('tcpdump uploaded', { binary, ms: Date.now() - started, tar: probe.hasTar });
  }
  return { binary, dir: probe.dir };
}

async function removeDirs(
  kc: KubeConfig,
  target: ExecTarget,
  dirs: string[],
  log: Logger,
  signal: AbortSignal,
) {
  const ours = dirs.filter(isPrivateDir);
  if (!ours.length) return;
  const result = await execCollect(kc, {
    ...target,
    command: ['rm', '-rf', '--', ...ours],
    signal,
  });
  log.info('uploaded tcpdump removed', { dirs: ours, exitCode: result.exitCode });
}
