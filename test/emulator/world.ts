// The default world, shaped like the real local cluster's: namespace demo with web, client,
// distroless, nonroot and debian, on fake nodes that report different runtimes and architectures.
import type { Cluster, NodeDef } from './cluster.ts';
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

function pod(name: string, node: string, container: Pod['spec']['containers'][number]): PodInput {
  return {
    metadata: { name, labels: { app: name } },
    spec: { nodeName: node, terminationGracePeriodSeconds: 1, containers: [container] },
  };
}

export function baseWorld(cluster: Cluster): void {
  for (const n of NODES) cluster.addNode(n);
  for (const ns of ['default', 'kube-system', 'kube-public', 'demo']) cluster.addNamespace(ns);
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
  ].map((p) => cluster.createPod('demo', p));
  await Promise.all(servers.map((p) => cluster.settled(p)));
  const targets = servers
    .map((p) => `${p.status.podIP ?? ''}:${p.metadata.name === 'web' ? 80 : 8080}`)
    .join(' ');
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
