import type { Duplex } from 'node:stream';
import {
  CLOSING,
  type ExecChannels,
  ExecConnection,
  OPEN,
  STATUS,
  STDERR,
  STDIN,
  STDOUT,
} from './exec-channels.ts';
import { openUpgrade, type UpgradeOptions } from './upgrade.ts';

// pods/exec over SPDY/3.1, the protocol kubectl speaks to API servers before
// 1.30: one stream per channel. The API server passes these bytes through to
// the kubelet, where a WebSocket exec is re-framed on the way (it cost the
// cluster a third more CPU per byte). Only what a client of exec needs: the
// server's implementation (moby/spdystream) keeps no flow-control windows, so
// neither side sends WINDOW_UPDATE; the client's header blocks go as stored
// (uncompressed) zlib blocks, valid for any inflater, and the server's
// header blocks are not read.

const VERSION = 3;
const SYN_STREAM = 1;
const RST_STREAM = 3;
const PING = 6;
const GOAWAY = 7;
const FLAG_FIN = 0x01;
const FRAME_HEADER = 8;
const MAX_DATA = 0xffffff;
// Control frames carry headers and ids: anything larger is not a server of exec.
const MAX_CONTROL = 1024 * 1024;
const EMPTY = Buffer.alloc(0);
const STREAM_PROTOCOL = 'v4.channel.k8s.io';

export interface SpdyHandlers {
  /** Payload bytes of a data frame on `stream`; `fin` ends the stream. */
  data(stream: number, bytes: Buffer, fin: boolean): void;
  control(type: number, payload: Buffer): void;
  error(error: Error): void;
}

/** Server frames in, stream data and control frames out, across any split of the bytes. */
export class SpdyFrameReader {
  readonly #on: SpdyHandlers;
  readonly #header = Buffer.alloc(FRAME_HEADER);
  #have = 0;
  /** Payload bytes of the current frame still to come; -1 between frames. */
  #need = -1;
  #control = false;
  #type = 0;
  #stream = 0;
  #fin = false;
  #parts: Buffer[] = [];
  #failed = false;

  constructor(handlers: SpdyHandlers) {
    this.#on = handlers;
  }

