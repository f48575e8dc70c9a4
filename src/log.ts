import { closeSync, fchmodSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { KubedumpError } from './errors.ts';
import { currentHost, defaultLogFile as platformLogFile } from './platform-paths.ts';

// A small leveled logger that writes one JSON line per entry to a file
// created 0600. In extcap mode stderr is Wireshark's error channel, so logs
// never go there. Values that look like credentials are masked.

export const LEVELS = ['error', 'warn', 'info', 'debug'] as const;
export type Level = (typeof LEVELS)[number];

export interface Logger {
  error(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  debug(message: string, fields?: Record<string, unknown>): void;
  close(): void;
}

const SECRET_KEY = /token|password|secret|authorization|key-data|client-key|bearer|cookie/i;

/** Masks bearer tokens, basic credentials and secret-looking fields. */
export function redact(text: string): string {
  return text
    .replace(/(bearer\s+)[A-Za-z0-9._~+/=-]+/gi, '$1***')
    .replace(/(basic\s+)[A-Za-z0-9+/=]+/gi, '$1***')
    .replace(
      /("?(?:token|password|client-key-data|authorization)"?\s*[:=]\s*"?)[^"\s,}]+/gi,
      '$1***',
    )
    .replace(/-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----/g, '***');
}

function scrub(fields: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(fields)) {
    if (SECRET_KEY.test(key)) out[key] = '***';
    else if (value instanceof Error) out[key] = redact(value.message);
    else if (typeof value === 'string') out[key] = redact(value);
    else out[key] = value;
  }
  return out;
}

export function isLevel(value: string): value is Level {
  return (LEVELS as readonly string[]).includes(value);
}

export const silentLogger: Logger = {
  error() {},
  warn() {},
  info() {},
  debug() {},
  close() {},
};

/**
 * A logger whose lines wait until `release`, then go to `log` in order (with
 * the time they were logged as `loggedAt`); from then on it writes through.
 */
export function heldLogger(log: Logger): { log: Logger; release(): void } {
  let held: [Exclude<keyof Logger, 'close'>, string, Record<string, unknown>][] | undefined = [];
  const entry =
    (level: Exclude<keyof Logger, 'close'>) =>
    (message: string, fields: Record<string, unknown> = {}) => {
      if (held) held.push([level, message, { ...fields, loggedAt: new Date().toISOString() }]);
      else log[level](message, fields);
    };
  return {
    log: {
      error: entry('error'),
      warn: entry('warn'),
      info: entry('info'),
      debug: entry('debug'),
      close() {},
    },
    release() {
      for (const [level, message, fields] of held ?? []) log[level](message, fields);
      held = undefined;
    },
  };
}

export function fileLogger(path: string, level: Level): Logger {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const fd = openSync(path, 'a', 0o600);
  try {
    fchmodSync(fd, 0o600); // an existing file keeps its old mode otherwise
  } catch {}
  const max = LEVELS.indexOf(level);
  let open = true;
  const write = (at: Level, message: string, fields?: Record<string, unknown>) => {
    if (!open || LEVELS.indexOf(at) > max) return;
    const entry = {
      time: new Date().toISOString(),
      pid: process.pid,
      level: at,
      message: redact(message),
      ...scrub(fields ?? {}),
    };
    try {
      writeSync(fd, `${JSON.stringify(entry)}\n`);
    } catch {
      // a full disk must not stop a capture
    }
  };
  return {
    error: (m, f) => write('error', m, f),
    warn: (m, f) => write('warn', m, f),
    info: (m, f) => write('info', m, f),
    debug: (m, f) => write('debug', m, f),
    close() {
      if (open) closeSync(fd);
      open = false;
    },
  };
}

const mb = (bytes: number) => Math.round(bytes / 1048576);

/** The process's memory, in MB: V8's heap, the buffers outside it, and the peak RSS. */
export function memoryFields(): Record<string, number> {
  const m = process.memoryUsage();
  return {
    rssMb: mb(m.rss),
    heapMb: mb(m.heapTotal),
    heapUsedMb: mb(m.heapUsed),
    externalMb: mb(m.external),
    maxRssMb: mb(process.resourceUsage().maxRSS * 1024),
  };
}

export function defaultLogFile(): string {
  return platformLogFile(currentHost());
}

/** The log a capture's options ask for: none unless a level or a file is given. */
export function openLog(settings: {
  level?: Level | undefined;
  file?: string | undefined;
}): Logger {
  const { level, file } = settings;
  if (!level && !file) return silentLogger;
  const path = file ?? defaultLogFile();
  try {
    return fileLogger(path, level ?? 'info');
  } catch (error) {
    const why = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new KubedumpError('LOG_FILE', `cannot open the log file ${path} (${why})`, {
      hint: 'pick a log file in a directory you can write, or leave the log file empty',
      cause: error,
    });
  }
}
