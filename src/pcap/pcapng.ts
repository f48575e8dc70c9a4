// pcapng blocks (https://www.ietf.org/archive/id/draft-ietf-opsawg-pcapng-02.html),
// written little-endian: a Section Header, one Interface Description per
// captured interface, Enhanced Packets naming their interface, and Name
// Resolution records. Every block and option is padded to 32 bits.

import { isIPv4, isIPv6 } from 'node:net';
import { type GlobalHeader, RECORD_HEADER_BYTES } from './format.ts';

export const BLOCK_SECTION_HEADER = 0x0a0d0d0a;
export const BLOCK_INTERFACE_DESCRIPTION = 1;
export const BLOCK_NAME_RESOLUTION = 4;
export const BLOCK_ENHANCED_PACKET = 6;

const BYTE_ORDER_MAGIC = 0x1a2b3c4d;
const BLOCK_OVERHEAD = 12;

const OPT_ENDOFOPT = 0;
const OPT_COMMENT = 1;
const SHB_HARDWARE = 2;
const SHB_OS = 3;
const SHB_USERAPPL = 4;
const IF_NAME = 2;
const IF_DESCRIPTION = 3;
const IF_TSRESOL = 9;
const IF_OS = 12;
const IF_HARDWARE = 15;
const EPB_FLAGS = 2;
const NRB_RECORD_END = 0;
const NRB_RECORD_IPV4 = 1;
const NRB_RECORD_IPV6 = 2;

/** An option value is at most 65535 bytes (its length is 16 bits). */
const MAX_OPTION_BYTES = 0xffff;

/** Rounds up to a multiple of 4. */
function padded(length: number): number {
  return (length + 3) & ~3;
}

interface Option {
  code: number;
  value: Buffer;
}

function textOption(code: number, text: string | undefined): Option[] {
  if (text === undefined) return [];
  const value = Buffer.from(text, 'utf8');
  if (value.length > MAX_OPTION_BYTES) {
    throw new RangeError(
      `pcapng option ${code} is ${value.length} bytes, over ${MAX_OPTION_BYTES}`,
    );
  }
  return [{ code, value }];
}

function commentOptions(comments: string | readonly string[] | undefined): Option[] {
  if (comments === undefined) return [];
  const list = typeof comments === 'string' ? [comments] : comments;
  return list.flatMap((c) => textOption(OPT_COMMENT, c));
}

/** Options, each padded, ended by opt_endofopt; nothing at all when there are none. */
function encodeOptions(options: readonly Option[]): Buffer {
  if (options.length === 0) return Buffer.alloc(0);
  let size = 4;
  for (const o of options) size += 4 + padded(o.value.length);
  const out = Buffer.alloc(size);
  let at = 0;
  for (const o of options) {
    out.writeUInt16LE(o.code, at);
    out.writeUInt16LE(o.value.length, at + 2);
    o.value.copy(out, at + 4);
    at += 4 + padded(o.value.length);
  }
  out.writeUInt16LE(OPT_ENDOFOPT, at);
  out.writeUInt16LE(0, at + 2);
  return out;
}

/** Type, total length, the body padded to 32 bits, total length again. */
function block(type: number, ...body: Buffer[]): Buffer {
  const bodyLength = body.reduce((n, b) => n + padded(b.length), 0);
  const total = BLOCK_OVERHEAD + bodyLength;
  const out = Buffer.alloc(total);
  out.writeUInt32LE(type, 0);
  out.writeUInt32LE(total, 4);
  let at = 8;
  for (const b of body) {
    b.copy(out, at);
    at += padded(b.length);
  }
  out.writeUInt32LE(total, total - 4);
  return out;
}

export interface SectionHeader {
  hardware?: string;
  os?: string;
  /** The application that wrote the section. */
  application?: string;
  comment?: string | readonly string[];
}

/** The Section Header Block that starts a pcapng file; the section length is left unknown. */
export function sectionHeaderBlock(section: SectionHeader = {}): Buffer {
  const fixed = Buffer.alloc(16);
  fixed.writeUInt32LE(BYTE_ORDER_MAGIC, 0);
  fixed.writeUInt16LE(1, 4);
  fixed.writeUInt16LE(0, 6);
  fixed.writeBigInt64LE(-1n, 8);
  const options = encodeOptions([
    ...commentOptions(section.comment),
    ...textOption(SHB_HARDWARE, section.hardware),
    ...textOption(SHB_OS, section.os),
    ...textOption(SHB_USERAPPL, section.application),
  ]);
  return block(BLOCK_SECTION_HEADER, fixed, options);
}

