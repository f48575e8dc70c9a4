import { crictlArgv, parseCrictlInspect, type RuntimeBridge } from './bridge.ts';

// CRI-O: crictl inspect on its socket (`.info.pid`).

export const crioBridge: RuntimeBridge = {
  name: 'cri-o',
  owns: (ref) => ref.runtime === 'cri-o',
  sockets: ['/var/run/crio/crio.sock', '/run/crio/crio.sock'],
  tools: ['crictl'],
  pidArgv: crictlArgv,
  parsePid: (output, q) => parseCrictlInspect(output, q.id),
};
