// The benchmark's charts, drawn from its raw results (bench-results.json):
// req/s and CPU per request with their round-to-round spread, syscalls per
// request, bulk MB/s against direct, RSS against idle connections. The bench
// writes the JSON and the charts next to its report; `npm run charts` draws
// them again from the JSON alone.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Params } from '../bench/options';
import type { Row } from '../bench/state';
import { barChart, lineChart, type Bar } from './bars';
import { DOCS_CHARTS, markdownLinks, num, ROOT, setupColour, writeCharts, type Chart } from './svg';

/** What a bench run leaves for the charts (and for anyone comparing runs). */
export interface BenchResults {
  /** Where the figures come from, in words (a run, or a transcription of a report). */
  source: string;
  date: string;
  command: string;
  quick: boolean;
  params: Pick<Params, 'rounds' | 'keepAliveS' | 'closeS' | 'loadConns' | 'bulkBytes' | 'idleConns'>;
  rows: Row[];
}

export const BENCH_RESULTS = 'bench-results.json';
const FULL_REPORT = path.join(ROOT, 'BENCHMARKS.md');

/** Where a report's charts go: docs/charts/ for BENCHMARKS.md, "<report>-charts/" beside any other report. */
export function chartsDirFor(report: string): string {
  if (path.resolve(report) === FULL_REPORT) return DOCS_CHARTS;
  return path.join(path.dirname(report), `${path.basename(report, path.extname(report))}-charts`);
}

function spreadText(values: number[], digits: number): string {
  return values.length > 1 ? ` (${num(Math.min(...values), digits)}–${num(Math.max(...values), digits)})` : '';
}

function measured(rows: Row[], value: (r: Row) => number | undefined, proxiesOnly: boolean): Row[] {
  return rows.filter((r) => !r.skipped && (!proxiesOnly || r.proxy) && Number.isFinite(value(r) ?? NaN));
}

function when(results: BenchResults): string {
  return `npm run bench, ${results.date.slice(0, 10)}${results.quick ? ' (--quick: rough figures)' : ''}`;
}

function reqPerSecond(results: BenchResults, kind: 'keepAlive' | 'close'): Chart {
  const p = results.params;
  const runs = (r: Row): number[] => (kind === 'keepAlive' ? r.keepAliveRuns : r.closeRuns);
  const bars: Bar[] = measured(results.rows, (r) => r[kind], false).map((r) => ({
    name: r.label,
    value: r[kind]!,
    min: runs(r).length > 1 ? Math.min(...runs(r)) : undefined,
    max: runs(r).length > 1 ? Math.max(...runs(r)) : undefined,
    colour: setupColour(r.setup),
    text: `${num(r[kind]!)}${spreadText(runs(r), 0)}`,
  }));
  const what = kind === 'keepAlive' ? 'Keep-alive' : 'One request per connection';
  const how = kind === 'keepAlive' ? `wrk, ${p.loadConns} keep-alive connections, ${p.keepAliveS} s` : `wrk, ${p.loadConns} connections, Connection: close, ${p.closeS} s`;
  return barChart({
    file: kind === 'keepAlive' ? 'bench-keepalive.svg' : 'bench-close.svg',
    alt: `${what}: requests per second per setup, median of the rounds with their min–max`,
    title: `${what}: requests per second (higher is better)`,
    subtitle: `${when(results)}. Bar: median of ${p.rounds} rounds (${how}); whisker and brackets: the rounds' min–max.`,
    axis: 'requests per second',
    bars,
  });
}

function cpuPerRequest(results: BenchResults): Chart {
  const bars: Bar[] = measured(results.rows, (r) => r.cpu, true).map((r) => {
    const runs = r.keepAliveCpuRuns ?? [];
    return {
      name: r.label,
      value: r.cpu!,
      min: runs.length > 1 ? Math.min(...runs) : undefined,
      max: runs.length > 1 ? Math.max(...runs) : undefined,
      colour: setupColour(r.setup),
      text: `${num(r.cpu!, 1)} µs${spreadText(runs, 1)}`,
    };
  });
  const spread = bars.some((b) => b.min !== undefined)
    ? ' Whisker and brackets: the keep-alive rounds\' min–max.'
    : ' These results hold one CPU figure per setup, so no spread is drawn.';
  return barChart({
    file: 'bench-cpu.svg',
    alt: 'The proxy\'s CPU time per request, keep-alive, per setup',
    title: 'Proxy CPU per request, keep-alive (lower is better)',
    subtitle: `${when(results)}. User + system CPU of the proxy's processes over a keep-alive run, divided by its requests; bar: the round at the median req/s.${spread}`,
    axis: 'CPU µs per request',
    bars,
  });
}

