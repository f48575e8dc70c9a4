// REST handlers: routing of /api and /apis paths to the cluster, lists, watches, selectors.
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { allowed } from './auth.ts';
import type { Cluster } from './cluster.ts';
import { API_GROUPS, AUTHZ_GROUP, AUTHZ_V1, apiVersions, CORE_V1, VERSION } from './discovery.ts';
import { assertCurrent, type LegacyEphemeral, legacyEphemeral, patchPod } from './ephemeral.ts';
import { matches } from './faults.ts';
import {
  type FieldGetter,
  metaFields,
  parseFieldSelector,
  parseLabelSelector,
  podFields,
} from './selectors.ts';
import {
  type AccessAttributes,
  ApiError,
  alreadyExists,
  badRequest,
  failure,
  forbidden,
} from './status.ts';
import type { Store } from './store.ts';
import { toTable, wantsTable } from './table.ts';
import type { KObject, Pod, PodInput } from './types.ts';

export interface Route extends Omit<AccessAttributes, 'user'> {
  /** Discovery and health: no authorization beyond authentication. */
  open?: boolean;
}

/** Maps a request to the attributes RBAC decides on; undefined for unknown paths. */
export function route(method: string, path: string, query: URLSearchParams): Route | undefined {
  const seg = path.split('/').filter(Boolean);
  const watch = query.get('watch') === 'true' || query.get('watch') === '1';
  const verbOf = (named: boolean): string => {
    if (method === 'POST') return 'create';
    if (method === 'DELETE') return 'delete';
    if (method === 'PUT') return 'update';
    if (method === 'PATCH') return 'patch';
    return watch ? 'watch' : named ? 'get' : 'list';
  };
  const s = seg.join('/');
  if (
    ['version', 'healthz', 'livez', 'readyz', 'api', 'api/v1', 'apis'].includes(s) ||
    /^apis\/authorization\.k8s\.io(\/v1)?$/.test(s)
  ) {
    return { verb: 'get', resource: '', open: true };
  }
  if (s === 'apis/authorization.k8s.io/v1/selfsubjectaccessreviews') {
    return { verb: verbOf(false), resource: 'selfsubjectaccessreviews' };
  }
  if (seg[0] !== 'api' || seg[1] !== 'v1') return undefined;
  const [, , a, b, c, d, e, ...rest] = seg;
  if (rest.length) return undefined;
  if (a === 'namespaces' && c === 'pods') {
    if (e)
      return {
        verb: e === 'exec' ? 'create' : verbOf(true),
        resource: 'pods',
        subresource: e,
        namespace: b,
        name: d,
      };
    return {
      verb: verbOf(d !== undefined),
      resource: 'pods',
      namespace: b,
      ...(d ? { name: d } : {}),
    };
  }
  if (c !== undefined) return undefined;
  if (a === 'namespaces' || a === 'nodes') {
    return { verb: verbOf(b !== undefined), resource: a, ...(b ? { name: b } : {}) };
  }
  if (a === 'pods' && b === undefined) return { verb: verbOf(false), resource: 'pods' };
  return undefined;
}

export function sendJson(res: ServerResponse, code: number, body: unknown): void {
  const data = JSON.stringify(body);
  res.writeHead(code, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(data),
  });
  res.end(data);
}

export function sendError(res: ServerResponse, e: unknown): void {
  if (e instanceof ApiError) sendJson(res, e.code, e.status);
  else
    sendJson(
      res,
      500,
      failure(500, 'InternalError', `Internal error occurred: ${(e as Error).message}`),
    );
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  if (!chunks.length) return {};
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (e) {
    throw badRequest(`the object provided is unrecognized: ${(e as Error).message}`);
  }
}

interface ContinueToken {
  rv: number;
  start: string;
}

