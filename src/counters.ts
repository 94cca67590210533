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
  /** A listener reported readable, and of those, the times its first accept4 found nothing (another worker was first). */
  listenerWakeups = 0;
  emptyWakeups = 0;
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

/** Every worker's counters added up (maxBatch and peakQueue: the highest). */
export function sumCounters(all: Counters[]): Counters {
  const sum = new Counters();
  const fields = sum as unknown as Record<string, number>;
  for (const c of all) {
    for (const [key, value] of Object.entries(c)) {
      if (key === 'closes') {
        for (const [cause, n] of Object.entries(value as Record<string, number>)) sum.closes[cause] = (sum.closes[cause] ?? 0) + n;
      } else if (typeof value === 'number') {
        fields[key] = key === 'maxBatch' || key === 'peakQueue' ? Math.max(fields[key] ?? 0, value) : (fields[key] ?? 0) + value;
      }
    }
  }
  return sum;
}

/**
 * One line per worker, after the summed lines (several workers only): how the
 * connections and the wake-ups spread. The lab's parser ends a set at the
 * closes line, so these lines do not disturb it.
 */
export function describeWorkers(all: Counters[]): string[] {
  if (all.length < 2) return [];
  return all.map((c, i) => `counters: worker ${i} accepts=${c.accepts} listener-wakeups=${c.listenerWakeups} empty-wakeups=${c.emptyWakeups} epoll_wait-calls=${c.waits} events=${c.events} reads=${c.reads} writes=${c.writes} syscalls=${syscalls(c)}`);
}
