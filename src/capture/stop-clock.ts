import { KubedumpError } from '../errors.ts';
import type { Logger } from '../log.ts';

// One deadline for a capture's whole stop: fixed when the stop comes (or
// when cleanup starts after a failure), and every cleanup step gets what
// remains of it, so the steps together never run past the budget.

/** How long cleanup may take after a stop before the process gives up waiting. */
export const STOP_BUDGET_MS = 1500;

export class StopClock {
  #deadline: number | undefined;
  readonly #budgetMs: number;

  constructor(budgetMs = STOP_BUDGET_MS) {
    this.#budgetMs = budgetMs;
  }

  /** Fixes the deadline now, unless it is fixed already. */
  start(): void {
    this.#deadline ??= Date.now() + this.#budgetMs;
  }

  /** Milliseconds left until the deadline (fixing it if need be). */
  remainingMs(): number {
    this.start();
    return Math.max(0, (this.#deadline as number) - Date.now());
  }

  /** A signal that aborts at the deadline: for one cleanup request. */
  signal(): AbortSignal {
    return AbortSignal.timeout(Math.max(1, this.remainingMs()));
  }
}

/** Settles with `promise`, or rejects as soon as `signal` aborts. */
export function orStop<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new KubedumpError('ABORTED', 'stopped'));
    // Waited for even after a stop: a promise that fails with nobody waiting
    // for it ends the process (an upload cut off by the stop fails so).
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** Disposes the stack, waiting at most `ms` (a step past the deadline is logged, not awaited). */
export async function disposeWithin(stack: AsyncDisposableStack, ms: number, log: Logger) {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      log.warn('cleanup exceeded its budget', { ms });
      resolve();
    }, ms);
  });
  await Promise.race([
    stack.disposeAsync().catch((error) => log.warn('cleanup failed', { error })),
    deadline,
  ]);
  clearTimeout(timer);
}
