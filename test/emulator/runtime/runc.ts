// runc driven directly: one foreground `runc run` per container, `runc exec -p` for exec.
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { command } from './command.ts';

export interface Running {
  child: ChildProcess;
  pid: number;
  exited: Promise<number>;
}

async function statePid(
  root: string,
  id: string,
): Promise<{ status: string; pid: number } | undefined> {
  const r = await command('runc', ['--root', root, 'state', id]);
  if (r.code !== 0) return undefined;
  const s = JSON.parse(r.stdout) as { status: string; pid: number };
  return s;
}

/** Starts the container in the foreground (its exit is the child's exit); resolves once it runs. */
export async function runContainer(
  root: string,
  bundle: string,
  id: string,
  logFile: string,
): Promise<Running> {
  const fd = openSync(logFile, 'a');
  const child = spawn('runc', ['--root', root, 'run', '--bundle', bundle, id], {
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  const exited = new Promise<number>((resolve) => {
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
    child.on('error', () => resolve(127));
  });
  let done = false;
  void exited.then(() => {
    done = true;
  });
  for (let i = 0; i < 400 && !done; i++) {
    const s = await statePid(root, id);
    if (s && s.status === 'running' && s.pid > 0) return { child, pid: s.pid, exited };
    await new Promise((r) => setTimeout(r, 25));
  }
  child.kill('SIGKILL');
  const log = (await readFile(logFile, 'utf8').catch(() => ''))
    .trim()
    .split('\n')
    .slice(-3)
    .join(' ');
  // A process that ran and ended between two polls: runc said nothing of its own.
  if (done && !/runc run failed|level=error/.test(log)) return { child, pid: 0, exited };
  throw new Error(`container ${id} did not start: ${log}`);
}

export async function killContainer(root: string, id: string, signal: string): Promise<void> {
  await command('runc', ['--root', root, 'kill', '--all', id, signal]);
}

export async function deleteContainer(root: string, id: string): Promise<void> {
  await command('runc', ['--root', root, 'delete', '--force', id]);
}

export async function listContainers(root: string): Promise<string[]> {
  // `runc list` creates its root directory: never let a check leave one behind.
  if (!existsSync(root)) return [];
  const r = await command('runc', ['--root', root, 'list', '-q']);
  return r.code === 0 ? r.stdout.split('\n').filter(Boolean) : [];
}

/** Spawns `runc exec` with the process described in a process.json, stdio piped. */
export async function execProcess(
  root: string,
  id: string,
  processJson: string,
  spec: Record<string, unknown>,
  stdin: boolean,
): Promise<ChildProcess> {
  await writeFile(processJson, JSON.stringify(spec));
  return spawn('runc', ['--root', root, 'exec', '-p', processJson, id], {
    stdio: [stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
  });
}
