import assert from 'node:assert/strict';
import { test } from 'node:test';
import { creationFailure } from '../../src/capture/privileged.ts';
import { KubedumpError } from '../../src/errors.ts';
import {
  apiError,
  forbiddenError,
  parseStatus,
  refusedPermission,
} from '../../src/kube/api-errors.ts';

// What API servers answer with 403 (kube-apiserver 1.20 and later word it the same way).
const EXEC_GET =
  'pods "web" is forbidden: User "system:serviceaccount:demo:kd" cannot get resource "pods/exec" in API group "" in the namespace "demo"';
const CREATE_PODS =
  'pods is forbidden: User "u" cannot create resource "pods" in API group "" in the namespace "team-a"';
const NODES =
  'nodes "n1" is forbidden: User "u" cannot get resource "nodes" in API group "" at the cluster scope';
const DEPLOY =
  'deployments.apps "x" is forbidden: User "u" cannot patch resource "deployments" in API group "apps" in the namespace "demo"';

test('the refused verb and resource are read from the 403 message', () => {
  assert.deepEqual(refusedPermission(EXEC_GET), {
    user: 'system:serviceaccount:demo:kd',
    verb: 'get',
    resource: 'pods/exec',
    namespace: 'demo',
  });
  assert.deepEqual(refusedPermission(CREATE_PODS), {
    user: 'u',
    verb: 'create',
    resource: 'pods',
    namespace: 'team-a',
  });
  assert.deepEqual(refusedPermission(NODES), { user: 'u', verb: 'get', resource: 'nodes' });
  assert.equal(refusedPermission(DEPLOY)?.resource, 'deployments.apps');
  assert.equal(refusedPermission('admission webhook "x" denied the request'), undefined);
});

test('a bare "Forbidden" is a proxy’s; the API server’s own 403s, Status or text, are not', () => {
  const proxy = forbiddenError(
    'exec in demo/web',
    'Forbidden',
    undefined,
    parseStatus('Forbidden\n'),
  );
  assert.equal(proxy.code, 'PROXY_FORBIDDEN');
  assert.match(proxy.line, /refused by a proxy in front of the API server.*--reject-paths='\^\$'/);
  const status = { kind: 'Status', message: 'Forbidden', reason: 'Forbidden', code: 403 };
  assert.equal(
    forbiddenError('get pod demo/web', 'Forbidden', undefined, status).code,
    'FORBIDDEN',
  );
  // The kubelet's protocol refusal is text too, and names what it refused.
  const negotiation = 'unable to upgrade: unable to negotiate protocol';
  const text = forbiddenError('exec in demo/web', negotiation, undefined, parseStatus(negotiation));
  assert.equal(text.code, 'FORBIDDEN');
});

test('a forbidden exec names the verb refused and both verbs exec needs', () => {
  const e = forbiddenError('exec in demo/web', EXEC_GET);
  assert.equal(e.code, 'FORBIDDEN');
  assert.equal(
    e.line,
    'exec in demo/web: forbidden: User "system:serviceaccount:demo:kd" may not "get pods/exec" in namespace "demo": ' +
      'ask for both "create pods/exec" and "get pods/exec" in namespace demo (before Kubernetes 1.30 ' +
      'WebSocket exec is authorised as "get pods/exec", from 1.30 as "create pods/exec"), or use another context',
  );
});

test('other refusals name the one permission and where it is needed', () => {
  const pods = forbiddenError('create pod team-a/h', CREATE_PODS);
  assert.match(pods.line, /may not "create pods" in namespace "team-a"/);
  assert.match(pods.line, /ask for the RBAC permission "create pods" in namespace team-a/);
  const nodes = forbiddenError('get node n1', NODES);
  assert.match(nodes.line, /may not "get nodes" \(cluster-wide\)/);
  assert.match(nodes.line, /"get nodes" \(a ClusterRole\)/);
  // A message in another shape is kept as the server said it.
  const other = forbiddenError('create pod demo/h', 'denied by policy X');
  assert.equal(
    other.line,
    'create pod demo/h: forbidden: denied by policy X: ask for the RBAC permission named above, or use another context',
  );
});

test('apiError turns a 403 from the client into the same line', () => {
  const e = apiError(
    { code: 403, body: JSON.stringify({ kind: 'Status', message: CREATE_PODS, code: 403 }) },
    'create pod team-a/h',
  );
  assert.equal(e.code, 'FORBIDDEN');
  assert.match(e.line, /^create pod team-a\/h: forbidden: User "u" may not "create pods"/);
  assert.equal(e.line.includes('\n'), false);
});

test("an API refusal keeps the server's Status: reason and causes, in its own words", () => {
  const body = {
    kind: 'Status',
    status: 'Failure',
    message: 'Pod "kubedump-x" is invalid: spec.hostPID: Forbidden: disallowed by policy',
    reason: 'Invalid',
    code: 422,
    details: {
      name: 'kubedump-x',
      kind: 'Pod',
      causes: [
        { reason: 'FieldValueForbidden', message: 'disallowed by policy', field: 'spec.hostPID' },
      ],
    },
  };
  const e = apiError(
    Object.assign(new Error('HTTP 422'), { code: 422, body }),
    'create pod demo/x',
  );
  assert.equal(e.code, 'INVALID');
  assert.equal(e.status?.reason, 'Invalid');
  assert.deepEqual(e.status?.details?.causes?.[0]?.field, 'spec.hostPID');
  // The helper's refusal quotes the server, whatever our own line said.
  const reworded = new KubedumpError('INVALID', 'create pod demo/x: something else', {
    status: e.status,
  });
  assert.match(
    creationFailure(reworded, 'demo').line,
    /refuses the privileged helper pod in namespace "demo": Pod "kubedump-x" is invalid: spec\.hostPID/,
  );
  const psa = apiError(
    Object.assign(new Error('HTTP 403'), {
      code: 403,
      body: {
        kind: 'Status',
        reason: 'Forbidden',
        code: 403,
        message:
          'pods "kubedump-x" is forbidden: violates PodSecurity "baseline:latest": host namespaces (hostPID=true)',
      },
    }),
    'create pod demo/x',
  );
  assert.equal(psa.status?.reason, 'Forbidden');
  assert.equal(creationFailure(psa, 'demo').code, 'POD_SECURITY');
});
