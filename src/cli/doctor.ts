import type { Argv } from 'yargs';
import type { Diagnosis } from '../capture/diagnosis.ts';
import { captureRequest, optionRow, rawFromCli } from '../capture/options.ts';
import { yargsOption } from './capture.ts';

// `kubedump doctor POD`: what each mode needs, checked against the cluster
// and the pod without creating anything, and the mode auto would take. Exit
// 0 when some mode can capture, else 1.

/** The capture options that change what doctor checks. */
const ROWS = [
  'namespace',
  'container',
  'context',
  'kubeconfig',
  'helperNamespace',
  'helperImage',
] as const;

export function doctorOptions<T>(y: Argv<T>): Argv<T> {
  let out = y.positional('pod', { type: 'string', describe: 'the pod to check' }) as Argv<T>;
  for (const key of ROWS) {
    const row = optionRow(key);
    out = out.option(row.cli.flag, yargsOption(row)) as Argv<T>;
  }
  return out.option('output', {
    alias: 'o',
    choices: ['table', 'json'],
    default: 'table',
    describe: 'table for people, json for scripts',
  }) as Argv<T>;
}

export async function doctorCommand(
  args: Record<string, unknown>,
  signal: AbortSignal,
  print: (text: string) => void,
): Promise<number> {
  const raw = rawFromCli(args);
  for (const key of Object.keys(raw) as (keyof typeof raw)[]) {
    if (key !== 'pod' && !(ROWS as readonly string[]).includes(key)) delete raw[key];
  }
  const request = captureRequest(raw, 'cli');
  const { diagnose } = await import('../capture/diagnosis.ts');
  const diagnosis = await diagnose(request, signal);
  print(args.output === 'json' ? renderJson(diagnosis) : renderTable(diagnosis));
  return diagnosis.auto ? 0 : 1;
}

export function renderJson(d: Diagnosis): string {
  return `${JSON.stringify(
    {
      namespace: d.namespace,
      pod: d.pod,
      container: d.container ?? null,
      node: d.node ?? null,
      checks: d.checks.map((c) => ({
        check: c.check,
        result: c.result,
        detail: c.detail,
        todo: c.result === 'fail' ? (c.todo ?? null) : null,
        blocks: c.result === 'fail' ? c.blocks : [],
      })),
      modes: d.modes,
      auto: d.auto ?? null,
    },
    null,
    2,
  )}\n`;
}

export function renderTable(d: Diagnosis): string {
  const head = ['CHECK', 'RESULT', 'DETAIL / WHAT TO DO'];
  const rows = d.checks.map((c) => [
    c.check,
    c.result,
    c.result === 'fail' && c.todo ? `${c.detail}; what to do: ${c.todo}` : c.detail,
  ]);
  const width = [0, 1].map((i) => Math.max(...[head, ...rows].map((r) => (r[i] as string).length)));
  const line = (r: string[]) =>
    `${(r[0] as string).padEnd(width[0] as number)}  ${(r[1] as string).padEnd(width[1] as number)}  ${r[2]}`;
  const modes = d.modes.map(
    (m) =>
      `  ${m.mode.padEnd(12)}  ${m.canCapture ? 'can capture' : `cannot: ${m.blockers.join(', ')}`}`,
  );
  const where = [
    `pod ${d.namespace}/${d.pod}`,
    ...(d.container ? [`container ${d.container}`] : []),
    ...(d.node ? [`node ${d.node}`] : []),
  ].join(', ');
  return [
    where,
    '',
    line(head),
    ...rows.map(line),
    '',
    'modes:',
    ...modes,
    '',
    d.auto ? `auto takes: ${d.auto}` : 'auto takes: nothing: no mode can capture this pod',
    '',
  ].join('\n');
}
