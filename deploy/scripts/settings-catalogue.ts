// Writes src/config/settings.ts, the settings as `phantom-sidecar --help` and `check` show
// them, from the README's Configuration tables: the README stays the one place a setting is
// described, and a test fails when the two drift (`npm run settings` writes it again).
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('../..', import.meta.url).pathname;
export const CATALOGUE_PATH = join(root, 'src/config/settings.ts');
const SUMMARY_MAX = 96;

interface Setting {
  names: string[];
  fallback: string;
  summary: string;
}

function plain(markdown: string): string {
  return markdown
    .replace(/\[([^\]]+)\]\([^)]+\)/g, '$1')
    .replaceAll('**', '')
    .replaceAll('`', '')
    .replaceAll('\\|', '|')
    .trim();
}

/** The meaning's first sentence, cut at a word boundary when long. */
function summary(meaning: string): string {
  const text = plain(meaning);
  const sentence = text.split(/(?<=[a-z0-9)])\. (?=[A-Z`])|; /)[0] ?? text;
  if (sentence.length <= SUMMARY_MAX) return sentence.replace(/\.$/, '');
  const cut = sentence.slice(0, SUMMARY_MAX);
  return `${cut.slice(0, cut.lastIndexOf(' '))} …`;
}

function cells(row: string): string[] {
  return row.slice(1, -1).split(/(?<!\\)\|/).map((cell) => cell.trim());
}

export function catalogueFrom(readme: string): { title: string; settings: Setting[] }[] {
  const start = readme.indexOf('\n## Configuration');
  const end = readme.indexOf('\n## ', start + 1);
  const groups: { title: string; settings: Setting[] }[] = [];
  for (const line of readme.slice(start, end).split('\n')) {
    const heading = /^\*\*(.+?)\*\*/.exec(line);
    if (heading !== null) {
      groups.push({ title: heading[1]!, settings: [] });
      continue;
    }
    if (!line.startsWith('| `PHANTOM_') && !line.startsWith('| `OTEL_')) continue;
    const [names, fallback, meaning] = cells(line);
    groups.at(-1)!.settings.push({ names: [...names!.matchAll(/`((?:PHANTOM|OTEL)_[A-Z0-9_]+)`/g)].map((match) => match[1]!), fallback: plain(fallback!), summary: summary(meaning!) });
  }
  return groups.filter((group) => group.settings.length > 0);
}

function groupSource(group: { title: string; settings: Setting[] }): string {
  const settings = group.settings.map((setting) => `      ${JSON.stringify(setting)},\n`).join('');
  return `  {\n    title: ${JSON.stringify(group.title)},\n    settings: [\n${settings}    ],\n  },\n`;
}

export function catalogueSource(readme: string): string {
  return `// Generated from the README's Configuration tables by deploy/scripts/settings-catalogue.ts
// (npm run settings); a test fails when the two differ. Read by --help and check.

export interface SettingEntry {
  names: readonly string[];
  fallback: string;
  summary: string;
}

export interface SettingsGroup {
  title: string;
  settings: readonly SettingEntry[];
}

export const SETTINGS_GROUPS: readonly SettingsGroup[] = [
${catalogueFrom(readme).map(groupSource).join('')}];
`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  writeFileSync(CATALOGUE_PATH, catalogueSource(readFileSync(join(root, 'README.md'), 'utf8')));
  process.stdout.write(`wrote ${CATALOGUE_PATH}\n`);
}
