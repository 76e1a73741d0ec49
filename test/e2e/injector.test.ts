// Injection by annotation: `phantom-sidecar webhook` as its own process over real TLS, given
// the template the real helm renders, answering real AdmissionReview objects made from team
// Deployments the way the ReplicaSet controller makes their pods. Each patch is applied (RFC
// 6902) and the pod checked against the Kubernetes schemas.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import fastJsonPatch from 'fast-json-patch';
import { byKind, helmTemplate, parseManifests, strictFieldCheck, validate, type Manifest } from '../support/kube.ts';
import { issueServerCertificate, makePki, type Pki } from '../support/pki.ts';
import { freePort } from '../support/ports.ts';

const main = new URL('../../src/main.ts', import.meta.url).pathname;
const pki: Pki = makePki();
let webhook: ChildProcess;
let port: number;
let output = '';

interface Reply {
  status: number;
  body: Record<string, unknown>;
}

function post(path: string, body: string, method = 'POST'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const outgoing = request({ host: '127.0.0.1', port, path, method, servername: 'injector.payments.svc', ca: readFileSync(pki.path('ca.pem')), headers: { 'content-type': 'application/json' } }, (response) => {
      let text = '';
      response.on('data', (chunk: Buffer) => (text += chunk.toString()));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> }));
    });
    outgoing.on('error', reject);
    outgoing.end(body);
  });
}

before(async () => {
  const rendered = helmTemplate({ values: ['ci/injector-values.yaml'] });
  assert.equal(rendered.status, 0, rendered.stderr);
  const template = (byKind(rendered.manifests, 'ConfigMap', 'payments-phantom-sidecar-injector-template') as unknown as { data: Record<string, string> }).data['template.json'] ?? '';
  writeFileSync(pki.path('template.json'), template);
  const tls = issueServerCertificate(pki, pki.path('.'), 'injector', 'DNS:injector.payments.svc');
  port = await freePort();
  webhook = spawn(process.execPath, [main, 'webhook'], {
    env: { PATH: process.env.PATH ?? '', PHANTOM_WEBHOOK_HOST: '127.0.0.1', PHANTOM_WEBHOOK_PORT: String(port), PHANTOM_WEBHOOK_TLS_CERT: tls.cert, PHANTOM_WEBHOOK_TLS_KEY: tls.key, PHANTOM_WEBHOOK_TEMPLATE: pki.path('template.json') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  webhook.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  webhook.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  for (let attempt = 0; attempt < 200; attempt += 1) {
    const healthy = await post('/healthz', '', 'GET').then((reply) => reply.status, () => 0);
    if (healthy === 200) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`the webhook did not start: ${output}`);
});
after(() => {
  webhook.kill('SIGTERM');
});

const deployments = parseManifests(readFileSync(new URL('../fixtures/team-deployments.yaml', import.meta.url), 'utf8'), 'fixtures');

/** The Pod the ReplicaSet controller creates from a Deployment's template. */
function podOf(deployment: Manifest): Manifest {
  const { metadata, spec } = (deployment as unknown as { spec: { template: { metadata: Manifest['metadata']; spec: unknown } } }).spec.template;
  const name = deployment.metadata?.name ?? 'x';
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { ...metadata, generateName: `${name}-5d9c7b6f4-`, namespace: deployment.metadata?.namespace, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: `${name}-5d9c7b6f4`, uid: randomUUID(), controller: true }] } as Manifest['metadata'],
    spec: structuredClone(spec),
  };
}

function review(pod: Manifest): { uid: string; text: string } {
  const uid = randomUUID();
  const body = {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      requestKind: { group: '', version: 'v1', kind: 'Pod' },
      requestResource: { group: '', version: 'v1', resource: 'pods' },
      namespace: pod.metadata?.namespace,
      operation: 'CREATE',
      userInfo: { username: 'system:serviceaccount:kube-system:replicaset-controller', groups: ['system:serviceaccounts', 'system:authenticated'] },
      object: pod,
      oldObject: null,
      dryRun: false,
      options: { apiVersion: 'meta.k8s.io/v1', kind: 'CreateOptions' },
    },
  };
  return { uid, text: JSON.stringify(body) };
}

interface Response {
  uid: string;
  allowed: boolean;
  patchType?: string;
  patch?: string;
  status?: { code: number; message: string };
}

async function admit(pod: Manifest): Promise<{ response: Response; pod: Manifest }> {
  const { uid, text } = review(pod);
  const reply = await post('/mutate', text);
  assert.equal(reply.status, 200);
  assert.equal(reply.body.apiVersion, 'admission.k8s.io/v1');
  assert.equal(reply.body.kind, 'AdmissionReview');
  const response = reply.body.response as Response;
  assert.equal(response.uid, uid, 'the answer carries the request\'s uid');
  if (response.patch === undefined) return { response, pod };
  assert.equal(response.patchType, 'JSONPatch');
  const operations = JSON.parse(Buffer.from(response.patch, 'base64').toString('utf8')) as fastJsonPatch.Operation[];
  // validateOperation: a patch that does not apply (a path that is not there) throws, as the API server refuses it.
  const patched = fastJsonPatch.applyPatch(structuredClone(pod), operations, true, false).newDocument;
  return { response, pod: patched };
}