function list<T extends KObject>(
  cluster: Cluster,
  store: Store<T>,
  kind: string,
  namespace: string | undefined,
  query: URLSearchParams,
  fields: FieldGetter<T>,
  accept: string | undefined,
): unknown {
  const labels = parseLabelSelector(query.get('labelSelector'));
  const field = parseFieldSelector(query.get('fieldSelector'), fields);
  let after: string | undefined;
  const cont = query.get('continue');
  if (cont) {
    try {
      after = (JSON.parse(Buffer.from(cont, 'base64url').toString()) as ContinueToken).start;
    } catch {
      throw badRequest('continue key is not valid: illegal base64 data');
    }
  }
  const limit = Number(query.get('limit') ?? 0);
  const all = store
    .list(namespace, after)
    .filter((o) => labels(o.metadata.labels ?? {}) && field(o));
  const items = limit > 0 ? all.slice(0, limit) : all;
  const rv = String(cluster.clock.now());
  const metadata: Record<string, unknown> = { resourceVersion: rv };
  if (limit > 0 && all.length > limit) {
    const last = items[items.length - 1] as T;
    const token: ContinueToken = {
      rv: cluster.clock.now(),
      start: `${last.metadata.namespace ? `${last.metadata.namespace}/` : ''}${last.metadata.name}`,
    };
    metadata.continue = Buffer.from(JSON.stringify(token)).toString('base64url');
    metadata.remainingItemCount = all.length - limit;
  }
  if (wantsTable(accept)) return toTable(kind, items, metadata);
  return { kind: `${kind}List`, apiVersion: 'v1', metadata, items };
}

function watch<T extends KObject>(
  cluster: Cluster,
  store: Store<T>,
  namespace: string | undefined,
  query: URLSearchParams,
  fields: FieldGetter<T>,
  req: IncomingMessage,
  res: ServerResponse,
): void {
  // kubectl get -w asks for Table rows in its watch too.
  const table = wantsTable(req.headers.accept);
  const labels = parseLabelSelector(query.get('labelSelector'));
  const field = parseFieldSelector(query.get('fieldSelector'), fields);
  const rvParam = query.get('resourceVersion');
  const fromRv = rvParam && rvParam !== '0' ? Number(rvParam) : undefined;
  let sent = 0;
  let done = false;
  const buffered: string[] = [];
  const finish = (): void => {
    if (done) return;
    done = true;
    stop?.();
    unregister();
    clearTimeout(timer);
    res.end();
  };
  const cut = (): void => {
    if (done) return;
    done = true;
    stop?.();
    unregister();
    clearTimeout(timer);
    res.socket?.destroy();
  };
  const write = (line: string): void => {
    if (done) return;
    sent += Buffer.byteLength(line);
    const max = cluster.faults.dropWatchAfterBytes;
    if (max !== null && sent >= max) {
      // Cut once these bytes are on the wire, without the chunked terminator.
      done = true;
      stop?.();
      unregister();
      clearTimeout(timer);
      res.write(line, () => res.socket?.destroy());
      return;
    }
    res.write(line);
  };
  let stop: (() => void) | undefined;
  // Register before replaying, and replay into a buffer so the 200 goes out first (410 otherwise).
  stop = store.watch(fromRv, (ev) => {
    const o = ev.object;
    if (namespace && o.metadata.namespace !== namespace) return;
    if (!labels(o.metadata.labels ?? {}) || !field(o)) return;
    const object = table
      ? toTable(o.kind, [o], { resourceVersion: o.metadata.resourceVersion })
      : o;
    const line = `${JSON.stringify({ type: ev.type, object })}\n`;
    if (res.headersSent) write(line);
    else buffered.push(line);
  });
  const unregister = cluster.streams.add('watch', cut);
  const timeout = Number(query.get('timeoutSeconds') ?? 0);
  const timer = setTimeout(finish, timeout > 0 ? timeout * 1000 : 2 ** 31 - 1);
  res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' });
  res.flushHeaders();
  for (const l of buffered.splice(0)) write(l);
  req.on('close', finish);
  res.on('close', finish);
}

export interface Ctx {
  cluster: Cluster;
  user: string;
  serverAddress: string;
}

/** Authorization (RBAC plus the forbid fault); throws the 403 the API server would send. */
export function authorize(ctx: Ctx, r: Route): void {
  const attrs: AccessAttributes = { user: ctx.user, ...r };
  const req = { ...r, verb: r.verb, resource: r.resource };
  if (ctx.cluster.faults.forbid.some((m) => matches(m, req)) || !allowed(attrs))
    throw forbidden(attrs);
}

/**
 * The subresource as 1.16-1.21 serve it: the EphemeralContainers kind. A patch applies to
 * that kind, so a Pod-shaped one changes nothing.
 */
