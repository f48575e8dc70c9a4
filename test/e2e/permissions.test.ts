// Least privilege on the real cluster (RBAC on): a ServiceAccount bound to
// exactly the Role shipped in scripts/rbac/ (unprivileged, privileged and
// ephemeral mode) captures; with any one required
// rule taken away the capture fails with one line naming the permission the
// server refused, and leaves nothing behind; without an optional rule it
// still captures.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadAllYaml } from '@kubernetes/client-node';
import { HELPER_SELECTOR } from '../../src/capture/helper-spec.ts';
import { BUILT, run } from '../support/kubedump.ts';
import { allRemoteTcpdumps } from '../support/leftovers.ts';
import { kubectl, REPO_ROOT, realCluster } from '../support/real-cluster.ts';
import { countPcapRecords, oneLine, until } from '../support/reliability.ts';

const cluster = realCluster();
const admin = { kubeconfig: cluster.kubeconfig };
const NS = 'demo';

interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}
interface RbacObject {
  kind: 'Role' | 'ClusterRole';
  metadata: { name: string };
  rules: Rule[];
}

/** The YAML file's objects; the real kubectl validates them against the server too. */
async function loadRbac(file: string): Promise<RbacObject[]> {
  const r = await kubectl(['create', '--dry-run=server', '-f', file, '-n', NS], admin);
  assert.equal(r.code, 0, r.stderr);
  return loadAllYaml(readFileSync(file, 'utf8')) as RbacObject[];
}

const describeRule = (r: Rule) => `${r.verbs.join(',')} ${r.resources.join(',')}`;

/**
 * What each rule of the shipped Roles is for: `refused` is what the one
 * error line must name once the rule is gone; `optional` rules may go.
 */
const EXPECTED: Record<string, { refused: RegExp } | { optional: true }> = {
  'get pods': { refused: /"get pods"/ },
  'create,delete pods': { refused: /create pods/ },
  // v1.20 authorises WebSocket exec as a GET; the hint names both verbs.
  'create,get pods/exec': { refused: /"get pods\/exec".*"create pods\/exec"/ },
  // Privileged mode's sweep, and its watch on the helper (else it polls).
  'list,watch pods': { optional: true },
  'get nodes': { optional: true },
  // Ephemeral mode waits on a watch for its container to run.
  'watch pods': { refused: /"watch pods"/ },
  // The 1.22+ shape patches; this 1.20 cluster speaks the old shape (a read
  // and a replace), so here the patch rule may go and the read may not.
  // test/e2e/ephemeral-emulated.test.ts shows the opposite on 1.31.
  'patch pods/ephemeralcontainers': { optional: true },
  'get,update pods/ephemeralcontainers': { refused: /"get pods\/ephemeralcontainers"/ },
};

let serial = 0;

/** A ServiceAccount bound to exactly these objects, and a kubeconfig with its token. */
async function identity(
  dir: string,
  objects: RbacObject[],
): Promise<{ kubeconfig: string; name: string; close(): Promise<void> }> {
  const name = `kd-perm-${process.pid}-${serial++}`;
  const sa = `system:serviceaccount:${NS}:${name}`;
  const docs: unknown[] = [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace: NS } },
  ];
  for (const o of objects) {
    const cluster = o.kind === 'ClusterRole';
    docs.push({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: o.kind,
      metadata: { name, ...(cluster ? {} : { namespace: NS }) },
      rules: o.rules,
    });
    docs.push({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: cluster ? 'ClusterRoleBinding' : 'RoleBinding',
      metadata: { name, ...(cluster ? {} : { namespace: NS }) },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: o.kind, name },
      subjects: [{ kind: 'ServiceAccount', name, namespace: NS }],
    });
  }
  const input = JSON.stringify({ apiVersion: 'v1', kind: 'List', items: docs });
  const applied = await kubectl(['apply', '-f', '-'], { ...admin, input });
  assert.equal(applied.code, 0, applied.stderr);
  const close = async () => {
    await kubectl(['delete', '--ignore-not-found', '--wait=false', '-f', '-'], { ...admin, input });
  };
  // TokenRequest: no controller-manager makes ServiceAccount secrets here.
  const token = await kubectl(['create', 'token', name, '-n', NS, '--duration=10m'], admin);
  assert.equal(token.code, 0, token.stderr);
  const view = await kubectl(['config', 'view', '--raw', '--minify', '-o', 'json'], admin);
  const source = JSON.parse(view.stdout) as {
    clusters: { cluster: Record<string, string> }[];
  };
  const kubeconfig = join(dir, `${name}.kubeconfig`);
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'local', cluster: source.clusters[0]?.cluster }],
    users: [{ name, user: { token: token.stdout.trim() } }],
    contexts: [{ name, context: { cluster: 'local', user: name, namespace: NS } }],
    'current-context': name,
  };
  writeFileSync(kubeconfig, JSON.stringify(config), { mode: 0o600 });
  // RBAC reaches the authorizer's cache within moments: wait until the first
  // rule is granted.
  const first = objects[0]?.rules[0];
  if (first) {
    const [resource = '', sub] = (first.resources[0] ?? '').split('/');
    const ask = ['auth', 'can-i', first.verbs[0] ?? '', resource, '-n', NS, '--as', sa];
    if (sub) ask.push(`--subresource=${sub}`);
    await until(
      `${sa} to be granted "${describeRule(first)}"`,
      async () => (await kubectl(ask, admin)).stdout.trim() === 'yes',
      10_000,
    );
  }
  return { kubeconfig, name, close };
}

