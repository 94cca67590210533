// The chart kinds the bench and the lab draw: horizontal bars with an optional
// min–max whisker and reference line, stacked horizontal bars, and lines.
// Horizontal, so that setup names and settings stay readable at any length.
import { AXIS_LABEL, AXIS_NAME, FONT, MUTED, TEXT, title, type Chart, type Option } from './svg';

export interface Bar {
  /** The category label (a setup, a lab row). */
  name: string;
  value: number;
  /** Round-to-round spread: drawn as a whisker from min to max. */
  min?: number;
  max?: number;
  colour: string;
  /** The text printed after the bar (after the whisker). */
  text: string;
}

export interface BarChartSpec {
  file: string;
  alt: string;
  title: string;
  subtitle: string;
  /** The value axis' name, with its unit. */
  axis: string;
  bars: Bar[];
  /** A dashed vertical line, e.g. the direct path's figure. */
  reference?: { value: number; text: string };
  /** Left margin for the category labels (px). */
  labelWidth?: number;
}

const WIDTH = 860;
const ROW = 34;

function height(rows: number, subtitleLines: number): number {
  return 48 + subtitleLines * 16 + 12 + rows * ROW + 50;
}

/** Roughly how many lines the subtitle wraps to at this width. */
function lines(text: string): number {
  return Math.max(1, Math.ceil(text.length / 120));
}

/** Where the plot (or the legend above it) can start: below the title and the subtitle's lines. */
function top(subtitle: string): number {
  return 48 + lines(subtitle) * 16;
}

/** Horizontal bars, one per category, in the order given (top to bottom); a whisker where min/max are given. */
/** Horizontal bars: the value axis along the bottom (up to `max`), the names down the left in `labelWidth` pixels. */
function barAxes(axis: string, max: number | ((v: { max: number }) => number), names: string[], labelWidth: number): Pick<Option, 'xAxis' | 'yAxis'> {
  return {
    xAxis: {
      type: 'value',
      name: axis,
      nameLocation: 'middle',
      nameGap: 28,
      nameTextStyle: AXIS_NAME,
      axisLabel: AXIS_LABEL,
      max,
      splitLine: { lineStyle: { color: '#e6e6e6' } },
    },
    yAxis: { type: 'category', data: names, inverse: true, axisLabel: { ...AXIS_LABEL, width: labelWidth - 14, overflow: 'truncate' }, axisTick: { show: false } },
  };
}

export function barChart(spec: BarChartSpec): Chart {
  const names = spec.bars.map((b) => b.name);
  const ends = spec.bars.map((b) => Math.max(b.value, b.max ?? b.value));
  const limit = Math.max(...ends, spec.reference?.value ?? 0);
  const option: Option = {
    title: title(spec.title, spec.subtitle),
    grid: { left: spec.labelWidth ?? 170, right: 40, top: top(spec.subtitle) + (spec.reference ? 28 : 12), bottom: 46 },
    // Room after the longest bar for its text.
    ...barAxes(spec.axis, (v: { max: number }) => niceCeil(Math.max(v.max, limit) * 1.3), names, spec.labelWidth ?? 170),
    series: [
      {
        type: 'bar',
        name: spec.title,
        barWidth: 18,
        data: spec.bars.map((b) => ({ value: b.value, itemStyle: { color: b.colour } })),
        markLine: spec.reference
          ? {
              symbol: 'none',
              silent: true,
              lineStyle: { type: 'dashed', color: MUTED, width: 1.5 },
              label: { formatter: spec.reference.text, position: 'start', fontFamily: FONT, color: MUTED, fontSize: 12 },
              data: [{ xAxis: spec.reference.value }],
            }
          : undefined, // 'start': the top, since the category axis runs downwards
      },
      {
        type: 'custom',
        name: 'spread and figures',
        data: spec.bars.map((b, i) => [i, b.value, b.min ?? b.value, b.max ?? b.value]),
        renderItem: (_params: unknown, api: any) => {
          const i = api.value(0) as number;
          const b = spec.bars[i];
          const lo = api.coord([api.value(2), i]) as number[];
          const hi = api.coord([api.value(3), i]) as number[];
          const children: any[] = [];
          if (b.min !== undefined && b.max !== undefined && b.max > b.min) {
            const stroke = { stroke: TEXT, lineWidth: 1.5 };
            children.push(
              { type: 'line', shape: { x1: lo[0], y1: lo[1], x2: hi[0], y2: hi[1] }, style: stroke },
              { type: 'line', shape: { x1: lo[0], y1: lo[1] - 6, x2: lo[0], y2: lo[1] + 6 }, style: stroke },
              { type: 'line', shape: { x1: hi[0], y1: hi[1] - 6, x2: hi[0], y2: hi[1] + 6 }, style: stroke },
            );
          }
          children.push({
            type: 'text',
            style: { text: b.text, x: hi[0] + 8, y: hi[1], verticalAlign: 'middle', fill: TEXT, fontSize: 12, fontFamily: FONT },
          });
          return { type: 'group', children };
        },
        z: 5,
      },
    ],
  };
  return { file: spec.file, alt: spec.alt, width: WIDTH, height: height(spec.bars.length, lines(spec.subtitle)) + (spec.reference ? 16 : 0), option };
}

