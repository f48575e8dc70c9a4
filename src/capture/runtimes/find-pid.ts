import type { KubeConfig } from '@kubernetes/client-node';
import { KubedumpError } from '../../errors.ts';
import { execCollect } from '../../kube/exec.ts';
import type { Logger } from '../../log.ts';
import { HOST_ROOT } from '../helper-spec.ts';
import { cgroupScanArgv, parseCgroupScan, parseSurvey, surveyArgv } from '../remote-scripts.ts';
import type { CaptureRequest } from '../request.ts';
import type { ContainerRef, RuntimeBridge } from './bridge.ts';

// Finds the host PID of the target container from inside the privileged
// helper pod: the runtime's own client first (when its socket and client are
// on the node), then the cgroup scan.

export type HelperExec = { namespace: string; pod: string; container: string };

export interface PidLookup {
  exec: HelperExec;
  container: ContainerRef;
  bridge: RuntimeBridge;
  request: CaptureRequest;
  /** The pod uses the node's network: a PID in the node's network namespace is then right. */
  hostNetwork: boolean;
  log: Logger;
  signal: AbortSignal;
}

export async function findPid(kc: KubeConfig, options: PidLookup): Promise<number> {
  const { exec, container, bridge, request, hostNetwork, log, signal } = options;
  const lookup = request.pidLookup ?? 'auto';
  const tried: string[] = [];
  if (lookup !== 'cgroup') {
    const candidates = request.runtimeSocket ? [request.runtimeSocket] : [...bridge.sockets];
    const survey = await execCollect(kc, {
      ...exec,
      command: surveyArgv(HOST_ROOT, candidates, bridge.tools),
      signal,
    });
    const found = parseSurvey(survey.stdout.toString('utf8'));
    if (!found.sockets.length) tried.push(`no ${bridge.name} socket at ${candidates.join(', ')}`);
    if (!found.tools.size) tried.push(`no ${bridge.tools.join('/')} on the node`);
    for (const socket of found.sockets) {
      for (const [tool, toolPath] of found.tools) {
        const query = { tool, toolPath, socket, id: container.id };
        const result = await execCollect(kc, {
          ...exec,
          command: ['chroot', HOST_ROOT, ...bridge.pidArgv(query)],
          signal,
        });
        const pid =
          result.exitCode === 0
            ? bridge.parsePid(result.stdout.toString('utf8'), query)
            : undefined;
        if (pid !== undefined) {
          log.info('target PID found', {
            targetPid: pid,
            method: `${bridge.name} bridge`,
            tool,
            socket,
          });
          return pid;
        }
        const said = result.stderr.trim().split('\n').pop() || `exit ${result.exitCode}`;
        tried.push(`${tool} on ${socket}: ${said}`);
        log.debug('runtime client gave no PID', { tool, socket, said });
      }
    }
  }
  if (lookup !== 'runtime') {
    const scan = await execCollect(kc, {
      ...exec,
      command: cgroupScanArgv(container.id, { hostNetwork }),
      signal,
    });
    const found = parseCgroupScan(scan.stdout.toString('utf8'), container.id);
    if (found.pid !== undefined) {
      log.info('target PID found', {
        targetPid: found.pid,
        method: 'cgroup scan',
        tried,
        ...(found.refused.length ? { refused: found.refused } : {}),
      });
      return found.pid;
    }
    tried.push(found.reason);
  }
  throw new KubedumpError(
    'PID_NOT_FOUND',
    `cannot find the process of ${container.runtime}://${container.id.slice(0, 12)} on the node (${tried.join('; ')})`,
    {
      hint:
        lookup === 'runtime'
          ? 'name the runtime socket with --runtime-socket, or let kubedump scan cgroups (--pid-lookup auto)'
          : 'check that the pod still runs; name the runtime socket with --runtime-socket',
    },
  );
}
