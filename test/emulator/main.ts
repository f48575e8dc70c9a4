// CLI: `main.ts [start] [flags]` runs an emulator in the foreground until SIGTERM/SIGINT;
// `main.ts cleanup [--all]` removes leftovers of killed runs; `main.ts check` lists them.
import { parseArgs } from 'node:util';
import { checkClean, sweep } from './cleanup.ts';
import { V4, V5 } from './exec.ts';
import { startEmulator } from './index.ts';

const USAGE = `usage: main.ts [start] [--bulk N] [--bulk-namespaces K] [--no-demo] [--v4-only]
                [--stdin-eof-on-disconnect] [--kubeconfig-dir DIR]
       main.ts cleanup [--all]     remove leftovers of emulators whose process died (--all: every one)
       main.ts check               list leftovers; exit status 1 if any`;

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      bulk: { type: 'string' },
      'bulk-namespaces': { type: 'string' },
      'no-demo': { type: 'boolean' },
      'v4-only': { type: 'boolean' },
      'stdin-eof-on-disconnect': { type: 'boolean' },
      'kubeconfig-dir': { type: 'string' },
      all: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const verb = positionals[0] ?? 'start';
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (verb === 'cleanup') {
    const swept = await sweep(values.all === true);
    console.log(swept.length ? `swept instances: ${swept.join(' ')}` : 'nothing to sweep');
    return 0;
  }
  if (verb === 'check') {
    const left = await checkClean();
    for (const l of left) console.log(l);
    return left.length ? 1 : 0;
  }
  if (verb !== 'start') {
    console.error(USAGE);
    return 2;
  }
  const t0 = performance.now();
  const emu = await startEmulator({
    demoPods: values['no-demo'] !== true,
    bulkPods: Number(values.bulk ?? 0),
    bulkNamespaces: Number(values['bulk-namespaces'] ?? 10),
    execProtocols: values['v4-only'] ? [V4] : [V5, V4],
    stdinOnDisconnect: values['stdin-eof-on-disconnect'] ? 'eof' : 'keep',
    ...(values['kubeconfig-dir'] ? { kubeconfigDir: values['kubeconfig-dir'] } : {}),
  });
  console.log(`KUBECONFIG=${emu.kubeconfigPath}`);
  console.error(
    `emulator ${emu.url} (instance ${emu.slot}) ready in ${Math.round(performance.now() - t0)} ms`,
  );
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  const t1 = performance.now();
  await emu.close();
  console.error(`closed in ${Math.round(performance.now() - t1)} ms`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(e instanceof Error ? (e.stack ?? e.message) : e);
    process.exit(1);
  },
);
