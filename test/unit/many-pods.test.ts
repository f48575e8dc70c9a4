import assert from 'node:assert/strict';
import { PassThrough, Writable } from 'node:stream';
import { describe, test } from 'node:test';
import { captureRequest } from '../../src/capture/options.ts';
import type { KubedumpError } from '../../src/errors.ts';
import { workloadOf } from '../../src/kube/pods.ts';
import { parseTarget, selectorText, targetTextProblem } from '../../src/kube/target-spec.ts';
import { buildGlobalHeader, LINKTYPE_ETHERNET } from '../../src/pcap/format.ts';
import { PcapngOutput } from '../../src/pcap/pcapng-output.ts';
import { interfaceName, parseInterfaceName } from '../../src/wireshark/interfaces.ts';

describe('what a capture names', () => {
  test('pods, KIND/NAME as kubectl spells it, a selector, all', () => {
    assert.deepEqual(parseTarget('web', undefined, false), { kind: 'pods', names: ['web'] });
    assert.deepEqual(parseTarget('web,client,web', undefined, false), {
      kind: 'pods',
      names: ['web', 'client'],
    });
    assert.deepEqual(parseTarget('pod/web', undefined, false), { kind: 'pods', names: ['web'] });
    for (const [text, resource] of [
      ['deploy/api', 'deployment'],
      ['Deployment/api', 'deployment'],
      ['sts/api', 'statefulset'],
      ['ds/api', 'daemonset'],
      ['rs/api', 'replicaset'],
      ['job/api', 'job'],
      ['svc/api', 'service'],
    ] as const) {
      assert.deepEqual(parseTarget(text, undefined, false), {
        kind: 'workload',
        resource,
        name: 'api',
      });
    }
    assert.deepEqual(parseTarget(undefined, 'app=web', false), {
      kind: 'selector',
      selector: 'app=web',
    });
    assert.deepEqual(parseTarget(undefined, undefined, true), { kind: 'all' });
    assert.equal(parseTarget(undefined, undefined, false), undefined);
  });

  test('two ways of naming the target at once are refused in one line', () => {
    assert.throws(
      () => parseTarget('web', 'app=web', false),
      (e: KubedumpError) =>
        e.line ===
        'a pod or workload and -l both name what to capture: give one of: pod names, KIND/NAME, -l SELECTOR, --all',
    );
  });

  test('bad target text names the rule it breaks', () => {
    assert.equal(targetTextProblem('web'), undefined);
    assert.equal(targetTextProblem('deploy/web-1'), undefined);
    assert.match(targetTextProblem('cronjob/x') ?? '', /"cronjob" is not one of/);
    assert.match(targetTextProblem('Web') ?? '', /^lowercase letters/);
    assert.match(targetTextProblem('web,,client') ?? '', /^lowercase letters/);
    assert.throws(
      () => captureRequest({ pod: 'web;reboot' }, 'cli'),
      /pod name "web;reboot" is not valid: lowercase letters/,
    );
    assert.throws(() => captureRequest({}, 'cli'), /no pod given/);
  });

  test('a workload selector becomes the labelSelector kubectl would send', () => {
    assert.equal(
      selectorText({
        matchLabels: { app: 'web', tier: 'front' },
        matchExpressions: [
          { key: 'env', operator: 'In', values: ['prod', 'stage'] },
          { key: 'canary', operator: 'DoesNotExist' },
          { key: 'zone', operator: 'NotIn', values: ['a'] },
          { key: 'team', operator: 'Exists' },
        ],
      }),
      'app=web,tier=front,env in (prod,stage),!canary,zone notin (a),team',
    );
  });
});

