import { KubedumpError } from '../errors.ts';
import { contextNamespace, loadKubeConfig } from '../kube/config.ts';
import { isSinglePod, parseTarget } from '../kube/target-spec.ts';
import { type Check, chooseMode, type ModeVerdict, verdicts } from './mode-pick.ts';
import { preflight } from './preflight.ts';
import { type CaptureRequest, PLACEMENTS, type PlacementName } from './request.ts';
import { orStop } from './stop-clock.ts';
import { resolveTarget } from './target.ts';

// `kubedump doctor`: the preflight of one pod, as data. The same checks
// decide auto's mode, so what doctor says is what a capture would do.

export interface Diagnosis {
  namespace: string;
  pod: string;
  container: string | undefined;
  node: string | undefined;
  checks: Check[];
  modes: ModeVerdict[];
  /** The mode auto would take, or undefined when none can capture. */
  auto: PlacementName | undefined;
}

export async function diagnose(request: CaptureRequest, signal: AbortSignal): Promise<Diagnosis> {
  const spec = parseTarget(request.pod, request.selector, request.allPods);
  if (!spec || spec.kind !== 'pods' || !isSinglePod(spec)) {
    throw new KubedumpError('BAD_INPUT', 'doctor checks one pod at a time', {
      hint: 'name one pod: kubedump doctor POD -n NAMESPACE',
    });
  }
  const kc = loadKubeConfig({ kubeconfig: request.kubeconfig, context: request.context });
  const namespace = request.namespace || contextNamespace(kc);
  const pod = spec.names[0] as string;
  const ref = { namespace, pod, container: request.container };
  let resolved: Awaited<ReturnType<typeof resolveTarget>>;
  try {
    resolved = await resolveTarget(kc, ref, signal);
    await orStop(resolved.node.linux, signal);
  } catch (error) {
    // A Windows pod is a finding, not a failure of the doctor.
    if (!(error instanceof KubedumpError && error.code === 'WINDOWS_NODE')) throw error;
    const checks: Check[] = [
      {
        check: 'node OS and architecture',
        result: 'fail',
        detail: error.message,
        reason: 'the node runs Windows',
        todo: error.hint,
        blocks: PLACEMENTS,
      },
    ];
    return { ...ref, node: undefined, checks, modes: verdicts(checks), auto: undefined };
  }
  const { target } = resolved;
  const checks = await preflight(kc, target, request, signal);
  return {
    namespace,
    pod,
    container: target.container,
    node: target.nodeName,
    checks,
    modes: verdicts(checks),
    auto: chooseMode(checks).candidates[0],
  };
}
