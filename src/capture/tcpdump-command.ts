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
/** The line that tells the remote watchdog to leave tcpdump alone. */
export const KEEPALIVE_BYE = 'bye\n';
const KEEPALIVE_TIMEOUT_S = 10;

// `exec "$@"` keeps the PID of this shell for tcpdump, so the echoed PID is
// the one to kill. The script text is constant; everything variable is "$@".
// A watchdog reads the keepalive lines on stdin: when they stop for 10 s
// (kubedump was killed, or lost the API server), it kills tcpdump, because
// closing an exec stream does not. It kills only a process that is still our
// tcpdump (PIDs get reused). Shells without `read -t` get no watchdog.
const PID_WRAPPER = `echo "${PID_MARKER} $$" >&2
p=$$
if (read -t 1 l </dev/null) 2>/dev/null; [ $? -eq 1 ]; then
  exec 3<&0
  ( while read -t ${KEEPALIVE_TIMEOUT_S} l <&3; do [ "$l" = bye ] && exit 0; done
    read -r c </proc/$p/comm; case $c in kubedump-tcpd*) kill $p ;; esac ) <&3 >/dev/null 2>&1 &
fi
exec "$@" </dev/null 3<&-`;

export function tcpdumpArgv(args: TcpdumpArgs): string[] {
  const argv = [args.binary, '-i', args.iface, '-U', '--immediate-mode', '-w', '-'];
  if (args.snaplen > 0) argv.push('-s', String(args.snaplen));
  // -i any defaults to LINUX_SLL2 with libpcap 1.10, which Wireshark < 3.4
  // cannot read; LINUX_SLL is readable everywhere.
  if (args.iface === 'any') argv.push('-y', 'LINUX_SLL');
  if (args.filter.trim()) argv.push('--', args.filter);
  return argv;
}

/** Wraps a command so that it reports its PID on stderr before it starts. */
export function withPidReport(argv: readonly string[]): string[] {
  return ['sh', '-c', PID_WRAPPER, 'sh', ...argv];
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
  if (/no such device|doesn't exist|SIOCGIFHWADDR|not found/i.test(said)) {
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
