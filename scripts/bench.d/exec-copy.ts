// Benchmark 3's harness: runs a command in a pod through kubedump's exec
// pipeline (src/kube/exec.ts openExec, the same code a capture streams
// through) and writes its stdout to a local file, with backpressure.
// Usage: node exec-copy.ts KUBECONFIG NAMESPACE POD OUTFILE -- COMMAND...
// Prints one JSON line: {bytes, ms, protocol, exitCode}; ms excludes module loading.
import { createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { loadKubeConfig } from '../../src/kube/config.ts';
import { openExec } from '../../src/kube/exec.ts';

const [kubeconfig, namespace, pod, outfile, dashes, ...command] = process.argv.slice(2);
if (!kubeconfig || !namespace || !pod || !outfile || dashes !== '--' || command.length === 0) {
  console.error('usage: exec-copy.ts KUBECONFIG NAMESPACE POD OUTFILE -- COMMAND...');
  process.exit(2);
}
// Timed from here: loading the modules from TypeScript sources (not the
// bundle) is not transport; reading the kubeconfig and connecting are.
const started = performance.now();
const kc = loadKubeConfig({ kubeconfig });
const session = await openExec(kc, { namespace, pod, command });
let bytes = 0;
session.stdout.on('data', (chunk: Buffer) => {
  bytes += chunk.length;
});
await pipeline(session.stdout, createWriteStream(outfile));
const result = await session.result;
session.close();
const ms = performance.now() - started;
console.log(JSON.stringify({ bytes, ms, protocol: session.protocol, exitCode: result.exitCode }));
process.exit(0);
