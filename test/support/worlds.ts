import assert from 'node:assert/strict';
import { copyFileSync, linkSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Emulator, startEmulator } from '../emulator/index.ts';
import { assertBuiltIsCurrent, BUILT } from './kubedump.ts';
import { kubectl, type RunResult, realCluster } from './real-cluster.ts';

// The two clusters every capture test runs against, behind one shape.

// Every test that opens a world runs the built executable: it must be current.
assertBuiltIsCurrent();

export interface World {
  name: 'real' | 'emulated';
  kubeconfig: string;
  namespace: string;
  kubectl(args: readonly string[], input?: string): Promise<RunResult>;
  /** The emulated world's emulator (its api: pods, identities, faults). */
  emulator?: Emulator;
  close(): Promise<void>;
}

export async function openWorld(name: World['name']): Promise<World> {
  if (name === 'real') {
    const { kubeconfig, namespace } = realCluster();
    return {
      name,
      kubeconfig,
      namespace,
      kubectl: (args, input) =>
        kubectl(args, { kubeconfig, ...(input !== undefined && { input }) }),
      close: async () => {},
    };
  }
  const emulator = await startEmulator();
  const kubeconfig = emulator.kubeconfigPath;
  return {
    name,
    kubeconfig,
    namespace: 'demo',
    kubectl: (args, input) => kubectl(args, { kubeconfig, ...(input !== undefined && { input }) }),
    emulator,
    close: () => emulator.close(),
  };
}

/** A private Wireshark configuration with kubedump installed as an extcap. */
export function wiresharkHome(kubeconfig: string): { dir: string; env: NodeJS.ProcessEnv } {
  const dir = mkdtempSync(join(tmpdir(), 'kubedump-wireshark-'));
  mkdirSync(join(dir, 'extcap'));
  // A hard link where the file system allows it: a copy is 110 MB.
  const installed = join(dir, 'extcap', 'kubedump');
  try {
    linkSync(BUILT, installed);
  } catch {
    copyFileSync(BUILT, installed);
  }
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    WIRESHARK_CONFIG_DIR: dir,
    KUBECONFIG: kubeconfig,
    XDG_CACHE_HOME: join(dir, 'cache'),
    XDG_CONFIG_HOME: join(dir, 'config'),
    XDG_STATE_HOME: join(dir, 'state'),
  };
  return { dir, env };
}

/** Applies a pod manifest and waits until the pod is Ready (60 s at most). */
export async function applyReadyPod(
  world: World,
  pod: { metadata: { name: string; namespace: string } },
): Promise<void> {
  const applied = await world.kubectl(['apply', '-f', '-'], JSON.stringify(pod));
  assert.equal(applied.code, 0, applied.stderr);
  const { name, namespace } = pod.metadata;
  const ready = await world.kubectl([
    'wait',
    '-n',
    namespace,
    '--for=condition=Ready',
    `pod/${name}`,
    '--timeout=60s',
  ]);
  assert.equal(ready.code, 0, ready.stderr);
}
