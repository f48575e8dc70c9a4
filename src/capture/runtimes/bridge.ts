import { KubedumpError } from '../../errors.ts';

// A runtime bridge turns a container ID into the host PID of the container's
// first process, from inside the privileged helper pod. Each bridge answers
// three questions: is this ID mine, which argv asks the runtime, and what the
// answer means. The argv runs with the node's root as `/` (chroot), so the
// runtime's own client (crictl, ctr, docker) and socket are used as they are.

export interface ContainerRef {
  /** The prefix of `status.containerStatuses[].containerID`: docker, containerd, cri-o. */
  runtime: string;
  /** The ID without its prefix. */
  id: string;
}

export interface PidQuery {
  /** The client found on the node, e.g. `crictl`. */
  tool: string;
  /** Its path on the node. */
  toolPath: string;
  /** The runtime socket on the node. */
  socket: string;
  id: string;
}

export interface RuntimeBridge {
  name: string;
  /** Is this container mine? */
  owns(ref: ContainerRef): boolean;
  /** Where this runtime's socket lives on stock installs, best first. */
  sockets: readonly string[];
  /** Clients that can ask it, best first. */
  tools: readonly string[];
  /** The argv (run on the node's root) that prints the PID. */
  pidArgv(query: PidQuery): string[];
  /** The PID in the answer, or undefined when the answer does not name the container. */
  parsePid(output: string, query: Pick<PidQuery, 'tool' | 'id'>): number | undefined;
}

const ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{5,127}$/;

/** What a runtime may call a container: safe as one argv word, never an option. */
export function isContainerId(id: string): boolean {
  return ID.test(id);
}

/** Splits `containerd://<hex>`; anything not `<runtime>://<id>` is a clear error. */
export function parseContainerId(containerId: string | undefined, what: string): ContainerRef {
  const match = /^([a-z0-9-]+):\/\/(.+)$/.exec(containerId ?? '');
  if (!match || !ID.test(match[2] as string)) {
    throw new KubedumpError(
      'NO_CONTAINER_ID',
      `${what} reports no usable container ID (${JSON.stringify(containerId ?? '')})`,
      { hint: 'wait until the container runs, then try again' },
    );
  }
  return { runtime: match[1] as string, id: match[2] as string };
}

/** A PID is a positive integer and never the node's init. */
export function validPid(text: string | number | undefined): number | undefined {
  const n = typeof text === 'number' ? text : Number(String(text ?? '').trim());
  return Number.isSafeInteger(n) && n > 1 ? n : undefined;
}

/** `crictl inspect` (containerd and cri-o): `.info.pid`, checked against the ID. */
export function parseCrictlInspect(output: string, id: string): number | undefined {
  let json: { status?: { id?: string }; info?: { pid?: number } };
  try {
    json = JSON.parse(output);
  } catch {
    return undefined;
  }
  const seen = json.status?.id;
  if (seen && !seen.startsWith(id) && !id.startsWith(seen)) return undefined;
  return validPid(json.info?.pid);
}

export function crictlArgv(q: PidQuery): string[] {
  return [
    q.toolPath,
    '--runtime-endpoint',
    `unix://${q.socket}`,
    'inspect',
    '--output',
    'json',
    q.id,
  ];
}
