import { writeSync } from 'node:fs';
import type { Argv } from 'yargs';
import yargs from 'yargs';
import { optionRow } from '../capture/options.ts';
import { errorLine, KubedumpError } from '../errors.ts';
import { VERSION } from '../version.ts';
import { captureCommand, captureOptions, yargsOption } from './capture.ts';
import { doctorCommand, doctorOptions } from './doctor.ts';

// The command-line face: `kubedump capture POD ...` for terminals and scripts
// (`-w - | tshark -r -`), plus doctor, cleanup, install, uninstall and version.

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

/**
 * yargs renders the whole help text right after a command's handler starts,
 * to keep it for a showHelp() from inside the handler. kubedump never asks
 * for it there, and rendering it took ~30 ms of every start, before the first
 * request went out. (An internal method: if it moves, help is rendered again.)
 */
function skipHelpCache(parser: object): void {
  type Internals = { getUsageInstance?: () => { cacheHelpMessage?: () => void } };
  const internals = (parser as { getInternalMethods?: () => Internals }).getInternalMethods?.();
  const usage = internals?.getUsageInstance?.();
  if (usage?.cacheHelpMessage) usage.cacheHelpMessage = () => {};
}

/** `kubedump cleanup`: the capture's rows say where to look; -A looks everywhere. */
function cleanupOptions<T>(y: Argv<T>) {
  const [namespace, context, kubeconfig] = (['namespace', 'context', 'kubeconfig'] as const).map(
    (key) => yargsOption(optionRow(key)),
  );
  return y
    .option('namespace', {
      ...namespace,
      type: 'string',
      describe: "where to look (default: the context's)",
    })
    .option('all-namespaces', {
      alias: 'A',
      type: 'boolean',
      default: false,
      describe: 'every namespace',
    })
    .option('context', { ...context, type: 'string' })
    .option('kubeconfig', { ...kubeconfig, type: 'string' });
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
  const parser = yargs(filterAsOneValue(argv));
  skipHelpCache(parser);
  await parser
    // -w a -w b: the last one wins, as in most tools (an array would mean stdout).
    .parserConfiguration({ 'duplicate-arguments-array': false })
    .scriptName('kubedump')
    .usage(
      "$0 <command> [options]\n\nCaptures a Kubernetes pod's packets with tcpdump, for Wireshark and tshark.",
    )
    .command(
      'capture [pod] [expression..]',
      'capture the packets of a pod, or of several as one pcapng (stdout or a file)',
      (y) => captureOptions(y),
      (args) => run(captureCommand(args, signal)),
    )
    .command(
      'doctor [pod]',
      'check which capture modes can capture a pod, and which one auto takes',
      (y) => doctorOptions(y),
      (args) => run(doctorCommand(args, signal, (text) => process.stdout.write(text))),
    )
    .command(
      'cleanup',
      'delete every helper pod kubedump left behind',
      (y) => cleanupOptions(y),
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
      // yargs' own complaints (YError) are bad input too, never "unexpected".
      if (error && error.name !== 'YError') throw error;
      throw new KubedumpError('BAD_INPUT', message ?? error?.message ?? 'bad arguments', {
        hint: 'see kubedump --help',
      });
    })
    .help()
    .parseAsync();
  return code;
}
