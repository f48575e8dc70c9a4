import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  CGROUP_SCAN,
  cgroupScanArgv,
  HOST_NETNS_EXIT,
  HOST_NETNS_MARKER,
  hostNetnsRefusal,
  netnsGuardPrefix,
  parseCgroupScan,
} from '../../src/capture/remote-scripts.ts';
import { KubedumpError } from '../../src/errors.ts';

// The cgroup scan and the netns guard run under dash (/bin/sh of Debian and
// Ubuntu) and busybox sh with busybox's own grep and readlink (the helper
// image). The scan reads a fixture /proc tree: `cgroup` files and `ns/net`
// links as the kernel shows them.

const work = mkdtempSync(join(tmpdir(), 'kd-cgroup-scan-'));
after(() => rmSync(work, { recursive: true, force: true }));

// busybox applets first on PATH, so the busybox run uses no coreutils.
const busyboxBin = join(work, 'busybox-bin');
mkdirSync(busyboxBin);
for (const applet of ['grep', 'readlink', 'cat', 'true'])
  symlinkSync('/usr/bin/busybox', join(busyboxBin, applet));

const SHELLS = [
  { name: 'dash', argv: ['dash'], env: process.env },
  {
    name: 'busybox sh',
    argv: ['busybox', 'sh'],
    env: { ...process.env, PATH: `${busyboxBin}:${process.env.PATH}` },
  },
] as const;

function inShell(shell: (typeof SHELLS)[number], argv: string[]) {
  assert.equal(argv[0], 'sh');
  const [file, ...pre] = shell.argv;
  const r = spawnSync(file, [...pre, ...argv.slice(1)], { env: shell.env, encoding: 'utf8' });
  assert.equal(r.error, undefined);
  return r;
}

const HOST = 'net:[4026531840]';
const hex = (c: string) => c.repeat(64);
const POD_UID = '31ec62c9-bece-457c-bd24-af704a595f89';
const SYSTEMD_POD = `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${POD_UID.replaceAll('-', '_')}.slice`;
const CGROUPFS_POD = `/kubepods/besteffort/pod${POD_UID}`;
const V1 = ['cpu,cpuacct', 'memory', 'pids', 'devices', 'freezer', 'blkio', 'name=systemd'];
const v1 = (path: string) => V1.map((c, i) => `${V1.length - i}:${c}:${path}`).join('\n');
const v2 = (path: string) => `0::${path}`;

// The recorded containerd (cgroupfs, v1 and v2 lines) cgroup of the real cluster.
const WEB = readFileSync(
  join(import.meta.dirname, 'fixtures', 'runtimes', 'proc-cgroup-v1.txt'),
  'utf8',
);
const WEB_ID = readFileSync(
  join(import.meta.dirname, 'fixtures', 'runtimes', 'web-container-id.txt'),
  'utf8',
).trim();

const ID = {
  containerdSystemd: hex('a'),
  dockerSystemd: hex('b'),
  dockerCgroupfs: hex('c'),
  crioSystemd: hex('d'),
  crioCgroupfs: hex('e'),
  nested: hex('f'),
  short: '0123456789ab',
  hostNetwork: `${'12'.repeat(32)}`,
  onlyConmon: `${'34'.repeat(32)}`,
  absent: `${'56'.repeat(32)}`,
  wrapped: `${'78'.repeat(32)}`,
};
const NESTED_CHILD = hex('9');
const LONGER = `${ID.short}${'7'.repeat(52)}`;

type Proc = { cgroup: string; net?: string; stat?: string };

function procTree(name: string, procs: Record<number, Proc>): string {
  const root = join(work, name);
  for (const [pid, p] of Object.entries(procs)) {
    mkdirSync(join(root, pid, 'ns'), { recursive: true });
    writeFileSync(join(root, pid, 'cgroup'), `${p.cgroup}\n`);
    if (p.net) symlinkSync(p.net, join(root, pid, 'ns', 'net'));
    if (p.stat) writeFileSync(join(root, pid, 'stat'), `${p.stat}\n`);
  }
  return root;
}