async function legacyEphemeralRequest(
  cluster: Cluster,
  verb: string,
  pod: Pod,
  req: IncomingMessage,
  dryRun: boolean,
): Promise<LegacyEphemeral> {
  if (verb === 'get') {
    const view = legacyEphemeral(pod);
    if (cluster.faults.modifyAfterEphemeralRead > 0) {
      cluster.faults.modifyAfterEphemeralRead--;
      cluster.pods.touch(pod);
    }
    return view;
  }
  const body = (await readBody(req)) as Partial<LegacyEphemeral>;
  if (verb === 'patch') {
    const contentType = req.headers['content-type'] ?? '';
    const view = legacyEphemeral(pod) as unknown as Pod;
    const next = (patchPod(view, contentType, body) as unknown as LegacyEphemeral)
      .ephemeralContainers;
    return legacyEphemeral(cluster.updateEphemeral(pod, next, dryRun));
  }
  if (verb !== 'update')
    throw new ApiError(failure(405, 'MethodNotAllowed', `the server does not allow this method`));
  if (body.kind !== 'EphemeralContainers') {
    throw badRequest(
      `EphemeralContainers in version "v1" cannot be handled as a EphemeralContainers: no kind "${body.kind ?? ''}" is registered for version "v1"`,
    );
  }
  assertCurrent(pod, body.metadata?.resourceVersion);
  return legacyEphemeral(cluster.updateEphemeral(pod, body.ephemeralContainers, dryRun));
}

