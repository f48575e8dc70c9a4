import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';

// The one way tests run a program (argv, never a shell) and the one way
// they wait for a condition.

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

/**
 * Waits until `check` gives a value other than undefined or false, and
 * returns it; fails, naming `what`, after `ms`.
 */
export async function until<T>(
  what: string,
  check: () => T | undefined | false | Promise<T | undefined | false>,
  ms = 15_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() >= deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
