// The default world, shaped like the real local cluster's, on fake nodes that report different
// runtimes and architectures. With demo pods (the default) it holds:
//
//   namespace   level (Pod Security enforce)  pods
//   demo        none (privileged)             web (busybox httpd :80, root), distroless (no
//                                             shell, :8080), nonroot (image user 1000, :8080),
//                                             debian (:8080), client (wget loop over all others)
//   baseline    baseline                      web (busybox httpd :80, root), locked (non-root at
//                                             pod level: runAsUser 1000, runAsNonRoot, :8080)
//   restricted  restricted                    web (non-root, drops ALL, RuntimeDefault, :8080)
//
// Every server pod gets HTTP from demo/client twice a second. Pod Security applies to pod
// creates (dry runs too) and to ephemeral containers: in `baseline` a privileged or hostPID
// pod is refused with the real message, a root ephemeral container with default capabilities
// is admitted. Identities (kubeconfig contexts): emu (admin), emu-restricted, emu-nopatch,
// emu-ephemeral (scripts/rbac/kubedump-ephemeral.yaml's rules); see auth.ts.
import type { Cluster, NodeDef } from './cluster.ts';
import { ENFORCE_LABEL } from './podsecurity.ts';
import type { Pod, PodInput } from './types.ts';

export const NODES: NodeDef[] = [
  { name: 'node-a', arch: 'amd64', runtime: 'containerd' },
  { name: 'node-b', arch: 'amd64', runtime: 'docker' },
  // Reports arm64 but runs on this (amd64) machine: only unbacked pods belong here.
  { name: 'node-c', arch: 'arm64', runtime: 'cri-o' },
  { name: 'node-d', arch: 'amd64', runtime: 'cri-o' },
];

export const IMAGES = {
  busybox: 'docker.io/library/busybox:1.36',
  distroless: 'localhost/kubedump/distroless:1',
  nonroot: 'localhost/kubedump/nonroot:1',
  /** Debian bookworm minbase (scripts/images): dash as /bin/sh, no ps. */
  debian: 'localhost/kubedump/debian:bookworm',
  pause: 'registry.k8s.io/pause:3.10',
};

/** Namespaces with a Pod Security level, named after it. */
export const POD_SECURITY_NAMESPACES = ['baseline', 'restricted'] as const;

function pod(
  name: string,
  node: string,
  container: Pod['spec']['containers'][number],
  podSecurity?: NonNullable<Pod['spec']['securityContext']>,
): PodInput {
  return {
    metadata: { name, labels: { app: name } },
    spec: {
      nodeName: node,
      terminationGracePeriodSeconds: 1,
      containers: [container],
      ...(podSecurity && { securityContext: podSecurity }),
    },
  };
}

export function baseWorld(cluster: Cluster): void {
  for (const n of NODES) cluster.addNode(n);
  for (const ns of ['default', 'kube-system', 'kube-public', 'demo']) cluster.addNamespace(ns);
  for (const level of POD_SECURITY_NAMESPACES)
    cluster.addNamespace(level, { [ENFORCE_LABEL]: level });
}

const NONROOT_HTTPD = [
  'sh',
  '-c',
  'mkdir -p /tmp/www && echo $HOSTNAME > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www',
];

/** The pods of the namespaces with a Pod Security level (each is admitted at its level). */
function podSecurityPods(): { namespace: string; pod: PodInput; port: number }[] {
  return [
    {
      namespace: 'baseline',
      port: 80,
      pod: pod('web', 'node-a', {
        name: 'web',
        image: IMAGES.busybox,
        command: [
          'sh',
          '-c',
          'mkdir -p /www && echo baseline-web > /www/index.html && exec httpd -f -p 80 -h /www',
        ],
      }),
    },
    {
      namespace: 'baseline',
      port: 8080,
      pod: pod(
        'locked',
        'node-a',
        { name: 'locked', image: IMAGES.nonroot, command: NONROOT_HTTPD },
        { runAsUser: 1000, runAsGroup: 1000, runAsNonRoot: true },
      ),
    },
    {
      namespace: 'restricted',
      port: 8080,
      pod: pod(
        'web',
        'node-a',
        {
          name: 'web',
          image: IMAGES.nonroot,
          command: NONROOT_HTTPD,
          securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } },
        },
        {
          runAsUser: 1000,
          runAsGroup: 1000,
          runAsNonRoot: true,
          seccompProfile: { type: 'RuntimeDefault' },
        },
      ),
    },
  ];
}

/** Starts the demo pods; the client loops over the other pods' IPs, so it starts last. */
export async function demoPods(cluster: Cluster): Promise<void> {
  const servers = [
    pod('web', 'node-a', {
      name: 'web',
      image: IMAGES.busybox,
      command: [
        'sh',
        '-c',
        'mkdir -p /www && echo web > /www/index.html && exec httpd -f -p 80 -h /www',
      ],
    }),
    pod('distroless', 'node-d', { name: 'distroless', image: IMAGES.distroless }),
    pod('nonroot', 'node-d', {
      name: 'nonroot',
      image: IMAGES.nonroot,
      command: [
        'sh',
        '-c',
        'mkdir -p /tmp/www && echo nonroot > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www',
      ],
    }),
    pod('debian', 'node-a', {
      name: 'debian',
      image: IMAGES.debian,
      command: ['/usr/local/bin/hello-server', '8080'],
    }),
  ].map((p) => ({
    pod: cluster.createPod('demo', p),
    port: p.metadata?.name === 'web' ? 80 : 8080,
  }));
  const guarded = podSecurityPods().map((p) => ({
    pod: cluster.createPod(p.namespace, p.pod),
    port: p.port,
  }));
  const all = [...servers, ...guarded];
  await Promise.all(all.map((p) => cluster.settled(p.pod)));
  const targets = all.map((p) => `${p.pod.status.podIP ?? ''}:${p.port}`).join(' ');
  const client = cluster.createPod(
    'demo',
    pod('client', 'node-b', {
      name: 'client',
      image: IMAGES.busybox,
      env: [{ name: 'TARGETS', value: targets }],
      command: [
        'sh',
        '-c',
        'while true; do for t in $TARGETS; do timeout 3 wget -q -O - "http://$t/" >/dev/null 2>&1; done; sleep 0.5; done',
      ],
    }),
  );
  await cluster.settled(client);
}
