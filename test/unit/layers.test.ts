import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { test } from 'node:test';

// Dependencies point one way. The two faces (wireshark, cli) use capture and
// never each other; the capture session knows neither face; extcap and kube
// never import each other or capture; pcap and tcpdump are leaves; the
// shared files at the top (errors, log, version, view-sink) import no layer. Only kube
// and capture touch the Kubernetes client.
const SRC = resolve(import.meta.dirname, '..', '..', 'src');
const FACES = ['wireshark', 'cli'];
const FORBIDDEN: Record<string, string[]> = {
  wireshark: ['cli'],
  cli: ['wireshark', 'extcap'],
  capture: [...FACES],
  extcap: ['kube', 'capture', 'tcpdump', ...FACES],
  kube: ['extcap', 'capture', 'pcap', 'tcpdump', ...FACES],
  pcap: ['extcap', 'kube', 'capture', 'tcpdump', ...FACES],
  tcpdump: ['extcap', 'kube', 'capture', 'pcap', ...FACES],
};
const LAYERS = ['wireshark', 'cli', 'extcap', 'capture', 'kube', 'pcap', 'tcpdump'];
for (const shared of ['errors.ts', 'log.ts', 'version.ts', 'view-sink.ts'])
  FORBIDDEN[shared] = LAYERS;

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/** Every file's imports of other files of src/ (static, type-only and dynamic), by path from src/. */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of files(SRC)) {
    const source = readFileSync(file, 'utf8');
    const targets = [...source.matchAll(/(?:from|import\(?)\s*'(\.[^']+)'/g)].map((m) =>
      relative(SRC, resolve(join(file, '..'), m[1] as string)),
    );
    graph.set(relative(SRC, file), targets);
  }
  return graph;
}

/** One import cycle as a path of files, or undefined when the graph has none. */
export function findCycle(graph: ReadonlyMap<string, readonly string[]>): string[] | undefined {
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (node: string): string[] | undefined => {
    if (state.get(node) === 'done') return undefined;
    if (state.get(node) === 'open') return [...path.slice(path.indexOf(node)), node];
    state.set(node, 'open');
    path.push(node);
    for (const next of graph.get(node) ?? []) {
      const cycle = visit(next);
      if (cycle) return cycle;
    }
    path.pop();
    state.set(node, 'done');
    return undefined;
  };
  for (const node of graph.keys()) {
    const cycle = visit(node);
    if (cycle) return cycle;
  }
  return undefined;
}

test('layers import only downwards', () => {
  const violations: string[] = [];
  let checked = 0;
  for (const file of files(SRC)) {
    const layer = relative(SRC, file).split('/')[0] as string;
    const banned = FORBIDDEN[layer];
    if (!banned) continue;
    const source = readFileSync(file, 'utf8');
    for (const match of source.matchAll(/(?:from|import\(?)\s*'([^']+)'/g)) {
      const spec = match[1] as string;
      checked++;
      if (!spec.startsWith('.')) {
        if (!['kube', 'capture'].includes(layer) && spec.startsWith('@kubernetes/'))
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

test('no import cycle', () => {
  const graph = importGraph();
  assert.ok(graph.get('main.ts')?.includes('cli/commands.ts'), 'the scan found the imports');
  assert.equal(findCycle(graph)?.join(' -> '), undefined);
});

test('the cycle finder finds a cycle', () => {
  const graph = new Map([
    ['a.ts', ['b.ts']],
    ['b.ts', ['c.ts', 'd.ts']],
    ['c.ts', []],
    ['d.ts', ['b.ts']],
  ]);
  assert.deepEqual(findCycle(graph), ['b.ts', 'd.ts', 'b.ts']);
  graph.set('d.ts', ['c.ts']);
  assert.equal(findCycle(graph), undefined);
});
