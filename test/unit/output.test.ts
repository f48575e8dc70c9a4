import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fdStream, openOutput, unwritten } from '../../src/output.ts';

// The descriptor output: chunks written and views taken arrive in order, and
// a partial write resumes where it stopped.

test('many small writes to a descriptor arrive whole and in order', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kubedump-fd-'));
  const file = join(dir, 'out');
  const fd = openSync(file, 'w');
  try {
    const out = fdStream(fd);
    const expected: Buffer[] = [];
    for (let i = 0; i < 2000; i++) {
      const chunk = Buffer.alloc(1 + (i % 300), i % 251);
      expected.push(chunk);
      // Half of them as views of one reused buffer, as a capture hands records on.
      if (i % 2) out.write(chunk);
      else out.take(Buffer.from(chunk));
    }
    await new Promise<void>((resolve) => out.end(resolve));
    assert.deepEqual(readFileSync(file), Buffer.concat(expected));
  } finally {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('after a partial write, the rest starts at the first unwritten byte', () => {
  const bufs = [Buffer.from('abc'), Buffer.from('defg'), Buffer.from('h')];
  const text = (list: Buffer[]) => Buffer.concat(list).toString();
  assert.equal(text(unwritten(bufs, 0)), 'abcdefgh');
  assert.equal(text(unwritten(bufs, 3)), 'defgh');
  assert.equal(text(unwritten(bufs, 5)), 'fgh');
  assert.equal(unwritten(bufs, 5).length, 2);
  assert.equal(text(unwritten(bufs, 7)), 'h');
  assert.deepEqual(unwritten(bufs, 8), []);
});

// The output by path: a file is written in order and created with the mode
// asked; a fifo waits for its reader, holds the capture back while the reader
// stalls without stopping the event loop, and reports a reader that went away
// as EPIPE (a stop for the capture).

async function withDir<T>(body: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'kubedump-out-'));
  try {
    return await body(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('a file output holds every chunk in order, created with the mode asked', () =>
  withDir(async (dir) => {
    const file = join(dir, 'cap.pcap');
    const out = openOutput(file, 0o640);
    const expected: Buffer[] = [];
    for (let i = 0; i < 3000; i++) {
      const chunk = Buffer.alloc(1 + ((i * 37) % 4000), i % 253);
      expected.push(chunk);
      out.write(chunk);
    }
    await new Promise<void>((resolve) => out.end(resolve));
    assert.deepEqual(readFileSync(file), Buffer.concat(expected));
    assert.equal(statSync(file).mode & 0o777, 0o640 & ~process.umask());
  }));

test('a fifo output waits for its reader, and a stalled reader holds writes back, not the event loop', () =>
  withDir(async (dir) => {
    const fifo = join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    const out = openOutput(fifo);
    const chunk = Buffer.alloc(64 * 1024, 7);
    // No reader yet: the writes queue and report backpressure.
    let accepted = 0;
    while (out.write(chunk)) accepted++;
    assert.ok(accepted < 8, `${accepted} chunks taken with no reader`);
    // A reader that waits 1 s before it reads: the loop keeps ticking meanwhile.
    const reader = spawn('sh', ['-c', 'exec 3<"$1"; sleep 1; cat <&3 | wc -c', 'sh', fifo]);
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 50);
    let total = (accepted + 1) * chunk.length;
    for (let i = 0; i < 100; i++) {
      if (!out.write(chunk)) await once(out, 'drain');
      total += chunk.length;
    }
    await new Promise<void>((resolve) => out.end(resolve));
    clearInterval(ticker);
    const count = await new Promise<string>((resolve) => {
      let text = '';
      reader.stdout.on('data', (c) => (text += c));
      reader.on('close', () => resolve(text.trim()));
    });
    assert.equal(Number(count), total);
    assert.ok(ticks >= 10, `the event loop ticked ${ticks} times during a 1 s stall`);
  }));

test('a fifo whose reader goes away ends the output with EPIPE', () =>
  withDir(async (dir) => {
    const fifo = join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    const out = openOutput(fifo);
    const reader = spawn('sh', ['-c', 'head -c 1000 "$1" >/dev/null', 'sh', fifo]);
    const failed = once(out, 'error');
    const chunk = Buffer.alloc(64 * 1024, 1);
    const pump = async () => {
      while (!out.destroyed) {
        if (!out.write(chunk)) await Promise.race([once(out, 'drain'), failed]);
      }
    };
    void pump();
    const [error] = (await failed) as [NodeJS.ErrnoException];
    assert.equal(error.code, 'EPIPE');
    await once(reader, 'close');
  }));
