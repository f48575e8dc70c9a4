import { rmSync } from 'node:fs';
import { KubedumpError } from '../errors.ts';
import { loadKubeConfig } from '../kube/config.ts';
import { deletePodAndWait } from '../kube/helper-pod.ts';
import { getPod } from '../kube/pods.ts';
import type { Logger } from '../log.ts';
import { type CreatedHelper, recordsOfEndedCaptures } from './created-record.ts';
import { isKubedumpHelper, SESSION_ANNOTATION } from './helper-spec.ts';

// After a capture process was killed without a chance to clean up (Windows'
// TerminateProcess, SIGKILL): remove what its record says it created. Each
// helper is deleted only if the pod of that name is still a kubedump helper
// of the recorded session; anything else is someone else's.

/** How long one helper's delete may take: Wireshark waits for this call. */
const DELETE_WAIT_MS = 3000;

export async function removeWhatKilledCapturesLeft(
  dir: string,
  tag: string | undefined,
  log: Logger,
): Promise<{ deleted: number }> {
  let deleted = 0;
  for (const record of recordsOfEndedCaptures(dir, tag)) {
    const kc = loadKubeConfig({ kubeconfig: record.kubeconfig, context: record.context });
    const results = await Promise.allSettled(
      record.helpers.map((helper) => removeRecordedHelper(kc, helper, log)),
    );
    for (const r of results) {
      if (r.status === 'fulfilled') deleted += r.value ? 1 : 0;
      else log.warn("cannot delete a killed capture's helper pod", { error: r.reason });
    }
    // A helper that could not be deleted still ends by itself within a minute.
    rmSync(record.file, { force: true });
    log.info('record of a killed capture handled', {
      pid: record.pid,
      helpers: record.helpers.length,
    });
  }
  return { deleted };
}

async function removeRecordedHelper(
  kc: ReturnType<typeof loadKubeConfig>,
  helper: CreatedHelper,
  log: Logger,
): Promise<boolean> {
  const ref = { namespace: helper.namespace, name: helper.name };
  try {
    const pod = await getPod(kc, ref);
    if (
      !isKubedumpHelper(pod) ||
      pod.metadata?.annotations?.[SESSION_ANNOTATION] !== helper.session
    ) {
      log.info('recorded helper name now belongs to another pod: kept', {
        pod: `${ref.namespace}/${ref.name}`,
      });
      return false;
    }
  } catch (error) {
    if (error instanceof KubedumpError && error.code === 'POD_NOT_FOUND') return false;
    throw error;
  }
  await deletePodAndWait(kc, ref, DELETE_WAIT_MS);
  log.info('helper pod of a killed capture deleted', { pod: `${ref.namespace}/${ref.name}` });
  return true;
}
