import { KubedumpError } from '../../errors.ts';
import { isContainerId, validPid } from './bridge.ts';

// The fallback that needs nothing on the node but hostPID: every runtime
// names the container's cgroup after its ID, so a process whose cgroup path
// ENDS in that name is the container's. A substring match is not enough:
// CRI-O's conmon (crio-conmon-<id>) starts first and runs in the node's
// network namespace, and nested containers (docker-in-docker, buildkit) sit in
// cgroups below the target's. And a capture labelled as a pod must never hold
// the node's traffic, so a PID in the node's network namespace is refused
// unless the pod uses the node's network.

/**
 * Sets `h` to the node's network namespace as the helper sees it: PID 1's.
 * Some sandboxes hide PID 1's links even from root; kthreadd (PID 2 whose
 * parent is 0, only visible in the node's own PID namespace) always lives in
 * the first network namespace, which is PID 1's there.
 */
export const HOST_NETNS_SH = `h=$(readlink "$root/1/ns/net" 2>/dev/null)
if [ -z "$h" ]; then
  s=; { read -r s < "$root/2/stat"; } 2>/dev/null
  case $s in "2 (kthreadd) "?" 0 "*) h=$(readlink "$root/2/ns/net" 2>/dev/null) ;; esac
fi`;

/**
 * $1 the container ID, $2 the proc root, $3 `host-ok` when the pod uses the
 * node's network. One line per process whose cgroup file holds the ID:
 * `accept PID`, or `refuse PID WHY [CGROUP]`.
 */
export const CGROUP_SCAN = `id=$1; root=\${2:-/proc}; allow=$3
${HOST_NETNS_SH}
grep -l -F -e "$id" "$root"/[0-9]*/cgroup 2>/dev/null | while IFS= read -r f; do
  p=\${f%/cgroup}; p=\${p##*/}
  own=; other=
  { while IFS= read -r l || [ -n "$l" ]; do
    case $l in *"$id"*) ;; *) continue ;; esac
    s=\${l##*/}
    case $s in
      "$id"|"cri-containerd-$id.scope"|"crio-$id.scope"|"crio-$id"|"docker-$id.scope"|"libpod-$id.scope") own=1 ;;
      *) other=\${other:-$s} ;;
    esac
  done < "$f"; } 2>/dev/null
  if [ -n "$other" ]; then echo "refuse $p cgroup $other"; continue; fi
  if [ -z "$own" ]; then echo "refuse $p gone"; continue; fi
  n=$(readlink "$root/$p/ns/net" 2>/dev/null)
  if [ -z "$n" ]; then echo "refuse $p gone"; continue; fi
  if [ "$allow" != host-ok ]; then
    if [ -z "$h" ]; then echo "refuse $p host-unknown"; continue; fi
    if [ "$n" = "$h" ]; then echo "refuse $p host-netns"; continue; fi
  fi
  echo "accept $p"
done
exit 0`;

export interface CgroupScanOptions {
  /** The pod uses the node's network namespace (hostNetwork: true). */
  hostNetwork: boolean;
  /** Where the node's /proc is; a test points it at a fixture tree. */
  procRoot?: string;
}

export function cgroupScanArgv(id: string, options: CgroupScanOptions): string[] {
  // The ID reaches grep and case patterns as one quoted word, but it is still
  // only ever a container ID.
  if (!isContainerId(id)) {
    throw new KubedumpError('NO_CONTAINER_ID', `not a container ID: ${JSON.stringify(id)}`);
  }
  return [
    'sh',
    '-c',
    CGROUP_SCAN,
    'sh',
    id,
    options.procRoot ?? '/proc',
    options.hostNetwork ? 'host-ok' : 'pod',
  ];
}

export type CgroupScanResult =
  /** The container's first process; `refused` says which others carried the ID. */
  | { pid: number; refused: string[] }
  /** No usable process: one clause saying why. */
  | { pid: undefined; reason: string };

/** The lowest accepted PID, or why every process that carries the ID was refused. */
export function parseCgroupScan(output: string, id: string): CgroupScanResult {
  const accepted: number[] = [];
  const refused: string[] = [];
  const short = (text: string) => text.split(id).join(`${id.slice(0, 12)}…`);
  for (const line of output.split('\n')) {
    const [verdict, pidText, why, cgroup] = line.trim().split(' ');
    const pid = validPid(pidText);
    if (pid === undefined) continue;
    if (verdict === 'accept') accepted.push(pid);
    if (verdict !== 'refuse') continue;
    if (why === 'host-netns') refused.push(`PID ${pid} is in the node's network namespace`);
    else if (why === 'host-unknown')
      refused.push(
        `PID ${pid} cannot be told apart from the node (its network namespace is unreadable)`,
      );
    else if (why === 'cgroup' && cgroup?.includes(id))
      refused.push(`PID ${pid} is in cgroup ${short(cgroup)}, not the container's own`);
    else if (why === 'cgroup')
      refused.push(`PID ${pid} is in a cgroup below the container's (a nested container)`);
    else refused.push(`PID ${pid} ended during the scan`);
  }
  if (accepted.length) return { pid: Math.min(...accepted), refused };
  if (!refused.length) {
    return { pid: undefined, reason: 'no process on the node has the container ID in its cgroup' };
  }
  if (refused.length === 1) {
    const only = (refused[0] as string).replace(/^PID (\d+) is/, 'PID $1 carries the ID and it is');
    return { pid: undefined, reason: `only ${only}` };
  }
  const listed = refused.slice(0, 4).join('; ') + (refused.length > 4 ? '; …' : '');
  return {
    pid: undefined,
    reason: `${refused.length} processes carry the container ID, none is the container: ${listed}`,
  };
}
