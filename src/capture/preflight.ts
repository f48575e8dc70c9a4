import { randomBytes } from 'node:crypto';
import type { KubeConfig } from '@kubernetes/client-node';
import { errorLine, KubedumpError } from '../errors.ts';
import { atLeast, mayI, type ServerVersion, serverVersion } from '../kube/access.ts';
import { addEphemeralContainer } from '../kube/ephemeral.ts';
import { execCollect } from '../kube/exec.ts';
import { createPod } from '../kube/helper-pod.ts';
import { nodeFacts } from '../kube/pods.ts';
import { archFromNode } from '../tcpdump/index.ts';
import type { TargetContainer } from './capture-mode.ts';
import { ephemeralContainer, ephemeralFailure } from './ephemeral.ts';
import { type Check, chooseMode } from './mode-pick.ts';
import { creationFailure, helperPodFor } from './privileged.ts';
import {
  type ContainerLook,
  canCapturePackets,
  containerLookArgv,
  parseContainerLook,
  UPLOAD_DIRS,
} from './remote-scripts.ts';
import { type CaptureRequest, PLACEMENTS, type PlacementName } from './request.ts';
import { bridgeFor, parseContainerId } from './runtimes/index.ts';
import { orStop } from './stop-clock.ts';
import { lacksShell } from './upload.ts';

// Before a capture, ask instead of try: the permissions each mode needs
// (SelfSubjectAccessReviews, all at once), whether admission would take the
// helper pod and the ephemeral container (the very objects a capture sends,
// with dryRun=All: Pod Security, webhooks, quotas, the version's own rules),
// the node, and the container itself (one exec: shell, user, capabilities, a
// directory to upload into), each as soon as what it depends on is known.
// Nothing is created. Each answer is a Check
// naming the modes it stops; mode-pick.ts draws the conclusions.

type Request = Pick<CaptureRequest, 'helperNamespace' | 'helperImage' | 'helperTimeout'>;

interface Permission {
  /** Any of these verbs will do (exec's verb depends on the server version). */
  verbs: string[];
  resource: string;
  namespace: string;
  blocks: PlacementName[];
  todo: string;
}

export async function preflight(
  kc: KubeConfig,
  target: TargetContainer,
  request: Request,
  signal: AbortSignal,
  options: {
    /** The container as a probe already running saw it; when it found nothing, the look is asked anew. */
    seen?: Promise<ContainerLook> | undefined;
    /** A capture's preflight: when the cheapest mode can capture, the dry runs are not asked. */
    cheapestFirst?: boolean;
  } = {},
): Promise<Check[]> {
  const { seen } = options;
  // The look into the container, the slowest answer, goes first: an exec needs
  // nothing the other answers say (a denied one is told apart by its 403).
  const looking = seen
    ? seen.then(
        (look) => lookChecks(target, look),
        () => lookInside(kc, target, signal),
      )
    : lookInside(kc, target, signal);
  const reading = target.nodeName ? nodeFacts(kc, target.nodeName) : Promise.resolve(undefined);
  if (options.cheapestFirst && seen) {
    // The probe's exec ran, so exec is allowed: when the container can
    // capture, nothing the permission reviews could say changes the choice.
    const [node, look] = await orStop(Promise.all([reading, looking]), signal);
    const enough = [
      nodeCheck(target, node, look.look),
      networkCheck(target),
      notAsked('permissions (SelfSubjectAccessReviews)'),
      ...look.checks,
      notAsked('ephemeral container admission (dry run)'),
      notAsked('helper pod admission (dry run)'),
      runtimeCheck(target),
    ];
    if (cheapestCaptures(enough)) return enough;
  }
  const [node, { permissions, answers }] = await orStop(
    Promise.all([reading, askAccess(kc, target.namespace, request)]),
    signal,
  );
  const rbac = permissions.map((p, i) => permissionCheck(p, answers[i]));
  const denied = (mode: PlacementName, resource: string) =>
    permissions.some(
      (p, i) => answers[i] === false && p.blocks.includes(mode) && p.resource === resource,
    );
  const lookChecked: Promise<LookChecks> | LookChecks = denied('unprivileged', 'pods/exec')
    ? { checks: [skipped('shell in the container', 'exec is not allowed')] }
    : looking;
  const checks = (look: LookChecks, ephemeral: Check, helper: Check): Check[] => [
    nodeCheck(target, node, look.look),
    networkCheck(target),
    ...rbac,
    ...look.checks,
    ephemeral,
    helper,
    runtimeCheck(target),
  ];
  if (options.cheapestFirst) {
    const enough = checks(
      await orStop(Promise.resolve(lookChecked), signal),
      notAsked('ephemeral container admission (dry run)'),
      notAsked('helper pod admission (dry run)'),
    );
    if (cheapestCaptures(enough)) return enough;
  }
  const [look, ephemeral, helper] = await orStop(
    Promise.all([
      lookChecked,
      denied('ephemeral', 'pods/ephemeralcontainers')
        ? skipped('ephemeral container admission (dry run)', 'adding one is not allowed')
        : ephemeralAdmission(kc, target, request),
      denied('privileged', 'pods')
        ? skipped('helper pod admission (dry run)', 'creating pods is not allowed')
        : helperAdmission(kc, target, request),
    ]),
    signal,
  );
  return checks(look, ephemeral, helper);
}

