import assert from 'node:assert/strict';
import { createWriteStream, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { buildGlobalHeader, LINKTYPE_ETHERNET } from '../../src/pcap/format.ts';
import { PcapngOutput } from '../../src/pcap/pcapng-output.ts';
import { ROOT, run } from '../support/kubedump.ts';

// scripts/screenshot draws Wireshark (the Qt GUI, on Xvfb) on a two-pod
// pcapng written by kubedump's own pcapng writer, and saves a PNG of the
// size asked for that holds a drawn window, not a blank screen.

test('scripts/screenshot: a PNG of Wireshark showing a two-pod pcapng', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kubedump-screenshot-'));
  const file = join(dir, 'two-pods.pcapng');
  const sink = createWriteStream(file);
  const output = new PcapngOutput(sink, { application: 'kubedump test' });
  for (const [id, name] of ['demo/web', 'demo/client'].entries()) {
    const source = output.source(() =>
      output.addInterface({ name, linktype: LINKTYPE_ETHERNET, snaplen: 262144, os: 'Linux' }),
    );
    source.write(buildGlobalHeader(LINKTYPE_ETHERNET));
    for (let n = 1; n <= 5; n++) {
      // A pcap record: n seconds and `id` microseconds, 60 bytes of n.
      const record = Buffer.alloc(16 + 60, n);
      for (const [at, value] of [n, id, 60, 60].entries()) record.writeUInt32LE(value, at * 4);
      source.write(record);
    }
    await new Promise<void>((resolve) => source.end(resolve));
  }
  await output.end();

  const png = join(dir, 'shot.png');
  const ran = await run(
    [join(ROOT, 'scripts', 'screenshot'), '-o', png, '--size', '1280x720', file],
    {
      timeoutMs: 120_000,
    },
  );
  assert.equal(ran.code, 0, ran.stderr);
  assert.ok(statSync(png).size > 10_000, 'the PNG is all but empty');
  assert.deepEqual(
    [...readFileSync(png).subarray(0, 8)],
    [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a],
  );
  const info = await run(['identify', '-format', '%w %h %k', png]);
  assert.equal(info.code, 0, info.stderr);
  const [width, height, colors] = info.stdout.trim().split(' ').map(Number);
  assert.deepEqual([width, height], [1280, 720]);
  assert.ok((colors ?? 0) > 16, `only ${colors} colours: nothing was drawn`);
  console.log(
    `# screenshot: ${Math.round(ran.ms)} ms, ${statSync(png).size} bytes, ${colors} colours`,
  );
});
