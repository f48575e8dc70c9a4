// Version and discovery documents: just what kubectl needs for get, run, exec and auth can-i.

export const VERSION = {
  major: '1',
  minor: '31',
  gitVersion: 'v1.31.0',
  gitCommit: '9edcffcde5595e8a5b1a35f88c421764e575afce',
  gitTreeState: 'clean',
  buildDate: '2024-08-13T07:28:49Z',
  goVersion: 'go1.22.5',
  compiler: 'gc',
  platform: 'linux/amd64',
};

export function apiVersions(serverAddress: string): unknown {
  return {
    kind: 'APIVersions',
    versions: ['v1'],
    serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }],
  };
}

const rw = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

export const CORE_V1 = {
  kind: 'APIResourceList',
  groupVersion: 'v1',
  resources: [
    {
      name: 'namespaces',
      singularName: 'namespace',
      namespaced: false,
      kind: 'Namespace',
      verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'],
      shortNames: ['ns'],
    },
    {
      name: 'nodes',
      singularName: 'node',
      namespaced: false,
      kind: 'Node',
      verbs: rw,
      shortNames: ['no'],
    },
    {
      name: 'pods',
      singularName: 'pod',
      namespaced: true,
      kind: 'Pod',
      verbs: rw,
      shortNames: ['po'],
      categories: ['all'],
    },
    {
      name: 'pods/exec',
      singularName: '',
      namespaced: true,
      kind: 'PodExecOptions',
      verbs: ['create', 'get'],
    },
    {
      name: 'pods/ephemeralcontainers',
      singularName: '',
      namespaced: true,
      kind: 'Pod',
      verbs: ['get', 'patch', 'update'],
    },
    { name: 'pods/log', singularName: '', namespaced: true, kind: 'Pod', verbs: ['get'] },
    {
      name: 'pods/status',
      singularName: '',
      namespaced: true,
      kind: 'Pod',
      verbs: ['get', 'patch', 'update'],
    },
  ],
};

const AUTHZ = 'authorization.k8s.io';

export const API_GROUPS = {
  kind: 'APIGroupList',
  apiVersion: 'v1',
  groups: [
    {
      name: AUTHZ,
      versions: [{ groupVersion: `${AUTHZ}/v1`, version: 'v1' }],
      preferredVersion: { groupVersion: `${AUTHZ}/v1`, version: 'v1' },
    },
  ],
};

export const AUTHZ_GROUP = { kind: 'APIGroup', apiVersion: 'v1', ...API_GROUPS.groups[0] };

export const AUTHZ_V1 = {
  kind: 'APIResourceList',
  apiVersion: 'v1',
  groupVersion: `${AUTHZ}/v1`,
  resources: [
    {
      name: 'selfsubjectaccessreviews',
      singularName: 'selfsubjectaccessreview',
      namespaced: false,
      kind: 'SelfSubjectAccessReview',
      verbs: ['create'],
    },
  ],
};
