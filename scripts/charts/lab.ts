// The lab's charts, one per experiment where a picture says it faster than the
// table, drawn from the lab's raw results (lab-results.json, the same shape as
// `npm run lab -- --json`). Adding one: a small function from the experiment's
// rows to a Chart, and a line in LAB_CHARTS.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { LabRow } from '../lab/experiment';
import { barChart, lineChart, stackedChart } from './bars';
import { CALL_COLOURS, DOCS_CHARTS, num, PAIR, writeCharts, type Chart } from './svg';

/** What a chart needs of a lab row (a transcribed row has no counters or explanation). */
export type ChartRow = Pick<LabRow, 'experiment' | 'label' | 'mode' | 'settings' | 'figures'> & Partial<Pick<LabRow, 'title' | 'subject' | 'failed' | 'series'>>;

export interface LabResults {
  /** Where the figures come from, when not from one plain run. */
  source?: string;
  date: string;
  quick: boolean;
  /** Experiments that come from another run than the rest (by experiment number): its date and preset. */
  runs?: Record<string, { date: string; quick: boolean }>;
  rows: ChartRow[];
}

export const LAB_RESULTS = 'lab-results.json';

export interface LabChart {
  /** The rows it draws (usually one experiment's); none: no chart. */
  rows(all: ChartRow[]): ChartRow[];
  draw(rows: ChartRow[], results: LabResults): Chart;
}

/** "level, readPolicy=drain": a row as a category label. */
export function rowName(r: ChartRow): string {
  const settings = Object.entries(r.settings).map(([k, v]) => `${k}=${String(v)}`).join(' ');
  return `${r.mode}, ${settings === '' ? 'defaults' : settings}`;
}

function when(results: LabResults, rows: ChartRow[]): string {
  const run = results.runs?.[String(rows[0].experiment)] ?? results;
  return `npm run lab${run.quick ? ' -- --quick' : ''}, ${run.date.slice(0, 10)}, experiment ${rows[0].label}`;
}

/** Parts of a total (e.g. system calls by kind); "other" is what the named parts leave. */
function parts(total: number, named: Record<string, number>): Record<string, number> {
  const sum = Object.values(named).reduce((s, v) => s + v, 0);
  return { ...named, other: Math.max(0, total - sum) };
}

function callStack(rows: ChartRow[], split: (r: ChartRow) => Record<string, number>): { name: string; colour: string; values: number[] }[] {
  const splits = rows.map((r) => split(r));
  const kinds = Object.keys(CALL_COLOURS).filter((k) => splits.some((s) => (s[k] ?? 0) > 0));
  return kinds.map((k) => ({ name: k, colour: CALL_COLOURS[k as keyof typeof CALL_COLOURS], values: splits.map((s) => s[k] ?? 0) }));
}

/** 1: system calls per MB by trigger mode and read policy, split by call. */
function bulkSyscalls(rows: ChartRow[], results: LabResults): Chart {
  const split = (r: ChartRow): Record<string, number> => {
    const f = r.figures;
    const perMB = (x: number): number => x / f.megabytes;
    return parts(f.syscallsPerMB, {
      read: perMB(f.reads - (f.readsEagain ?? 0)),
      'read (EAGAIN)': perMB(f.readsEagain ?? 0),
      write: perMB(f.writes),
      epoll_wait: perMB(f.epollWaits),
    });
  };
  return stackedChart({
    file: 'lab-1-bulk-syscalls.svg',
    alt: 'Experiment 1: system calls per MB of a bulk transfer, by trigger mode and read policy',
    title: 'Bulk transfer: system calls per MB, by trigger mode and read policy',
    subtitle: `${when(results, rows)}: ${num(rows[0].figures.megabytes)} MB through rsp on one connection. Reads and writes are the same in every row; what changes is epoll_wait calls, i.e. how many reads rsp makes per report.`,
    axis: 'system calls per MB (lower is better)',
    categories: rows.map(rowName),
    parts: callStack(rows, split),
    totals: rows.map((r) => `${num(r.figures.syscallsPerMB, 1)} per MB · ${num(r.figures.mbPerSecond)} MB/s`),
    insideFrom: 5,
  });
}

