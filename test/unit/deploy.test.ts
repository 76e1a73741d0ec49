// Docker cannot run here, so the deployment files are checked as text: Kubernetes manifests
// against the Kubernetes (and cert-manager) schemas, the compose file with dclint and the
// compose schema, the Dockerfiles for what a reviewer asks of an image.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments, parse } from 'yaml';
import { DockerfileParser } from 'dockerfile-ast';
import { strictFieldCheck, validate, type Manifest } from '../support/kube.ts';

const root = new URL('../..', import.meta.url).pathname;
const k8s = join(root, 'deploy/k8s');

function manifests(): { file: string; manifest: Manifest }[] {
  return readdirSync(k8s)
    .filter((file) => file.endsWith('.yaml') && file !== 'kustomization.yaml')
    .flatMap((file) =>
      parseAllDocuments(readFileSync(join(k8s, file), 'utf8')).map((document) => {
        assert.deepEqual(document.errors, [], file);
        return { file, manifest: document.toJS() as Manifest };
      }),
    );
}

const deployment = (): Manifest => manifests().find(({ manifest }) => manifest.kind === 'Deployment')!.manifest;

test('every Kubernetes manifest validates against its schema', () => {
  const all = manifests();
  assert.ok(all.length >= 6);
  for (const { file, manifest } of all) assert.doesNotThrow(() => validate(manifest), file);
});

test('every field name is one Kubernetes knows (a typo fails)', () => {
  const checked = strictFieldCheck(manifests().map(({ manifest }) => manifest));
  assert.ok(checked.ok, checked.output);
  const broken = structuredClone(deployment()) as Manifest & { spec: { template: { spec: Record<string, unknown> } } };
  broken.spec.template.spec.automountServiceAcountToken = false;
  const typo = strictFieldCheck([broken]);
  assert.equal(typo.ok, false);
  assert.match(typo.output, /automountServiceAcountToken/);
});

test('the schema check catches a wrong type', () => {
  const wrongType = structuredClone(deployment()) as Manifest & { spec: Record<string, unknown> };
  wrongType.spec.replicas = 'two';
  assert.throws(() => validate(wrongType));
});

test('the kustomization lists every manifest but the out-of-band Secret example', () => {
  const kustomization = parse(readFileSync(join(k8s, 'kustomization.yaml'), 'utf8')) as { resources: string[] };
  const files = readdirSync(k8s).filter((file) => file.endsWith('.yaml') && file !== 'kustomization.yaml');
  assert.deepEqual([...kustomization.resources].sort(), files.filter((file) => !file.endsWith('.example.yaml')).sort());
});

interface Container {
  name: string;
  ports?: { name: string; containerPort: number }[];
  env?: { name: string; value?: string }[];
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: { readOnlyRootFilesystem?: boolean; allowPrivilegeEscalation?: boolean; capabilities?: { drop?: string[] } };
  livenessProbe?: { httpGet?: { path: string; port: string } };
  readinessProbe?: { httpGet?: { path: string; port: string } };
}

test('the pod: restricted security, limits, the API on loopback, the sidecar its only door', () => {
  const pod = (deployment() as unknown as { spec: { template: { spec: { securityContext: Record<string, unknown>; containers: Container[]; initContainers: Container[] } } } }).spec.template.spec;
  assert.equal(pod.securityContext.runAsNonRoot, true);
  assert.deepEqual(pod.securityContext.seccompProfile, { type: 'RuntimeDefault' });
  for (const container of [...pod.containers, ...pod.initContainers]) {
    assert.equal(container.securityContext?.readOnlyRootFilesystem, true, container.name);
    assert.equal(container.securityContext?.allowPrivilegeEscalation, false, container.name);
    assert.deepEqual(container.securityContext?.capabilities?.drop, ['ALL'], container.name);
    assert.ok(container.resources?.requests?.cpu && container.resources.limits?.memory, container.name);
  }
  const env = (container: Container): Record<string, string | undefined> => Object.fromEntries((container.env ?? []).map((e) => [e.name, e.value]));
  const api = pod.containers.find((c) => c.name === 'api')!;
  // A native sidecar: an init container that keeps running (restartPolicy Always), so it is up
  // before the API and stops after it.
  const sidecar = pod.initContainers.find((c) => c.name === 'phantom-sidecar')!;
  assert.equal((sidecar as Container & { restartPolicy?: string }).restartPolicy, 'Always');
  assert.equal(pod.containers.find((c) => c.name === 'phantom-sidecar'), undefined);
  assert.equal(env(api).API_HOST, '127.0.0.1');
  assert.equal(api.ports, undefined);
  assert.equal(env(sidecar).PHANTOM_UPSTREAM_URL, 'http://127.0.0.1:3000');
  // FAPI 2.0 towards the AS: private_key_jwt with a mounted key, discovery, signed answers.
  assert.equal(env(sidecar).PHANTOM_INTROSPECTION_AUTH, 'private_key_jwt');
  assert.ok(env(sidecar).PHANTOM_INTROSPECTION_CLIENT_KEY_FILE);
  assert.equal(env(sidecar).PHANTOM_INTROSPECTION_CLIENT_KEY, undefined, 'the key comes from a mounted Secret');
  assert.ok(env(sidecar).PHANTOM_AS_ISSUER);
  assert.equal(env(sidecar).PHANTOM_INTROSPECTION_RESPONSE, 'jwt');
  assert.deepEqual(sidecar.livenessProbe?.httpGet, { path: '/healthz', port: 'admin' });
  assert.deepEqual(sidecar.readinessProbe?.httpGet, { path: '/readyz', port: 'admin' });
  const service = manifests().find(({ manifest }) => manifest.kind === 'Service')!.manifest as unknown as { spec: { ports: { targetPort: string }[] } };
  assert.deepEqual(service.spec.ports.map((p) => p.targetPort), ['https']);
});

