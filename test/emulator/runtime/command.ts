// Runs host tools (ip, runc, mount, openssl) with argv only, never through a shell.
import { execFile } from 'node:child_process';

export interface CommandResult {
  stdout: string;
  stderr: string;
  code: number;
}

export function command(file: string, args: string[], input?: string): Promise<CommandResult> {
  return new Promise((resolve) => {
    const child = execFile(file, args, { maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ stdout, stderr: stderr || (err && code !== 0 ? String(err.message) : ''), code });
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

/** Like command() but rejects with the tool's stderr on a non-zero exit. */
export async function must(file: string, args: string[], input?: string): Promise<string> {
  const r = await command(file, args, input);
  if (r.code !== 0) throw new Error(`${file} ${args.join(' ')}: ${r.stderr.trim()}`);
  return r.stdout;
}