/** 2: system calls per keep-alive request, split by call. */
function keepAliveSyscalls(rows: ChartRow[], results: LabResults): Chart {
  const split = (r: ChartRow): Record<string, number> => {
    const f = r.figures;
    return parts(f.syscallsPerRequest, {
      read: f.readsPerRequest - (f.eagainPerRequest ?? 0),
      'read (EAGAIN)': f.eagainPerRequest ?? 0,
      write: f.writesPerRequest,
      epoll_wait: f.waitsPerRequest,
    });
  };
  return stackedChart({
    file: 'lab-2-keepalive-syscalls.svg',
    alt: 'Experiment 2: system calls per keep-alive request, by trigger mode and read policy',
    title: 'Keep-alive requests: system calls per request',
    subtitle: `${when(results, rows)}: 100-byte requests and answers over ${rows[0].figures.connections ?? 16} connections. A request crosses rsp twice, a read and a write each; reading on to EAGAIN adds a read that finds nothing.`,
    axis: 'system calls per request (lower is better)',
    categories: rows.map(rowName),
    parts: callStack(rows, split),
    totals: rows.map((r) => `${num(r.figures.syscallsPerRequest, 2)} per request`),
    insideFrom: 0.9,
    digits: 2,
  });
}

/** 3: the two streams' shares: over time when the row has a time series, else for the whole window. */
function fairnessShares(rows: ChartRow[], results: LabResults): Chart {
  const timed = rows.filter((r) => (r.series?.t?.length ?? 0) > 1);
  if (timed.length === rows.length) {
    return lineChart({
      file: 'lab-3-fairness.svg',
      alt: 'Experiment 3: stream 1\'s share of each interval over time, two bulk streams through one rsp',
      title: 'Two competing bulk streams: stream 1\'s share over time',
      subtitle: `${when(results, rows)}: two downloads through one rsp reading 1 KB at a time. 50% is fair; 100% or 0% is one stream holding rsp while the other waits.`,
      xAxis: 'seconds into the measured window',
      yAxis: 'stream 1\'s share of the interval, %',
      yMax: 100,
      lines: timed.map((r, i) => {
        const s = r.series!;
        const points: [number, number][] = [];
        for (let k = 1; k < s.t.length; k++) {
          const a = s.stream1[k] - s.stream1[k - 1];
          const b = s.stream2[k] - s.stream2[k - 1];
          if (a + b > 0) points.push([Number(s.t[k].toFixed(2)), Number(((100 * a) / (a + b)).toFixed(1))]);
        }
        return { name: `${rowName(r)} (${Math.round(r.figures.share1 * 100)}% / ${Math.round(r.figures.share2 * 100)}% overall)`, colour: [PAIR[0], '#6aa3ee', PAIR[1]][i % 3], points, dashed: i === 1 };
      }),
    });
  }
  return stackedChart({
    file: 'lab-3-fairness.svg',
    alt: 'Experiment 3: the two streams\' shares of what rsp moved, two bulk streams through one rsp',
    title: 'Two competing bulk streams: each stream\'s share',
    subtitle: `${when(results, rows)}: two downloads through one rsp reading 1 KB at a time, shares over a window after both flow. Level mode takes turns by itself; edge mode needs the read budget.`,
    axis: 'share of the bytes rsp moved in the window, %',
    categories: rows.map(rowName),
    parts: [
      { name: 'stream 1', colour: PAIR[0], values: rows.map((r) => 100 * r.figures.share1) },
      { name: 'stream 2', colour: PAIR[1], values: rows.map((r) => 100 * r.figures.share2) },
    ],
    totals: rows.map((r) => `${num(r.figures.windowMB)} MB`),
    max: 100,
    insideFrom: 3,
    digits: 0,
    labelWidth: 290,
  });
}

/** 6a: what a short connection costs rsp in reads, epoll_wait and epoll_ctl, with and without EPOLLRDHUP. */
function rdhupCalls(rows: ChartRow[], results: LabResults): Chart {
  const split = (r: ChartRow): Record<string, number> => {
    const f = r.figures;
    return {
      read: f.readsPerConn - (f.eagainPerConn ?? 0),
      'read (EAGAIN)': f.eagainPerConn ?? 0,
      epoll_wait: f.waitsPerConn,
      epoll_ctl: f.ctlPerConn,
    };
  };
  return stackedChart({
    file: 'lab-6a-rdhup.svg',
    alt: 'Experiment 6a: reads, epoll_wait and epoll_ctl calls per short connection, with and without EPOLLRDHUP',
    title: 'Short connections: epoll and read calls per connection',
    subtitle: `${when(results, rows)}: request, half-close, answer, close, 16 connections at a time. EPOLLRDHUP saves the read() that returns 0; edge mode registers once and never modifies. Accept, connect, write, shutdown and close are left out (the same in every row).`,
    axis: 'calls per connection (lower is better)',
    categories: rows.map(rowName),
    parts: callStack(rows, split),
    totals: rows.map((r) => `${num(r.figures.eventsPerConn, 2)} epoll events`),
    insideFrom: 0.9,
    digits: 2,
    labelWidth: 280,
  });
}

