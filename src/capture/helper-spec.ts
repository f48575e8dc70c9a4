import { randomBytes } from 'node:crypto';
import type { V1Pod } from '@kubernetes/client-node';

// The privileged helper pod: pinned to the target's node, in the host's PID
// namespace, privileged, with the node's root mounted read-only at /host (for
// the runtime's client and socket). It dies by itself: `sleep` and
// activeDeadlineSeconds end it even if kubedump is killed with SIGKILL, and
// its label and heartbeat let the next run sweep it sooner.

export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'kubedump';
export const HELPER_SELECTOR = `${MANAGED_BY_LABEL}=${MANAGED_BY}`;
export const SESSION_ANNOTATION = 'kubedump.io/session';
export const HEARTBEAT_ANNOTATION = 'kubedump.io/heartbeat';
export const TARGET_ANNOTATION = 'kubedump.io/target';
export const HELPER_CONTAINER = 'kubedump';
export const HOST_ROOT = '/host';
export const NAME_PREFIX = 'kubedump-';

/** The helper pod lives at most this long (a capture longer than that ends with it). */
export const HELPER_DEADLINE_SECONDS = 8 * 3600;
/** How often the heartbeat annotation is refreshed while capturing. */
export const HEARTBEAT_MS = 4000;
/** A helper whose heartbeat is older than this belongs to a dead run. */
export const STALE_MS = 20_000;

export interface HelperSpecInput {
  name: string;
  namespace: string;
  nodeName: string;
  image: string;
  session: string;
  target: string;
  now: Date;
  deadlineSeconds?: number;
}

/** `kubedump-<target pod, shortened>-<random>`: a valid DNS label. */
export function helperName(targetPod: string, random = randomBytes(3).toString('hex')): string {
  const stem = targetPod
    .replace(/[^a-z0-9-]/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 63 - NAME_PREFIX.length - random.length - 1)
    .replace(/-+$/, '');
  return `${NAME_PREFIX}${stem ? `${stem}-` : ''}${random}`;
}

export function helperPodSpec(input: HelperSpecInput): V1Pod {
  const deadline = input.deadlineSeconds ?? HELPER_DEADLINE_SECONDS;
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: input.name,
      namespace: input.namespace,
      labels: { [MANAGED_BY_LABEL]: MANAGED_BY, 'app.kubernetes.io/name': 'kubedump-helper' },
      annotations: {
        [SESSION_ANNOTATION]: input.session,
        [HEARTBEAT_ANNOTATION]: input.now.toISOString(),
        [TARGET_ANNOTATION]: input.target,
      },
    },
    spec: {
      nodeName: input.nodeName,
      hostPID: true,
      restartPolicy: 'Never',
      activeDeadlineSeconds: deadline,
      terminationGracePeriodSeconds: 0,
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      tolerations: [{ operator: 'Exists' }],
      containers: [
        {
          name: HELPER_CONTAINER,
          image: input.image,
          imagePullPolicy: 'IfNotPresent',
          command: ['sleep', String(deadline)],
          securityContext: { privileged: true, runAsUser: 0 },
          resources: {
            requests: { cpu: '10m', memory: '32Mi' },
            limits: { cpu: '1', memory: '256Mi' },
          },
          volumeMounts: [{ name: 'host-root', mountPath: HOST_ROOT, readOnly: true }],
        },
      ],
      volumes: [{ name: 'host-root', hostPath: { path: '/', type: 'Directory' } }],
    },
  };
}

/** When the helper last showed a sign of life: its heartbeat, else its creation. */
export function lastSeen(pod: V1Pod): number | undefined {
  const beat = Date.parse(pod.metadata?.annotations?.[HEARTBEAT_ANNOTATION] ?? '');
  if (Number.isFinite(beat)) return beat;
  const created = pod.metadata?.creationTimestamp;
  const t = created ? new Date(created).getTime() : Number.NaN;
  return Number.isFinite(t) ? t : undefined;
}

/** A helper left by a dead run: stale heartbeat, or no longer running. */
export function isStale(pod: V1Pod, now: number, staleMs = STALE_MS): boolean {
  if (pod.metadata?.labels?.[MANAGED_BY_LABEL] !== MANAGED_BY) return false;
  if (pod.metadata?.deletionTimestamp) return false;
  const phase = pod.status?.phase;
  if (phase === 'Succeeded' || phase === 'Failed') return true;
  const seen = lastSeen(pod);
  return seen === undefined || now - seen > staleMs;
}
