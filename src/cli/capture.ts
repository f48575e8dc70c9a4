import { writeSync } from 'node:fs';
import { isatty } from 'node:tty';
import type { Argv, Options } from 'yargs';
import {
  captureRequest,
  logSettings,
  OPTIONS,
  type OptionRow,
  optionRow,
  rawFromCli,
} from '../capture/options.ts';
import { KubedumpError } from '../errors.ts';
import { openLog } from '../log.ts';
import { fdStream, openOutput } from '../output.ts';

// `kubedump capture POD [expression..]`: its options are the rows of the
// options table, plus where the packets go (-w).

export function yargsOption(row: OptionRow): Options {
  // Counts are text to yargs: the table's parser checks them and can then say
  // what the user typed ("many"), where yargs' number type would make it NaN.
  const option: Options = { type: row.kind === 'flag' ? 'boolean' : 'string' };
  if (row.kind === 'count') option.requiresArg = true;
  if (row.cli.alias) option.alias = row.cli.alias;
  if (row.choices) option.choices = [...row.choices];
  if (row.default !== undefined && row.default !== '') option.default = row.default;
  if (row.help) option.describe = row.help;
  return option;
}

export function captureOptions<T>(y: Argv<T>): Argv<T> {
  const target = optionRow('pod');
  let out = y
    .positional('pod', { type: 'string', describe: target.help })
    .positional('expression', {
      type: 'string',
      array: true,
      describe: 'BPF filter words, as for tcpdump (and-ed with -f)',
    }) as Argv<T>;
  for (const row of OPTIONS) {
    if (!row.cli.positional) out = out.option(row.cli.flag, yargsOption(row)) as Argv<T>;
    const short = row.shorthand;
    if (short) {
      out = out.option(short.flag, {
        type: 'boolean',
        ...(short.alias && { alias: short.alias }),
        describe: `same as --${row.cli.flag} ${short.means}`,
      }) as Argv<T>;
    }
  }
  return out.option('write', {
    alias: 'w',
    type: 'string',
    describe: 'output file, - for stdout (default when piped)',
  }) as Argv<T>;
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

export async function captureCommand(
  args: Record<string, unknown>,
  signal: AbortSignal,
): Promise<number> {
  const str = (v: unknown) => (typeof v === 'string' && v !== '' ? v : undefined);
  // isatty, not process.stdout.isTTY: that getter makes fd 1 non-blocking.
  const target = str(args.write) ?? (isatty(1) ? undefined : '-');
  if (!target) {
    throw new KubedumpError('BAD_INPUT', 'no output given and stdout is a terminal', {
      hint: 'pass -w FILE, or -w - and pipe into tshark -r -',
    });
  }
  const raw = rawFromCli(args);
  // With -l or --all nothing names a pod: the first word is the filter's.
  const expression: unknown[] = [args.expression ?? []].flat();
  if ((raw.selector || raw.allPods) && raw.pod !== undefined) {
    expression.unshift(raw.pod);
    raw.pod = undefined;
  }
  // tcpdump-style words after the pod, and/or -f: both apply.
  const words = expression.map(String).join(' ');
  const request = captureRequest(raw, 'cli', [words]);
  const log = openLog(logSettings(raw, 'cli'));
  const output = target === '-' ? fdStream(1) : openOutput(target, 0o644);
  output.on('error', () => {}); // EPIPE from a closed reader is a stop
  const onProgress = progressPrinter();
  // Loaded here, not at startup: it brings the Kubernetes client, which
  // version, install and --help do not need.
  const { finishOutput } = await import('../capture/session.ts');
  const { captureTarget } = await import('../capture/many-pods.ts');
  try {
    const summary = await captureTarget(request, output, signal, {
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