interface Container {
  name: string;
  restartPolicy?: string;
  env?: { name: string; value: string }[];
  envFrom?: { configMapRef: { name: string } }[];
  volumeMounts?: { name: string }[];
}
interface PodSpec {
  initContainers?: Container[];
  containers: Container[];
  volumes?: { name: string; secret?: { secretName: string } }[];
}
const specOf = (pod: Manifest) => pod.spec as PodSpec;
const fixture = (name: string) => deployments.find((deployment) => deployment.metadata?.name === name)!;

describe('the injector', () => {
  test('an annotated pod gets the native sidecar, its volumes and the status annotation, and is a valid Pod', async () => {
    const { response, pod } = await admit(podOf(fixture('payments-api')));
    assert.equal(response.allowed, true);
    validate(pod);
    const checked = strictFieldCheck([pod]);
    assert.ok(checked.ok, checked.output);
    const spec = specOf(pod);
    const sidecar = spec.initContainers?.find((container) => container.name === 'phantom-sidecar');
    assert.equal(sidecar?.restartPolicy, 'Always');
    assert.deepEqual(spec.containers.map((container) => container.name), ['api'], 'the team\'s containers are left as they were');
    const volumes = new Set(spec.volumes?.map((volume) => volume.name));
    for (const mount of sidecar?.volumeMounts ?? []) assert.ok(volumes.has(mount.name), `${mount.name} is mounted but not a volume`);
    assert.equal(pod.metadata?.annotations?.['phantom-sidecar.io/status'], 'injected');
    assert.deepEqual(sidecar?.envFrom, [{ configMapRef: { name: 'payments-phantom-sidecar-settings' } }]);
  });

  test('per-pod settings by annotation: the API port, a ConfigMap of settings read last, the server certificate; the pod\'s own init container and volumes stay', async () => {
    const { pod } = await admit(podOf(fixture('accounts-api')));
    validate(pod);
    const spec = specOf(pod);
    assert.deepEqual(spec.initContainers?.map((container) => container.name), ['migrate', 'phantom-sidecar']);
    const sidecar = spec.initContainers?.[1];
    assert.deepEqual(sidecar?.env?.find((entry) => entry.name === 'PHANTOM_UPSTREAM_URL'), { name: 'PHANTOM_UPSTREAM_URL', value: 'http://127.0.0.1:8080' });
    assert.deepEqual(sidecar?.envFrom?.map((source) => source.configMapRef.name), ['payments-phantom-sidecar-settings', 'accounts-phantom-settings']);
    assert.equal(spec.volumes?.find((volume) => volume.name === 'phantom-server-tls')?.secret?.secretName, 'accounts-api-tls');
    assert.deepEqual(spec.volumes?.slice(0, 2).map((volume) => volume.name), ['config', 'tmp']);
    assert.equal(pod.metadata?.annotations?.['prometheus.io/scrape'], 'false');
  });

  test('idempotent: the injected pod reviewed again is allowed with no patch, and is the same pod', async () => {
    for (const name of ['payments-api', 'accounts-api']) {
      const once = await admit(podOf(fixture(name)));
      const twice = await admit(once.pod);
      assert.equal(twice.response.allowed, true);
      assert.equal(twice.response.patch, undefined, name);
      assert.deepEqual(twice.pod, once.pod);
    }
  });

  test('a pod without the annotation is allowed untouched', async () => {
    const pod = podOf(fixture('batch-reports'));
    const { response, pod: after } = await admit(pod);
    assert.equal(response.allowed, true);
    assert.equal(response.patch, undefined);
    assert.deepEqual(after, pod);
  });

  test('a wrong per-pod setting refuses the pod with the reason (403), nothing injected', async () => {
    const { response } = await admit(podOf(fixture('cards-api')));
    assert.equal(response.allowed, false);
    assert.equal(response.patch, undefined);
    assert.equal(response.status?.code, 403);
    assert.match(response.status?.message ?? '', /phantom-sidecar\.io\/upstream-port must be a port number/);
  });

  test('malformed reviews get 400 with a JSON error, never a crash; the next review is answered', async () => {
    const bodies = [
      'not json',
      '[]',
      JSON.stringify({ apiVersion: 'admission.k8s.io/v1beta1', kind: 'AdmissionReview', request: {} }),
      JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }),
      JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'x y', object: podOf(fixture('payments-api')) } }),
      JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: randomUUID(), object: { kind: 'Pod', spec: { containers: 'api' } } } }),
      JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: randomUUID(), object: { kind: 'Secret', data: {} } } }),
    ];
    for (const body of bodies) {
      const reply = await post('/mutate', body);
      assert.equal(reply.status, 400, body);
      assert.equal(reply.body.error, 'invalid_request');
      assert.equal(typeof reply.body.error_description, 'string');
    }
    const big = await post('/mutate', 'x'.repeat(4 * 1024 * 1024)).catch(() => ({ status: 413, body: {} }));
    assert.equal(big.status, 413);
    assert.equal(webhook.exitCode, null, output);
    const { response } = await admit(podOf(fixture('payments-api')));
    assert.equal(response.allowed, true);
    assert.ok(response.patch);
    assert.equal((await post('/other', '')).status, 404);
  });
});
