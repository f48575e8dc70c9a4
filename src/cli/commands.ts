import { createWriteStream, write, writeSync } from 'node:fs';
import { Writable } from 'node:stream';
import { isatty } from 'node:tty';
import yargs from 'yargs';
import {
  type CaptureRequest,
  combineFilters,
  DEFAULTS,
  PID_LOOKUPS,
  type PidLookup,
} from '../capture/request.ts';
import { errorLine, KubedumpError } from '../errors.ts';
import { VERSION } from '../version.ts';
import { checkMaxSeconds, loggerFromOptions } from '../wireshark/provider.ts';

// The command-line face: `kubedump capture POD ...` for terminals and scripts
// (`-w - | tshark -r -`), plus install, uninstall and version.

/**
 * Writes on the descriptor itself, never destroying process.stdout. A pipe may
 * be non-blocking (the reader's end is shared, or the fd was put in that
 * mode): a full pipe then answers EAGAIN, which means "wait", not "fail".
 * The callback waits, so backpressure reaches the capture while the reader
 * stalls, and the event loop stays free for signals.
 */
class FdWritable extends Writable {
  readonly #fd: number;
  constructor(fd: number) {
    super({ highWaterMark: 256 * 1024 });
    this.#fd = fd;
  }
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (e?: Error) => void) {
    const attempt = (buffer: Buffer, delay: number) => {
      write(this.#fd, buffer, 0, buffer.length, null, (error, written) => {
        if ((error as NodeJS.ErrnoException | null)?.code === 'EAGAIN') {
          setTimeout(() => attempt(buffer, Math.min(delay * 2, 50)), delay);
        } else if (error) {
          callback(error);
        } else if (written < buffer.length) {
          attempt(buffer.subarray(written), 1);
        } else {
          callback();
        }
      });
    };
    attempt(chunk, 1);
  }
}

function fdStream(fd: number): Writable {
  return new FdWritable(fd);
}

function progressPrinter(): ((packets: number, bytes: number) => void) | undefined {
  if (!process.stderr.isTTY) return undefined;
  let last = 0;
  return (packets, bytes) => {
    const now = Date.now();
    if (now - last < 200) return;
    last = now;
    process.stderr.write(`\r${packets} packets, ${bytes} bytes`);
  };
}

async function capture(args: Record<string, unknown>, signal: AbortSignal): Promise<number> {
  const str = (v: unknown) => (typeof v === 'string' && v !== '' ? v : undefined);
  // isatty, not process.stdout.isTTY: that getter makes fd 1 non-blocking.
  const target = str(args.write) ?? (isatty(1) ? undefined : '-');
  if (!target) {
    throw new KubedumpError('BAD_INPUT', 'no output given and stdout is a terminal', {
      hint: 'pass -w FILE, or -w - and pipe into tshark -r -',
    });
  }
  const request: CaptureRequest = {
    kubeconfig: str(args.kubeconfig),
    context: str(args.context),
    namespace: str(args.namespace),
    pod: String(args.pod ?? ''),
    container: str(args.container),
    iface: str(args.interface) ?? DEFAULTS.iface,
    // tcpdump-style words after the pod, and/or -f: both apply.
    filter: combineFilters([
      str(args.filter),
      [args.expression ?? []].flat().map(String).join(' '),
    ]),
    snaplen: Number(args.snaplen ?? 0),
    maxPackets: Number(args['max-packets'] ?? 0),
    maxSeconds: checkMaxSeconds(Number(args['max-seconds'] ?? 0)),
    privileged: Boolean(args.privileged),
    helperNamespace: str(args['helper-namespace']),
    helperImage: str(args['helper-image']) ?? DEFAULTS.helperImage,
    keepBinary: Boolean(args['keep-binary']),
    helperTimeout: Number(args['helper-timeout'] ?? DEFAULTS.helperTimeout),
    runtimeSocket: str(args['runtime-socket']),
    pidLookup: (str(args['pid-lookup']) ?? 'auto') as PidLookup,
  };
  const logOptions = new Map<string, string>();
  if (str(args['log-level'])) logOptions.set('log-level', String(args['log-level']));
  if (str(args['log-file'])) logOptions.set('log-file', String(args['log-file']));
  const log = loggerFromOptions(logOptions);
  const output = target === '-' ? fdStream(1) : createWriteStream(target, { mode: 0o644 });
  output.on('error', () => {}); // EPIPE from a closed reader is a stop
  const onProgress = progressPrinter();
  // Loaded here, not at startup: it brings the Kubernetes client, which
  // version, install and --help do not need.
  const { finishOutput, runCapture } = await import('../capture/session.ts');
  try {
    const summary = await runCapture(request, output, signal, {
      log,
      ...(onProgress && { onProgress }),
      onNotice: (line) => writeSync(2, `kubedump: ${line}\n`),
    });
    if (process.stderr.isTTY)
      process.stderr.write(`\r${summary.packets} packets, ${summary.bytes} bytes\n`);
    return 0;
  } catch (error) {
    log.error('capture failed', { error });
    // A file still gets a valid, empty capture.
    if (target !== '-') await finishOutput(output, { header: undefined }, request).catch(() => {});
    throw error;
  } finally {
    log.close();
  }
}

/**
 * A filter is free text and may start with "-" (`-f "-w x"`), which yargs
 * would read as more options; `--filter=VALUE` keeps it one value.
 */
