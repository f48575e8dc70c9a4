// Where bytes that last only through a call go: the exec socket's read
// buffer to the framer, the framer's records to the output. `take` copies
// what it keeps; false asks the producer to pause until the drain listener
// runs.

export interface ViewSink {
  take(bytes: Buffer): boolean;
  onDrain(listener: () => void): void;
}
