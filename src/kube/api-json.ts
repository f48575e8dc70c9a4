import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';
import { KubedumpError } from '../errors.ts';
import { apiError } from './api-errors.ts';

// One JSON request over node:https, for the calls on a capture's path to its
// first packet and for what the Kubernetes client cannot send (the
// ephemeral containers subresource of 1.16-1.21): the client's own requests
// go through fetch (undici), which the executable loads only on first use.

export interface JsonReply {
  status: number;
  body: unknown;
}

/** One JSON request to the API server, with the kubeconfig's credentials, TLS and proxy. */
export async function apiJson(
  kc: KubeConfig,
  method: string,
  path: string,
  options: { contentType?: string; body?: unknown; what?: string } = {},
): Promise<JsonReply> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new KubedumpError('NO_CLUSTER', 'the kubeconfig names no cluster');
  const url = new URL(cluster.server.replace(/\/$/, '') + path);
  const https: import('node:https').RequestOptions = { method, headers: {} };
  await kc.applyToHTTPSOptions(https);
  const payload =
    options.body === undefined ? undefined : Buffer.from(JSON.stringify(options.body));
  https.headers = {
    ...(https.headers as Record<string, string>),
    Accept: 'application/json',
    ...(payload && { 'Content-Type': options.contentType ?? 'application/json' }),
  };
  const send = url.protocol === 'http:' ? httpRequest : httpsRequest;
  return new Promise((resolve, reject) => {
    const req = send(url, https, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        let body: unknown = raw;
        try {
          body = JSON.parse(raw);
        } catch {
          // not JSON: keep the text
        }
        resolve({ status: res.statusCode ?? 0, body });
      });
      res.on('error', reject);
    });
    req.setTimeout(30_000, () => req.destroy(new Error('timed out')));
    req.on('error', (error) => reject(apiError(error, options.what ?? `${method} ${path}`)));
    req.end(payload);
  });
}
