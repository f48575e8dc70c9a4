import { Transform, type TransformCallback } from 'node:stream';
import { KubedumpError } from '../errors.ts';
import {
  GLOBAL_HEADER_BYTES,
  type GlobalHeader,
  parseGlobalHeader,
  RECORD_HEADER_BYTES,
  recordCaptureLength,
} from './format.ts';

/** The remote end wrote something that is not a pcap stream. */
export class PcapFormatError extends KubedumpError {
  constructor(message: string) {
    super('PCAP_FORMAT', message, {
      hint: 'what ran in the pod is not a working tcpdump; capture again with log level debug and read the log',
    });
    this.name = 'PcapFormatError';
  }
}

const EMPTY = Buffer.alloc(0);

export interface FramerOptions {
  /** Stop after this many records (0: no limit). */
  maxPackets?: number;
  onHeader?: (header: GlobalHeader) => void;
  /** Called once when `maxPackets` records have passed. */
  onLimit?: () => void;
}

// Lets only whole pcap records through: the global header first, then each
// record once all of its bytes have arrived, so whatever the output holds when
// the stream stops is a valid capture. A torn tail is dropped, never written.
// Records that lie whole inside one incoming chunk go out as one slice of that
// chunk (no copy); only a record cut by a chunk boundary is put together.
export class PcapFramer extends Transform {
  /**
   * The start of a unit (global header or record) whose end has not arrived:
   * the first #pendingLength bytes of #assembly, which is sized for the whole
   * unit once its length is known, so a unit cut into many pieces is copied
   * once, not once per piece.
   */
  #assembly: Buffer = EMPTY;
  #pendingLength = 0;
  #header: GlobalHeader | undefined;
  #maxPackets: number;
  #options: FramerOptions;
  packets = 0;
  bytes = 0;

  constructor(options: FramerOptions = {}) {
    super();
    this.#options = options;
    this.#maxPackets = options.maxPackets ?? 0;
  }

  get header(): GlobalHeader | undefined {
    return this.#header;
  }

  /** Bytes received but not yet passed on (an incomplete record). */
  get pendingBytes(): number {
    return this.#pendingLength;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    // The stream keeps what it is given: a finished unit's assembly is not reused.
    callback(this.#take(chunk, (bytes) => this.push(bytes), false));
  }

  /**
   * The same without a stream: whole records go to `emit` as views of
   * `chunk` (a record cut by chunks, as a copy), which may last only through
   * the call. Returns a format error, or whether `emit` takes more.
   */
  takeView(chunk: Buffer, emit: (bytes: Buffer) => boolean): Error | boolean {
    let open = true;
    const error = this.#take(
      chunk,
      (bytes) => {
        open = emit(bytes) && open;
        return open;
      },
      true,
    );
    return error ?? open;
  }

  /**
   * Passes on every whole record in `chunk` plus what was pending; returns a
   * format error. With `reuse`, `emit` copies what it keeps, and the assembly
   * buffer serves the next cut unit too.
   */
  #take(chunk: Buffer, emit: (bytes: Buffer) => boolean, reuse: boolean): Error | undefined {
    if (this.#limitReached()) return undefined;
    let at = 0;
    // 1. Complete the pending unit with just the bytes it lacks.
    while (this.#pendingLength > 0 && at < chunk.length) {
      const want = this.#unitLength(this.#pendingBytes(), 0);
      if (want instanceof Error) return want;
      this.#reserve(want, reuse);
      const n = chunk.copy(
        this.#assembly,
        this.#pendingLength,
        at,
        at + want - this.#pendingLength,
      );
      this.#pendingLength += n;
      at += n;
      // A record's length is known only once its own header is whole: ask again.
      const known = this.#unitLength(this.#pendingBytes(), 0);
      if (known instanceof Error) return known;
      if (this.#pendingLength === known) {
        const unit = this.#pendingBytes();
        this.#pendingLength = 0;
        if (!reuse) this.#assembly = EMPTY;
        const error = this.#accept(unit, 0);
        if (error) return error;
        emit(unit);
        if (this.#limitReached()) return undefined;
      }
    }
    // 2. Whole units inside the chunk go out as one slice of it.
    const start = at;
    while (!this.#limitReached()) {
      const want = this.#unitLength(chunk, at);
      if (want instanceof Error) return want;
      if (chunk.length - at < want) break;
      const error = this.#accept(chunk, at);
      if (error) return error;
      at += want;
    }
    if (at > start) emit(chunk.subarray(start, at));
    // 3. Keep the incomplete tail (a copy: the chunk may be reused or collected).
    if (at < chunk.length && !this.#limitReached()) {
      const tail = chunk.length - at;
      const want = this.#unitLength(chunk, at);
      if (want instanceof Error) return want;
      this.#reserve(Math.max(want, tail), reuse);
      this.#pendingLength = chunk.copy(this.#assembly, 0, at);
    }
    return undefined;
  }

  #pendingBytes(): Buffer {
    return this.#assembly.subarray(0, this.#pendingLength);
  }

  /** Makes the assembly buffer hold `size` bytes, keeping what is pending. */
  #reserve(size: number, reuse: boolean): void {
    if (this.#assembly.length >= size) return;
    // Reused, it grows to the largest unit seen; given away, it is the unit's size.
    const grown = Buffer.allocUnsafe(reuse ? Math.max(size, 2 * this.#assembly.length) : size);
    this.#assembly.copy(grown, 0, 0, this.#pendingLength);
    this.#assembly = grown;
  }

  /**
   * Length of the unit starting at `offset` of `bytes`: the global header, or
   * a record; while a record's own header is incomplete, that header's length.
   */
  #unitLength(bytes: Buffer, offset: number): number | Error {
    if (!this.#header) return GLOBAL_HEADER_BYTES;
    if (bytes.length - offset < RECORD_HEADER_BYTES) return RECORD_HEADER_BYTES;
    const captured = recordCaptureLength(bytes, offset, this.#header);
    if (captured > Math.max(this.#header.snaplen, 262144) * 4) {
      return new PcapFormatError(
        `pcap record of ${RECORD_HEADER_BYTES + captured} bytes is not plausible`,
      );
    }
    return RECORD_HEADER_BYTES + captured;
  }

  /** Takes note of the whole unit at `offset`: the global header or one record. */
  #accept(bytes: Buffer, offset: number): Error | undefined {
    if (!this.#header) {
      const header = parseGlobalHeader(bytes.subarray(offset, offset + GLOBAL_HEADER_BYTES));
      if (!header) return new PcapFormatError('the remote tcpdump did not write a pcap stream');
      this.#header = header;
      this.#options.onHeader?.(header);
      return undefined;
    }
    const length = RECORD_HEADER_BYTES + recordCaptureLength(bytes, offset, this.#header);
    this.packets++;
    this.bytes += length;
    if (this.#limitReached()) this.#options.onLimit?.();
    return undefined;
  }

  #limitReached(): boolean {
    return this.#maxPackets > 0 && this.packets >= this.#maxPackets;
  }
}
