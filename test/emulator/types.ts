// Kubernetes object shapes the emulator stores: only the fields it reads or writes.

export interface ObjectMeta {
  name: string;
  namespace?: string;
  generateName?: string;
  uid: string;
  resourceVersion: string;
  creationTimestamp: string;
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  [key: string]: unknown;
}

export interface KObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
}

export interface SecurityContext {
  privileged?: boolean;
  runAsUser?: number;
  runAsGroup?: number;
  runAsNonRoot?: boolean;
  capabilities?: { add?: string[]; drop?: string[] };
  allowPrivilegeEscalation?: boolean;
  seccompProfile?: { type: string; localhostProfile?: string };
  [key: string]: unknown;
}

export interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  env?: { name: string; value?: string }[];
  workingDir?: string;
  ports?: { containerPort: number; hostPort?: number; protocol?: string }[];
  securityContext?: SecurityContext;
  [key: string]: unknown;
}

/** A container added to a running pod; it may name the container whose process namespace it joins. */
export interface EphemeralContainer extends Container {
  targetContainerName?: string;
}

export interface Volume {
  name: string;
  hostPath?: { path: string; type?: string };
  [key: string]: unknown;
}

export interface PodSpec {
  containers: Container[];
  ephemeralContainers?: EphemeralContainer[];
  volumes?: Volume[];
  hostIPC?: boolean;
  nodeName?: string;
  hostPID?: boolean;
  hostNetwork?: boolean;
  restartPolicy?: string;
  terminationGracePeriodSeconds?: number;
  securityContext?: {
    runAsUser?: number;
    runAsGroup?: number;
    runAsNonRoot?: boolean;
    seccompProfile?: { type: string; localhostProfile?: string };
    [key: string]: unknown;
  };
  tolerations?: { key?: string; operator?: string; value?: string; effect?: string }[];
  [key: string]: unknown;
}

export interface ContainerStatus {
  name: string;
  image: string;
  imageID: string;
  containerID?: string;
  ready: boolean;
  started: boolean;
  restartCount: number;
  state: Record<string, Record<string, unknown>>;
}

export interface PodCondition {
  type: string;
  status: 'True' | 'False';
  reason?: string;
  message?: string;
  lastTransitionTime: string;
  lastProbeTime: null;
}

export interface PodStatus {
  phase: 'Pending' | 'Running' | 'Succeeded' | 'Failed' | 'Unknown';
  conditions?: PodCondition[];
  hostIP?: string;
  hostIPs?: { ip: string }[];
  podIP?: string;
  podIPs?: { ip: string }[];
  startTime?: string;
  containerStatuses?: ContainerStatus[];
  ephemeralContainerStatuses?: ContainerStatus[];
  qosClass?: string;
}

export interface Pod extends KObject {
  kind: 'Pod';
  spec: PodSpec;
  status: PodStatus;
}

/** What a client sends to create a pod: server-set metadata may be missing. */
export interface PodInput {
  metadata?: Partial<ObjectMeta>;
  spec?: PodSpec;
}

export interface Namespace extends KObject {
  kind: 'Namespace';
  spec: { finalizers: string[] };
  status: { phase: 'Active' | 'Terminating' };
}

export type Runtime = 'containerd' | 'docker' | 'cri-o';

export interface Node extends KObject {
  kind: 'Node';
  spec: { podCIDR?: string; taints?: { key: string; value?: string; effect: string }[] };
  status: {
    addresses: { type: string; address: string }[];
    nodeInfo: Record<string, string>;
    conditions: Record<string, unknown>[];
    capacity: Record<string, string>;
    allocatable: Record<string, string>;
  };
}

export interface V1Status {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Success' | 'Failure';
  message?: string;
  reason?: string;
  details?: { name?: string; group?: string; kind?: string; causes?: Record<string, string>[] };
  code?: number;
}
