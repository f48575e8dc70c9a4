import { KubedumpError } from '../../errors.ts';
import { HOST_NETNS_SH } from './cgroup-scan.ts';

// Whatever found the PID (the runtime's client or the cgroup scan), the
// capture enters that PID's network namespace only if it is not the node's,
// unless the pod uses the node's network: a capture labelled as a pod must
// never hold the node's traffic. The check runs on the node right before
// nsenter, in the same process: `exec` keeps the PID the outer wrapper
// reported, by which tcpdump is later killed.

/** The line on stderr that says the guard refused. */
export const HOST_NETNS_MARKER = 'kubedump-host-netns';
/** The guard's exit code when it refuses (not one tcpdump or a shell uses). */
export const HOST_NETNS_EXIT = 90;

/** $1 the PID, $2 `host-ok` when the pod uses the node's network, then the command. */
export const NETNS_GUARD = `p=$1; allow=$2; shift 2; root=/proc
if [ "$allow" != host-ok ]; then
${HOST_NETNS_SH}
  n=$(readlink "$root/$p/ns/net" 2>/dev/null)
  if [ -z "$h" ] || [ -z "$n" ] || [ "$n" = "$h" ]; then
    echo "${HOST_NETNS_MARKER} $p \${n:-unreadable} \${h:-unreadable}" >&2
    exit ${HOST_NETNS_EXIT}
  fi
fi
exec nsenter -t "$p" -n -- "$@"`;

/** The argv prefix that runs a command in the network namespace of `pid`. */
export function netnsGuardPrefix(pid: number, options: { hostNetwork: boolean }): string[] {
  if (!Number.isSafeInteger(pid) || pid <= 1) throw new Error(`not a target PID: ${pid}`);
  return ['sh', '-c', NETNS_GUARD, 'sh', String(pid), options.hostNetwork ? 'host-ok' : 'pod'];
}

/** The one-line error for a capture the guard refused, or undefined when it did not. */
export function hostNetnsRefusal(stderr: string, where: string): KubedumpError | undefined {
  const line = stderr
    .split('\n')
    .map((l) => l.trim())
    .find((l) => l.startsWith(`${HOST_NETNS_MARKER} `));
  if (!line) return undefined;
  const [, pid, netns, host] = line.split(' ');
  const unreadable = netns === 'unreadable' || host === 'unreadable';
  return new KubedumpError(
    'HOST_NETNS',
    unreadable
      ? `refused to capture in ${where}: the network namespace of PID ${pid} cannot be compared with the node's`
      : `refused to capture in ${where}: PID ${pid} is in the node's network namespace, so the capture would hold the node's traffic, not the pod's`,
    {
      hint: unreadable
        ? 'the helper cannot read /proc/PID/ns/net on this node; capture unprivileged instead'
        : 'the runtime named a process outside the pod; try --pid-lookup cgroup, or capture unprivileged',
    },
  );
}
