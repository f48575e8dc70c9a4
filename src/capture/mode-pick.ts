import { KubedumpError } from '../errors.ts';
import { PLACEMENTS, type PlacementName } from './request.ts';

// What the preflight found, and what follows from it: which modes can
// capture, which one auto takes (the cheapest that can: unprivileged, then
// ephemeral, then privileged), and the lines that say so. Pure: every
// decision is tested without a cluster.

export type CheckResult = 'ok' | 'fail' | 'skip';

export interface Check {
  /** What was checked, e.g. `RBAC: create pods in demo`. */
  check: string;
  result: CheckResult;
  /** What was found (or why it was not asked). */
  detail: string;
  /** What to do about a failure. */
  todo?: string | undefined;
  /** The modes that cannot capture when this check fails. */
  blocks: readonly PlacementName[];
  /** A failure in a few words, for the mode line (default: the detail). */
  reason?: string | undefined;
}

export interface ModeVerdict {
  mode: PlacementName;
  /** No check it needs failed (a skipped check does not stop it: the capture will tell). */
  canCapture: boolean;
  /** Why not, in a few words each. */
  blockers: string[];
}

export function verdicts(checks: readonly Check[]): ModeVerdict[] {
  return PLACEMENTS.map((mode) => {
    const failed = checks.filter((c) => c.result === 'fail' && c.blocks.includes(mode));
    return {
      mode,
      canCapture: failed.length === 0,
      blockers: unique(failed.map((c) => c.reason ?? c.detail)),
    };
  });
}

export interface ModeChoice {
  /** The modes to try, cheapest first: auto starts with the first. */
  candidates: PlacementName[];
  /** The cheaper modes passed over, and why. */
  skipped: { mode: PlacementName; why: string }[];
}

export function chooseMode(checks: readonly Check[]): ModeChoice {
  const all = verdicts(checks);
  const candidates = all.filter((v) => v.canCapture).map((v) => v.mode);
  const first = candidates[0];
  const cheaper = first === undefined ? all : all.slice(0, PLACEMENTS.indexOf(first));
  return {
    candidates,
    skipped: cheaper.map((v) => ({ mode: v.mode, why: v.blockers.join(', ') })),
  };
}

/** `mode: ephemeral for demo/distroless (unprivileged: container "server" has no shell)` */
export function modeLine(
  mode: PlacementName,
  pod: string,
  skipped: readonly { mode: PlacementName; why: string }[],
): string {
  const why = skipped.map((s) => `${s.mode}: ${s.why}`).join('; ');
  return `mode: ${mode} for ${pod}${why ? ` (${why})` : ''}`;
}

/** The one line when no mode can capture: every mode's blockers, and what to do. */
export function nothingCanCapture(
  checks: readonly Check[],
  target: { namespace: string; pod: string },
): KubedumpError {
  const all = verdicts(checks);
  const why = all.map((v) => `${v.mode}: ${v.blockers.join(', ')}`).join('; ');
  const todo = unique(
    checks.filter((c) => c.result === 'fail' && c.todo).map((c) => c.todo as string),
  );
  const doctor = `kubedump doctor ${target.pod} -n ${target.namespace} shows every check`;
  return new KubedumpError(
    'NO_MODE',
    `no mode can capture pod ${target.namespace}/${target.pod}: ${why}`,
    { hint: [...todo, doctor].join('; ') },
  );
}

function unique(items: readonly string[]): string[] {
  return [...new Set(items)];
}