/** Timestamp units of an interface: pcap's microseconds or nanoseconds. */
export type TimestampResolution = 'micro' | 'nano';

export interface InterfaceDescription {
  linktype: number;
  /** 0: no limit. */
  snaplen: number;
  /** Units of this interface's packet timestamps (default micro, pcapng's own default). */
  resolution?: TimestampResolution;
  /** `if_name`: Wireshark's frame.interface_name. */
  name?: string;
  /** `if_description`: Wireshark's frame.interface_description. */
  description?: string;
  os?: string;
  hardware?: string;
  comment?: string | readonly string[];
}

export function interfaceDescriptionBlock(iface: InterfaceDescription): Buffer {
  const fixed = Buffer.alloc(8);
  fixed.writeUInt16LE(iface.linktype, 0);
  fixed.writeUInt32LE(iface.snaplen, 4);
  const tsresol: Option[] =
    iface.resolution === 'nano' ? [{ code: IF_TSRESOL, value: Buffer.from([9]) }] : [];
  const options = encodeOptions([
    ...commentOptions(iface.comment),
    ...textOption(IF_NAME, iface.name),
    ...textOption(IF_DESCRIPTION, iface.description),
    ...tsresol,
    ...textOption(IF_OS, iface.os),
    ...textOption(IF_HARDWARE, iface.hardware),
  ]);
  return block(BLOCK_INTERFACE_DESCRIPTION, fixed, options);
}

export interface EnhancedPacket {
  /** Index of the packet's Interface Description Block in the section, from 0. */
  interfaceId: number;
  /** In the units of that interface's resolution. */
  timestamp: bigint;
  /** The captured bytes. */
  data: Uint8Array;
  /** Length on the wire (default: the captured length). */
  originalLength?: number;
  comment?: string | readonly string[];
  /** `epb_flags`: direction in bits 0-1 (1 inbound, 2 outbound). */
  flags?: number;
}

export function enhancedPacketBlock(packet: EnhancedPacket): Buffer {
  const fixed = Buffer.alloc(20);
  fixed.writeUInt32LE(packet.interfaceId, 0);
  fixed.writeUInt32LE(Number(packet.timestamp >> 32n), 4);
  fixed.writeUInt32LE(Number(packet.timestamp & 0xffffffffn), 8);
  fixed.writeUInt32LE(packet.data.length, 12);
  fixed.writeUInt32LE(packet.originalLength ?? packet.data.length, 16);
  const flags: Option[] = [];
  if (packet.flags !== undefined) {
    const value = Buffer.alloc(4);
    value.writeUInt32LE(packet.flags, 0);
    flags.push({ code: EPB_FLAGS, value });
  }
  const options = encodeOptions([...commentOptions(packet.comment), ...flags]);
  return block(BLOCK_ENHANCED_PACKET, fixed, Buffer.from(packet.data), options);
}

export interface NameRecord {
  /** An IPv4 or IPv6 address in text form. */
  address: string;
  names: readonly string[];
}

function nameRecord(record: NameRecord): Buffer {
  let type: number;
  let address: Buffer;
  if (isIPv4(record.address)) {
    type = NRB_RECORD_IPV4;
    address = Buffer.from(record.address.split('.').map(Number));
  } else if (isIPv6(record.address) && !record.address.includes('%')) {
    type = NRB_RECORD_IPV6;
    address = ipv6Bytes(record.address);
  } else {
    throw new RangeError(`not an IP address for a name record: ${JSON.stringify(record.address)}`);
  }
  if (record.names.length === 0) throw new RangeError(`no name for ${record.address}`);
  const names = record.names.map((n) => {
    if (n.length === 0 || n.includes('\0')) throw new RangeError(`bad name ${JSON.stringify(n)}`);
    return Buffer.from(`${n}\0`, 'utf8');
  });
  const value = Buffer.concat([address, ...names]);
  if (value.length > MAX_OPTION_BYTES) {
    throw new RangeError(
      `the names of ${record.address} take ${value.length} bytes, over ${MAX_OPTION_BYTES}`,
    );
  }
  const out = Buffer.alloc(4 + padded(value.length));
  out.writeUInt16LE(type, 0);
  out.writeUInt16LE(value.length, 2);
  value.copy(out, 4);
  return out;
}

