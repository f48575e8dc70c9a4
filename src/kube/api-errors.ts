import { type ApiStatus, KubedumpError } from '../errors.ts';

// Turns what the API server or the network said into one clear line.

export function parseStatus(body: unknown): ApiStatus | undefined {
  if (typeof body === 'string') {
    try {
      return parseStatus(JSON.parse(body));
    } catch {
      return body.trim() ? { message: body.trim() } : undefined;
    }
  }
  if (body && typeof body === 'object') return body as ApiStatus;
  return undefined;
}

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_SOCKET',
  'UND_ERR_HEADERS_TIMEOUT',
]);

function networkCode(error: unknown): string | undefined {
  for (let e: unknown = error, depth = 0; e && depth < 5; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && NETWORK_CODES.has(code)) return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** The permission an API server's 403 message says it refused. */
export interface RefusedPermission {
  user: string;
  verb: string;
  /** `pods`, `pods/exec`, `nodes`, `deployments.apps` (kubectl's spelling). */
  resource: string;
  /** Absent for cluster-scoped requests. */
  namespace?: string;
}

// `User "u" cannot get resource "pods/exec" in API group "" in the namespace "demo"`
// (or `... at the cluster scope`), as every API server words it.
const REFUSED =
  /User "([^"]*)" cannot (\S+) resource "([^"]+)" in API group "([^"]*)"(?: in the namespace "([^"]+)")?/;

export function refusedPermission(message: string): RefusedPermission | undefined {
  const m = REFUSED.exec(message);
  if (!m) return undefined;
  const [, user = '', verb = '', resource = '', group = '', namespace] = m;
  const [plural, sub] = resource.split('/');
  const named = `${plural}${group ? `.${group}` : ''}${sub ? `/${sub}` : ''}`;
  return { user, verb, resource: named, ...(namespace ? { namespace } : {}) };
}

/**
 * A 403 as one line that names the refused verb and resource. WebSocket exec
 * is a GET, authorised as `get pods/exec` before Kubernetes 1.30 and as
 * `create pods/exec` from 1.30 (and over SPDY): the hint names both.
 */
export function forbiddenError(
  what: string,
  said: string,
  cause?: unknown,
  status?: ApiStatus,
): KubedumpError {
  const refused = refusedPermission(said);
  // The API server refuses with a Status; a bare "Forbidden" is a proxy's
  // (`kubectl proxy` on exec and attach), which RBAC cannot help.
  if (!refused && status && status.kind !== 'Status' && said.trim() === 'Forbidden') {
    return new KubedumpError(
      'PROXY_FORBIDDEN',
      `${what}: refused by a proxy in front of the API server (403 Forbidden, no Kubernetes status)`,
      {
        hint: "`kubectl proxy` refuses exec unless started with --reject-paths='^$'; otherwise ask who runs the proxy, or use another context",
        cause,
        status,
      },
    );
  }
  if (!refused) {
    return new KubedumpError('FORBIDDEN', `${what}: forbidden: ${said}`, {
      hint: 'ask for the RBAC permission named above, or use another context',
      cause,
      status,
    });
  }
  const permission = `${refused.verb} ${refused.resource}`;
  const where = refused.namespace ? ` in namespace "${refused.namespace}"` : ' (cluster-wide)';
  const scope = refused.namespace ? ` in namespace ${refused.namespace}` : ' (a ClusterRole)';
  const ask =
    refused.resource === 'pods/exec'
      ? `ask for both "create pods/exec" and "get pods/exec"${scope} (before Kubernetes 1.30 WebSocket exec is authorised as "get pods/exec", from 1.30 as "create pods/exec")`
      : `ask for the RBAC permission "${permission}"${scope}`;
  return new KubedumpError(
    'FORBIDDEN',
    `${what}: forbidden: User "${refused.user}" may not "${permission}"${where}`,
    { hint: `${ask}, or use another context`, cause, status },
  );
}

/**
 * Maps an error from an API call to a KubedumpError. `what` names the call,
 * for example `get pod demo/web`.
 */
export function apiError(error: unknown, what: string): KubedumpError {
  if (error instanceof KubedumpError) return error;
  if ((error as { name?: string })?.name === 'AbortError') {
    return new KubedumpError('ABORTED', `${what}: stopped`, { cause: error });
  }
  const net = networkCode(error);
  if (net) {
    return new KubedumpError(
      'CLUSTER_UNREACHABLE',
      `${what}: cannot reach the API server (${net})`,
      {
        hint: 'check the network, the cluster and the kubeconfig context',
        cause: error,
      },
    );
  }
  const httpCode = Number((error as { code?: unknown })?.code);
  // The server's Status travels with the error, so callers read its reason
  // and causes rather than our wording of it.
  const status = parseStatus((error as { body?: unknown })?.body);
  const said = status?.message ?? (error instanceof Error ? error.message : String(error));
  switch (httpCode) {
    case 401:
      return new KubedumpError(
        'UNAUTHORIZED',
        `${what}: the API server rejected the credentials (401)`,
        {
          hint: 'log in again or refresh the kubeconfig credentials',
          cause: error,
          status,
        },
      );
    case 403:
      return forbiddenError(what, said, error, status);
    case 404:
      return new KubedumpError('NOT_FOUND', `${what}: not found`, { cause: error, status });
    case 422:
      return new KubedumpError('INVALID', `${what}: rejected as invalid: ${said}`, {
        cause: error,
        status,
      });
  }
  return new KubedumpError('API_ERROR', `${what}: ${httpCode ? `HTTP ${httpCode}: ` : ''}${said}`, {
    cause: error,
    status,
  });
}
