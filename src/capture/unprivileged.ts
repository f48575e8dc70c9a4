import type { Begun, CaptureMode, ModeContext } from './capture-mode.ts';
import { beginInstallAndRun } from './install-and-run.ts';
import { BINARY_TOKEN, lookOfProbe } from './remote-scripts.ts';
import { tcpdumpArgv } from './tcpdump-command.ts';

// Unprivileged mode: tcpdump runs inside the target container itself, as the
// container's user, so it needs root or CAP_NET_RAW there, and /bin/sh. One
// exec probes the container, takes the upload when needed and runs tcpdump.

function begin(ctx: ModeContext): Begun {
  const { target, request } = ctx;
  const exec = { namespace: target.namespace, pod: target.pod, container: target.container };
  const { iface, filter, snaplen } = request;
  const start = beginInstallAndRun(ctx, exec, {
    keep: request.keepBinary,
    argv: tcpdumpArgv({ binary: BINARY_TOKEN, iface, filter, snaplen }),
    heartbeat: `heartbeat-${process.pid}`,
    // Auto picks this mode whenever the container can capture, so a kept
    // copy runs at once then too; another choice stops it.
    runKeptAtOnce: true,
  });
  const look = start.probe.then(lookOfProbe);
  look.catch(() => {}); // the preflight may not ask
  return {
    look,
    async finish() {
      const { remote, binary, dir } = await start.finish();
      return {
        exec,
        binary,
        prefix: [],
        heartbeat: `${dir}/heartbeat-${process.pid}`,
        where: `pod ${target.namespace}/${target.pod}`,
        started: remote,
      };
    },
  };
}

export const unprivilegedMode: CaptureMode = {
  name: 'unprivileged',
  begin,
  prepare: (ctx) => begin(ctx).finish(),
};
