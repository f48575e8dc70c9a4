import { errorLine, KubedumpError } from '../errors.ts';
import { heldLogger } from '../log.ts';
import type { Begun, CaptureMode, ModeContext, Placement } from './capture-mode.ts';
import { type Check, chooseMode, modeLine, nothingCanCapture } from './mode-pick.ts';
import { MODES } from './mode-registry.ts';
import { preflight } from './preflight.ts';
import { RemoteTcpdump } from './remote-tcpdump.ts';
import { PLACEMENTS, type PlacementName } from './request.ts';
import { disposeWithin, StopClock } from './stop-clock.ts';
import { tcpdumpArgv } from './tcpdump-command.ts';

// Starts tcpdump in the mode the request names, or with auto in the cheapest
// mode the preflight finds able to capture. A mode that passed the preflight
// but fails at its start (an image that will not pull, a webhook that only
// refuses the real request) is undone first, then the next one is tried.

export interface Started {
  mode: PlacementName;
  placement: Placement;
  remote: RemoteTcpdump;
}

/** Failures no other mode would fix: the next one is not tried. */
const FINAL = new Set([
  'ABORTED',
  'CLUSTER_UNREACHABLE',
  'UNAUTHORIZED',
  'POD_NOT_FOUND',
  'POD_DELETED',
]);

/**
 * The cheapest mode's first step, begun before the pod has been read: its
 * exec needs only the pod's name and the container, and the pod's read and
 * the exec's start then overlap. `ctx.target` holds only the namespace, the
 * pod and the container as named (none: the API server takes the pod's only
 * container, and refuses when there are several).
 */
export interface EarlyStart {
  attempt: Attempt;
  begun: Begun;
  /** The attempt's log lines wait here for auto's mode line. */
  held: ReturnType<typeof heldLogger>;
}

export function beginEarly(ctx: ModeContext): EarlyStart | undefined {
  const cheapest = MODES[PLACEMENTS[0]];
  const { mode } = ctx.request;
  if (!cheapest.begin || (mode !== 'auto' && mode !== cheapest.name)) return undefined;
  const held = heldLogger(ctx.log);
  if (mode !== 'auto') held.release();
  const attempt = newAttempt({ ...ctx, log: held.log });
  return { attempt, begun: cheapest.begin(attempt.ctx), held };
}

/** Undoes an early start that the pod's read showed to be of no use. */
export async function dropEarly(early: EarlyStart, log: ModeContext['log']): Promise<void> {
  early.held.release();
  await undo(early.attempt, log);
}

export async function startTcpdump(
  ctx: ModeContext,
  notice: (line: string) => void,
  early?: EarlyStart,
): Promise<Started> {
  const { request, target, log } = ctx;
  if (request.mode !== 'auto') {
    if (!early) return startIn(MODES[request.mode], ctx);
    try {
      return await startIn(MODES[request.mode], early.attempt.ctx, early.begun.finish);
    } finally {
      ctx.cleanup.use(early.attempt.stack);
    }
  }
  // The cheapest mode begins beside the preflight (unprivileged: its probe),
  // so that its first answer is in when it is picked; it is undone when not.
  // Its log lines wait for the choice: the log starts with the mode line.
  const cheapest = MODES[PLACEMENTS[0]];
  const { held, attempt: head, begun } = early ?? beginEarly(ctx) ?? withoutBegin(ctx);
  let checks: Check[];
  try {
    checks = await preflight(ctx.kc, target, request, ctx.signal, {
      seen: begun?.look,
      cheapestFirst: true,
    });
  } catch (error) {
    held.release();
    ctx.cleanup.use(head.stack);
    throw error;
  }
  const { candidates, skipped } = chooseMode(checks);
  const pod = `${target.namespace}/${target.pod}`;
  const first = candidates[0];
  // The choice is the capture's first line; the checks behind it follow.
  if (first) notice(modeLine(first, pod, skipped));
  log.debug('preflight', { checks });
  held.release();
  if (first !== cheapest.name) await undo(head, log);
  if (!first) throw nothingCanCapture(checks, target);
  for (const [i, name] of candidates.entries()) {
    const attempt = name === cheapest.name ? head : newAttempt(ctx);
    try {
      const started = await startIn(
        MODES[name],
        attempt.ctx,
        attempt === head ? begun?.finish : undefined,
      );
      ctx.cleanup.use(attempt.stack);
      return started;
    } catch (error) {
      const next = candidates[i + 1];
      if (!next || ctx.signal.aborted || !fallsThrough(error)) {
        ctx.cleanup.use(attempt.stack);
        throw error;
      }
      log.warn('mode failed at its start', { mode: name, error });
      await undo(attempt, log);
      skipped.push({ mode: name, why: `failed at its start: ${errorLine(error)}` });
      notice(modeLine(next, pod, skipped));
    }
  }
  throw new Error('unreachable: the last candidate either starts or throws');
}

/** Auto's first attempt when the cheapest mode has no first step to begin early. */
function withoutBegin(ctx: ModeContext): Omit<EarlyStart, 'begun'> & { begun?: Begun } {
  const held = heldLogger(ctx.log);
  return { held, attempt: newAttempt({ ...ctx, log: held.log }) };
}

/**
 * One mode's try. Each undoes its own work, on its own clock: a failed one
 * must not spend the capture's stop budget. A stop starts both.
 */
interface Attempt {
  ctx: ModeContext;
  stack: AsyncDisposableStack;
  clock: StopClock;
  forgetStop(): void;
}

function newAttempt(ctx: ModeContext): Attempt {
  const stack = new AsyncDisposableStack();
  const clock = new StopClock();
  const startClock = () => clock.start();
  ctx.signal.addEventListener('abort', startClock, { once: true });
  return {
    ctx: { ...ctx, cleanup: stack, clock },
    stack,
    clock,
    forgetStop: () => ctx.signal.removeEventListener('abort', startClock),
  };
}

async function undo(attempt: Attempt, log: ModeContext['log']): Promise<void> {
  attempt.forgetStop();
  await disposeWithin(attempt.stack, attempt.clock.remainingMs(), log);
}

function fallsThrough(error: unknown): boolean {
  return error instanceof KubedumpError && !FINAL.has(error.code);
}

async function startIn(
  mode: CaptureMode,
  ctx: ModeContext,
  begun?: () => Promise<Placement>,
): Promise<Started> {
  const { kc, request, log, signal, clock } = ctx;
  const placement = await (begun ? begun() : mode.prepare(ctx));
  signal.throwIfAborted();
  const { binary, where } = placement;
  const { iface, filter, snaplen } = request;
  const argv = tcpdumpArgv({ binary, iface, filter, snaplen });
  const remote = ctx.cleanup.use(
    placement.started ?? (await RemoteTcpdump.start(kc, placement, argv, { log, signal, clock })),
  );
  placement.handedOver?.();
  log.info('capture started', {
    mode: mode.name,
    where,
    transport: remote.transport,
    protocol: remote.protocol,
    argv,
  });
  return { mode: mode.name, placement, remote };
}
