// The pods/NAME/ephemeralcontainers subresource of Kubernetes 1.22+: it reads and writes a Pod,
// applies a patch (strategic merge, JSON merge or JSON patch) to the whole pod and keeps only
// spec.ephemeralContainers from the result, which may only grow: an existing ephemeral
// container can be neither changed nor removed.
import { isDeepStrictEqual } from 'node:util';
import { ApiError, failure } from './status.ts';
import type { EphemeralContainer, Pod } from './types.ts';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type JsonObject = { [k: string]: Json };

const isObject = (v: unknown): v is JsonObject =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Lists a strategic merge patch merges by `name` (all others are replaced). */
const MERGED_BY_NAME = new Set([
  'containers',
  'initContainers',
  'ephemeralContainers',
  'volumes',
  'env',
]);

export const PATCH_TYPES = [
  'application/json-patch+json',
  'application/merge-patch+json',
  'application/strategic-merge-patch+json',
];

function unsupported(): ApiError {
  return new ApiError(
    failure(
      415,
      'UnsupportedMediaType',
      `the body of the request was in an unknown format - accepted media types include: ${PATCH_TYPES.join(', ')}, application/apply-patch+yaml`,
    ),
  );
}

function rejected(message: string): ApiError {
  return new ApiError(failure(422, 'Invalid', message));
}

function strategicMerge(target: Json | undefined, patch: Json): Json {
  if (!isObject(patch)) return patch;
  if (patch.$patch === 'replace') {
    const { $patch: _, ...rest } = patch;
    return rest;
  }
  const out: JsonObject = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    // Directives about order, retained keys and primitive lists change nothing kept here.
    if (k.startsWith('$')) continue;
    if (v === null) delete out[k];
    else if (Array.isArray(v) && MERGED_BY_NAME.has(k)) out[k] = mergeByName(out[k], v);
    else out[k] = strategicMerge(out[k], v);
  }
  return out;
}

function mergeByName(current: Json | undefined, patch: Json[]): Json[] {
  if (patch.some((e) => isObject(e) && e.$patch === 'replace' && e.name === undefined)) {
    return patch.filter((e) => !(isObject(e) && e.$patch === 'replace'));
  }
  const out = Array.isArray(current) ? [...current] : [];
  for (const el of patch) {
    if (!isObject(el)) continue;
    const at = out.findIndex((o) => isObject(o) && o.name === el.name);
    if (el.$patch === 'delete') {
      if (at >= 0) out.splice(at, 1);
    } else if (at >= 0) out[at] = strategicMerge(out[at], el);
    else out.push(strategicMerge(undefined, el));
  }
  return out;
}

