// Where bytes that last only through a call go: the exec socket's read
// buffer to the framer, the framer's records to the output. `take` copies
// what it keeps; false asks the producer to pause until the drain listener
// runs.

export interface ViewSink {
  take(bytes: Buffer): boolean;
  onDrain(listener: () => void): void;
}

/** Whether a stream also takes views (an output of src/output.ts, a pcapng source). */
export function isViewSink(sink: object): sink is ViewSink {
  const candidate = sink as Partial<ViewSink>;
  return typeof candidate.take === 'function' && typeof candidate.onDrain === 'function';
}
