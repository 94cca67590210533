// The charts of BENCHMARKS.md and docs/lab.md (scripts/charts/): each kind,
// drawn from a small fixture, is a well-formed SVG that shows the series and
// figures it was given, with each setup in its fixed colour; the bench and
// the lab write them with their raw results; `npm run charts` redraws them.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { benchCharts, chartsDirFor, chartsSection, writeBenchCharts, type BenchResults } from '../scripts/charts/bench';
import { LAB_CHARTS, labCharts, labChartsDir, writeLabCharts, type ChartRow, type LabResults } from '../scripts/charts/lab';
import { DOCS_CHARTS, renderChart, SETUP_COLOURS, type Chart } from '../scripts/charts/svg';
import type { Row } from '../scripts/bench/state';
import { ROOT } from './helpers';
import { svgProblem, svgTexts } from './svg';

function row(setup: string, label: string, extra: Partial<Row>): Row {
  return {
    setup, label, proxy: setup !== 'direct',
    keepAliveRuns: [], closeRuns: [], keepAliveCpuRuns: [], closeCpuRuns: [], keepAliveDisturbed: [], closeDisturbed: [], notes: [],
    ...extra,
  };
}

const BENCH: BenchResults = {
  source: 'a fixture',
  date: '2026-01-02T03:04:05.000Z',
  command: 'npm run bench',
  quick: false,
  params: { rounds: 3, keepAliveS: 4, closeS: 4, loadConns: 64, bulkBytes: 200_000_000, idleConns: 5000 },
  rows: [
    row('direct', 'direct (no proxy)', { keepAlive: 70_123, close: 11_000, keepAliveRuns: [70_123, 65_000, 72_000], closeRuns: [11_000, 10_500, 11_500], bulk: 2500 }),
    row('rsp-level', 'rsp level', {
      keepAlive: 31_234, close: 5_432, keepAliveRuns: [30_000, 31_234, 35_000], closeRuns: [5_000, 5_432, 6_000],
      keepAliveCpuRuns: [27.4, 25.1, 30.2], cpu: 27.4, syscalls: 4.39, bulk: 950,
      rss: { baseline: 40_000_000, loaded: 48_000_000, conns: 5000, established: 5000 },
    }),
    row('node', 'Node net pipe', {
      keepAlive: 17_870, close: 2_627, keepAliveRuns: [17_870], closeRuns: [2_627], cpu: 54.2, syscalls: 4.27, bulk: 500,
      rss: { baseline: 44_000_000, loaded: 111_500_000, conns: 5000, established: 5000 },
    }),
    row('nginx-stream', 'nginx stream', { skipped: 'nginx not installed' }),
  ],
};

function texts(chart: Chart): { svg: string; all: string } {
  const svg = renderChart(chart);
  return { svg, all: svgTexts(svg).join('\n') };
}

function wellFormed(t: { is: (a: unknown, b: unknown, m?: string) => void }, chart: Chart, svg: string): void {
  t.is(svgProblem(svg), null, chart.file);
}

test('the bench charts: every kind, its setups and figures, the rounds\' spread, fixed colours', (t) => {
  const charts = benchCharts(BENCH);
  t.deepEqual(charts.map((c) => c.file), ['bench-keepalive.svg', 'bench-close.svg', 'bench-cpu.svg', 'bench-syscalls.svg', 'bench-bulk.svg', 'bench-rss.svg']);
  const byFile = Object.fromEntries(charts.map((c) => [c.file, texts(c)]));
  for (const c of charts) {
    wellFormed(t, c, byFile[c.file].svg);
    // A skipped setup is in no chart.
    t.false(byFile[c.file].all.includes('nginx stream'), c.file);
    // rsp level is in every chart, always in its own colour.
    t.true(byFile[c.file].all.includes('rsp level'), c.file);
    t.true(byFile[c.file].svg.includes(`"${SETUP_COLOURS['rsp-level']}"`), c.file);
  }
  const ka = byFile['bench-keepalive.svg'].all;
  t.regex(ka, /Keep-alive: requests per second/);
  t.regex(ka, /31,234 \(30,000–35,000\)/);
  t.regex(ka, /70,123 \(65,000–72,000\)/);
  // One round: no spread to show.
  t.regex(ka, /^17,870$/m);
  t.regex(byFile['bench-close.svg'].all, /5,432 \(5,000–6,000\)/);
  const cpu = byFile['bench-cpu.svg'].all;
  t.regex(cpu, /27\.4 µs \(25\.1–30\.2\)/);
  t.regex(cpu, /^54\.2 µs$/m);
  t.false(cpu.includes('direct'), 'direct has no proxy CPU');
  t.regex(byFile['bench-syscalls.svg'].all, /^4\.39$/m);
  t.regex(byFile['bench-syscalls.svg'].all, /^4\.27$/m);
  const bulk = byFile['bench-bulk.svg'].all;
  t.regex(bulk, /950 MB\/s \(0\.38× direct\)/);
  t.regex(bulk, /direct 2,500 MB\/s/);
  const rss = byFile['bench-rss.svg'].all;
  t.regex(rss, /rsp level \(\+1\.6 KB\/conn\)/);
  t.regex(rss, /Node net pipe \(\+13\.5 KB\/conn\)/);
  t.regex(rss, /idle proxied connections/);
  t.true(byFile['bench-rss.svg'].svg.includes(`"${SETUP_COLOURS.node}"`));
});

