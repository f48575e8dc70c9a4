import { validPid } from './bridge.ts';

// The fallback that needs nothing on the node but hostPID: every runtime
// names its containers' cgroups after the container ID (/docker/<id>,
// /kubepods/.../<id>, cri-containerd-<id>.scope, crio-<id>.scope), so the
// processes whose /proc/PID/cgroup holds the ID are the container's. The
// script is constant; the ID is "$1".

export const CGROUP_SCAN = 'grep -l -F -e "$1" /proc/[0-9]*/cgroup 2>/dev/null; exit 0';

export function cgroupScanArgv(id: string): string[] {
  return ['sh', '-c', CGROUP_SCAN, 'sh', id];
}

/** grep -l prints `/proc/PID/cgroup` per match: the lowest PID is the container's first process. */
export function parseCgroupScan(output: string): number | undefined {
  const pids = output
    .split('\n')
    .map((line) => /^\/proc\/(\d+)\/cgroup$/.exec(line.trim())?.[1])
    .map((pid) => validPid(pid))
    .filter((pid): pid is number => pid !== undefined);
  return pids.length ? Math.min(...pids) : undefined;
}