export interface StackedSpec {
  file: string;
  alt: string;
  title: string;
  subtitle: string;
  axis: string;
  /** Category labels, top to bottom. */
  categories: string[];
  /** One series per part (e.g. per kind of system call), its value for each category. */
  parts: { name: string; colour: string; values: number[] }[];
  /** The text after each bar (its total, usually). */
  totals: string[];
  labelWidth?: number;
  /** Fixed axis maximum (e.g. 100 for shares in %). */
  max?: number;
  /** Print each part's value inside its segment when it is at least this (0: never). */
  insideFrom?: number;
  digits?: number;
}

/** Horizontal stacked bars: what each total is made of, with a legend for the parts. */
export function stackedChart(spec: StackedSpec): Chart {
  const totals = spec.categories.map((_, i) => spec.parts.reduce((s, p) => s + p.values[i], 0));
  const digits = spec.digits ?? 1;
  const option: Option = {
    title: title(spec.title, spec.subtitle),
    legend: { top: top(spec.subtitle), left: 12, textStyle: AXIS_LABEL, data: spec.parts.map((p) => p.name) },
    grid: { left: spec.labelWidth ?? 230, right: 40, top: top(spec.subtitle) + 40, bottom: 46 },
    ...barAxes(spec.axis, spec.max ?? ((v: { max: number }) => niceCeil(v.max * 1.25)), spec.categories, spec.labelWidth ?? 230),
    series: [
      ...spec.parts.map((p) => ({
        type: 'bar' as const,
        name: p.name,
        stack: 'total',
        barWidth: 20,
        itemStyle: { color: p.colour },
        label: {
          show: (spec.insideFrom ?? 0) > 0,
          position: 'inside' as const,
          color: '#ffffff',
          fontSize: 11,
          fontFamily: FONT,
          formatter: (x: { value: unknown }) => (Number(x.value) >= (spec.insideFrom ?? Infinity) ? (Number(x.value)).toFixed(digits) : ''),
        },
        data: p.values,
      })),
      {
        // The totals, after each bar.
        type: 'custom' as const,
        name: 'totals',
        data: totals.map((t, i) => [i, t]),
        renderItem: (_params: unknown, api: any) => {
          const i = api.value(0) as number;
          const at = api.coord([api.value(1), i]) as number[];
          return { type: 'text', style: { text: spec.totals[i], x: at[0] + 8, y: at[1], verticalAlign: 'middle', fill: TEXT, fontSize: 12, fontFamily: FONT } };
        },
        z: 5,
      },
    ],
  };
  return { file: spec.file, alt: spec.alt, width: WIDTH, height: height(spec.categories.length, lines(spec.subtitle)) + 40, option };
}

export interface LineSpec {
  file: string;
  alt: string;
  title: string;
  subtitle: string;
  xAxis: string;
  yAxis: string;
  lines: { name: string; colour: string; points: [number, number][]; dashed?: boolean }[];
  yMin?: number;
  yMax?: number;
}

/** Lines on two value axes, with a legend. */
export function lineChart(spec: LineSpec): Chart {
  const legendRows = legendLines(spec.lines.map((l) => l.name));
  const option: Option = {
    title: title(spec.title, spec.subtitle),
    legend: { top: top(spec.subtitle), left: 12, right: 12, textStyle: AXIS_LABEL, data: spec.lines.map((l) => l.name) },
    grid: { left: 70, right: 40, top: top(spec.subtitle) + legendRows * 24 + 20, bottom: 52 },
    xAxis: { type: 'value', name: spec.xAxis, nameLocation: 'middle', nameGap: 30, nameTextStyle: AXIS_NAME, axisLabel: AXIS_LABEL, splitLine: { lineStyle: { color: '#e6e6e6' } } },
    yAxis: { type: 'value', name: spec.yAxis, nameLocation: 'middle', nameGap: 48, nameTextStyle: AXIS_NAME, axisLabel: AXIS_LABEL, min: spec.yMin ?? 0, max: spec.yMax, splitLine: { lineStyle: { color: '#e6e6e6' } } },
    series: spec.lines.map((l) => ({
      type: 'line' as const,
      name: l.name,
      data: l.points,
      showSymbol: l.points.length <= 12,
      symbolSize: 7,
      lineStyle: { color: l.colour, width: 2.5, type: l.dashed ? ('dashed' as const) : ('solid' as const) },
      itemStyle: { color: l.colour },
    })),
  };
  return { file: spec.file, alt: spec.alt, width: WIDTH, height: 400 + legendRows * 24 + lines(spec.subtitle) * 16, option };
}

/** How many lines the legend wraps to: about 5.8 px a character at 12 px, plus the symbol and the gap. */
function legendLines(names: string[]): number {
  let rows = 1;
  let x = 0;
  for (const name of names) {
    const w = name.length * 5.8 + 42;
    if (x > 0 && x + w > 820) {
      rows++;
      x = 0;
    }
    x += w;
  }
  return rows;
}

/** 1, 2, 2.5, 5 times a power of ten, at or above x. */
export function niceCeil(x: number): number {
  if (!(x > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(x)));
  for (const m of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * p >= x) return m * p;
  return 10 * p;
}
