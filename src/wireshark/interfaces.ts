// Interface names: `kubedump` (the pod is chosen in the dialog),
// `kubedump.<namespace>.<pod>`, and `kubedump.<namespace>.<kind>.<name>` for a
// workload's pods (`kubedump.shop.deploy.api`). Never a `/`: Wireshark puts
// the name into the fifo's file name.

export const GENERIC_INTERFACE = 'kubedump';
const PREFIX = `${GENERIC_INTERFACE}.`;
const WORKLOAD = /^(deploy|sts|ds|rs|job)\.(.+)$/;

/** `kubedump.<namespace>.<pod>`, or for `KIND/NAME` `kubedump.<namespace>.<kind>.<name>`. */
export function interfaceName(namespace: string, target: string): string {
  return `${PREFIX}${namespace}.${target.replace('/', '.')}`;
}

/** The namespace, and the pod (or `KIND/NAME`) an interface name stands for. */
export function parseInterfaceName(iface: string): { namespace: string; pod: string } | undefined {
  if (!iface.startsWith(PREFIX)) return undefined;
  const rest = iface.slice(PREFIX.length);
  // A namespace has no dot, so the first dot splits.
  const dot = rest.indexOf('.');
  if (dot <= 0 || dot === rest.length - 1) return undefined;
  const target = rest.slice(dot + 1);
  const workload = WORKLOAD.exec(target);
  return {
    namespace: rest.slice(0, dot),
    pod: workload ? `${workload[1]}/${workload[2]}` : target,
  };
}
