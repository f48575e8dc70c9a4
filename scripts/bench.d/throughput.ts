// Benchmark 3: bytes per second from a process in a pod to a local file,
// through kubedump's exec pipeline vs `kubectl exec POD -- CMD > file`.

import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { interleaved, KUBECTL, log, mbps, median, must, NODE, ROOT, ratio, rows } from './lib.ts';

const HARNESS = join(ROOT, 'scripts', 'bench.d', 'exec-copy.ts');
const BUNDLE = join(ROOT, 'build', 'bench', 'exec-copy.cjs');

/** kubectl exec with stdout straight into a file (what `> file` does). */
function kubectlToFile(argv: string[], file: string): Promise<number> {
  const fd = openSync(file, 'w');
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(KUBECTL, argv, { stdio: ['ignore', fd, 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (c) => (stderr += c));
    child.on('close', (code) => {
      closeSync(fd);
      if (code === 0) resolve(performance.now() - started);
      else reject(new Error(`kubectl exec exited ${code}: ${stderr}`));
    });
  });
}

export async function benchThroughput(
  label: string,
  kubeconfig: string,
  runs: number,
  mib: number,
): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'kubedump-bench-tp-'));
  const bytes = mib * 1024 * 1024;
  const command = ['dd', 'if=/dev/zero', 'bs=65536', `count=${mib * 16}`];
  const file = join(dir, 'out');
  // Bundled as the executable is, so neither side pays for compiling sources.
  await must([NODE, join(ROOT, 'scripts', 'sea', 'bundle.mjs'), HARNESS, BUNDLE]);
  let protocol = '';
  const t = await interleaved(runs, {
    kd: async () => {
      // The whole process is timed, start-up included, as kubectl's is.
      const r = await must([NODE, BUNDLE, kubeconfig, 'demo', 'web', file, '--', ...command]);
      const out = JSON.parse(r.stdout) as { bytes: number; protocol: string };
      if (out.bytes !== bytes || statSync(file).size !== bytes) {
        throw new Error(`kubedump exec delivered ${out.bytes} bytes, expected ${bytes}`);
      }
      protocol = out.protocol;
      return r.ms;
    },
    k: async () => {
      const kms = await kubectlToFile(
        ['--kubeconfig', kubeconfig, 'exec', '-n', 'demo', 'web', '--', ...command],
        file,
      );
      if (statSync(file).size !== bytes) throw new Error('kubectl exec delivered a short file');
      return kms;
    },
  });
  rmSync(dir, { recursive: true, force: true });
  const [kd, k] = [bytes / (median(t.kd ?? []) / 1000), bytes / (median(t.k ?? []) / 1000)];
  log(`throughput ${label}: kubedump ${mbps(kd)} (${protocol}) kubectl ${mbps(k)}`);
  rows.push({
    benchmark: `3. exec throughput, ${label} (${mib} MiB \`dd\`, kubedump ${protocol.replace('.channel.k8s.io', '')})`,
    kubedump: mbps(kd),
    peer: `\`kubectl exec\` ${mbps(k)}`,
    ratio: ratio(kd, k),
    target: '≥ 1.2×',
    met: kd >= 1.2 * k,
  });
}
