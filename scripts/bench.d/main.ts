// `npm run bench`: every benchmark, contenders interleaved run by
// run, medians and ratios in one Markdown table (stdout; progress on stderr).
// Usage: node scripts/bench.d/main.ts [--runs N] [--load-seconds S] [--only 1,2,...] [--readme]
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { benchDiscovery, benchTshark } from './discovery.ts';
import {
  kubectl,
  log,
  NODE,
  pidsNamed,
  REAL_KUBECONFIG,
  ROOT,
  rows,
  run,
  table,
  waitExit,
} from './lib.ts';
import { benchLoad } from './load.ts';
import { benchLoadMany } from './load-many.ts';
import { benchThroughput } from './throughput.ts';
import { benchTtfp } from './ttfp.ts';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '7' },
    'load-seconds': { type: 'string', default: '30' },
    only: { type: 'string', default: '1,2,3,4,5,6,7' },
    readme: { type: 'boolean', default: false },
  },
});
const runs = Number(values.runs);
const only = new Set(values.only.split(','));
const started = performance.now();

/** The emulated cluster: 5,000 unbacked pods over 100 namespaces (50 each), plus demo pods. */
async function startEmulator(): Promise<{
  kubeconfig: string;
  pid: number;
  stop: () => Promise<void>;
}> {
  const child = spawn(
    NODE,
    [join(ROOT, 'test/emulator/main.ts'), '--bulk', '5000', '--bulk-namespaces', '100'],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const kubeconfig = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (c) => {
      out += c;
      const m = /KUBECONFIG=(\S+)\n/.exec(out);
      if (m) resolve(m[1] as string);
    });
    child.once('exit', (code) => reject(new Error(`emulator exited ${code}`)));
  });
  return {
    kubeconfig,
    pid: child.pid as number,
    stop: async () => {
      child.kill('SIGTERM');
      await waitExit(child);
    },
  };
}

const emulator = await startEmulator();
log(`emulated cluster up: ${emulator.kubeconfig}`);
try {
  if (only.has('1')) {
    for (const [label, namespaces, pods] of [
      ['50 pods', 'bulk-0', 50],
      ['5,000 pods', '*', 5005],
    ] as const) {
      await benchDiscovery({ label, kubeconfig: emulator.kubeconfig, namespaces, pods }, runs);
    }
  }
  if (only.has('2')) {
    const real = {
      label: 'real cluster',
      kubeconfig: REAL_KUBECONFIG,
      namespaces: 'demo',
      pods: 5,
    };
    await benchTshark(real, runs);
    const emu = { label: 'emulated', kubeconfig: emulator.kubeconfig, namespaces: 'bulk-0' };
    await benchTshark({ ...emu, label: 'emulated, 50 pods', pods: 50 }, Math.min(runs, 3));
  }
  if (only.has('3')) {
    // Every byte is relayed by each: the shim reads the container's output,
    // containerd's streaming server frames it, the kubelet and then the API
    // server pass it on.
    const cluster = {
      'API server': pidsNamed(['kube-apiserver']),
      kubelet: pidsNamed(['kubelet']),
      containerd: pidsNamed(['containerd']),
      shims: pidsNamed(['containerd-shim*']),
    };
    await benchThroughput('real cluster', REAL_KUBECONFIG, runs, 512, cluster);
    await benchThroughput('emulated', emulator.kubeconfig, runs, 512, { emulator: [emulator.pid] });
  }
  if (only.has('4') || only.has('6')) {
    await benchLoad(REAL_KUBECONFIG, Number(values['load-seconds']));
  }
  if (only.has('5')) await benchTtfp(REAL_KUBECONFIG, runs);
  // About 10 s a run (three pods to start, load, stop): 3 runs, not 7, keep it near a minute and a half.
  if (only.has('7')) await benchLoadMany(REAL_KUBECONFIG, Math.min(runs, 3), 2);
} finally {
  await emulator.stop();
  // The real cluster stays up, as the tests find it: without the binaries
  // the rows kept in web (--keep-binary).
  await run(
    kubectl(REAL_KUBECONFIG, [
      'exec',
      '-n',
      'demo',
      'web',
      '--',
      'sh',
      '-c',
      'rm -rf /tmp/.kubedump-keep-*',
    ]),
  );
}

const minutes = ((performance.now() - started) / 60_000).toFixed(1);
const single = only.has('4') || only.has('6') ? '; rows 4 and 6 are a single run each' : '';
const output = `${table(rows)}\n\nMedians of ${runs} interleaved runs (rows 1–3: after a discarded warm-up round, alternating which contender goes first)${single}; ${minutes} min.\n`;
process.stdout.write(output);

if (values.readme) {
  const path = join(ROOT, 'README.md');
  const readme = readFileSync(path, 'utf8');
  const begin = '<!-- bench:begin -->';
  const end = '<!-- bench:end -->';
  const a = readme.indexOf(begin);
  const b = readme.indexOf(end);
  if (a < 0 || b < a) throw new Error('README.md has no bench:begin/bench:end markers');
  const when = new Date().toISOString().slice(0, 10);
  const block = `${begin}\n${output}\nMeasured ${when} on ${(await import('node:os')).cpus().length} cores.\n${end}`;
  writeFileSync(path, readme.slice(0, a) + block + readme.slice(b + end.length));
  log('README.md updated');
}