const NODE = procTree('node', {
  1: { cgroup: v2('/init.scope'), net: HOST },
  // containerd, systemd driver, cgroup v2.
  300: {
    cgroup: v2(`${SYSTEMD_POD}/cri-containerd-${ID.containerdSystemd}.scope`),
    net: 'net:[301]',
  },
  // containerd, cgroupfs, v1 + v2 lines (recorded); a second process of it.
  22729: { cgroup: WEB.trim(), net: 'net:[22729]' },
  22800: { cgroup: WEB.trim(), net: 'net:[22729]' },
  // docker, systemd driver (v1) and cgroupfs (v2).
  410: { cgroup: v1(`${SYSTEMD_POD}/docker-${ID.dockerSystemd}.scope`), net: 'net:[410]' },
  420: { cgroup: v2(`/docker/${ID.dockerCgroupfs}`), net: 'net:[420]' },
  // CRI-O: conmon starts first, in the node's network namespace.
  500: { cgroup: v2(`/system.slice/crio-conmon-${ID.crioSystemd}.scope`), net: HOST },
  505: { cgroup: v2(`${SYSTEMD_POD}/crio-${ID.crioSystemd}.scope`), net: 'net:[505]' },
  600: { cgroup: v1(`${CGROUPFS_POD}/crio-conmon-${ID.crioCgroupfs}`), net: HOST },
  610: { cgroup: v1(`${CGROUPFS_POD}/crio-${ID.crioCgroupfs}`), net: 'net:[610]' },
  // A nested container below the target (lower PID, as after PID wraparound);
  // one v1 controller the inner runtime does not manage still shows the target's.
  700: {
    cgroup: `${v1(`${SYSTEMD_POD}/cri-containerd-${ID.nested}.scope/docker/${NESTED_CHILD}`)}\n9:rdma:${SYSTEMD_POD}/cri-containerd-${ID.nested}.scope`,
    net: 'net:[700]',
  },
  750: { cgroup: v1(`${SYSTEMD_POD}/cri-containerd-${ID.nested}.scope`), net: 'net:[750]' },
  // An ID that is a prefix of another container's ID.
  800: { cgroup: v2(`${SYSTEMD_POD}/cri-containerd-${LONGER}.scope`), net: 'net:[800]' },
  810: { cgroup: v2(`${SYSTEMD_POD}/cri-containerd-${ID.short}.scope`), net: 'net:[810]' },
  // A hostNetwork pod on CRI-O.
  890: { cgroup: v2(`/system.slice/crio-conmon-${ID.hostNetwork}.scope`), net: HOST },
  900: { cgroup: v2(`${SYSTEMD_POD}/crio-${ID.hostNetwork}.scope`), net: HOST },
  // A container that has not started: only its monitor carries the ID.
  950: { cgroup: v2(`/system.slice/crio-conmon-${ID.onlyConmon}.scope`), net: HOST },
  // After PID wraparound: an exec'd process (started later) has a lower PID
  // than the container's first process. The start time is stat's field 22.
  120: {
    cgroup: v2(`${SYSTEMD_POD}/cri-containerd-${ID.wrapped}.scope`),
    net: 'net:[130]',
    stat: statLine(120, 'sh', 98_765),
  },
  130: {
    cgroup: v2(`${SYSTEMD_POD}/cri-containerd-${ID.wrapped}.scope`),
    net: 'net:[130]',
    stat: statLine(130, 'httpd (web)', 4_321),
  },
});

/** A /proc/PID/stat line whose command holds spaces and parentheses. */
function statLine(pid: number, comm: string, start: number): string {
  const after = [
    'S',
    '1',
    '1',
    '1',
    '0',
    '-1',
    '4194560',
    '0',
    '0',
    '0',
    '0',
    '0',
    '0',
    '0',
    '0',
    '20',
    '0',
    '1',
    '0',
  ];
  return `${pid} (${comm}) ${after.join(' ')} ${start} 1000 100`;
}

