import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  type Check,
  chooseMode,
  modeLine,
  nothingCanCapture,
  verdicts,
} from '../../src/capture/mode-pick.ts';
import {
  canCapturePackets,
  containerLookArgv,
  parseContainerLook,
} from '../../src/capture/remote-scripts.ts';

// Auto's choice as a pure function of the preflight's checks, and the one
// exec that looks into a container, run here under dash and busybox.

const ok = (check: string, blocks: Check['blocks']): Check => ({
  check,
  result: 'ok',
  detail: 'fine',
  blocks,
});
const fail = (check: string, blocks: Check['blocks'], reason: string, todo?: string): Check => ({
  check,
  result: 'fail',
  detail: `${reason} (detail)`,
  reason,
  todo,
  blocks,
});
const skip = (check: string, blocks: Check['blocks']): Check => ({
  check,
  result: 'skip',
  detail: 'not asked',
  blocks,
});

describe('auto picks the cheapest mode no check rules out', () => {
  test('everything fine: unprivileged, nothing skipped', () => {
    const checks = [
      ok('shell', ['unprivileged']),
      ok('RBAC exec', ['unprivileged', 'ephemeral', 'privileged']),
    ];
    assert.deepEqual(chooseMode(checks), {
      candidates: ['unprivileged', 'ephemeral', 'privileged'],
      skipped: [],
    });
    assert.equal(modeLine('unprivileged', 'demo/web', []), 'mode: unprivileged for demo/web');
  });

  test('distroless: ephemeral, and the line says why unprivileged was passed over', () => {
    const checks = [
      fail('shell', ['unprivileged'], 'container "server" has no shell'),
      ok('ephemeral dry run', ['ephemeral']),
    ];
    const choice = chooseMode(checks);
    assert.deepEqual(choice.candidates, ['ephemeral', 'privileged']);
    assert.equal(
      modeLine('ephemeral', 'demo/distroless', choice.skipped),
      'mode: ephemeral for demo/distroless (unprivileged: container "server" has no shell)',
    );
  });

  test('non-root pod on an old cluster: privileged, with both reasons, each mode its own', () => {
    const checks = [
      fail('user', ['unprivileged'], 'runs as uid 1000 without CAP_NET_RAW'),
      fail('upload dir', ['unprivileged'], 'no writable directory'),
      fail('ephemeral dry run', ['ephemeral'], 'no root ephemeral container here'),
    ];
    const choice = chooseMode(checks);
    assert.deepEqual(choice.candidates, ['privileged']);
    assert.equal(
      modeLine('privileged', 'demo/nonroot', choice.skipped),
      'mode: privileged for demo/nonroot (unprivileged: runs as uid 1000 without CAP_NET_RAW, no writable directory; ephemeral: no root ephemeral container here)',
    );
  });

  test('a skipped check rules nothing out: the capture itself will tell', () => {
    const checks = [skip('RBAC exec', ['unprivileged']), skip('user', ['unprivileged'])];
    assert.deepEqual(chooseMode(checks).candidates, ['unprivileged', 'ephemeral', 'privileged']);
  });

  test('one failed permission shared by all modes rules them all out', () => {
    const checks = [
      fail(
        'RBAC exec',
        ['unprivileged', 'ephemeral', 'privileged'],
        'not allowed to "get pods/exec"',
      ),
    ];
    const all = verdicts(checks);
    assert.deepEqual(
      all.map((v) => [v.mode, v.canCapture]),
      [
        ['unprivileged', false],
        ['ephemeral', false],
        ['privileged', false],
      ],
    );
    assert.deepEqual(chooseMode(checks).candidates, []);
  });

  test('nothing can capture: one line naming every blocker and what to do', () => {
    const checks = [
      fail(
        'shell',
        ['unprivileged'],
        'container "server" has no shell',
        'use ephemeral or privileged mode',
      ),
      fail(
        'RBAC eph get',
        ['ephemeral'],
        'not allowed to "get pods/ephemeralcontainers"',
        'ask for "get and update pods/ephemeralcontainers"',
      ),
      fail(
        'RBAC eph update',
        ['ephemeral'],
        'not allowed to "update pods/ephemeralcontainers"',
        'ask for "get and update pods/ephemeralcontainers"',
      ),
      fail(
        'RBAC create',
        ['privileged'],
        'not allowed to "create pods"',
        'ask for "create" and "delete" on pods',
      ),
    ];
    const error = nothingCanCapture(checks, { namespace: 'demo', pod: 'distroless' });
    assert.equal(error.code, 'NO_MODE');
    assert.equal(
      error.line,
      'no mode can capture pod demo/distroless: unprivileged: container "server" has no shell; ephemeral: not allowed to "get pods/ephemeralcontainers", not allowed to "update pods/ephemeralcontainers"; privileged: not allowed to "create pods": use ephemeral or privileged mode; ask for "get and update pods/ephemeralcontainers"; ask for "create" and "delete" on pods; kubedump doctor distroless -n demo shows every check',
    );
  });
});

