import assert from 'node:assert/strict';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { checkClean } from '../emulator/index.ts';
import { kubectl } from './real-cluster.ts';

// What a capture may leave behind, looked for where it would be: the remote
// tcpdump in the process table of this machine (both worlds run their pods
// here), seen through the PID namespace of the pod that reported its PID;
// helper pods and ephemeral containers in the API; uploaded files inside the
// pods.

/** The label every helper pod carries. */
export const HELPER_SELECTOR = 'app.kubernetes.io/managed-by=kubedump';

/** This machine's PID namespace: a privileged run's helper pod (hostPID) reports PIDs in it. */
export const HOST_PID_NS = readlinkSync('/proc/self/ns/pid');

interface Proc {
  pid: number;
  /** `pid:[inode]` of the namespace the process lives in. */
  pidNs: string;
  /** The PID inside that namespace (the last NSpid field). */
  nsPid: number;
  comm: string;
  argv0: string;
  /** The executable's path as the process's own root sees it ('' when unreadable). */
  exe: string;
}

function processes(): Proc[] {
  const out: Proc[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const status = readFileSync(`/proc/${entry}/status`, 'utf8');
      if (/^State:\s+[ZX]/m.test(status)) continue;
      const nspid = /^NSpid:\s+(.*)$/m.exec(status)?.[1]?.trim().split(/\s+/) ?? [entry];
      out.push({
        pid: Number(entry),
        pidNs: readlinkSync(`/proc/${entry}/ns/pid`),
        nsPid: Number(nspid.at(-1)),
        comm: /^Name:\s+(.*)$/m.exec(status)?.[1] ?? '',
        argv0: readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0')[0] ?? '',
        exe: exeOf(entry),
      });
    } catch {
      // Gone while we looked.
    }
  }
  return out;
}

function exeOf(pid: string): string {
  try {
    return readlinkSync(`/proc/${pid}/exe`).replace(/ \(deleted\)$/, '');
  } catch {
    return '';
  }
}

/** A path of the uploaded tcpdump: kubedump-tcpdump-<sha>, or a tcpdump in a directory named for kubedump. */
const UPLOADED = /(^|\/)kubedump-tcpd[^/]*$|kubedump[^/]*\/[^/]*tcpdump[^/]*$/;

/**
 * The uploaded tcpdump: its name (comm, cut to 15 characters, or argv[0])
 * says so, and so does the executable the kernel runs, so a script or a
 * shell that merely carries the name is not counted.
 */
export function isUploadedTcpdump(p: Pick<Proc, 'comm' | 'argv0' | 'exe'>): boolean {
  const named = p.comm.startsWith('kubedump-tcpd') || UPLOADED.test(p.argv0);
  return named && (p.exe === '' || UPLOADED.test(p.exe));
}

/** A remote tcpdump a run reported: its PID as the run saw it, in the namespace it lives in. */
export interface RemoteTcpdump {
  pid: number;
  pidNs: string;
  where: string;
}

/** Is that remote tcpdump alive (not a zombie) on this machine? */
export function tcpdumpRuns(t: RemoteTcpdump): boolean {
  return processes().some((p) => p.pidNs === t.pidNs && p.nsPid === t.pid && isUploadedTcpdump(p));
}

/** Every live uploaded tcpdump on this machine, in any namespace. */
export function allRemoteTcpdumps(): string[] {
  return processes()
    .filter(isUploadedTcpdump)
    .map(
      (p) =>
        `PID ${p.pid} (${p.nsPid} in ${p.pidNs}) comm ${p.comm} exe ${p.exe || '?'} argv0 ${p.argv0}`,
    );
}

/** Waits until no uploaded tcpdump runs anywhere on this machine; fails naming those that do. */
export async function untilNoRemoteTcpdump(ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  let running = allRemoteTcpdumps();
  while (running.length && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    running = allRemoteTcpdumps();
  }
  assert.deepEqual(running, [], `an uploaded tcpdump still runs ${ms} ms later`);
}

/** The PID namespace of a pod's container, as the processes kubectl exec starts see it. */
export async function podPidNamespace(
  kubeconfig: string,
  namespace: string,
  pod: string,
  container?: string,
): Promise<string> {
  const r = await kubectl(
    [
      'exec',
      '-n',
      namespace,
      pod,
      ...(container ? ['-c', container] : []),
      '--',
      'readlink',
      '/proc/self/ns/pid',
    ],
    { kubeconfig, timeoutMs: 30_000 },
  );
  const ns = r.stdout.trim();
  assert.match(ns, /^pid:\[\d+\]$/, `the PID namespace of pod ${namespace}/${pod}: ${r.stderr}`);
  return ns;
}

