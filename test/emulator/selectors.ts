// Label and field selectors as the list and watch verbs accept them.
import { badRequest } from './status.ts';
import type { Pod } from './types.ts';

type Requirement = (labels: Record<string, string>) => boolean;

/** Splits on commas that are not inside parentheses (`a in (x,y),b`). */
function splitTerms(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out.map((t) => t.trim()).filter((t) => t !== '');
}

export function parseLabelSelector(s: string | null): Requirement {
  if (!s) return () => true;
  const reqs: Requirement[] = splitTerms(s).map((term) => {
    let m = /^([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(term);
    if (m) {
      const [, key = '', op, list = ''] = m;
      const values = new Set(list.split(',').map((v) => v.trim()));
      return op === 'in'
        ? (l) => l[key] !== undefined && values.has(l[key])
        : (l) => l[key] === undefined || !values.has(l[key]);
    }
    m = /^([\w./-]+)\s*(==|=|!=)\s*([\w.-]*)$/.exec(term);
    if (m) {
      const [, key = '', op, value] = m;
      return op === '!=' ? (l) => l[key] !== value : (l) => l[key] === value;
    }
    m = /^(!?)([\w./-]+)$/.exec(term);
    if (m) {
      const [, not, key = ''] = m;
      return not ? (l) => l[key] === undefined : (l) => l[key] !== undefined;
    }
    throw badRequest(`unable to parse requirement: ${term}`);
  });
  return (labels) => reqs.every((r) => r(labels));
}

export type FieldGetter<T> = Record<string, (o: T) => string | undefined>;

export const podFields: FieldGetter<Pod> = {
  'metadata.name': (p) => p.metadata.name,
  'metadata.namespace': (p) => p.metadata.namespace,
  'spec.nodeName': (p) => p.spec.nodeName ?? '',
  'spec.restartPolicy': (p) => p.spec.restartPolicy,
  'status.phase': (p) => p.status.phase,
  'status.podIP': (p) => p.status.podIP ?? '',
};

export const metaFields: FieldGetter<{ metadata: { name: string; namespace?: string } }> = {
  'metadata.name': (o) => o.metadata.name,
  'metadata.namespace': (o) => o.metadata.namespace,
};

export function parseFieldSelector<T>(s: string | null, fields: FieldGetter<T>): (o: T) => boolean {
  if (!s) return () => true;
  const reqs = splitTerms(s).map((term) => {
    const m = /^([\w.]+)\s*(==|=|!=)\s*(.*)$/.exec(term);
    if (!m) throw badRequest(`invalid selector: '${s}'; can't understand '${term}'`);
    const [, field = '', op, value] = m;
    const get = fields[field];
    if (!get) throw badRequest(`field label not supported: ${field}`);
    return op === '!=' ? (o: T) => get(o) !== value : (o: T) => get(o) === value;
  });
  return (o) => reqs.every((r) => r(o));
}
