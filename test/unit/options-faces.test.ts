import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  captureRequest,
  OPTIONS,
  type OptionValue,
  rawFromCli,
  rawFromDialog,
} from '../../src/capture/options.ts';
import type { KubedumpError } from '../../src/errors.ts';
import { kubedumpCommand, run } from '../support/kubedump.ts';

// `kubedump capture --help` and `kubedump --extcap-config` are two renderings
// of one options table: they must list the same options with the same defaults.

interface Shown {
  alias?: string;
  default?: OptionValue;
}

/** The options of `capture --help`: one block per option, wrapped lines included. */
function helpOptions(help: string): Map<string, Shown> {
  const shown = new Map<string, Shown>();
  let current: Shown | undefined;
  let text = '';
  const finish = () => {
    if (!current) return;
    const value = /\[default: ([^\]]+)\]/.exec(text)?.[1];
    if (value !== undefined) current.default = JSON.parse(value) as OptionValue;
  };
  for (const line of help.split('\n')) {
    const start = /^ {2}(?:-(\w), )?\s*--([\w-]+)/.exec(line);
    if (start) {
      finish();
      current = start[1] ? { alias: start[1] } : {};
      shown.set(start[2] as string, current);
      text = line;
    } else if (current && line.startsWith('   ')) {
      text += line;
    } else {
      finish();
      current = undefined;
    }
  }
  finish();
  return shown;
}

/** The arguments of `--extcap-config` by call, with the default each shows. */
function dialogOptions(config: string): Map<string, { type: string; default?: string }> {
  const byNumber = new Map<string, { type: string; default?: string }>();
  const byCall = new Map<string, { type: string; default?: string }>();
  for (const line of config.split('\n')) {
    const arg = /^arg \{number=(\d+)\}\{call=--([^}]+)\}.*?\{type=(\w+)\}/.exec(line);
    if (arg) {
      const entry: { type: string; default?: string } = { type: arg[3] as string };
      const value = /\{default=([^}]*)\}/.exec(line)?.[1];
      if (value !== undefined) entry.default = value;
      byNumber.set(arg[1] as string, entry);
      byCall.set(arg[2] as string, entry);
    }
    const value = /^value \{arg=(\d+)\}\{value=([^}]+)\}.*\{default=true\}/.exec(line);
    if (value) (byNumber.get(value[1] as string) as { default?: string }).default = value[2];
  }
  return byCall;
}

test('the CLI and the dialog list the same capture options with the same defaults', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kubedump-faces-'));
  const env = {
    ...process.env,
    KUBECONFIG: join(dir, 'missing-kubeconfig'),
    XDG_CACHE_HOME: join(dir, 'cache'),
    XDG_CONFIG_HOME: join(dir, 'config'),
    COLUMNS: '80',
  };
  const kubedump = kubedumpCommand('source');
  const help = await run([...kubedump, 'capture', '--help'], { env });
  assert.equal(help.code, 0, help.stderr);
  const config = await run([...kubedump, '--extcap-config', '--extcap-interface', 'kubedump'], {
    env,
  });
  assert.equal(config.code, 0, config.stderr);

  const cli = helpOptions(help.stdout);
  const dialog = dialogOptions(config.stdout);
  const rows = OPTIONS.filter((r) => !r.cli.positional);
  // Nothing listed on one face only, beyond the CLI's own output and help flags.
  assert.deepEqual(
    [...cli.keys()].filter((f) => !['help', 'version', 'write'].includes(f)).sort(),
    rows.flatMap((r) => [r.cli.flag, ...(r.shorthand ? [r.shorthand.flag] : [])]).sort(),
  );
  assert.deepEqual([...dialog.keys()].sort(), OPTIONS.map((r) => r.dialog.call).sort());
  assert.match(help.stdout, /^ {2}pod\s+pod name/m, 'the pod is a positional');

  const preselected: string[] = [];
  for (const row of OPTIONS) {
    const shownByDialog = dialog.get(row.dialog.call);
    assert.ok(shownByDialog, row.dialog.call);
    // What the dialog's default stands for: a radio value's meaning, a number, or absent.
    let fromDialog: OptionValue | undefined = shownByDialog.default;
    const radio = row.dialog.values?.find((v) => v.value === fromDialog);
    if (radio) fromDialog = radio.means;
    else if (row.kind === 'count' && fromDialog !== undefined) fromDialog = Number(fromDialog);
    else if (shownByDialog.type === 'boolflag') fromDialog = false;
    const expected = row.default === '' ? undefined : row.default;
    if (row.dialog.preselect !== undefined) {
      preselected.push(row.key);
      assert.equal(fromDialog, row.dialog.preselect, row.key);
    } else {
      assert.equal(fromDialog, expected, `${row.key}: the dialog's default`);
    }
    if (row.cli.positional) continue;
    const shownByCli = cli.get(row.cli.flag) as Shown;
    assert.equal(shownByCli.alias, row.cli.alias, `${row.key}: the CLI alias`);
    assert.equal(shownByCli.default, expected, `${row.key}: the CLI default`);
    if (row.dialog.preselect === undefined) assert.equal(shownByCli.default, fromDialog, row.key);
  }
  // The one known difference: Wireshark users get a warn-level log unless they opt out.
  assert.deepEqual(preselected, ['logLevel']);
});

test('either argv becomes the same request, and bad values the same line', () => {
  const cli = captureRequest(
    rawFromCli({
      pod: 'web',
      namespace: 'demo',
      snaplen: 96,
      privileged: true, // the -p shorthand
      'pid-lookup': 'cgroup',
      filter: 'tcp',
      'keep-binary': true,
    }),
    'cli',
    ['port 80'],
  );
  const dialog = captureRequest(
    rawFromDialog(
      new Map([
        ['pod', 'web'],
        ['namespace', 'demo'],
        ['snaplen', '96'],
        ['mode', 'privileged'],
        ['pid-lookup', 'cgroup'],
        ['filter', 'tcp'],
        ['keep-binary', ''],
      ]),
    ),
    'dialog',
    ['port 80'],
  );
  assert.deepEqual(cli, dialog);
  assert.equal(cli.filter, '(tcp) and (port 80)');
  assert.equal(cli.helperTimeout, 60);
  assert.equal(cli.iface, 'any');
  const line = (f: () => unknown) => {
    try {
      f();
    } catch (error) {
      return (error as KubedumpError).line;
    }
    return 'accepted';
  };
  for (const [cliArgs, dialogArgs] of [
    [{ 'helper-timeout': 0 }, [['helper-timeout', '0']]],
    [{ container: 'A' }, [['container', 'A']]],
    [{ 'pid-lookup': 'x' }, [['pid-lookup', 'x']]],
  ] as const) {
    const fromCli = line(() => captureRequest(rawFromCli({ pod: 'web', ...cliArgs }), 'cli'));
    const fromDialog = line(() =>
      captureRequest(rawFromDialog(new Map([['pod', 'web'], ...dialogArgs])), 'dialog'),
    );
    assert.notEqual(fromCli, 'accepted');
    assert.equal(fromCli, fromDialog);
  }
});
