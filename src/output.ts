import { close, fstat, open, writev } from 'node:fs';
import { Socket } from 'node:net';
import { Writable } from 'node:stream';

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
 * Writes on the descriptor itself, never destroying process.stdout. A pipe may
 * be non-blocking (the reader's end is shared, or the fd was put in that
 * mode): a full pipe then answers EAGAIN, which means "wait", not "fail".
 * The callback waits, so backpressure reaches the capture while the reader
 * stalls, and the event loop stays free for signals. What piles up while a
 * write is under way goes out in one system call.
 */
class FdWritable extends Writable {
  readonly #fd: number;
  constructor(fd: number) {
    super({ highWaterMark: HIGH_WATER });
    this.#fd = fd;
  }
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: Done): void {
    writeAll(this.#fd, [chunk], callback);
  }
  override _writev(chunks: { chunk: Buffer }[], callback: Done): void {
    writeAll(
      this.#fd,
      chunks.map((c) => c.chunk),
      callback,
    );
  }
}

/**
 * A file or fifo by path, opened when the stream is constructed (a fifo's
 * open waits for its reader). A fifo is written as a non-blocking pipe on the
 * event loop (a slow reader holds the capture back, never the loop); anything
 * else (a regular file, a Windows named pipe, a device) through the thread
 * pool, so the event loop reads the socket while the kernel copies into the
 * page cache, as kubectl's writer and reader run on threads of their own.
 * What arrives meanwhile goes out in the next writev.
 */
class PathWritable extends Writable {
  readonly #path: string;
  readonly #mode: number;
  #fd = -1;
  /** A fifo: written as a non-blocking pipe. */
  #pipe: Socket | undefined;

  constructor(path: string, mode: number) {
    super({ highWaterMark: HIGH_WATER });
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
          this.#pipe = new Socket({ fd, readable: false, writable: true });
          this.#pipe.on('error', (e) => this.destroy(e));
        }
        callback();
      });
    });
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: Done): void {
    this._writev([{ chunk }], callback);
  }

  override _writev(chunks: { chunk: Buffer }[], callback: Done): void {
    const buffers = chunks.map((c) => c.chunk);
    if (this.#pipe) {
      // The pipe writes what the kernel takes at once and queues the rest;
      // the callback waits for the last buffer, which holds the capture back.
      const last = buffers.pop() as Buffer;
      for (const buffer of buffers) this.#pipe.write(buffer);
      this.#pipe.write(last, callback);
    } else {
      writeAll(this.#fd, buffers, callback);
    }
  }

  override _final(callback: Done): void {
    if (this.#pipe) this.#pipe.end(callback);
    else callback();
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
export function fdStream(fd: number): Writable {
  return new FdWritable(fd);
}

/** An output file or fifo, created with `mode` if it does not exist; a fifo is not truncated. */
export function openOutput(path: string, mode = 0o666): Writable {
  return new PathWritable(path, mode);
}
