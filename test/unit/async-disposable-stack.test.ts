import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { createContext, runInContext } from 'node:vm';

// The polyfill the bundle carries for Node 22 (the Windows executable), run in
// a context where the native class has been removed.
const source = readFileSync(
  new URL('../../scripts/sea/async-disposable-stack.js', import.meta.url),
  'utf8',
);

interface Stack {
  defer(fn: () => unknown): void;
  disposeAsync(): Promise<void>;
  disposed: boolean;
}

function polyfilled(): { Stack: new () => Stack; native: boolean } {
  const context = createContext({});
  runInContext('delete globalThis.AsyncDisposableStack', context);
  runInContext(source, context);
  const Stack = runInContext('AsyncDisposableStack', context) as new () => Stack;
  return { Stack, native: /\[native code\]/.test(String(Stack)) };
}

test('polyfill: deferred callbacks run last in first out, once', async () => {
  const { Stack, native } = polyfilled();
  assert.equal(native, false);
  const order: number[] = [];
  const stack = new Stack();
  stack.defer(() => order.push(1));
  stack.defer(async () => order.push(2));
  await stack.disposeAsync();
  await stack.disposeAsync();
  assert.deepEqual(order, [2, 1]);
  assert.equal(stack.disposed, true);
  assert.throws(() => stack.defer(() => {}), /already disposed/);
});

test('polyfill: every callback runs despite errors; the errors are chained', async () => {
  const { Stack } = polyfilled();
  const ran: string[] = [];
  const stack = new Stack();
  stack.defer(() => {
    ran.push('first');
    throw new Error('first');
  });
  stack.defer(() => {
    ran.push('second');
    throw new Error('second');
  });
  await assert.rejects(
    stack.disposeAsync(),
    (error: { name: string; error: Error; suppressed: Error }) => {
      assert.equal(error.name, 'SuppressedError');
      assert.equal(error.error.message, 'first');
      assert.equal(error.suppressed.message, 'second');
      return true;
    },
  );
  assert.deepEqual(ran, ['second', 'first']);
});
