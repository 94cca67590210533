// The README's config reference and examples/full.lua say what the code does.
import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { OPTIONS, parseConfig } from '../src/config';
import { ROOT } from './helpers';

function defaultText(value: string | number | boolean | undefined): string {
  if (value === undefined) return 'required';
  return '`' + (typeof value === 'string' ? JSON.stringify(value) : String(value)) + '`';
}

test('the README lists every config option once, with its default', (t) => {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const rows = [...readme.matchAll(/^\| `(\w+)` \| ([^|]+) \|/gm)].map((m) => [m[1], m[2].trim()]);
  t.deepEqual(rows, OPTIONS.map((o) => [o.name, defaultText(o.default)]));
});

test('examples/full.lua sets every option, to its default', (t) => {
  const config = parseConfig(path.join(ROOT, 'examples', 'full.lua')) as unknown as Record<string, unknown>;
  const text = fs.readFileSync(path.join(ROOT, 'examples', 'full.lua'), 'utf8');
  for (const o of OPTIONS) {
    t.regex(text, new RegExp(`^${o.name} = `, 'm'), o.name);
    if (o.default !== undefined) t.is(config[o.name], o.default, o.name);
  }
});
