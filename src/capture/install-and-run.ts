import { KubedumpError } from '../errors.ts';
import { type ExecResult, type ExecSession, lineSplitter, openExec } from '../kube/exec.ts';
import {
  installAndRunArgv,
  type ProbeResult,
  parseProbeLine,
  putAnswer,
  QUIT_ANSWER,
  runAnswer,
  runsKeptAtOnce,
  STOP_LINE,
} from './remote-scripts.ts';
import { RemoteTcpdump, wrapperStderr } from './remote-tcpdump.ts';
import { orStop } from './stop-clock.ts';
import {
  describeTarget,
  type ExecTarget,
  keepTrack,
  type Needed,
  neededBinary,
  newTag,
  payloadFor,
  probeFailure,
  type UploadContext,
  uploadFailure,
  usableProbe,
} from './upload.ts';

// tcpdump's start in one exec: the probe makes the run's private directory
// and says what it found on stderr, kubedump answers on stdin (run the kept
// copy, or here it comes), and the same exec then runs tcpdump under the
// watchdog. Three execs (probe, upload, capture) become one, and the answer
// waits for auto's choice. What the exec made is undone as upload.ts undoes
// its own: the directory's removal is registered before the probe answers.

/** Bytes per stdin frame of the upload. */
const PAYLOAD_FRAME = 64 * 1024;

export interface InstallAndRun {
  /** The probe's answer, as soon as the container gave it. */
  probe: Promise<ProbeResult>;
  /** Puts tcpdump in place when the probe did not find it, and starts it. */
  finish(): Promise<{ remote: RemoteTcpdump; binary: string; dir: string }>;
}

/**
 * Starts the exec now. `argv` is tcpdump's command line with BINARY_TOKEN
 * for the binary; `heartbeat` is the watchdog's file name in the private
 * directory. The exec ends, and its directory goes, unless `finish` is called.
 */
export function beginInstallAndRun(
  ctx: UploadContext,
  target: ExecTarget,
  options: { keep: boolean; argv: readonly string[]; heartbeat: string; runKeptAtOnce?: boolean },
): InstallAndRun {
  const { kc, log, signal } = ctx;
  const tag = newTag(ctx, target);
  let pid: number | undefined;
  const started = Promise.withResolvers<void>();
  const probeLine = Promise.withResolvers<ProbeResult>();
  const onWrapperLine = wrapperStderr(log, (found) => {
    pid ??= found;
    started.resolve();
  });
  const opening = openExec(kc, {
    ...target,
    command: installAndRunArgv(tag, options.keep, options.heartbeat, options.argv, options),
    stdin: true,
    signal,
    onStderr: lineSplitter((line) => {
      const found = parseProbeLine(line);
      if (found) probeLine.resolve(found);
      else onWrapperLine(line);
    }),
  });
  opening.catch(() => {}); // reported through the probe
  const answered = opening.then(async (session) => {
    const ended = session.result.then((result) => {
      throw probeFailure(target, result);
    });
    return usableProbe(target, await Promise.race([probeLine.promise, ended]));
  });
  const probing = keepTrack(ctx, target, tag, options, answered);
  // Registered after the directory's removal, so it runs first.
  let answer: Answer = 'none';
  ctx.cleanup.defer(() => endUnlessHandedOver(opening, answer));

  async function finish(): ReturnType<InstallAndRun['finish']> {
    const { probe, needed } = await neededBinary(ctx, probing);
    const session = await opening;
    const { binary } = needed;
    const uploadStarted = Date.now();
    answer = 'sent';
    if (options.runKeptAtOnce && runsKeptAtOnce(probe)) {
      if (!needed.present) {
        // The kept copy is for the container's own architecture, not the
        // node's: stop it, and start again with the node's.
        await session.write(Buffer.from(STOP_LINE)).catch(() => {});
        await orStop(session.result, signal);
        session.close();
        return beginInstallAndRun(ctx, target, { ...options, runKeptAtOnce: false }).finish();
      }
    } else {
      await sendAnswer(session, probe, needed);
    }
    // The wrapper's PID line says tcpdump is in place and starting.
    const ended = session.result.then((result) => {
      throw startFailure(target, probe, needed, result);
    });
    await orStop(Promise.race([started.promise, ended]), signal);
    if (needed.present) log.info('tcpdump already present', { binary });
    else {
      const ms = Date.now() - uploadStarted;
      log.info('tcpdump uploaded', { binary, ms, tar: probe.hasTar });
    }
    answer = 'handed over';
    const remote = RemoteTcpdump.adopt(kc, target, session, () => pid, ctx);
    return { remote, binary, dir: probe.dir };
  }
  return { probe: probing, finish };
}

type Answer = 'none' | 'sent' | 'handed over';

/**
 * Ends an exec that was not handed over: one still waiting for its answer is
 * told to quit (it removes its directory itself), a kept copy that ran at
 * once is told to stop, one cut off mid-upload is closed.
 */
async function endUnlessHandedOver(opening: Promise<ExecSession>, answer: Answer): Promise<void> {
  if (answer === 'handed over') return;
  const session = await opening.catch(() => undefined);
  if (!session) return;
  if (answer === 'none') await session.write(Buffer.from(QUIT_ANSWER + STOP_LINE)).catch(() => {});
  session.close();
}

/** Runs the kept copy, or sends the upload after its announcement. */
async function sendAnswer(session: ExecSession, probe: ProbeResult, needed: Needed): Promise<void> {
  if (needed.present) return session.write(Buffer.from(runAnswer(needed.name)));
  const payload = await payloadFor(probe, needed);
  await session.write(Buffer.from(putAnswer(payload.length, needed.name)));
  for (let at = 0; at < payload.length; at += PAYLOAD_FRAME) {
    await session.write(payload.subarray(at, at + PAYLOAD_FRAME));
  }
}

/** Why the exec ended before tcpdump started. */
function startFailure(
  target: ExecTarget,
  probe: ProbeResult,
  needed: Needed,
  result: ExecResult,
): KubedumpError {
  if (!needed.present) return uploadFailure(target, probe.dir, result);
  const said = result.stderr.trim() || result.message || '';
  return new KubedumpError(
    'PROBE_FAILED',
    `starting tcpdump in ${describeTarget(target)} failed (exit ${result.exitCode ?? 'unknown'}): ${said}`.trim(),
    { hint: 'use privileged mode (--privileged)' },
  );
}
