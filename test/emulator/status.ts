// v1.Status bodies worded as the real API server words them.
import type { V1Status } from './types.ts';

export class ApiError extends Error {
  readonly status: V1Status;
  constructor(status: V1Status) {
    super(status.message);
    this.status = status;
  }
  get code(): number {
    return this.status.code ?? 500;
  }
}

export function failure(
  code: number,
  reason: string,
  message: string,
  details?: V1Status['details'],
): V1Status {
  const s: V1Status = {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
    code,
  };
  if (details) s.details = details;
  return s;
}

export function notFound(resource: string, name: string): ApiError {
  return new ApiError(
    failure(404, 'NotFound', `${resource} "${name}" not found`, { name, kind: resource }),
  );
}

export function alreadyExists(resource: string, name: string): ApiError {
  return new ApiError(
    failure(409, 'AlreadyExists', `${resource} "${name}" already exists`, { name, kind: resource }),
  );
}

export function badRequest(message: string): ApiError {
  return new ApiError(failure(400, 'BadRequest', message));
}

export function unauthorized(): ApiError {
  return new ApiError(failure(401, 'Unauthorized', 'Unauthorized'));
}

export function gone(message: string): ApiError {
  return new ApiError(failure(410, 'Expired', message));
}

export function internal(message: string): ApiError {
  return new ApiError(
    failure(500, 'InternalError', `Internal error occurred: ${message}`, {
      causes: [{ message }],
    }),
  );
}

export interface AccessAttributes {
  user: string;
  verb: string;
  resource: string;
  subresource?: string;
  namespace?: string;
  name?: string;
}

export function forbidden(a: AccessAttributes): ApiError {
  const res = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
  const subject = a.name ? `${a.resource} "${a.name}"` : a.resource;
  const scope = a.namespace ? `in the namespace "${a.namespace}"` : 'at the cluster scope';
  const message = `${subject} is forbidden: User "${a.user}" cannot ${a.verb} resource "${res}" in API group "" ${scope}`;
  const details: V1Status['details'] = { kind: a.resource };
  if (a.name) details.name = a.name;
  return new ApiError(failure(403, 'Forbidden', message, details));
}

/** Pod Security admission's refusal; `policy` is level:version, e.g. `baseline:latest`. */
export function podSecurityForbidden(name: string, violations: string[], policy: string): ApiError {
  return new ApiError(
    failure(
      403,
      'Forbidden',
      `pods "${name}" is forbidden: violates PodSecurity "${policy}": ${violations.join(', ')}`,
      { name, kind: 'pods' },
    ),
  );
}

export function invalid(name: string, field: string, message: string): ApiError {
  return new ApiError(
    failure(422, 'Invalid', `Pod "${name}" is invalid: ${field}: Forbidden: ${message}`, {
      name,
      kind: 'Pod',
      causes: [{ reason: 'FieldValueForbidden', message: `Forbidden: ${message}`, field }],
    }),
  );
}
