// OCI runtime config.json for a pod container, shaped the way a CRI runtime shapes it.
import { readFileSync } from 'node:fs';
import type { Runtime } from '../types.ts';

const CAP_NAMES = [
  'CHOWN',
  'DAC_OVERRIDE',
  'DAC_READ_SEARCH',
  'FOWNER',
  'FSETID',
  'KILL',
  'SETGID',
  'SETUID',
  'SETPCAP',
  'LINUX_IMMUTABLE',
  'NET_BIND_SERVICE',
  'NET_BROADCAST',
  'NET_ADMIN',
  'NET_RAW',
  'IPC_LOCK',
  'IPC_OWNER',
  'SYS_MODULE',
  'SYS_RAWIO',
  'SYS_CHROOT',
  'SYS_PTRACE',
  'SYS_PACCT',
  'SYS_ADMIN',
  'SYS_BOOT',
  'SYS_NICE',
  'SYS_RESOURCE',
  'SYS_TIME',
  'SYS_TTY_CONFIG',
  'MKNOD',
  'LEASE',
  'AUDIT_WRITE',
  'AUDIT_CONTROL',
  'SETFCAP',
  'MAC_OVERRIDE',
  'MAC_ADMIN',
  'SYSLOG',
  'WAKE_ALARM',
  'BLOCK_SUSPEND',
  'AUDIT_READ',
  'PERFMON',
  'BPF',
  'CHECKPOINT_RESTORE',
];

/** containerd's (and Docker's) default capability set. */
const DEFAULT_CAPS = [
  'CHOWN',
  'DAC_OVERRIDE',
  'FSETID',
  'FOWNER',
  'MKNOD',
  'NET_RAW',
  'SETGID',
  'SETUID',
  'SETFCAP',
  'SETPCAP',
  'NET_BIND_SERVICE',
  'SYS_CHROOT',
  'KILL',
  'AUDIT_WRITE',
];

/** Capabilities this host can hand out (a sandbox may lack some, e.g. SYS_RESOURCE). */
function hostCaps(): string[] {
  const m = /CapBnd:\s*([0-9a-f]+)/.exec(readFileSync('/proc/self/status', 'utf8'));
  const mask = BigInt(`0x${m?.[1] ?? '0'}`);
  return CAP_NAMES.filter((_, i) => (mask >> BigInt(i)) & 1n);
}

export function capabilities(
  privileged: boolean,
  add: string[] = [],
  drop: string[] = [],
): string[] {
  const host = new Set(hostCaps());
  if (privileged) return [...host].map((c) => `CAP_${c}`);
  const norm = (c: string) => c.toUpperCase().replace(/^CAP_/, '');
  const dropped = new Set(drop.map(norm));
  let caps = dropped.has('ALL') ? [] : DEFAULT_CAPS.filter((c) => !dropped.has(c));
  for (const c of add.map(norm)) {
    if (c === 'ALL') caps = [...host];
    else if (!caps.includes(c)) caps.push(c);
  }
  return caps.filter((c) => host.has(c)).map((c) => `CAP_${c}`);
}

export function cgroupsPath(runtime: Runtime, id: string): string {
  if (runtime === 'docker') return `/docker/${id}`;
  if (runtime === 'cri-o') return `/crio-${id}`;
  return `/k8s.io/${id}`;
}

/** Parent cgroup directories the paths above create (removed when empty). */
export const CGROUP_PARENTS = ['docker', 'k8s.io'];

export interface ProcessSpec {
  args: string[];
  env: string[];
  cwd: string;
  uid: number;
  gid: number;
  caps: string[];
}

export function processSpec(p: ProcessSpec): Record<string, unknown> {
  return {
    terminal: false,
    user: { uid: p.uid, gid: p.gid },
    args: p.args,
    env: p.env,
    cwd: p.cwd,
    capabilities: {
      bounding: p.caps,
      effective: p.caps,
      permitted: p.caps,
    },
    // No rlimits: raising them needs CAP_SYS_RESOURCE, which a sandboxed host may lack.
    noNewPrivileges: false,
  };
}

export interface ContainerSpec {
  process: ProcessSpec;
  rootfs: string;
  hostname: string;
  /** Path of the pod's netns, or null for hostNetwork. */
  netns: string | null;
  hostPID: boolean;
  /** Path of another container's PID namespace to join (an ephemeral container's target). */
  pidNs?: string;
  privileged: boolean;
  cgroupsPath: string;
}

const MASKED = [
  '/proc/acpi',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/proc/scsi',
  '/sys/firmware',
];
const READONLY = [
  '/proc/asound',
  '/proc/bus',
  '/proc/fs',
  '/proc/irq',
  '/proc/sys',
  '/proc/sysrq-trigger',
];

export function ociConfig(c: ContainerSpec): Record<string, unknown> {
  const ro = c.privileged ? [] : ['ro'];
  const namespaces: Record<string, string>[] = [
    { type: 'ipc' },
    { type: 'uts' },
    { type: 'mount' },
  ];
  if (!c.hostPID) namespaces.push(c.pidNs ? { type: 'pid', path: c.pidNs } : { type: 'pid' });
  if (c.netns) namespaces.push({ type: 'network', path: c.netns });
  const linux: Record<string, unknown> = {
    namespaces,
    cgroupsPath: c.cgroupsPath,
    resources: c.privileged ? { devices: [{ allow: true, access: 'rwm' }] } : {},
  };
  if (!c.privileged) {
    linux.maskedPaths = MASKED;
    linux.readonlyPaths = READONLY;
  }
  return {
    ociVersion: '1.0.2-dev',
    process: processSpec(c.process),
    root: { path: c.rootfs, readonly: false },
    hostname: c.hostname,
    mounts: [
      {
        destination: '/proc',
        type: 'proc',
        source: 'proc',
        options: ['nosuid', 'noexec', 'nodev'],
      },
      {
        destination: '/dev',
        type: 'tmpfs',
        source: 'tmpfs',
        options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'],
      },
      {
        destination: '/dev/pts',
        type: 'devpts',
        source: 'devpts',
        options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'],
      },
      {
        destination: '/dev/shm',
        type: 'tmpfs',
        source: 'shm',
        options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'],
      },
      {
        destination: '/dev/mqueue',
        type: 'mqueue',
        source: 'mqueue',
        options: ['nosuid', 'noexec', 'nodev'],
      },
      {
        destination: '/sys',
        type: 'sysfs',
        source: 'sysfs',
        options: ['nosuid', 'noexec', 'nodev', ...ro],
      },
    ],
    linux,
  };
}
