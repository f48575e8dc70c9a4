import { randomBytes } from 'node:crypto';
import type { V1Pod } from '@kubernetes/client-node';
import { HELPER_MAIN, helperMainArgv } from './remote-scripts.ts';

// The privileged helper pod: pinned to the target's node, in the host's PID
// namespace, privileged, with the node's root mounted read-only at /host (for
// the runtime's client and socket). It ends by itself: its main process lives
// only while a capture beats. The capture's watchdog (the tcpdump wrapper)
// counts kubedump's keepalive lines into a heartbeat file; when that file has
// not changed for HELPER_IDLE_SECONDS the main process exits and the pod is
// done, whatever killed kubedump (SIGKILL, a crash, a closed laptop lid, a
// lost network). activeDeadlineSeconds bounds it even if that fails.

export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'kubedump';
export const HELPER_SELECTOR = `${MANAGED_BY_LABEL}=${MANAGED_BY}`;
export const SESSION_ANNOTATION = 'kubedump.io/session';
export const TARGET_ANNOTATION = 'kubedump.io/target';
/** How long the creating run waits for the helper to start (it deletes it then). */
export const START_TIMEOUT_ANNOTATION = 'kubedump.io/start-timeout-seconds';
export const HELPER_CONTAINER = 'kubedump';
export const HOST_ROOT = '/host';
export const NAME_PREFIX = 'kubedump-';
/** The heartbeat file inside the helper (the container's own /dev/shm). */
export const HELPER_HEARTBEAT = '/dev/shm/kubedump-heartbeat';

/** The helper pod lives at most this long (a capture longer than that ends with it). */
export const HELPER_DEADLINE_SECONDS = 8 * 3600;
/** The helper ends this long after the last heartbeat (or its start, before any). */
export const HELPER_IDLE_SECONDS = 30;
/**
 * A helper still Pending this long past the start timeout its run declared
 * (by the API server's clock) belongs to no run: the run deletes it when its
 * wait ends. Without a declared timeout, the longest one (3600 s) counts.
 */
export const PENDING_MARGIN_MS = 30_000;
const LONGEST_START_TIMEOUT_S = 3600;

export interface HelperSpecInput {
  name: string;
  namespace: string;
  nodeName: string;
  image: string;
  session: string;
  target: string;
  /** Seconds the run waits for the helper to start. */
  startTimeoutSeconds: number;
  deadlineSeconds?: number;
  idleSeconds?: number;
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
        [TARGET_ANNOTATION]: input.target,
        [START_TIMEOUT_ANNOTATION]: String(input.startTimeoutSeconds),
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
          command: helperCommand(input.idleSeconds ?? HELPER_IDLE_SECONDS),
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

export function helperCommand(idleSeconds: number): string[] {
  return helperMainArgv(HELPER_HEARTBEAT, idleSeconds);
}

/**
 * Is this a pod kubedump made? A label anyone may set is not enough: the
 * name, the session annotation and the exact shape of its one container (our
 * constant main script, privileged, hostPID) must match too.
 */
export function isKubedumpHelper(pod: V1Pod): boolean {
  const c = pod.spec?.containers ?? [];
  const main = c[0]?.command ?? [];
  return (
    pod.metadata?.labels?.[MANAGED_BY_LABEL] === MANAGED_BY &&
    (pod.metadata?.name ?? '').startsWith(NAME_PREFIX) &&
    Boolean(pod.metadata?.annotations?.[SESSION_ANNOTATION]) &&
    pod.spec?.hostPID === true &&
    c.length === 1 &&
    c[0]?.name === HELPER_CONTAINER &&
    main[0] === 'sh' &&
    main[1] === '-c' &&
    main[2] === HELPER_MAIN
  );
}

/**
 * Why a helper belongs to no live capture, or undefined when it may still
 * serve one. Only facts the API server set are used: the phase (a running
 * helper ends by itself once its client is gone, so running means alive) and,
 * for a helper that never ran, its age by the server's own clock.
 */
export function abandonedBecause(pod: V1Pod, serverNow: number): string | undefined {
  if (!isKubedumpHelper(pod) || pod.metadata?.deletionTimestamp) return undefined;
  const phase = pod.status?.phase;
  if (phase === 'Succeeded' || phase === 'Failed') return `it ended (${phase})`;
  if (phase === 'Pending' || phase === undefined) {
    const created = pod.metadata?.creationTimestamp;
    const age = created ? serverNow - new Date(created).getTime() : Number.NaN;
    const declared = Number(pod.metadata?.annotations?.[START_TIMEOUT_ANNOTATION]);
    const wait =
      Number.isInteger(declared) && declared > 0 && declared <= LONGEST_START_TIMEOUT_S
        ? declared
        : LONGEST_START_TIMEOUT_S;
    if (age > wait * 1000 + PENDING_MARGIN_MS) {
      return `it never ran, ${Math.round(age / 1000)} s after its creation`;
    }
  }
  return undefined;
}
