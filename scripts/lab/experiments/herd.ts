// Experiment 11: the thundering herd. Four workers (reactor threads, each
// with its own epoll set) share one listening address in three ways:
// one socket in every epoll set (acceptMode "shared-herd"), the same with
// EPOLLEXCLUSIVE ("shared"), and one socket per worker bound with
// SO_REUSEPORT ("reuseport", rsp's default). Counted: how many workers a
// new connection wakes, how many of them find nothing to accept, and how the
// connections spread over the workers.
import * as fs from 'node:fs';
import { explained, plan, type Experiment, type LabRow } from '../experiment';
import type { LabParams } from '../params';
import { answerAndEnd, REQUEST, RESPONSE, withRsp } from '../peer';
import { n0, n2 } from '../table';

const WORKERS = 4;
export const ACCEPT_MODES = ['shared-herd', 'shared', 'reuseport'] as const;
export type AcceptMode = (typeof ACCEPT_MODES)[number];

/** The "counters: worker N ..." lines rsp printed last (one per worker), by key. */
function perWorker(output: string, workers: number): Record<string, number>[] {
  const lines = output.split('\n').filter((l) => /counters: worker \d+ /.test(l)).slice(-workers);
  if (lines.length < workers) throw new Error(`rsp printed ${lines.length} per-worker counter lines, not ${workers}`);
  return lines.map((l) => Object.fromEntries([...l.matchAll(/(\S+)=(\d+)/g)].map(([, k, v]) => [k, Number(v)])));
}

/**
 * Times each reactor thread (named rsp-worker-N by the worker) went to sleep
 * in the kernel - in epoll_wait, nearly always - which is the number of times
 * it was woken: /proc/PID/task/TID/status, voluntary_ctxt_switches. A
 * thread woken by the herd and put back to sleep inside epoll_wait (the
 * kernel found the socket no longer ready) never returns to rsp's code, so
 * only this shows it.
 */
function sleepsOfWorkers(pid: number): number {
  let n = 0;
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      if (!fs.readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').startsWith('rsp-worker-')) continue;
      n += Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8'))![1]);
    } catch {
      // a thread that has gone
    }
  }
  return n;
}

/**
 * `connections` one-request connections, one at a time, so that every one of
 * them arrives while all the workers sleep in epoll_wait: the case where a
 * herd is largest. Counted from rsp's start to its exit counters.
 */
export async function herd(acceptMode: AcceptMode, p: LabParams): Promise<LabRow> {
  const connections = Math.min(p.shortConns, 400);
  const settings = { workers: WORKERS, acceptMode };
  return withRsp(settings, answerAndEnd, async (rsp, peer) => {
    let done = 0;
    let failed = 0;
    const launch = (): void => {
      let got = 0;
      const conn = peer.connect(rsp.port, {
        data: (_c, _d, length) => (got += length),
        close: (_c, cause) => {
          done++;
          if (cause !== 'closed' || got < RESPONSE.length) failed++;
          if (done < connections) launch();
        },
      });
      conn.write(REQUEST, REQUEST.length);
      conn.end();
    };
    const sleepsBefore = sleepsOfWorkers(rsp.pid);
    launch();
    const outcome = await peer.driveWhileMoving(() => done >= connections, () => done, p.stallMs);
    if (outcome !== 'done') throw new Error(`only ${done} of ${connections} connections finished`);
    if (failed > 0) throw new Error(`${failed} of ${connections} connections did not get their answer and a clean close`);
    const sleeps = sleepsOfWorkers(rsp.pid) - sleepsBefore;
    const c = await rsp.stop();
    const workers = perWorker(rsp.output(), WORKERS);
    const accepts = workers.map((w) => w.accepts);
    const wakeups = workers.reduce((n, w) => n + w['listener-wakeups'], 0);
    const empty = workers.reduce((n, w) => n + w['empty-wakeups'], 0);
    const per = Math.max(1, c.accepts);
    const figures: Record<string, number> = {
      workers: WORKERS,
      connections,
      accepts: c.accepts,
      threadWakeupsPerConn: sleeps / per,
      wakeupsPerConn: wakeups / per,
      emptyPerConn: empty / per,
      epollWaitsPerConn: c.waits / per,
      // Evenness: the busiest worker's share of the connections (1/workers is perfectly even).
      busiestShare: Math.max(...accepts) / per,
      idleWorkers: accepts.filter((a) => a === 0).length,
    };
    accepts.forEach((a, i) => (figures[`worker${i}`] = a));
    return explained(explain, {
      experiment: 11,
      label: '11',
      title: `the thundering herd: ${WORKERS} workers, ${n0(connections)} connections one at a time`,
      mode: 'level',
      settings,
      figures,
      result: `${n2(figures.threadWakeupsPerConn)} thread wake-ups per connection · listener woken ${n2(figures.wakeupsPerConn)}× (${n2(figures.emptyPerConn)} for nothing) · accepts per worker ${accepts.join(' / ')}`,
      explanation: '',
      counters: c,
    });
  });
}

