import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

// What a running capture has created in the cluster and not yet removed, kept
// in a small file beside the cache. Wireshark on Windows ends an extcap with
// TerminateProcess (no signal, no cleanup of ours), then may run it again with
// --extcap-cleanup-postkill: that later process reads the files of captures
// whose process is gone and removes exactly what they made. The files hold
// pod names and the kubeconfig's path and context, never a credential.

export interface CreatedHelper {
  namespace: string;
  name: string;
  /** The helper's session annotation: only the pod that carries it is ours. */
  session: string;
}

export interface CreatedRecord {
  helperCreated(helper: CreatedHelper): void;
  helperRemoved(helper: CreatedHelper): void;
}

export interface RecordedCapture {
  /** The file it was read from. */
  file: string;
  pid: number;
  kubeconfig?: string | undefined;
  context?: string | undefined;
  helpers: CreatedHelper[];
}

/** The record of one capture process: one file, rewritten on every change, removed at the end. */
export class CreatedRecordFile implements CreatedRecord {
  readonly file: string;
  readonly #content: RecordedCapture;

  constructor(
    dir: string,
    tag: string,
    cluster: { kubeconfig?: string | undefined; context?: string | undefined },
    pid = process.pid,
  ) {
    this.file = join(dir, `${fileTag(tag)}.${pid}.json`);
    this.#content = { file: this.file, pid, ...cluster, helpers: [] };
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  helperCreated(helper: CreatedHelper): void {
    this.#content.helpers.push(helper);
    this.#write();
  }

  helperRemoved(helper: CreatedHelper): void {
    const { helpers } = this.#content;
    const at = helpers.findIndex((h) => h.namespace === helper.namespace && h.name === helper.name);
    if (at >= 0) helpers.splice(at, 1);
    this.#write();
  }

  /** The capture ended by itself: nothing of it is left to remove. */
  discard(): void {
    rmSync(this.file, { force: true });
  }

  #write(): void {
    // Synchronous: the entry is on disk before the create call goes out, so a
    // kill at any point after leaves it findable.
    const { file: _file, ...content } = this.#content;
    writeFileSync(this.file, JSON.stringify(content), { mode: 0o600 });
  }
}

/**
 * The records of captures of `tag` (every tag when undefined) whose process is
 * no longer running. A record whose process still runs belongs to a live
 * capture and is never returned; unreadable files are skipped.
 */
export function recordsOfEndedCaptures(
  dir: string,
  tag: string | undefined,
  isRunning: (pid: number) => boolean = processRuns,
): RecordedCapture[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const prefix = tag === undefined ? undefined : `${fileTag(tag)}.`;
  const found: RecordedCapture[] = [];
  for (const name of names) {
    const m = /^(.+)\.(\d+)\.json$/.exec(name);
    if (!m || (prefix && !name.startsWith(prefix))) continue;
    const pid = Number(m[2]);
    if (isRunning(pid)) continue;
    const file = join(dir, name);
    const parsed = readRecord(file, pid);
    if (parsed) found.push(parsed);
  }
  return found;
}

function readRecord(file: string, pid: number): RecordedCapture | undefined {
  try {
    const raw = JSON.parse(readFileSync(file, 'utf8')) as Partial<RecordedCapture>;
    const helpers = (Array.isArray(raw.helpers) ? raw.helpers : []).filter(
      (h): h is CreatedHelper =>
        typeof h?.namespace === 'string' &&
        typeof h?.name === 'string' &&
        typeof h?.session === 'string',
    );
    return {
      file,
      pid,
      kubeconfig: typeof raw.kubeconfig === 'string' ? raw.kubeconfig : undefined,
      context: typeof raw.context === 'string' ? raw.context : undefined,
      helpers,
    };
  } catch {
    return undefined;
  }
}

/** An interface name as a file name: anything outside [A-Za-z0-9_-] becomes '_'. */
function fileTag(tag: string): string {
  return tag.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 120) || '_';
}

function processRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it runs, as another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
