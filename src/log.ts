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

/** rsp_log */
export function log(message: string): void {
  sink('info', `${timestamp()} ${message}`);
}

/** rsp_log_error */
export function logError(message: string): void {
  sink('error', `${timestamp()} ${message}`);
}

const limited = new Map<string, { at: number; suppressed: number }>();

/**
 * logError, at most once a second for each `kind` (a dead backend fails
 * every client): the lines in between are counted, and the count goes on the
 * next line of that kind.
 */
export function logErrorLimited(kind: string, message: string): void {
  const now = Date.now();
  const last = limited.get(kind);
  if (last !== undefined && now - last.at < 1000) {
    last.suppressed++;
    return;
  }
  const more = last !== undefined && last.suppressed > 0 ? ` (and ${last.suppressed} more like it since the last one)` : '';
  limited.set(kind, { at: now, suppressed: 0 });
  logError(message + more);
}
