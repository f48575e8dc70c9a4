// Bearer-token identities and the RBAC rules granted to each.
import type { AccessAttributes } from './status.ts';

export const TOKENS: Record<string, string> = {
  'kdemu-admin-token': 'admin',
  'kdemu-restricted-token': 'restricted',
  'kdemu-nopatch-token': 'nopatch',
  'kdemu-ephemeral-token': 'ephemeral',
};

export function tokenOf(user: string): string {
  const t = Object.entries(TOKENS).find(([, u]) => u === user)?.[0];
  if (!t) throw new Error(`no token for ${user}`);
  return t;
}

export function userFromHeader(authorization: string | undefined): string | undefined {
  const m = /^Bearer\s+(\S+)$/i.exec(authorization ?? '');
  return m?.[1] ? TOKENS[m[1]] : undefined;
}

export interface Rule {
  resources: string[];
  verbs: string[];
}

// `restricted` is what a namespace viewer with exec rights gets: no pod creation, no nodes.
const RULES: Record<string, Rule[]> = {
  admin: [{ resources: ['*'], verbs: ['*'] }],
  restricted: [
    { resources: ['pods', 'pods/log'], verbs: ['get', 'list', 'watch'] },
    { resources: ['pods/exec'], verbs: ['get', 'create'] },
    { resources: ['selfsubjectaccessreviews'], verbs: ['create'] },
  ],
  // What a privileged capture needs, and no `patch pods`: a user who cannot
  // annotate the helper pod kubedump created.
  nopatch: [
    { resources: ['pods'], verbs: ['get', 'list', 'watch', 'create', 'delete'] },
    { resources: ['pods/exec'], verbs: ['get', 'create'] },
    { resources: ['selfsubjectaccessreviews'], verbs: ['create'] },
  ],
  // scripts/rbac/kubedump-ephemeral.yaml: add an ephemeral container and exec into it, no
  // pod creation.
  ephemeral: [
    { resources: ['pods'], verbs: ['get'] },
    { resources: ['pods'], verbs: ['watch'] },
    { resources: ['pods/ephemeralcontainers'], verbs: ['patch'] },
    { resources: ['pods/ephemeralcontainers'], verbs: ['get', 'update'] },
    { resources: ['pods/exec'], verbs: ['create', 'get'] },
    { resources: ['selfsubjectaccessreviews'], verbs: ['create'] },
  ],
};

/**
 * Adds (or replaces) an identity bound to exactly `rules` (core API group, every namespace) and
 * returns its token. Identities live as long as the process, like the built-in ones.
 */
export function grant(user: string, rules: Rule[]): string {
  const token = `kdemu-${user}-token`;
  TOKENS[token] = user;
  RULES[user] = structuredClone(rules);
  return token;
}

export function allowed(a: AccessAttributes): boolean {
  const res = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
  return (RULES[a.user] ?? []).some(
    (r) =>
      (r.resources.includes('*') || r.resources.includes(res)) &&
      (r.verbs.includes('*') || r.verbs.includes(a.verb)),
  );
}
