import { KubedumpError } from '../errors.ts';
import { tcpdumpManifest } from '../tcpdump/index.ts';
import { isContainerId, validPid } from './runtimes/bridge.ts';

// Every shell script kubedump runs in a container or on a node: constant
// text (everything variable is "$1"...), each with the argv that runs it and a
// typed reading of its reply. They need nothing but a POSIX sh (dash, busybox
// ash, bash); the unit tests remote-scripts and cgroup-scan run them under
// dash and busybox.

// Sets $u (the user id) and $c (the effective capabilities, hex), "-" when
// /proc/self/status cannot be read: the probe and the container look both say them.
const READ_USER = `u=-; c=-
while read -r k v; do case $k in Uid:) u=\${v%%[!0-9]*} ;; CapEff:) c=$v ;; esac; done </proc/self/status 2>/dev/null`;

// After READ_USER: sets $able to "no" when a process the container starts
// cannot capture, as canCapturePackets says: bit 13 (CAP_NET_RAW) of $c is
// the low bit but one of its fourth hex digit from the right; with $c
// unreadable, any user but 0.
const CAN_CAPTURE = `able=yes
case $c in
  -) case $u in -|0) ;; *) able=no ;; esac ;;
  *) d4=\${c%???}; case \${d4#"\${d4%?}"} in [2367abefABEF]) ;; *) able=no ;; esac ;;
esac`;

// -------- Upload: the probe that makes the run's private directory, and the extract.

export const UPLOAD_DIRS = ['/tmp', '/var/tmp', '/dev/shm', '/run', '/home', '/'];

/** The private directory of one run; `.kubedump-keep-UID` when the binary is kept. */
export const PRIVATE_DIR_PREFIX = '.kubedump-';

// $1 tag (random), $2 keep (yes/no), $3..$6 name and sha256 for amd64, arm64,
// $7 how many candidate directories follow; they are shifted off, whatever
// comes after them is left in "$@". Sets $state (present, absent or
// nowhere), $p (the private directory, "-" when nowhere), $name (the binary's
// name for this architecture), $arch, $tar, $u and $c.
// A kept directory is trusted only when it is ours, not a link, and 0700.
const PROBE_FIND = `tag=$1; keep=$2; n64=$3; s64=$4; na=$5; sa=$6; nd=$7; shift 7
${READ_USER}
arch=$(uname -m 2>/dev/null)
case $arch in x86_64|amd64) name=$n64; sum=$s64 ;; aarch64|arm64) name=$na; sum=$sa ;; *) name=; sum= ;; esac
if command -v tar >/dev/null 2>&1; then tar=yes; else tar=no; fi
state=nowhere; p=-
while [ "$nd" -gt 0 ]; do
  d=$1; shift; nd=$((nd-1))
  [ "$state" = nowhere ] && [ -d "$d" ] && [ -w "$d" ] || continue
  q=; b=\${d%/}
  if [ "$keep" = yes ] && u=$(id -u 2>/dev/null); then
    k="$b/.kubedump-keep-$u"
    if mkdir -m 700 "$k" 2>/dev/null; then q=$k
    elif [ -d "$k" ] && [ ! -h "$k" ] && [ -O "$k" ]; then
      m=$(ls -ld "$k" 2>/dev/null); case $m in drwx------*) q=$k ;; esac
    fi
    if [ -n "$q" ] && [ -n "$name" ] && [ -f "$q/$name" ] && command -v sha256sum >/dev/null 2>&1; then
      s=$(sha256sum "$q/$name" 2>/dev/null); s=\${s%% *}
      if [ "$s" = "$sum" ]; then state=present; p=$q; continue; fi
    fi
  fi
  if [ -z "$q" ]; then q="$b/.kubedump-$tag"; mkdir -m 700 "$q" 2>/dev/null || continue; fi
  if printf '#!/bin/sh\\nexit 0\\n' >"$q/probe" 2>/dev/null && chmod 700 "$q/probe" 2>/dev/null && "$q/probe" 2>/dev/null; then
    rm -f "$q/probe"; state=absent; p=$q; continue
  fi
  rm -rf "$q" 2>/dev/null
done`;

