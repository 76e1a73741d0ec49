// --help and check show the settings from src/config/settings.ts, generated from the README:
// this fails when one is edited without the other (run `npm run settings`).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { CATALOGUE_PATH, catalogueSource } from '../../deploy/scripts/settings-catalogue.ts';
import { KNOWN_VARIABLES } from '../../src/config/env.ts';
import { SETTINGS_GROUPS } from '../../src/config/settings.ts';

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

test('src/config/settings.ts is what the README\'s tables give (npm run settings)', () => {
  assert.equal(readFileSync(CATALOGUE_PATH, 'utf8'), catalogueSource(readme));
});

test('every setting but the _FILE forms is in exactly one group, and nothing else is', () => {
  const listed = SETTINGS_GROUPS.flatMap((group) => group.settings.flatMap((setting) => setting.names));
  const expected = [...KNOWN_VARIABLES].filter((name) => !(name.endsWith('_FILE') && KNOWN_VARIABLES.has(name.slice(0, -5))));
  assert.deepEqual([...listed].sort(), [...expected].sort());
});
