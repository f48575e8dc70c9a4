import type { KubeConfig, V1EphemeralContainer, V1Pod } from '@kubernetes/client-node';
import { KubedumpError } from '../errors.ts';
import { apiError, forbiddenError, refusedPermission } from './api-errors.ts';
import { apiJson, type JsonReply } from './api-json.ts';
import { getPod, type PodRef } from './pods.ts';
import { watchUntil } from './watch.ts';

// Ephemeral containers, as `kubectl debug` adds them: the Pod subresource of
// Kubernetes 1.22+ (a patch of spec.ephemeralContainers), else the legacy
// `EphemeralContainers` kind of 1.16-1.21 (read, append, replace). They can
// never be removed; their process must end by itself.

/** Which API shape the server spoke: 1.16-1.21's EphemeralContainers kind, or 1.22+'s Pod. */
export type EphemeralShape = 'legacy' | 'pod';

/**
 * Adds `container` to the pod's ephemeral containers. With `dryRun` the
 * server admits and validates the change (Pod Security, webhooks, the
 * version's own rules) but stores nothing: no container is added.
 */
export async function addEphemeralContainer(
  kc: KubeConfig,
  pod: PodRef,
  container: V1EphemeralContainer,
  options: { dryRun?: boolean } = {},
): Promise<EphemeralShape> {
  const what = `add an ephemeral container to pod ${pod.namespace}/${pod.name}`;
  const path = `/api/v1/namespaces/${encodeURIComponent(pod.namespace)}/pods/${encodeURIComponent(pod.name)}/ephemeralcontainers`;
  const write = options.dryRun ? `${path}?dryRun=All` : path;
  // The subresource says which shape it speaks: 1.16-1.21 answer with the
  // EphemeralContainers kind (read, append, replace); 1.22+ with the Pod.
  const current = await apiJson(kc, 'GET', path);
  if (current.status === 404) {
    throw new KubedumpError(
      'EPHEMERAL_UNSUPPORTED',
      `${what}: the cluster does not serve ephemeral containers`,
      {
        hint: 'ephemeral containers need Kubernetes 1.23+ (or the EphemeralContainers feature gate from 1.16); use another --mode',
      },
    );
  }
  if (current.status < 300 && (current.body as { kind?: string }).kind === 'EphemeralContainers') {
    await replaceLegacy(kc, { read: path, write }, current, container, what);
    return 'legacy';
  }
  // A user may patch without being allowed to read: the patch decides.
  const patched = await apiJson(kc, 'PATCH', write, {
    contentType: 'application/strategic-merge-patch+json',
    body: { spec: { ephemeralContainers: [container] } },
  });
  // A server of the old shape does not take the Pod-shaped patch: the read
  // it refused was needed after all, and is what to ask for.
  const refusedRead = current.status === 403 ? current : undefined;
  if (patched.status >= 300)
    throw statusError(patched.status === 403 ? patched : (refusedRead ?? patched), what);
  const answer = patched.body as {
    spec?: { ephemeralContainers?: { name?: string }[] };
    ephemeralContainers?: { name?: string }[];
  };
  const listed = answer?.spec?.ephemeralContainers ?? answer?.ephemeralContainers ?? [];
  if (listed.some((c) => c.name === container.name)) return 'pod';
  if (refusedRead) throw statusError(refusedRead, what);
  throw new KubedumpError(
    'API_ERROR',
    `${what}: the API server accepted the patch but does not list the container`,
    { hint: 'check the API server' },
  );
}

/** How often a replace that lost a race to another writer reads the pod again (as client-go's DefaultRetry). */
const CONFLICT_ATTEMPTS = 5;
const CONFLICT_PAUSE_MS = 10;

/**
 * 1.16-1.21: appends to the list read and replaces it whole. The replace names
 * the resourceVersion it read, which the kubelet's status updates move on a
 * busy pod: on 409 Conflict, read again and append again.
 */
async function replaceLegacy(
  kc: KubeConfig,
  paths: { read: string; write: string },
  first: JsonReply,
  container: V1EphemeralContainer,
  what: string,
): Promise<void> {
  let current = first;
  for (let attempt = 1; ; attempt++) {
    const legacy = current.body as { ephemeralContainers?: V1EphemeralContainer[] };
    const replaced = await apiJson(kc, 'PUT', paths.write, {
      body: { ...legacy, ephemeralContainers: [...(legacy.ephemeralContainers ?? []), container] },
    });
    if (replaced.status < 300) return;
    if (replaced.status !== 409 || attempt === CONFLICT_ATTEMPTS) throw statusError(replaced, what);
    await new Promise((resolve) => setTimeout(resolve, CONFLICT_PAUSE_MS));
    current = await apiJson(kc, 'GET', paths.read);
    if (current.status >= 300) throw statusError(current, what);
  }
}

