// Experiment 2: many small request/response pairs over a few persistent
// connections. keepAliveRun is also the load of experiment 6b.
import type { Connection } from '../../../src/connection';
import { ctl, explained, plan, sibling, type Experiment, type LabRow } from '../experiment';
import { MODES, type LabParams, type Mode } from '../params';
import { REQUEST, RESPONSE, answeringBackend, withRsp } from '../peer';
import { diffCounters, emptyCounters, sleep, type RspCounters, type RspSettings } from '../rsp';
import { n0, n1, n2 } from '../table';

interface KeepAliveResult {
  seconds: number;
  requests: number;
  /** rsp's counters over the measured requests. */
  busy: RspCounters;
  /** rsp's counters over the idle pause after them (idleMs 0: none). */
  idle: RspCounters;
  idleSeconds: number;
}

/**
 * `conns` persistent client connections through rsp to the answering
 * backend; each sends a 100-byte request and waits for the 100-byte answer
 * before the next. A warm-up first, then `requests` measured between two
 * counter snapshots (SIGUSR2), then, if `idleMs`, a pause with every
 * connection open and quiet, between two more.
 */
export async function keepAliveRun(settings: RspSettings, conns: number, warmup: number, requests: number, idleMs: number, stallMs: number): Promise<KeepAliveResult> {
  return withRsp(settings, answeringBackend, async (rsp, peer) => {
    let issued = 0;
    let completed = 0;
    let target = 0;
    const clients: Connection[] = [];
    for (let i = 0; i < conns; i++) {
      let pending = 0;
      clients.push(peer.connect(rsp.port, {
        data: (c, _d, length) => {
          pending += length;
          while (pending >= RESPONSE.length) {
            pending -= RESPONSE.length;
            completed++;
            if (issued < target) {
              issued++;
              c.write(REQUEST, REQUEST.length);
            }
          }
        },
      }));
    }
    const phase = async (count: number): Promise<number> => {
      issued = 0;
      completed = 0;
      target = count;
      const start = performance.now();
      for (const c of clients) {
        if (issued < target) {
          issued++;
          c.write(REQUEST, REQUEST.length);
        }
      }
      if ((await peer.driveWhileMoving(() => completed >= count, () => completed, stallMs)) === 'stalled') {
        throw new Error(`keep-alive stalled: ${completed} of ${count} requests answered, then none for ${stallMs} ms`);
      }
      return (performance.now() - start) / 1000;
    };
    await phase(warmup);
    const a = await rsp.snapshot();
    const seconds = await phase(requests);
    const b = await rsp.snapshot();
    let idle = emptyCounters();
    let idleSeconds = 0;
    if (idleMs > 0) {
      const t0 = performance.now();
      await sleep(idleMs);
      const c = await rsp.snapshot();
      idleSeconds = (performance.now() - t0) / 1000;
      idle = diffCounters(c, b);
    }
    await rsp.stop();
    return { seconds, requests, busy: diffCounters(b, a), idle, idleSeconds };
  });
}

/**
 * 2: many small request/response pairs over a few persistent connections.
 * `readPolicy` (edge mode): "drain" (rsp's default) or "eagain".
 */
