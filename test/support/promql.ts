// Just enough PromQL to say whether the PrometheusRule's alerts fire on what /metrics shows:
// `agg by (labels) (selector or rate|increase(selector[window])) op number`, with label
// matchers = != =~ !~, over one scrape (gauges) or two (counters). Anything else in an
// expression is an error, so a new alert of another shape cannot pass unchecked.

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (match === null) throw new Error(`not an exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const pair of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1] ?? ''] = pair[2] ?? '';
    samples.push({ name: match[1] ?? '', labels, value: Number(match[3]) });
  }
  return samples;
}

interface Matcher {
  label: string;
  op: '=' | '!=' | '=~' | '!~';
  value: string;
}

function matchers(text: string | undefined): Matcher[] {
  if (text === undefined || text.trim() === '') return [];
  return text.split(',').map((part) => {
    const match = /^\s*([a-zA-Z_]+)\s*(=~|!~|!=|=)\s*"([^"]*)"\s*$/.exec(part);
    if (match === null) throw new Error(`unsupported matcher: ${part}`);
    return { label: match[1] ?? '', op: match[2] as Matcher['op'], value: match[3] ?? '' };
  });
}

function selects(sample: Sample, name: string, wanted: readonly Matcher[]): boolean {
  if (sample.name !== name) return false;
  return wanted.every(({ label, op, value }) => {
    const actual = sample.labels[label] ?? '';
    if (op === '=') return actual === value;
    if (op === '!=') return actual !== value;
    const full = new RegExp(`^(?:${value})$`);
    return op === '=~' ? full.test(actual) : !full.test(actual);
  });
}

function scalar(text: string): number {
  if (!/^[\d\s*.]+$/.test(text)) throw new Error(`unsupported scalar: ${text}`);
  return text.split('*').reduce((product, factor) => product * Number(factor.trim()), 1);
}

const EXPRESSION = /^(min|max|sum) by \(([a-z_, ]*)\) \((?:(rate|increase)\(([a-z_:0-9]+)(?:\{([^}]*)\})?\[\w+\]\)|([a-z_:0-9]+)(?:\{([^}]*)\})?)\) (==|!=|<=|>=|<|>) (.+)$/;

/**
 * The groups for which the alert's expression holds. `earlier` is a scrape taken `seconds`
 * before `later`: counters' rate and increase come from the two.
 */
export function firing(expr: string, earlier: readonly Sample[], later: readonly Sample[], seconds: number): string[] {
  const match = EXPRESSION.exec(expr.trim());
  if (match === null) throw new Error(`expression outside the supported PromQL: ${expr}`);
  const [, agg, by, fn, counter, counterMatchers, gauge, gaugeMatchers, op, threshold] = match;
  const groupBy = (by ?? '').split(',').map((label) => label.trim()).filter(Boolean);
  const groupOf = (sample: Sample): string => groupBy.map((label) => `${label}=${sample.labels[label] ?? ''}`).join(',');
  const values = new Map<string, number[]>();
  if (fn !== undefined) {
    const wanted = matchers(counterMatchers);
    const before = new Map(earlier.filter((sample) => selects(sample, counter ?? '', wanted)).map((sample) => [JSON.stringify(sample.labels), sample.value]));
    for (const sample of later.filter((candidate) => selects(candidate, counter ?? '', wanted))) {
      const delta = sample.value - (before.get(JSON.stringify(sample.labels)) ?? 0);
      const list = values.get(groupOf(sample)) ?? [];
      list.push(fn === 'rate' ? delta / seconds : delta);
      values.set(groupOf(sample), list);
    }
  } else {
    const wanted = matchers(gaugeMatchers);
    for (const sample of later.filter((candidate) => selects(candidate, gauge ?? '', wanted))) {
      const list = values.get(groupOf(sample)) ?? [];
      list.push(sample.value);
      values.set(groupOf(sample), list);
    }
  }
  const limit = scalar(threshold ?? '');
  const holds = (value: number): boolean => ({ '==': value === limit, '!=': value !== limit, '<=': value <= limit, '>=': value >= limit, '<': value < limit, '>': value > limit })[op as string] ?? false;
  const fired: string[] = [];
  for (const [group, list] of values) {
    const value = agg === 'min' ? Math.min(...list) : agg === 'max' ? Math.max(...list) : list.reduce((sum, one) => sum + one, 0);
    if (holds(value)) fired.push(group);
  }
  return fired;
}