const notAsked = (check: string) => skipped(check, `not asked: ${PLACEMENTS[0]} mode can capture`);

/** The checks so far let the cheapest mode capture: the rest could not change the choice. */
const cheapestCaptures = (checks: Check[]) => chooseMode(checks).candidates[0] === PLACEMENTS[0];

/**
 * Exec over SPDY (a POST) is authorised as `create pods/exec`; over WebSocket
 * (a GET, kubedump's fallback) as `get` before Kubernetes 1.30, as `create`
 * from 1.30. Either will do.
 */
function execVerbs(version: ServerVersion | undefined): string[] {
  return atLeast(version, 1, 30) ? ['create'] : ['create', 'get'];
}

interface Access {
  permissions: Permission[];
  /** Each permission's answer: undefined when the server could not say. */
  answers: (boolean | undefined)[];
}

/**
 * The permissions each mode needs, and the server's answers. They depend on
 * the namespace and the server's version only.
 */
async function askAccess(kc: KubeConfig, namespace: string, request: Request): Promise<Access> {
  const version = await serverVersion(kc);
  const permissions = neededPermissions(namespace, request, version);
  const answers = await Promise.all(permissions.map((p) => anyAllowed(kc, p)));
  return { permissions, answers };
}

function neededPermissions(
  ns: string,
  request: Request,
  version: ServerVersion | undefined,
): Permission[] {
  const helperNs = request.helperNamespace || ns;
  const execTodo = (where: string) =>
    `ask for both "create pods/exec" and "get pods/exec" in namespace ${where} (scripts/rbac/)`;
  const exec = (namespace: string, blocks: PlacementName[]): Permission => ({
    verbs: execVerbs(version),
    resource: 'pods/exec',
    namespace,
    blocks,
    todo: execTodo(namespace),
  });
  const one = (
    verb: string,
    resource: string,
    namespace: string,
    blocks: PlacementName[],
    todo: string,
  ): Permission => ({
    verbs: [verb],
    resource,
    namespace,
    blocks,
    todo,
  });
  // 1.16-1.21 speak the EphemeralContainers kind: read it, then replace it.
  const legacy = atLeast(version, 1, 22) === false;
  const ephemeralTodo = `ask for "${legacy ? 'get and update' : 'patch'} pods/ephemeralcontainers" in namespace ${ns} (scripts/rbac/kubedump-ephemeral.yaml)`;
  const privilegedTodo = `ask for "create" and "delete" on pods in namespace ${helperNs} (scripts/rbac/kubedump-privileged.yaml), or use --helper-namespace`;
  return [
    ...(helperNs === ns
      ? [exec(ns, ['unprivileged', 'ephemeral', 'privileged'])]
      : [exec(ns, ['unprivileged', 'ephemeral']), exec(helperNs, ['privileged'])]),
    ...(legacy
      ? [
          one('get', 'pods/ephemeralcontainers', ns, ['ephemeral'], ephemeralTodo),
          one('update', 'pods/ephemeralcontainers', ns, ['ephemeral'], ephemeralTodo),
        ]
      : [one('patch', 'pods/ephemeralcontainers', ns, ['ephemeral'], ephemeralTodo)]),
    one('create', 'pods', helperNs, ['privileged'], privilegedTodo),
    one('delete', 'pods', helperNs, ['privileged'], privilegedTodo),
  ];
}

async function anyAllowed(kc: KubeConfig, p: Permission): Promise<boolean | undefined> {
  const ask = (verb: string) => mayI(kc, { verb, resource: p.resource, namespace: p.namespace });
  const answers = await Promise.all(p.verbs.map(ask));
  if (answers.includes(true)) return true;
  return answers.includes(undefined) ? undefined : false;
}

