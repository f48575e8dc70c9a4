import { Writable } from 'node:stream';
import {
  type InterfaceDescription,
  interfaceDescriptionBlock,
  type NameRecord,
  nameResolutionBlock,
  type SectionHeader,
  sectionHeaderBlock,
} from './pcapng.ts';

// One pcapng section written live from several sources: each source's
// blocks arrive as chunks of whole blocks and are written with one write
// each, so blocks of different pods interleave but are never torn. An
// interface's description is written the moment it is added, before any of
// its packets.

export class PcapngOutput {
  readonly #sink: Writable;
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

  /** A writable for one source's Enhanced Packet Blocks; its end ends nothing else. */
  input(): Writable {
    return new Writable({
      write: (chunk: Buffer, _encoding, callback) => this.#packets(chunk, callback),
    });
  }

  get full(): boolean {
    return this.#maxPackets > 0 && this.packets >= this.#maxPackets;
  }

  async end(): Promise<void> {
    const sink = this.#sink;
    if (sink.destroyed || sink.writableEnded) return;
    await new Promise<void>((resolve) => sink.end(resolve));
  }

  #packets(chunk: Buffer, callback: (error?: Error | null) => void): void {
    if (this.full || this.#sink.destroyed) {
      callback();
      return;
    }
    let blocks = chunk;
    let count = countBlocks(chunk);
    if (this.#maxPackets > 0 && this.packets + count > this.#maxPackets) {
      count = this.#maxPackets - this.packets;
      blocks = chunk.subarray(0, lengthOfBlocks(chunk, count));
    }
    this.packets += count;
    this.bytes += blocks.length;
    const flushed = this.#write(blocks);
    if (this.full) this.#onLimit();
    // Backpressure: a slow reader slows every pod's stream, and no buffer grows.
    if (flushed) {
      callback();
      return;
    }
    const go = () => {
      this.#sink.off('drain', go).off('close', go);
      callback();
    };
    this.#sink.once('drain', go).once('close', go);
  }

  #write(block: Buffer): boolean {
    if (this.#sink.destroyed || this.#sink.writableEnded) return true;
    return this.#sink.write(block);
  }
}

/** Blocks in a chunk of whole little-endian pcapng blocks. */
function countBlocks(chunk: Buffer): number {
  let n = 0;
  for (let offset = 0; offset + 8 <= chunk.length; n++) offset += chunk.readUInt32LE(offset + 4);
  return n;
}

/** Bytes of the first `count` blocks of a chunk. */
function lengthOfBlocks(chunk: Buffer, count: number): number {
  let offset = 0;
  for (let i = 0; i < count; i++) offset += chunk.readUInt32LE(offset + 4);
  return offset;
}
