import assert from 'node:assert/strict';
import { test } from 'node:test';
import { orStop } from '../../src/capture/stop-clock.ts';

test('orStop after a stop rejects at once, and a later failure of what it waited for is not left unhandled', async () => {
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  process.on('unhandledRejection', onUnhandled);
  try {
    const stop = new AbortController();
    stop.abort();
    const later = Promise.withResolvers<void>();
    await assert.rejects(orStop(later.promise, stop.signal), { code: 'ABORTED' });
    later.reject(new Error('the upload was cut off'));
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(unhandled, []);
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
});

test('orStop gives what it waited for, or its failure, when no stop comes first', async () => {
  const stop = new AbortController();
  assert.equal(await orStop(Promise.resolve(7), stop.signal), 7);
  await assert.rejects(orStop(Promise.reject(new Error('no')), stop.signal), /no/);
  const pending = orStop(new Promise<never>(() => {}), stop.signal);
  stop.abort();
  await assert.rejects(pending, { code: 'ABORTED' });
});
