// Interface names: `kubedump` (the pod is chosen in the dialog) and
// `kubedump.<namespace>.<pod>`. Never a `/`: Wireshark puts the name into
// the fifo's file name.

export const GENERIC_INTERFACE = 'kubedump';
const PREFIX = `${GENERIC_INTERFACE}.`;

/** `kubedump.<namespace>.<pod>`: a namespace has no dot, so the first dot splits. */
export function interfaceName(namespace: string, pod: string): string {
  return `${PREFIX}${namespace}.${pod}`;
}

export function parseInterfaceName(iface: string): { namespace: string; pod: string } | undefined {
  if (!iface.startsWith(PREFIX)) return undefined;
  const rest = iface.slice(PREFIX.length);
  const dot = rest.indexOf('.');
  if (dot <= 0 || dot === rest.length - 1) return undefined;
  return { namespace: rest.slice(0, dot), pod: rest.slice(dot + 1) };
}
