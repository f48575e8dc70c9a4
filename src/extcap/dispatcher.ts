import type { Writable } from 'node:stream';
import { type ExtcapRequest, parseExtcapArgv } from './argv.ts';
import { openFifo } from './fifo.ts';
import {
  type Arg,
  type ArgValue,
  type Dlt,
  type ExtcapInfo,
  type Interface,
  renderArgs,
  renderDlt,
  renderInfo,
  renderInterface,
  renderValue,
} from './sentences.ts';

// A generic extcap: answers Wireshark's standard calls from a provider that
// knows what to capture. Nothing here knows what a pod is.

export interface CaptureCall {
  iface: string;
  /** Wireshark's capture filter (`--extcap-capture-filter`), or ''. */
  captureFilter: string;
  options: Map<string, string>;
  output: Writable;
  signal: AbortSignal;
}

export interface ExtcapProvider {
  info: ExtcapInfo;
  interfaces(): Promise<Interface[]>;
  dlts(iface: string): Dlt[];
  config(iface: string, options: Map<string, string>): Promise<Arg[]>;
  /** Values for one `{reload=true}` selector, given the other options chosen so far. */
  reload(iface: string, option: string, options: Map<string, string>): Promise<ArgValue[]>;
  /** An error text for an invalid filter, or undefined when it compiles. */
  checkFilter(iface: string, filter: string): Promise<string | undefined>;
  capture(call: CaptureCall): Promise<void>;
  /** Removes what a capture of `iface` that was killed (no signal) left behind. */
  cleanupAfterKill(iface: string, options: Map<string, string>): Promise<void>;
}

export interface ExtcapIO {
  out(lines: string[]): void;
  /** One line on stderr: Wireshark shows it to the user. */
  error(line: string): void;
  /** Turns any thrown value into the line the user sees. */
  describe(error: unknown): string;
}

/** Runs one extcap call and returns the process exit code. */
export async function runExtcap(
  argv: readonly string[],
  provider: ExtcapProvider,
  io: ExtcapIO,
  signal: AbortSignal,
): Promise<number> {
  const request = parseExtcapArgv(argv);
  const iface = request.iface ?? '';
  switch (request.verb) {
    case 'version':
      io.out([renderInfo(provider.info)]);
      return 0;
    case 'interfaces': {
      const interfaces = await provider.interfaces();
      io.out([renderInfo(provider.info), ...interfaces.map(renderInterface)]);
      return 0;
    }
    case 'dlts':
      io.out(provider.dlts(iface).map(renderDlt));
      return 0;
    case 'config':
      io.out(renderArgs(await provider.config(iface, request.options)));
      return 0;
    case 'reload':
      return reload(request, provider, io);
    case 'capture-filter': {
      const problem = await provider.checkFilter(iface, request.captureFilter ?? '');
      if (problem) io.out([problem]);
      return 0;
    }
    case 'capture':
      return capture(request, provider, io, signal);
    case 'cleanup-postkill':
      await provider.cleanupAfterKill(iface, request.options);
      return 0;
  }
}

async function reload(request: ExtcapRequest, provider: ExtcapProvider, io: ExtcapIO) {
  const iface = request.iface ?? '';
  const option = (request.reloadOption ?? '').replace(/^--/, '');
  const args = await provider.config(iface, request.options);
  const number = args.findIndex((a) => a.call === option);
  if (number < 0) return 0;
  const values = await provider.reload(iface, option, request.options);
  io.out(values.map((v) => renderValue(number, v)));
  return 0;
}

async function capture(
  request: ExtcapRequest,
  provider: ExtcapProvider,
  io: ExtcapIO,
  signal: AbortSignal,
): Promise<number> {
  if (!request.fifo) {
    io.error('kubedump: --capture needs --fifo PATH (Wireshark passes it)');
    return 1;
  }
  const output = openFifo(request.fifo);
  // A write after dumpcap has gone fails with EPIPE: that is a stop, not an error.
  output.on('error', () => {});
  try {
    await provider.capture({
      iface: request.iface ?? '',
      captureFilter: request.captureFilter ?? '',
      options: request.options,
      output,
      signal,
    });
    await endWithin(output, 1000);
    return 0;
  } catch (error) {
    // The reason first, then close the fifo so dumpcap stops waiting for a header.
    io.error(io.describe(error));
    await endWithin(output, 5000);
    return 1;
  }
}

/** Ends the stream (opening the fifo first if needed), waiting at most `ms`. */
function endWithin(stream: Writable, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    if (stream.destroyed || stream.writableFinished) return done();
    stream.once('close', done);
    stream.once('error', done);
    stream.end();
  });
}
