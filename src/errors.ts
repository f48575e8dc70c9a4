// Every failure a user can meet is a KubedumpError: a stable code, a one-line
// message naming what was wrong, and a hint saying what to do. It is reported
// once, at the top, as a single line.

/** Every code a KubedumpError can carry: scripts and tests may match on them. */
export const ERROR_CODES = [
  'ABORTED',
  'API_ERROR',
  'BAD_FILTER',
  'BAD_INPUT',
  'CAPTURE_PERMISSION',
  'CLUSTER_UNREACHABLE',
  'CONNECTION_LOST',
  'CONTAINER_FAILED',
  'CONTAINER_NOT_FOUND',
  'CONTEXT_NOT_FOUND',
  'EPHEMERAL_NONROOT',
  'EPHEMERAL_UNSUPPORTED',
  'EXEC_REFUSED',
  'FORBIDDEN',
  'HELPER_FAILED',
  'HELPER_IMAGE_PULL',
  'HELPER_REJECTED',
  'HELPER_TIMEOUT',
  'HELPER_UNSCHEDULABLE',
  'HOST_NETNS',
  'IMAGE_PULL',
  'INVALID',
  'KUBECONFIG',
  'LOG_FILE',
  'NOT_BUILT',
  'NOT_EXECUTABLE',
  'NOT_FOUND',
  'NOT_FOUND_REMOTE',
  'NO_CLUSTER',
  'NO_CONTAINER_ID',
  'NO_MODE',
  'NO_NODE',
  'NO_PODS',
  'NO_SHELL',
  'NO_SUCH_INTERFACE',
  'NO_WRITABLE_DIR',
  'PCAP_FORMAT',
  'PID_NOT_FOUND',
  'POD_DELETED',
  'POD_ENDED',
  'POD_NOT_FOUND',
  'POD_NOT_RUNNING',
  'POD_SECURITY',
  'POD_START_TIMEOUT',
  'PROBE_FAILED',
  'PROXY_FORBIDDEN',
  'RBAC_CREATE_PODS',
  'TCPDUMP_EXITED',
  'TCPDUMP_KILLED',
  'TARGET_NOT_FOUND',
  'TCPDUMP_UNAVAILABLE',
  'UNAUTHORIZED',
  'UNSCHEDULABLE',
  'UNSUPPORTED_ARCH',
  'UNSUPPORTED_RUNTIME',
  'UPLOAD_FAILED',
  'WINDOWS_NODE',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

/** A Kubernetes API `Status` as the server sent it. */
export interface ApiStatus {
  /** "Status" when the API server itself answered. */
  kind?: string;
  message?: string;
  reason?: string;
  code?: number;
  details?: {
    name?: string;
    kind?: string;
    causes?: { reason?: string; message?: string; field?: string }[];
  };
}

export class KubedumpError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  /** For a refusal by the API server: its Status (reason, causes), unreworded. */
  readonly status: ApiStatus | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    options: { hint?: string; cause?: unknown; status?: ApiStatus | undefined } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = 'KubedumpError';
    this.code = code;
    this.hint = options.hint;
    this.status = options.status;
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
