// logging.c: every line starts with a local timestamp in brackets.
//
// The main thread owns stdout and stderr. A worker formats its lines itself
// (so the timestamp is when it happened) and hands them to the main thread
// through setLogSink(); see worker.ts.

function pad(n: number): string {
  return n < 10 ? `0${n}` : `${n}`;
}

/** [YYYY-MM-DD HH:MM:SS] in local time. */
export function timestamp(d = new Date()): string {
  return `[${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}]`;
}

export type Level = 'info' | 'error';
export type LogSink = (level: Level, line: string) => void;

let sink: LogSink = (level, line) => {
  (level === 'error' ? process.stderr : process.stdout).write(line + '\n');
};

export function setLogSink(s: LogSink): void {
  sink = s;
}

let mutedDepth = 0;

/**
 * Run `fn` without its log lines: a worker applying a pool state change that
 * another worker decided (and logged) must not log it a second time.
 */
export function muted<T>(fn: () => T): T {
  mutedDepth++;
  try {
    return fn();
  } finally {
    mutedDepth--;
  }
}

/** rsp_log */
export function log(message: string): void {
  if (mutedDepth > 0) return;
  sink('info', `${timestamp()} ${message}`);
}

/** rsp_log_error */
export function logError(message: string): void {
  if (mutedDepth > 0) return;
  sink('error', `${timestamp()} ${message}`);
}

/**
 * Error lines that can come in floods (a dead backend fails every client):
 * at most one a second for each `kind`. The lines in between are counted,
 * and once that second is over the last of them is logged with the count of
 * the others, so a burst never ends without its tally. The caller's
 * `schedule` runs the follow-up (a worker's own event loop does not turn
 * while its reactor runs: it passes a reactor timer).
 */
export class LimitedLog {
  private readonly kinds = new Map<string, { at: number; suppressed: number; last: string }>();
  private armed = false;

  constructor(
    private readonly schedule: (ms: number, run: () => void) => void,
    /**
     * With several workers each worker hands its lines to the main thread,
     * which limits them all together: one line a second per kind for the
     * whole process, not one per worker.
     */
    private readonly forward: ((kind: string, message: string) => void) | null = null,
  ) {}

  error(kind: string, message: string, now = Date.now()): void {
    if (this.forward !== null) {
      this.forward(kind, message);
      return;
    }
    const state = this.kinds.get(kind);
    if (state !== undefined && now - state.at < 1000) {
      state.suppressed++;
      state.last = message;
      this.arm(1000 - (now - state.at));
      return;
    }
    // The second is over but its tally has not been told yet (the flush timer
    // is late): this line carries it.
    const held = state !== undefined ? state.suppressed : 0;
    this.kinds.set(kind, { at: now, suppressed: 0, last: message });
    logError(held > 0 ? `${message} (and ${held} more like it since the last one)` : message);
  }

  /** Log the held-back tally of every kind whose second is over. */
  flush(now = Date.now()): void {
    let next = Infinity;
    for (const [kind, state] of this.kinds) {
      const age = now - state.at;
      if (state.suppressed === 0) {
        if (age >= 1000) this.kinds.delete(kind);
        continue;
      }
      if (age < 1000) {
        next = Math.min(next, 1000 - age);
        continue;
      }
      const others = state.suppressed - 1;
      logError(others > 0 ? `${state.last} (and ${others} more like it since the last one)` : state.last);
      state.at = now;
      state.suppressed = 0;
    }
    if (next !== Infinity) this.arm(next);
  }

  private arm(ms: number): void {
    if (this.armed) return;
    this.armed = true;
    this.schedule(Math.max(1, ms), () => {
      this.armed = false;
      this.flush();
    });
  }
}
