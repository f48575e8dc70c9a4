import type { EventEmitter } from 'node:events';

// The channels of pods/exec (stdin, stdout, stderr and the status) over one
// connection, whichever protocol carries them: WebSocket (websocket.ts) or
// SPDY/3.1 (spdy.ts).

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