/** The 16 bytes of an IPv6 address in text form (`::` and a dotted IPv4 tail allowed). */
function ipv6Bytes(text: string): Buffer {
  let rest = text;
  const tail: number[] = [];
  if (rest.includes('.')) {
    const colon = rest.lastIndexOf(':');
    const [a = 0, b = 0, c = 0, d = 0] = rest
      .slice(colon + 1)
      .split('.')
      .map(Number);
    tail.push((a << 8) | b, (c << 8) | d);
    // Keep a `::` that ends right before the IPv4 part.
    rest = rest.slice(0, rest[colon - 1] === ':' ? colon + 1 : colon);
  }
  const hex = (group: string): number => Number.parseInt(group, 16);
  const [left, right] = rest.split('::');
  const head = left ? left.split(':').map(hex) : [];
  const after = right ? right.split(':').map(hex) : [];
  const zeros = right === undefined ? 0 : 8 - tail.length - head.length - after.length;
  const words = [...head, ...Array<number>(zeros).fill(0), ...after, ...tail];
  const out = Buffer.alloc(16);
  words.forEach((word, i) => {
    out.writeUInt16BE(word, i * 2);
  });
  return out;
}

/** A Name Resolution Block: each address with its names (Wireshark shows them with name resolution on). */
export function nameResolutionBlock(
  records: readonly NameRecord[],
  comment?: string | readonly string[],
): Buffer {
  const end = Buffer.alloc(4);
  end.writeUInt16LE(NRB_RECORD_END, 0);
  return block(
    BLOCK_NAME_RESOLUTION,
    ...records.map(nameRecord),
    end,
    encodeOptions(commentOptions(comment)),
  );
}

/** The Interface Description for a pcap stream: its link type, snaplen and timestamp units. */
export function interfaceFromPcap(
  header: GlobalHeader,
  names: Omit<InterfaceDescription, 'linktype' | 'snaplen' | 'resolution'> = {},
): InterfaceDescription {
  return {
    ...names,
    linktype: header.linktype,
    snaplen: header.snaplen,
    resolution: header.nanos ? 'nano' : 'micro',
  };
}

// The fixed part of an Enhanced Packet Block (type, length, interface,
// timestamp, lengths) and its end (padding, length again), for each amount of
// padding: filled per packet and copied by `put`, so no Buffer is made per
// packet.
const EPB_HEAD = Buffer.alloc(28);
const EPB_TAILS = [0, 1, 2, 3].map((pad) => Buffer.alloc(pad + 4));
const TWO_16 = 65536;
const TWO_32 = 4294967296;

/**
 * The Enhanced Packet Block of the whole pcap record at `at` in `bytes`,
 * handed to `put` in three pieces (fixed part, packet data, end) that last
 * only through the call; returns where the next record starts.
 */
export function putEnhancedPacket(
  bytes: Buffer,
  at: number,
  header: GlobalHeader,
  interfaceId: number,
  put: (piece: Buffer) => void,
): number {
  if (bytes.length - at < RECORD_HEADER_BYTES) throw new RangeError('torn pcap record header');
  const le = header.littleEndian;
  const read = (offset: number) =>
    le ? bytes.readUInt32LE(at + offset) : bytes.readUInt32BE(at + offset);
  const seconds = read(0);
  const fraction = read(4);
  const captured = read(8);
  const original = read(12);
  const dataStart = at + RECORD_HEADER_BYTES;
  if (dataStart + captured > bytes.length) throw new RangeError('torn pcap record');
  // seconds × units + fraction as 64 bits, in parts small enough to stay exact in a double.
  const units = header.nanos ? 1_000_000_000 : 1_000_000;
  const high = Math.floor(seconds / TWO_16) * units;
  const low = (high % TWO_16) * TWO_16 + (seconds % TWO_16) * units + fraction;
  const pad = padded(captured) - captured;
  const total = EPB_HEAD.length + captured + pad + 4;
  EPB_HEAD.writeUInt32LE(BLOCK_ENHANCED_PACKET, 0);
  EPB_HEAD.writeUInt32LE(total, 4);
  EPB_HEAD.writeUInt32LE(interfaceId, 8);
  EPB_HEAD.writeUInt32LE(Math.floor(high / TWO_16) + Math.floor(low / TWO_32), 12);
  EPB_HEAD.writeUInt32LE(low % TWO_32, 16);
  EPB_HEAD.writeUInt32LE(captured, 20);
  EPB_HEAD.writeUInt32LE(original, 24);
  const tail = EPB_TAILS[pad] as Buffer;
  tail.writeUInt32LE(total, pad);
  put(EPB_HEAD);
  put(bytes.subarray(dataStart, dataStart + captured));
  put(tail);
  return dataStart + captured;
}
