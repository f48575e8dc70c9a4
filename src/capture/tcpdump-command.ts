import { KubedumpError } from '../errors.ts';
import { PID_MARKER } from './remote-scripts.ts';
import type { PlacementName } from './request.ts';

// The remote tcpdump command line and what its failures mean. The filter is
// always one argv element after `--`: it never passes through a shell.

export interface TcpdumpArgs {
  binary: string;
  iface: string;
  filter: string;
  snaplen: number;
}

export function tcpdumpArgv(args: TcpdumpArgs): string[] {
  const argv = [args.binary, '-i', args.iface, '-U', '--immediate-mode', '-w', '-'];
  if (args.snaplen > 0) argv.push('-s', String(args.snaplen));
  // -i any defaults to LINUX_SLL2 with libpcap 1.10, which Wireshark < 3.4
  // cannot read; LINUX_SLL is readable everywhere.
  if (args.iface === 'any') argv.push('-y', 'LINUX_SLL');
  if (args.filter.trim()) argv.push('--', args.filter);
  return argv;
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
  mode: PlacementName,
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
          ? 'the container lacks root or CAP_NET_RAW; use ephemeral mode (--mode ephemeral) or privileged mode (-p)'
          : mode === 'ephemeral'
            ? 'the ephemeral container lacks CAP_NET_RAW (a policy drops it); use privileged mode (-p)'
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
