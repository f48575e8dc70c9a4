import { close, fstat, open, writev } from 'node:fs';
import { Socket } from 'node:net';
import { Writable } from 'node:stream';
import { BlockRing } from './output-blocks.ts';
import type { ViewSink } from './view-sink.ts';

// Where a capture's bytes go: a file, a fifo, or a descriptor such as stdout.

const HIGH_WATER = 256 * 1024;

type Done = (error?: Error | null) => void;

/** Writes every byte of `buffers` on the thread pool; EAGAIN (a full non-blocking pipe) waits and retries. */
function writeAll(fd: number, buffers: Buffer[], callback: Done, delay = 1): void {
  writev(fd, buffers, null, (error, written) => {
    if ((error as NodeJS.ErrnoException | null)?.code === 'EAGAIN') {
      setTimeout(() => writeAll(fd, buffers, callback, Math.min(delay * 2, 50)), delay);
    } else if (error) {
      callback(error);
    } else {
      const rest = unwritten(buffers, written);
      if (rest.length > 0) writeAll(fd, rest, callback);
      else callback();
    }
  });
}

/**
 * An output whose bytes go through blocks it owns (src/output-blocks.ts):
 * `write` copies chunks in, and a capture hands record views to `take`,
 * which copies them without a Buffer of their own. Both keep one order: a
 * view is taken directly only while no written chunk waits in the stream.
 */
abstract class RingWritable extends Writable implements ViewSink {
  #ring: BlockRing | undefined;

  constructor() {
    super({ highWaterMark: HIGH_WATER });
  }

  protected startRing(write: (bytes: Buffer, done: Done) => void): void {
    this.#ring = new BlockRing(write);
  }

  /** Takes bytes that last only through the call; false: wait for onDrain. */
  take(bytes: Buffer): boolean {
    const ring = this.#ring;
    if (!ring || this.writableLength > 0 || this.destroyed) return this.write(Buffer.from(bytes));
    if (ring.error) {
      this.destroy(ring.error);
      return false;
    }
    return ring.take(bytes);
  }

  onDrain(listener: () => void): void {
    const ring = this.#ring;
    if (!ring || this.writableLength > 0) this.once('drain', listener);
    else ring.onDrain(() => (ring.error ? this.destroy(ring.error) : listener()));
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: Done): void {
    this._writev([{ chunk }], callback);
  }

  override _writev(chunks: { chunk: Buffer }[], callback: Done): void {
    const ring = this.#ring as BlockRing;
    let open = true;
    for (const { chunk } of chunks) open = ring.take(chunk);
    if (ring.error) callback(ring.error);
    else if (open) callback();
    else ring.onDrain(() => callback(ring.error));
  }

  override _final(callback: Done): void {
    if (this.#ring) this.#ring.flush(callback);
    else callback();
  }
}

/**
 * Writes on the descriptor itself, never destroying process.stdout. A pipe may
 * be non-blocking (the reader's end is shared, or the fd was put in that
 * mode): a full pipe then answers EAGAIN, which means "wait", not "fail".
 * The write waits, so backpressure reaches the capture while the reader
 * stalls, and the event loop stays free for signals.
 */
class FdWritable extends RingWritable {
  constructor(fd: number) {
    super();
    this.startRing((bytes, done) => writeAll(fd, [bytes], done));
  }
}

/**
 * A file or fifo by path, opened when the stream is constructed (a fifo's
 * open waits for its reader). A fifo is written as a non-blocking pipe on the
 * event loop (a slow reader holds the capture back, never the loop); anything
 * else (a regular file, a Windows named pipe, a device) through the thread
 * pool, so the event loop reads the socket while the kernel copies into the
 * page cache, as kubectl's writer and reader run on threads of their own.
 */
class PathWritable extends RingWritable {
  readonly #path: string;
  readonly #mode: number;
  #fd = -1;
  /** A fifo: written as a non-blocking pipe. */
  #pipe: Socket | undefined;

  constructor(path: string, mode: number) {
    super();
    this.#path = path;
    this.#mode = mode;
  }

  override _construct(callback: Done): void {
    open(this.#path, 'w', this.#mode, (error, fd) => {
      if (error) return callback(error);
      this.#fd = fd;
      fstat(fd, (statError, stats) => {
        if (statError) return callback(statError);
        if (stats.isFIFO() && process.platform !== 'win32') {
          const pipe = new Socket({ fd, readable: false, writable: true });
          pipe.on('error', (e) => this.destroy(e));
          this.#pipe = pipe;
          // The pipe holds the block until the kernel took all of it.
          this.startRing((bytes, done) => pipe.write(bytes, done));
        } else {
          this.startRing((bytes, done) => writeAll(fd, [bytes], done));
        }
        callback();
      });
    });
  }

  override _final(callback: Done): void {
    super._final((error) => {
      if (error || !this.#pipe) callback(error);
      else this.#pipe.end(callback);
    });
  }

  override _destroy(error: Error | null, callback: Done): void {
    if (this.#pipe) {
      // The pipe owns the descriptor and closes it.
      this.#pipe.destroy();
      callback(error);
    } else if (this.#fd >= 0) {
      close(this.#fd, () => callback(error));
    } else {
      callback(error);
    }
    this.#fd = -1;
  }
}

/** The buffers (or their tails) after the first `written` bytes. */
export function unwritten(buffers: Buffer[], written: number): Buffer[] {
  let skip = written;
  let i = 0;
  while (i < buffers.length && skip >= (buffers[i] as Buffer).length) {
    skip -= (buffers[i] as Buffer).length;
    i++;
  }
  const rest = buffers.slice(i);
  if (rest.length > 0 && skip > 0) rest[0] = (rest[0] as Buffer).subarray(skip);
  return rest;
}

/** An output on a descriptor the caller owns (stdout): it is never closed here. */
export function fdStream(fd: number): Writable & ViewSink {
  return new FdWritable(fd);
}

/** An output file or fifo, created with `mode` if it does not exist; a fifo is not truncated. */
export function openOutput(path: string, mode = 0o666): Writable & ViewSink {
  return new PathWritable(path, mode);
}