// The reply ends with the user and effective capabilities, as the container
// look's does: auto's preflight reads them from here when the probe runs.
const PROBE = `${PROBE_FIND}
echo "$state $p $arch $tar $u $c"`;

/** An upload whose payload stops growing this long removes itself. */
export const UPLOAD_STALL_S = 10;

// Reads $n bytes of fd 3 into the private directory $d: a tar archive ($t
// yes) or the file $f itself. head stops after the payload's size, so the
// command ends and reports its exit status even over exec v4, where stdin
// cannot be closed. If the payload stops growing for 10 s (kubedump was
// killed or cut off mid-upload: the exec's stdin then stays open forever),
// the upload removes itself and its directory. The stall watch removes the
// directory before it kills head: the upload's own exit then kills the watch.
const RECEIVE = `f=$d/.upload
head -c "$n" <&3 >"$f" 3<&- & h=$!
( last=; m=0
  while sleep 2 && kill -0 $h 2>/dev/null; do
    s=$(wc -c <"$f" 2>/dev/null)
    if [ "$s" != "$last" ]; then last=$s; m=0; else m=$((m+2)); fi
    if [ $m -ge ${UPLOAD_STALL_S} ]; then rm -rf "$d"; kill $h; break; fi
  done ) </dev/null >/dev/null 2>&1 3<&- &
k=$!
wait $h; s=$?; kill $k 2>/dev/null
[ $s -eq 0 ] && [ "$(wc -c <"$f")" -eq "$n" ] || { rm -f "$f"; exit 1; }
if [ "$t" = yes ]; then tar -xf "$f" -C "$d" && rm -f "$f"
else chmod 700 "$f" && mv -f "$f" "$d/$b"; fi || exit 1`;

// $1 size, $2 the private directory, $3 the file's name, $4 tar (yes/no).
// A run's upload whose capture has not started (no heartbeat file) 30 s later
// removes itself too. That last watch is a process of its own that ends as
// soon as the capture starts.
const EXTRACT = `EXPIRE='i=0; while [ $i -lt 30 ]; do sleep 1; [ -d "$1" ] || exit 0
  for h in "$1"/heartbeat-*; do [ -e "$h" ] && exit 0; done; i=$((i+1)); done; rm -rf "$1"'
n=$1; d=$2; b=$3; t=$4
exec 3<&0
${RECEIVE}
exec 3<&-
case $d in */.kubedump-????????????????)
  sh -c "$EXPIRE" sh "$d" </dev/null >/dev/null 2>&1 &
esac`;

export interface ProbeResult {
  state: 'present' | 'absent' | 'nowhere';
  /** The private directory (created by the probe unless `nowhere`). */
  dir: string;
  arch: string;
  hasTar: boolean;
  /** The container's user and effective capabilities, undefined when unreadable. */
  uid: number | undefined;
  capEff: bigint | undefined;
}

export function parseProbe(output: string): ProbeResult | undefined {
  const match =
    /^(present|absent|nowhere) (\S+) (\S*) (yes|no) (\d+|-) ([0-9a-fA-F]{1,16}|-)$/m.exec(output);
  if (!match) return undefined;
  const dir = match[2] as string;
  // Only a directory the probe made may be written to, executed from, removed.
  if (match[1] !== 'nowhere' && !isPrivateDir(dir)) return undefined;
  return {
    state: match[1] as ProbeResult['state'],
    dir,
    arch: match[3] as string,
    hasTar: match[4] === 'yes',
    uid: match[5] === '-' ? undefined : Number(match[5]),
    capEff: match[6] === '-' ? undefined : BigInt(`0x${match[6]}`),
  };
}

/** What a probe that made its directory says of the container, as the container look says it. */
export function lookOfProbe(probe: ProbeResult): ContainerLook {
  const parent = probe.dir.slice(0, probe.dir.lastIndexOf('/')) || '/';
  return {
    uid: probe.uid,
    capEff: probe.capEff,
    arch: probe.arch || undefined,
    hasTar: probe.hasTar,
    uploadDir: probe.state === 'nowhere' ? undefined : parent,
  };
}

