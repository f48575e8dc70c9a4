// The HTTPS listener: authentication, fault switches, REST dispatch and exec upgrades.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import { authorize, type Ctx, handle, type Route, route, sendError } from './api.ts';
import { userFromHeader } from './auth.ts';
import type { Cluster } from './cluster.ts';
import { type ExecOptions, negotiate, parseExec, refuseProtocol, serveExec } from './exec.ts';
import { ApiError, failure, notFound, unauthorized } from './status.ts';
import type { Tls } from './tls.ts';

export interface ApiServer {
  url: string;
  port: number;
  /** Stops or restarts listening on the same port (connection refused in between). */
  setListening(on: boolean): Promise<void>;
  close(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function authenticate(cluster: Cluster, req: IncomingMessage): string {
  const user = userFromHeader(req.headers.authorization);
  if (!user || cluster.faults.unauthorized) throw unauthorized();
  return user;
}

function rawError(socket: Duplex, e: unknown): void {
  const st = e instanceof ApiError ? e.status : failure(500, 'InternalError', (e as Error).message);
  const body = JSON.stringify(st);
  const text =
    {
      400: 'Bad Request',
      401: 'Unauthorized',
      403: 'Forbidden',
      404: 'Not Found',
      500: 'Internal Server Error',
    }[st.code ?? 500] ?? 'Error';
  socket.end(
    `HTTP/1.1 ${st.code} ${text}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

function logRequest(cluster: Cluster, user: string, r: Route, url: URL): void {
  const { verb, resource, subresource, namespace, name } = r;
  const dryRun = url.searchParams.get('dryRun') === 'All';
  cluster.logRequest({ user, verb, resource, subresource, namespace, name, dryRun });
}

export async function startServer(
  cluster: Cluster,
  tls: Tls,
  exec: ExecOptions,
): Promise<ApiServer> {
  const sockets = new Set<Socket>();
  const wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    maxPayload: 64 << 20,
    handleProtocols: (protocols) => negotiate([...protocols].join(','), exec.protocols) ?? false,
  });
  let address = '';

  const onRequest = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    cluster.requestsReceived++;
    try {
      if (cluster.faults.delayMs > 0) await sleep(cluster.faults.delayMs);
      const url = new URL(req.url ?? '/', 'https://x');
      const user = authenticate(cluster, req);
      const r = route(req.method ?? 'GET', url.pathname, url.searchParams);
      if (!r)
        throw new ApiError(
          failure(404, 'NotFound', 'the server could not find the requested resource', {}),
        );
      if (!r.open) logRequest(cluster, user, r, url);
      const ctx: Ctx = { cluster, user, serverAddress: address };
      await handle(ctx, r, req, res, url);
    } catch (e) {
      if (!res.headersSent) sendError(res, e);
      else res.destroy();
    }
  };

  const onUpgrade = async (req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> => {
    socket.on('error', () => {});
    cluster.requestsReceived++;
    try {
      if (cluster.faults.delayMs > 0) await sleep(cluster.faults.delayMs);
      const url = new URL(req.url ?? '/', 'https://x');
      const user = authenticate(cluster, req);
      const r = route(req.method ?? 'GET', url.pathname, url.searchParams);
      if (r) logRequest(cluster, user, r, url);
      if (!r || r.subresource !== 'exec' || !r.namespace || !r.name) {
        throw new ApiError(
          failure(404, 'NotFound', 'the server could not find the requested resource', {}),
        );
      }
      authorize({ cluster, user, serverAddress: address }, r);
      if ((req.headers.upgrade ?? '').toLowerCase() !== 'websocket') {
        // SPDY/3.1 is refused, as a gateway that passes only WebSocket
        // refuses it: clients fall back to WebSocket, the path emulated here.
        throw new ApiError(
          failure(400, 'BadRequest', `unable to upgrade: ${req.headers.upgrade} is not supported`),
        );
      }
      const pod = cluster.pods.find(r.namespace, r.name);
      if (!pod) throw notFound('pods', r.name);
      const er = parseExec(pod, url.searchParams);
      const offered = req.headers['sec-websocket-protocol'];
      const protocol = negotiate(offered, exec.protocols);
      if (!protocol) return refuseProtocol(socket, offered, exec.protocols);
      await serveExec(cluster, wss, req, socket, head, er, protocol, exec);
    } catch (e) {
      if (socket.writable) rawError(socket, e);
    }
  };

  const server: Server = createServer({ key: tls.key, cert: tls.cert }, (req, res) => {
    void onRequest(req, res);
  });
  server.on('upgrade', (req, socket, head) => {
    void onUpgrade(req, socket, head);
  });
  server.on('secureConnection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('tlsClientError', () => {});

  const listen = (port: number) =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
  await listen(0);
  const port = (server.address() as AddressInfo).port;
  address = `127.0.0.1:${port}`;
  let listening = true;

  return {
    url: `https://${address}`,
    port,
    async setListening(on) {
      if (on === listening) return;
      listening = on;
      if (on) return listen(port);
      // A stopped API server also drops the connections it had.
      server.close();
      for (const s of sockets) s.destroy();
      await new Promise((r) => setImmediate(r));
    },
    async close() {
      for (const c of wss.clients) c.terminate();
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => {
        if (!listening) return r();
        server.close(() => r());
      });
      listening = false;
    },
  };
}
