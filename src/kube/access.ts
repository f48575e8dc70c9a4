import { AuthorizationV1Api, type KubeConfig, VersionApi } from '@kubernetes/client-node';

// What the API server says about the caller before anything is tried: may I
// do this (a SelfSubjectAccessReview, which every authenticated user may
// create), and which Kubernetes version is it. Neither ever throws: a server
// that cannot answer leaves the question open (undefined).

export interface AccessQuestion {
  verb: string;
  /** `pods`, or `pods/exec` for a subresource. */
  resource: string;
  namespace: string;
}

/** true or false as the server's authorizer says; undefined when it could not be asked. */
export async function mayI(kc: KubeConfig, q: AccessQuestion): Promise<boolean | undefined> {
  const [resource, subresource] = q.resource.split('/');
  try {
    const review = await kc.makeApiClient(AuthorizationV1Api).createSelfSubjectAccessReview({
      body: {
        apiVersion: 'authorization.k8s.io/v1',
        kind: 'SelfSubjectAccessReview',
        spec: {
          resourceAttributes: {
            verb: q.verb,
            group: '',
            resource,
            ...(subresource && { subresource }),
            namespace: q.namespace,
          },
        },
      },
    });
    return review.status?.allowed === true;
  } catch {
    return undefined;
  }
}

export interface ServerVersion {
  major: number;
  minor: number;
}

/** The API server's version (`/version`), or undefined when it cannot be read. */
export async function serverVersion(kc: KubeConfig): Promise<ServerVersion | undefined> {
  try {
    const info = await kc.makeApiClient(VersionApi).getCode();
    const major = Number.parseInt(info.major, 10);
    // Providers append "+" (e.g. "27+"); gitVersion says it too.
    const minor = Number.parseInt(info.minor, 10);
    if (Number.isInteger(major) && Number.isInteger(minor)) return { major, minor };
    const m = /^v(\d+)\.(\d+)/.exec(info.gitVersion);
    return m ? { major: Number(m[1]), minor: Number(m[2]) } : undefined;
  } catch {
    return undefined;
  }
}

/** Is the server at least `major.minor`? undefined when its version is unknown. */
export function atLeast(v: ServerVersion | undefined, major: number, minor: number) {
  if (!v) return undefined;
  return v.major > major || (v.major === major && v.minor >= minor);
}
