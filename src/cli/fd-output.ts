import { write, writev } from 'node:fs';
import { Writable } from 'node:stream';

/**
 * Writes on the descriptor itself, never destroying process.stdout. A pipe may
 * be non-blocking (the reader's end is shared, or the fd was put in that
 * mode): a full pipe then answers EAGAIN, which means "wait", not "fail".
 * The callback waits, so backpressure reaches the capture while the reader
 * stalls, and the event loop stays free for signals.
 */
class FdWritable extends Writable {
  readonly #fd: number;
  constructor(fd: number) {
    super({ highWaterMark: 256 * 1024 });
    this.#fd = fd;
  }
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (e?: Error) => void) {
    const attempt = (buffer: Buffer, delay: number) => {
      write(this.#fd, buffer, 0, buffer.length, null, (error, written) => {
        if ((error as NodeJS.ErrnoException | null)?.code === 'EAGAIN') {
          setTimeout(() => attempt(buffer, Math.min(delay * 2, 50)), delay);
        } else if (error) {
          callback(error);
        } else if (written < buffer.length) {
          attempt(buffer.subarray(written), 1);
        } else {
          callback();
        }
      });
    };
    attempt(chunk, 1);
  }

  // What piled up while a write was under way goes out in one system call.
  override _writev(chunks: { chunk: Buffer }[], callback: (e?: Error | null) => void): void {
    const attempt = (buffers: Buffer[], delay: number) => {
      writev(this.#fd, buffers, null, (error, written) => {
        if ((error as NodeJS.ErrnoException | null)?.code === 'EAGAIN') {
          setTimeout(() => attempt(buffers, Math.min(delay * 2, 50)), delay);
        } else if (error) {
          callback(error);
        } else {
          const rest = unwritten(buffers, written);
          if (rest.length > 0) attempt(rest, 1);
          else callback();
        }
      });
    };
    attempt(
      chunks.map((c) => c.chunk),
      1,
    );
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

export function fdStream(fd: number): Writable {
  return new FdWritable(fd);
}
