import type { RequestOptions } from 'node:https';
import { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import type { KubeConfig } from '@kubernetes/client-node';
import { type ApiStatus, KubedumpError } from '../errors.ts';
import type { ViewSink } from '../view-sink.ts';
import { forbiddenError, parseStatus } from './api-errors.ts';
import { type ExecChannels, OPEN, STATUS, STDERR, STDIN, STDOUT } from './exec-channels.ts';
import { connectSpdy } from './spdy.ts';
import { type UpgradeOptions, UpgradeRefused } from './upgrade.ts';
import { connectChannelSocket } from './websocket.ts';

// pods/exec. One options object in, a session out whose `result` settles when
// the remote process ends or the socket closes. Unlike client-node's Exec:
// stdout honours backpressure (the socket is paused while the reader is full)
// and carries the socket's own bytes (no copy per frame), errors after the
// upgrade are reported, and the negotiated protocol is visible because v4 over
// WebSocket cannot end stdin. SPDY/3.1 goes first, as kubectl before 1.30 did
// with every server: the API server passes it through where it re-frames a
// WebSocket (before 1.30 at the kubelet, from 1.30 in the API server itself).
// A server or gateway that refuses it gets WebSocket, and this process keeps
// asking it for WebSocket.

const PROTOCOLS = ['v5.channel.k8s.io', 'v4.channel.k8s.io'];
const STDERR_KEEP = 64 * 1024;
// A network that drops packets silently leaves an idle socket open for ~15
// minutes (TCP retransmissions): ping, and give up after this much silence.
export const PING_MS = 5000;
export const SILENCE_MS = 15_000;
const LIVE_WRITE = 16 * 1024;
const STDIN_FRAME = 64 * 1024;

export interface ExecOptions {
  namespace: string;
  pod: string;
  container?: string | undefined;
  command: readonly string[];
  stdin?: boolean;
  signal?: AbortSignal | undefined;
  /** Called with each stderr chunk as it arrives. */
  onStderr?: (chunk: Buffer) => void;
  /** Use only this transport (tests pin one this way). */
  transport?: Transport | undefined;
  /** Offer only these WebSocket subprotocols (tests pin v4 this way). */
  protocols?: readonly string[];
  /** How often to ping the server, and after how long without a sign of life to give up. */
  pingMs?: number;
  silenceMs?: number;
}

export interface ExecResult {
  /** The remote exit code; null when the socket closed without a status. */
  exitCode: number | null;
  /** The status message for failures that are not an exit code. */
  message?: string | undefined;
  /** The last 64 KiB of stderr. */
  stderr: string;
}

export type Transport = ExecChannels['transport'];

export class ExecSession {
  readonly transport: Transport;
  readonly protocol: string;
  readonly stdout: Readable;
  readonly result: Promise<ExecResult>;
  readonly #ws: ExecChannels;
  /** When the server last gave a sign of life. */
  #heard = Date.now();
  #sink: ViewSink | undefined;

  constructor(ws: ExecChannels, options: ExecOptions) {
    this.#ws = ws;
    this.transport = ws.transport;
    this.protocol = ws.protocol;
    let stderr = Buffer.alloc(0);
    let exitCode: number | null = null;
    let message: string | undefined;
    const stdout = new Readable({ read: () => ws.isPaused && ws.resume() });
    this.stdout = stdout;
    let status: Buffer[] = [];
    ws.on('data', (channel: number, payload: Buffer, last: boolean) => {
      this.#heard = Date.now();
      if (channel === STDOUT) {
        if (payload.length === 0) return;
        const sink = this.#sink;
        if (sink) {
          if (!sink.take(payload) && !ws.isPaused) {
            ws.pause();
            sink.onDrain(() => ws.resume());
          }
          return;
        }
        // The socket's bytes last only through this call: the stream keeps a copy.
        if (!stdout.push(Buffer.from(payload))) ws.pause();
      } else if (channel === STDERR) {
        options.onStderr?.(payload);
        stderr = Buffer.concat([stderr, payload]);
        if (stderr.length > STDERR_KEEP) stderr = stderr.subarray(stderr.length - STDERR_KEEP);
      } else if (channel === STATUS) {
        status.push(Buffer.from(payload));
        if (last) {
          ({ exitCode, message } = exitFromStatus(Buffer.concat(status).toString('utf8')));
          status = [];
        }
      }
    });
    const alive = () => {
      this.#heard = Date.now();
    };
    ws.on('pong', alive);
    const pinger = setInterval(() => {
      // Paused by backpressure, the socket is not read: its silence is ours.
      if (ws.isPaused) return alive();
      if (Date.now() - this.#heard > (options.silenceMs ?? SILENCE_MS)) {
        ws.terminate();
        return;
      }
      if (ws.readyState === OPEN) ws.ping();
    }, options.pingMs ?? PING_MS);
    pinger.unref();
    this.result = new Promise((resolve) => {
      const finish = () => {
        clearInterval(pinger);
        stdout.push(null);
        resolve({ exitCode, message, stderr: stderr.toString('utf8') });
      };
      ws.once('close', finish);
      ws.on('error', () => ws.terminate());
    });
    ws.start();
  }

  /**
   * From now on stdout's bytes go to `sink` as they arrive, as views that last
   * only through `take` (what the stream already holds goes first); `stdout`
   * then ends with the session.
   */
  pipeTo(sink: ViewSink): void {
    for (let chunk = this.stdout.read(); chunk !== null; chunk = this.stdout.read()) {
      sink.take(chunk as Buffer);
    }
    this.#sink = sink;
  }

  get canEndStdin(): boolean {
    return this.#ws.canEndStdin;
  }

  /** Writes to the remote stdin; resolves once the bytes are handed to the socket. */
  write(data: Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#ws.send(STDIN, data, (error) => {
        if (error) return reject(error);
        // A big write the kernel took means the server acknowledged earlier
        // bytes; pongs may queue behind an upload on a slow link meanwhile.
        if (data.length >= LIVE_WRITE) this.#heard = Date.now();
        resolve();
      });
    });
  }

  /** Ends the remote stdin (not over v4 WebSocket: it has no way short of closing the socket). */
  endStdin(): Promise<void> {
    if (!this.canEndStdin) throw new Error(`cannot end stdin over ${this.protocol}`);
    return new Promise((resolve, reject) => {
      this.#ws.endStdin((e) => (e ? reject(e) : resolve()));
    });
  }

  /** Closes the socket. The remote process keeps running: stop it by PID first. */
  close(): void {
    if (this.#ws.readyState === OPEN) this.#ws.close();
    setTimeout(() => this.#ws.terminate(), 500).unref();
  }
}

/**
 * Splits a byte stream into lines for `onLine`. A line longer than `max`
 * characters without its end is passed on cut (its first KiB) and dropped,
 * so a remote that never ends a line cannot grow memory without bound.
 */
export function lineSplitter(
  onLine: (line: string) => void,
  max = 64 * 1024,
): (chunk: Buffer) => void {
  const decoder = new StringDecoder('utf8');
  let pending = '';
  let skipping = false;
  return (chunk) => {
    pending += decoder.write(chunk);
    let nl = pending.indexOf('\n');
    while (nl >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      if (!skipping) onLine(line);
      skipping = false;
      nl = pending.indexOf('\n');
    }
    if (pending.length > max) {
      if (!skipping) onLine(`${pending.slice(0, 1024)}… (cut)`);
      skipping = true;
      pending = '';
    }
  };
}

export function exitFromStatus(json: string): { exitCode: number | null; message?: string } {
  const status = parseStatus(json);
  if (!status) return { exitCode: null };
  if ((status as { status?: string }).status === 'Success') return { exitCode: 0 };
  const cause = status.details?.causes?.find((c) => c.reason === 'ExitCode');
  if (cause?.message !== undefined && /^\d+$/.test(cause.message)) {
    return { exitCode: Number(cause.message), message: status.message };
  }
  return { exitCode: null, message: status.message ?? 'the remote command failed' };
}

export function execUrl(server: string, options: ExecOptions): string {
  const url = new URL(server);
  url.protocol = url.protocol === 'http:' ? 'ws:' : 'wss:';
  const base = url.pathname.replace(/\/$/, '');
  url.pathname = `${base}/api/v1/namespaces/${encodeURIComponent(options.namespace)}/pods/${encodeURIComponent(options.pod)}/exec`;
  const query = new URLSearchParams();
  for (const arg of options.command) query.append('command', arg);
  if (options.container) query.set('container', options.container);
  query.set('stdin', String(Boolean(options.stdin)));
  query.set('stdout', 'true');
  query.set('stderr', 'true');
  query.set('tty', 'false');
  url.search = query.toString();
  return url.toString();
}

function target(options: ExecOptions): string {
  const container = options.container ? ` container ${options.container}` : '';
  return `pod ${options.namespace}/${options.pod}${container}`;
}

/** Servers (by URL) that refused SPDY/3.1 and took WebSocket, in this process. */
const webSocketOnly = new Set<string>();

/**
 * Opens the exec's channels: over SPDY/3.1 unless the server refused it
 * before, then over WebSocket when it refuses SPDY now. A WebSocket answered
 * otherwise than SPDY was (switched, or another status) marks the server as
 * refusing SPDY itself; the same refusal twice says nothing of SPDY.
 */
async function connect(server: string, options: ExecOptions, upgrade: UpgradeOptions) {
  const url = execUrl(server, options);
  const websocket = () => connectChannelSocket(url, options.protocols ?? PROTOCOLS, upgrade);
  const transport = options.transport ?? (webSocketOnly.has(server) ? 'websocket' : undefined);
  if (transport === 'websocket') return websocket();
  let spdyStatus: number;
  try {
    return await connectSpdy(url, Boolean(options.stdin), upgrade);
  } catch (error) {
    if (transport === 'spdy' || !(error instanceof UpgradeRefused)) throw error;
    spdyStatus = error.statusCode;
  }
  try {
    const channels = await websocket();
    webSocketOnly.add(server);
    return channels;
  } catch (error) {
    if (error instanceof UpgradeRefused && error.statusCode !== spdyStatus) {
      webSocketOnly.add(server);
    }
    throw error;
  }
}

/** Opens an exec session; rejects with a KubedumpError if the server refuses it. */
export async function openExec(kc: KubeConfig, options: ExecOptions): Promise<ExecSession> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new KubedumpError('NO_CLUSTER', 'the kubeconfig names no cluster');
  const https: RequestOptions = {};
  await kc.applyToHTTPSOptions(https);
  options.signal?.throwIfAborted();
  try {
    const channels = await connect(cluster.server, options, {
      ...https,
      handshakeTimeout: 15000,
      signal: options.signal,
      direct: !cluster.proxyUrl,
    });
    return new ExecSession(channels, options);
  } catch (error) {
    if (options.signal?.aborted) {
      throw new KubedumpError('ABORTED', `exec in ${target(options)}: stopped`);
    }
    if (error instanceof UpgradeRefused) {
      throw refusal(error.statusCode, parseStatus(error.body), options);
    }
    const said = (error as Error).message;
    throw new KubedumpError('CLUSTER_UNREACHABLE', `exec in ${target(options)}: ${said}`, {
      hint: 'check the network, the cluster and the kubeconfig context',
      cause: error,
    });
  }
}

