import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BlockRing } from '../../src/output-blocks.ts';

// The output's own blocks: bytes taken as views that are overwritten right
// after the call arrive whole and in order; a full ring pauses the producer
// and drains; a little data goes out within the turn; a failed write stops it.

type Done = (error?: Error | null) => void;

/** A writer that completes each write after `delayMs`, recording copies of what it got. */
function slowWriter(delayMs: number) {
  const got: Buffer[] = [];
  let writes = 0;
  const write = (bytes: Buffer, done: Done) => {
    writes++;
    const copy = Buffer.from(bytes);
    setTimeout(() => {
      got.push(copy);
      done(null);
    }, delayMs);
  };
  return { write, got, writes: () => writes };
}

const flushed = (ring: BlockRing) =>
  new Promise<void>((resolve, reject) => ring.flush((e) => (e ? reject(e) : resolve())));

test('views overwritten after each call arrive whole and in order; a full ring pauses, then drains', async () => {
  const writer = slowWriter(2);
  const ring = new BlockRing(writer.write, 3, 1024);
  const expected: Buffer[] = [];
  // One scratch buffer reused for every call, as a socket's static read buffer is.
  const scratch = Buffer.alloc(700);
  let pauses = 0;
  let i = 0;
  await new Promise<void>((resolve) => {
    const produce = () => {
      while (i < 300) {
        const n = 1 + ((i * 37) % 700);
        scratch.fill(i % 251, 0, n);
        expected.push(Buffer.from(scratch.subarray(0, n)));
        i++;
        if (!ring.take(scratch.subarray(0, n))) {
          pauses++;
          ring.onDrain(produce);
          return;
        }
      }
      resolve();
    };
    produce();
  });
  await flushed(ring);
  assert.ok(pauses > 0, 'a ring of 3 KiB paused a producer of 100 KiB');
  assert.ok(writer.writes() <= expected.length / 2, `${writer.writes()} writes for 300 views`);
  assert.deepEqual(Buffer.concat(writer.got), Buffer.concat(expected));
});

test('a few bytes go out within the turn, without waiting for a block to fill', async () => {
  const writer = slowWriter(0);
  const ring = new BlockRing(writer.write);
  assert.equal(ring.take(Buffer.from('one packet')), true);
  await new Promise((r) => setImmediate(r));
  await new Promise((r) => setTimeout(r, 5));
  assert.equal(Buffer.concat(writer.got).toString(), 'one packet');
});

test('while bytes flow in small reads, writes wait for more (fewer, larger writes), and the last bytes still go out on their own', async () => {
  // A writer as fast as the thread pool's: done on the next turn.
  const got: Buffer[] = [];
  let writes = 0;
  const ring = new BlockRing((bytes, done) => {
    writes++;
    got.push(Buffer.from(bytes));
    setImmediate(() => done(null));
  });
  const expected: Buffer[] = [];
  // One small read per turn of the event loop, as a socket delivers a steady stream.
  for (let i = 0; i < 400; i++) {
    const read = Buffer.alloc(512, i % 251);
    expected.push(Buffer.from(read));
    assert.equal(ring.take(read), true);
    await new Promise((r) => setImmediate(r));
  }
  // No flush: what lingers goes out by itself.
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(Buffer.concat(got), Buffer.concat(expected));
  assert.ok(writes <= 400 / 4, `${writes} writes for 400 reads of one turn each`);
});

test('a failed write stops the ring: flush reports it, later bytes are refused, a paused producer is let go', async () => {
  let calls = 0;
  const ring = new BlockRing(
    (_bytes, done) => {
      calls++;
      setImmediate(() => done(new Error('ENOSPC: no space left on device')));
    },
    2,
    16,
  );
  ring.take(Buffer.alloc(40));
  let released = false;
  ring.onDrain(() => {
    released = true;
  });
  await assert.rejects(flushed(ring), /ENOSPC/);
  assert.equal(calls, 1);
  assert.equal(released, true);
  assert.equal(ring.take(Buffer.from('x')), false);
  assert.match(String(ring.error), /ENOSPC/);
});
