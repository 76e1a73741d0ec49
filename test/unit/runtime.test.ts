import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

test('npm scripts run on Node 24, pinned through the `node` devDependency', () => {
  const major = Number(process.versions.node.split('.')[0]);
  assert.equal(major, 24, `running on Node ${process.versions.node}`);
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { devDependencies: Record<string, string> };
  assert.match(pkg.devDependencies.node ?? '', /^\^24/);
});