function permissionCheck(p: Permission, allowed: boolean | undefined): Check {
  const what = `${p.verbs.join(' or ')} ${p.resource}`;
  const check = `RBAC: ${what} in ${p.namespace}`;
  if (allowed === undefined) {
    return {
      check,
      result: 'skip',
      detail: 'the API server did not answer the access review',
      blocks: p.blocks,
    };
  }
  return allowed
    ? { check, result: 'ok', detail: 'allowed', blocks: p.blocks }
    : {
        check,
        result: 'fail',
        detail: `not allowed to "${what}" in namespace ${p.namespace}`,
        reason: `not allowed to "${what}"`,
        todo: p.todo,
        blocks: p.blocks,
      };
}

interface LookChecks {
  checks: Check[];
  look?: ContainerLook | undefined;
}

function skipped(check: string, why: string): Check {
  return { check, result: 'skip', detail: why, blocks: [] };
}

/** What a refused exec into the target says of each mode; a proxy that refuses exec refuses it into a helper pod too. */
const EXEC_REFUSALS: Record<string, { reason: string; blocks: PlacementName[] }> = {
  FORBIDDEN: { reason: 'exec is not allowed', blocks: ['unprivileged', 'ephemeral'] },
  PROXY_FORBIDDEN: {
    reason: 'a proxy refuses exec',
    blocks: ['unprivileged', 'ephemeral', 'privileged'],
  },
};

/** One exec into the target container: shell, user and capabilities, a directory for tcpdump. */
async function lookInside(
  kc: KubeConfig,
  target: TargetContainer,
  signal: AbortSignal,
): Promise<LookChecks> {
  const container = `container "${target.container}"`;
  const shell = 'shell in the container';
  const todo = 'use ephemeral or privileged mode, which need nothing in the container';
  let result: Awaited<ReturnType<typeof execCollect>>;
  try {
    result = await execCollect(kc, {
      namespace: target.namespace,
      pod: target.pod,
      container: target.container,
      command: containerLookArgv(randomBytes(8).toString('hex')),
      signal,
    });
  } catch (error) {
    const code = error instanceof KubedumpError ? error.code : undefined;
    const { reason, blocks } = EXEC_REFUSALS[code ?? ''] ?? {
      reason: `cannot exec into ${container}`,
      blocks: ['unprivileged'],
    };
    return { checks: [{ check: shell, result: 'fail', detail: errorLine(error), reason, blocks }] };
  }
  const look = parseContainerLook(result.stdout.toString('utf8'));
  if (!look) {
    const noShell = lacksShell(result);
    const said = `${result.message ?? ''} ${result.stderr}`.trim() || `exit ${result.exitCode}`;
    return {
      checks: [
        {
          check: shell,
          result: 'fail',
          detail: noShell ? `${container} has no /bin/sh (distroless?)` : `sh failed: ${said}`,
          reason: noShell ? `${container} has no shell` : `sh failed in ${container}`,
          todo,
          blocks: ['unprivileged'],
        },
      ],
    };
  }
  return lookChecks(target, look);
}

/** The checks a look into the container answers. */
function lookChecks(target: TargetContainer, look: ContainerLook): LookChecks {
  const container = `container "${target.container}"`;
  const shell = 'shell in the container';
  const todo = 'use ephemeral or privileged mode, which need nothing in the container';
  const user = look.uid === undefined ? 'an unknown user' : `uid ${look.uid}`;
  const capture = canCapturePackets(look);
  return {
    look,
    checks: [
      { check: shell, result: 'ok', detail: '/bin/sh runs', blocks: ['unprivileged'] },
      capture === undefined
        ? {
            check: 'user and capabilities',
            result: 'skip',
            detail: '/proc/self/status is unreadable',
            blocks: ['unprivileged'],
          }
        : capture
          ? {
              check: 'user and capabilities',
              result: 'ok',
              detail: `${user} with CAP_NET_RAW`,
              blocks: ['unprivileged'],
            }
          : {
              check: 'user and capabilities',
              result: 'fail',
              detail: `${container} runs as ${user} without CAP_NET_RAW`,
              reason: `${container} runs as ${user} without CAP_NET_RAW`,
              todo: 'use ephemeral or privileged mode, which capture as root',
              blocks: ['unprivileged'],
            },
      look.uploadDir
        ? {
            check: 'upload directory',
            result: 'ok',
            detail: `${look.uploadDir} (${look.hasTar ? 'tar' : 'no tar: a plain copy'})`,
            blocks: ['unprivileged'],
          }
        : {
            check: 'upload directory',
            result: 'fail',
            detail: `no directory of ${UPLOAD_DIRS.join(' ')} is writable and allows executing files (read-only or noexec)`,
            reason: `${container} has no writable directory that allows executing files`,
            todo,
            blocks: ['unprivileged'],
          },
    ],
  };
}

