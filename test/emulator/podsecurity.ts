// Pod Security admission as Kubernetes 1.31 enforces it per namespace: the level comes from the
// label pod-security.kubernetes.io/enforce; the refusal lists each failed check as
// `reason (detail)`, baseline checks first, each group in the order of the check IDs.
import type { Container, Namespace, PodSpec } from './types.ts';

export type Level = 'privileged' | 'baseline' | 'restricted';

export const ENFORCE_LABEL = 'pod-security.kubernetes.io/enforce';
const VERSION_LABEL = 'pod-security.kubernetes.io/enforce-version';

/** The namespace's enforced level and version ("latest" unless pinned). */
export function enforced(ns: Namespace | undefined): { level: Level; version: string } {
  const labels = ns?.metadata.labels ?? {};
  const l = labels[ENFORCE_LABEL];
  const level: Level = l === 'baseline' || l === 'restricted' ? l : 'privileged';
  return { level, version: labels[VERSION_LABEL] ?? 'latest' };
}

// What baseline lets a container add beyond the runtime's defaults (NET_RAW is not here).
const BASELINE_CAPS = new Set([
  'AUDIT_WRITE',
  'CHOWN',
  'DAC_OVERRIDE',
  'FOWNER',
  'FSETID',
  'KILL',
  'MKNOD',
  'NET_BIND_SERVICE',
  'SETFCAP',
  'SETGID',
  'SETPCAP',
  'SETUID',
  'SYS_CHROOT',
]);

const RESTRICTED_VOLUME_TYPES = new Set([
  'configMap',
  'csi',
  'downwardAPI',
  'emptyDir',
  'ephemeral',
  'persistentVolumeClaim',
  'projected',
  'secret',
]);

/** Every container in the order PSA visits them: init, regular, ephemeral. */
function containers(spec: PodSpec): Container[] {
  const init = (spec.initContainers as Container[] | undefined) ?? [];
  return [...init, ...spec.containers, ...(spec.ephemeralContainers ?? [])];
}

const quote = (xs: string[]) => xs.map((x) => `"${x}"`).join(', ');
const plural = (n: number, one: string, many: string) => (n === 1 ? one : many);
const names = (cs: Container[]) =>
  `${plural(cs.length, 'container', 'containers')} ${quote(cs.map((c) => c.name))}`;

type Check = (spec: PodSpec) => string | undefined;

const capabilitiesBaseline: Check = (spec) => {
  const bad = new Set<string>();
  const who = containers(spec).filter((c) => {
    const extra = (c.securityContext?.capabilities?.add ?? []).filter(
      (cap) => !BASELINE_CAPS.has(cap),
    );
    for (const cap of extra) bad.add(cap);
    return extra.length > 0;
  });
  if (!who.length) return undefined;
  return `non-default capabilities (${names(who)} must not include ${quote([...bad].sort())} in securityContext.capabilities.add)`;
};

const hostNamespaces: Check = (spec) => {
  const on = (['hostNetwork', 'hostPID', 'hostIPC'] as const)
    .filter((k) => spec[k] === true)
    .map((k) => `${k}=true`)
    .sort();
  return on.length ? `host namespaces (${on.join(', ')})` : undefined;
};

const hostPathVolumes: Check = (spec) => {
  const vols = (spec.volumes ?? []).filter((v) => v.hostPath).map((v) => v.name);
  if (!vols.length) return undefined;
  return `hostPath volumes (${plural(vols.length, 'volume', 'volumes')} ${quote(vols)})`;
};

const hostPorts: Check = (spec) => {
  const ports: number[] = [];
  const who = containers(spec).filter((c) => {
    const hp = (c.ports ?? []).map((p) => p.hostPort ?? 0).filter((p) => p !== 0);
    ports.push(...hp);
    return hp.length > 0;
  });
  if (!who.length) return undefined;
  return `hostPort (${names(who)} ${plural(who.length, 'uses', 'use')} ${plural(ports.length, 'hostPort', 'hostPorts')} ${ports.join(', ')})`;
};

const privileged: Check = (spec) => {
  const who = containers(spec).filter((c) => c.securityContext?.privileged === true);
  if (!who.length) return undefined;
  return `privileged (${names(who)} must not set securityContext.privileged=true)`;
};

