// pods/exec over WebSocket: subprotocol negotiation, channel framing, status, backpressure.
import type { ChildProcess } from 'node:child_process';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { WebSocket, WebSocketServer } from 'ws';
import type { Cluster } from './cluster.ts';
import { ApiError, badRequest, failure } from './status.ts';
import type { Pod } from './types.ts';

export const V5 = 'v5.channel.k8s.io';
export const V4 = 'v4.channel.k8s.io';

const STDIN = 0;
const STDOUT = 1;
const STDERR = 2;
const STATUS = 3;
const RESIZE = 4;
const CLOSE = 255;

// Pause the process's output above this much unsent data; resume below LOW.
const HIGH = 1 << 20;
const LOW = 256 << 10;

export interface ExecOptions {
  /** Subprotocols the server accepts, best first (an old cluster: only v4). */
  protocols: string[];
  /** What a client's disconnect does to the process's stdin: measured on v1.20, it stays open. */
  stdinOnDisconnect: 'keep' | 'eof';
}

export interface ExecRequest {
  pod: Pod;
  container: string;
  command: string[];
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  tty: boolean;
}

/** Validates the query against the pod as the API server does before upgrading. */
export function parseExec(pod: Pod, q: URLSearchParams): ExecRequest {
  const command = q.getAll('command');
  if (!command.length) throw badRequest('you must specify at least 1 command');
  const flag = (k: string) => q.get(k) === 'true' || q.get(k) === '1';
  const stdio = { stdin: flag('stdin'), stdout: flag('stdout'), stderr: flag('stderr') };
  if (!stdio.stdin && !stdio.stdout && !stdio.stderr) {
    throw badRequest('you must specify at least 1 of stdin, stdout, stderr');
  }
  const name = q.get('container') ?? pod.spec.containers[0]?.name ?? '';
  const names = [...pod.spec.containers, ...(pod.spec.ephemeralContainers ?? [])].map(
    (c) => c.name,
  );
  if (!names.includes(name)) {
    throw badRequest(`container ${name} is not valid for pod ${pod.metadata.name}`);
  }
  return { pod, container: name, command, ...stdio, tty: flag('tty') };
}

/** Picks the first protocol the client offers that the server speaks, as wsstream does. */
export function negotiate(header: string | undefined, server: string[]): string | undefined {
  const offered = (header ?? '')
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean);
  return offered.find((p) => server.includes(p));
}

