import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileLogger, redact } from '../../src/log.ts';

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
