import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileLogger, heldLogger, redact } from '../../src/log.ts';

test('credentials never reach the log file, which is 0600', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kubedump-log-'));
  const path = join(dir, 'sub', 'kubedump.log');
  writeFileSync(join(dir, 'old.log'), 'x', { mode: 0o644 });
  for (const file of [path, join(dir, 'old.log')]) {
    const log = fileLogger(file, 'debug');
    log.debug('request', {
      headers: 'Authorization: Bearer abc.def-ghi',
      token: 'tok-123',
      note: 'password: hunter2, client-key-data: LS0tLS1CRUdJTi',
      error: new Error('401 for Bearer zzz'),
    });
    log.info('key -----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY----- done');
    log.close();
    const text = readFileSync(file, 'utf8');
    for (const secret of ['abc.def-ghi', 'tok-123', 'hunter2', 'LS0tLS1CRUdJTi', 'zzz', 'MIIB']) {
      assert.ok(!text.includes(secret), `${secret} leaked into ${text}`);
    }
    assert.equal(statSync(file).mode & 0o777, 0o600);
  }
  assert.equal(redact('plain text'), 'plain text');
});

test('a held logger keeps its lines until released, in order, then writes through', () => {
  const file = join(mkdtempSync(join(tmpdir(), 'kubedump-held-')), 'held.log');
  const log = fileLogger(file, 'debug');
  const held = heldLogger(log);
  held.log.debug('probe started', { dir: '/tmp/.kubedump-0123456789abcdef' });
  held.log.info('probe answered');
  log.warn('mode: unprivileged for demo/web');
  const lines = () =>
    readFileSync(file, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { message: string; loggedAt?: string; dir?: string });
  assert.deepEqual(
    lines().map((l) => l.message),
    ['mode: unprivileged for demo/web'],
  );
  held.release();
  held.log.info('capture started');
  log.close();
  const all = lines();
  assert.deepEqual(
    all.map((l) => l.message),
    ['mode: unprivileged for demo/web', 'probe started', 'probe answered', 'capture started'],
  );
  assert.equal(all[1]?.dir, '/tmp/.kubedump-0123456789abcdef');
  assert.match(all[1]?.loggedAt ?? '', /^\d{4}-\d\d-\d\dT/);
  assert.equal(all[3]?.loggedAt, undefined, 'after release, lines are written as they come');
});