/** `<one of UPLOAD_DIRS>/.kubedump-<tag or keep-UID>`, nothing else. */
export function isPrivateDir(dir: string): boolean {
  const slash = dir.lastIndexOf('/');
  const parent = dir.slice(0, slash) || '/';
  const base = dir.slice(slash + 1);
  return (
    UPLOAD_DIRS.includes(parent) &&
    /^\.kubedump-(keep-\d{1,10}|[0-9a-f]{16})$/.test(base) &&
    !dir.startsWith('//')
  );
}

export function probeArgv(tag: string, keep: boolean): string[] {
  return ['sh', '-c', PROBE, 'sh', ...probeArgs(tag, keep)];
}

function probeArgs(tag: string, keep: boolean): string[] {
  const { binaries } = tcpdumpManifest();
  return [
    tag,
    keep ? 'yes' : 'no',
    binaryName(binaries.amd64.sha256),
    binaries.amd64.sha256,
    binaryName(binaries.arm64.sha256),
    binaries.arm64.sha256,
    String(UPLOAD_DIRS.length),
    ...UPLOAD_DIRS,
  ];
}

export function extractArgv(size: number, dir: string, name: string, tar: boolean): string[] {
  return ['sh', '-c', EXTRACT, 'sh', String(size), dir, name, tar ? 'yes' : 'no'];
}

// -------- The preflight's look into a container: can tcpdump run in it as it is?

// $1 tag (random), then the candidate directories. One line: its user, its
// effective capabilities (what a process it starts keeps), its architecture,
// whether tar exists, and the first directory where a private directory can
// be made and a file executed there (removed at once), or "-".
const CONTAINER_LOOK = `tag=$1; shift
${READ_USER}
arch=$(uname -m 2>/dev/null); arch=\${arch:--}
if command -v tar >/dev/null 2>&1; then tar=yes; else tar=no; fi
w=-
for d in "$@"; do
  [ -d "$d" ] && [ -w "$d" ] || continue
  p="\${d%/}/.kubedump-$tag"; mkdir -m 700 "$p" 2>/dev/null || continue
  if printf '#!/bin/sh\\nexit 0\\n' >"$p/probe" 2>/dev/null && chmod 700 "$p/probe" 2>/dev/null && "$p/probe" 2>/dev/null; then w=$d; fi
  rm -rf "$p" 2>/dev/null
  [ "$w" = - ] || break
done
echo "look $u $c $arch $tar $w"`;

export function containerLookArgv(tag: string): string[] {
  return ['sh', '-c', CONTAINER_LOOK, 'sh', tag, ...UPLOAD_DIRS];
}

export interface ContainerLook {
  /** undefined when /proc/self/status could not be read. */
  uid: number | undefined;
  /** The effective capability set, as /proc/self/status prints it (hex). */
  capEff: bigint | undefined;
  arch: string | undefined;
  hasTar: boolean;
  /** Where an upload could go, or undefined when nowhere. */
  uploadDir: string | undefined;
}

/** CAP_NET_RAW, the capability packet capture needs. */
export const CAP_NET_RAW = 13n;

export function parseContainerLook(output: string): ContainerLook | undefined {
  const m = /^look (\d+|-) ([0-9a-fA-F]{1,16}|-) (\S+) (yes|no) (\S+)$/m.exec(output);
  if (!m) return undefined;
  const dir = m[5] as string;
  return {
    uid: m[1] === '-' ? undefined : Number(m[1]),
    capEff: m[2] === '-' ? undefined : BigInt(`0x${m[2]}`),
    arch: m[3] === '-' ? undefined : m[3],
    hasTar: m[4] === 'yes',
    uploadDir: UPLOAD_DIRS.includes(dir) ? dir : undefined,
  };
}

/** May a process the container starts capture packets? undefined when unknown. */
export function canCapturePackets(look: ContainerLook): boolean | undefined {
  if (look.capEff === undefined) return look.uid === undefined ? undefined : look.uid === 0;
  return ((look.capEff >> CAP_NET_RAW) & 1n) === 1n;
}

/** The uploaded file's name carries its hash, so versions never collide. */
export function binaryName(sha256: string): string {
  return `kubedump-tcpdump-${sha256.slice(0, 12)}`;
}

// -------- The watchdog wrapper around the remote tcpdump.