function refusal(code: number, status: ApiStatus | undefined, options: ExecOptions): KubedumpError {
  const what = `exec in ${target(options)}`;
  const detail = status?.message ?? `HTTP ${code}`;
  if (code === 401) {
    return new KubedumpError(
      'UNAUTHORIZED',
      `${what}: the API server rejected the credentials (401)`,
      {
        hint: 'log in again or refresh the kubeconfig credentials',
      },
    );
  }
  if (code === 403) return forbiddenError(what, detail, undefined, status);
  if (code === 404) {
    return new KubedumpError('POD_NOT_FOUND', `pod ${options.namespace}/${options.pod} not found`, {
      hint: 'check the pod name and namespace (kubectl get pods -n NAMESPACE)',
    });
  }
  if (code === 400 && /container/i.test(detail)) {
    return new KubedumpError('CONTAINER_NOT_FOUND', `${what}: ${detail}`, {
      hint: 'check the container name (kubectl get pod POD -o jsonpath={.spec.containers[*].name})',
    });
  }
  return new KubedumpError('EXEC_REFUSED', `${what}: ${detail}`);
}

export interface CollectedExec extends ExecResult {
  stdout: Buffer;
}

/** Runs a short command to completion and collects its output (bounded). */
export async function execCollect(
  kc: KubeConfig,
  options: ExecOptions & { input?: Uint8Array; maxOutput?: number },
): Promise<CollectedExec> {
  const session = await openExec(kc, { ...options, stdin: options.input !== undefined });
  const chunks: Buffer[] = [];
  let size = 0;
  const max = options.maxOutput ?? 1024 * 1024;
  session.stdout.on('data', (chunk: Buffer) => {
    if (size < max) chunks.push(chunk);
    size += chunk.length;
  });
  const onAbort = () => session.close();
  options.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    if (options.input !== undefined) {
      for (let at = 0; at < options.input.length; at += STDIN_FRAME) {
        await session.write(options.input.subarray(at, at + STDIN_FRAME));
      }
      if (session.canEndStdin) await session.endStdin();
    }
    const result = await session.result;
    return { ...result, stdout: Buffer.concat(chunks) };
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
    session.close();
  }
}
