import * as net from 'node:net';
import * as tls from 'node:tls';

// An HTTP/1.1 upgrade on a connection of kubedump's own that reads into one
// static buffer (Node's `onread`). At capture rates a Buffer per socket read,
// promoted to the old generation and collected by full GCs, cost more CPU
// than the rest of the client. Bytes handed on are views of that buffer,
// valid only until the handler returns: keep a copy of what you keep.
// Used for direct connections; a proxy's agent keeps https.request.

const READ_BUFFER = 64 * 1024;
const MAX_HEAD = 64 * 1024;
const BODY_KEEP = 4096;

/** The server answered with something other than 101 Switching Protocols. */
export interface RefusedAnswer {
  status: number;
  /** The first 4 KiB of the body, de-chunked. */
  body: string;
}

export interface Upgraded {
  socket: net.Socket;
  /** Response header names in lower case; repeated ones joined with ", ". */
  headers: Map<string, string>;
  /**
   * Sets where the bytes after the response head go, from the first on. Until
   * it is called they are kept (copied), so none is lost before a reader is
   * ready.
   */
  onBytes(handler: (bytes: Buffer) => void): void;
}

export interface RawUpgradeOptions {
  /** The request method: GET for WebSocket, POST for SPDY. */
  method: string;
  /** TLS options for an https: or wss: URL: ca, cert, key, servername, ... */
  tls: tls.ConnectionOptions;
  /** Request headers (the Upgrade and Connection headers included). */
  headers: Record<string, string>;
  timeoutMs?: number | undefined;
  signal?: AbortSignal | undefined;
}

/** Writes the request line and headers; refuses a CR or LF inside any of them. */
export function requestHead(url: URL, headers: Record<string, string>, method = 'GET'): string {
  const lines = [`${method} ${url.pathname}${url.search} HTTP/1.1`, `Host: ${url.host}`];
  for (const [name, value] of Object.entries(headers)) {
    if (/[\r\n]/.test(name) || /[\r\n]/.test(value)) {
      throw new Error(`the request header ${JSON.stringify(name)} holds a line break`);
    }
    lines.push(`${name}: ${value}`);
  }
  return `${lines.join('\r\n')}\r\n\r\n`;
}

/** The status and headers of a response head (the text before the blank line). */
export function parseHead(text: string): { status: number; headers: Map<string, string> } {
  const [statusLine = '', ...lines] = text.split('\r\n');
  const match = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
  if (!match)
    throw new Error(
      `the server answered the upgrade with ${JSON.stringify(statusLine.slice(0, 80))}`,
    );
  const headers = new Map<string, string>();
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    const before = headers.get(name);
    headers.set(name, before === undefined ? value : `${before}, ${value}`);
  }
  return { status: Number(match[1]), headers };
}

/**
 * The body of a refused upgrade: `bytes` as they came, de-chunked when the
 * answer said so; undefined while more is due (Content-Length not reached,
 * the last chunk not seen).
 */
export function refusalBody(
  headers: Map<string, string>,
  bytes: Buffer,
  ended: boolean,
): string | undefined {
  const chunked = /chunked/i.test(headers.get('transfer-encoding') ?? '');
  if (chunked) {
    const parts: Buffer[] = [];
    let at = 0;
    for (;;) {
      const eol = bytes.indexOf('\r\n', at);
      if (eol < 0) break;
      const size = Number.parseInt(bytes.subarray(at, eol).toString('latin1'), 16);
      if (!Number.isFinite(size)) break;
      if (size === 0) return Buffer.concat(parts).toString('utf8').slice(0, BODY_KEEP);
      if (bytes.length < eol + 2 + size) break;
      parts.push(bytes.subarray(eol + 2, eol + 2 + size));
      at = eol + 2 + size + 2;
    }
    return ended ? Buffer.concat(parts).toString('utf8').slice(0, BODY_KEEP) : undefined;
  }
  const length = Number(headers.get('content-length') ?? Number.NaN);
  if (!ended && (!Number.isFinite(length) || bytes.length < length)) {
    return bytes.length >= BODY_KEEP ? bytes.toString('utf8').slice(0, BODY_KEEP) : undefined;
  }
  return bytes
    .subarray(0, Number.isFinite(length) ? length : bytes.length)
    .toString('utf8')
    .slice(0, BODY_KEEP);
}

