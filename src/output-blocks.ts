// Bytes that last only through a call, copied into blocks the output owns
// and written in order, one write at a time; a block is reused once its
// write has completed. Steady streaming allocates nothing: no Buffer per
// chunk for the GC to promote and collect.

type Done = (error?: Error | null) => void;

const BLOCK = 256 * 1024;
const BLOCKS = 4;
/**
 * While bytes flow, a partly filled block waits this long for more before it
 * is written: a write per socket read would cost the thread pool a hand-off
 * (two context switches) per 64 KiB. Bytes after a quiet spell go out at once.
 */
const LINGER_MS = 4;

export class BlockRing {
  readonly #write: (bytes: Buffer, done: Done) => void;
  readonly #blocks: Buffer[];
  /** Filled length of each block; a block is free when 0 and not queued. */
  readonly #filled: number[];
  /** Blocks handed to #write or waiting for it, in order. */
  readonly #queue: number[] = [];
  /** Bytes taken while every block was busy, kept (copied) in order. */
  #overflow: Buffer[] = [];
  #current = 0;
  #writing = false;
  #flushSoon = false;
  /** When the last write started (performance.now()). */
  #lastWrite = Number.NEGATIVE_INFINITY;
  #drainListeners: (() => void)[] = [];
  #idleListeners: Done[] = [];
  #error: Error | null = null;

  constructor(write: (bytes: Buffer, done: Done) => void, blocks = BLOCKS, size = BLOCK) {
    this.#write = write;
    this.#blocks = Array.from({ length: blocks }, () => Buffer.allocUnsafeSlow(size));
    this.#filled = this.#blocks.map(() => 0);
  }

  get error(): Error | null {
    return this.#error;
  }

  /** Copies `bytes` in; false asks the producer to pause until onDrain's listener runs. */
  take(bytes: Buffer): boolean {
    if (this.#error) return false;
    if (this.#overflow.length > 0) {
      this.#overflow.push(Buffer.from(bytes));
      return false;
    }
    const rest = this.#copyIn(bytes);
    if (rest.length > 0) this.#overflow.push(Buffer.from(rest));
    this.#scheduleFlush();
    return rest.length === 0 && !this.#busy(this.#current);
  }

  /** Runs `listener` once, when the ring takes bytes again. */
  onDrain(listener: () => void): void {
    this.#drainListeners.push(listener);
  }

  /** Calls back once everything taken so far is written (or writing failed). */
  flush(done: Done): void {
    if (this.#error || this.#idle()) {
      done(this.#error);
      return;
    }
    this.#idleListeners.push(done);
    this.#submitCurrent();
  }

  /** Copies as much of `bytes` as the free blocks hold; returns what did not fit. */
  #copyIn(bytes: Buffer): Buffer {
    let at = 0;
    while (at < bytes.length) {
      if (this.#busy(this.#current)) break;
      const block = this.#blocks[this.#current] as Buffer;
      const filled = this.#filled[this.#current] as number;
      const n = bytes.copy(block, filled, at);
      at += n;
      this.#filled[this.#current] = filled + n;
      if (filled + n === block.length) this.#submitCurrent();
    }
    return bytes.subarray(at);
  }

  #busy(index: number): boolean {
    return this.#queue.includes(index);
  }

  #idle(): boolean {
    return (
      !this.#writing &&
      this.#queue.length === 0 &&
      this.#overflow.length === 0 &&
      this.#filled[this.#current] === 0
    );
  }

  /** Queues the block being filled (if it holds anything) and moves to the next. */
  #submitCurrent(): void {
    if (this.#filled[this.#current] === 0 || this.#busy(this.#current)) return;
    this.#queue.push(this.#current);
    this.#current = (this.#current + 1) % this.#blocks.length;
    this.#next();
  }

  /**
   * What was taken goes out, however little: at the end of this turn of the
   * event loop after a quiet spell, else within LINGER_MS.
   */
  #scheduleFlush(): void {
    if (this.#flushSoon) return;
    this.#flushSoon = true;
    const flush = () => {
      this.#flushSoon = false;
      if (!this.#writing) this.#submitCurrent();
    };
    if (performance.now() - this.#lastWrite >= LINGER_MS) setImmediate(flush);
    else setTimeout(flush, LINGER_MS);
  }

  #next(): void {
    if (this.#writing || this.#error) return;
    const index = this.#queue[0];
    if (index === undefined) return;
    this.#writing = true;
    this.#lastWrite = performance.now();
    const bytes = (this.#blocks[index] as Buffer).subarray(0, this.#filled[index]);
    this.#write(bytes, (error) => {
      this.#writing = false;
      this.#queue.shift();
      this.#filled[index] = 0;
      if (error) return this.#fail(error);
      this.#refill();
      this.#next();
      if (this.#writing) return;
      // A flush waits for nothing; else a partly filled block lingers.
      if (this.#idleListeners.length > 0) this.#submitCurrent();
      else if (this.#filled[this.#current] !== 0) this.#scheduleFlush();
      if (this.#idle()) for (const done of this.#idleListeners.splice(0)) done(null);
    });
  }

  /** Moves kept bytes into freed blocks; the producer resumes once none is kept. */
  #refill(): void {
    while (this.#overflow.length > 0) {
      const first = this.#overflow[0] as Buffer;
      const rest = this.#copyIn(first);
      if (rest.length > 0) {
        this.#overflow[0] = rest;
        return;
      }
      this.#overflow.shift();
    }
    if (!this.#busy(this.#current)) {
      for (const listener of this.#drainListeners.splice(0)) listener();
    }
  }

  #fail(error: Error): void {
    this.#error = error;
    this.#overflow = [];
    for (const done of this.#idleListeners.splice(0)) done(error);
    for (const listener of this.#drainListeners.splice(0)) listener();
  }
}
