// The real local Kubernetes test world (scripts/local-k8s): how tests find it
// and a thin wrapper around the real kubectl.
//
// Contract: the project's test runner (`npm test`) runs `scripts/local-k8s up`
// first and exports KUBEDUMP_REAL_KUBECONFIG=<path of the kubeconfig it wrote>
// (by default /var/lib/kubedump-k8s/kubeconfig). That kubeconfig has the
// contexts `local` (admin, namespace `demo`, current) and `local-restricted`
// (may get/list/watch pods and create pods/exec in `demo`; nothing else) and
// `local-nopatch` (what a privileged capture needs in `demo`: get, list, watch,
// create and delete pods, create and get pods/exec; no `patch pods`).

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from './process.ts';

export const KUBECTL = '/usr/bin/kubectl';

/** The repository root (this file lives in test/support/). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** scripts/local-k8s of this repository. */
export const LOCAL_K8S = path.join(REPO_ROOT, 'scripts', 'local-k8s');

export interface RealCluster {
  kubeconfig: string;
  namespace: 'demo';
  context: 'local';
  /** The context of the restricted identity (no pod create, no nodes). */
  restrictedContext: 'local-restricted';
  /** The context of an identity that may create and delete pods but not patch them. */
  nopatchContext: 'local-nopatch';
}

/** Demo pods that `scripts/local-k8s up` creates in namespace `demo`. */
export const DEMO_PODS = ['web', 'client', 'distroless', 'nonroot', 'debian'] as const;

/**
 * The real cluster the test runner started. Throws when the suite was not
 * started through `npm test` (which runs `scripts/local-k8s up` and sets
 * KUBEDUMP_REAL_KUBECONFIG).
 */
export function realCluster(): RealCluster {
  const kubeconfig = process.env.KUBEDUMP_REAL_KUBECONFIG;
  if (!kubeconfig) {
    throw new Error(
      'KUBEDUMP_REAL_KUBECONFIG is not set: run the suite through `npm test`, which starts the ' +
        'real local cluster (scripts/local-k8s up) and sets it',
    );
  }
  return {
    kubeconfig,
    namespace: 'demo',
    context: 'local',
    restrictedContext: 'local-restricted',
    nopatchContext: 'local-nopatch',
  };
}

export interface RunResult {
  stdout: string;
  stderr: string;
  /** Exit code; -1 when killed by a signal or when the program could not start. */
  code: number;
}

export interface RunOptions {
  /** Written to the child's stdin, which is then closed. */
  input?: string | Buffer;
  /** Kills the child after this many milliseconds (default 60 s). */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

/** Runs a program without a shell; never rejects: look at `code`. */
export async function runFile(
  file: string,
  args: readonly string[],
  opts: RunOptions = {},
): Promise<RunResult> {
  const ran = await run([file, ...args], { ...opts, timeoutMs: opts.timeoutMs ?? 60_000 });
  return { stdout: ran.stdout, stderr: ran.stderr, code: ran.code ?? -1 };
}

export interface KubectlOptions extends RunOptions {
  kubeconfig: string;
  /** kubectl --context; the kubeconfig's current context (`local`) when absent. */
  context?: string;
}

/** Runs the real /usr/bin/kubectl (no shell) against the given kubeconfig. */
export function kubectl(args: readonly string[], opts: KubectlOptions): Promise<RunResult> {
  const pre = ['--kubeconfig', opts.kubeconfig];
  if (opts.context) pre.push('--context', opts.context);
  return runFile(KUBECTL, [...pre, ...args], opts);
}

/** Runs scripts/local-k8s SUBCOMMAND (up, down, status, check-clean...). */
export function localK8s(subcommand: string, timeoutMs = 600_000): Promise<RunResult> {
  return runFile('bash', [LOCAL_K8S, subcommand], { timeoutMs });
}
