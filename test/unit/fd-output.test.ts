import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fdStream, unwritten } from '../../src/cli/fd-output.ts';

// The descriptor output: writes that pile up while one is under way go out
// together (writev), in order, and a partial write resumes where it stopped.

test('many small writes arrive whole and in order, batched behind the one under way', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kubedump-fd-'));
  const file = join(dir, 'out');
  const fd = openSync(file, 'w');
  try {
    const out = fdStream(fd);
    // Count the writes handed to the descriptor.
    let calls = 0;
    const single = out._write.bind(out);
    const batch = out._writev?.bind(out);
    assert.ok(batch, 'the descriptor output batches with _writev');
    out._write = (chunk, encoding, callback) => {
      calls++;
      single(chunk, encoding, callback);
    };
    out._writev = (chunks, callback) => {
      calls++;
      batch(chunks, callback);
    };
    const expected: Buffer[] = [];
    for (let i = 0; i < 2000; i++) {
      const chunk = Buffer.alloc(1 + (i % 300), i % 251);
      expected.push(chunk);
      out.write(chunk);
    }
    await new Promise<void>((resolve) => out.end(resolve));
    // The first write goes alone; the 1,999 queued behind it go out together.
    assert.ok(calls <= 3, `${calls} writes for 2,000 chunks`);
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