/** Marks the line on stderr that carries the remote PID. */
export const PID_MARKER = 'kubedump-pid';

/** kubedump writes a line on the remote stdin this often while it lives. */
export const KEEPALIVE_MS = 2000;
/** The line that asks the remote watchdog to stop tcpdump now. */
export const STOP_LINE = 'stop\n';
/** Without a keepalive line for this long, the watchdog stops tcpdump. */
export const WATCHDOG_TIMEOUT_S = 10;

// The wrapper starts tcpdump, reports its PID, and stays to watch over it.
// The script text is constant; everything variable is "$@". The watchdog
// stops tcpdump when kubedump asks ("stop"), when the exec's stdin ends, or
// when keepalive lines stop for 10 s (kubedump was killed, or the network
// dropped silently): closing an exec stream alone never stops a process. It
// needs nothing but a POSIX sh (dash has no `read -t`): a reader counts the
// lines into a heartbeat file ($1), a checker looks at that file every 2 s.
// They kill only a process that is still our tcpdump (PIDs get reused). When
// tcpdump ends, for any reason, the wrapper ends both, removes the run's
// private upload directory (a crashed kubedump leaves no file behind either),
// or writes "end" into a helper's heartbeat so that the helper ends too, and
// exits with tcpdump's status.
const PID_WRAPPER = `b=$1; shift
exec 3<&0
"$@" </dev/null 3<&- &
t=$!
echo "${PID_MARKER} $t" >&2
ours() { c=; read -r c </proc/$t/comm 2>/dev/null; case $c in kubedump-tcpd*) return 0 ;; esac; return 1; }
k=
if echo 0 >"$b" 2>/dev/null; then
  ( last=0; m=0
    while sleep 2 && ours; do
      v=; read -r v <"$b"
      if [ "$v" != "$last" ]; then last=$v; m=0; else m=$((m+2)); fi
      if [ $m -ge ${WATCHDOG_TIMEOUT_S} ]; then kill $t; break; fi
    done ) </dev/null >/dev/null 2>&1 3<&- &
  k=$!
fi
( while read -r l <&3; do [ "$l" = stop ] && break; n=$((n+1)); echo "$n" >"$b"; done
  ours && kill $t ) </dev/null >/dev/null 2>&1 &
r=$!
exec 3<&-
wait $t; s=$?
kill $r $k 2>/dev/null
case \${b%/*} in
  */.kubedump-????????????????) rm -rf "\${b%/*}" ;;
  */.kubedump-keep-*) rm -f "$b" ;;
  *) echo end >"$b" ;;
esac
exit $s`;

// -------- Probe, upload and run in one exec.

/** Marks the line on stderr that carries the probe's answer. */
export const PROBE_MARKER = 'kubedump-probe';
/** Stands for the tcpdump binary's path in the command, which only the container knows. */
export const BINARY_TOKEN = '{tcpdump}';
/** Without an answer to the probe this long, the container gives up and removes its directory. */
export const ANSWER_WAIT_S = 60;

// The probe, then the answer on stdin, then tcpdump under the watchdog, all
// in one exec: a capture's start costs one exec instead of three. After the
// probe's arguments and directories: $1 the heartbeat's name in the private
// directory, $2 "yes" to run a kept copy the probe finds without waiting for
// the answer when the container can capture (as runsKeptAtOnce says), then
// the command, in which ${BINARY_TOKEN} stands for tcpdump. The
// probe's answer goes to stderr (stdout is the pcap stream). The answer is
// one line: "run NAME" (the kept copy the probe found), "put SIZE NAME" and
// the payload (a tar archive when the probe found tar, else the file), or
// anything else (the capture went another way): the directory is removed.
// A kubedump that never answers (killed, or cut off silently) is given up on
// after ${ANSWER_WAIT_S} s.
const INSTALL_AND_RUN = `${PROBE_FIND}
echo "${PROBE_MARKER} $state $p $arch $tar $u $c" >&2
[ "$state" = nowhere ] && exit 0
hb=$1; now=$2; shift 2
exec 3<&0
go=; n=; b=
${CAN_CAPTURE}
if [ "$now" = yes ] && [ "$state" = present ] && [ "$able" = yes ]; then go=run; b=$name
else
  ( i=0; while [ $i -lt ${ANSWER_WAIT_S} ]; do sleep 1; i=$((i+1)); done
    case $p in */.kubedump-????????????????) rm -rf "$p" ;; esac
    kill $$ ) </dev/null >/dev/null 2>&1 3<&- &
  w=$!
  read -r go n b <&3
  kill $w 2>/dev/null
fi
case $b in kubedump-tcpdump-*/*|'') go=quit ;; kubedump-tcpdump-*) ;; *) go=quit ;; esac
case $go in
  run) [ "$state" = present ] && [ "$b" = "$name" ] || go=quit ;;
  put) case $n in ''|*[!0-9]*) go=quit ;; esac ;;
  *) go=quit ;;
esac
if [ "$go" = quit ]; then
  case $p in */.kubedump-????????????????) rm -rf "$p" ;; esac
  exit 0
fi
if [ "$go" = put ]; then
d=$p; t=$tar
${RECEIVE}
fi
x="$p/$b"
for a do shift; if [ "$a" = "${BINARY_TOKEN}" ]; then set -- "$@" "$x"; else set -- "$@" "$a"; fi; done
set -- "$p/$hb" "$@"
${PID_WRAPPER}`;