const SHELLS = (
  [
    ['dash', ['dash']],
    ['busybox sh', ['busybox', 'sh']],
  ] as [string, string[]][]
).filter(
  ([, argv]) => spawnSync(argv[0] as string, [...argv.slice(1), '-c', 'exit 0']).status === 0,
);

describe('the look into a container', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kubedump-look-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const status = readFileSync('/proc/self/status', 'utf8');
  const capEff = BigInt(`0x${/^CapEff:\s*([0-9a-f]+)/m.exec(status)?.[1]}`);

  for (const [name, shell] of SHELLS) {
    test(`${name}: user, capabilities, tar and the first directory that runs files; nothing left`, () => {
      const usable = join(dir, name.replace(/ /g, '-'));
      mkdirSync(usable);
      const [, , script, ...rest] = containerLookArgv('0123456789abcdef');
      const tag = rest[1] as string;
      const ran = spawnSync(shell[0] as string, [
        ...shell.slice(1),
        '-c',
        script as string,
        'sh',
        tag,
        join(dir, 'missing'),
        usable,
      ]);
      assert.equal(ran.status, 0, ran.stderr.toString());
      const out = ran.stdout.toString().trim();
      const m = /^look (\d+) ([0-9a-f]+) (\S+) (yes|no) (\S+)$/.exec(out);
      assert.ok(m, out);
      assert.equal(Number(m[1]), process.getuid?.());
      // The shell's own capabilities: the same as this process's (no file caps on it).
      assert.equal(BigInt(`0x${m[2]}`), capEff);
      assert.equal(m[5], usable);
      assert.deepEqual(readdirSync(usable), [], 'the private directory is removed');
    });
  }

  test('the parsed look: capabilities decide, a directory outside the list is refused', () => {
    const root = parseContainerLook('look 0 00000000a80425fb x86_64 yes /tmp\n');
    assert.deepEqual(root, {
      uid: 0,
      capEff: 0xa80425fbn,
      arch: 'x86_64',
      hasTar: true,
      uploadDir: '/tmp',
    });
    assert.equal(canCapturePackets(root as NonNullable<typeof root>), true);
    const nonroot = parseContainerLook('look 1000 0000000000000000 aarch64 no -');
    assert.equal(canCapturePackets(nonroot as NonNullable<typeof nonroot>), false);
    assert.equal(nonroot?.uploadDir, undefined);
    // CAP_NET_RAW alone (bit 13) is enough, whatever the user.
    const raw = parseContainerLook('look 1000 0000000000002000 x86_64 no /dev/shm');
    assert.equal(canCapturePackets(raw as NonNullable<typeof raw>), true);
    assert.equal(parseContainerLook('look 0 - x86_64 yes /etc')?.uploadDir, undefined);
    assert.equal(
      canCapturePackets(
        parseContainerLook('look - - - no -') as NonNullable<ReturnType<typeof parseContainerLook>>,
      ),
      undefined,
    );
    assert.equal(parseContainerLook('sh: not found'), undefined);
  });
});