function labRow(experiment: number, label: string, mode: 'level' | 'edge', settings: ChartRow['settings'], figures: Record<string, number>, series?: ChartRow['series']): ChartRow {
  return { experiment, label, mode, settings, figures, ...(series ? { series } : {}) };
}

const LAB: LabResults = {
  date: '2026-01-02T03:04:05.000Z',
  quick: false,
  rows: [
    labRow(1, '1', 'level', {}, { megabytes: 200, mbPerSecond: 1269, syscallsPerMB: 46.3, syscalls: 9260, reads: 3059, readsEagain: 0, writes: 3078, epollWaits: 3065 }),
    labRow(1, '1', 'level', { readPolicy: 'drain' }, { megabytes: 200, mbPerSecond: 1456, syscallsPerMB: 32.2, syscalls: 6440, reads: 3057, readsEagain: 0, writes: 3073, epollWaits: 217 }),
    labRow(2, '2', 'edge', { readPolicy: 'eagain' }, { connections: 16, requestsPerSecond: 27759, syscallsPerRequest: 6.2, readsPerRequest: 4, eagainPerRequest: 2, writesPerRequest: 2, waitsPerRequest: 0.2 }),
    labRow(3, '3', 'level', { readBufferSize: 1024 }, { share1: 0.5, share2: 0.5, windowMB: 264 }),
    labRow(6, '6a', 'edge', { rdhup: true }, { readsPerConn: 2.01, eagainPerConn: 0, waitsPerConn: 0.45, eventsPerConn: 4.17, ctlPerConn: 2 }),
    labRow(6, '6b', 'edge', { epolloutPolicy: 'always' }, { idleWaitsPerSecond: 0 }),
    labRow(3, '3', 'edge', { readBufferSize: 1024, readBudget: 0 }, { share1: 0.95, share2: 0.05, windowMB: 243 }),
    labRow(10, '10', 'level', { balance: 'roundrobin' }, { requests: 600, fastA: 200, fastB: 200, slow: 200, p50: 0.8, p90: 21.2, p99: 23.6 }),
    labRow(10, '10', 'level', { balance: 'leastconn' }, { requests: 600, fastA: 285, fastB: 283, slow: 32, p50: 1.0, p90: 2.2, p99: 22.5 }),
    // A later experiment (the thundering herd) that reports wake-ups per accept.
    labRow(11, '11', 'level', { workers: 4 }, { wakeupsPerAccept: 3.25 }),
    labRow(11, '11', 'level', { workers: 4, exclusive: true }, { wakeupsPerAccept: 1 }),
    { ...labRow(12, '12', 'edge', {}, {}), failed: true },
  ],
};

