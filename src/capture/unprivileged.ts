import type { CaptureMode, ModeContext, Placement } from './capture-mode.ts';
import { ensureTcpdump } from './upload.ts';

// Unprivileged mode: tcpdump runs inside the target container itself, as the
// container's user, so it needs root or CAP_NET_RAW there, and /bin/sh.

export const unprivilegedMode: CaptureMode = {
  name: 'unprivileged',
  async prepare(ctx: ModeContext): Promise<Placement> {
    const { target } = ctx;
    const exec = { namespace: target.namespace, pod: target.pod, container: target.container };
    const uploaded = await ensureTcpdump(ctx, exec, { keep: ctx.request.keepBinary });
    return {
      exec,
      binary: uploaded.binary,
      prefix: [],
      // The private directory is ours alone; the tag keeps kept directories apart.
      heartbeat: `${uploaded.dir}/heartbeat-${process.pid}`,
      where: `pod ${target.namespace}/${target.pod}`,
    };
  },
};