function nodeCheck(
  target: TargetContainer,
  node: { os: string | undefined; arch: string | undefined } | undefined,
  look: ContainerLook | undefined,
): Check {
  const check = 'node OS and architecture';
  const arch = node?.arch ?? look?.arch;
  const where = node?.arch ? `node ${target.nodeName}` : 'the container';
  if (!arch) {
    return {
      check,
      result: 'skip',
      detail: 'the node cannot be read and the container did not say',
      blocks: [],
    };
  }
  const os = node?.os ?? 'linux';
  if (!archFromNode(arch)) {
    return {
      check,
      result: 'fail',
      detail: `${os}/${arch} (${where}): kubedump has tcpdump for amd64 and arm64 only`,
      reason: `no tcpdump for ${arch}`,
      todo: 'capture a pod on an amd64 or arm64 node',
      blocks: ['unprivileged', 'ephemeral', 'privileged'],
    };
  }
  return { check, result: 'ok', detail: `${os}/${arch} (${where})`, blocks: [] };
}

function networkCheck(target: TargetContainer): Check {
  return {
    check: 'pod network',
    result: 'ok',
    detail: target.hostNetwork
      ? `hostNetwork: the capture holds all of node ${target.nodeName ?? '?'}'s traffic`
      : 'its own network namespace',
    blocks: [],
  };
}

function runtimeCheck(target: TargetContainer): Check {
  const check = 'container runtime (privileged)';
  try {
    const what = `container ${target.container} of pod ${target.namespace}/${target.pod}`;
    const runtime = bridgeFor(parseContainerId(target.containerId, what));
    if (!target.nodeName)
      throw new KubedumpError('NO_NODE', `pod ${target.namespace}/${target.pod} has no node`);
    return {
      check,
      result: 'ok',
      detail: `${runtime.name} on node ${target.nodeName}`,
      blocks: ['privileged'],
    };
  } catch (error) {
    return failure(check, error, ['privileged']);
  }
}

async function ephemeralAdmission(
  kc: KubeConfig,
  target: TargetContainer,
  request: Request,
): Promise<Check> {
  const check = 'ephemeral container admission (dry run)';
  const name = `kubedump-${randomBytes(4).toString('hex')}`;
  try {
    const pod = { namespace: target.namespace, name: target.pod };
    const shape = await addEphemeralContainer(kc, pod, ephemeralContainer(name, target, request), {
      dryRun: true,
    });
    const api = shape === 'legacy' ? 'EphemeralContainers kind' : 'Pod subresource';
    return { check, result: 'ok', detail: `accepted (${api})`, blocks: ['ephemeral'] };
  } catch (error) {
    return failure(check, ephemeralFailure(error, target), ['ephemeral']);
  }
}

async function helperAdmission(
  kc: KubeConfig,
  target: TargetContainer,
  request: Request,
): Promise<Check> {
  const check = 'helper pod admission (dry run)';
  const pod = helperPodFor(target, request);
  const namespace = pod.metadata?.namespace as string;
  if (!target.nodeName) return { check, result: 'skip', detail: 'the pod has no node', blocks: [] };
  try {
    await createPod(kc, namespace, pod, { dryRun: true });
    return {
      check,
      result: 'ok',
      detail: `accepted in namespace ${namespace}`,
      blocks: ['privileged'],
    };
  } catch (error) {
    return failure(check, creationFailure(error, namespace), ['privileged']);
  }
}

/** A failed check from an error: its message, its hint as what to do. */
function failure(check: string, error: unknown, blocks: PlacementName[]): Check {
  const known = error instanceof KubedumpError;
  const detail = known ? error.message : errorLine(error);
  return {
    check,
    result: 'fail',
    detail,
    // The message without what was being done: "add an ephemeral container to pod x: ".
    reason: detail.replace(/^(add an ephemeral container to pod|create pod) \S+: /, ''),
    todo: known ? error.hint : undefined,
    blocks,
  };
}
