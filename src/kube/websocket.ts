import { createHash, randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { CLOSING, type ExecChannels, ExecConnection, OPEN, STDIN } from './exec-channels.ts';
import { openUpgrade, type UpgradeOptions } from './upgrade.ts';

// A WebSocket client for the Kubernetes channel protocols (v4/v5.channel.k8s.io),
// RFC 6455 without extensions. It reads frames straight off the socket: a
// message's payload reaches its reader as views of the bytes the socket read,
// never copied or gathered into one buffer per message, because at capture
// rates one allocation per frame was most of the client's CPU.

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const OP_CONTINUATION = 0x0;
const OP_BINARY = 0x2;
const OP_CLOSE = 0x8;
const OP_PING = 0x9;
const OP_PONG = 0xa;
const MAX_HEADER = 14;
const EMPTY = Buffer.alloc(0);

const CHANNEL_CLOSE = 255;
const V5 = 'v5.channel.k8s.io';

export interface FrameHandlers {
  /** Payload bytes of a data message on `channel` (its first byte); `last` ends the message. */
  data(channel: number, bytes: Buffer, last: boolean): void;
  ping(payload: Buffer): void;
  pong(): void;
  close(code: number): void;
  error(error: Error): void;
}

interface Header {
  fin: boolean;
  opcode: number;
  length: number;
  size: number;
}

/** The header at `at`, or undefined when `buf` ends inside it. */
function parseHeader(buf: Buffer, at: number): Header | Error | undefined {
  if (buf.length - at < 2) return undefined;
  const b0 = buf[at] as number;
  const b1 = buf[at + 1] as number;
  if (b1 & 0x80) return new Error('the server sent a masked frame');
  if (b0 & 0x70) return new Error('the server sent a frame with reserved bits (an extension)');
  let length = b1 & 0x7f;
  let size = 2;
  if (length === 126) {
    if (buf.length - at < 4) return undefined;
    length = buf.readUInt16BE(at + 2);
    size = 4;
  } else if (length === 127) {
    if (buf.length - at < 10) return undefined;
    length = Number(buf.readBigUInt64BE(at + 2));
    if (!Number.isSafeInteger(length)) return new Error('the server sent a frame too large');
    size = 10;
  }
  return { fin: (b0 & 0x80) !== 0, opcode: b0 & 0x0f, length, size };
}

/** Server frames in, channel data and control events out, across any split of the bytes. */
export class FrameReader {
  readonly #on: FrameHandlers;
  /** Header bytes carried over from the end of the previous chunk. */
  #partial: Buffer | undefined;
  #opcode = 0;
  #fin = false;
  /** Payload bytes of the current frame still to come; -1 between frames. */
  #need = -1;
  /** The current data message's channel; -1 before its first payload byte. */
  #channel = -1;
  #control: Buffer[] = [];
  #failed = false;

  constructor(handlers: FrameHandlers) {
    this.#on = handlers;
  }

  push(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length && !this.#failed) {
      if (this.#need < 0) {
        const step = this.#startFrame(chunk, at);
        if (step === undefined) return;
        at = step;
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

  /** Reads a header at `at`; returns where its payload starts, or undefined to wait for more. */
  #startFrame(chunk: Buffer, at: number): number | undefined {
    let buf = chunk;
    let from = at;
    const carried = this.#partial?.length ?? 0;
    if (this.#partial) {
      buf = Buffer.concat([this.#partial, chunk.subarray(at, at + MAX_HEADER)]);
      from = 0;
    }
    const header = parseHeader(buf, from);
    if (header === undefined) {
      this.#partial = Buffer.from(buf.subarray(from));
      return undefined;
    }
    this.#partial = undefined;
    if (header instanceof Error) return this.#fail(header);
    const control = header.opcode >= 0x8;
    if (control && (header.length > 125 || !header.fin)) {
      return this.#fail(new Error('the server sent a malformed control frame'));
    }
    if (!control && header.opcode !== OP_CONTINUATION && this.#channel >= 0) {
      return this.#fail(new Error('the server started a message inside another'));
    }
    this.#opcode = header.opcode;
    if (!control) this.#fin = header.fin;
    this.#need = header.length;
    return at + header.size - carried;
  }

  /** Bytes of the current frame's payload; the frame ends when none are still to come. */
  #payload(bytes: Buffer): void {
    if (this.#opcode >= 0x8) {
      this.#control.push(Buffer.from(bytes));
      if (this.#need > 0) return;
      this.#need = -1;
      const payload = Buffer.concat(this.#control);
      this.#control = [];
      this.#controlFrame(payload);
      return;
    }
    let data = bytes;
    if (this.#channel < 0 && data.length > 0) {
      this.#channel = data[0] as number;
      data = data.subarray(1);
    }
    const last = this.#need === 0 && this.#fin;
    if (this.#channel >= 0 && (data.length > 0 || last)) this.#on.data(this.#channel, data, last);
    if (this.#need > 0) return;
    this.#need = -1;
    if (this.#fin) this.#channel = -1;
  }

  #controlFrame(payload: Buffer): void {
    if (this.#opcode === OP_PING) this.#on.ping(payload);
    else if (this.#opcode === OP_PONG) this.#on.pong();
    else if (this.#opcode === OP_CLOSE) {
      this.#on.close(payload.length >= 2 ? payload.readUInt16BE(0) : 1005);
    }
  }

  #fail(error: Error): undefined {
    this.#failed = true;
    this.#on.error(error);
    return undefined;
  }
}

/**
 * One client frame, masked as RFC 6455 requires of clients; with `channel`,
 * the payload is that channel's byte and then `payload`.
 */
export function clientFrame(opcode: number, payload: Uint8Array, channel?: number): Buffer {
  const prefix = channel === undefined ? 0 : 1;
  const length = prefix + payload.length;
  const extra = length < 126 ? 0 : length < 65536 ? 2 : 8;
  const head = 2 + extra + 4;
  // The payload starts on a 4-byte boundary, so it is masked a word at a time.
  const pad = (4 - (head % 4)) % 4;
  const frame = Buffer.from(new ArrayBuffer(pad + head + length), pad, head + length);
  frame[0] = 0x80 | opcode;
  if (extra === 0) frame[1] = 0x80 | length;
  else if (extra === 2) {
    frame[1] = 0x80 | 126;
    frame.writeUInt16BE(length, 2);
  } else {
    frame[1] = 0x80 | 127;
    frame.writeBigUInt64BE(BigInt(length), 2);
  }
  const mask = randomBytes(4);
  mask.copy(frame, head - 4);
  if (channel !== undefined) frame[head] = channel;
  frame.set(payload, head + prefix);
  const words = new Uint32Array(frame.buffer, pad + head, length >>> 2);
  const word = new Uint32Array(new Uint8Array(mask).buffer)[0] as number;
  for (let i = 0; i < words.length; i++) words[i] = (words[i] as number) ^ word;
  for (let i = words.length * 4; i < length; i++) {
    frame[head + i] = (frame[head + i] as number) ^ (mask[i & 3] as number);
  }
  return frame;
}

/** An exec's channels over an open WebSocket. */
export class ChannelSocket extends ExecConnection implements ExecChannels {
  readonly transport = 'websocket' as const;
  readonly protocol: string;

  constructor(socket: Duplex, protocol: string, source: (push: (bytes: Buffer) => void) => void) {
    super(socket, source);
    this.protocol = protocol;
  }

  /** Starts reading; call once the listeners are on, so that no frame is missed. */
  start(): void {
    const reader = new FrameReader({
      data: (channel, bytes, last) => this.emit('data', channel, bytes, last),
      ping: (payload) => this.#write(OP_PONG, payload),
      pong: () => this.emit('pong'),
      close: (code) => {
        // Answer the server's close, then the server ends the connection.
        this.#write(OP_CLOSE, closePayload(code === 1005 ? 1000 : code));
        this.readyState = CLOSING;
        this.socket.end();
      },
      error: (error) => this.fail(error),
    });
    this.read((chunk) => reader.push(chunk));
  }

  /** Sends `data` on `channel` as one message; the callback runs once the socket took it. */
  send(channel: number, data: Uint8Array, callback: (error?: Error | null) => void): void {
    if (this.readyState === OPEN) {
      this.socket.write(clientFrame(OP_BINARY, data, channel), callback);
    } else callback(new Error('the WebSocket is not open'));
  }

  get canEndStdin(): boolean {
    return this.protocol === V5;
  }

  /** Ends the remote stdin: v5's close message; v4 has no way short of closing the socket. */
  endStdin(callback: (error?: Error | null) => void): void {
    if (!this.canEndStdin) callback(new Error(`cannot end stdin over ${this.protocol}`));
    else this.send(CHANNEL_CLOSE, Buffer.from([STDIN]), callback);
  }

  ping(): void {
    this.#write(OP_PING, EMPTY);
  }

  /** Starts the closing handshake; the server then ends the connection. */
  close(code = 1000): void {
    this.#write(OP_CLOSE, closePayload(code));
    if (this.readyState === OPEN) this.readyState = CLOSING;
  }

  #write(opcode: number, payload: Buffer): void {
    if (this.writable) this.socket.write(clientFrame(opcode, payload));
  }
}

function closePayload(code: number): Buffer {
  const payload = Buffer.alloc(2);
  payload.writeUInt16BE(code);
  return payload;
}

/** What is wrong with a 101 answer, or undefined when it is what was asked for. */
function switchProblem(
  headers: (name: string) => string,
  key: string,
  protocols: readonly string[],
): string | undefined {
  const accept = createHash('sha1')
    .update(key + GUID)
    .digest('base64');
  const protocol = headers('sec-websocket-protocol');
  return headers('upgrade').toLowerCase() !== 'websocket'
    ? 'no "Upgrade: websocket" header'
    : headers('sec-websocket-accept') !== accept
      ? 'a wrong Sec-WebSocket-Accept'
      : !protocols.includes(protocol)
        ? `a subprotocol not offered (${protocol || 'none'})`
        : undefined;
}

/**
 * Opens a WebSocket to `url` (ws: or wss:) offering `protocols`. `options`
 * are the TLS, header and agent options client-node fills in for the cluster,
 * so a proxy-url reaches the upgrade as it reaches REST calls. Rejects with
 * UpgradeRefused (an HTTP answer), or the connection's error.
 */
export async function connectChannelSocket(
  url: string,
  protocols: readonly string[],
  options: UpgradeOptions,
): Promise<ChannelSocket> {
  const key = randomBytes(16).toString('base64');
  const upgraded = await openUpgrade(
    url,
    'GET',
    {
      Connection: 'Upgrade',
      Upgrade: 'websocket',
      'Sec-WebSocket-Version': '13',
      'Sec-WebSocket-Key': key,
      'Sec-WebSocket-Protocol': protocols.join(', '),
    },
    options,
  );
  const problem = switchProblem(upgraded.header, key, protocols);
  if (problem) {
    upgraded.socket.destroy();
    throw new Error(`the server switched protocols with ${problem}`);
  }
  (upgraded.socket as { setNoDelay?: (on: boolean) => void }).setNoDelay?.(true);
  return new ChannelSocket(
    upgraded.socket,
    upgraded.header('sec-websocket-protocol'),
    upgraded.source,
  );
}