function mergePatch(target: Json | undefined, patch: Json): Json {
  if (!isObject(patch)) return patch;
  const out: JsonObject = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

/** RFC 6902 add, remove, replace and test on a copy of `doc`. */
function jsonPatch(doc: Json, ops: Json): Json {
  if (!Array.isArray(ops)) throw rejected('the JSON patch is not an array of operations');
  const root: { v: Json } = { v: structuredClone(doc) };
  for (const op of ops) {
    if (!isObject(op) || typeof op.path !== 'string')
      throw rejected('a JSON patch operation needs "op" and "path"');
    const keys = op.path
      .split('/')
      .slice(1)
      .map((k) => k.replace(/~1/g, '/').replace(/~0/g, '~'));
    const last = keys.pop();
    if (last === undefined) throw rejected(`unsupported JSON patch path "${op.path}"`);
    let parent: Json = root.v;
    for (const k of keys) {
      const next: Json | undefined = Array.isArray(parent)
        ? parent[Number(k)]
        : isObject(parent)
          ? parent[k]
          : undefined;
      if (next === undefined)
        throw rejected(
          `jsonpatch ${op.op} operation does not apply: doc is missing path: "${op.path}"`,
        );
      parent = next;
    }
    const missing = () =>
      rejected(`jsonpatch ${op.op} operation does not apply: doc is missing key: ${op.path}`);
    if (Array.isArray(parent)) {
      const i = last === '-' ? parent.length : Number(last);
      if (!Number.isInteger(i) || i < 0 || i > parent.length) throw missing();
      if (op.op === 'add') parent.splice(i, 0, op.value ?? null);
      else if (op.op === 'remove' || op.op === 'replace') {
        if (i >= parent.length) throw missing();
        if (op.op === 'remove') parent.splice(i, 1);
        else parent[i] = op.value ?? null;
      } else if (op.op === 'test') {
        if (!isDeepStrictEqual(parent[i], op.value))
          throw rejected(`testing value ${op.path} failed`);
      } else throw rejected(`unsupported JSON patch operation "${String(op.op)}"`);
    } else if (isObject(parent)) {
      if (op.op === 'add') parent[last] = op.value ?? null;
      else if (op.op === 'remove' || op.op === 'replace') {
        if (!(last in parent)) throw missing();
        if (op.op === 'remove') delete parent[last];
        else parent[last] = op.value ?? null;
      } else if (op.op === 'test') {
        if (!isDeepStrictEqual(parent[last], op.value))
          throw rejected(`testing value ${op.path} failed`);
      } else throw rejected(`unsupported JSON patch operation "${String(op.op)}"`);
    } else throw missing();
  }
  return root.v;
}

/** The pod as the patch would leave it (the caller keeps only its ephemeral containers). */
export function patchPod(pod: Pod, contentType: string, patch: unknown): Pod {
  const type = contentType.split(';')[0]?.trim() ?? '';
  const doc = structuredClone(pod) as unknown as Json;
  let out: Json;
  if (type === 'application/strategic-merge-patch+json') out = strategicMerge(doc, patch as Json);
  else if (type === 'application/merge-patch+json') out = mergePatch(doc, patch as Json);
  else if (type === 'application/json-patch+json') out = jsonPatch(doc, patch as Json);
  else throw unsupported();
  if (!isObject(out)) throw rejected('the patch does not leave an object');
  return out as unknown as Pod;
}

/** The defaults the API server gives a container it decodes. */
export function withContainerDefaults<T extends EphemeralContainer>(c: T): T {
  return {
    terminationMessagePath: '/dev/termination-log',
    terminationMessagePolicy: 'File',
    imagePullPolicy: /:(?!latest$)[^/]+$/.test(c.image ?? '') ? 'IfNotPresent' : 'Always',
    ...c,
  };
}

interface FieldError {
  field: string;
  reason: string;
  message: string;
}

const FORBIDDEN_FIELDS = [
  'ports',
  'livenessProbe',
  'readinessProbe',
  'startupProbe',
  'lifecycle',
  'resizePolicy',
  'restartPolicy',
];

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/**
 * Checks the new list of ephemeral containers against the pod's current one and returns it with
 * defaults; throws the 422 the API server sends.
 */
export function ephemeralUpdate(
  pod: Pod,
  next: EphemeralContainer[] | undefined,
): EphemeralContainer[] {
  const list = (next ?? []).map(withContainerDefaults);
  const errors: FieldError[] = [];
  const path = 'spec.ephemeralContainers';
  const old = pod.spec.ephemeralContainers ?? [];
  for (const o of old) {
    const n = list.find((c) => c.name === o.name);
    if (!n)
      errors.push({
        field: path,
        reason: 'FieldValueForbidden',
        message: `Forbidden: existing ephemeral containers "${o.name}" may not be removed\n`,
      });
    else if (!isDeepStrictEqual(o, n))
      errors.push({
        field: path,
        reason: 'FieldValueForbidden',
        message: `Forbidden: existing ephemeral containers "${o.name}" may not be changed\n`,
      });
  }
  const regular = [
    ...pod.spec.containers,
    ...((pod.spec.initContainers as { name: string }[] | undefined) ?? []),
  ].map((c) => c.name);
  const seen = new Set(regular);
  list.forEach((c, i) => {
    const at = `${path}[${i}]`;
    if (!c.name)
      errors.push({ field: `${at}.name`, reason: 'FieldValueRequired', message: 'Required value' });
    else if (!DNS_LABEL.test(c.name) || c.name.length > 63)
      errors.push({
        field: `${at}.name`,
        reason: 'FieldValueInvalid',
        message: `Invalid value: "${c.name}": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')`,
      });
    else if (seen.has(c.name))
      errors.push({
        field: `${at}.name`,
        reason: 'FieldValueDuplicate',
        message: `Duplicate value: "${c.name}"`,
      });
    seen.add(c.name);
    if (old.some((o) => o.name === c.name)) return;
    if (!c.image)
      errors.push({
        field: `${at}.image`,
        reason: 'FieldValueRequired',
        message: 'Required value',
      });
    if (c.targetContainerName !== undefined && !regular.includes(c.targetContainerName))
      errors.push({
        field: `${at}.targetContainerName`,
        reason: 'FieldValueNotFound',
        message: `Not found: "${c.targetContainerName}"`,
      });
    for (const f of FORBIDDEN_FIELDS) {
      if (c[f] !== undefined)
        errors.push({
          field: `${at}.${f}`,
          reason: 'FieldValueForbidden',
          message: 'Forbidden: cannot be set for an Ephemeral Container',
        });
    }
    const resources = c.resources as Record<string, unknown> | undefined;
    if (resources && Object.keys(resources).length)
      errors.push({
        field: `${at}.resources`,
        reason: 'FieldValueForbidden',
        message: 'Forbidden: cannot be set for an Ephemeral Container',
      });
  });
  if (errors.length) {
    const name = pod.metadata.name;
    const text = errors.map((e) => `${e.field}: ${e.message}`);
    const joined = text.length === 1 ? text[0] : `[${text.join(', ')}]`;
    throw new ApiError(
      failure(422, 'Invalid', `Pod "${name}" is invalid: ${joined}`, {
        name,
        kind: 'Pod',
        causes: errors.map((e) => ({ reason: e.reason, message: e.message, field: e.field })),
      }),
    );
  }
  return list;
}

/** 1.16-1.21's shape of the subresource: the EphemeralContainers kind, read and replaced whole. */
export interface LegacyEphemeral {
  kind: 'EphemeralContainers';
  apiVersion: 'v1';
  metadata: Pod['metadata'];
  ephemeralContainers: EphemeralContainer[];
}

export function legacyEphemeral(pod: Pod): LegacyEphemeral {
  return {
    kind: 'EphemeralContainers',
    apiVersion: 'v1',
    // What 1.20 shows: the pod's identity and version, not its labels or annotations.
    metadata: {
      name: pod.metadata.name,
      namespace: pod.metadata.namespace,
      uid: pod.metadata.uid,
      resourceVersion: pod.metadata.resourceVersion,
      creationTimestamp: pod.metadata.creationTimestamp,
    },
    ephemeralContainers: structuredClone(pod.spec.ephemeralContainers ?? []),
  };
}

/** A replace that names a resourceVersion other than the pod's: the 409 the API server sends. */
export function assertCurrent(pod: Pod, resourceVersion: string | undefined): void {
  if (!resourceVersion || resourceVersion === pod.metadata.resourceVersion) return;
  throw new ApiError(
    failure(
      409,
      'Conflict',
      `Operation cannot be fulfilled on pods "${pod.metadata.name}": the object has been modified; please apply your changes to the latest version and try again`,
      { name: pod.metadata.name, kind: 'pods' },
    ),
  );
}