export async function keepAlive(mode: Mode, p: LabParams, readPolicy?: 'drain' | 'eagain'): Promise<LabRow> {
  const extra: RspSettings = readPolicy !== undefined ? { readPolicy } : {};
  const settings: RspSettings = { triggerMode: mode, ...extra };
  const r = await keepAliveRun(settings, p.keepAliveConns, p.keepAliveWarmup, p.keepAliveRequests, 0, p.stallMs);
  const c = r.busy;
  const figures = {
    requests: r.requests,
    connections: p.keepAliveConns,
    seconds: r.seconds,
    requestsPerSecond: r.requests / r.seconds,
    syscallsPerRequest: c.syscalls / r.requests,
    waitsPerRequest: c.waits / r.requests,
    readsPerRequest: c.reads / r.requests,
    eagainPerRequest: c.readsEagain / r.requests,
    writesPerRequest: c.writes / r.requests,
    ctlPerRequest: ctl(c) / r.requests,
    eventsPerWait: c.events / Math.max(1, c.waits),
  };
  return explained(explain, {
    experiment: 2,
    label: '2',
    title: `keep-alive, ${n0(r.requests)} × 100 B requests, ${p.keepAliveConns} connections`,
    mode,
    settings: extra,
    figures,
    result: `${n0(figures.requestsPerSecond)} req/s · ${n2(figures.syscallsPerRequest)} syscalls/req (${n2(figures.readsPerRequest)} reads, ${n2(figures.waitsPerRequest)} epoll_wait)`,
    explanation: '',
    counters: c,
  });
}

export function explain(row: LabRow, rows: LabRow[]): string {
  const f = row.figures;
  const edge = row.mode === 'edge';
  const head = `${n0(f.connections)} clients each sent a 100-byte request and waited for the 100-byte answer before sending the next: ${n0(f.requestsPerSecond)} requests per second and ${n2(f.syscallsPerRequest)} rsp system calls per request (${n2(f.readsPerRequest)} reads, ${n2(f.writesPerRequest)} writes, ${n2(f.waitsPerRequest)} epoll_wait calls).`;
  const batching = `How many epoll_wait calls that takes depends on how many connections are ready at once: each call returned ${n1(f.eventsPerWait)} events on average, so one call served several requests. (Requests per second are bounded by this lab process too, which plays all the clients and the backend.)`;
  if (!edge) {
    return `${head} Every request crosses rsp twice (the request to the backend, the answer back), each crossing one read() and one write(). Level-triggered, rsp reads once per report and relies on epoll to report the socket again if anything is left, so it never makes a read that finds nothing (${n2(f.eagainPerRequest)} EAGAIN reads per request). ${batching}`;
  }
  const strict = row.settings.readPolicy === 'eagain';
  if (f.eagainPerRequest >= 0.5) {
    const level = sibling(row, rows, (r) => r.mode === 'level');
    const versus = level ? ` (level mode: ${n2(level.figures.syscallsPerRequest)} system calls per request)` : '';
    const policy = strict
      ? 'With readPolicy = "eagain" rsp follows the strict textbook rule and reads until the kernel answers EAGAIN,'
      : 'rsp reads until the kernel answers EAGAIN,';
    return `${head} Edge-triggered epoll will not report a socket again for bytes that were already there when it reported it, so rsp must leave nothing behind. ${policy} so after every 100-byte message it reads once more and finds nothing: ${n2(f.eagainPerRequest)} of the ${n2(f.readsPerRequest)} reads per request returned EAGAIN, the extra system calls this row pays${versus}. ${batching}`;
  }
  const strictRow = sibling(row, rows, (r) => r.mode === 'edge' && r.settings.readPolicy === 'eagain');
  const versus = strictRow ? ` (with readPolicy = "eagain", which always reads on to EAGAIN: ${n2(strictRow.figures.readsPerRequest)} reads and ${n2(strictRow.figures.syscallsPerRequest)} system calls per request)` : '';
  return `${head} Edge-triggered epoll will not report a socket again for bytes that were already there when it reported it, so rsp must leave nothing behind. It stops when a read returns fewer bytes than it asked for: a stream socket that gives less than asked has nothing more to give (epoll(7) names this shortcut), and bytes that come later bring a new edge. So a 100-byte message costs one read, as in level mode, instead of a second one answering EAGAIN${versus}. ${batching}`;
}

export const experiment: Experiment = {
  n: 2,
  title: 'keep-alive requests',
  rows: (p) => [
    ...MODES.map((m) => plan('2', m, {}, () => keepAlive(m, p))),
    plan('2', 'edge', { readPolicy: 'eagain' }, () => keepAlive('edge', p, 'eagain')),
  ],
  explain,
};
