// Kubernetes objects checked as the API server would: against the Kubernetes (cert-manager,
// prometheus-operator) schemas, and field names against their TypeScript interfaces (the JSON
// schemas allow unknown fields, so a typo needs the types). Rendering with the real helm and
// kubectl (deploy/tools/kube-tools.ts).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { Deployment } from 'kubernetes-models/apps/v1';
import { ConfigMap, Pod, Secret, Service, ServiceAccount } from 'kubernetes-models/v1';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { MutatingWebhookConfiguration } from 'kubernetes-models/admissionregistration.k8s.io/v1';
import { Certificate, Issuer } from '@kubernetes-models/cert-manager/cert-manager.io/v1';
import { PodMonitor, PrometheusRule, ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { kubeTools } from '../../deploy/tools/kube-tools.ts';

export const root = new URL('../..', import.meta.url).pathname;

export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata?: { name?: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: unknown;
}

type Model = (manifest: Manifest) => { validate(): void };
const v1 = 'kubernetes-models/v1';
const certManager = '@kubernetes-models/cert-manager/cert-manager.io/v1';
const monitoring = '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
const models: Record<string, { model: Model; type: [string, string] }> = {
  'apps/v1/Deployment': { model: (m) => new Deployment(m as never), type: ['kubernetes-models/apps/v1/Deployment', 'IDeployment'] },
  'v1/Pod': { model: (m) => new Pod(m as never), type: [`${v1}/Pod`, 'IPod'] },
  'v1/Service': { model: (m) => new Service(m as never), type: [`${v1}/Service`, 'IService'] },
  'v1/ServiceAccount': { model: (m) => new ServiceAccount(m as never), type: [`${v1}/ServiceAccount`, 'IServiceAccount'] },
  'v1/ConfigMap': { model: (m) => new ConfigMap(m as never), type: [`${v1}/ConfigMap`, 'IConfigMap'] },
  'v1/Secret': { model: (m) => new Secret(m as never), type: [`${v1}/Secret`, 'ISecret'] },
  'networking.k8s.io/v1/NetworkPolicy': { model: (m) => new NetworkPolicy(m as never), type: ['kubernetes-models/networking.k8s.io/v1/NetworkPolicy', 'INetworkPolicy'] },
  'policy/v1/PodDisruptionBudget': { model: (m) => new PodDisruptionBudget(m as never), type: ['kubernetes-models/policy/v1/PodDisruptionBudget', 'IPodDisruptionBudget'] },
  'admissionregistration.k8s.io/v1/MutatingWebhookConfiguration': {
    model: (m) => new MutatingWebhookConfiguration(m as never),
    type: ['kubernetes-models/admissionregistration.k8s.io/v1/MutatingWebhookConfiguration', 'IMutatingWebhookConfiguration'],
  },
  'cert-manager.io/v1/Certificate': { model: (m) => new Certificate(m as never), type: [`${certManager}/Certificate`, 'ICertificate'] },
  'cert-manager.io/v1/Issuer': { model: (m) => new Issuer(m as never), type: [`${certManager}/Issuer`, 'IIssuer'] },
  'monitoring.coreos.com/v1/ServiceMonitor': { model: (m) => new ServiceMonitor(m as never), type: [`${monitoring}/ServiceMonitor`, 'IServiceMonitor'] },
  'monitoring.coreos.com/v1/PodMonitor': { model: (m) => new PodMonitor(m as never), type: [`${monitoring}/PodMonitor`, 'IPodMonitor'] },
  'monitoring.coreos.com/v1/PrometheusRule': { model: (m) => new PrometheusRule(m as never), type: [`${monitoring}/PrometheusRule`, 'IPrometheusRule'] },
};

function kindOf(manifest: Manifest): { model: Model; type: [string, string] } {
  const kind = models[`${manifest.apiVersion}/${manifest.kind}`];
  assert.ok(kind, `no schema for ${manifest.apiVersion} ${manifest.kind}`);
  return kind;
}

/** Throws when the object breaks its kind's schema. */
export function validate(manifest: Manifest): void {
  kindOf(manifest).model(manifest).validate();
}

/** Type-checks the manifests as object literals of their interfaces: excess fields fail. */
export function strictFieldCheck(list: readonly Manifest[]): { ok: boolean; output: string } {
  const dir = mkdtempSync(join(root, '.k8s-typecheck-'));
  try {
    const lines = list.map((manifest, index) => {
      const [module, name] = kindOf(manifest).type;
      return `import type { ${name} as T${index} } from '${module}';\nexport const m${index}: T${index} = ${JSON.stringify(manifest, null, 2)};`;
    });
    const file = join(dir, 'manifests.ts');
    writeFileSync(file, `${lines.join('\n')}\n`);
    const tsc = join(root, 'node_modules/typescript/bin/tsc');
    const result = spawnSync(process.execPath, [tsc, '--noEmit', '--strict', '--skipLibCheck', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--types', 'node', file], { encoding: 'utf8' });
    return { ok: result.status === 0, output: `${result.stdout}${result.stderr}` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function parseManifests(text: string, where: string): Manifest[] {
  return parseAllDocuments(text)
    .map((document) => {
      assert.deepEqual(document.errors, [], where);
      return document.toJS() as Manifest | null;
    })
    .filter((manifest): manifest is Manifest => manifest !== null);
}

export interface ToolRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function runTool(tool: 'helm' | 'kubectl', args: readonly string[]): ToolRun {
  // HOME and the helm caches in a temporary folder: nothing of the developer's is read or written.
  const home = mkdtempSync(join(root, '.k8s-home-'));
  try {
    const result = spawnSync(kubeTools()[tool], args, {
      encoding: 'utf8',
      env: { PATH: process.env.PATH ?? '', HOME: home, HELM_CACHE_HOME: join(home, 'cache'), HELM_CONFIG_HOME: join(home, 'config'), HELM_DATA_HOME: join(home, 'data') },
    });
    return { status: result.status, stdout: result.stdout, stderr: result.stderr };
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}

export const CHART = join(root, 'deploy/helm/phantom-sidecar');

/** `helm template` of the chart; the output's objects, or the failure. */
export function helmTemplate(options: { namespace?: string; values?: readonly string[]; set?: readonly string[] } = {}): ToolRun & { manifests: Manifest[] } {
  const args = ['template', 'payments', CHART, '--namespace', options.namespace ?? 'payments'];
  for (const file of options.values ?? []) args.push('-f', file.startsWith('/') ? file : join(CHART, file));
  for (const pair of options.set ?? []) args.push('--set', pair);
  const run = runTool('helm', args);
  return { ...run, manifests: run.status === 0 ? parseManifests(run.stdout, 'helm template') : [] };
}

export function byKind(manifests: readonly Manifest[], kind: string, name?: string): Manifest {
  const found = manifests.find((manifest) => manifest.kind === kind && (name === undefined || manifest.metadata?.name === name));
  assert.ok(found, `no ${kind}${name === undefined ? '' : ` ${name}`} among ${manifests.map((m) => `${m.kind}/${m.metadata?.name}`).join(', ')}`);
  return found;
}

/**
 * The environment a container's settings give, its file paths moved under one test folder
 * where files of the right kind stand in for the mounted Secrets and ConfigMaps: a server
 * certificate and key, CA bundles, private keys, a sealing key, tokens.
 */
export function withMountedFiles(settings: Record<string, string>, files: { folder: string; serverCert: string; serverKey: string; ca: string }): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(settings)) {
    if (!value.startsWith('/')) {
      env[name] = value;
      continue;
    }
    const target = join(files.folder, value);
    mkdirSync(dirname(target), { recursive: true });
    const base = basename(value);
    if (base === 'tls.crt' && !/CLIENT_CERT/.test(name)) copyFileSync(files.serverCert, target);
    else if (base === 'tls.key' && !/CLIENT_CERT/.test(name)) copyFileSync(files.serverKey, target);
    else if (/\.(crt|pem)$/.test(base)) copyFileSync(files.ca, target);
    else if (base.endsWith('.key')) writeFileSync(target, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
    else writeFileSync(target, randomBytes(32).toString('base64'));
    env[name] = target;
  }
  return env;
}
