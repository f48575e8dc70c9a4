import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { test } from 'node:test';
import { extractArgv } from '../../src/capture/remote-scripts.ts';

// A run killed between its upload and its capture leaves no file behind:
// the upload removes itself when no capture's heartbeat appears in time.
// Under dash (Debian's /bin/sh) and busybox ash.

const SHELLS = [['dash'], ['busybox', 'sh']];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('an upload whose capture never starts removes itself 30 s later; a started one stays', async () => {
  const hex = () => Math.random().toString(16).slice(2).padEnd(16, '0').slice(0, 16);
  const content = Buffer.from('#!/bin/sh\n');
  const runs = SHELLS.flatMap((shell) =>
    [false, true].map((started) => {
      const d = `/tmp/.kubedump-${hex()}`;
      mkdirSync(d, { mode: 0o700 });
      const [, ...rest] = extractArgv(content.length, d, 'x', false);
      const out = spawnSync(shell[0] as string, [...shell.slice(1), ...rest], { input: content });
      assert.equal(out.status, 0, out.stderr.toString());
      if (started) writeFileSync(`${d}/heartbeat-1`, '1\n');
      return { d, started };
    }),
  );
  try {
    // Not before its time; then within a generous margin, as a busy machine
    // stretches thirty `sleep 1`s.
    await sleep(25_000);
    for (const { d } of runs) assert.ok(existsSync(d), `${d}: removed before 30 s`);
    const unstarted = runs.filter((r) => !r.started);
    for (let waited = 0; waited < 20_000 && unstarted.some((r) => existsSync(r.d)); waited += 250) {
      await sleep(250);
    }
    for (const { d, started } of runs) {
      assert.equal(existsSync(d), started, `${d}: capture ${started ? '' : 'not '}started`);
    }
  } finally {
    for (const { d } of runs) rmSync(d, { recursive: true, force: true });
  }
});
