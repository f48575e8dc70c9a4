import { KubedumpError } from '../../errors.ts';
import type { ContainerRef, RuntimeBridge } from './bridge.ts';
import { containerdBridge } from './containerd.ts';
import { crioBridge } from './crio.ts';
import { dockerBridge } from './docker.ts';

export { cgroupScanArgv, parseCgroupScan } from '../remote-scripts.ts';
export { type ContainerRef, parseContainerId, type RuntimeBridge } from './bridge.ts';

export const BRIDGES: readonly RuntimeBridge[] = [containerdBridge, dockerBridge, crioBridge];

/** The bridge for a container; an unknown runtime is a clear error, never a crash. */
export function bridgeFor(ref: ContainerRef): RuntimeBridge {
  const bridge = BRIDGES.find((b) => b.owns(ref));
  if (!bridge) {
    throw new KubedumpError(
      'UNSUPPORTED_RUNTIME',
      `container runtime "${ref.runtime}" is not supported in privileged mode`,
      {
        hint: `kubedump knows ${BRIDGES.map((b) => `${b.name}://`).join(', ')}; capture unprivileged instead`,
      },
    );
  }
  return bridge;
}
