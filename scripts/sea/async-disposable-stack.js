// AsyncDisposableStack for Node 22 (the Windows executable's runtime: Node 24
// does not start under Wine), with the subset of the standard behaviour the
// code uses: defer, use, adopt, disposeAsync (last in, first out; errors
// chained into SuppressedError), disposed, move. Node 24 has its own.
if (typeof globalThis.AsyncDisposableStack === 'undefined') {
  const asyncDispose = Symbol.asyncDispose ?? Symbol.for('Symbol.asyncDispose');
  const dispose = Symbol.dispose ?? Symbol.for('Symbol.dispose');
  if (typeof globalThis.SuppressedError === 'undefined') {
    globalThis.SuppressedError = class SuppressedError extends Error {
      constructor(error, suppressed, message) {
        super(message ?? 'An error was suppressed during disposal.');
        this.name = 'SuppressedError';
        this.error = error;
        this.suppressed = suppressed;
      }
    };
  }
  globalThis.AsyncDisposableStack = class AsyncDisposableStack {
    #callbacks = [];
    #disposed = false;
    get disposed() {
      return this.#disposed;
    }
    #check() {
      if (this.#disposed) throw new ReferenceError('AsyncDisposableStack already disposed');
    }
    defer(onDisposeAsync) {
      this.#check();
      this.#callbacks.push(() => onDisposeAsync());
    }
    use(value) {
      this.#check();
      if (value !== null && value !== undefined) {
        const method = value[asyncDispose] ?? value[dispose];
        if (typeof method !== 'function') throw new TypeError('value is not disposable');
        this.#callbacks.push(() => method.call(value));
      }
      return value;
    }
    adopt(value, onDisposeAsync) {
      this.#check();
      this.#callbacks.push(() => onDisposeAsync(value));
      return value;
    }
    move() {
      this.#check();
      const next = new AsyncDisposableStack();
      next.#callbacks = this.#callbacks;
      this.#callbacks = [];
      this.#disposed = true;
      return next;
    }
    async disposeAsync() {
      if (this.#disposed) return;
      this.#disposed = true;
      let failed = false;
      let failure;
      while (this.#callbacks.length > 0) {
        const callback = this.#callbacks.pop();
        try {
          await callback();
        } catch (error) {
          failure = failed ? new SuppressedError(error, failure) : error;
          failed = true;
        }
      }
      if (failed) throw failure;
    }
    [asyncDispose]() {
      return this.disposeAsync();
    }
  };
}
