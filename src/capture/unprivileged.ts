import type { Begun, CaptureMode, ModeContext } from './capture-mode.ts';
import { lookOfProbe } from './remote-scripts.ts';
import { beginTcpdump } from './upload.ts';

// Unprivileged mode: tcpdump runs inside the target container itself, as the
// container's user, so it needs root or CAP_NET_RAW there, and /bin/sh.

function begin(ctx: ModeContext): Begun {
  const { target } = ctx;
  const exec = { namespace: target.namespace, pod: target.pod, container: target.container };
  const upload = beginTcpdump(ctx, exec, { keep: ctx.request.keepBinary });
  const look = upload.probe.then(lookOfProbe);
  look.catch(() => {}); // the preflight may not ask
  return {
    look,
    async finish() {
      const uploaded = await upload.finish();
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
}

export const unprivilegedMode: CaptureMode = {
  name: 'unprivileged',
  begin,
  prepare: (ctx) => begin(ctx).finish(),
};
