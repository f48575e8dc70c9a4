// Gives a thin 64-bit Mach-O executable an ad-hoc code signature, as
// `codesign --sign - --force` would: macOS on Apple silicon kills unsigned
// executables at start, and injecting the SEA blob invalidates Node's own
// signature. There is no codesign on Linux, so this writes the signature
// itself: a SuperBlob holding a SHA-256 CodeDirectory over every 4 KiB page
// before the signature, and an empty requirements set.
//
// Usage: node scripts/sea/macho-sign.mjs FILE IDENTIFIER
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';

const MH_MAGIC_64 = 0xfeedfacf;
const LC_SEGMENT_64 = 0x19;
const LC_CODE_SIGNATURE = 0x1d;
const CSMAGIC_EMBEDDED_SIGNATURE = 0xfade0cc0;
const CSMAGIC_CODEDIRECTORY = 0xfade0c02;
const CSMAGIC_REQUIREMENTS = 0xfade0c01;
const CS_ADHOC = 0x2;
const CS_EXECSEG_MAIN_BINARY = 0x1;
const CS_HASHTYPE_SHA256 = 2;
const CD_VERSION = 0x20400; // with exec segment fields
const CD_HEADER_SIZE = 88;
const PAGE_SHIFT = 12;
const PAGE = 1 << PAGE_SHIFT;
const HASH_SIZE = 32;
const SPECIAL_SLOTS = 2; // -1 Info.plist (none), -2 requirements

/** Load commands of a thin 64-bit little-endian Mach-O. */
export function loadCommands(buf) {
  if (buf.readUInt32LE(0) !== MH_MAGIC_64) throw new Error('not a thin 64-bit Mach-O');
  const ncmds = buf.readUInt32LE(16);
  const commands = [];
  let offset = 32;
  for (let i = 0; i < ncmds; i++) {
    const cmd = buf.readUInt32LE(offset);
    const size = buf.readUInt32LE(offset + 4);
    commands.push({ cmd, offset, size });
    offset += size;
  }
  return commands;
}

function segment(buf, command) {
  const o = command.offset;
  return {
    name: buf.toString('latin1', o + 8, o + 24).replace(/\0+$/, ''),
    vmsize: buf.readBigUInt64LE(o + 32),
    fileoff: buf.readBigUInt64LE(o + 40),
    filesize: buf.readBigUInt64LE(o + 48),
  };
}

function sha256(data) {
  return createHash('sha256').update(data).digest();
}

/** A copy of `input` with room for a code signature: LC_CODE_SIGNATURE and its place at the end. */
function withSignatureCommand(input) {
  const commands = loadCommands(input);
  const existing = commands.find((c) => c.cmd === LC_CODE_SIGNATURE);
  if (existing) return { buf: input, command: existing };
  // postject (LIEF) drops the signature command when it rebuilds the file:
  // add it back in the header padding before the first section.
  const linkedit = commands.map((c) => c.cmd === LC_SEGMENT_64 && segment(input, c)).find((s) => s && s.name === '__LINKEDIT');
  if (!linkedit || linkedit.fileoff + linkedit.filesize !== BigInt(input.length)) {
    throw new Error('__LINKEDIT does not end the file');
  }
  const sizeofcmds = input.readUInt32LE(20);
  const at = 32 + sizeofcmds;
  if (!input.subarray(at, at + 16).every((b) => b === 0)) throw new Error('no header padding for LC_CODE_SIGNATURE');
  const dataoff = Math.ceil(input.length / 16) * 16;
  const buf = Buffer.alloc(dataoff);
  input.copy(buf);
  buf.writeUInt32LE(LC_CODE_SIGNATURE, at);
  buf.writeUInt32LE(16, at + 4);
  buf.writeUInt32LE(dataoff, at + 8);
  buf.writeUInt32LE(0, at + 12);
  buf.writeUInt32LE(input.readUInt32LE(16) + 1, 16);
  buf.writeUInt32LE(sizeofcmds + 16, 20);
  return { buf, command: { cmd: LC_CODE_SIGNATURE, offset: at, size: 16 } };
}