function syscallsPerRequest(results: BenchResults): Chart {
  const bars: Bar[] = measured(results.rows, (r) => r.syscalls, true).map((r) => ({
    name: r.label,
    value: r.syscalls!,
    colour: setupColour(r.setup),
    text: num(r.syscalls!, 2),
  }));
  return barChart({
    file: 'bench-syscalls.svg',
    alt: 'System calls per request, keep-alive, per setup',
    title: 'System calls per request, keep-alive (lower is better)',
    subtitle: `${when(results)}. perf stat -e raw_syscalls:sys_enter on the proxy's processes during a keep-alive run, divided by its requests. Each request crosses the proxy twice: 4 is a read and a write per crossing.`,
    axis: 'system calls per request',
    bars,
    reference: { value: 4, text: '4: one read + one write per crossing' },
  });
}

function bulk(results: BenchResults): Chart {
  const direct = results.rows.find((r) => r.setup === 'direct' && !r.skipped && r.bulk !== undefined);
  const bars: Bar[] = measured(results.rows, (r) => r.bulk, false).map((r) => ({
    name: r.label,
    value: r.bulk!,
    colour: setupColour(r.setup),
    text: `${num(r.bulk!)} MB/s${direct && r !== direct ? ` (${(r.bulk! / direct.bulk!).toFixed(2)}× direct)` : ''}`,
  }));
  return barChart({
    file: 'bench-bulk.svg',
    alt: 'Bulk download MB/s per setup, against the direct path to the backend',
    title: `Bulk download, ${num(results.params.bulkBytes / 1e6)} MB (higher is better)`,
    subtitle: `${when(results)}. curl downloading one ${num(results.params.bulkBytes / 1e6)} MB file through each setup, median of its runs; dashed line: straight from the backend (direct). MB = 10^6 bytes.`,
    axis: 'MB per second',
    bars,
    reference: direct ? { value: direct.bulk!, text: `direct ${num(direct.bulk!)} MB/s` } : undefined,
  });
}

function rss(results: BenchResults): Chart {
  const rows = results.rows.filter((r) => !r.skipped && r.proxy && r.rss !== undefined);
  return lineChart({
    file: 'bench-rss.svg',
    alt: 'Resident memory of each proxy, fresh and with idle proxied connections',
    title: 'Memory (RSS) against idle proxied connections (lower is better)',
    subtitle: `${when(results)}. RSS of a fresh proxy (0), then with ${num(results.params.idleConns)} client connections held open through it, each having sent one small request. The slope is the cost per connection, the start the baseline. MB = 10^6 bytes.`,
    xAxis: 'idle proxied connections',
    yAxis: 'RSS, MB',
    lines: rows.map((r) => ({
      name: `${r.label} (+${((r.rss!.loaded - r.rss!.baseline) / 1000 / r.rss!.conns).toFixed(1)} KB/conn)`,
      colour: setupColour(r.setup),
      points: [[0, r.rss!.baseline / 1e6], [r.rss!.conns, r.rss!.loaded / 1e6]],
    })),
  });
}

/** Every bench chart, in the order the report shows them. */
export function benchCharts(results: BenchResults): Chart[] {
  return [reqPerSecond(results, 'keepAlive'), reqPerSecond(results, 'close'), cpuPerRequest(results), syscallsPerRequest(results), bulk(results), rss(results)];
}

/** The report's "Charts" section: a line saying how they are made, and image links to the charts written beside it. */
export function chartsSection(report: string, results: BenchResults): string {
  const dir = chartsDirFor(report);
  const redraw = dir === DOCS_CHARTS ? '`npm run charts`' : `\`npm run charts -- --bench ${path.join(dir, BENCH_RESULTS)} --out ${dir}\``;
  return `The figures above, drawn by \`npm run bench\` (to draw them again from the raw figures, without a run: ${redraw}).\n\n${markdownLinks(path.dirname(report), dir, benchCharts(results))}`;
}

/** Write bench-results.json and the charts next to the report; returns the files written. */
export function writeBenchCharts(report: string, results: BenchResults): string[] {
  const dir = chartsDirFor(report);
  fs.mkdirSync(dir, { recursive: true });
  const json = path.join(dir, BENCH_RESULTS);
  fs.writeFileSync(json, JSON.stringify(results, null, 2) + '\n');
  return [json, ...writeCharts(dir, benchCharts(results))];
}

/** A run's results as the charts take them. */
export function benchResults(rows: Row[], params: Params, command: string, quick: boolean, startedAt: Date): BenchResults {
  const { rounds, keepAliveS, closeS, loadConns, bulkBytes, idleConns } = params;
  return { source: `a run of ${command}`, date: startedAt.toISOString(), command, quick, params: { rounds, keepAliveS, closeS, loadConns, bulkBytes, idleConns }, rows };
}