test('docker-compose.yml passes dclint and the compose schema', () => {
  const result = spawnSync(join(root, 'node_modules/.bin/dclint'), ['--max-warnings', '0', join(root, 'docker-compose.yml')], { encoding: 'utf8' });
  assert.equal(result.status, 0, `${result.stdout}${result.stderr}`);
  const compose = parse(readFileSync(join(root, 'docker-compose.yml'), 'utf8')) as { services: Record<string, { ports?: string[]; volumes?: string[] }> };
  assert.equal(compose.services['example-api']?.ports, undefined, 'the API is not published');
  for (const [name, service] of Object.entries(compose.services)) {
    for (const volume of service.volumes ?? []) assert.match(volume, /:ro$/, `${name} mounts ${volume} read-write`);
  }
});

test('dclint fails a compose file with a schema error', () => {
  const dir = mkdtempSync(join(tmpdir(), 'phantom-dclint-'));
  const file = join(dir, 'docker-compose.yml');
  writeFileSync(file, readFileSync(join(root, 'docker-compose.yml'), 'utf8').replace('read_only: true', 'read_onlyy: true'));
  const result = spawnSync(join(root, 'node_modules/.bin/dclint'), ['--max-warnings', '0', file], { encoding: 'utf8' });
  assert.notEqual(result.status, 0);
  assert.match(result.stdout, /must NOT have additional properties/);
});

function dockerfile(path: string) {
  return DockerfileParser.parse(readFileSync(join(root, path), 'utf8'));
}

for (const path of ['Dockerfile', 'deploy/Dockerfile.dev']) {
  test(`${path}: Node 24 bases, a non-root final user, no secrets in layers`, () => {
    const instructions = dockerfile(path).getInstructions();
    const froms = instructions.filter((i) => i.getKeyword() === 'FROM');
    assert.ok(froms.length >= 1);
    for (const from of froms) {
      const image = from.getArgumentsContent() ?? '';
      assert.ok(/^node:24[-\w.]*\s/.test(`${image} `) || /^\w+\s+AS\s+\w/i.test(image), `base ${image}`);
    }
    const users = instructions.filter((i) => i.getKeyword() === 'USER').map((i) => i.getArgumentsContent());
    assert.ok(users.length > 0 && !['root', '0'].includes(users.at(-1) ?? 'root'), 'the image runs as root');
    for (const instruction of instructions) {
      const text = instruction.getArgumentsContent() ?? '';
      if (['ENV', 'ARG'].includes(instruction.getKeyword())) assert.doesNotMatch(text, /SECRET|PASSWORD|PRIVATE|_KEY\b/i, text);
      if (['COPY', 'ADD'].includes(instruction.getKeyword())) assert.doesNotMatch(text, /certs|\.key|\.p12|\.pem/, text);
    }
  });
}

test('the production image runs production dependencies only, built by the README\'s commands', () => {
  const instructions = dockerfile('Dockerfile').getInstructions();
  const runs = instructions.filter((i) => i.getKeyword() === 'RUN').map((i) => i.getArgumentsContent() ?? '');
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  for (const run of runs) assert.ok(readme.includes(run), `the Dockerfile runs "${run}", which the README does not show`);
  assert.ok(runs.some((run) => run.includes('--omit=dev')));
  const entry = instructions.find((i) => i.getKeyword() === 'ENTRYPOINT')?.getArgumentsContent();
  assert.equal(entry, '["node", "dist/main.js"]');
  const ignore = readFileSync(join(root, '.dockerignore'), 'utf8');
  assert.match(ignore, /certs\/out/);
  assert.ok(existsSync(join(root, 'tsconfig.build.json')));
});