export async function handle(
  ctx: Ctx,
  r: Route,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
): Promise<void> {
  const { cluster } = ctx;
  const q = url.searchParams;
  const accept = req.headers.accept;
  const seg = url.pathname.split('/').filter(Boolean).join('/');
  if (r.open) {
    if (seg === 'version') return sendJson(res, 200, VERSION);
    if (seg === 'api') return sendJson(res, 200, apiVersions(ctx.serverAddress));
    if (seg === 'api/v1') return sendJson(res, 200, CORE_V1);
    if (seg === 'apis') return sendJson(res, 200, API_GROUPS);
    if (seg === 'apis/authorization.k8s.io') return sendJson(res, 200, AUTHZ_GROUP);
    if (seg === 'apis/authorization.k8s.io/v1') return sendJson(res, 200, AUTHZ_V1);
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.end('ok');
    return;
  }
  authorize(ctx, r);
  const ns = r.namespace;
  if (r.resource === 'selfsubjectaccessreviews') {
    const body = (await readBody(req)) as {
      spec?: { resourceAttributes?: Record<string, string> };
    };
    const ra = body.spec?.resourceAttributes ?? {};
    const attrs: AccessAttributes = {
      user: ctx.user,
      verb: ra.verb ?? '',
      resource: ra.resource ?? '',
      ...(ra.subresource ? { subresource: ra.subresource } : {}),
      ...(ra.namespace ? { namespace: ra.namespace } : {}),
      ...(ra.name ? { name: ra.name } : {}),
    };
    const ok = allowed(attrs) && !cluster.faults.forbid.some((m) => matches(m, { ...attrs }));
    return sendJson(res, 201, {
      kind: 'SelfSubjectAccessReview',
      apiVersion: 'authorization.k8s.io/v1',
      metadata: { creationTimestamp: null },
      spec: body.spec ?? {},
      status: ok
        ? { allowed: true, reason: `RBAC: allowed by ClusterRoleBinding "${ctx.user}"` }
        : { allowed: false },
    });
  }
  if (r.resource === 'namespaces') {
    if (r.verb === 'watch')
      return watch(cluster, cluster.namespaces, undefined, q, metaFields, req, res);
    if (r.verb === 'list')
      return sendJson(
        res,
        200,
        list(cluster, cluster.namespaces, 'Namespace', undefined, q, metaFields, accept),
      );
    if (r.verb === 'get' && r.name)
      return sendJson(res, 200, one(cluster.namespaces.get(undefined, r.name), accept));
    if (r.verb === 'create') {
      const body = (await readBody(req)) as {
        metadata?: { name?: string; labels?: Record<string, string> };
      };
      const name = body.metadata?.name;
      if (!name) throw badRequest('metadata.name is required');
      if (cluster.namespaces.find(undefined, name))
        throw new ApiError(
          failure(409, 'AlreadyExists', `namespaces "${name}" already exists`, {
            name,
            kind: 'namespaces',
          }),
        );
      return sendJson(res, 201, cluster.addNamespace(name, body.metadata?.labels));
    }
  }
  if (r.resource === 'nodes') {
    if (r.verb === 'watch')
      return watch(cluster, cluster.nodes, undefined, q, metaFields, req, res);
    if (r.verb === 'list')
      return sendJson(
        res,
        200,
        list(cluster, cluster.nodes, 'Node', undefined, q, metaFields, accept),
      );
    if (r.verb === 'get' && r.name)
      return sendJson(res, 200, one(cluster.nodes.get(undefined, r.name), accept));
  }
  if (r.resource === 'pods' && !r.subresource) {
    if (r.verb === 'watch') return watch(cluster, cluster.pods, ns, q, podFields, req, res);
    if (r.verb === 'list')
      return sendJson(res, 200, list(cluster, cluster.pods, 'Pod', ns, q, podFields, accept));
    if (r.verb === 'create' && ns) {
      const body = (await readBody(req)) as PodInput;
      if (body.spec?.ephemeralContainers?.length) {
        throw new ApiError(
          failure(
            422,
            'Invalid',
            `Pod "${body.metadata?.name ?? ''}" is invalid: spec.ephemeralContainers: Forbidden: cannot be set on create`,
            { name: body.metadata?.name ?? '', kind: 'Pod' },
          ),
        );
      }
      if (q.get('dryRun') === 'All') {
        // Validation and admission, nothing stored.
        const pod = cluster.buildPod(ns, body, { admission: true });
        if (cluster.pods.find(ns, pod.metadata.name))
          throw alreadyExists('pods', pod.metadata.name);
        return sendJson(res, 201, pod);
      }
      return sendJson(res, 201, cluster.createPod(ns, body, { admission: true }));
    }
    if (r.name && ns) {
      const pod = cluster.pods.get(ns, r.name);
      if (r.verb === 'get') return sendJson(res, 200, one(pod, accept));
      if (r.verb === 'delete') {
        const body = (await readBody(req)) as { gracePeriodSeconds?: number };
        const g = q.get('gracePeriodSeconds') ?? body.gracePeriodSeconds;
        return sendJson(
          res,
          200,
          cluster.deletePod(pod, g === undefined || g === null ? undefined : Number(g)),
        );
      }
    }
  }
  if (r.resource === 'pods' && r.name && ns) {
    const pod = cluster.pods.get(ns, r.name);
    if (r.subresource === 'status' && r.verb === 'get') return sendJson(res, 200, pod);
    if (r.subresource === 'exec') throw badRequest('Upgrade request required');
    if (r.subresource === 'ephemeralcontainers') {
      const dryRun = q.get('dryRun') === 'All';
      if (cluster.faults.legacyEphemeral)
        return sendJson(res, 200, await legacyEphemeralRequest(cluster, r.verb, pod, req, dryRun));
      if (r.verb === 'get') return sendJson(res, 200, pod);
      if (r.verb === 'patch') {
        const patched = patchPod(pod, req.headers['content-type'] ?? '', await readBody(req));
        return sendJson(
          res,
          200,
          cluster.updateEphemeral(pod, patched.spec?.ephemeralContainers, dryRun),
        );
      }
      if (r.verb === 'update') {
        const body = (await readBody(req)) as Partial<Pod> & { kind?: string };
        if (body.kind !== 'Pod') {
          // What a 1.22+ server says to the 1.16-1.21 shape.
          throw badRequest(
            `Pod in version "v1" cannot be handled as a Pod: no kind "${body.kind ?? ''}" is registered for version "v1" in scheme "pkg/api/legacyscheme/scheme.go:30"`,
          );
        }
        assertCurrent(pod, body.metadata?.resourceVersion);
        return sendJson(
          res,
          200,
          cluster.updateEphemeral(pod, body.spec?.ephemeralContainers, dryRun),
        );
      }
    }
    if (r.subresource === 'log' && r.verb === 'get') {
      const container = q.get('container') ?? pod.spec.containers[0]?.name ?? '';
      const path = cluster.kubelet.logPath(pod, container);
      const text = path ? await readFile(path, 'utf8').catch(() => '') : '';
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.end(text);
      return;
    }
  }
  throw new ApiError(
    failure(
      405,
      'MethodNotAllowed',
      `the server does not allow this method on the requested resource`,
    ),
  );
}

function one(o: KObject, accept: string | undefined): unknown {
  return wantsTable(accept)
    ? toTable(o.kind, [o], { resourceVersion: o.metadata.resourceVersion })
    : o;
}