export function refuseProtocol(socket: Duplex, header: string | undefined, server: string[]): void {
  const body = `unable to upgrade: unable to negotiate protocol: client supports [${header ?? ''}], server supports [${server.join(' ')}]`;
  socket.end(
    `HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

function statusFrame(s: object): Buffer {
  return Buffer.concat([Buffer.from([STATUS]), Buffer.from(JSON.stringify(s))]);
}

export function exitStatus(command: string[], code: number): object {
  if (code === 0) return { metadata: {}, status: 'Success' };
  return {
    metadata: {},
    status: 'Failure',
    message: `command terminated with non-zero exit code: error executing command [${command.join(' ')}], exit code ${code}`,
    reason: 'NonZeroExitCode',
    details: { causes: [{ reason: 'ExitCode', message: String(code) }] },
  };
}

/** Runs the upgraded session; the process keeps running if the client goes away. */
export async function serveExec(
  cluster: Cluster,
  wss: WebSocketServer,
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  er: ExecRequest,
  protocol: string,
  opts: ExecOptions,
): Promise<void> {
  const bc = cluster.kubelet.container(er.pod, er.container);
  const refuse = cluster.faults.failExecs;
  const refused = !!refuse && refuse.count > 0 && er.container.startsWith(refuse.containerPrefix);
  if (refused) {
    cluster.faults.failExecs = refuse.count > 1 ? { ...refuse, count: refuse.count - 1 } : null;
  }
  if (refused || !bc || !bc.running || bc.exitCode !== undefined) {
    const msg =
      refused || cluster.kubelet.isBacked(er.pod)
        ? `container not found ("${er.container}")`
        : `pod ${er.pod.metadata.name} has no running container ${er.container} on this machine (unbacked)`;
    throw new ApiError(
      failure(500, 'InternalError', `error: unable to upgrade connection: ${msg}`),
    );
  }
  const ws = await new Promise<WebSocket>((resolve) => {
    wss.handleUpgrade(req, socket, head, resolve);
  });
  if (ws.protocol !== protocol) {
    ws.terminate();
    return;
  }
  // Frames can arrive while the process is being started; keep them for pipe().
  const early: Buffer[] = [];
  let gone = false;
  const hold = (d: Buffer) => early.push(Buffer.from(d));
  const lost = () => {
    gone = true;
  };
  ws.on('message', hold);
  ws.once('close', lost);
  const unregister = cluster.streams.add('exec', () => ws.terminate());
  let child: ChildProcess | string;
  try {
    child = await cluster.kubelet.exec(er.pod, bc, er.command, er.stdin);
  } catch (e) {
    child = (e as Error).message;
  }
  if (typeof child === 'string') {
    const err = `error executing command in container: ${child}`;
    ws.send(
      statusFrame({
        metadata: {},
        status: 'Failure',
        message: `Internal error occurred: ${err}`,
        reason: 'InternalError',
        details: { causes: [{ message: err }] },
        code: 500,
      }),
    );
    unregister();
    ws.close(1000);
    return;
  }
  ws.off('message', hold);
  ws.off('close', lost);
  unregister();
  pipe(cluster, ws, child, er, protocol, opts, early, gone);
}

function pipe(
  cluster: Cluster,
  ws: WebSocket,
  child: ChildProcess,
  er: ExecRequest,
  protocol: string,
  opts: ExecOptions,
  early: Buffer[],
  gone: boolean,
): void {
  let attached = true;
  let sent = 0;
  let paused = false;
  const outputs = [child.stdout, child.stderr].filter((s) => s !== null);

  const detach = (): void => {
    if (!attached) return;
    attached = false;
    unregister();
    // Nobody reads any more: drain so the process never blocks on a full pipe.
    for (const s of outputs) {
      s.removeAllListeners('data');
      s.resume();
    }
    if (opts.stdinOnDisconnect === 'eof') child.stdin?.end();
  };
  const cut = (): void => {
    detach();
    ws.terminate();
  };
  const unregister = cluster.streams.add('exec', cut);

  const relieve = (): void => {
    if (paused && ws.bufferedAmount < LOW) {
      paused = false;
      for (const s of outputs) s.resume();
    }
  };
  const forward = (channel: number, wanted: boolean) => (data: Buffer) => {
    if (!attached || !wanted) return;
    sent += data.length;
    const max = cluster.faults.dropExecAfterBytes;
    if (max !== null && sent >= max) {
      // Cut once this frame is on the wire; the process goes on, as after a network failure.
      ws.send(Buffer.concat([Buffer.from([channel]), data]), () => ws.terminate());
      return detach();
    }
    ws.send(Buffer.concat([Buffer.from([channel]), data]), relieve);
    if (ws.bufferedAmount > HIGH && !paused) {
      paused = true;
      for (const s of outputs) s.pause();
    }
  };
  child.stdout?.on('data', forward(STDOUT, er.stdout));
  child.stderr?.on('data', forward(STDERR, er.stderr));
  child.stdin?.on('error', () => {});

  const onFrame = (data: Buffer): void => {
    if (!data.length) return;
    const ch = data[0];
    if (ch === STDIN) {
      if (er.stdin && child.stdin && !child.stdin.writableEnded)
        child.stdin.write(data.subarray(1));
    } else if (ch === CLOSE && protocol === 'v5.channel.k8s.io') {
      if (data[1] === STDIN) child.stdin?.end();
    } else if (ch === RESIZE) {
      // No TTY is emulated: resize events have nothing to act on.
    }
  };
  for (const d of early) onFrame(d);
  ws.on('message', (raw: Buffer) => onFrame(raw));
  ws.on('close', detach);
  ws.on('error', detach);
  if (gone) detach();

  child.on('close', (code, signal) => {
    if (!attached) return;
    const rc = code ?? (signal ? 128 + (signalNumber(signal) ?? 9) : 1);
    ws.send(statusFrame(exitStatus(er.command, rc)), () => ws.close(1000));
    unregister();
    attached = false;
  });
}

function signalNumber(signal: string): number | undefined {
  const table: Record<string, number> = {
    SIGHUP: 1,
    SIGINT: 2,
    SIGKILL: 9,
    SIGTERM: 15,
    SIGPIPE: 13,
  };
  return table[signal];
}