test('the image\'s build output runs: `npm run build` emits dist/main.js that starts and validates', () => {
  // Inside the project, so the emitted modules resolve node_modules as the image's do.
  const out = mkdtempSync(join(root, '.dist-test-'));
  try {
    const tsc = join(root, 'node_modules/typescript/bin/tsc');
    const build = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json'), '--outDir', out], { encoding: 'utf8' });
    assert.equal(build.status, 0, `${build.stdout}${build.stderr}`);
    const run = spawnSync(process.execPath, [join(out, 'main.js')], { cwd: root, env: { PATH: process.env.PATH }, encoding: 'utf8' });
    assert.equal(run.status, 2);
    assert.equal(run.stderr.trim(), 'phantom-sidecar: PHANTOM_TLS_CERT: is required');
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

const fleetComponent = join(k8s, 'components/fleet');

test('the fleet component: a Component listing its files, valid objects, a patch of the sidecar', async () => {
  const component = parse(readFileSync(join(fleetComponent, 'kustomization.yaml'), 'utf8')) as { kind: string; resources: string[]; patches: { path: string }[] };
  assert.equal(component.kind, 'Component');
  const files = readdirSync(fleetComponent).filter((file) => file.endsWith('.yaml') && file !== 'kustomization.yaml' && !file.endsWith('.example.yaml'));
  assert.deepEqual([...component.resources, ...component.patches.map((patch) => patch.path)].sort(), files.sort());
  for (const resource of component.resources) validate(parse(readFileSync(join(fleetComponent, resource), 'utf8')) as Manifest);
  const patch = parse(readFileSync(join(fleetComponent, 'deployment-patch.yaml'), 'utf8')) as { spec: { template: { spec: { initContainers: Container[] } } } };
  const sidecar = patch.spec.template.spec.initContainers.find((c) => c.name === 'phantom-sidecar')!;
  const names = (sidecar.env ?? []).map((e) => e.name);
  const { KNOWN_VARIABLES } = await import('../../src/config/env.ts');
  for (const name of names) assert.ok(KNOWN_VARIABLES.has(name), `${name} is not a setting of the sidecar`);
  assert.ok(names.includes('PHANTOM_REDIS_URL') && names.includes('PHANTOM_REDIS_PASSWORD_FILE') && !names.includes('PHANTOM_REDIS_PASSWORD'));
  assert.ok(names.includes('PHANTOM_REDIS_KEY_FILE') && !names.includes('PHANTOM_REDIS_KEY'), 'the sealing key comes from the Secret, never inline');
  assert.ok(names.includes('PHANTOM_SSF_AUTH_TOKEN_FILE'), 'the transmitter\'s pushes carry a bearer token');
});

test('every PHANTOM_ variable in the base and the component is one the sidecar knows', async () => {
  const { KNOWN_VARIABLES } = await import('../../src/config/env.ts');
  const text = readFileSync(join(k8s, 'deployment.yaml'), 'utf8') + readFileSync(join(fleetComponent, 'deployment-patch.yaml'), 'utf8');
  const used = [...text.matchAll(/name: (PHANTOM_[A-Z0-9_]+)/g)].map((match) => match[1] ?? '');
  assert.ok(used.length > 10);
  for (const name of used) assert.ok(KNOWN_VARIABLES.has(name), name);
});

/** The metric names a PromQL expression uses, histogram suffixes taken off. */
function metricNames(expr: string): string[] {
  return [...expr.matchAll(/\b(phantom_[a-z0-9_]+)/g)].map((match) => (match[1] ?? '').replace(/_(bucket|sum|count)$/, ''));
}

async function exposedMetrics(): Promise<Set<string>> {
  const { SidecarMetrics } = await import('../../src/metrics.ts');
  const metrics = new SidecarMetrics({
    activeEntries: () => 0, inactiveEntries: () => 0, introspectionsInFlight: () => 0, upstreamSlotsInUse: () => 0,
    serverNotAfterMs: () => Date.now(), crlNextUpdateMs: () => Date.now(), fleetConnected: () => 1, now: Date.now,
  });
  return new Set((await metrics.registry.getMetricsAsJSON()).map((metric) => metric.name));
}

test('the PrometheusRule validates and every metric it uses exists on /metrics', async () => {
  const { PrometheusRule } = await import('@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule');
  const rule = parse(readFileSync(join(root, 'deploy/monitoring/prometheus-rule.yaml'), 'utf8')) as { spec: { groups: { rules: { alert: string; expr: string }[] }[] } };
  new PrometheusRule(rule as never).validate();
  const exposed = await exposedMetrics();
  const alerts = rule.spec.groups.flatMap((group) => group.rules);
  assert.deepEqual(alerts.map((alert) => alert.alert).filter((name) => /Certificate|Crl|AuthorizationServer|Redis|Revocation|Tls|Connections/.test(name)).length, alerts.length);
  for (const alert of alerts) for (const name of metricNames(alert.expr)) assert.ok(exposed.has(name), `${alert.alert}: ${name}`);
});

test('the Grafana dashboard is valid JSON and every metric it uses exists on /metrics', async () => {
  const dashboard = JSON.parse(readFileSync(join(root, 'deploy/monitoring/grafana-dashboard.json'), 'utf8')) as { panels: { title: string; targets: { expr: string }[] }[] };
  const exposed = await exposedMetrics();
  assert.ok(dashboard.panels.length >= 4);
  for (const panel of dashboard.panels) for (const target of panel.targets) for (const name of metricNames(target.expr)) assert.ok(exposed.has(name), `${panel.title}: ${name}`);
});
