import * as http from 'node:http';
import * as https from 'node:https';
import type { Duplex } from 'node:stream';
import type * as tls from 'node:tls';
import { rawUpgrade } from './raw-upgrade.ts';

// An HTTP/1.1 upgrade to the protocol an exec streams over (WebSocket or
// SPDY/3.1), with the TLS, header and proxy options client-node fills in for
// the cluster. Without a proxy it uses a connection of its own that reads into
// one static buffer (raw-upgrade.ts); a proxy's agent keeps https.request.

/** The server answered the upgrade with an HTTP response instead of switching protocols. */
export class UpgradeRefused extends Error {
  readonly statusCode: number;
  readonly body: string;
  constructor(statusCode: number, body: string, protocol: string) {
    super(`the server refused the upgrade to ${protocol} (HTTP ${statusCode})`);
    this.statusCode = statusCode;
    this.body = body;
  }
}

export interface UpgradeOptions extends https.RequestOptions {
  handshakeTimeout?: number;
  signal?: AbortSignal | undefined;
  /** No proxy is in the way: connect on a socket of our own (raw-upgrade.ts). */
  direct?: boolean;
}

export interface Upgraded {
  socket: Duplex;
  /** A response header, '' when absent. */
  header(name: string): string;
  /**
   * Hands the connection's bytes to `push` from the first after the response
   * head on; each is valid only until `push` returns.
   */
  source(push: (bytes: Buffer) => void): void;
}

/** The TLS options of a request that apply to a connection of our own. */
function tlsOptions(options: https.RequestOptions): tls.ConnectionOptions {
  const { ca, cert, key, pfx, passphrase, rejectUnauthorized, servername, ciphers, crl } = options;
  const picked = { ca, cert, key, pfx, passphrase, rejectUnauthorized, servername, ciphers, crl };
  return Object.fromEntries(
    Object.entries(picked).filter(([, value]) => value !== undefined),
  ) as tls.ConnectionOptions;
}

async function readBody(res: http.IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res) {
    if (size < 4096) chunks.push(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return Buffer.concat(chunks).toString('utf8').slice(0, 4096);
}

async function upgradeDirect(
  target: URL,
  method: string,
  upgrade: Record<string, string>,
  options: UpgradeOptions,
): Promise<Upgraded> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(options.headers ?? {})) {
    if (value !== undefined) headers[name] = String(value);
  }
  // As Node's http does: a username and password only when no Authorization
  // header (a bearer token) is given.
  const authorized = Object.keys(headers).some((name) => name.toLowerCase() === 'authorization');
  if (options.auth && !authorized) {
    headers.Authorization = `Basic ${Buffer.from(options.auth).toString('base64')}`;
  }
  Object.assign(headers, upgrade);
  const upgraded = await rawUpgrade(
    target,
    {
      method,
      tls: tlsOptions(options),
      headers,
      timeoutMs: options.handshakeTimeout,
      signal: options.signal,
    },
    (answer) => new UpgradeRefused(answer.status, answer.body, upgrade.Upgrade ?? ''),
  );
  return {
    socket: upgraded.socket,
    header: (name) => upgraded.headers.get(name) ?? '',
    source: (push) => upgraded.onBytes(push),
  };
}

function upgradeByRequest(
  target: URL,
  method: string,
  upgrade: Record<string, string>,
  options: UpgradeOptions,
): Promise<Upgraded> {
  const { handshakeTimeout, signal, headers, direct: _, ...rest } = options;
  const secure = target.protocol === 'https:';
  const request = (secure ? https : http).request(target, {
    ...rest,
    // A connection of its own, unless a proxy's agent is given: a pooled
    // keep-alive socket may be one the server has already closed.
    agent: rest.agent ?? false,
    method,
    headers: { ...(headers as http.OutgoingHttpHeaders | undefined), ...upgrade },
  });
  return new Promise((resolve, reject) => {
    const fail = (error: Error) => {
      request.destroy();
      reject(error);
    };
    const onAbort = () => fail(signal?.reason ?? new Error('aborted'));
    signal?.addEventListener('abort', onAbort, { once: true });
    const settle = () => signal?.removeEventListener('abort', onAbort);
    if (handshakeTimeout) {
      request.setTimeout(handshakeTimeout, () =>
        fail(new Error('the opening handshake timed out')),
      );
    }
    request.on('upgrade', (res, socket, head) => {
      settle();
      request.setTimeout(0);
      resolve({
        socket,
        header: (name) => String(res.headers[name] ?? ''),
        source: (push) => {
          if (head.length > 0) push(head);
          socket.on('data', push);
        },
      });
    });
    request.on('response', (res) => {
      settle();
      const refused = (body: string) =>
        reject(new UpgradeRefused(res.statusCode ?? 0, body, upgrade.Upgrade ?? ''));
      readBody(res).then(refused, () => refused(''));
    });
    request.on('error', (error) => {
      settle();
      reject(error);
    });
    request.end();
  });
}

/**
 * Asks `url` (http:, https:, ws:, wss:) to switch protocols with `method` and
 * the `upgrade` headers (Upgrade, Connection and the protocol's own). Rejects
 * with UpgradeRefused (an HTTP answer), or the connection's error; the caller
 * checks the 101's headers.
 */
export function openUpgrade(
  url: string,
  method: string,
  upgrade: Record<string, string>,
  options: UpgradeOptions,
): Promise<Upgraded> {
  const target = new URL(url);
  const secure = target.protocol === 'wss:' || target.protocol === 'https:';
  target.protocol = secure ? 'https:' : 'http:';
  return options.direct
    ? upgradeDirect(target, method, upgrade, options)
    : upgradeByRequest(target, method, upgrade, options);
}