async function helperPods(): Promise<string[]> {
  const r = await kubectl(['get', 'pods', '-n', NS, '-l', HELPER_SELECTOR, '-o', 'name'], admin);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.split('\n').filter(Boolean);
}

/** Ephemeral containers still running in pod web. */
async function runningEphemeral(): Promise<string> {
  const r = await kubectl(
    [
      'get',
      'pod',
      'web',
      '-n',
      NS,
      '-o',
      'jsonpath={range .status.ephemeralContainerStatuses[*]}{.name}={.state.running}{" "}{end}',
    ],
    admin,
  );
  assert.equal(r.code, 0, r.stderr);
  return r.stdout
    .split(' ')
    .filter((s) => s && !s.endsWith('='))
    .join(' ');
}

async function assertNothingLeft(what: string): Promise<void> {
  await until(`no helper pod after ${what}`, async () => (await helperPods()).length === 0, 10_000);
  // An ephemeral container cannot be removed: its process ends by itself,
  // 30 s after the last heartbeat (or without any), 5 s after a clean stop.
  await until(
    `no running ephemeral container after ${what}`,
    async () => (await runningEphemeral()) === '',
    45_000,
  );
  // A killed tcpdump takes a moment to leave the process table.
  await until(`no tcpdump after ${what}`, () => allRemoteTcpdumps().length === 0, 5000).catch(() =>
    assert.deepEqual(allRemoteTcpdumps(), [], `a tcpdump still runs after ${what}`),
  );
  const files = await kubectl(
    ['exec', 'web', '--', 'find', '/', '-xdev', '-name', '*kubedump*'],
    admin,
  );
  assert.equal(files.code, 0, files.stderr);
  assert.equal(files.stdout, '', `files left in web after ${what}`);
}

for (const mode of ['unprivileged', 'privileged', 'ephemeral'] as const) {
  describe(`${mode} mode with scripts/rbac/kubedump-${mode}.yaml`, () => {
    const file = join(REPO_ROOT, 'scripts', 'rbac', `kubedump-${mode}.yaml`);
    let dir: string;
    let objects: RbacObject[];

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), `kubedump-perm-${mode}-`));
      objects = await loadRbac(file);
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    async function capture(kubeconfig: string, label: string) {
      const out = join(dir, `${label}.pcap`);
      const ran = await run(
        [
          BUILT,
          'capture',
          'web',
          '-n',
          NS,
          ...(mode === 'privileged' ? ['-p', '--pid-lookup', 'cgroup'] : ['--mode', mode]),
          '--max-packets',
          '3',
          '--kubeconfig',
          kubeconfig,
          '-w',
          out,
        ],
        {
          env: { ...process.env, KUBECONFIG: '', HOME: dir, XDG_CACHE_HOME: join(dir, 'cache') },
          timeoutMs: 90_000,
        },
      );
      return { ...ran, out };
    }

    test('the Role names a purpose for every rule and never patch (but ephemeral containers)', () => {
      const text = readFileSync(file, 'utf8');
      for (const o of objects) {
        for (const r of o.rules) {
          assert.ok(
            describeRule(r) in EXPECTED,
            `no expectation for the rule "${describeRule(r)}"`,
          );
          // The one patch allowed: adding an ephemeral container (Kubernetes 1.22+).
          const patchOnly = r.resources.every((x) => x === 'pods/ephemeralcontainers');
          assert.ok(!r.verbs.includes('*'), describeRule(r));
          assert.ok(!r.verbs.includes('patch') || patchOnly, describeRule(r));
        }
      }
      // A comment line right above every rule.
      const rules = text.split('\n').filter((l) => /^- apiGroups:/.test(l)).length;
      const commented = text.match(/^#.*\n- apiGroups:/gm)?.length ?? 0;
      assert.equal(commented, rules, 'every rule has a comment saying why');
    });

    test('exactly the Role: the capture works', async () => {
      const id = await identity(dir, objects);
      try {
        const ran = await capture(id.kubeconfig, 'full');
        assert.equal(ran.code, 0, ran.stderr);
        assert.equal(countPcapRecords(readFileSync(ran.out)), 3);
        await assertNothingLeft('a capture with the whole Role');
      } finally {
        await id.close();
      }
    });

    test('one rule fewer: one line naming the permission, nothing left behind', async (t) => {
      const variants = objects.flatMap((o, oi) =>
        o.rules.map((rule, ri) => ({
          rule,
          objects: objects
            .map((x, xi) => (xi === oi ? { ...x, rules: x.rules.filter((_, i) => i !== ri) } : x))
            .filter((x) => x.rules.length > 0),
        })),
      );
      assert.ok(variants.length >= 2);
      for (const v of variants) {
        const what = `without "${describeRule(v.rule)}"`;
        const expected = EXPECTED[describeRule(v.rule)];
        assert.ok(expected, what);
        const id = await identity(dir, v.objects);
        try {
          const ran = await capture(id.kubeconfig, `without-${serial}`);
          if ('optional' in expected) {
            assert.equal(ran.code, 0, `${what}: ${ran.stderr}`);
            assert.equal(countPcapRecords(readFileSync(ran.out)), 3, what);
          } else {
            assert.equal(ran.code, 1, `${what}: exit ${ran.code}, ${ran.stderr}`);
            const line = oneLine(ran.stderr);
            t.diagnostic(`${what}: ${line}`);
            assert.match(line, expected.refused, what);
            assert.match(line, /forbidden|not allowed/, what);
          }
          await assertNothingLeft(what);
        } finally {
          await id.close();
        }
      }
    });
  });
}
