import type { V1LabelSelector } from '@kubernetes/client-node';
import { KubedumpError } from '../errors.ts';

// What a capture names, as text: pod names, a label selector, a workload (as
// kubectl spells it: deploy/NAME, svc/NAME, ...) or every running pod of the
// namespace. Pure: the options parser and the dialog use it without loading
// the Kubernetes client.

export type TargetSpec =
  | { kind: 'pods'; names: string[] }
  | { kind: 'selector'; selector: string }
  | { kind: 'workload'; resource: WorkloadResource; name: string }
  | { kind: 'all' };

export type WorkloadResource =
  | 'deployment'
  | 'statefulset'
  | 'daemonset'
  | 'replicaset'
  | 'job'
  | 'service';

/** kubectl's spellings of each resource. */
const RESOURCES: Record<string, WorkloadResource | 'pod'> = {
  po: 'pod',
  pod: 'pod',
  pods: 'pod',
  deploy: 'deployment',
  deployment: 'deployment',
  deployments: 'deployment',
  sts: 'statefulset',
  statefulset: 'statefulset',
  statefulsets: 'statefulset',
  ds: 'daemonset',
  daemonset: 'daemonset',
  daemonsets: 'daemonset',
  rs: 'replicaset',
  replicaset: 'replicaset',
  replicasets: 'replicaset',
  job: 'job',
  jobs: 'job',
  svc: 'service',
  service: 'service',
  services: 'service',
};

const NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

/** The rule a target text breaks, or undefined: `NAME`, `NAME,NAME`, `KIND/NAME`. */
export function targetTextProblem(text: string): string | undefined {
  const slash = text.indexOf('/');
  if (slash >= 0) {
    const kind = text.slice(0, slash).toLowerCase();
    if (!(kind in RESOURCES)) {
      return `"${kind}" is not one of pod, deploy, sts, ds, rs, job, svc`;
    }
    return NAME.test(text.slice(slash + 1)) ? undefined : 'a name after the "/"';
  }
  const names = text.split(',');
  return names.every((n) => n.length <= 253 && NAME.test(n))
    ? undefined
    : 'lowercase letters, digits, "-" and "." (several pods joined by ",", or KIND/NAME)';
}

/** The target one request names; undefined when it names none. */
export function parseTarget(
  text: string | undefined,
  selector: string | undefined,
  all: boolean,
): TargetSpec | undefined {
  const given = [text ? 'a pod or workload' : '', selector ? '-l' : '', all ? '--all' : ''].filter(
    Boolean,
  );
  if (given.length > 1) {
    throw new KubedumpError('BAD_INPUT', `${given.join(' and ')} both name what to capture`, {
      hint: 'give one of: pod names, KIND/NAME, -l SELECTOR, --all',
    });
  }
  if (all) return { kind: 'all' };
  if (selector) return { kind: 'selector', selector };
  if (!text) return undefined;
  const slash = text.indexOf('/');
  if (slash < 0) return { kind: 'pods', names: [...new Set(text.split(','))] };
  const resource = RESOURCES[text.slice(0, slash).toLowerCase()];
  const name = text.slice(slash + 1);
  if (resource === 'pod') return { kind: 'pods', names: [name] };
  return { kind: 'workload', resource: resource as WorkloadResource, name };
}

/** True when the target can only ever be one pod (a single name). */
export function isSinglePod(spec: TargetSpec): boolean {
  return spec.kind === 'pods' && spec.names.length === 1;
}

export function describeTarget(spec: TargetSpec): string {
  switch (spec.kind) {
    case 'pods':
      return spec.names.join(',');
    case 'selector':
      return `-l ${spec.selector}`;
    case 'workload':
      return `${spec.resource}/${spec.name}`;
    case 'all':
      return 'every running pod';
  }
}

/** A Kubernetes label selector as the `labelSelector` query spells it. */
export function selectorText(selector: V1LabelSelector | undefined): string {
  const parts = Object.entries(selector?.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`);
  for (const e of selector?.matchExpressions ?? []) {
    const values = (e.values ?? []).join(',');
    if (e.operator === 'In') parts.push(`${e.key} in (${values})`);
    else if (e.operator === 'NotIn') parts.push(`${e.key} notin (${values})`);
    else if (e.operator === 'Exists') parts.push(e.key);
    else if (e.operator === 'DoesNotExist') parts.push(`!${e.key}`);
  }
  return parts.join(',');
}