/**
 * The one exec that probes, takes an upload if asked, and runs `argv` (in
 * which BINARY_TOKEN stands for tcpdump) under the watchdog, with the
 * heartbeat `heartbeat` in the private directory. With `runKeptAtOnce`, a
 * kept copy the probe finds runs at once when the container can capture
 * (runsKeptAtOnce): no answer is awaited.
 */
export function installAndRunArgv(
  tag: string,
  keep: boolean,
  heartbeat: string,
  argv: readonly string[],
  options: { runKeptAtOnce?: boolean } = {},
): string[] {
  const now = options.runKeptAtOnce ? 'yes' : 'no';
  return ['sh', '-c', INSTALL_AND_RUN, 'sh', ...probeArgs(tag, keep), heartbeat, now, ...argv];
}

/**
 * Whether a one-exec start asked to run a kept copy at once did so, without
 * waiting for an answer: the copy is there and the container is not known to
 * lack what capturing needs (the script's CAN_CAPTURE).
 */
export function runsKeptAtOnce(probe: ProbeResult): boolean {
  return probe.state === 'present' && canCapturePackets(lookOfProbe(probe)) !== false;
}

/** The probe's answer in the one-exec start: its stderr line, or undefined. */
export function parseProbeLine(line: string): ProbeResult | undefined {
  return line.startsWith(`${PROBE_MARKER} `)
    ? parseProbe(line.slice(PROBE_MARKER.length + 1))
    : undefined;
}

/** The answer that runs the kept copy the probe found. */
export function runAnswer(name: string): string {
  return `run - ${name}\n`;
}

/** The answer that announces an upload of `size` bytes, which follow it. */
export function putAnswer(size: number, name: string): string {
  return `put ${size} ${name}\n`;
}

/** The answer that ends the exec and removes its directory. */
export const QUIT_ANSWER = 'quit\n';

/**
 * Wraps a command so that it reports its PID on stderr before it starts, and
 * ends when kubedump goes away; `heartbeat` is a file path the wrapper may write.
 */
export function withWatchdog(argv: readonly string[], heartbeat: string): string[] {
  return ['sh', '-c', PID_WRAPPER, 'sh', heartbeat, ...argv];
}

export function parsePidLine(line: string): number | undefined {
  const match = new RegExp(`^${PID_MARKER} (\\d+)$`).exec(line.trim());
  return match ? Number(match[1]) : undefined;
}

// -------- Killing the remote tcpdump by PID.

// Kill politely, then by force, and confirm; only a process that is still our
// tcpdump (PIDs get reused). The script is constant text.
const KILL = `c=; read -r c </proc/"$1"/comm 2>/dev/null; case $c in kubedump-tcpd*) ;; *) exit 0 ;; esac
kill "$1" 2>/dev/null || exit 0
i=0; while kill -0 "$1" 2>/dev/null && [ $i -lt 10 ]; do sleep 0.1; i=$((i+1)); done
kill -9 "$1" 2>/dev/null; exit 0`;

