// What an experiment is to the lab: a list of rows to run (each a mode and
// settings known in advance, and a function that measures it), and a way to
// explain a measured row in plain words. Each experiment is one file in
// experiments/ that exports one `Experiment`; index.ts lists them.
import type { LabParams, Mode } from './params';
import { emptyCounters, type RspCounters, type RspSettings } from './rsp';

export interface LabRow {
  /** Experiment number (what --only selects). */
  experiment: number;
  /** "1", "3", "6a"...: the experiment as the table shows it. */
  label: string;
  title: string;
  mode: Mode;
  /** The config options this row sets besides triggerMode (the rest are defaults). */
  settings: RspSettings;
  /** The raw figures, by name. */
  figures: Record<string, number>;
  /** Short, for the table. */
  result: string;
  /** One paragraph: what the figures show and why, in terms of what epoll does. */
  explanation: string;
  /** rsp's counters for the measured part (see each experiment); zeros where rsp is not involved. */
  counters: RspCounters;
  /** Set when the row could not be measured (result and explanation say why). */
  failed?: boolean;
  /** Lines of rsp's trace (or of the experiment's own) that the explanation quotes. */
  trace?: string[];
  /** What the row measures when it is not rsp (a raw epoll set): the settings column says this instead. */
  subject?: string;
  /** Figures sampled over time, for a chart (equal-length arrays by name, e.g. t, stream1, stream2). */
  series?: Record<string, number[]>;
}

/** One row to run: its mode and settings are known before it runs (for a row that fails). */
export interface RowPlan {
  label: string;
  mode: Mode;
  settings: RspSettings;
  run(): Promise<LabRow>;
}

export interface Experiment {
  n: number;
  title: string;
  rows(p: LabParams): RowPlan[];
  /**
   * The paragraph for `row`, for a reader who knows TypeScript but not
   * epoll: what the figures show and why, in terms of what epoll does.
   * `rows` are the other rows of the same experiment that ran (may be
   * empty), for comparisons.
   */
  explain(row: LabRow, rows: LabRow[]): string;
}

export function plan(label: string, mode: Mode, settings: RspSettings, run: () => Promise<LabRow>): RowPlan {
  return { label, mode, settings, run };
}

/** The row with its explanation written from its own figures (runLab rewrites it once the siblings are in). */
export function explained(explain: Experiment['explain'], row: LabRow): LabRow {
  row.explanation = explain(row, []);
  return row;
}

/** Another row of the same table label that matches. */
export function sibling(row: LabRow, rows: LabRow[], match: (r: LabRow) => boolean): LabRow | undefined {
  return rows.find((r) => r !== row && r.label === row.label && match(r));
}

/** The row that stands for one that threw. */
export function failedRow(e: Experiment, plan: RowPlan, error: unknown): LabRow {
  const message = (error instanceof Error ? error.message : String(error)).split('\n')[0];
  return {
    experiment: e.n, label: plan.label, title: e.title, mode: plan.mode, settings: plan.settings, figures: {}, failed: true,
    result: `FAILED: ${message}`,
    explanation: `This row could not be measured: ${message}`,
    counters: emptyCounters(),
  };
}

export function ctl(c: RspCounters): number {
  return c.ctlAdd + c.ctlMod + c.ctlDel;
}