/** 10: where the requests went with one slow member, and what that did to the tail. */
function balanceShares(rows: ChartRow[], results: LabResults): Chart {
  return stackedChart({
    file: 'lab-10-balance.svg',
    alt: 'Experiment 10: requests per pool member, round-robin against least connections, one member slow',
    title: 'A pool of three, one member 20 ms slow: requests per member',
    subtitle: `${when(results, rows)}: ${num(rows[0].figures.requests)} one-request connections, 16 at a time; after each bar, the request latency percentiles.`,
    axis: 'requests',
    categories: rows.map((r) => `balance = "${String(r.settings.balance)}"`),
    parts: [
      { name: 'fast member A', colour: PAIR[0], values: rows.map((r) => r.figures.fastA) },
      { name: 'fast member B', colour: '#6aa3ee', values: rows.map((r) => r.figures.fastB) },
      { name: 'slow member', colour: PAIR[1], values: rows.map((r) => r.figures.slow) },
    ],
    totals: rows.map((r) => `p50 ${num(r.figures.p50, 1)} · p90 ${num(r.figures.p90, 1)} · p99 ${num(r.figures.p99, 1)} ms`),
    insideFrom: 20,
    digits: 0,
    labelWidth: 200,
  });
}

/** Any experiment whose rows report `wakeupsPerAccept` (the thundering herd): one bar per row. */
function wakeupsPerAccept(rows: ChartRow[], results: LabResults): Chart {
  return barChart({
    file: `lab-${rows[0].label}-wakeups-per-accept.svg`,
    alt: `Experiment ${rows[0].label}: wake-ups per accepted connection`,
    title: 'Wake-ups per accepted connection (lower is better)',
    subtitle: `${when(results, rows)}. 1.0: only the thread that accepts is woken; more: threads woken for a connection another one took.`,
    axis: 'wake-ups per accepted connection',
    bars: rows.map((r) => ({ name: rowName(r), value: r.figures.wakeupsPerAccept, colour: r.mode === 'edge' ? PAIR[1] : PAIR[0], text: num(r.figures.wakeupsPerAccept, 2) })),
    reference: { value: 1, text: '1 per accept' },
    labelWidth: 290,
  });
}

function experiment(n: number): LabChart['rows'] {
  return (all) => all.filter((r) => r.experiment === n);
}

/** One entry per chart: which rows, and how to draw them. */
export const LAB_CHARTS: readonly LabChart[] = [
  { rows: experiment(1), draw: bulkSyscalls },
  { rows: experiment(2), draw: keepAliveSyscalls },
  { rows: experiment(3), draw: fairnessShares },
  { rows: (all) => all.filter((r) => r.label === '6a'), draw: rdhupCalls },
  { rows: experiment(10), draw: balanceShares },
  { rows: (all) => all.filter((r) => r.figures.wakeupsPerAccept !== undefined), draw: wakeupsPerAccept },
];

/** The charts for the rows that ran (failed rows left out). */
export function labCharts(results: LabResults): Chart[] {
  const measured = results.rows.filter((r) => !r.failed);
  return LAB_CHARTS.flatMap((c) => {
    const rows = c.rows(measured);
    return rows.length > 0 ? [c.draw(rows, results)] : [];
  });
}

/**
 * Where `npm run lab` writes its charts: DIR with `--charts DIR`; docs/charts
 * for a full run of every experiment (the run docs/lab.md quotes); nowhere
 * otherwise, so that a quick or partial run leaves the committed ones alone.
 */
export function labChartsDir(option: string | null, quick: boolean, only: number[] | null): string | null {
  if (option !== null) return option;
  return !quick && only === null ? DOCS_CHARTS : null;
}

/** Write lab-results.json and the charts into `dir`; returns the files written. */
export function writeLabCharts(dir: string, results: LabResults): string[] {
  fs.mkdirSync(dir, { recursive: true });
  const json = path.join(dir, LAB_RESULTS);
  fs.writeFileSync(json, JSON.stringify(results, null, 2) + '\n');
  return [json, ...writeCharts(dir, labCharts(results))];
}
