// What every chart shares: ECharts' server-side SVG renderer, one look (white
// background, plain sans-serif, titles with units), and fixed colours, so that
// a setup or a kind of system call has the same colour in every chart.
// The chart files (bench.ts, lab.ts) build plain ECharts options; this file
// turns them into SVG text and writes them.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as echarts from 'echarts';

export type Option = echarts.EChartsOption;

/** One chart: the file it goes to, the alt text a document links it with, and what to draw. */
export interface Chart {
  /** File name inside the charts directory, e.g. "bench-keepalive.svg". */
  file: string;
  /** One line saying what the chart shows (the image's alt text in markdown). */
  alt: string;
  width: number;
  height: number;
  option: Option;
}

/** The checkout (this file runs as dist/scripts/charts/svg.js). */
export const ROOT = path.join(__dirname, '..', '..', '..');
/** Where the committed charts and the raw figures they are drawn from live. */
export const DOCS_CHARTS = path.join(ROOT, 'docs', 'charts');

export const FONT = 'Helvetica, Arial, sans-serif';
export const TEXT = '#222222';
export const MUTED = '#666666';

/** A colour per benchmark setup, by its name: the same in every chart. rsp is blue, its variants shades of it. */
export const SETUP_COLOURS: Record<string, string> = {
  direct: '#8c8c8c',
  'rsp-level': '#1f5fbf',
  'rsp-pool3': '#0b3a7e',
  'rsp-edge': '#6aa3ee',
  node: '#3a9a4a',
  'nginx-stream': '#e07b00',
  'nginx-http': '#f5b55c',
  'haproxy-tcp': '#8a4fb8',
  'haproxy-http': '#c9a3e6',
};

/** A colour per kind of system call (lab charts). */
export const CALL_COLOURS = {
  read: '#1f5fbf',
  'read (EAGAIN)': '#9cc2f5',
  write: '#3a9a4a',
  epoll_wait: '#e07b00',
  epoll_ctl: '#c0392b',
  other: '#b0b0b0',
} as const;

/** Two of a kind (stream 1 / stream 2, fast / slow member...). */
export const PAIR = ['#1f5fbf', '#e07b00', '#8c8c8c'] as const;

export function setupColour(name: string): string {
  return SETUP_COLOURS[name] ?? '#555555';
}

/** 12345.6 -> "12,346"; small figures keep the decimals they need. */
export function num(x: number, digits = 0): string {
  return x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** The title block every chart uses: a title with the unit, a smaller line saying where the figures come from. */
export function title(text: string, subtext: string): Option['title'] {
  return {
    text,
    subtext,
    left: 12,
    top: 8,
    textStyle: { fontFamily: FONT, fontSize: 16, fontWeight: 'bold', color: TEXT },
    subtextStyle: { fontFamily: FONT, fontSize: 12, color: MUTED, width: 760, overflow: 'break' },
  };
}

export const AXIS_LABEL = { fontFamily: FONT, fontSize: 12, color: TEXT };
export const AXIS_NAME = { fontFamily: FONT, fontSize: 12, color: MUTED };

/** Render one chart to SVG text (no animation, white background: readable in dark-mode viewers too). */
export function renderChart(chart: Chart): string {
  const instance = echarts.init(null, null, { renderer: 'svg', ssr: true, width: chart.width, height: chart.height });
  try {
    instance.setOption({ animation: false, backgroundColor: '#ffffff', textStyle: { fontFamily: FONT }, ...chart.option });
    return stableIds(instance.renderToSVGString());
  } finally {
    // Without it a timer of the chart keeps the process alive.
    instance.dispose();
  }
}

/**
 * ECharts numbers its class names and clip-path ids by how many charts the
 * process drew before ("zr9-cls-67"): renumbered from 0 per file, so that a
 * chart redrawn from the same figures is the same file, whatever else ran.
 */
function stableIds(svg: string): string {
  const ids = new Map<string, string>();
  const counts = new Map<string, number>();
  return svg.replace(/\bzr\d+-(cls-|c)\d+\b/g, (id, kind: string) => {
    let mine = ids.get(id);
    if (mine === undefined) {
      const n = counts.get(kind) ?? 0;
      counts.set(kind, n + 1);
      mine = `zr-${kind}${n}`;
      ids.set(id, mine);
    }
    return mine;
  });
}

/** Render the charts into `dir` (created if needed); returns the files written. */
export function writeCharts(dir: string, charts: Chart[]): string[] {
  fs.mkdirSync(dir, { recursive: true });
  return charts.map((chart) => {
    const file = path.join(dir, chart.file);
    fs.writeFileSync(file, renderChart(chart) + '\n');
    return file;
  });
}

/** Markdown image links for `charts`, as seen from a document in `docDir`. */
export function markdownLinks(docDir: string, chartsDir: string, charts: Chart[]): string {
  const rel = path.relative(docDir, chartsDir).split(path.sep).join('/');
  return charts.map((c) => `![${c.alt}](${rel === '' ? '' : rel + '/'}${c.file})`).join('\n\n');
}
