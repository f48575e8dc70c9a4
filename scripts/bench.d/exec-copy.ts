// Benchmark 3's harness: runs a command in a pod through kubedump's exec
// pipeline (src/kube/exec.ts openExec, the same code a capture streams
// through) and writes its stdout to a local file through the output
// `kubedump capture -w FILE` writes through (src/output.ts), with backpressure. It is
// bundled as the executable is (scripts/sea/bundle.mjs) and timed as a whole
// process, start-up included, as kubectl is. With `-` for OUTFILE the bytes
// are counted and dropped: the rate of the path without the output, the
// most this client could reach if writing the file cost nothing.
// Usage: node exec-copy.cjs KUBECONFIG NAMESPACE POD OUTFILE|- -- COMMAND...
// Prints one JSON line: {bytes, protocol, exitCode}.
import { loadKubeConfig } from '../../src/kube/config.ts';
import { openExec } from '../../src/kube/exec.ts';
import { openOutput } from '../../src/output.ts';

async function main(): Promise<void> {
  const [kubeconfig, namespace, pod, outfile, dashes, ...command] = process.argv.slice(2);
  if (!kubeconfig || !namespace || !pod || !outfile || dashes !== '--' || command.length === 0) {
    console.error('usage: exec-copy.cjs KUBECONFIG NAMESPACE POD OUTFILE|- -- COMMAND...');
    process.exit(2);
  }
  const kc = loadKubeConfig({ kubeconfig });
  const session = await openExec(kc, { namespace, pod, command });
  let bytes = 0;
  // As a capture hands its records on: views of the socket's read buffer,
  // copied once into the output's own blocks.
  const output = outfile === '-' ? undefined : openOutput(outfile, 0o644);
  session.pipeTo({
    take: (view) => {
      bytes += view.length;
      return output ? output.take(view) : true;
    },
    onDrain: (listener) => output?.onDrain(listener),
  });
  await session.result;
  if (output) {
    await new Promise<void>((resolve, reject) =>
      output.end((error?: Error | null) => (error ? reject(error) : resolve())),
    );
  }
  const result = await session.result;
  session.close();
  const protocol = `${session.transport === 'spdy' ? 'SPDY' : 'WebSocket'} ${session.protocol}`;
  console.log(JSON.stringify({ bytes, protocol, exitCode: result.exitCode }));
  process.exit(0);
}

// A CommonJS bundle has no top-level await.
void main();
