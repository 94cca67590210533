// The benchmark script runs end to end (a reduced set that still fills every
// column) and writes a well-formed report. No figure's size is checked: only
// the shape of the table and the sections around it, and that rsp's own row
// has a figure in every column this machine's tools can measure (a cell may
// say n/a only where the report says a tool for it is missing; a failed
// measurement of rsp fails the test).
import test from 'ava';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseOptions } from '../scripts/bench/options';

const ROOT = path.join(__dirname, '..', '..');
const BENCH = path.join(ROOT, 'dist', 'scripts', 'bench', 'index.js');

/** The markdown table whose header row starts with `| <first> |`: header, separator, rows. */
function findTable(text: string, first: string): string[][] | null {
  const lines = text.split('\n');
  const start = lines.findIndex((l) => l.startsWith(`| ${first} |`));
  if (start < 0) return null;
  const rows: string[][] = [];
  for (let i = start; i < lines.length && lines[i].startsWith('|'); i++) {
    rows.push(lines[i].trim().slice(1, -1).split('|').map((c) => c.trim()));
  }
  return rows;
}

test('bench --quick --only rsp-level,node writes a well-formed report and keeps the notes', async (t) => {
  t.timeout(180000);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rsp-bench-test-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const out = path.join(dir, 'BENCH.md');
  fs.writeFileSync(out, '# old report\n\nold figures\n\n<!-- notes -->\n## Hand-written notes\n\nkeep me\n');

  // The benchmark runs its children in process groups of its own and kills
  // them when it gets SIGTERM; SIGKILL only if it does not go.
  const proc = spawn(process.execPath, [BENCH, '--quick', '--only', 'rsp-level,node', '--out', out], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  proc.stdout.on('data', (c: Buffer) => (output += c.toString()));
  proc.stderr.on('data', (c: Buffer) => (output += c.toString()));
  // 'close', not 'exit': the exit can come before the last of its output is read.
  const code = await new Promise<number | null>((resolve) => {
    proc.on('close', (c) => resolve(c));
    t.teardown(async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await new Promise((r) => proc.once('exit', r));
      clearTimeout(timer);
    });
  });
  t.is(code, 0, output);

  const text = fs.readFileSync(out, 'utf8');
  const table = findTable(text, 'Setup');
  t.truthy(table, text);
  const [header, separator, ...rows] = table!;
  t.true(header.length >= 9, `header: ${header.join(' | ')}`);
  t.true(separator.every((c) => /^:?-{3,}:?$/.test(c)), `separator: ${separator.join(' | ')}`);
  t.is(separator.length, header.length);
  t.deepEqual(rows.map((r) => r[0]), ['rsp level', 'Node net pipe']);
  for (const row of rows) {
    t.is(row.length, header.length, `row: ${row.join(' | ')}`);
    t.true(row.every((c) => c !== ''), `empty cell in: ${row.join(' | ')}`);
  }
  // rsp's figures: n/a only for a column whose tool the report says is missing.
  const notMeasured = (what: string): boolean => text.includes(`${what}: not measured`);
  const excused: Record<string, boolean> = {
    'Keep-alive req/s': notMeasured('Keep-alive req/s'),
    'CPU µs/req': notMeasured('Keep-alive req/s'),
    '1 req/conn req/s': notMeasured('1 req/conn req/s'),
    'Syscalls/req': notMeasured('Syscalls/req'),
  };
  for (const [i, title] of header.entries()) {
    if (i === 0) continue;
    if (excused[title]) t.log(`${title}: not measurable here (${rows[0][i]})`);
    else t.not(rows[0][i], 'n/a', `rsp level has no ${title} figure:\n${output}`);
  }
  // The rsp row carries a ratio to the Node proxy wherever both have a figure.
  for (const [i, c] of rows[0].entries()) if (i > 0 && c !== 'n/a' && rows[1][i] !== 'n/a') t.regex(c, /× node/, header[i]);

  const targets = findTable(text, 'Target');
  t.truthy(targets, 'no Targets table');
  t.is(targets![0].length, 2); // Target | rsp level
  for (const row of targets!.slice(2)) t.regex(row[1], /PASS|MISS|n\/a/);
  // Measured against the Node proxy (which ran): a verdict, not n/a.
  const vsNode = targets!.filter((r) => r[0].includes('Node net proxy') && !excused[r[0].startsWith('1 req') ? '1 req/conn req/s' : 'Keep-alive req/s']);
  for (const row of vsNode) t.regex(row[1], /PASS|MISS/, row[0]);

  t.regex(text, /^## Machine$/m);
  t.regex(text, /^- CPU: .+, \d+ cores$/m);
  t.regex(text, /^- Kernel: /m);
  t.regex(text, /^- Node: v\d+/m);
  t.regex(text, /^- Command: `.*--quick.*`$/m);
  t.regex(text, /^- Date: \d{4}-/m);
  t.regex(text, /Quick run/);
  t.true(text.includes('<!-- notes -->\n## Hand-written notes\n\nkeep me\n'), 'notes below the marker were not kept');
  t.false(text.includes('old figures'));
});

test('a quick run writes outside the checkout unless --out says where; a full run writes BENCHMARKS.md', (t) => {
  const quick = parseOptions(['--quick']);
  t.is(path.dirname(quick.out), os.tmpdir());
  t.not(quick.out, path.join(ROOT, 'BENCHMARKS.md'));
  t.is(parseOptions([]).out, path.join(ROOT, 'BENCHMARKS.md'));
  t.is(parseOptions(['--quick', '--out', 'BENCHMARKS.md']).out, path.resolve('BENCHMARKS.md'));
  t.deepEqual(parseOptions(['--only', 'node,rsp-level']).only, ['rsp-level', 'node']);
});
