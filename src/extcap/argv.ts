// Parses the argv Wireshark passes to an extcap. Wireshark gives options in
// any order, as two elements (`--name value`), and newer versions add options
// this tool has never heard of: those are skipped, never an error.

/** Options that never take a value. */
const FLAGS = new Set([
  'extcap-interfaces',
  'extcap-dlts',
  'extcap-config',
  'capture',
  'extcap-cleanup-postkill',
  'help',
]);

export interface ExtcapRequest {
  verb:
    | 'interfaces'
    | 'dlts'
    | 'config'
    | 'reload'
    | 'capture-filter'
    | 'capture'
    | 'cleanup-postkill'
    | 'version';
  iface?: string;
  fifo?: string;
  captureFilter?: string;
  reloadOption?: string;
  extcapVersion?: string;
  controlIn?: string;
  controlOut?: string;
  /** Every option with its value (flags and missing values map to ''), last one wins. */
  options: Map<string, string>;
}

/** True when argv speaks the extcap protocol rather than the CLI. */
export function isExtcapArgv(argv: readonly string[]): boolean {
  return argv.some((a) => a.startsWith('--extcap-') || a === '--capture');
}

export function parseExtcapArgv(argv: readonly string[]): ExtcapRequest {
  const options = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i] as string;
    if (!token.startsWith('--')) continue; // a stray value: ignore it
    const eq = token.indexOf('=');
    if (eq > 2) {
      options.set(token.slice(2, eq), token.slice(eq + 1));
      continue;
    }
    const name = token.slice(2);
    const next = argv[i + 1];
    if (FLAGS.has(name) || next === undefined || next.startsWith('--')) {
      options.set(name, ''); // a flag, or an option whose value is missing
    } else {
      options.set(name, next);
      i++;
    }
  }
  const request: ExtcapRequest = { verb: 'version', options };
  const get = (name: string) => options.get(name);
  request.iface = get('extcap-interface');
  request.fifo = get('fifo');
  request.captureFilter = get('extcap-capture-filter');
  request.reloadOption = get('extcap-reload-option');
  request.extcapVersion = get('extcap-version');
  request.controlIn = get('extcap-control-in');
  request.controlOut = get('extcap-control-out');
  // Sent after Wireshark killed a capture: it may repeat the capture's argv.
  if (options.has('extcap-cleanup-postkill')) request.verb = 'cleanup-postkill';
  else if (options.has('capture')) request.verb = 'capture';
  else if (options.has('extcap-interfaces')) request.verb = 'interfaces';
  else if (options.has('extcap-dlts')) request.verb = 'dlts';
  else if (options.has('extcap-config')) request.verb = request.reloadOption ? 'reload' : 'config';
  else if (request.captureFilter !== undefined) request.verb = 'capture-filter';
  return request;
}

/** Reads a boolean option, accepting both `--flag` and `--flag true|false`. */
export function booleanOption(options: Map<string, string>, name: string): boolean {
  const value = options.get(name);
  if (value === undefined) return false;
  if (value === '') return true;
  return !/^(false|0|no|off)$/i.test(value);
}
