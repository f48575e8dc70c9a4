#!/usr/bin/env node
// kubedump: a Wireshark extcap, and a command-line tool, that captures a
// Kubernetes pod's packets. Wireshark's calls (`--extcap-*`, `--capture`) go
// to the extcap dispatcher; everything else is the CLI.

import { writeSync } from 'node:fs';
import { errorLine } from './errors.ts';
import { isExtcapArgv } from './extcap/argv.ts';
import type { captureToFifo, cleanupAfterKill } from './wireshark/capture-to-fifo.ts';
import { REFRESH_ARG } from './wireshark/discovery.ts';

type CaptureFn = typeof captureToFifo;
type CleanupFn = typeof cleanupAfterKill;

/** Writes all of `text` to a file descriptor before returning (pipes may be non-blocking). */
function writeAll(fd: number, text: string): void {
  let buffer = Buffer.from(text);
  while (buffer.length > 0) {
    try {
      buffer = buffer.subarray(writeSync(fd, buffer));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') return;
    }
  }
}

/**
 * SIGTERM (Wireshark's stop), SIGINT (Ctrl-C) and SIGHUP (the terminal went
 * away) abort; the process exits within 2 s regardless.
 */
function stopSignal(): AbortSignal {
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (controller.signal.aborted) return;
    controller.abort(signal);
    setTimeout(() => process.exit(0), 1900).unref();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  process.on('SIGHUP', onSignal);
  return controller.signal;
}

async function main(argv: string[]): Promise<number> {
  if (argv[0] === REFRESH_ARG) {
    // The detached listing started by a late --extcap-interfaces: bounded, silent.
    setTimeout(() => process.exit(1), 60_000).unref();
    return (await import('./wireshark/discovery.ts')).refreshCache();
  }
  const signal = stopSignal();
  if (isExtcapArgv(argv)) {
    const { runExtcap } = await import('./extcap/dispatcher.ts');
    const { kubedumpProvider } = await import('./wireshark/provider.ts');
    // The capture path loads the Kubernetes client: only a capture imports it,
    // so discovery and config answers start without compiling it.
    const capture: CaptureFn = async (...args) =>
      (await import('./wireshark/capture-to-fifo.ts')).captureToFifo(...args);
    const cleanupAfterKill: CleanupFn = async (...args) =>
      (await import('./wireshark/capture-to-fifo.ts')).cleanupAfterKill(...args);
    return runExtcap(
      argv,
      kubedumpProvider({ capture, cleanupAfterKill }),
      {
        out: (lines) => writeAll(1, lines.length ? `${lines.join('\n')}\n` : ''),
        error: (line) => writeAll(2, `${line}\n`),
        describe: errorLine,
      },
      signal,
    );
  }
  const { runCli } = await import('./cli/commands.ts');
  return runCli(argv, signal);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => {
    writeAll(2, `kubedump: ${errorLine(error)}\n`);
    process.exit(1);
  },
);