  push(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length && !this.#failed) {
      if (this.#need < 0) {
        const take = Math.min(FRAME_HEADER - this.#have, chunk.length - at);
        chunk.copy(this.#header, this.#have, at, at + take);
        this.#have += take;
        at += take;
        if (this.#have < FRAME_HEADER) return;
        this.#have = 0;
        this.#startFrame();
        if (this.#need === 0) this.#payload(EMPTY);
        continue;
      }
      const take = Math.min(this.#need, chunk.length - at);
      const bytes = chunk.subarray(at, at + take);
      at += take;
      this.#need -= take;
      this.#payload(bytes);
    }
  }

  #startFrame(): void {
    const h = this.#header;
    const length = h.readUIntBE(5, 3);
    this.#control = ((h[0] as number) & 0x80) !== 0;
    this.#fin = ((h[4] as number) & FLAG_FIN) !== 0;
    if (this.#control) {
      const version = h.readUInt16BE(0) & 0x7fff;
      if (version !== VERSION) {
        this.#fail(`a frame of SPDY version ${version}`);
        return;
      }
      if (length > MAX_CONTROL) {
        this.#fail(`a control frame of ${length} bytes`);
        return;
      }
      this.#type = h.readUInt16BE(2);
    } else {
      this.#stream = h.readUInt32BE(0) & 0x7fffffff;
    }
    this.#need = length;
  }

  #payload(bytes: Buffer): void {
    if (!this.#control) {
      const fin = this.#fin && this.#need === 0;
      if (bytes.length > 0 || fin) this.#on.data(this.#stream, bytes, fin);
    } else {
      this.#parts.push(Buffer.from(bytes));
      if (this.#need > 0) return;
      const payload = Buffer.concat(this.#parts);
      this.#parts = [];
      this.#on.control(this.#type, payload);
    }
    if (this.#need === 0) this.#need = -1;
  }

  #fail(what: string): void {
    this.#failed = true;
    this.#on.error(new Error(`the server sent ${what}`));
  }
}

/** A control frame of `type` with `payload`. */
function controlFrame(type: number, flags: number, payload: Buffer): Buffer {
  const frame = Buffer.alloc(FRAME_HEADER + payload.length);
  frame.writeUInt16BE(0x8000 | VERSION, 0);
  frame.writeUInt16BE(type, 2);
  frame.writeUInt32BE(payload.length, 4);
  frame[4] = flags;
  payload.copy(frame, FRAME_HEADER);
  return frame;
}

function dataHeader(stream: number, flags: number, length: number): Buffer {
  const header = Buffer.alloc(FRAME_HEADER);
  header.writeUInt32BE(stream, 0);
  header.writeUInt32BE(length, 4);
  header[4] = flags;
  return header;
}

const ZLIB_HEADER = Buffer.from([0x78, 0x01]);
const SYNC_FLUSH = Buffer.from([0x00, 0x00, 0x00, 0xff, 0xff]);

/**
 * A SPDY name/value header block as zlib bytes: one stored block, after the
 * zlib header when it is the connection's first. The server keeps one
 * inflater for all of a connection's blocks, as SPDY has it.
 */
export function headerBlock(headers: Record<string, string>, first: boolean): Buffer {
  const pairs = Object.entries(headers);
  const parts: Buffer[] = [u32(pairs.length)];
  for (const [name, value] of pairs) {
    parts.push(u32(Buffer.byteLength(name)), Buffer.from(name), u32(Buffer.byteLength(value)));
    parts.push(Buffer.from(value));
  }
  const raw = Buffer.concat(parts);
  const stored = Buffer.alloc(5);
  stored.writeUInt16LE(raw.length, 1);
  stored.writeUInt16LE(~raw.length & 0xffff, 3);
  // An empty stored block after it, as zlib's sync flush writes: some
  // inflaters (Go's) hand on a block's bytes only once the next one starts.
  return Buffer.concat([first ? ZLIB_HEADER : EMPTY, stored, raw, SYNC_FLUSH]);
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

const STREAM_TYPES: [channel: number, type: string][] = [
  [STATUS, 'error'],
  [STDIN, 'stdin'],
  [STDOUT, 'stdout'],
  [STDERR, 'stderr'],
];

/** An exec's channels over an upgraded SPDY/3.1 connection, one stream each. */
export class SpdyChannels extends ExecConnection implements ExecChannels {
  readonly transport = 'spdy' as const;
  readonly protocol: string;
  readonly canEndStdin = true;
  /** Stream id by channel, and channel by stream id. */
  readonly #streams = new Map<number, number>();
  readonly #channels = new Map<number, number>();
  #pingId = 1;

  constructor(
    socket: Duplex,
    protocol: string,
    source: (push: (bytes: Buffer) => void) => void,
    stdin: boolean,
  ) {
    super(socket, source);
    this.protocol = protocol;
    let id = 1;
    for (const [channel] of STREAM_TYPES) {
      if (channel === STDIN && !stdin) continue;
      this.#streams.set(channel, id);
      this.#channels.set(id, channel);
      id += 2;
    }
  }

  /** Opens the streams (all at once: none waits for the server's reply) and starts reading. */
  start(): void {
    let first = true;
    for (const [channel, type] of STREAM_TYPES) {
      const id = this.#streams.get(channel);
      if (id === undefined) continue;
      const block = headerBlock({ streamtype: type }, first);
      first = false;
      const head = Buffer.alloc(10);
      head.writeUInt32BE(id, 0);
      this.socket.write(controlFrame(SYN_STREAM, 0, Buffer.concat([head, block])));
    }
    const ended = new Set<number>();
    const reader = new SpdyFrameReader({
      data: (stream, bytes, fin) => {
        const channel = this.#channels.get(stream);
        if (channel === undefined || ended.has(stream)) return;
        if (fin) ended.add(stream);
        this.emit('data', channel, bytes, fin);
      },
      control: (type, payload) => {
        if (type === RST_STREAM && payload.length >= 4) {
          // A reset stream ends as a finished one does; the connection's end
          // (or the status) says how the command went.
          const stream = payload.readUInt32BE(0) & 0x7fffffff;
          const channel = this.#channels.get(stream);
          if (channel !== undefined && !ended.has(stream)) {
            ended.add(stream);
            this.emit('data', channel, EMPTY, true);
          }
        } else if (type === PING && payload.length === 4) {
          // Ours are odd: an answer. The server's are even: answer them.
          if (payload.readUInt32BE(0) % 2 === 1) this.emit('pong');
          else this.#write(controlFrame(PING, 0, payload));
        }
        // SYN_REPLY, SETTINGS, WINDOW_UPDATE, GOAWAY (the close follows): nothing to do.
      },
      error: (error) => this.fail(error),
    });
    this.read((chunk) => reader.push(chunk));
  }

  send(channel: number, data: Uint8Array, callback: (error?: Error | null) => void): void {
    const stream = this.#streams.get(channel);
    if (this.readyState !== OPEN || stream === undefined) {
      callback(new Error(`the exec's channel ${channel} is not open`));
      return;
    }
    const socket = this.socket;
    socket.cork();
    for (let at = 0; at < data.length; at += MAX_DATA) {
      const part = data.subarray(at, at + MAX_DATA);
      socket.write(dataHeader(stream, 0, part.length));
      socket.write(part, at + MAX_DATA >= data.length ? callback : undefined);
    }
    if (data.length === 0) callback();
    socket.uncork();
  }

  endStdin(callback: (error?: Error | null) => void): void {
    const stream = this.#streams.get(STDIN);
    if (this.readyState !== OPEN || stream === undefined) {
      callback(new Error('the exec has no open stdin'));
      return;
    }
    this.socket.write(dataHeader(stream, FLAG_FIN, 0), callback);
  }

  ping(): void {
    this.#write(controlFrame(PING, 0, u32(this.#pingId)));
    this.#pingId = (this.#pingId + 2) % 0x7fffffff;
  }

  /** Says goodbye and ends the connection. */
  close(): void {
    if (this.readyState !== OPEN) return;
    this.#write(controlFrame(GOAWAY, 0, Buffer.alloc(8)));
    this.readyState = CLOSING;
    this.socket.end();
  }

  #write(frame: Buffer): void {
    if (this.writable) this.socket.write(frame);
  }
}

/**
 * Upgrades `url` (an exec URL) to SPDY/3.1 with the v4 channel protocol.
 * Rejects with UpgradeRefused (an HTTP answer), or the connection's error.
 */
export async function connectSpdy(
  url: string,
  stdin: boolean,
  options: UpgradeOptions,
): Promise<SpdyChannels> {
  const upgraded = await openUpgrade(
    url,
    'POST',
    {
      Connection: 'Upgrade',
      Upgrade: 'SPDY/3.1',
      'X-Stream-Protocol-Version': STREAM_PROTOCOL,
      'Content-Length': '0',
    },
    options,
  );
  const protocol = upgraded.header('x-stream-protocol-version');
  const problem =
    upgraded.header('upgrade').toLowerCase() !== 'spdy/3.1'
      ? 'no "Upgrade: SPDY/3.1" header'
      : protocol !== STREAM_PROTOCOL
        ? `a stream protocol not offered (${protocol || 'none'})`
        : undefined;
  if (problem) {
    upgraded.socket.destroy();
    throw new Error(`the server switched protocols with ${problem}`);
  }
  (upgraded.socket as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
  return new SpdyChannels(upgraded.socket, protocol, upgraded.source, stdin);
}
