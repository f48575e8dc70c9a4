import assert from 'node:assert/strict';
import { test } from 'node:test';
import { validateRequest } from '../../src/capture/options.ts';
import { parsePidLine, withWatchdog } from '../../src/capture/remote-scripts.ts';
import { tcpdumpArgv, tcpdumpFailure } from '../../src/capture/tcpdump-command.ts';
import { KubedumpError } from '../../src/errors.ts';
import { renderArgs } from '../../src/extcap/sentences.ts';
import { configArgs, requestFromOptions } from '../../src/wireshark/dialog.ts';
import { interfaceName, parseInterfaceName } from '../../src/wireshark/interfaces.ts';

test('interface names round-trip, pod names may hold dots', () => {
  assert.equal(interfaceName('demo', 'web.v1'), 'kubedump.demo.web.v1');
  assert.deepEqual(parseInterfaceName('kubedump.demo.web.v1'), {
    namespace: 'demo',
    pod: 'web.v1',
  });
  assert.equal(parseInterfaceName('kubedump'), undefined);
  assert.equal(parseInterfaceName('kubedump.demo.'), undefined);
  assert.equal(parseInterfaceName('eth0'), undefined);
});

test('options become a capture request; the interface name fixes the pod', () => {
  const options = new Map([
    ['pod', 'ignored'],
    ['mode', 'privileged'],
    ['filter', 'tcp'],
    ['max-packets', '20'],
  ]);
  const request = requestFromOptions('kubedump.demo.web', 'port 80', options);
  assert.equal(request.namespace, 'demo');
  assert.equal(request.pod, 'web');
  assert.equal(request.mode, 'privileged');
  assert.equal(request.filter, '(tcp) and (port 80)');
  assert.equal(request.maxPackets, 20);
  assert.equal(request.iface, 'any');
  assert.throws(() => requestFromOptions('kubedump', '', new Map()), /no pod chosen/);
  assert.throws(
    () => requestFromOptions('kubedump.demo.web', '', new Map([['snaplen', '12abc']])),
    /--snaplen "12abc" is not a whole number/,
  );
  assert.throws(
    () => requestFromOptions('kubedump.demo.web', '', new Map([['mode', 'root']])),
    /mode "root"/,
  );
});

test('bad names are refused before they reach the cluster', () => {
  const base = requestFromOptions('kubedump.demo.web', '', new Map());
  validateRequest(base);
  for (const [field, value] of [
    ['pod', 'Web;rm -rf /'],
    ['namespace', 'demo/../x'],
    ['container', 'c'.repeat(64)],
    ['iface', 'eth0 -w /etc/passwd'],
  ] as const) {
    assert.throws(
      () => validateRequest({ ...base, [field]: value }),
      (e: unknown) =>
        e instanceof KubedumpError && e.code === 'BAD_INPUT' && !e.line.includes('\n'),
    );
  }
});

test('the filter stays one argv element after --, behind a constant wrapper', () => {
  const filter = 'port 80; touch /tmp/pwned $(id) `id`';
  const argv = withWatchdog(
    tcpdumpArgv({ binary: '/tmp/t', iface: 'any', filter, snaplen: 96 }),
    '/tmp/.kubedump-0123456789abcdef/heartbeat-1',
  );
  assert.deepEqual(argv.slice(0, 2), ['sh', '-c']);
  assert.match(argv[2] as string, /^b=\$1; shift\n/);
  assert.match(
    argv[2] as string,
    /\n"\$@" <\/dev\/null 3<&- &\nt=\$!\necho "kubedump-pid \$t" >&2\n/,
  );
  assert.equal(argv[3], 'sh');
  assert.equal(argv[4], '/tmp/.kubedump-0123456789abcdef/heartbeat-1');
  assert.equal(argv[5], '/tmp/t');
  assert.deepEqual(argv.slice(-2), ['--', filter]);
  assert.ok(argv.includes('LINUX_SLL'));
  assert.equal(parsePidLine('kubedump-pid 4242'), 4242);
  assert.equal(parsePidLine('tcpdump: listening on any'), undefined);
});

test('tcpdump failures become one line with a hint', () => {
  const cases: [string, number | null, string][] = [
    [
      "tcpdump: any: You don't have permission to perform this capture on that device\n(socket: Operation not permitted)",
      1,
      'privileged mode',
    ],
    ["tcpdump: can't parse filter expression: syntax error", 1, 'not valid BPF'],
    [
      'tcpdump: eth9: No such device exists\n(SIOCGIFHWADDR: No such device)',
      1,
      'interface that exists',
    ],
    ['', 126, 'noexec'],
  ];
  for (const [stderr, code, expected] of cases) {
    const error = tcpdumpFailure(stderr, code, 'pod demo/web', 'unprivileged');
    assert.match(error.line, new RegExp(expected));
    assert.ok(!error.line.includes('\n'));
  }
});

test('the options dialog has defaults for everything and no required args', () => {
  const lines = renderArgs(configArgs('kubedump'));
  assert.ok(!lines.some((l) => l.includes('{required=true}')));
  const calls = lines
    .filter((l) => l.startsWith('arg '))
    .map((l) => /\{call=--([^}]+)\}/.exec(l)?.[1]);
  for (const call of [
    'context',
    'namespace',
    'pod',
    'container',
    'remote-interface',
    'filter',
    'mode',
    'helper-namespace',
    'helper-image',
    'snaplen',
    'max-packets',
    'max-seconds',
    'log-level',
    'log-file',
  ]) {
    assert.ok(calls.includes(call), call);
  }
  for (const reloadable of ['context', 'namespace', 'pod', 'container']) {
    assert.ok(
      lines.some((l) => l.includes(`{call=--${reloadable}}`) && l.includes('{reload=true}')),
      reloadable,
    );
  }
});

test('a shell\'s "not found" is a missing command, not a missing interface', () => {
  assert.equal(
    tcpdumpFailure('sh: 1: /tmp/x: not found', 127, 'pod demo/web', 'unprivileged').code,
    'NOT_FOUND_REMOTE',
  );
  assert.equal(
    tcpdumpFailure('tcpdump: eth9: No such device exists', 1, 'pod demo/web', 'unprivileged').code,
    'NO_SUCH_INTERFACE',
  );
});
