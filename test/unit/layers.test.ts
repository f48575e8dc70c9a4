import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { test } from 'node:test';

// Dependencies point one way: extcap and kube never import each other or
// capture; pcap and tcpdump are leaves.
const SRC = resolve(import.meta.dirname, '..', '..', 'src');
const FORBIDDEN: Record<string, string[]> = {
  extcap: ['kube', 'capture', 'tcpdump'],
  kube: ['extcap', 'capture', 'pcap', 'tcpdump'],
  pcap: ['extcap', 'kube', 'capture', 'tcpdump'],
  tcpdump: ['extcap', 'kube', 'capture', 'pcap'],
};

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

test('layers import only downwards', () => {
  const violations: string[] = [];
  let checked = 0;
  for (const file of files(SRC)) {
    const layer = relative(SRC, file).split('/')[0] as string;
    const banned = FORBIDDEN[layer];
    if (!banned) continue;
    const source = readFileSync(file, 'utf8');
    for (const match of source.matchAll(/(?:from|import\()\s*'([^']+)'/g)) {
      const spec = match[1] as string;
      checked++;
      if (!spec.startsWith('.')) {
        if (layer !== 'kube' && spec.startsWith('@kubernetes/'))
          violations.push(`${relative(SRC, file)} -> ${spec}`);
        continue;
      }
      const target = relative(SRC, resolve(join(file, '..'), spec)).split('/')[0] as string;
      if (banned.includes(target)) violations.push(`${relative(SRC, file)} -> ${spec}`);
    }
  }
  assert.ok(checked > 10, 'the scan found the imports');
  assert.deepEqual(violations, []);
});
