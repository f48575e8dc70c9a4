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
export class PcapFramer extends Transform {
  #pending: Buffer = Buffer.alloc(0);
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
    return this.#pending.length;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    callback(this.#take(chunk));
  }

  /** Passes on every whole record in `chunk` plus what was pending; returns a format error. */
  #take(chunk: Buffer): Error | undefined {
    if (this.#limitReached()) return undefined;
    this.#pending = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk]);
    let offset = 0;
    const out: Buffer[] = [];
    if (!this.#header) {
      if (this.#pending.length < GLOBAL_HEADER_BYTES) return undefined;
      const header = parseGlobalHeader(this.#pending);
      if (!header) return new PcapFormatError('the remote tcpdump did not write a pcap stream');
      this.#header = header;
      out.push(this.#pending.subarray(0, GLOBAL_HEADER_BYTES));
      offset = GLOBAL_HEADER_BYTES;
      this.#options.onHeader?.(header);
    }
    const header = this.#header;
    while (!this.#limitReached() && this.#pending.length - offset >= RECORD_HEADER_BYTES) {
      const length = RECORD_HEADER_BYTES + recordCaptureLength(this.#pending, offset, header);
      if (length - RECORD_HEADER_BYTES > Math.max(header.snaplen, 262144) * 4) {
        return new PcapFormatError(`pcap record of ${length} bytes is not plausible`);
      }
      if (this.#pending.length - offset < length) break;
      out.push(this.#pending.subarray(offset, offset + length));
      offset += length;
      this.packets++;
      this.bytes += length;
      if (this.#limitReached()) this.#options.onLimit?.();
    }
    // Keep only the incomplete tail; copy so the big chunk can be collected.
    this.#pending = Buffer.from(this.#pending.subarray(offset));
    if (out.length > 0) this.push(out.length === 1 ? out[0] : Buffer.concat(out));
    return undefined;
  }

  #limitReached(): boolean {
    return this.#maxPackets > 0 && this.packets >= this.#maxPackets;
  }
}
