import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  fieldValue,
  renderArgs,
  renderDlt,
  renderInfo,
  renderInterface,
} from '../../src/extcap/sentences.ts';

test('renders sentences exactly as Wireshark parses them', () => {
  assert.equal(
    renderInfo({ version: '1.0', help: 'kubedump --help', display: 'Kubernetes' }),
    'extcap {version=1.0}{help=kubedump --help}{display=Kubernetes}',
  );
  assert.equal(
    renderInterface({ value: 'kubedump.demo.web', display: 'Pod demo/web' }),
    'interface {value=kubedump.demo.web}{display=Pod demo/web}',
  );
  assert.equal(
    renderDlt({ number: 113, name: 'LINUX_SLL', display: 'Linux cooked' }),
    'dlt {number=113}{name=LINUX_SLL}{display=Linux cooked}',
  );
  assert.deepEqual(
    renderArgs([
      {
        call: 'pod',
        display: 'Pod',
        type: 'selector',
        reload: true,
        group: 'Target',
        values: [{ value: 'web', display: 'web', default: true }],
      },
      { call: 'snaplen', display: 'Snaplen', type: 'unsigned', default: '0', range: [0, 262144] },
    ]),
    [
      'arg {number=0}{call=--pod}{display=Pod}{type=selector}{reload=true}{group=Target}',
      'value {arg=0}{value=web}{display=web}{default=true}',
      'arg {number=1}{call=--snaplen}{display=Snaplen}{type=unsigned}{default=0}{range=0,262144}',
    ],
  );
});

// Wireshark ends a value at the first '}' followed by '{', whitespace or end of line.
function endsFieldEarly(value: string): boolean {
  return /\}(\{|\s|$)/.test(value) || /[\r\n]/.test(value);
}

test('no emitted value can end a field early', () => {
  const nasty = ['}{', '} ', '}', '}\n', 'a}{b', 'x}\ty', '}\r\n{', '{}}{{', 'ok'];
  for (const value of nasty)
    assert.equal(endsFieldEarly(fieldValue(value)), false, JSON.stringify(value));
  // Random strings over the dangerous alphabet.
  const alphabet = ['}', '{', ' ', '\n', '\r', '\t', 'a', '=', '\u0000', 'é'];
  let seed = 42;
  const next = () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed;
  };
  for (let i = 0; i < 5000; i++) {
    let value = '';
    const length = next() % 12;
    for (let j = 0; j < length; j++) value += alphabet[next() % alphabet.length];
    const line = renderInterface({ value, display: value });
    // The rendered line has exactly the two fields it was given.
    assert.equal(line.match(/\}(\{|$)/g)?.length, 2, JSON.stringify(value));
    assert.equal(endsFieldEarly(fieldValue(value)), false, JSON.stringify(value));
  }
});
