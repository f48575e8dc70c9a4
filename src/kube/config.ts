import { delimiter } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { KubedumpError } from '../errors.ts';

export interface ClusterSelection {
  /** A kubeconfig file; default: $KUBECONFIG, then ~/.kube/config, then in-cluster. */
  kubeconfig?: string | undefined;
  /** A context name; default: the kubeconfig's current context. */
  context?: string | undefined;
}

function isMissing(error: unknown): boolean {
  return (error as NodeJS.ErrnoException)?.code === 'ENOENT';
}

// client-node throws "Duplicate cluster" when two $KUBECONFIG files share a
// name, and fails on a missing first file; kubectl skips missing files and
// merges the rest with the first file winning. Do as kubectl does.
function loadDefault(): KubeConfig {
  const files = (process.env.KUBECONFIG ?? '').split(delimiter).filter(Boolean);
  const kc = new KubeConfig();
  if (files.length === 0) {
    kc.loadFromDefault();
    return kc;
  }
  let found = 0;
  for (const file of files) {
    const more = new KubeConfig();
    try {
      more.loadFromFile(file);
    } catch (error) {
      if (isMissing(error)) continue;
      throw error;
    }
    found++;
    const names = (list: { name: string }[]) => new Set(list.map((x) => x.name));
    const clusters = names(kc.getClusters());
    const users = names(kc.getUsers());
    const contexts = names(kc.getContexts());
    for (const c of more.getClusters()) if (!clusters.has(c.name)) kc.addCluster(c);
    for (const u of more.getUsers()) if (!users.has(u.name)) kc.addUser(u);
    for (const c of more.getContexts()) if (!contexts.has(c.name)) kc.addContext(c);
    if (!kc.getCurrentContext()) kc.setCurrentContext(more.getCurrentContext());
  }
  if (found === 0) {
    throw new KubedumpError(
      'KUBECONFIG',
      `none of the files in $KUBECONFIG exist (${files.join(delimiter)})`,
      {
        hint: 'check $KUBECONFIG, or pass --kubeconfig',
      },
    );
  }
  return kc;
}

export function loadKubeConfig(
  selection: ClusterSelection = {},
  env: NodeJS.ProcessEnv = process.env,
): KubeConfig {
  let kc: KubeConfig;
  try {
    if (selection.kubeconfig) {
      kc = new KubeConfig();
      kc.loadFromFile(selection.kubeconfig);
    } else {
      kc = loadDefault();
    }
  } catch (error) {
    if (error instanceof KubedumpError) throw error;
    const where = selection.kubeconfig ?? process.env.KUBECONFIG ?? '~/.kube/config';
    throw new KubedumpError('KUBECONFIG', `cannot read kubeconfig ${where}`, {
      hint: 'check the file, or pass --kubeconfig',
      cause: error,
    });
  }
  if (selection.context) {
    if (!kc.getContextObject(selection.context)) {
      const known = kc
        .getContexts()
        .map((c) => c.name)
        .join(', ');
      throw new KubedumpError('CONTEXT_NOT_FOUND', `context "${selection.context}" not found`, {
        hint: known ? `known contexts: ${known}` : 'the kubeconfig has no contexts',
      });
    }
    kc.setCurrentContext(selection.context);
  }
  const cluster = kc.getCurrentCluster();
  if (!cluster) {
    throw new KubedumpError(
      'NO_CLUSTER',
      'the kubeconfig names no cluster for the current context',
      {
        hint: 'set a context with --context, or check the kubeconfig',
      },
    );
  }
  // client-node honours the cluster's proxy-url (REST and our WebSocket exec
  // both take their agent from it), but not the environment: fill it in.
  const proxyUrl = cluster.proxyUrl || proxyFromEnvironment(cluster.server, env);
  // A plain http:// server (`kubectl proxy`) works in kubectl; client-node
  // refuses one unless told to skip a TLS check there is none of.
  const plainHttp = /^http:/i.test(cluster.server) && !cluster.skipTLSVerify;
  if ((proxyUrl && proxyUrl !== cluster.proxyUrl) || plainHttp) {
    const mended = {
      ...cluster,
      ...(proxyUrl && { proxyUrl }),
      ...(plainHttp && { skipTLSVerify: true }),
    };
    kc.clusters = kc.clusters.map((c) => (c === cluster ? mended : c));
  }
  return kc;
}

/** The namespace of the selected context, as kubectl uses it. */
export function contextNamespace(kc: KubeConfig): string {
  return kc.getContextObject(kc.getCurrentContext())?.namespace || 'default';
}

const envAny = (env: NodeJS.ProcessEnv, ...names: string[]) =>
  names.map((n) => env[n]).find((v) => v !== undefined && v !== '');

function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (/^127(\.\d{1,3}){3}$/.test(host)) return true;
  return host === '::1' || host === '0:0:0:0:0:0:0:1';
}

function ipv4(host: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host);
  if (!m) return undefined;
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255)) return undefined;
  return parts.reduce((a, p) => a * 256 + p, 0);
}

/** Does one NO_PROXY entry exempt host:port? Go's golang.org/x/net/http/httpproxy rules. */
function noProxyMatches(entry: string, host: string, port: string): boolean {
  let pattern = entry.trim().toLowerCase();
  if (!pattern) return false;
  if (pattern === '*') return true;
  const cidr = /^(\d{1,3}(?:\.\d{1,3}){3})\/(\d{1,2})$/.exec(pattern);
  if (cidr) {
    const net = ipv4(cidr[1] as string);
    const ip = ipv4(host);
    const bits = Number(cidr[2]);
    if (net === undefined || ip === undefined || bits > 32) return false;
    const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
    return (net & mask) >>> 0 === (ip & mask) >>> 0;
  }
  let wantPort = '';
  const withPort = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(pattern);
  if (withPort) {
    pattern = withPort[1] as string;
    wantPort = withPort[2] as string;
  }
  pattern = pattern.replace(/^\[|\]$/g, '');
  if (wantPort && wantPort !== port) return false;
  if (ipv4(pattern) !== undefined || pattern.includes(':')) return pattern === host;
  if (pattern.startsWith('*.')) pattern = pattern.slice(1);
  // "example.com" also matches its subdomains; ".example.com" only them.
  if (!pattern.startsWith('.') && host === pattern) return true;
  return host.endsWith(pattern.startsWith('.') ? pattern : `.${pattern}`);
}

/**
 * The proxy for `server` from HTTPS_PROXY/HTTP_PROXY/NO_PROXY (upper case
 * first, then lower), as Go's http.ProxyFromEnvironment decides it for
 * kubectl: never for localhost or a loopback address.
 */
export function proxyFromEnvironment(
  server: string,
  env: NodeJS.ProcessEnv = process.env,
): string | undefined {
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    return undefined;
  }
  const https = url.protocol === 'https:';
  const proxy = https
    ? envAny(env, 'HTTPS_PROXY', 'https_proxy')
    : envAny(env, 'HTTP_PROXY', 'http_proxy');
  if (!proxy) return undefined;
  const host = url.hostname.toLowerCase().replace(/^\[|\]$/g, '');
  const port = url.port || (https ? '443' : '80');
  if (isLoopback(host)) return undefined;
  const noProxy = envAny(env, 'NO_PROXY', 'no_proxy') ?? '';
  if (noProxy.split(',').some((entry) => noProxyMatches(entry, host, port))) return undefined;
  // Go reads a bare "host:port" as an http:// proxy.
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(proxy) ? proxy : `http://${proxy}`;
}
