// The README's config reference and examples/full.lua say what the code does;
// the charts the documents link are there.
import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { OPTIONS, parseConfig } from '../src/config';
import { ROOT } from './helpers';
import { svgProblem } from './svg';

function defaultText(value: string | number | boolean | undefined, table = false): string {
  if (table) return 'none';
  if (value === undefined) return 'required';
  return '`' + (typeof value === 'string' ? JSON.stringify(value) : String(value)) + '`';
}

test('the README lists every config option once, with its default', (t) => {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const rows = [...readme.matchAll(/^\| `(\w+)` \| ([^|]+) \|/gm)].map((m) => [m[1], m[2].trim()]);
  t.deepEqual(rows, OPTIONS.map((o) => [o.name, defaultText(o.default, o.kind.type === 'table')]));
});

test('examples/full.lua sets every option, to its default', (t) => {
  const config = parseConfig(path.join(ROOT, 'examples', 'full.lua')) as unknown as Record<string, unknown>;
  const text = fs.readFileSync(path.join(ROOT, 'examples', 'full.lua'), 'utf8');
  for (const o of OPTIONS) {
    // A table option has no default to set: an example of it, commented out, is there instead.
    if (o.kind.type === 'table') {
      t.regex(text, new RegExp(`^-- ${o.name} = \\{`, 'm'), o.name);
      continue;
    }
    t.regex(text, new RegExp(`^${o.name} = `, 'm'), o.name);
    if (o.default !== undefined) t.is(config[o.name], o.default, o.name);
  }
});