const allowPrivilegeEscalation: Check = (spec) => {
  const who = containers(spec).filter((c) => c.securityContext?.allowPrivilegeEscalation !== false);
  if (!who.length) return undefined;
  return `allowPrivilegeEscalation != false (${names(who)} must set securityContext.allowPrivilegeEscalation=false)`;
};

const capabilitiesRestricted: Check = (spec) => {
  const noDrop = containers(spec).filter(
    (c) => !(c.securityContext?.capabilities?.drop ?? []).includes('ALL'),
  );
  const bad = new Set<string>();
  const adding = containers(spec).filter((c) => {
    const extra = (c.securityContext?.capabilities?.add ?? []).filter(
      (cap) => cap !== 'NET_BIND_SERVICE',
    );
    for (const cap of extra) bad.add(cap);
    return extra.length > 0;
  });
  const details: string[] = [];
  if (noDrop.length)
    details.push(`${names(noDrop)} must set securityContext.capabilities.drop=["ALL"]`);
  if (adding.length)
    details.push(
      `${names(adding)} must not include ${quote([...bad].sort())} in securityContext.capabilities.add`,
    );
  return details.length ? `unrestricted capabilities (${details.join('; ')})` : undefined;
};

const restrictedVolumes: Check = (spec) => {
  const bad = (spec.volumes ?? []).flatMap((v) => {
    const type = Object.keys(v).find((k) => k !== 'name');
    return type && !RESTRICTED_VOLUME_TYPES.has(type) ? [{ name: v.name, type }] : [];
  });
  if (!bad.length) return undefined;
  const types = [...new Set(bad.map((b) => b.type))];
  return `restricted volume types (${plural(bad.length, 'volume', 'volumes')} ${quote(bad.map((b) => b.name))} ${plural(bad.length, 'uses', 'use')} ${plural(types.length, 'restricted volume type', 'restricted volume types')} ${quote(types)})`;
};

const runAsNonRoot: Check = (spec) => {
  const pod = spec.securityContext?.runAsNonRoot;
  const explicitFalse = containers(spec).filter((c) => c.securityContext?.runAsNonRoot === false);
  const unset =
    pod === true ? [] : containers(spec).filter((c) => c.securityContext?.runAsNonRoot !== true);
  const details: string[] = [];
  if (pod === false) details.push('pod must not set securityContext.runAsNonRoot=false');
  if (explicitFalse.length)
    details.push(`${names(explicitFalse)} must not set securityContext.runAsNonRoot=false`);
  const implicit = unset.filter((c) => !explicitFalse.includes(c));
  if (pod !== false && implicit.length)
    details.push(`pod or ${names(implicit)} must set securityContext.runAsNonRoot=true`);
  return details.length ? `runAsNonRoot != true (${details.join('; ')})` : undefined;
};

const runAsUser: Check = (spec) => {
  const details: string[] = [];
  if (spec.securityContext?.runAsUser === 0) details.push('pod must not set runAsUser=0');
  const who = containers(spec).filter((c) => c.securityContext?.runAsUser === 0);
  if (who.length) details.push(`${names(who)} must not set runAsUser=0`);
  return details.length ? `runAsUser=0 (${details.join('; ')})` : undefined;
};

const seccompRestricted: Check = (spec) => {
  const ok = (t: string | undefined) => t === 'RuntimeDefault' || t === 'Localhost';
  if (ok(spec.securityContext?.seccompProfile?.type)) return undefined;
  const who = containers(spec).filter((c) => !ok(c.securityContext?.seccompProfile?.type));
  if (!who.length) return undefined;
  return `seccompProfile (pod or ${names(who)} must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")`;
};

// Sorted by check ID within each level; restricted replaces baseline's capability check.
const BASELINE: Check[] = [
  capabilitiesBaseline,
  hostNamespaces,
  hostPathVolumes,
  hostPorts,
  privileged,
];
const RESTRICTED: Check[] = [
  hostNamespaces,
  hostPathVolumes,
  hostPorts,
  privileged,
  allowPrivilegeEscalation,
  capabilitiesRestricted,
  restrictedVolumes,
  runAsNonRoot,
  runAsUser,
  seccompRestricted,
];

/** The failed checks of `spec` at `level`, each as `reason (detail)`; empty when allowed. */
export function violations(level: Level, spec: PodSpec): string[] {
  const checks = level === 'baseline' ? BASELINE : level === 'restricted' ? RESTRICTED : [];
  return checks.map((c) => c(spec)).filter((v): v is string => v !== undefined);
}