/** Kills `pid` if it is still our tcpdump. */
export function killArgv(pid: number): string[] {
  return ['sh', '-c', KILL, 'sh', String(pid)];
}

// -------- The survey of runtime sockets and clients on the node.

// Lists which of the candidate sockets and clients exist on the node. The
// script is constant; sockets come before "--", client names after it.
const SURVEY = `root=$1; shift; part=s
for a in "$@"; do
  if [ "$a" = "--" ]; then part=t; continue; fi
  if [ $part = s ]; then
    [ -S "$root$a" ] && echo "socket $a"
  else
    for d in /usr/local/sbin /usr/local/bin /usr/sbin /usr/bin /sbin /bin /opt/bin; do
      if [ -x "$root$d/$a" ]; then echo "tool $a $d/$a"; break; fi
    done
  fi
done; exit 0`;

/** Which of `sockets` and `tools` exist under the node's root. */
export function surveyArgv(
  root: string,
  sockets: readonly string[],
  tools: readonly string[],
): string[] {
  return ['sh', '-c', SURVEY, 'sh', root, ...sockets, '--', ...tools];
}

export function parseSurvey(output: string): { sockets: string[]; tools: Map<string, string> } {
  const sockets: string[] = [];
  const tools = new Map<string, string>();
  for (const line of output.split('\n')) {
    const [kind, a, b] = line.trim().split(' ');
    if (kind === 'socket' && a) sockets.push(a);
    if (kind === 'tool' && a && b && !tools.has(a)) tools.set(a, b);
  }
  return { sockets, tools };
}

// -------- The helper pod's main process.

// The helper's main process. Constant text; $1 is the heartbeat file, $2 the
// idle limit in seconds. It ends when the heartbeat stops changing for that
// long, or at its next look once the capture's wrapper wrote "end" there.
export const HELPER_MAIN = `b=$1; last=; m=0
while [ $m -lt "$2" ]; do
  sleep 5; v=; read -r v <"$b" 2>/dev/null
  [ "$v" = end ] && exit 0
  if [ "$v" != "$last" ]; then last=$v; m=0; else m=$((m+5)); fi
done`;

export function helperMainArgv(heartbeat: string, idleSeconds: number): string[] {
  return ['sh', '-c', HELPER_MAIN, 'sh', heartbeat, String(idleSeconds)];
}

/** Writes "end" into a helper's heartbeat, as the wrapper does: its main process ends at its next look. */
export function endHelperArgv(heartbeat: string): string[] {
  return ['sh', '-c', 'echo end >"$1"', 'sh', heartbeat];
}

// -------- The cgroup scan: the target's PID without the runtime's client.

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
 * `accept PID [STARTTIME]`, or `refuse PID WHY [CGROUP]`.
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
  # Its start time (clock ticks since boot; field 22 of stat, after the
  # command's name): the container's first process started first, whatever
  # its PID (PIDs wrap around; an exec'd process may have a lower one).
  st=; { read -r l < "$root/$p/stat"; } 2>/dev/null && { set -- \${l##*) }; shift 19; st=$1; }
  echo "accept $p\${st:+ $st}"
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

/**
 * The accepted process that started first (the container's own first process;
 * the lowest PID when start times are unknown), or why every process that
 * carries the ID was refused.
 */
export function parseCgroupScan(output: string, id: string): CgroupScanResult {
  const accepted: { pid: number; start: number }[] = [];
  const refused: string[] = [];
  const short = (text: string) => text.split(id).join(`${id.slice(0, 12)}…`);
  for (const line of output.split('\n')) {
    const [verdict, pidText, why, cgroup] = line.trim().split(' ');
    const pid = validPid(pidText);
    if (pid === undefined) continue;
    if (verdict === 'accept') {
      const start = /^\d{1,15}$/.test(why ?? '') ? Number(why) : Number.POSITIVE_INFINITY;
      accepted.push({ pid, start });
    }
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
  if (accepted.length) {
    const first = accepted.reduce((a, b) =>
      b.start < a.start || (b.start === a.start && b.pid < a.pid) ? b : a,
    );
    return { pid: first.pid, refused };
  }
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

// -------- The netns guard before nsenter.

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
