// The extcap output grammar as data: typed sentences rendered by pure functions.
// Wireshark's parser has no escaping: a value ends at the first '}' that is
// followed by '{', whitespace or the end of the line, so every emitted value
// goes through `fieldValue`.

export interface ExtcapInfo {
  version: string;
  help: string;
  display: string;
}

export interface Interface {
  value: string;
  display: string;
}

export interface Dlt {
  number: number;
  name: string;
  display: string;
}

export type ArgType =
  | 'integer'
  | 'unsigned'
  | 'long'
  | 'double'
  | 'boolean'
  | 'boolflag'
  | 'string'
  | 'password'
  | 'selector'
  | 'radio'
  | 'multicheck'
  | 'fileselect';

export interface ArgValue {
  value: string;
  display: string;
  default?: boolean;
}

export interface Arg {
  call: string; // without the leading '--'
  display: string;
  type: ArgType;
  tooltip?: string;
  default?: string;
  range?: [number, number];
  validation?: string;
  group?: string;
  reload?: boolean;
  placeholder?: string;
  mustExist?: boolean;
  values?: ArgValue[];
}

/** Makes any string safe to place between '{' and '}' on one line. */
export function fieldValue(value: string): string {
  // Control characters would end the sentence; '}' is the only delimiter.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: stripping them is the point
  return value.replace(/[\u0000-\u001f\u007f]+/g, ' ').replaceAll('}', ')');
}

function field(name: string, value: string | number | boolean): string {
  return `{${name}=${fieldValue(String(value))}}`;
}

export function renderInfo(info: ExtcapInfo): string {
  return `extcap ${field('version', info.version)}${field('help', info.help)}${field('display', info.display)}`;
}

export function renderInterface(iface: Interface): string {
  return `interface ${field('value', iface.value)}${field('display', iface.display)}`;
}

export function renderDlt(dlt: Dlt): string {
  return `dlt ${field('number', dlt.number)}${field('name', dlt.name)}${field('display', dlt.display)}`;
}

/** Numbers the args in order and renders each arg followed by its values. */
export function renderArgs(args: readonly Arg[]): string[] {
  const lines: string[] = [];
  args.forEach((arg, number) => {
    let line = `arg ${field('number', number)}${field('call', `--${arg.call}`)}${field('display', arg.display)}${field('type', arg.type)}`;
    if (arg.tooltip !== undefined) line += field('tooltip', arg.tooltip);
    if (arg.placeholder !== undefined) line += field('placeholder', arg.placeholder);
    if (arg.default !== undefined) line += field('default', arg.default);
    if (arg.range) line += field('range', `${arg.range[0]},${arg.range[1]}`);
    if (arg.validation !== undefined) line += field('validation', arg.validation);
    if (arg.mustExist !== undefined) line += field('mustexist', arg.mustExist);
    if (arg.reload) line += field('reload', true);
    if (arg.group !== undefined) line += field('group', arg.group);
    lines.push(line);
    for (const value of arg.values ?? []) lines.push(renderValue(number, value));
  });
  return lines;
}

export function renderValue(argNumber: number, value: ArgValue): string {
  let line = `value ${field('arg', argNumber)}${field('value', value.value)}${field('display', value.display)}`;
  if (value.default) line += field('default', true);
  return line;
}
