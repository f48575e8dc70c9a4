import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';

// The channels of pods/exec (stdin, stdout, stderr and the status) over one
// connection, whichever protocol carries them: WebSocket (websocket.ts) or
// SPDY/3.1 (spdy.ts), and the socket handling the two share.

export const STDIN = 0;
export const STDOUT = 1;
export const STDERR = 2;
export const STATUS = 3;

export const OPEN = 1;
export const CLOSING = 2;
export const CLOSED = 3;

/**
 * Events: 'data' (channel, bytes, last), 'pong', 'error' and 'close'. The
 * bytes of a 'data' event are valid only until its listener returns: copy
 * what you keep.
 */
export interface ExecChannels extends EventEmitter {
  readonly transport: 'spdy' | 'websocket';
  /** The channel protocol the server chose (v4.channel.k8s.io, ...). */
  readonly protocol: string;
  readonly readyState: number;
  readonly isPaused: boolean;
  /** Whether stdin can be ended while the connection stays open (v4 WebSocket cannot). */
  readonly canEndStdin: boolean;
  /** Starts reading; call once the listeners are on, so that no message is missed. */
  start(): void;
  pause(): void;
  resume(): void;
  /** Sends `data` on `channel`; the callback runs once the socket took it. */
  send(channel: number, data: Uint8Array, callback: (error?: Error | null) => void): void;
  endStdin(callback: (error?: Error | null) => void): void;
  ping(): void;
  /** Closes the connection in order; the remote process keeps running. */
  close(): void;
  terminate(): void;
}

type Source = (push: (bytes: Buffer) => void) => void;

/**
 * What both transports do with the upgraded socket: hand its bytes to a
 * frame reader, pause it for backpressure, and end with it.
 */
export abstract class ExecConnection extends EventEmitter {
  readyState = OPEN;
  protected readonly socket: Duplex;
  readonly #source: Source;
  #paused = false;

  /** `source` hands on the socket's bytes after the upgrade's answer (upgrade.ts). */
  constructor(socket: Duplex, source: Source) {
    super();
    this.socket = socket;
    this.#source = source;
  }

  /** Follows the socket to its end, then hands its bytes to `push`. */
  protected read(push: (bytes: Buffer) => void): void {
    const socket = this.socket;
    socket.on('error', (error) => this.fail(error));
    socket.on('end', () => socket.end());
    socket.on('close', () => {
      this.readyState = CLOSED;
      this.emit('close');
    });
    this.#source(push);
  }

  /** Reports `error` and drops the connection. */
  protected fail(error: Error): void {
    this.emit('error', error);
    this.terminate();
  }

  /** Whether a frame can still be written. */
  protected get writable(): boolean {
    return this.readyState === OPEN && !this.socket.destroyed && this.socket.writable;
  }

  get isPaused(): boolean {
    return this.#paused;
  }

  pause(): void {
    this.#paused = true;
    this.socket.pause();
  }

  resume(): void {
    this.#paused = false;
    this.socket.resume();
  }

  terminate(): void {
    this.readyState = CLOSING;
    this.socket.destroy();
  }
}