describe('one pcapng section from several pods', () => {
  /** A whole pcap record (little-endian, microseconds) of 60 bytes of `n`. */
  const record = (n: number) => {
    const r = Buffer.alloc(16 + 60, n);
    r.writeUInt32LE(n, 0);
    r.writeUInt32LE(0, 4);
    r.writeUInt32LE(60, 8);
    r.writeUInt32LE(60, 12);
    return r;
  };
  const start = (...records: Buffer[]) => Buffer.concat([buildGlobalHeader(1), ...records]);

  function blockTypes(bytes: Buffer): number[] {
    const types: number[] = [];
    for (let at = 0; at < bytes.length; at += bytes.readUInt32LE(at + 4)) {
      types.push(bytes.readUInt32LE(at));
    }
    return types;
  }

  /** The timestamp (in seconds: microsecond units) of each Enhanced Packet Block, in order. */
  function packetSeconds(bytes: Buffer): number[] {
    const seconds: number[] = [];
    for (let at = 0; at < bytes.length; at += bytes.readUInt32LE(at + 4)) {
      if (bytes.readUInt32LE(at) !== 6) continue;
      const units = bytes.readUInt32LE(at + 12) * 2 ** 32 + bytes.readUInt32LE(at + 16);
      seconds.push(units / 1e6);
      assert.deepEqual(bytes.subarray(at + 28, at + 88), Buffer.alloc(60, units / 1e6));
    }
    return seconds;
  }

  /** A stream output, and one that also takes views (refusing more while `full`), as src/output.ts does. */
  function sinks() {
    const stream = new PassThrough();
    const streamed: Buffer[] = [];
    stream.on('data', (c) => streamed.push(c));
    const taken: Buffer[] = [];
    const drains: (() => void)[] = [];
    const state = { full: false };
    const views = Object.assign(
      new Writable({
        write(chunk: Buffer, _e, cb) {
          taken.push(chunk);
          cb();
        },
      }),
      {
        take: (bytes: Buffer) => taken.push(Buffer.from(bytes)) > 0 && !state.full,
        onDrain: (listener: () => void) => drains.push(listener),
      },
    );
    return [
      { name: 'stream', sink: stream, bytes: () => Buffer.concat(streamed), state, drains },
      { name: 'views', sink: views, bytes: () => Buffer.concat(taken), state, drains },
    ];
  }

  test('interleaves whole blocks; each interface is described before its packets', async () => {
    for (const { name, sink, bytes } of sinks()) {
      const out = new PcapngOutput(sink, { application: 'test' });
      const pick = (pod: string) => () =>
        out.addInterface({ linktype: LINKTYPE_ETHERNET, snaplen: 0, name: pod });
      const a = out.source(pick('demo/a'));
      const b = out.source(pick('demo/b'));
      assert.equal(a.take(start(record(1), record(2))), true);
      b.write(start(record(3)));
      assert.equal(a.take(record(4)), true);
      a.end();
      b.end();
      await new Promise((r) => setImmediate(r));
      await out.end();
      assert.deepEqual(blockTypes(bytes()), [0x0a0d0d0a, 1, 6, 6, 1, 6, 6], name);
      assert.deepEqual(packetSeconds(bytes()), [1, 2, 3, 4], name);
      assert.equal(out.packets, 4, name);
      assert.equal(out.bytes, 4 * (32 + 60), name);
    }
  });

  test("the packet limit is the whole capture's, cut at a block boundary", async () => {
    for (const { name, sink, bytes } of sinks()) {
      let limited = 0;
      const out = new PcapngOutput(sink, {}, { maxPackets: 3, onLimit: () => limited++ });
      const id = out.addInterface({ linktype: LINKTYPE_ETHERNET, snaplen: 0 });
      const a = out.source(() => id);
      const b = out.source(() => id);
      a.take(start(record(1), record(2)));
      b.take(start(record(3), record(4)));
      a.take(record(5));
      await new Promise((r) => setImmediate(r));
      await out.end();
      assert.deepEqual(blockTypes(bytes()), [0x0a0d0d0a, 1, 6, 6, 6], name);
      assert.equal(out.packets, 3, name);
      assert.equal(limited, 1, name);
    }
  });

  test('a full output pauses every source until it drains', async () => {
    const [, views] = sinks();
    assert.ok(views);
    const out = new PcapngOutput(views.sink, {});
    const a = out.source(() => 0);
    views.state.full = true;
    assert.equal(a.take(start(record(1))), false, 'a source is asked to wait');
    let written = false;
    out.source(() => 0).write(start(record(2)), () => (written = true));
    await new Promise((r) => setImmediate(r));
    assert.equal(written, false, 'a written chunk waits for the drain');
    views.state.full = false;
    for (const drain of views.drains.splice(0)) drain();
    await new Promise((r) => setImmediate(r));
    assert.equal(written, true);
    assert.equal(out.packets, 2);
  });
});

describe('workloads as Wireshark interfaces', () => {
  const owned = (kind: string, name: string, labels: Record<string, string> = {}) =>
    workloadOf({
      metadata: {
        labels,
        ownerReferences: [{ apiVersion: 'v1', kind, name, uid: 'u', controller: true }],
      },
    });

  test("a pod's workload comes from its owner, a Deployment's through its ReplicaSet's name", () => {
    assert.equal(
      owned('ReplicaSet', 'web-7d9f6c5b8', { 'pod-template-hash': '7d9f6c5b8' }),
      'deploy/web',
    );
    assert.equal(owned('ReplicaSet', 'bare-rs'), 'rs/bare-rs');
    assert.equal(owned('StatefulSet', 'db'), 'sts/db');
    assert.equal(owned('DaemonSet', 'agent'), 'ds/agent');
    assert.equal(owned('Job', 'backup'), 'job/backup');
    assert.equal(owned('Node', 'n1'), undefined);
    assert.equal(workloadOf({ metadata: {} }), undefined);
  });

  test('kubedump.NS.KIND.NAME stands for KIND/NAME; a pod name stays a pod name', () => {
    assert.equal(interfaceName('shop', 'deploy/api'), 'kubedump.shop.deploy.api');
    assert.deepEqual(parseInterfaceName('kubedump.shop.deploy.api'), {
      namespace: 'shop',
      pod: 'deploy/api',
    });
    assert.deepEqual(parseInterfaceName('kubedump.shop.sts.db.v2'), {
      namespace: 'shop',
      pod: 'sts/db.v2',
    });
    assert.deepEqual(parseInterfaceName('kubedump.shop.web-1.x'), {
      namespace: 'shop',
      pod: 'web-1.x',
    });
    assert.equal(parseInterfaceName('kubedump.shop.'), undefined);
  });
});
