import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CreatedRecordFile, recordsOfEndedCaptures } from '../../src/capture/created-record.ts';

// The record a capture keeps of what it created, and what a later process
// finds of it after a kill.

const helper = (name: string) => ({ namespace: 'demo', name, session: `host/1/${name}` });

test('a record lists the helpers created and not removed, in a file only its user reads', () => {
  const dir = join(mkdtempSync(join(tmpdir(), 'kd-record-')), 'running');
  const record = new CreatedRecordFile(dir, 'kubedump.demo.web', { context: 'c' }, 4242);
  record.helperCreated(helper('kubedump-web-1'));
  record.helperCreated(helper('kubedump-web-2'));
  record.helperRemoved(helper('kubedump-web-1'));
  assert.equal(statSync(record.file).mode & 0o777, 0o600);
  assert.equal(statSync(dir).mode & 0o777, 0o700);
  const [found, ...more] = recordsOfEndedCaptures(dir, 'kubedump.demo.web', () => false);
  assert.deepEqual(more, []);
  assert.equal(found?.pid, 4242);
  assert.equal(found?.context, 'c');
  assert.deepEqual(found?.helpers, [helper('kubedump-web-2')]);
  record.discard();
  assert.deepEqual(readdirSync(dir), []);
});

test('records of running captures, of other interfaces and unreadable files are not returned', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kd-record-'));
  new CreatedRecordFile(dir, 'kubedump.demo.web', {}, 100).helperCreated(helper('a'));
  new CreatedRecordFile(dir, 'kubedump.demo.web', {}, 200).helperCreated(helper('b'));
  new CreatedRecordFile(dir, 'kubedump.demo.web2', {}, 300).helperCreated(helper('c'));
  writeFileSync(join(dir, 'kubedump_demo_web.400.json'), '{not json');
  const running = (pid: number) => pid === 200;
  const ended = recordsOfEndedCaptures(dir, 'kubedump.demo.web', running);
  assert.deepEqual(
    ended.map((r) => [r.pid, r.helpers.map((h) => h.name)]),
    [[100, ['a']]],
  );
  // Without an interface: every ended capture's record.
  const all = recordsOfEndedCaptures(dir, undefined, running).map((r) => r.pid);
  assert.deepEqual(all.sort(), [100, 300]);
});

test('this process counts as running; a missing folder holds no records', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kd-record-'));
  new CreatedRecordFile(dir, 'x', {}).helperCreated(helper('mine'));
  assert.deepEqual(recordsOfEndedCaptures(dir, 'x'), []);
  assert.deepEqual(recordsOfEndedCaptures(join(dir, 'absent'), 'x'), []);
});
