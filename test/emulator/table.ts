// meta.k8s.io/v1 Table responses, which kubectl asks for to print `get` output.
import type { KObject, Namespace, Node, Pod } from './types.ts';

interface Column {
  name: string;
  type: string;
  format?: string;
  priority: number;
  cell: (o: KObject) => string | number;
}

export function age(ts: string): string {
  const s = Math.max(0, Math.floor((Date.now() - Date.parse(ts)) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

function podStatus(p: Pod): string {
  if (p.metadata.deletionTimestamp) return 'Terminating';
  for (const cs of p.status.containerStatuses ?? []) {
    const reason = cs.state.waiting?.reason ?? cs.state.terminated?.reason;
    if (typeof reason === 'string' && reason && p.status.phase !== 'Running') return reason;
  }
  return p.status.phase;
}

const name: Column = {
  name: 'Name',
  type: 'string',
  format: 'name',
  priority: 0,
  cell: (o) => o.metadata.name,
};
const ageCol: Column = {
  name: 'Age',
  type: 'string',
  priority: 0,
  cell: (o) => age(o.metadata.creationTimestamp),
};

const COLUMNS: Record<string, Column[]> = {
  Pod: [
    name,
    {
      name: 'Ready',
      type: 'string',
      priority: 0,
      cell: (o) => {
        const p = o as Pod;
        const ready = (p.status.containerStatuses ?? []).filter((c) => c.ready).length;
        return `${ready}/${p.spec.containers.length}`;
      },
    },
    { name: 'Status', type: 'string', priority: 0, cell: (o) => podStatus(o as Pod) },
    {
      name: 'Restarts',
      type: 'string',
      priority: 0,
      cell: (o) =>
        String((o as Pod).status.containerStatuses?.reduce((n, c) => n + c.restartCount, 0) ?? 0),
    },
    ageCol,
    { name: 'IP', type: 'string', priority: 1, cell: (o) => (o as Pod).status.podIP ?? '<none>' },
    {
      name: 'Node',
      type: 'string',
      priority: 1,
      cell: (o) => (o as Pod).spec.nodeName ?? '<none>',
    },
  ],
  Namespace: [
    name,
    { name: 'Status', type: 'string', priority: 0, cell: (o) => (o as Namespace).status.phase },
    ageCol,
  ],
  Node: [
    name,
    { name: 'Status', type: 'string', priority: 0, cell: () => 'Ready' },
    { name: 'Roles', type: 'string', priority: 0, cell: () => '<none>' },
    ageCol,
    {
      name: 'Version',
      type: 'string',
      priority: 0,
      cell: (o) => (o as Node).status.nodeInfo.kubeletVersion ?? '',
    },
  ],
};

export function wantsTable(accept: string | undefined): boolean {
  return /as=Table/.test(accept ?? '');
}

export function toTable(
  kind: string,
  items: KObject[],
  listMeta: Record<string, unknown>,
): unknown {
  const cols = COLUMNS[kind] ?? [name, ageCol];
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: listMeta,
    columnDefinitions: cols.map((c) => ({
      name: c.name,
      type: c.type,
      format: c.format ?? '',
      description: '',
      priority: c.priority,
    })),
    rows: items.map((o) => ({
      cells: cols.map((c) => c.cell(o)),
      object: {
        kind: 'PartialObjectMetadata',
        apiVersion: 'meta.k8s.io/v1',
        metadata: o.metadata,
      },
    })),
  };
}
