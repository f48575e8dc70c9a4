// Classic pcap framing (https://www.tcpdump.org/manpages/pcap-savefile.5.html).

export const GLOBAL_HEADER_BYTES = 24;
export const RECORD_HEADER_BYTES = 16;

export const LINKTYPE_ETHERNET = 1;
export const LINKTYPE_LINUX_SLL = 113;
export const LINKTYPE_LINUX_SLL2 = 276;

const MAGIC_MICROS = 0xa1b2c3d4;
const MAGIC_NANOS = 0xa1b23c4d;

export interface GlobalHeader {
  littleEndian: boolean;
  nanos: boolean;
  snaplen: number;
  linktype: number;
}

/** Parses the 24-byte global header, or returns undefined if it is not pcap. */
export function parseGlobalHeader(bytes: Uint8Array): GlobalHeader | undefined {
  if (bytes.length < GLOBAL_HEADER_BYTES) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, GLOBAL_HEADER_BYTES);
  for (const littleEndian of [true, false]) {
    const magic = view.getUint32(0, littleEndian);
    if (magic === MAGIC_MICROS || magic === MAGIC_NANOS) {
      return {
        littleEndian,
        nanos: magic === MAGIC_NANOS,
        snaplen: view.getUint32(16, littleEndian),
        linktype: view.getUint32(20, littleEndian),
      };
    }
  }
  return undefined;
}

/** A host-order pcap global header, written when the source never sent one. */
export function buildGlobalHeader(linktype: number, snaplen = 262144): Buffer {
  const header = Buffer.alloc(GLOBAL_HEADER_BYTES);
  header.writeUInt32LE(MAGIC_MICROS, 0);
  header.writeUInt16LE(2, 4);
  header.writeUInt16LE(4, 6);
  header.writeUInt32LE(snaplen, 16);
  header.writeUInt32LE(linktype, 20);
  return header;
}

/** Captured length of the record whose 16-byte header starts at `offset`. */
export function recordCaptureLength(
  bytes: Uint8Array,
  offset: number,
  header: GlobalHeader,
): number {
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, RECORD_HEADER_BYTES);
  return view.getUint32(8, header.littleEndian);
}
