// The kustomize base and its components, built by the real kubectl kustomize, as a team's
// overlay uses them: every object valid against the Kubernetes schemas, names that follow the
// namespace, and settings the sidecar's own configuration reader accepts.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkConfig } from '../../src/config/config.ts';
import { byKind, parseManifests, root, runTool, strictFieldCheck, validate, withMountedFiles, type Manifest } from '../support/kube.ts';
import { makePki } from '../support/pki.ts';

let overlay: string;
before(() => {
  // Inside the checkout: kustomize loads bases by relative path from the overlay.
  overlay = mkdtempSync(join(root, '.k8s-home-overlay-'));
  writeFileSync(
    join(overlay, 'kustomization.yaml'),
    ['namespace: treasury', 'resources: [../deploy/k8s]', 'components: [../deploy/k8s/components/fleet, ../deploy/k8s/components/egress]', 'transformers: [../deploy/k8s/namespace-names]', ''].join('\n'),
  );
});
after(() => rmSync(overlay, { recursive: true, force: true }));

function kustomize(dir: string): Manifest[] {
  const run = runTool('kubectl', ['kustomize', dir]);
  assert.equal(run.status, 0, run.stderr);
  return parseManifests(run.stdout, dir);
}

interface Container {
  name: string;
  env?: { name: string; value?: string }[];
}
const sidecarEnv = (manifests: Manifest[]): Record<string, string> => {
  const pod = (byKind(manifests, 'Deployment') as unknown as { spec: { template: { spec: { initContainers: Container[] } } } }).spec.template.spec;
  const sidecar = pod.initContainers.find((container) => container.name === 'phantom-sidecar');
  return Object.fromEntries((sidecar?.env ?? []).map((entry) => [entry.name, entry.value ?? '']));
};
const dnsNames = (manifests: Manifest[]) => (byKind(manifests, 'Certificate') as unknown as { spec: { dnsNames: string[] } }).spec.dnsNames;

describe('kubectl kustomize', () => {
  test('the base alone: valid objects, certificate names of the default namespace', () => {
    const manifests = kustomize(join(root, 'deploy/k8s'));
    for (const manifest of manifests) assert.doesNotThrow(() => validate(manifest), `${manifest.kind}/${manifest.metadata?.name}`);
    const checked = strictFieldCheck(manifests);
    assert.ok(checked.ok, checked.output);
    assert.deepEqual(dnsNames(manifests), ['api.example.com', 'partner-api', 'partner-api.default.svc', 'partner-api.default.svc.cluster.local']);
  });

  test('an overlay in its own namespace with the fleet and the egress lockdown: names follow the namespace, the SSF push can arrive', () => {
    const manifests = kustomize(overlay);
    for (const manifest of manifests) {
      assert.doesNotThrow(() => validate(manifest), `${manifest.kind}/${manifest.metadata?.name}`);
      assert.equal(manifest.metadata?.namespace, 'treasury', `${manifest.kind}/${manifest.metadata?.name}`);
    }
    const checked = strictFieldCheck(manifests);
    assert.ok(checked.ok, checked.output);
    assert.deepEqual(dnsNames(manifests).slice(2), ['partner-api.treasury.svc', 'partner-api.treasury.svc.cluster.local']);
    const ssf = byKind(manifests, 'Service', 'partner-api-ssf') as unknown as { spec: { ports: { targetPort: string }[] } };
    assert.equal(ssf.spec.ports[0]?.targetPort, 'admin');
    const policy = byKind(manifests, 'NetworkPolicy', 'partner-api-ssf') as unknown as { spec: { ingress: { ports: { port: number }[]; from: unknown[] }[] } };
    assert.equal(policy.spec.ingress[0]?.ports[0]?.port, 9090);
    assert.ok(policy.spec.ingress[0]?.from.length, 'the admin port is opened to the transmitter only');
    assert.ok(sidecarEnv(manifests).PHANTOM_SSF_AUTH_TOKEN_FILE);
    const egress = byKind(manifests, 'NetworkPolicy', 'partner-api-egress') as unknown as { spec: { egress: { ports: { port: number }[] }[] } };
    assert.ok(egress.spec.egress.some((rule) => rule.ports.some((port) => port.port === 5432)), 'the API keeps its own egress');
  });

  test('the fleet component alone adds no pod-wide egress policy', () => {
    const dir = mkdtempSync(join(root, '.k8s-home-overlay-'));
    try {
      writeFileSync(join(dir, 'kustomization.yaml'), 'resources: [../deploy/k8s]\ncomponents: [../deploy/k8s/components/fleet]\n');
      const policies = kustomize(dir).filter((manifest) => manifest.kind === 'NetworkPolicy') as unknown as { spec: { policyTypes: string[] } }[];
      assert.ok(policies.length >= 2);
      for (const policy of policies) assert.deepEqual(policy.spec.policyTypes, ['Ingress']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the settings of the base and of the fleet overlay are a configuration the sidecar accepts', () => {
    const pki = makePki();
    const files = { folder: pki.path('mounted'), serverCert: pki.path('server.pem'), serverKey: pki.path('server.key'), ca: pki.path('ca.pem') };
    for (const dir of [join(root, 'deploy/k8s'), overlay]) {
      const { problems } = checkConfig(withMountedFiles(sidecarEnv(kustomize(dir)), files));
      assert.deepEqual(problems.map((problem) => problem.message), [], dir);
    }
  });
});