/** Waits until the ephemeral container runs; fails in one line when it ends or cannot start. */
export async function waitForEphemeralContainer(
  kc: KubeConfig,
  pod: PodRef,
  name: string,
  options: { timeoutMs: number; signal: AbortSignal },
): Promise<void> {
  const what = `ephemeral container ${name} in pod ${pod.namespace}/${pod.name}`;
  const judge = (p: V1Pod) => ephemeralProgress(p, name, what);
  const first = await getPod(kc, pod);
  const now = judge(first);
  if (now === 'running') return;
  if (now instanceof KubedumpError) throw now;
  await new Promise<void>((resolve, reject) => {
    const stop = new AbortController();
    const finish = (error?: unknown) => {
      clearTimeout(timer);
      options.signal.removeEventListener('abort', onAbort);
      stop.abort();
      if (error) reject(error);
      else resolve();
    };
    const onAbort = () => finish(new KubedumpError('ABORTED', `${what}: stopped`));
    const timer = setTimeout(
      () =>
        finish(
          new KubedumpError(
            'POD_START_TIMEOUT',
            `${what} did not run within ${options.timeoutMs / 1000} s`,
            { hint: 'raise --helper-timeout, or check the pod with kubectl describe' },
          ),
        ),
      options.timeoutMs,
    );
    options.signal.addEventListener('abort', onAbort, { once: true });
    watchUntil(
      kc,
      `/api/v1/namespaces/${encodeURIComponent(pod.namespace)}/pods`,
      {
        fieldSelector: `metadata.name=${pod.name}`,
        resourceVersion: first.metadata?.resourceVersion,
      },
      (_type, p) => {
        const state = judge(p as V1Pod);
        if (state === 'running') finish();
        else if (state instanceof KubedumpError) finish(state);
      },
      (error) => {
        // A refused watch does not heal by itself; anything else starts
        // again, and the start timeout bounds the wait.
        const code = (error as { statusCode?: number })?.statusCode;
        if (code === 403) {
          finish(
            new KubedumpError(
              'FORBIDDEN',
              `${what}: forbidden: may not "watch pods" in namespace "${pod.namespace}"`,
              {
                hint: `ask for the RBAC permission "watch pods" in namespace ${pod.namespace}, or use another context`,
              },
            ),
          );
        } else if (code === 401)
          finish(apiError({ code: 401 }, `watch pod ${pod.namespace}/${pod.name}`));
      },
      stop.signal,
    );
  });
}

/** Where the ephemeral container `name` stands in `p`: running, still waiting, or a one-line failure. */
function ephemeralProgress(
  p: V1Pod,
  name: string,
  what: string,
): 'running' | 'waiting' | KubedumpError {
  const status = p.status?.ephemeralContainerStatuses?.find((s) => s.name === name);
  if (status?.state?.running) return 'running';
  const ended = status?.state?.terminated;
  if (ended) {
    return new KubedumpError(
      'CONTAINER_FAILED',
      `${what} ended (${ended.reason ?? `exit ${ended.exitCode}`})`,
      {
        hint: 'check the helper image (--helper-image needs sh) and the pod events',
      },
    );
  }
  const reason = status?.state?.waiting?.reason ?? '';
  if (/ErrImagePull|ImagePullBackOff|InvalidImageName/.test(reason)) {
    return new KubedumpError('IMAGE_PULL', `${what} cannot pull its image (${reason})`, {
      hint: 'use --helper-image with an image the node can pull (it needs sh)',
    });
  }
  return 'waiting';
}

function statusError(reply: JsonReply, what: string): KubedumpError {
  const status = reply.body as { message?: string; reason?: string };
  // The server names the verb it refused (patch, or get and update before 1.22).
  if (reply.status === 403 && status?.message && refusedPermission(status.message))
    return forbiddenError(what, status.message);
  const code =
    reply.status === 403 ? 'FORBIDDEN' : reply.status === 401 ? 'UNAUTHORIZED' : 'API_ERROR';
  return new KubedumpError(code, `${what}: ${status?.message ?? `HTTP ${reply.status}`}`, {
    hint:
      reply.status === 403
        ? 'ask for the RBAC permission "patch pods/ephemeralcontainers" (and "update" before Kubernetes 1.22), or use another --mode'
        : 'check the API server',
  });
}