function explain(row: LabRow, rows: LabRow[]): string {
  const f = row.figures;
  const spread = Array.from({ length: f.workers }, (_, i) => f[`worker${i}`]).join(' / ');
  const even = f.idleWorkers > 0 ? ` ${f.idleWorkers} of the ${f.workers} workers accepted nothing at all.` : '';
  const base = rows.find((r) => r !== row && r.settings.acceptMode === 'reuseport');
  const versus = base === undefined ? '' : ` (SO_REUSEPORT: ${n2(base.figures.threadWakeupsPerConn)})`;
  const wakes = `The reactor threads were woken ${n2(f.threadWakeupsPerConn)} times per connection${row.settings.acceptMode === 'reuseport' ? '' : versus} - each wake-up counted as the thread going back to sleep (voluntary context switches in /proc) - and the listening socket's handler ran ${n2(f.wakeupsPerConn)} times per connection, ${n2(f.emptyPerConn)} of them finding nothing to accept.`;
  switch (row.settings.acceptMode) {
    case 'shared-herd':
      return `One listening socket sits in all ${f.workers} workers' epoll sets, registered plainly. When a connection arrives the kernel wakes every thread sleeping in an epoll_wait that watches the socket - the thundering herd. ${wakes} Most of the herd never reaches rsp's code: a woken epoll_wait checks the socket again, finds that another thread has already taken the connection, and sleeps again inside the kernel; but each of those threads was still woken, scheduled and put back to sleep for nothing, which is why the thread wake-ups are so much higher than the handler calls. With many workers and many connections that is CPU spent on contention. Who gets the connection is a race, so the spread (${spread}) follows which thread happens to run first.${even}`;
    case 'shared':
      return `The same single socket, registered with EPOLLEXCLUSIVE (Linux 4.5): the kernel wakes one of the epoll_waits sleeping on it (or a few, when several begin waiting at that very moment), not all. ${wakes} There is still one accept queue for everyone, so an idle worker takes what a busy one cannot - no connection waits behind a slow worker - but the kernel wakes the waiters in a fixed order, so under light load the same worker takes nearly everything: ${spread}, the busiest ${n0(f.busiestShare * 100)}%.${even} The others only get work when the first is busy.`;
    default:
      return `One listening socket per worker, all bound to the same address with SO_REUSEPORT (Linux 3.9): the kernel picks the socket for each new connection by a hash of its addresses and ports, and only the epoll set of the worker that owns it hears of it. ${wakes} No herd at all, and the spread (${spread}; the busiest took ${n0(f.busiestShare * 100)}%) is as even as the hash makes it, whatever the load. The price: a worker that is stuck keeps receiving its share, which waits in its own backlog while the others are idle. This is nginx's "listen ... reuseport", HAProxy's default with several threads, and rsp's default.`;
  }
}

export const experiment: Experiment = {
  n: 11,
  title: 'the thundering herd (acceptMode with 4 workers)',
  rows: (p) => ACCEPT_MODES.map((mode) => plan('11', 'level', { workers: WORKERS, acceptMode: mode }, () => herd(mode, p))),
  explain,
};
