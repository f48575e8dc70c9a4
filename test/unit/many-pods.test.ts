import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, test } from 'node:test';
import { captureRequest } from '../../src/capture/options.ts';
import type { KubedumpError } from '../../src/errors.ts';
import { workloadOf } from '../../src/kube/pods.ts';
import { parseTarget, selectorText, targetTextProblem } from '../../src/kube/target-spec.ts';
import { LINKTYPE_ETHERNET } from '../../src/pcap/format.ts';
import { enhancedPacketBlock } from '../../src/pcap/pcapng.ts';
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
  const packet = (interfaceId: number, n: number) =>
    enhancedPacketBlock({ interfaceId, timestamp: BigInt(n), data: Buffer.alloc(60, n) });

  function blockTypes(bytes: Buffer): number[] {
    const types: number[] = [];
    for (let at = 0; at < bytes.length; at += bytes.readUInt32LE(at + 4)) {
      types.push(bytes.readUInt32LE(at));
    }
    return types;
  }

  test('interleaves whole blocks; each interface is described before its packets', async () => {
    const sink = new PassThrough();
    const chunks: Buffer[] = [];
    sink.on('data', (c) => chunks.push(c));
    const out = new PcapngOutput(sink, { application: 'test' });
    const a = out.input();
    const b = out.input();
    assert.equal(out.addInterface({ linktype: LINKTYPE_ETHERNET, snaplen: 0, name: 'demo/a' }), 0);
    a.write(Buffer.concat([packet(0, 1), packet(0, 2)]));
    assert.equal(out.addInterface({ linktype: LINKTYPE_ETHERNET, snaplen: 0, name: 'demo/b' }), 1);
    b.write(packet(1, 3));
    a.write(packet(0, 4));
    a.end();
    b.end();
    await new Promise((r) => setImmediate(r));
    await out.end();
    const bytes = Buffer.concat(chunks);
    assert.deepEqual(blockTypes(bytes), [0x0a0d0d0a, 1, 6, 6, 1, 6, 6]);
    assert.equal(out.packets, 4);
  });

  test("the packet limit is the whole capture's, cut at a block boundary", async () => {
    const sink = new PassThrough();
    const chunks: Buffer[] = [];
    sink.on('data', (c) => chunks.push(c));
    let limited = 0;
    const out = new PcapngOutput(sink, {}, { maxPackets: 3, onLimit: () => limited++ });
    out.addInterface({ linktype: LINKTYPE_ETHERNET, snaplen: 0 });
    const a = out.input();
    const b = out.input();
    a.write(Buffer.concat([packet(0, 1), packet(0, 2)]));
    b.write(Buffer.concat([packet(0, 3), packet(0, 4)]));
    a.write(packet(0, 5));
    await new Promise((r) => setImmediate(r));
    await out.end();
    assert.deepEqual(blockTypes(Buffer.concat(chunks)), [0x0a0d0d0a, 1, 6, 6, 6]);
    assert.equal(out.packets, 3);
    assert.equal(limited, 1);
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
