// The epoll lab: a fixed set of experiments that show what level- and
// edge-triggered epoll do, measured on rsp itself.
//
//   npm run lab                      # everything
//   npm run lab -- --quick           # shorter runs
//   npm run lab -- --only 4,5        # selected experiments
//   npm run lab -- --json out.json   # also write the raw results
//
// The system under test is the real rsp CLI (bin/rsp), started as a child
// process with a Lua config written for each row (rsp.ts). Its own counters
// give the system-call and wake-up figures. The client and the backend are
// played by this process on the project's own reactor (peer.ts). A few
// experiments look at epoll itself, on a raw epoll set, with no rsp.
//
// One file per experiment in experiments/: its setup, its measurement and
// its explanation side by side. Adding an experiment = one file + one line
// in EXPERIMENTS below.
import { failedRow, type Experiment, type LabRow } from './experiment';
import type { LabParams } from './params';
import { n1, settingsText } from './table';
import { experiment as bulk } from './experiments/bulk';
import { experiment as keepAlive } from './experiments/keepalive';
import { experiment as fairness } from './experiments/fairness';
import { experiment as acceptOnce } from './experiments/accept-once';
import { experiment as readOnce } from './experiments/read-once';
import { experiment as wakeups } from './experiments/wakeups';
import { experiment as urgent } from './experiments/urgent';
import { experiment as dupTrap } from './experiments/dup-trap';
import { experiment as oneshot } from './experiments/oneshot';
import { experiment as balance } from './experiments/balance';
import { experiment as herd } from './experiments/herd';
import { experiment as zeroCopy } from './experiments/zero-copy';

/** In the order they run and appear in the table. */
export const EXPERIMENTS: readonly Experiment[] = [
  bulk,
  keepAlive,
  fairness,
  acceptOnce,
  readOnce,
  wakeups,
  urgent,
  dupTrap,
  oneshot,
  balance,
  herd,
  zeroCopy,
];

/** Run the selected experiments one after another; `progress` gets a line per row. */
export async function runLab(p: LabParams, only: number[] | null, progress: (line: string) => void): Promise<LabRow[]> {
  const rows: LabRow[] = [];
  for (const e of EXPERIMENTS) {
    if (only !== null && !only.includes(e.n)) continue;
    progress(`[lab] experiment ${e.n}: ${e.title}`);
    const mine: LabRow[] = [];
    for (const row of e.rows(p)) {
      const t0 = performance.now();
      let result: LabRow;
      try {
        result = await row.run();
      } catch (error) {
        // One row that cannot complete (an rsp bug, a loaded machine) does not stop the others.
        result = failedRow(e, row, error);
      }
      mine.push(result);
      progress(`[lab]   ${result.label} ${result.mode.padEnd(5)} ${settingsText(result)}: ${result.result} (${n1((performance.now() - t0) / 1000)} s)`);
    }
    // Now that the whole experiment has run, explanations can compare rows.
    for (const row of mine) if (!row.failed) row.explanation = e.explain(row, mine);
    rows.push(...mine);
  }
  return rows;
}

// What the tests (and anyone scripting the lab) use.
export type { Experiment, LabRow, RowPlan } from './experiment';
export { FULL, MODES, QUICK, type LabParams, type Mode } from './params';
export { SIDES, Peer } from './peer';
export { diffCounters, killAll, parseCounterSets, RspProcess, type RspCounters, type RspSettings } from './rsp';
export { formatTable, PRIMER } from './table';
export { bulkTransfer } from './experiments/bulk';
export { keepAlive } from './experiments/keepalive';
export { fairness } from './experiments/fairness';
export { acceptOnce } from './experiments/accept-once';
export { readOnce } from './experiments/read-once';
export { epolloutCost, rdhupCost } from './experiments/wakeups';
export { backendTrace, urgentData } from './experiments/urgent';
export { dupTrap } from './experiments/dup-trap';
export { oneshotLoop } from './experiments/oneshot';
export { balanceRun } from './experiments/balance';
export { copyVsSplice } from './experiments/zero-copy';
