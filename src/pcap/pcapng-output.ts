import { Writable } from 'node:stream';
import { isViewSink, type ViewSink } from '../view-sink.ts';
import { GLOBAL_HEADER_BYTES, type GlobalHeader, parseGlobalHeader } from './format.ts';
import {
  type InterfaceDescription,
  interfaceDescriptionBlock,
  type NameRecord,
  nameResolutionBlock,
  putEnhancedPacket,
  type SectionHeader,
  sectionHeaderBlock,
} from './pcapng.ts';

// One pcapng section written live from several sources, each a pod's pcap
// stream. A source's records become Enhanced Packet Blocks as they arrive,
// whole, so blocks of different pods interleave but are never torn. An
// interface's description is written the moment it is added, before any of
// its packets. Into an output that takes views (src/output.ts) a block's
// pieces are copied straight from the exec socket's read buffer.

export class PcapngOutput {
  readonly #sink: Writable;
  readonly #views: ViewSink | undefined;
  readonly #maxPackets: number;
  readonly #onLimit: () => void;
  #interfaces = 0;
  packets = 0;
  bytes = 0;

  constructor(
    sink: Writable,
    section: SectionHeader,
    options: { maxPackets?: number; onLimit?: () => void } = {},
  ) {
    this.#sink = sink;
    this.#views = isViewSink(sink) ? sink : undefined;
    this.#maxPackets = options.maxPackets ?? 0;
    this.#onLimit = options.onLimit ?? (() => {});
    this.#write(sectionHeaderBlock(section));
  }

  /** Writes an Interface Description Block; returns its interface id. */
  addInterface(description: InterfaceDescription): number {
    this.#write(interfaceDescriptionBlock(description));
    return this.#interfaces++;
  }

  /** Name records (and a comment) in a Name Resolution Block. */
  addNames(records: readonly NameRecord[], comment?: string): void {
    if (records.length || comment) this.#write(nameResolutionBlock(records, comment));
  }

  /**
   * A source: a pcap stream (its global header, then whole records, as a
   * PcapFramer passes them on) whose packets go to the interface `interfaceId`
   * picks once the header is known. Its end ends nothing else.
   */
  source(interfaceId: (header: GlobalHeader) => number): PcapSource {
    return new PcapSource(this, interfaceId);
  }

  get full(): boolean {
    return this.#maxPackets > 0 && this.packets >= this.#maxPackets;
  }

  async end(): Promise<void> {
    const sink = this.#sink;
    if (sink.destroyed || sink.writableEnded) return;
    await new Promise<void>((resolve) => sink.end(resolve));
  }

  /**
   * The whole records of `records` from `at` on, as blocks of `interfaceId`;
   * false asks the source to wait for onDrain. A slow reader slows every
   * pod's stream, and no buffer grows.
   */
  takePackets(records: Buffer, at: number, header: GlobalHeader, interfaceId: number): boolean {
    if (this.full || this.#closed()) return true;
    const views = this.#views;
    const pieces: Buffer[] = [];
    let open = true;
    const put = (piece: Buffer) => {
      this.bytes += piece.length;
      if (views) open = views.take(piece) && open;
      else pieces.push(Buffer.from(piece));
    };
    let offset = at;
    while (offset < records.length && !this.full) {
      offset = putEnhancedPacket(records, offset, header, interfaceId, put);
      this.packets++;
    }
    if (pieces.length > 0) open = this.#write(Buffer.concat(pieces));
    if (this.full) this.#onLimit();
    return open;
  }

  /** Runs `listener` once, when the output takes blocks again. */
  onDrain(listener: () => void): void {
    if (this.#views) {
      this.#views.onDrain(listener);
      return;
    }
    const sink = this.#sink;
    const go = () => {
      sink.off('drain', go).off('close', go);
      listener();
    };
    sink.once('drain', go).once('close', go);
  }

  #closed(): boolean {
    return this.#sink.destroyed || this.#sink.writableEnded;
  }

  #write(block: Buffer): boolean {
    if (this.#closed()) return true;
    return this.#sink.write(block);
  }
}

/**
 * One pod's pcap stream into the output. A capture hands it record views
 * (`take`, as to an output); what is written (a global header when the pod
 * sent none) is taken the same way.
 */
export class PcapSource extends Writable implements ViewSink {
  readonly #output: PcapngOutput;
  readonly #pickInterface: (header: GlobalHeader) => number;
  #header: GlobalHeader | undefined;
  #interfaceId = 0;

  constructor(output: PcapngOutput, pickInterface: (header: GlobalHeader) => number) {
    super();
    this.#output = output;
    this.#pickInterface = pickInterface;
  }

  get header(): GlobalHeader | undefined {
    return this.#header;
  }

  take(bytes: Buffer): boolean {
    try {
      return this.#convert(bytes);
    } catch (error) {
      this.destroy(error as Error);
      return true;
    }
  }

  onDrain(listener: () => void): void {
    this.#output.onDrain(listener);
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (e?: Error) => void): void {
    try {
      if (this.#convert(chunk)) callback();
      else this.#output.onDrain(() => callback());
    } catch (error) {
      callback(error as Error);
    }
  }

  #convert(bytes: Buffer): boolean {
    let at = 0;
    if (!this.#header) {
      const header = parseGlobalHeader(bytes);
      if (!header) throw new RangeError('expected a pcap global header from the framer');
      this.#header = header;
      this.#interfaceId = this.#pickInterface(header);
      at = GLOBAL_HEADER_BYTES;
    }
    return this.#output.takePackets(bytes, at, this.#header, this.#interfaceId);
  }
}