function scan(
  shell: (typeof SHELLS)[number],
  root: string,
  id: string,
  hostNetwork = false,
): { out: string; result: ReturnType<typeof parseCgroupScan> } {
  const r = inShell(shell, cgroupScanArgv(id, { hostNetwork, procRoot: root }));
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, '');
  return { out: r.stdout, result: parseCgroupScan(r.stdout, id) };
}

for (const shell of SHELLS) {
  describe(`cgroup scan under ${shell.name}`, () => {
    const cases: [string, string, number][] = [
      ['containerd, systemd driver, cgroup v2', ID.containerdSystemd, 300],
      ['containerd, cgroupfs, v1 lines (recorded): the lowest PID', WEB_ID, 22729],
      ['docker, systemd driver, v1 lines', ID.dockerSystemd, 410],
      ['docker, cgroupfs, v2', ID.dockerCgroupfs, 420],
      ['CRI-O, systemd: not conmon, which started first', ID.crioSystemd, 505],
      ['CRI-O, cgroupfs: not conmon', ID.crioCgroupfs, 610],
      ['a nested container below the target is not the target', ID.nested, 750],
      ['an ID that is a prefix of another ID: only its own cgroup', ID.short, 810],
      ['after PID wraparound: the process that started first, not the lowest PID', ID.wrapped, 130],
    ];
    for (const [name, id, pid] of cases) {
      test(name, () => {
        const { out, result } = scan(shell, NODE, id);
        assert.equal(result.pid, pid, out);
      });
    }

    test('each refusal says why, one line per process', () => {
      const { out } = scan(shell, NODE, ID.crioSystemd);
      assert.deepEqual(out.trim().split('\n').sort(), [
        'accept 505',
        `refuse 500 cgroup crio-conmon-${ID.crioSystemd}.scope`,
      ]);
      assert.deepEqual(scan(shell, NODE, ID.nested).out.trim().split('\n').sort(), [
        'accept 750',
        `refuse 700 cgroup ${NESTED_CHILD}`,
      ]);
    });

    test('a hostNetwork pod: refused unless the caller says the pod uses the node network', () => {
      const refused = scan(shell, NODE, ID.hostNetwork).result;
      assert.equal(refused.pid, undefined);
      assert.match(
        refused.pid === undefined ? refused.reason : '',
        /^2 processes carry the container ID, none is the container: .*PID 890 is in cgroup crio-conmon-121212121212…\.scope.*PID 900 is in the node's network namespace/,
      );
      assert.equal(scan(shell, NODE, ID.hostNetwork, true).result.pid, 900);
    });

    test('only the monitor carries the ID: a one-line reason, no PID', () => {
      const { result } = scan(shell, NODE, ID.onlyConmon);
      assert.deepEqual(result, {
        pid: undefined,
        reason: `only PID 950 carries the ID and it is in cgroup crio-conmon-${ID.onlyConmon.slice(0, 12)}….scope, not the container's own`,
      });
      assert.deepEqual(scan(shell, NODE, ID.absent).result, {
        pid: undefined,
        reason: 'no process on the node has the container ID in its cgroup',
      });
    });

    test("PID 1's link unreadable: kthreadd stands for the node; else nothing is accepted", () => {
      const kthreadd = procTree(`kthreadd-${shell.name.replace(' ', '-')}`, {
        1: { cgroup: v2('/init.scope') },
        2: { cgroup: v2('/'), net: HOST, stat: '2 (kthreadd) S 0 0 0 0 -1 2129984' },
        500: { cgroup: v2(`${SYSTEMD_POD}/crio-${ID.crioSystemd}.scope`), net: HOST },
        505: { cgroup: v2(`${SYSTEMD_POD}/crio-${ID.crioSystemd}.scope`), net: 'net:[505]' },
      });
      assert.equal(scan(shell, kthreadd, ID.crioSystemd).result.pid, 505);
      const blind = procTree(`blind-${shell.name.replace(' ', '-')}`, {
        1: { cgroup: v2('/init.scope') },
        2: { cgroup: v2('/'), net: HOST, stat: '2 (sh) S 1 0 0 0 -1 2129984' },
        505: { cgroup: v2(`${SYSTEMD_POD}/crio-${ID.crioSystemd}.scope`), net: 'net:[505]' },
      });
      const { result } = scan(shell, blind, ID.crioSystemd);
      assert.equal(result.pid, undefined);
      assert.match(result.pid === undefined ? result.reason : '', /PID 505 cannot be told apart/);
      assert.equal(scan(shell, blind, ID.crioSystemd, true).result.pid, 505);
    });
  });
}

