// The reactor's counters: what epoll and the handlers did, counted as it
// happens (plain number fields: an increment is all it costs). Printed on
// exit and on SIGUSR2, and compared by the lab.

/** What the reactor has done, for people watching epoll at work (and for stats). */
export class Counters {
  waits = 0;
  events = 0;
  maxBatch = 0;
  staleEvents = 0;
  deferred = 0;
  ctlAdd = 0;
  ctlMod = 0;
  ctlDel = 0;
  reads = 0;
  readsEagain = 0;
  writes = 0;
  shortWrites = 0;
  bytesRead = 0;
  bytesWritten = 0;
  bytesQueued = 0;
  peakQueue = 0;
  /** EPOLLPRI: urgent marks met in a stream (the urgent byte itself is dropped). */
  urgentMarks = 0;
  /** Zero copy (src/splice.ts): splice() calls in both directions, bytes spliced from sockets into pipes, pipes opened. */
  splices = 0;
  bytesSpliced = 0;
  pipes = 0;
  accepts = 0;
  acceptCalls = 0;
  connects = 0;
  /** socket, connect, setsockopt, getsockopt, shutdown, close, eventfd reads. */
  otherCalls = 0;
  closes: Record<string, number> = {};
}

/** Every system call the reactor and its handlers made. */
export function syscalls(c: Counters): number {
  return c.waits + c.ctlAdd + c.ctlMod + c.ctlDel + c.reads + c.writes + c.acceptCalls + c.splices + c.otherCalls;
}

/**
 * The counters as a few log lines of key=value pairs, readable by people and
 * parsed by the lab (scripts/lab/rsp.ts).
 */
export function describeCounters(c: Counters): string[] {
  const perWait = c.waits > 0 ? (c.events / c.waits).toFixed(2) : '0';
  const closes = Object.entries(c.closes)
    .sort((a, b) => b[1] - a[1])
    .map(([cause, n]) => `${cause.replace(/\s+/g, '-')}=${n}`)
    .join(' ');
  return [
    `counters: epoll_wait calls=${c.waits} events=${c.events} events-per-wait=${perWait} max-events-per-wait=${c.maxBatch} stale-events=${c.staleEvents} deferred=${c.deferred}`,
    `counters: epoll_ctl add=${c.ctlAdd} mod=${c.ctlMod} del=${c.ctlDel}`,
    `counters: io reads=${c.reads} reads-eagain=${c.readsEagain} writes=${c.writes} short-writes=${c.shortWrites} bytes-read=${c.bytesRead} bytes-written=${c.bytesWritten} bytes-queued=${c.bytesQueued} peak-queue=${c.peakQueue} urgent-marks=${c.urgentMarks} splices=${c.splices} bytes-spliced=${c.bytesSpliced} pipes=${c.pipes}`,
    `counters: connections accepts=${c.accepts} accept-calls=${c.acceptCalls} connects=${c.connects} other-calls=${c.otherCalls} syscalls=${syscalls(c)}`,
    `counters: closes ${closes || 'none'}`,
  ];
}