export function signAdhoc(original, identifier) {
  const { buf: input, command: signatureCommand } = withSignatureCommand(original);
  const commands = loadCommands(input);
  const linkeditCommand = commands.find(
    (c) => c.cmd === LC_SEGMENT_64 && segment(input, c).name === '__LINKEDIT',
  );
  const textCommand = commands.find(
    (c) => c.cmd === LC_SEGMENT_64 && segment(input, c).name === '__TEXT',
  );
  if (!linkeditCommand || !textCommand) throw new Error('no __LINKEDIT or __TEXT segment');
  const linkedit = segment(input, linkeditCommand);
  const text = segment(input, textCommand);
  const dataoff = input.readUInt32LE(signatureCommand.offset + 8);
  if (BigInt(dataoff) < linkedit.fileoff) throw new Error('signature lies before __LINKEDIT');
  if (dataoff % 16 !== 0) throw new Error('signature offset is not 16-byte aligned');

  const id = Buffer.from(`${identifier}\0`, 'latin1');
  const codeSlots = Math.ceil(dataoff / PAGE);
  const hashOffset = CD_HEADER_SIZE + id.length + SPECIAL_SLOTS * HASH_SIZE;
  const cdLength = hashOffset + codeSlots * HASH_SIZE;
  const requirements = Buffer.alloc(12);
  requirements.writeUInt32BE(CSMAGIC_REQUIREMENTS, 0);
  requirements.writeUInt32BE(12, 4);
  requirements.writeUInt32BE(0, 8);
  const superHeader = 12 + 2 * 8;
  const signatureLength = superHeader + cdLength + requirements.length;
  const allocated = Math.ceil(signatureLength / 16) * 16;

  // Header fields first: the pages hashed below include them.
  const out = Buffer.alloc(dataoff + allocated);
  input.copy(out, 0, 0, dataoff);
  out.writeUInt32LE(allocated, signatureCommand.offset + 12);
  const fileEnd = BigInt(dataoff + allocated);
  const linkeditFilesize = fileEnd - linkedit.fileoff;
  const segmentAlign = 0x4000n;
  const linkeditVmsize = ((linkeditFilesize + segmentAlign - 1n) / segmentAlign) * segmentAlign;
  out.writeBigUInt64LE(linkeditVmsize, linkeditCommand.offset + 32);
  out.writeBigUInt64LE(linkeditFilesize, linkeditCommand.offset + 48);

  const cd = Buffer.alloc(cdLength);
  cd.writeUInt32BE(CSMAGIC_CODEDIRECTORY, 0);
  cd.writeUInt32BE(cdLength, 4);
  cd.writeUInt32BE(CD_VERSION, 8);
  cd.writeUInt32BE(CS_ADHOC, 12);
  cd.writeUInt32BE(hashOffset, 16);
  cd.writeUInt32BE(CD_HEADER_SIZE, 20); // identOffset
  cd.writeUInt32BE(SPECIAL_SLOTS, 24);
  cd.writeUInt32BE(codeSlots, 28);
  cd.writeUInt32BE(dataoff, 32); // codeLimit
  cd.writeUInt8(HASH_SIZE, 36);
  cd.writeUInt8(CS_HASHTYPE_SHA256, 37);
  cd.writeUInt8(0, 38); // platform
  cd.writeUInt8(PAGE_SHIFT, 39);
  // 40 spare2, 44 scatterOffset, 48 teamOffset, 52 spare3, 56 codeLimit64: all zero
  cd.writeBigUInt64BE(text.fileoff, 64); // execSegBase
  cd.writeBigUInt64BE(text.filesize, 72); // execSegLimit
  cd.writeBigUInt64BE(BigInt(CS_EXECSEG_MAIN_BINARY), 80);
  id.copy(cd, CD_HEADER_SIZE);
  // Special slots are stored in reverse before hashOffset: slot -2 first.
  sha256(requirements).copy(cd, hashOffset - 2 * HASH_SIZE);
  for (let i = 0; i < codeSlots; i++) {
    const page = out.subarray(i * PAGE, Math.min((i + 1) * PAGE, dataoff));
    sha256(page).copy(cd, hashOffset + i * HASH_SIZE);
  }

  const blob = out.subarray(dataoff);
  blob.writeUInt32BE(CSMAGIC_EMBEDDED_SIGNATURE, 0);
  blob.writeUInt32BE(signatureLength, 4);
  blob.writeUInt32BE(2, 8);
  blob.writeUInt32BE(0, 12); // CSSLOT_CODEDIRECTORY
  blob.writeUInt32BE(superHeader, 16);
  blob.writeUInt32BE(2, 20); // CSSLOT_REQUIREMENTS
  blob.writeUInt32BE(superHeader + cdLength, 24);
  cd.copy(blob, superHeader);
  requirements.copy(blob, superHeader + cdLength);
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [file, identifier] = process.argv.slice(2);
  if (!file || !identifier) {
    console.error('usage: macho-sign.mjs FILE IDENTIFIER');
    process.exit(2);
  }
  writeFileSync(file, signAdhoc(readFileSync(file), identifier));
}
