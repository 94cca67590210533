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

test('every TS name in the README\'s C-to-TS table exists in the code', (t) => {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const table = readme.slice(readme.indexOf('## From the C rsp to rsp'), readme.indexOf('## Tests'));
  const sources = ['src', 'examples']
    .flatMap((dir) => fs.readdirSync(path.join(ROOT, dir)).filter((f) => f.endsWith('.ts')).map((f) => path.join(ROOT, dir, f)))
    .map((file) => fs.readFileSync(file, 'utf8'));
  const names = new Set<string>();
  for (const row of table.split('\n').filter((l) => l.startsWith('|'))) {
    const tsColumn = row.split('|')[4] ?? '';
    for (const [, name] of tsColumn.matchAll(/`(?:new )?([A-Za-z]+(?:\.[A-Za-z]+)?)`/g)) names.add(name);
  }
  t.true(names.size > 20, [...names].join(' '));
  for (const name of names) {
    const [owner, member] = name.includes('.') ? name.split('.') : [null, name];
    const found = owner === null
      ? sources.some((src) => new RegExp(`((function|class|interface) ${member}\\b|readonly ${member}:)`).test(src))
      : sources.some((src) => new RegExp(`(class|interface) ${owner}\\b`).test(src) && new RegExp(`\\n\\s+(private |readonly )?${member}\\(`).test(src));
    t.true(found, `${name} is named in the README but not found in src/`);
  }
});
