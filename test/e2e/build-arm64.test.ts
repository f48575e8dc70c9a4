import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ROOT, run } from '../support/kubedump.ts';

// The same build script makes the linux-arm64 executable; qemu-user runs it.
test('scripts/build --arch arm64 makes an executable that runs under qemu-aarch64', async () => {
  const built = await run(['bash', join(ROOT, 'scripts', 'build'), '--arch', 'arm64'], {
    timeoutMs: 300_000,
  });
  assert.equal(built.code, 0, built.stderr);
  const binary = join(ROOT, 'build', 'kubedump-linux-arm64');
  assert.ok(existsSync(binary));
  const file = await run(['file', '-b', binary]);
  assert.match(file.stdout, /ARM aarch64/);
  const version = await run(
    ['qemu-aarch64-static', '-L', '/usr/aarch64-linux-gnu', binary, 'version'],
    { timeoutMs: 60_000 },
  );
  assert.equal(version.code, 0, version.stderr);
  assert.match(version.stdout, /^kubedump \d+\.\d+\.\d+ \(node 24\.21\.0, single executable\)/);
  assert.match(version.stdout, /linux-arm64: sha256 [0-9a-f]{64}/);
});