test('every TS name in the README\'s C-to-TS table exists in the code', (t) => {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const table = readme.slice(readme.indexOf('## From the C rsp to rsp'), readme.indexOf('## Tests'));
  const sources = ['src', 'examples']
    .flatMap((dir) => fs.readdirSync(path.join(ROOT, dir), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts')).map((f) => path.join(ROOT, dir, f)))
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

// ---------------------------------------------------------------- trace excerpts

/** The text of the call's first argument that starts at `open` (just after the "("), up to its "," or ")" at depth 0. */
function firstArgument(src: string, open: number): string {
  let depth = 0;
  for (let i = open; i < src.length; i++) {
    const c = src[i];
    if (c === "'" || c === '"') i = skipQuoted(src, i);
    else if (c === '`') i = skipTemplate(src, i);
    else if (c === '(' || c === '[' || c === '{') depth++;
    else if (c === ')' || c === ']' || c === '}') {
      if (depth === 0) return src.slice(open, i).trim();
      depth--;
    } else if (c === ',' && depth === 0) return src.slice(open, i).trim();
  }
  throw new Error(`unterminated call at ${open}`);
}

/** Index of the closing quote of the '…' or "…" string that opens at `i`. */
function skipQuoted(src: string, i: number): number {
  const q = src[i];
  for (let j = i + 1; j < src.length; j++) {
    if (src[j] === '\\') j++;
    else if (src[j] === q) return j;
  }
  throw new Error('unterminated string');
}

/** Index of the closing backtick of the template literal that opens at `i` (with nested ${…} and templates). */
function skipTemplate(src: string, i: number): number {
  for (let j = i + 1; j < src.length; j++) {
    if (src[j] === '\\') j++;
    else if (src[j] === '`') return j;
    else if (src[j] === '$' && src[j + 1] === '{') j = skipExpression(src, j + 2);
  }
  throw new Error('unterminated template');
}

/** Index of the "}" that closes a ${…} whose expression starts at `i`. */
function skipExpression(src: string, i: number): number {
  let depth = 0;
  for (let j = i; j < src.length; j++) {
    const c = src[j];
    if (c === "'" || c === '"') j = skipQuoted(src, j);
    else if (c === '`') j = skipTemplate(src, j);
    else if (c === '{') depth++;
    else if (c === '}') {
      if (depth === 0) return j;
      depth--;
    }
  }
  throw new Error('unterminated ${');
}

const escapeRegex = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * A string or template literal as a regex source: its text literally, each
 * ${…} as "anything". A ternary of two literals becomes an alternative; any
 * other expression (a variable) says nothing about the format: null.
 */
function literalPattern(expr: string): string | null {
  const ternary = /^[^'"`?]+\?\s*(['"`][\s\S]*['"`])\s*:\s*(['"`][\s\S]*['"`])$/.exec(expr);
  if (ternary) {
    const [a, b] = [literalPattern(ternary[1]), literalPattern(ternary[2])];
    return a !== null && b !== null ? `(?:${a}|${b})` : null;
  }
  const q = expr[0];
  if ((q === "'" || q === '"') && skipQuoted(expr, 0) === expr.length - 1) return escapeRegex(expr.slice(1, -1).replace(/\\(.)/g, '$1'));
  if (q !== '`' || skipTemplate(expr, 0) !== expr.length - 1) return null;
  let out = '';
  for (let j = 1; j < expr.length - 1; j++) {
    if (expr[j] === '\\') out += escapeRegex(expr[++j]);
    else if (expr[j] === '$' && expr[j + 1] === '{') {
      j = skipExpression(expr, j + 2);
      out += '.*';
    } else out += escapeRegex(expr[j]);
  }
  // A template that is nothing but one expression (logError(message)) fits any line: no format.
  return /^(\.\*)+$/.test(out) ? null : out;
}

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? sourceFiles(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

/** Every line format rsp can print: trace.line(depth, …) with its indentation, and log lines after their timestamp. */
function printedFormats(): { trace: RegExp[]; log: RegExp[] } {
  const trace: RegExp[] = [];
  const log: RegExp[] = [];
  for (const file of sourceFiles(path.join(ROOT, 'src'))) {
    const src = fs.readFileSync(file, 'utf8');
    for (const m of src.matchAll(/\btrace\.line\(\s*(\d+)\s*,/g)) {
      const pattern = literalPattern(firstArgument(src, m.index! + m[0].length));
      if (pattern !== null) trace.push(new RegExp(`^${'  '.repeat(Number(m[1]))}${pattern}$`));
    }
    for (const m of src.matchAll(/\b(?:log|logError|logErrorLimited)\(/g)) {
      const pattern = literalPattern(firstArgument(src, m.index! + m[0].length));
      if (pattern !== null) log.push(new RegExp(`^${pattern}$`));
    }
    // The rate-limited error log (LimitedLog.error(kind, message)): the message is its second argument,
    // and a line may carry the tally of the ones held back.
    for (const m of src.matchAll(/\berrors\.error\(/g)) {
      const open = m.index! + m[0].length;
      const kind = firstArgument(src, open);
      const afterKind = src.indexOf(',', src.indexOf(kind, open) + kind.length) + 1;
      const pattern = literalPattern(firstArgument(src, afterKind));
      if (pattern !== null) log.push(new RegExp(`^${pattern}( \\(and \\d+ more like it since the last one\\))?$`));
    }
    // The counters are log lines built as a list (describeCounters).
    for (const m of src.matchAll(/`counters: /g)) {
      const start = m.index!;
      const pattern = literalPattern(src.slice(start, skipTemplate(src, start) + 1));
      if (pattern !== null) log.push(new RegExp(`^${pattern}$`));
    }
  }
  return { trace, log };
}

const TIMESTAMP = /^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] /;
/** A line that looks like rsp's output: an epoll_wait line, a log line, or an indented event or syscall line. */
const LOOKS_PRINTED = /^(epoll_wait\(max |\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] | {2}fd \d+[ :]| {4}[a-z_0-9]+\(\d)/;
/** Lines a quoted trace may have that rsp does not print: the gap marks and the command that ran it. */
const EDITORIAL = /^\s*(\[(…|\.\.\.)|\$ )/;

/** The lines of every fenced block without a language that looks like rsp's output. */
function quotedTraces(file: string): { line: string; at: number }[][] {
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  const blocks: { line: string; at: number }[][] = [];
  for (let i = 0; i < lines.length; i++) {
    if (!lines[i].startsWith('```')) continue;
    const language = lines[i].slice(3).trim();
    const block: { line: string; at: number }[] = [];
    for (i++; i < lines.length && !lines[i].startsWith('```'); i++) block.push({ line: lines[i], at: i + 1 });
    if (language === '' && block.some((b) => LOOKS_PRINTED.test(b.line))) blocks.push(block);
  }
  return blocks;
}

test('the formats are taken from the code: each trace.line and log call site gives one', (t) => {
  const { trace, log } = printedFormats();
  t.true(trace.length >= 25, `${trace.length} trace formats`);
  t.true(log.length >= 8, `${log.length} log formats`);
  const fits = (line: string): boolean => trace.some((re) => re.test(line));
  // Lines the program prints today fit; lines it does not print, or at another depth, do not.
  t.true(fits('    short read after EPOLLRDHUP: that was the end, no read() for the 0'));
  t.true(fits('    socket() = 26; setsockopt(26, TCP_NODELAY) = 0; connect(26, 127.0.0.1:8888) = -1 EINPROGRESS'));
  t.true(fits('  fd 25 client 127.0.0.1:50242: EPOLLIN|EPOLLRDHUP'));
  t.true(fits('epoll_wait(max 256, timeout -1) = 1'));
  t.true(fits('    not reading any more: ignored'));
  t.false(fits('    short read with EPOLLRDHUP: that was the end, no read() for the 0'));
  t.false(fits('  read(25) = 78'));
  t.false(fits('    socket() = 26; connect(26, 127.0.0.1:8888) = -1 EINPROGRESS'));
  t.true(log.some((re) => re.test('Started.  Listening on port 8000.')));
  t.false(log.some((re) => re.test('Started. Listening on port 8000.')));
});

test('every trace line quoted in docs/ and the README is one the program prints', (t) => {
  const { trace, log } = printedFormats();
  const docs = ['README.md', ...fs.readdirSync(path.join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
  const wrong: string[] = [];
  const found: Record<string, number> = {};
  for (const doc of docs) {
    const blocks = quotedTraces(path.join(ROOT, doc));
    found[doc] = blocks.length;
    for (const block of blocks) {
      for (const { line, at } of block) {
        if (line.trim() === '' || EDITORIAL.test(line)) continue;
        const ok = TIMESTAMP.test(line) ? log.some((re) => re.test(line.replace(TIMESTAMP, ''))) : trace.some((re) => re.test(line));
        if (!ok) wrong.push(`${doc}:${at}: ${line}`);
      }
    }
  }
  // The walk-through quotes many traces, the README a few: finding none would mean this test checks nothing.
  t.true(found['docs/epoll.md'] >= 10, JSON.stringify(found));
  t.true(found['README.md'] >= 2, JSON.stringify(found));
  t.deepEqual(wrong, [], `lines that no trace.line/log call in src/ prints (regenerate them with node bin/rsp --trace):\n${wrong.join('\n')}`);
});

// ---------------------------------------------------------------- charts

/** Image links in a markdown text: ![alt](target) and <img src="target">. */
function imageLinks(text: string): string[] {
  return [
    ...[...text.matchAll(/!\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)].map((m) => m[1]),
    ...[...text.matchAll(/<img\b[^>]*\bsrc\s*=\s*["']([^"']+)["']/g)].map((m) => m[1]),
  ];
}

test('every chart a document links exists in the repo and is a well-formed SVG', (t) => {
  const docs = ['README.md', 'BENCHMARKS.md', ...fs.readdirSync(path.join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
  const linked = new Map<string, string[]>();
  for (const doc of docs) {
    const found: string[] = [];
    for (const target of imageLinks(fs.readFileSync(path.join(ROOT, doc), 'utf8'))) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) {
        t.fail(`${doc} links an image outside the repo: ${target}`);
        continue;
      }
      const file = path.resolve(ROOT, path.dirname(doc), decodeURI(target.split('#')[0]));
      if (!file.startsWith(ROOT + path.sep)) {
        t.fail(`${doc}: ${target} is outside the repo`);
        continue;
      }
      if (!fs.existsSync(file)) {
        t.fail(`${doc}: ${target} does not exist`);
        continue;
      }
      if (file.endsWith('.svg')) t.is(svgProblem(fs.readFileSync(file, 'utf8')), null, `${doc}: ${target}`);
      found.push(path.relative(ROOT, file).split(path.sep).join('/'));
    }
    linked.set(doc, found);
  }
  // So that the check above has something to check: the two documents with charts link them.
  t.deepEqual(linked.get('BENCHMARKS.md')!.filter((f) => f.startsWith('docs/charts/')).sort(),
    ['bench-bulk', 'bench-close', 'bench-cpu', 'bench-keepalive', 'bench-rss', 'bench-syscalls'].map((n) => `docs/charts/${n}.svg`));
  t.true(linked.get('docs/lab.md')!.filter((f) => /^docs\/charts\/lab-.*\.svg$/.test(f)).length >= 4, linked.get('docs/lab.md')!.join(' '));
});
