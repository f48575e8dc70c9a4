import assert from 'node:assert/strict';
import { test } from 'node:test';
import { booleanOption, isExtcapArgv, parseExtcapArgv } from '../../src/extcap/argv.ts';

test('recognizes every extcap verb', () => {
  assert.equal(parseExtcapArgv(['--extcap-interfaces', '--extcap-version=4.0']).verb, 'interfaces');
  assert.equal(
    parseExtcapArgv(['--extcap-interfaces', '--extcap-version=4.0']).extcapVersion,
    '4.0',
  );
  assert.equal(parseExtcapArgv(['--extcap-dlts', '--extcap-interface', 'kubedump']).verb, 'dlts');
  assert.equal(parseExtcapArgv(['--extcap-interface', 'x', '--extcap-config']).verb, 'config');
  const reload = parseExtcapArgv([
    '--extcap-config',
    '--extcap-interface',
    'x',
    '--extcap-reload-option',
    'pod',
    '--namespace',
    'demo',
  ]);
  assert.equal(reload.verb, 'reload');
  assert.equal(reload.reloadOption, 'pod');
  assert.equal(reload.options.get('namespace'), 'demo');
  assert.equal(
    parseExtcapArgv(['--extcap-capture-filter', 'tcp', '--extcap-interface', 'x']).verb,
    'capture-filter',
  );
  assert.equal(
    parseExtcapArgv(['--fifo', '/tmp/f', '--capture', '--extcap-capture-filter', 'tcp']).verb,
    'capture',
  );
  assert.equal(isExtcapArgv(['capture', 'web']), false);
  assert.equal(isExtcapArgv(['--capture']), true);
});

test('any order, unknown options and missing values are accepted', () => {
  const argv = [
    '--pod',
    'web',
    '--extcap-cleanup-postkill',
    '--capture',
    '--unknown-new-option',
    'v',
    '--fifo',
    '/tmp/f',
    '--extcap-interface',
    'kubedump',
    '--keep-binary',
    '--container',
  ];
  const forward = parseExtcapArgv(argv);
  const pairs: string[][] = [];
  for (let i = 0; i < argv.length; ) {
    const next = argv[i + 1];
    const takesValue =
      next !== undefined &&
      !next.startsWith('--') &&
      !['--capture', '--extcap-cleanup-postkill'].includes(argv[i] as string);
    pairs.push(takesValue ? [argv[i] as string, next] : [argv[i] as string]);
    i += takesValue ? 2 : 1;
  }
  const reversed = parseExtcapArgv(pairs.reverse().flat());
  for (const request of [forward, reversed]) {
    // The capture's own argv with --extcap-cleanup-postkill: the cleanup call.
    assert.equal(request.verb, 'cleanup-postkill');
    assert.equal(request.fifo, '/tmp/f');
    assert.equal(request.iface, 'kubedump');
    assert.equal(request.options.get('pod'), 'web');
    assert.equal(request.options.get('unknown-new-option'), 'v');
    assert.equal(request.options.get('container'), '');
    assert.equal(booleanOption(request.options, 'keep-binary'), true);
    assert.equal(booleanOption(request.options, 'privileged'), false);
  }
});

test('boolean options take flag and value forms', () => {
  const options = parseExtcapArgv(['--a', 'true', '--b', 'false', '--c', '--d=0']).options;
  assert.deepEqual(
    ['a', 'b', 'c', 'd', 'e'].map((n) => booleanOption(options, n)),
    [true, false, true, false, false],
  );
});

test('--extcap-cleanup-postkill is its own call, with or without the capture argv', () => {
  assert.equal(
    parseExtcapArgv(['--extcap-cleanup-postkill', '--extcap-interface', 'kubedump.demo.web']).verb,
    'cleanup-postkill',
  );
  assert.equal(parseExtcapArgv(['--capture', '--fifo', '/tmp/f']).verb, 'capture');
});