export function filterAsOneValue(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i] as string;
    if (token === '--') {
      out.push(...argv.slice(i));
      break;
    }
    if ((token === '-f' || token === '--filter') && i + 1 < argv.length) {
      out.push(`--filter=${argv[++i]}`);
    } else {
      out.push(token);
    }
  }
  return out;
}

export async function runCli(argv: string[], signal: AbortSignal): Promise<number> {
  let code = 0;
  const run = (job: Promise<number>) => {
    return job.then(
      (c) => {
        code = c;
      },
      (error) => {
        writeSync(2, `kubedump: ${errorLine(error)}\n`);
        code = 1;
      },
    );
  };
  await yargs(filterAsOneValue(argv))
    // -w a -w b: the last one wins, as in most tools (an array would mean stdout).
    .parserConfiguration({ 'duplicate-arguments-array': false })
    .scriptName('kubedump')
    .usage(
      "$0 <command> [options]\n\nCaptures a Kubernetes pod's packets with tcpdump, for Wireshark and tshark.",
    )
    .command(
      'capture <pod> [expression..]',
      'capture the packets of a pod (pcap on stdout or to a file)',
      (y) =>
        y
          .positional('pod', { type: 'string', describe: 'pod name' })
          .positional('expression', {
            type: 'string',
            array: true,
            describe: 'BPF filter words, as for tcpdump (and-ed with -f)',
          })
          .option('namespace', {
            alias: 'n',
            type: 'string',
            describe: "pod namespace (default: the context's)",
          })
          .option('container', {
            alias: 'c',
            type: 'string',
            describe: 'container (default: the default container)',
          })
          .option('interface', {
            alias: 'i',
            type: 'string',
            default: DEFAULTS.iface,
            describe: 'interface inside the pod',
          })
          .option('filter', { alias: 'f', type: 'string', describe: 'BPF capture filter' })
          .option('write', {
            alias: 'w',
            type: 'string',
            describe: 'output file, - for stdout (default when piped)',
          })
          .option('context', { type: 'string', describe: 'kubeconfig context' })
          .option('kubeconfig', { type: 'string', describe: 'kubeconfig file' })
          .option('privileged', {
            alias: 'p',
            type: 'boolean',
            default: false,
            describe: 'capture from a helper pod on the node',
          })
          .option('helper-namespace', {
            type: 'string',
            describe: "helper pod namespace (default: the target's)",
          })
          .option('helper-image', {
            type: 'string',
            default: DEFAULTS.helperImage,
            describe: 'helper pod image (sh, nsenter)',
          })
          .option('helper-timeout', {
            type: 'number',
            default: DEFAULTS.helperTimeout,
            describe: 'seconds to wait for the helper pod to run',
          })
          .option('runtime-socket', {
            type: 'string',
            describe: 'container runtime socket on the node (default: probe the known paths)',
          })
          .option('pid-lookup', {
            type: 'string',
            choices: PID_LOOKUPS,
            default: 'auto',
            describe: 'find the target PID through the runtime, cgroups, or both (auto)',
          })
          .option('snaplen', {
            alias: 's',
            type: 'number',
            default: 0,
            describe: 'bytes per packet, 0 = whole',
          })
          .option('max-packets', { type: 'number', default: 0, describe: 'stop after N packets' })
          .option('max-seconds', { type: 'number', default: 0, describe: 'stop after N seconds' })
          .option('keep-binary', {
            type: 'boolean',
            default: false,
            describe: 'leave the uploaded tcpdump in the pod',
          })
          .option('log-level', { type: 'string', choices: ['error', 'warn', 'info', 'debug'] })
          .option('log-file', { type: 'string', describe: 'log file (created 0600)' }),
      (args) => run(capture(args, signal)),
    )
    .command(
      'cleanup',
      'delete every helper pod kubedump left behind',
      (y) =>
        y
          .option('namespace', {
            alias: 'n',
            type: 'string',
            describe: "namespace (default: the context's)",
          })
          .option('all-namespaces', {
            alias: 'A',
            type: 'boolean',
            default: false,
            describe: 'every namespace',
          })
          .option('context', { type: 'string', describe: 'kubeconfig context' })
          .option('kubeconfig', { type: 'string', describe: 'kubeconfig file' }),
      (args) =>
        run(
          import('./cleanup.ts').then((m) =>
            m.cleanupCommand({
              kubeconfig: args.kubeconfig,
              context: args.context,
              namespace: args.namespace,
              allNamespaces: Boolean(args['all-namespaces']),
              print: (line) => process.stdout.write(`${line}\n`),
            }),
          ),
        ),
    )
    .command('install', "put kubedump into Wireshark's personal extcap folder", {}, () =>
      run(import('./install.ts').then((m) => m.install())),
    )
    .command('uninstall', "remove kubedump from Wireshark's extcap folders", {}, () =>
      run(import('./install.ts').then((m) => m.uninstall())),
    )
    .command('version', 'print versions of kubedump and the embedded tcpdump', {}, () =>
      run(import('./install.ts').then((m) => m.printVersion())),
    )
    .version(VERSION)
    .demandCommand(1, 'name a command, e.g. kubedump capture POD -w -')
    .strict()
    .fail((message, error) => {
      throw error ?? new KubedumpError('BAD_INPUT', message, { hint: 'see kubedump --help' });
    })
    .help()
    .parseAsync();
  return code;
}