test('the lab charts: one per experiment that has one, with its rows and figures', (t) => {
  const charts = labCharts(LAB);
  t.deepEqual(charts.map((c) => c.file), ['lab-1-bulk-syscalls.svg', 'lab-2-keepalive-syscalls.svg', 'lab-3-fairness.svg', 'lab-6a-rdhup.svg', 'lab-10-balance.svg', 'lab-11-wakeups-per-accept.svg']);
  const byFile = Object.fromEntries(charts.map((c) => [c.file, texts(c)]));
  for (const c of charts) wellFormed(t, c, byFile[c.file].svg);

  const bulk = byFile['lab-1-bulk-syscalls.svg'].all;
  t.regex(bulk, /^level, defaults$/m);
  t.regex(bulk, /^level, readPolicy=drain$/m);
  for (const kind of ['read', 'write', 'epoll_wait']) t.regex(bulk, new RegExp(`^${kind}$`, 'm'));
  t.regex(bulk, /46\.3 per MB · 1,269 MB\/s/);
  t.regex(bulk, /^15\.3$/m); // 3,065 epoll_wait / 200 MB, inside its segment
  const ka = byFile['lab-2-keepalive-syscalls.svg'].all;
  t.regex(ka, /^read \(EAGAIN\)$/m);
  t.regex(ka, /6\.20 per request/);
  const fair = byFile['lab-3-fairness.svg'].all;
  t.regex(fair, /^stream 1$/m);
  t.regex(fair, /^stream 2$/m);
  t.regex(fair, /^95$/m);
  t.regex(fair, /^243 MB$/m);
  const rdhup = byFile['lab-6a-rdhup.svg'].all;
  t.regex(rdhup, /^edge, rdhup=true$/m);
  t.regex(rdhup, /^epoll_ctl$/m);
  t.regex(rdhup, /^4\.17 epoll events$/m);
  t.false(rdhup.includes('epolloutPolicy'), 'only the 6a rows');
  const balance = byFile['lab-10-balance.svg'].all;
  t.regex(balance, /^slow member$/m);
  t.regex(balance, /^285$/m);
  t.regex(balance, /p50 1\.0 · p90 2\.2 · p99 22\.5 ms/);
  const herd = byFile['lab-11-wakeups-per-accept.svg'].all;
  t.regex(herd, /Wake-ups per accepted connection/);
  t.regex(herd, /^level, workers=4 exclusive=true$/m);
  t.regex(herd, /^3\.25$/m);
  t.is(LAB_CHARTS.length, 6);
});

test('the fairness chart draws shares over time when the rows carry the streams sampled', (t) => {
  const series = (a: number[], b: number[]): ChartRow['series'] => ({ t: a.map((_, i) => i / 10), stream1: a, stream2: b });
  const rows = [
    labRow(3, '3', 'level', { readBufferSize: 1024 }, { share1: 0.5, share2: 0.5, windowMB: 3 }, series([0, 1e6, 2e6], [0, 1e6, 2e6])),
    labRow(3, '3', 'edge', { readBufferSize: 1024, readBudget: 0 }, { share1: 0.1, share2: 0.9, windowMB: 3 }, series([0, 1e5, 3e5], [0, 1.9e6, 2.7e6])),
  ];
  const [chart] = labCharts({ ...LAB, rows });
  const { svg, all } = texts(chart);
  t.is(svgProblem(svg), null);
  t.regex(all, /share over time/);
  t.regex(all, /^level, readBufferSize=1024 \(50% \/ 50% overall\)$/m);
  t.regex(all, /^edge, readBufferSize=1024 readBudget=0 \(10% \/ 90% overall\)$/m);
  t.regex(all, /seconds into the measured window/);
  // A line per row: 50% then 50% for level; 5% then 20% for edge.
  t.deepEqual((chart.option.series as { data: [number, number][] }[]).map((s) => s.data), [[[0.1, 50], [0.2, 50]], [[0.1, 5], [0.2, 20]]]);
});

