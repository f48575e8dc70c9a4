// Every failure a user can meet is a KubedumpError: a stable code, a one-line
// message naming what was wrong, and a hint saying what to do. It is reported
// once, at the top, as a single line.

export class KubedumpError extends Error {
  readonly code: string;
  readonly hint: string | undefined;

  constructor(code: string, message: string, options: { hint?: string; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = 'KubedumpError';
    this.code = code;
    this.hint = options.hint;
  }

  /** The one line shown to the user. */
  get line(): string {
    return oneLine(this.hint ? `${this.message}: ${this.hint}` : this.message);
  }
}

export function oneLine(text: string): string {
  return text.replace(/\s*[\r\n]+\s*/g, ' ').trim();
}

/** The one-line text for any thrown value; unexpected errors keep their message. */
export function errorLine(error: unknown): string {
  if (error instanceof KubedumpError) return error.line;
  if (error instanceof Error) return oneLine(`unexpected error: ${error.message}`);
  return oneLine(`unexpected error: ${String(error)}`);
}
