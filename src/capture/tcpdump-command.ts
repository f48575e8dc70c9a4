import { KubedumpError } from '../errors.ts';

// The remote tcpdump command line and what its failures mean. The filter is
// always one argv element after `--`: it never passes through a shell.

export interface TcpdumpArgs {
  binary: string;
  iface: string;
  filter: string;
  snaplen: number;
}

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
// private upload directory (a crashed kubedump leaves no file behind either)
// and exits with tcpdump's status.
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
rm -f "$b"
case \${b%/*} in */.kubedump-????????????????) rm -rf "\${b%/*}" ;; esac
exit $s`;

export function tcpdumpArgv(args: TcpdumpArgs): string[] {
  const argv = [args.binary, '-i', args.iface, '-U', '--immediate-mode', '-w', '-'];
  if (args.snaplen > 0) argv.push('-s', String(args.snaplen));
  // -i any defaults to LINUX_SLL2 with libpcap 1.10, which Wireshark < 3.4
  // cannot read; LINUX_SLL is readable everywhere.
  if (args.iface === 'any') argv.push('-y', 'LINUX_SLL');
  if (args.filter.trim()) argv.push('--', args.filter);
  return argv;
}

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

/** tcpdump prefixes messages with its file name, which is ours: drop it. */
export function withoutProgramName(line: string): string {
  return line.replace(/^\S*tcpdump\S*: /, '');
}

/** Lines tcpdump prints in normal operation, which are not errors. */
export function isTcpdumpChatter(raw: string): boolean {
  const line = withoutProgramName(raw);
  return (
    /^listening on /.test(line) ||
    /^\d+ packets? (captured|received by filter|dropped by kernel)/.test(line) ||
    /^verbose output suppressed/.test(line) ||
    /^data link type /.test(line) ||
    raw.startsWith(PID_MARKER) ||
    line.trim() === ''
  );
}

/** The one-line error for a remote tcpdump that failed, from its stderr and exit code. */
export function tcpdumpFailure(
  stderr: string,
  exitCode: number | null,
  where: string,
  mode: 'unprivileged' | 'privileged',
): KubedumpError {
  const lines = stderr
    .split('\n')
    .filter((l) => !isTcpdumpChatter(l))
    .map(withoutProgramName);
  const said = lines.join(' ').trim();
  if (/permission|not permitted|EPERM|CAP_NET_RAW/i.test(said)) {
    return new KubedumpError('CAPTURE_PERMISSION', `tcpdump in ${where} may not capture: ${said}`, {
      hint:
        mode === 'unprivileged'
          ? 'the container lacks root or CAP_NET_RAW; use privileged mode (--privileged)'
          : 'the helper pod lacks privileges; check Pod Security and the helper namespace',
    });
  }
  if (
    /syntax error|illegal|can't parse filter|expression rejects|unknown (host|port|proto)/i.test(
      said,
    )
  ) {
    return new KubedumpError('BAD_FILTER', `the capture filter is not valid BPF: ${said}`, {
      hint: 'fix the filter (see man pcap-filter)',
    });
  }
  // exit 127 is the shell's "not found" (a missing command), never an interface.
  if (exitCode !== 127 && /no such device|doesn't exist|SIOCGIFHWADDR/i.test(said)) {
    return new KubedumpError('NO_SUCH_INTERFACE', `tcpdump in ${where}: ${said}`, {
      hint: 'pick an interface that exists in the pod, or "any"',
    });
  }
  switch (exitCode) {
    case 126:
      return new KubedumpError(
        'NOT_EXECUTABLE',
        `tcpdump in ${where} cannot be executed (exit 126)`,
        {
          hint: 'the upload directory is mounted noexec; use privileged mode',
        },
      );
    case 127:
      return new KubedumpError(
        'NOT_FOUND_REMOTE',
        `a command was not found in ${where} (exit 127): ${said}`,
        {
          hint: 'the container lacks /bin/sh; use privileged mode (--privileged)',
        },
      );
    case 137:
      return new KubedumpError('TCPDUMP_KILLED', `tcpdump in ${where} was killed (exit 137)`, {
        hint: 'the container may be out of memory',
      });
  }
  return new KubedumpError(
    'TCPDUMP_EXITED',
    `tcpdump in ${where} ended${exitCode === null ? '' : ` with exit code ${exitCode}`}${said ? `: ${said}` : ''}`,
  );
}