/** The PIDs the remote wrapper reported in a debug log (`kubedump-pid N`). */
export function reportedPids(log: string): number[] {
  let text = '';
  try {
    text = readFileSync(log, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter(Boolean)
    .map(
      (l) => /^kubedump-pid (\d+)$/.exec(String((JSON.parse(l) as { line?: unknown }).line))?.[1],
    )
    .filter((p): p is string => p !== undefined)
    .map(Number);
}

/**
 * The remote tcpdumps a run's debug log names. Unprivileged: the PID is the
 * one inside the target container (`pidNs`, from podPidNamespace); privileged:
 * the helper pod shares the host's PID namespace.
 */
export function remoteTcpdumps(
  log: string,
  where: { privileged: true } | { privileged: false; pidNs: string; pod: string },
): RemoteTcpdump[] {
  const pidNs = where.privileged ? HOST_PID_NS : where.pidNs;
  const label = where.privileged ? 'helper pod (host PID)' : `pod ${where.pod}`;
  return reportedPids(log).map((pid) => ({ pid, pidNs, where: label }));
}

/** Waits until none of them runs; fails naming those that still do. */
export async function untilTcpdumpsEnd(list: RemoteTcpdump[], ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  let running = list.filter(tcpdumpRuns);
  while (running.length && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    running = list.filter(tcpdumpRuns);
  }
  assert.deepEqual(
    running.map((t) => `tcpdump ${t.pid} in ${t.where}`),
    [],
    `the remote tcpdump still runs ${ms} ms later`,
  );
}

// Constant text: prints every path whose name contains "kubedump" in the
// places an upload may go (a dot-directory or a kubedump-tcpdump-* file).
const FIND_UPLOADS = `for d in /tmp /var/tmp /dev/shm /run /home /; do
  [ -d "$d" ] && find "$d" -xdev -maxdepth 3 -name '*kubedump*' 2>/dev/null
done; exit 0`;

/** Paths named for kubedump in a pod; undefined when the pod has no shell to look with. */
export async function uploadedFiles(
  kubeconfig: string,
  namespace: string,
  pod: string,
): Promise<string[] | undefined> {
  const r = await kubectl(['exec', '-n', namespace, pod, '--', 'sh', '-c', FIND_UPLOADS], {
    kubeconfig,
    timeoutMs: 30_000,
  });
  if (r.code !== 0) {
    // Only "there is no sh" means no shell; any other failure must not pass as clean.
    assert.match(
      r.stderr,
      /executable file not found|no such file or directory|not found in \$PATH/i,
      `cannot look for uploaded files in pod ${namespace}/${pod}: ${r.stderr}`,
    );
    return undefined;
  }
  return [...new Set(r.stdout.split('\n').filter(Boolean))].map((p) => `${pod}:${p}`);
}

interface PodList {
  items: {
    metadata: { name: string; namespace: string };
    status?: {
      phase?: string;
      ephemeralContainerStatuses?: { name: string; state?: { running?: unknown } }[];
    };
  }[];
}

async function pods(kubeconfig: string, args: string[]): Promise<PodList['items']> {
  const r = await kubectl(['get', 'pods', ...args, '-o', 'json'], { kubeconfig });
  assert.equal(r.code, 0, `kubectl get pods ${args.join(' ')}: ${r.stderr}`);
  return (JSON.parse(r.stdout) as PodList).items;
}

export interface Census {
  helperPods: string[];
  tcpdumps: string[];
  uploadedFiles: string[];
  /** The pods whose file systems were searched (those with a shell). */
  podsSearched: string[];
  ephemeralContainers: string[];
  /** What an emulator left on the host (runc containers, mounts, netns...). */
  emulator: string[];
}

/**
 * Counts what is left in one cluster (kubeconfig) and on this machine. Remote
 * tcpdumps get `graceMs` to end: the remote watchdog stops an orphan within 10 s.
 */
export async function census(
  kubeconfig: string,
  options: { namespace?: string; graceMs?: number; emulator?: boolean } = {},
): Promise<Census> {
  const namespace = options.namespace ?? 'demo';
  const deadline = Date.now() + (options.graceMs ?? 15_000);
  let tcpdumps = allRemoteTcpdumps();
  while (tcpdumps.length && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200));
    tcpdumps = allRemoteTcpdumps();
  }
  const helperPods = (await pods(kubeconfig, ['-A', '-l', HELPER_SELECTOR])).map(
    (p) => `${p.metadata.namespace}/${p.metadata.name}`,
  );
  const all = await pods(kubeconfig, ['-A']);
  const ephemeralContainers = all.flatMap((p) =>
    (p.status?.ephemeralContainerStatuses ?? [])
      .filter((c) => c.state?.running)
      .map((c) => `${p.metadata.namespace}/${p.metadata.name}:${c.name}`),
  );
  const files: string[] = [];
  const podsSearched: string[] = [];
  for (const p of all) {
    if (p.metadata.namespace !== namespace || p.status?.phase !== 'Running') continue;
    const found = await uploadedFiles(kubeconfig, namespace, p.metadata.name);
    if (found === undefined) continue;
    podsSearched.push(p.metadata.name);
    files.push(...found);
  }
  return {
    helperPods,
    tcpdumps,
    uploadedFiles: files,
    podsSearched,
    ephemeralContainers,
    emulator: options.emulator ? await checkClean() : [],
  };
}

/** The census line the README quotes (`label` names a test file's own world). */
export function censusLine(c: Census, label?: string): string {
  return `# census${label ? ` ${label}` : ''}: helper pods ${c.helperPods.length}, tcpdumps ${c.tcpdumps.length}, uploaded files ${c.uploadedFiles.length}, ephemeral containers ${c.ephemeralContainers.length}`;
}

/** Fails, naming each, on anything a census found. */
export function assertCensusEmpty(c: Census): void {
  assert.deepEqual(
    {
      helperPods: c.helperPods,
      tcpdumps: c.tcpdumps,
      uploadedFiles: c.uploadedFiles,
      ephemeralContainers: c.ephemeralContainers,
      emulator: c.emulator,
    },
    { helperPods: [], tcpdumps: [], uploadedFiles: [], ephemeralContainers: [], emulator: [] },
    'leftovers',
  );
}

/**
 * The end of a test file that used a cluster: nothing of kubedump is left in
 * it or on this machine. Prints the census line, then fails on any leftover.
 */
export async function assertNoLeftovers(world: {
  name: string;
  kubeconfig: string;
  namespace?: string;
}): Promise<void> {
  const c = await census(world.kubeconfig, world.namespace ? { namespace: world.namespace } : {});
  console.log(censusLine(c, world.name));
  assert.ok(c.podsSearched.includes('web'), `pod web was not searched: ${c.podsSearched}`);
  assertCensusEmpty(c);
}
