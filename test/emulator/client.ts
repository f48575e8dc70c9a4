// A minimal client for the emulator's REST, watch and exec endpoints (tests and benchmarks).
import { request as httpsRequest } from 'node:https';
import WebSocket from 'ws';

export interface Response {
  status: number;
  text: string;
  // biome-ignore lint/suspicious/noExplicitAny: JSON from the server, checked by the caller.
  body: any;
}

export interface ExecResult {
  protocol: string;
  stdout: Buffer;
  stderr: Buffer;
  /** The v1.Status JSON from channel 3, if any arrived. */
  status?: {
    status: string;
    reason?: string;
    message?: string;
    details?: { causes?: { reason?: string; message?: string }[] };
  };
  exitCode?: number;
}

export interface ExecOptions {
  container?: string;
  stdin?: string | Buffer;
  /** Subprotocols to offer (default v5 then v4). */
  protocols?: string[];
  /** End stdin with the v5 close frame after sending it (default true when v5 is negotiated). */
  closeStdin?: boolean;
}

export class EmuClient {
  readonly url: string;
  readonly ca: string;
  readonly token: string;

  constructor(url: string, ca: string, token: string) {
    this.url = url;
    this.ca = ca;
    this.token = token;
  }

  /** One JSON request; `contentType` for a body other than application/json (a patch). */
  request(method: string, path: string, body?: unknown, contentType?: string): Promise<Response> {
    return new Promise((resolve, reject) => {
      const data = body === undefined ? undefined : JSON.stringify(body);
      const req = httpsRequest(
        `${this.url}${path}`,
        {
          method,
          ca: this.ca,
          // A fresh connection each time: a refused-connections fault must not meet a kept-alive socket.
          agent: false,
          headers: {
            Authorization: `Bearer ${this.token}`,
            Accept: 'application/json',
            ...(data ? { 'Content-Type': contentType ?? 'application/json' } : {}),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString();
            let parsed: unknown;
            try {
              parsed = JSON.parse(text);
            } catch {}
            resolve({ status: res.statusCode ?? 0, text, body: parsed });
          });
        },
      );
      req.on('error', reject);
      req.end(data);
    });
  }

  /** Streams watch events; `done` resolves when the server ends or cuts the stream. */
  watch(
    path: string,
    onEvent: (ev: { type: string; object: { metadata: { name: string } } }) => void,
  ): {
    close: () => void;
    done: Promise<{ status: number; bytes: number; complete: boolean }>;
  } {
    let close = () => {};
    const done = new Promise<{ status: number; bytes: number; complete: boolean }>((resolve) => {
      const req = httpsRequest(
        `${this.url}${path}`,
        { ca: this.ca, headers: { Authorization: `Bearer ${this.token}` } },
        (res) => {
          let buf = '';
          let bytes = 0;
          res.on('data', (c: Buffer) => {
            bytes += c.length;
            buf += c.toString();
            let i = buf.indexOf('\n');
            while (i >= 0) {
              const line = buf.slice(0, i);
              buf = buf.slice(i + 1);
              if (line.trim()) onEvent(JSON.parse(line));
              i = buf.indexOf('\n');
            }
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes, complete: true }));
          res.on('error', () => resolve({ status: res.statusCode ?? 0, bytes, complete: false }));
          res.on('aborted', () => resolve({ status: res.statusCode ?? 0, bytes, complete: false }));
        },
      );
      req.on('error', () => resolve({ status: 0, bytes: 0, complete: false }));
      req.end();
      close = () => req.destroy();
    });
    return { close: () => close(), done };
  }

  /** Opens an exec WebSocket; rejects with the HTTP status text when the upgrade is refused. */
  openExec(ns: string, pod: string, command: string[], o: ExecOptions = {}): Promise<WebSocket> {
    const q = new URLSearchParams();
    for (const c of command) q.append('command', c);
    if (o.container) q.set('container', o.container);
    q.set('stdout', 'true');
    q.set('stderr', 'true');
    if (o.stdin !== undefined) q.set('stdin', 'true');
    const ws = new WebSocket(
      `${this.url.replace(/^https/, 'wss')}/api/v1/namespaces/${ns}/pods/${pod}/exec?${q}`,
      o.protocols ?? ['v5.channel.k8s.io', 'v4.channel.k8s.io'],
      { ca: this.ca, headers: { Authorization: `Bearer ${this.token}` } },
    );
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(ws));
      ws.once('unexpected-response', (_req, res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          reject(new Error(`${res.statusCode}: ${Buffer.concat(chunks).toString()}`)),
        );
      });
      ws.once('error', reject);
    });
  }

  /** Runs a command to completion and collects its output and status. */
  async exec(ns: string, pod: string, command: string[], o: ExecOptions = {}): Promise<ExecResult> {
    const ws = await this.openExec(ns, pod, command, o);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const result: ExecResult = {
      protocol: ws.protocol,
      stdout: Buffer.alloc(0),
      stderr: Buffer.alloc(0),
    };
    ws.on('message', (d: Buffer) => {
      if (d[0] === 1) out.push(d.subarray(1));
      else if (d[0] === 2) err.push(d.subarray(1));
      else if (d[0] === 3) {
        result.status = JSON.parse(d.subarray(1).toString());
        const cause = result.status?.details?.causes?.find((c) => c.reason === 'ExitCode');
        result.exitCode =
          result.status?.status === 'Success' ? 0 : cause ? Number(cause.message) : undefined;
      }
    });
    const closed = new Promise<void>((r) => ws.once('close', () => r()));
    if (o.stdin !== undefined) {
      ws.send(Buffer.concat([Buffer.from([0]), Buffer.from(o.stdin)]));
      if (o.closeStdin ?? ws.protocol === 'v5.channel.k8s.io') ws.send(Buffer.from([255, 0]));
    }
    await closed;
    result.stdout = Buffer.concat(out);
    result.stderr = Buffer.concat(err);
    return result;
  }
}