test('the scan script is constant; the ID is checked before it is passed', () => {
  assert.doesNotMatch(CGROUP_SCAN, /[0-9a-f]{12}/);
  assert.deepEqual(cgroupScanArgv(WEB_ID, { hostNetwork: false }), [
    'sh',
    '-c',
    CGROUP_SCAN,
    'sh',
    WEB_ID,
    '/proc',
    'pod',
  ]);
  for (const bad of ['-e', '$(reboot)', 'a b c d e f', '*', ''])
    assert.throws(() => cgroupScanArgv(bad, { hostNetwork: false }), KubedumpError, bad);
});

describe('netns guard', () => {
  const uid0 = process.getuid?.() === 0;

  for (const shell of SHELLS) {
    test(`${shell.name}: a PID in the node's network namespace is refused with the marker`, () => {
      // This test process is in the node's network namespace.
      const r = inShell(shell, [...netnsGuardPrefix(process.pid, { hostNetwork: false }), 'true']);
      assert.equal(r.status, HOST_NETNS_EXIT, r.stderr);
      assert.match(r.stderr, new RegExp(`^${HOST_NETNS_MARKER} ${process.pid} `, 'm'));
      const error = hostNetnsRefusal(`tcpdump: noise\n${r.stderr}`, 'helper pod demo/x');
      assert.ok(error instanceof KubedumpError);
      assert.equal(error.code, 'HOST_NETNS');
      assert.doesNotMatch(error.line, /\n/);
      assert.match(error.line, new RegExp(`PID ${process.pid} `));
    });

    test(
      `${shell.name}: a pod's namespace is entered, by exec (same PID)`,
      { skip: !uid0 && 'needs root' },
      async () => {
        const pod = spawn('unshare', ['-n', 'sleep', '30'], { stdio: 'ignore' });
        try {
          const pid = pod.pid as number;
          // unshare execs sleep once the namespace is made.
          let netns = '';
          // Up to 10 s: a machine busy starting a cluster is slow.
          for (let i = 0; i < 500 && (!netns || netns === readlinkSync('/proc/self/ns/net')); i++) {
            await new Promise((r) => setTimeout(r, 20));
            netns = readlinkSync(`/proc/${pid}/ns/net`);
          }
          const r = inShell(shell, [
            ...netnsGuardPrefix(pid, { hostNetwork: false }),
            'sh',
            '-c',
            'echo $$; readlink /proc/self/ns/net',
          ]);
          assert.equal(r.status, 0, r.stderr);
          const [samePid, seen] = r.stdout.trim().split('\n');
          assert.equal(samePid, String(r.pid), 'exec all the way down');
          assert.equal(seen, netns);
          assert.notEqual(seen, readlinkSync('/proc/self/ns/net'));
          // The host's namespace is entered when the pod uses it.
          const host = inShell(shell, [
            ...netnsGuardPrefix(process.pid, { hostNetwork: true }),
            'readlink',
            '/proc/self/ns/net',
          ]);
          assert.equal(host.status, 0, host.stderr);
          assert.equal(host.stdout.trim(), readlinkSync('/proc/self/ns/net'));
        } finally {
          pod.kill('SIGKILL');
        }
      },
    );
  }

  test('the guard keeps the PID: the wrapper execs into nsenter', () => {
    const prefix = netnsGuardPrefix(4242, { hostNetwork: false });
    assert.deepEqual(prefix.slice(3), ['sh', '4242', 'pod']);
    assert.match(prefix[2] as string, /\nexec nsenter -t "\$p" -n -- "\$@"$/);
    assert.throws(() => netnsGuardPrefix(1, { hostNetwork: true }));
    assert.equal(hostNetnsRefusal('tcpdump: eth0: No such device\n', 'x'), undefined);
  });
});