test('the bench writes its charts and raw results beside its report, and the report links them', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rsp-charts-'));
  try {
    const report = path.join(dir, 'bench-quick.md');
    const charts = path.join(dir, 'bench-quick-charts');
    t.is(chartsDirFor(report), charts);
    t.is(chartsDirFor(path.join(ROOT, 'BENCHMARKS.md')), DOCS_CHARTS);
    const files = writeBenchCharts(report, BENCH);
    t.deepEqual(files.map((f) => path.relative(charts, f)), ['bench-results.json', ...benchCharts(BENCH).map((c) => c.file)]);
    t.deepEqual(JSON.parse(fs.readFileSync(files[0], 'utf8')), JSON.parse(JSON.stringify(BENCH)));
    for (const f of files.slice(1)) t.is(svgProblem(fs.readFileSync(f, 'utf8')), null, f);
    const links = chartsSection(report, BENCH);
    const targets = [...links.matchAll(/!\[[^\]]+\]\(([^)]+)\)/g)].map((m) => m[1]);
    t.deepEqual(targets, files.slice(1).map((f) => `bench-quick-charts/${path.basename(f)}`));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the lab writes its charts for a full run or with --charts, never for a quick or partial run on its own', (t) => {
  t.is(labChartsDir(null, false, null), DOCS_CHARTS);
  t.is(labChartsDir(null, true, null), null);
  t.is(labChartsDir(null, false, [3]), null);
  t.is(labChartsDir('/tmp/x', true, [3]), '/tmp/x');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rsp-labcharts-'));
  try {
    const files = writeLabCharts(dir, LAB);
    t.deepEqual(files.map((f) => path.basename(f)), ['lab-results.json', ...labCharts(LAB).map((c) => c.file)]);
    for (const f of files.slice(1)) t.is(svgProblem(fs.readFileSync(f, 'utf8')), null, f);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('npm run charts redraws every chart from the raw results alone', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rsp-chartscli-'));
  try {
    fs.writeFileSync(path.join(dir, 'bench.json'), JSON.stringify(BENCH));
    fs.writeFileSync(path.join(dir, 'lab.json'), JSON.stringify(LAB));
    const out = path.join(dir, 'out');
    const cli = path.join(ROOT, 'dist', 'scripts', 'charts', 'cli.js');
    const run = spawnSync(process.execPath, [cli, '--bench', path.join(dir, 'bench.json'), '--lab', path.join(dir, 'lab.json'), '--out', out], { encoding: 'utf8', timeout: 60_000, killSignal: 'SIGKILL' });
    t.is(run.status, 0, run.stderr);
    const expected = [...benchCharts(BENCH), ...labCharts(LAB)].map((c) => c.file).sort();
    t.deepEqual(fs.readdirSync(out).sort(), expected);
    for (const f of expected) t.regex(run.stdout, new RegExp(`wrote .*${f.replace('.', '\\.')}`));
    const wrong = spawnSync(process.execPath, [cli, '--colour', 'red'], { encoding: 'utf8', timeout: 60_000, killSignal: 'SIGKILL' });
    t.is(wrong.status, 2);
    t.regex(wrong.stderr, /unknown argument --colour/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the SVG check finds what a browser would refuse', (t) => {
  const ok = '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><text x="1">a &amp; b</text><rect/></svg>';
  t.is(svgProblem(ok), null);
  t.regex(svgProblem(ok.replace('</text>', ''))!, /closes <text>/);
  t.regex(svgProblem(ok.replace('&amp;', '&'))!, /bare &/);
  t.regex(svgProblem(ok.replace(' xmlns="http://www.w3.org/2000/svg"', ''))!, /xmlns/);
  t.regex(svgProblem('<html></html>')!, /not <svg>/);
  t.regex(svgProblem(ok + '<svg/>')!, /second root/);
  t.regex(svgProblem(ok.slice(0, -6))!, /never closed/);
  t.regex(svgProblem('')!, /no <svg>/);
});

test('a chart drawn twice is the same file, whatever was drawn before it', (t) => {
  const [first] = benchCharts(BENCH);
  const once = renderChart(first);
  for (const c of labCharts(LAB)) renderChart(c);
  t.is(renderChart(first), once);
  t.notRegex(once, /zr\d/);
});

test('the committed charts are what the committed raw results draw, and BENCHMARKS.md links them as npm run bench would', (t) => {
  const bench = JSON.parse(fs.readFileSync(path.join(DOCS_CHARTS, 'bench-results.json'), 'utf8')) as BenchResults;
  const lab = JSON.parse(fs.readFileSync(path.join(DOCS_CHARTS, 'lab-results.json'), 'utf8')) as LabResults;
  const charts = [...benchCharts(bench), ...labCharts(lab)];
  t.true(charts.length >= 10);
  for (const c of charts) {
    // After changing how a chart looks: npm run build && npm run charts.
    t.is(fs.readFileSync(path.join(DOCS_CHARTS, c.file), 'utf8'), renderChart(c) + '\n', `${c.file} is stale: run npm run charts`);
  }
  const report = path.join(ROOT, 'BENCHMARKS.md');
  t.true(fs.readFileSync(report, 'utf8').includes(`## Charts\n\n${chartsSection(report, bench)}\n\n## Targets`));
});
