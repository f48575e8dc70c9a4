// Benchmarks 1 and 2: extcap discovery against node's floor and kubectl; tshark -D.
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  interleaved,
  KUBEDUMP,
  kubectl,
  log,
  median,
  ms,
  must,
  NODE,
  ratio,
  rows,
  timed,
} from './lib.ts';

export interface DiscoveryCase {
  label: string;
  kubeconfig: string;
  /** KUBEDUMP_NAMESPACES value; kubectl gets the same selection. */
  namespaces: string;
  pods: number;
}

export async function benchDiscovery(c: DiscoveryCase, runs: number): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'kubedump-bench-disc-'));
  const env = {
    ...process.env,
    KUBECONFIG: c.kubeconfig,
    KUBEDUMP_NAMESPACES: c.namespaces,
    KUBEDUMP_MAX_INTERFACES: String(c.pods + 10),
    XDG_CONFIG_HOME: join(dir, 'config'),
  };
  const scope = c.namespaces === '*' ? ['-A'] : ['-n', c.namespaces];
  const kctl = kubectl(c.kubeconfig, ['get', 'pods', ...scope, '-o', 'name']);
  const listing = await must(kctl);
  const extcap = [KUBEDUMP, '--extcap-interfaces', '--extcap-version=4.0'];
  const want = listing.stdout.trim().split('\n').length;
  // Every timed run must list the pods: past the 1 s deadline only the
  // generic interface prints, and a fast answer without the pods is no answer.
  const listedPods = async (cache: string) => {
    const r = await must(extcap, { env: { ...env, XDG_CACHE_HOME: cache } });
    const listed = r.stdout.split('\n').filter((l) => l.startsWith('interface')).length - 1;
    if (listed !== want) throw new Error(`kubedump listed ${listed} pods, kubectl ${want}`);
    return r.ms;
  };
  let n = 0;
  const t = await interleaved(runs, {
    floor: () => timed([NODE, '-e', '0']),
    kubedump: async () => {
      const cache = join(dir, `cache-${n++}`);
      const cold = await listedPods(cache);
      const warm = await listedPods(cache);
      rmSync(cache, { recursive: true, force: true });
      return { cold, warm };
    },
    k: () => timed(kctl),
  });
  rmSync(dir, { recursive: true, force: true });
  const [floor, cold, warm, k] = [t.floor, t.cold, t.warm, t.k].map((xs) => median(xs ?? [])) as [
    number,
    number,
    number,
    number,
  ];
  log(
    `discovery ${c.label}: floor ${ms(floor)} cold ${ms(cold)} warm ${ms(warm)} kubectl ${ms(k)}`,
  );
  rows.push({
    benchmark: `1. discovery warm, ${c.label}`,
    kubedump: ms(warm),
    peer: `\`node -e 0\` ${ms(floor)}`,
    ratio: ratio(warm, floor),
    target: '≤ 2×',
    met: warm <= 2 * floor,
  });
  rows.push({
    benchmark: `1. discovery cold, ${c.label}`,
    kubedump: ms(cold),
    // kubedump asks for every pod in one list request; kubectl pages by 500.
    peer: `\`kubectl get pods -o name\` ${ms(k)} (pages of 500; kubedump: one request)`,
    ratio: ratio(cold, k),
    target: '≤ 1×',
    met: cold <= k,
  });
}

/** Benchmark 2: `tshark -D` with and without kubedump in the personal extcap folder, warm. */
export async function benchTshark(c: DiscoveryCase, runs: number): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'kubedump-bench-tshark-'));
  mkdirSync(join(dir, 'with', 'extcap'), { recursive: true });
  mkdirSync(join(dir, 'without', 'extcap'), { recursive: true });
  copyFileSync(KUBEDUMP, join(dir, 'with', 'extcap', 'kubedump'));
  const env = (which: string) => ({
    ...process.env,
    KUBECONFIG: c.kubeconfig,
    KUBEDUMP_NAMESPACES: c.namespaces,
    KUBEDUMP_MAX_INTERFACES: String(c.pods + 10),
    WIRESHARK_CONFIG_DIR: join(dir, which),
    XDG_CACHE_HOME: join(dir, 'cache'),
    XDG_CONFIG_HOME: join(dir, 'config'),
  });
  const fill = () => must([KUBEDUMP, '--extcap-interfaces'], { env: env('with') });
  const listed = await must(['tshark', '-D'], { env: env('with') });
  const ifaces = listed.stdout.split('\n').filter((l) => /\. kubedump/.test(l)).length;
  // Others may add pods to a shared cluster: count what tshark shows.
  if (ifaces < 2) throw new Error(`tshark -D listed ${ifaces} kubedump interfaces`);
  const t = await interleaved(runs, {
    with: async () => {
      await fill(); // warm: the 30 s cache is fresh
      return timed(['tshark', '-D'], env('with'));
    },
    without: () => timed(['tshark', '-D'], env('without')),
  });
  rmSync(dir, { recursive: true, force: true });
  const [w, wo] = [median(t.with ?? []), median(t.without ?? [])];
  log(`tshark -D ${c.label}: with ${ms(w)} without ${ms(wo)}`);
  rows.push({
    benchmark: `2. \`tshark -D\` warm, ${c.label} (${ifaces} kubedump interfaces)`,
    kubedump: `${ms(w)} (+${ms(w - wo)})`,
    peer: `without kubedump ${ms(wo)}`,
    ratio: ratio(w, wo),
    target: '≤ +100 ms',
    met: w - wo <= 100,
  });
}
