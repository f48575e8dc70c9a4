import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '..', '..');
export const BUILT = join(ROOT, 'extcap', 'kubedump');

/** The most recently changed file under `dir`, with its mtime. */
function newestFile(dir: string): { path: string; mtimeMs: number } {
  let newest = { path: dir, mtimeMs: 0 };
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    const found = entry.isDirectory()
      ? newestFile(path)
      : { path, mtimeMs: statSync(path).mtimeMs };
    if (found.mtimeMs > newest.mtimeMs) newest = found;
  }
  return newest;
}

/**
 * Fails, saying what to do, when extcap/kubedump is missing or older than a
 * source file: tests that run the executable would test yesterday's code.
 */
export function assertBuiltIsCurrent(): void {
  if (!existsSync(BUILT)) {
    throw new Error('extcap/kubedump is missing: run `npm run build` (npm test builds it)');
  }
  const built = statSync(BUILT).mtimeMs;
  const newest = newestFile(join(ROOT, 'src'));
  if (newest.mtimeMs > built) {
    throw new Error(
      `extcap/kubedump is older than ${relative(ROOT, newest.path)}: run \`npm run build\` (npm test builds it)`,
    );
  }
}

/** How to run kubedump: the built executable (checked to be current), or the sources. */
export function kubedumpCommand(prefer: 'built' | 'source' = 'built'): string[] {
  if (prefer === 'built') {
    assertBuiltIsCurrent();
    return [BUILT];
  }
  return [process.execPath, join(ROOT, 'src', 'main.ts')];
}

export { type Ran, run } from './process.ts';
