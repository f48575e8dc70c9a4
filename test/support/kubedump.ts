import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '..', '..');
export const BUILT = join(ROOT, 'extcap', 'kubedump');

/** How to run kubedump: the built executable when present (CI builds it), else the sources. */
export function kubedumpCommand(prefer: 'built' | 'source' = 'built'): string[] {
  if (prefer === 'built' && existsSync(BUILT)) return [BUILT];
  return [process.execPath, join(ROOT, 'src', 'main.ts')];
}

export interface Ran {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs a command with argv (no shell), optional stdin, and a kill timeout; never rejects. */
export function run(
  argv: readonly string[],
  options: {
    env?: NodeJS.ProcessEnv;
    input?: string | Buffer;
    timeoutMs?: number;
    cwd?: string;
  } = {},
): Promise<Ran> {
  const started = performance.now();
  return new Promise((resolve) => {
    const [command, ...args] = argv;
    const child = spawn(command as string, args, {
      env: options.env ?? process.env,
      cwd: options.cwd,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    child.stdin.on('error', () => {});
    child.stdin.end(options.input ?? '');
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
    const done = (code: number | null, signal: NodeJS.Signals | null, err = '') => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr: stderr + err, ms: performance.now() - started });
    };
    // A program that cannot start is code -1 with the reason on stderr.
    child.on('error', (error) => done(-1, null, String(error)));
    child.on('close', (code, signal) => done(code, signal));
  });
}
