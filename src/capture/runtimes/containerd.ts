import {
  crictlArgv,
  type PidQuery,
  parseCrictlInspect,
  type RuntimeBridge,
  validPid,
} from './bridge.ts';

// containerd (stock, k3s, RKE2, microk8s, k0s): crictl inspect, else
// `ctr task ls` in the CRI namespace k8s.io.

/** `ctr task ls`: `TASK PID STATUS` rows; the row of our ID. */
export function parseCtrTaskList(output: string, id: string): number | undefined {
  for (const line of output.split('\n')) {
    const [task, pid] = line.trim().split(/\s+/);
    if (task === id) return validPid(pid);
  }
  return undefined;
}

export const containerdBridge: RuntimeBridge = {
  name: 'containerd',
  owns: (ref) => ref.runtime === 'containerd',
  sockets: [
    '/run/containerd/containerd.sock',
    '/var/run/containerd/containerd.sock',
    '/run/k3s/containerd/containerd.sock',
    '/var/snap/microk8s/common/run/containerd.sock',
    '/run/k0s/containerd.sock',
  ],
  tools: ['crictl', 'ctr'],
  pidArgv(q: PidQuery) {
    if (q.tool === 'ctr')
      return [q.toolPath, '--address', q.socket, '--namespace', 'k8s.io', 'task', 'ls'];
    return crictlArgv(q);
  },
  parsePid(output, q) {
    return q.tool === 'ctr' ? parseCtrTaskList(output, q.id) : parseCrictlInspect(output, q.id);
  },
};
