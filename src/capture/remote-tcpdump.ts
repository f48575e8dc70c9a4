import type { Readable } from 'node:stream';
import type { KubeConfig } from '@kubernetes/client-node';
import {
  type ExecResult,
  type ExecSession,
  execCollect,
  lineSplitter,
  openExec,
} from '../kube/exec.ts';
import type { Logger } from '../log.ts';
import type { ViewSink } from '../view-sink.ts';
import { KEEPALIVE_MS, killArgv, parsePidLine, STOP_LINE, withWatchdog } from './remote-scripts.ts';
import type { StopClock } from './stop-clock.ts';
import { isTcpdumpChatter } from './tcpdump-command.ts';
import type { ExecTarget } from './upload.ts';

// tcpdump running in the cluster under the remote watchdog: its pcap stream,
// its PID, the keepalive lines that keep it alive, and its stop. Closing an
// exec stream does not stop a remote process: the stop line asks the
// watchdog to stop tcpdump (it flushes and exits, which ends the stream);
// if no exit status has come soon after, it is killed by PID.

/** How long the stop line has to end tcpdump before it is killed by PID. */
const KILL_AFTER_MS = 500;
/** After a stop, the socket is closed under a tcpdump that has not ended by then. */
const CLOSE_AFTER_MS = 1000;

export class RemoteTcpdump implements AsyncDisposable {
  readonly stdout: Readable;
  /** Sends stdout's bytes to a sink as views instead (ExecSession.pipeTo). */
  readonly pipeTo: (sink: ViewSink) => void;
  readonly result: Promise<ExecResult>;
  /** How the exec streams: its transport and channel protocol (for the log). */
  readonly transport: string;
  readonly protocol: string;
  readonly #pid: () => number | undefined;
  #stopping: Promise<void> | undefined;
  readonly #send: (line: string) => Promise<void>;
  readonly #close: () => void;
  readonly #keepalive: NodeJS.Timeout;
  readonly #kill: (pid: number) => Promise<void>;
  readonly #log: Logger;

  static async start(
    kc: KubeConfig,
    placement: { exec: ExecTarget; prefix: readonly string[]; heartbeat: string },
    argv: string[],
    options: { log: Logger; signal: AbortSignal; clock: StopClock },
  ): Promise<RemoteTcpdump> {
    let pid: number | undefined;
    const session = await openExec(kc, {
      ...placement.exec,
      command: withWatchdog([...placement.prefix, ...argv], placement.heartbeat),
      // stdin carries the keepalive lines the remote watchdog waits for.
      stdin: true,
      signal: options.signal,
      onStderr: lineSplitter(
        wrapperStderr(options.log, (found) => {
          pid ??= found;
        }),
      ),
    });
    return RemoteTcpdump.adopt(kc, placement.exec, session, () => pid, options);
  }

  /** Takes over an exec in which the watchdog already runs tcpdump. */
  static adopt(
    kc: KubeConfig,
    exec: ExecTarget,
    session: ExecSession,
    pid: () => number | undefined,
    options: { log: Logger; clock: StopClock },
  ): RemoteTcpdump {
    const { log } = options;
    const kill = async (found: number) => {
      const result = await execCollect(kc, {
        ...exec,
        command: killArgv(found),
        signal: options.clock.signal(),
      });
      log.info('remote tcpdump killed by PID', { pid: found, exitCode: result.exitCode });
    };
    return new RemoteTcpdump(session, kill, log, pid);
  }

  private constructor(
    session: ExecSession,
    kill: (pid: number) => Promise<void>,
    log: Logger,
    pid: () => number | undefined,
  ) {
    this.stdout = session.stdout;
    this.pipeTo = (sink) => session.pipeTo(sink);
    this.result = session.result;
    this.transport = session.transport;
    this.protocol = session.protocol;
    this.#send = (line) => session.write(Buffer.from(line)).catch(() => {});
    this.#close = () => session.close();
    this.#kill = kill;
    this.#pid = pid;
    this.#log = log;
    this.#keepalive = setInterval(() => this.#send('\n'), KEEPALIVE_MS);
    this.#keepalive.unref();
  }

  /** Ends tcpdump: the stop line, then a kill by PID; once, however often called. */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      setTimeout(this.#close, CLOSE_AFTER_MS).unref();
      void this.#send(STOP_LINE);
      // Ended means the remote process said so (a status); a stream that
      // was cut says nothing of the process, which may still run.
      const ended = await Promise.race([
        this.result.then((r) => r.exitCode !== null || r.message !== undefined),
        new Promise<false>((resolve) => setTimeout(() => resolve(false), KILL_AFTER_MS).unref()),
      ]);
      const pid = this.#pid();
      if (!ended && pid !== undefined) await this.#kill(pid);
    })().catch((error) => this.#log.warn('remote stop failed', { error }));
    return this.#stopping;
  }

  /** Closes the stream at once, e.g. when the output failed. */
  close(): void {
    this.#close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    clearInterval(this.#keepalive);
    await this.stop();
    this.#close();
  }
}

/** Reads the wrapper's stderr lines: the PID line, tcpdump's chatter and its errors. */
export function wrapperStderr(log: Logger, onPid: (pid: number) => void): (line: string) => void {
  return (line) => {
    const pid = parsePidLine(line);
    if (pid !== undefined) onPid(pid);
    if (!isTcpdumpChatter(line)) log.warn('remote stderr', { line });
    else log.debug('remote stderr', { line });
  };
}
