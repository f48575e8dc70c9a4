import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Diagnosis } from '../../src/capture/diagnosis.ts';
import { type Check, chooseMode, verdicts } from '../../src/capture/mode-pick.ts';
import { renderJson, renderTable } from '../../src/cli/doctor.ts';

// `kubedump doctor`'s two renderings of one diagnosis: a table for people,
// JSON for scripts. Both come from the same checks auto decides by.

function diagnosis(checks: Check[]): Diagnosis {
  return {
    namespace: 'demo',
    pod: 'distroless',
    container: 'server',
    node: 'node-a',
    checks,
    modes: verdicts(checks),
    auto: chooseMode(checks).candidates[0],
  };
}

const DISTROLESS: Check[] = [
  {
    check: 'node OS and architecture',
    result: 'ok',
    detail: 'linux/amd64 (node node-a)',
    blocks: [],
  },
  {
    check: 'shell in the container',
    result: 'fail',
    detail: 'container "server" has no /bin/sh (distroless?)',
    reason: 'container "server" has no shell',
    todo: 'use ephemeral or privileged mode',
    blocks: ['unprivileged'],
  },
  {
    check: 'helper pod admission (dry run)',
    result: 'skip',
    detail: 'creating pods is not allowed',
    blocks: [],
  },
];

test('the table: one row per check, a failure with what to do, the modes, auto last', () => {
  assert.equal(
    renderTable(diagnosis(DISTROLESS)),
    [
      'pod demo/distroless, container server, node node-a',
      '',
      'CHECK                           RESULT  DETAIL / WHAT TO DO',
      'node OS and architecture        ok      linux/amd64 (node node-a)',
      'shell in the container          fail    container "server" has no /bin/sh (distroless?); what to do: use ephemeral or privileged mode',
      'helper pod admission (dry run)  skip    creating pods is not allowed',
      '',
      'modes:',
      '  unprivileged  cannot: container "server" has no shell',
      '  ephemeral     can capture',
      '  privileged    can capture',
      '',
      'auto takes: ephemeral',
      '',
    ].join('\n'),
  );
});

test('the table when nothing can capture says so', () => {
  const blocked = DISTROLESS.map((c) =>
    c.result === 'fail'
      ? { ...c, blocks: ['unprivileged', 'ephemeral', 'privileged'] as const }
      : c,
  );
  const text = renderTable(diagnosis(blocked));
  assert.match(text, /\n {2}privileged {4}cannot: container "server" has no shell\n/);
  assert.match(text, /\nauto takes: nothing: no mode can capture this pod\n$/);
});

test('the JSON: every check with its result, the modes, auto (null when none)', () => {
  const parsed = JSON.parse(renderJson(diagnosis(DISTROLESS)));
  assert.equal(parsed.auto, 'ephemeral');
  assert.equal(parsed.pod, 'distroless');
  assert.deepEqual(
    parsed.checks.map((c: { check: string; result: string }) => [c.check, c.result]),
    [
      ['node OS and architecture', 'ok'],
      ['shell in the container', 'fail'],
      ['helper pod admission (dry run)', 'skip'],
    ],
  );
  assert.deepEqual(parsed.checks[1], {
    check: 'shell in the container',
    result: 'fail',
    detail: 'container "server" has no /bin/sh (distroless?)',
    todo: 'use ephemeral or privileged mode',
    blocks: ['unprivileged'],
  });
  assert.equal(parsed.checks[0].todo, null);
  assert.deepEqual(parsed.modes[0], {
    mode: 'unprivileged',
    canCapture: false,
    blockers: ['container "server" has no shell'],
  });
  const none = JSON.parse(
    renderJson(
      diagnosis([
        { ...(DISTROLESS[1] as Check), blocks: ['unprivileged', 'ephemeral', 'privileged'] },
      ]),
    ),
  );
  assert.equal(none.auto, null);
});
