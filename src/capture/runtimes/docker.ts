import { type RuntimeBridge, validPid } from './bridge.ts';

// Docker (dockershim and cri-dockerd nodes): the docker CLI on the engine's socket.

/** `docker inspect --format '{{.State.Pid}}'`: one number; 0 means not running. */
export function parseDockerInspect(output: string): number | undefined {
  const lines = output.trim().split('\n');
  return lines.length === 1 ? validPid(lines[0]) : undefined;
}

export const dockerBridge: RuntimeBridge = {
  name: 'docker',
  owns: (ref) => ref.runtime === 'docker',
  sockets: ['/var/run/docker.sock', '/run/docker.sock'],
  tools: ['docker'],
  pidArgv: (q) => [
    q.toolPath,
    '-H',
    `unix://${q.socket}`,
    'inspect',
    '--format',
    '{{.State.Pid}}',
    q.id,
  ],
  parsePid: (output) => parseDockerInspect(output),
};