/**
 * A socket to `url` (TLS for https: and wss:) that writes the request head
 * once connected, reads into one static buffer and hands each read, as a view
 * of it, to `reader.deliver`.
 */
function connectReading(
  url: URL,
  options: RawUpgradeOptions,
  reader: { deliver: (bytes: Buffer) => void },
): net.Socket {
  const head = requestHead(url, options.headers, options.method);
  const tlsOptions = options.tls;
  const secure = url.protocol === 'https:' || url.protocol === 'wss:';
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = Number(url.port) || (secure ? 443 : 80);
  const buffer = Buffer.allocUnsafe(READ_BUFFER);
  const onread = {
    buffer,
    callback: (n: number) => {
      reader.deliver(buffer.subarray(0, n));
      return true;
    },
  };
  const socket = secure
    ? tls.connect({
        ...tlsOptions,
        host,
        port,
        servername: tlsOptions.servername ?? (net.isIP(host) ? undefined : host),
        onread,
      } as tls.ConnectionOptions)
    : net.connect({ host, port, onread });
  socket.once(secure ? 'secureConnect' : 'connect', () => socket.write(head));
  return socket;
}

/**
 * Connects to `url` (http:, https:, ws:, wss:) and asks to upgrade. Resolves
 * once the server switched protocols; rejects with a RefusedAnswer-carrying
 * error through `refused` for any other answer, or with the connection's error.
 */
export function rawUpgrade(
  url: URL,
  options: RawUpgradeOptions,
  refused: (answer: RefusedAnswer) => Error,
): Promise<Upgraded> {
  const reader = { deliver: (_bytes: Buffer) => {} };
  const socket = connectReading(url, options, reader);
  return new Promise((resolve, reject) => {
    let settled = false;
    const settle = (error: Error | undefined, value?: Upgraded) => {
      if (settled) return;
      settled = true;
      options.signal?.removeEventListener('abort', onAbort);
      socket.setTimeout(0);
      if (error) {
        socket.destroy();
        reject(error);
      } else resolve(value as Upgraded);
    };
    const onAbort = () => settle(options.signal?.reason ?? new Error('aborted'));
    options.signal?.addEventListener('abort', onAbort, { once: true });
    if (options.timeoutMs) {
      socket.setTimeout(options.timeoutMs, () =>
        settle(new Error('the opening handshake timed out')),
      );
    }
    const onError = (error: Error) => settle(error);
    socket.on('error', onError);
    let got = Buffer.alloc(0);
    let answer: { status: number; headers: Map<string, string> } | undefined;
    let body = Buffer.alloc(0);
    const refuse = (ended: boolean) => {
      const text = answer && refusalBody(answer.headers, body, ended);
      if (answer && text !== undefined) settle(refused({ status: answer.status, body: text }));
    };
    // With `onread`, the end of the stream may show only as 'close'.
    const onEnd = () => {
      if (answer) refuse(true);
      else settle(new Error('the server closed the connection before answering the upgrade'));
    };
    socket.on('end', onEnd).on('close', onEnd);
    reader.deliver = (bytes) => {
      if (answer) {
        if (body.length < MAX_HEAD) body = Buffer.concat([body, bytes]);
        return refuse(false);
      }
      got = Buffer.concat([got, bytes]);
      const end = got.indexOf('\r\n\r\n');
      if (end < 0) {
        if (got.length > MAX_HEAD)
          settle(new Error('the answer to the upgrade has a head over 64 KiB'));
        return;
      }
      try {
        answer = parseHead(got.subarray(0, end).toString('latin1'));
      } catch (error) {
        return settle(error as Error);
      }
      const rest = Buffer.from(got.subarray(end + 4));
      if (answer.status !== 101) {
        body = rest;
        return refuse(false);
      }
      // Until a reader is set, later bytes are kept in order behind the rest.
      const kept: Buffer[] = rest.length > 0 ? [rest] : [];
      reader.deliver = (more) => kept.push(Buffer.from(more));
      socket.off('error', onError).off('end', onEnd).off('close', onEnd);
      settle(undefined, {
        socket,
        headers: answer.headers,
        onBytes: (handler) => {
          reader.deliver = handler;
          for (const bytes of kept.splice(0)) handler(bytes);
        },
      });
    };
  });
}
