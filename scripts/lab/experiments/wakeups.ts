// Experiment 6: what a wake-up costs. 6a: EPOLLRDHUP on short connections
// (the end of a stream without the read() that returns 0). 6b: EPOLLOUT
// registered only while something is queued, or for good.
import { ctl, explained, plan, sibling, type Experiment, type LabRow } from '../experiment';
import { MODES, type LabParams, type Mode } from '../params';
import { answerAndEnd, REQUEST, RESPONSE, withRsp } from '../peer';
import { diffCounters, type RspSettings } from '../rsp';
import { n0, n1, n2, plural } from '../table';
import { keepAliveRun } from './keepalive';

/**
 * 6a: `shortConns` short connections, `shortConcurrency` at a time: the
 * client sends 100 bytes and shuts down its sending half at once; the
 * backend answers 100 bytes and shuts down its own; both then close. Counted
 * from a snapshot before the first to rsp's exit counters. If connections
 * stop finishing for stallMs, the row reports the stall instead of figures.
 * `readPolicy` (edge mode): rsp's default unless given.
 */
export async function rdhupCost(mode: Mode, rdhup: boolean, p: LabParams, readPolicy?: 'drain' | 'eagain'): Promise<LabRow> {
  const extra: RspSettings = readPolicy !== undefined ? { readPolicy } : {};
  return withRsp({ triggerMode: mode, rdhup, ...extra }, answerAndEnd, async (rsp, peer) => {
    const a = await rsp.snapshot();
    let started = 0;
    let done = 0;
    let failed = 0;
    /** Bytes of the answer received, for each connection still open. */
    const open = new Map<number, { got: number }>();
    const launch = (): void => {
      const id = started++;
      const state = { got: 0 };
      open.set(id, state);
      const conn = peer.connect(rsp.port, {
        data: (_c, _d, length) => (state.got += length),
        close: (_c, cause) => {
          open.delete(id);
          done++;
          if (cause !== 'closed' || state.got !== RESPONSE.length) failed++;
          if (started < p.shortConns) launch();
        },
      });
      conn.write(REQUEST, REQUEST.length);
      conn.end();
    };
    const t0 = performance.now();
    for (let i = 0; i < Math.min(p.shortConcurrency, p.shortConns); i++) launch();
    const outcome = await peer.driveWhileMoving(() => done >= p.shortConns, () => done, p.stallMs);
    const seconds = (performance.now() - t0) / 1000;
    if (failed > 0) throw new Error(`short connections: ${failed} of ${done} did not get their answer and a clean close`);
    const stuck = [...open.values()];
    const c = diffCounters(outcome === 'done' ? await rsp.stop() : await rsp.snapshot(), a);
    const n = p.shortConns;
    const per = Math.max(1, done);
    const figures = {
      connections: n,
      concurrency: Math.min(p.shortConcurrency, n),
      finished: done,
      stalled: outcome === 'stalled' ? 1 : 0,
      stuck: stuck.length,
      stuckAnswered: stuck.filter((s) => s.got >= RESPONSE.length).length,
      stallMs: p.stallMs,
      seconds,
      connectionsPerSecond: done / seconds,
      waitsPerConn: c.waits / per,
      eventsPerConn: c.events / per,
      readsPerConn: c.reads / per,
      eagainPerConn: c.readsEagain / per,
      ctlPerConn: ctl(c) / per,
      syscallsPerConn: c.syscalls / per,
    };
    return explained(explain, {
      experiment: 6,
      label: '6a',
      title: `EPOLLRDHUP, ${n0(n)} short connections`,
      mode,
      settings: { rdhup, ...extra },
      figures,
      result: outcome === 'stalled'
        ? `STALLED: ${n0(done)} of ${n0(n)} ended; ${stuck.length} never did (${figures.stuckAnswered} of them had their whole answer)`
        : `per conn: ${n2(figures.readsPerConn)} reads · ${n2(figures.waitsPerConn)} epoll_wait · ${n2(figures.eventsPerConn)} events · ${n2(figures.ctlPerConn)} epoll_ctl`,
      explanation: '',
      counters: c,
    });
  });
}

// ---------------------------------------------------------------- 6b. EPOLLOUT policy

/** 6b: keep-alive requests and then an idle pause, with EPOLLOUT registered only while queued or always. */
export async function epolloutCost(mode: Mode, policy: 'queued' | 'always', p: LabParams): Promise<LabRow> {
  const r = await keepAliveRun({ triggerMode: mode, epolloutPolicy: policy }, p.keepAliveConns, p.keepAliveWarmup, p.wakeRequests, p.idleMs, p.stallMs);
  const c = r.busy;
  const figures = {
    requests: r.requests,
    connections: p.keepAliveConns,
    requestsPerSecond: r.requests / r.seconds,
    waitsPerRequest: c.waits / r.requests,
    eventsPerRequest: c.events / r.requests,
    eventsPerWait: c.events / Math.max(1, c.waits),
    readsPerRequest: c.reads / r.requests,
    ctlPerRequest: ctl(c) / r.requests,
    syscallsPerRequest: c.syscalls / r.requests,
    idleSeconds: r.idleSeconds,
    // The second snapshot's own request wakes rsp once (its eventfd): not idle work.
    idleWaitsPerSecond: Math.max(0, r.idle.waits - 1) / Math.max(0.001, r.idleSeconds),
    idleEventsPerSecond: Math.max(0, r.idle.events - 1) / Math.max(0.001, r.idleSeconds),
    idleWaits: Math.max(0, r.idle.waits - 1),
    idleEvents: Math.max(0, r.idle.events - 1),
  };
  return explained(explain, {
    experiment: 6,
    label: '6b',
    title: `EPOLLOUT policy, ${n0(r.requests)} keep-alive requests + ${n1(p.idleMs / 1000)} s idle`,
    mode,
    settings: { epolloutPolicy: policy },
    figures,
    result: `per req: ${n2(figures.waitsPerRequest)} epoll_wait · ${n2(figures.eventsPerRequest)} events · ${n2(figures.ctlPerRequest)} epoll_ctl; idle: ${n0(figures.idleWaitsPerSecond)} wake-ups/s`,
    explanation: '',
    counters: c,
  });
}

/** 6a and 6b. */
export function explain(row: LabRow, rows: LabRow[]): string {
  return row.label === '6a' ? explainRdhup(row, rows) : explainEpollout(row, rows);
}

function explainRdhup(row: LabRow, rows: LabRow[]): string {
  const f = row.figures;
  const edge = row.mode === 'edge';
  const rdhup = row.settings.rdhup === true;
  const other = sibling(row, rows, (r) => r.mode === row.mode && r.settings.rdhup !== row.settings.rdhup && r.settings.readPolicy === undefined && !r.figures.stalled);
  const control = sibling(row, rows, (r) => r.mode === 'level' && r.settings.readPolicy === 'drain' && !r.figures.stalled);
  const work = `${n0(f.connections)} short connections, ${n0(f.concurrency)} at a time: the client sends 100 bytes and at once shuts down its sending side, the backend answers 100 bytes and does the same, then both close.`;
  if (f.stalled) {
    return `${work} rsp got stuck: ${plural(f.finished, 'connection')} ended, then none for ${n1(f.stallMs / 1000)} s, and ${n0(f.stuck)} were left open (${n0(f.stuckAnswered)} of them had their whole answer, but never the end). Without EPOLLRDHUP (rdhup = false), rsp can learn of the other side's end only from a read() that returns 0. But in edge mode rsp also takes a read that returns fewer bytes than asked as "socket empty, wait for the next edge", and here the end (the FIN) arrived together with the last bytes, before epoll reported them: the short read left the end unread, and no new edge will ever come for it. That is a bug in rsp (fixed once already, see docs/lab.md): in edge mode the shortcut is only safe with EPOLLRDHUP registered (rdhup = true), which tells rsp that the end is there.`;
  }
  const head = `${work} Per connection rsp made ${n2(f.readsPerConn)} reads, ${n2(f.waitsPerConn)} epoll_wait calls (${n2(f.eventsPerConn)} events) and ${n2(f.ctlPerConn)} epoll_ctl calls.`;
  const ctlWhy = edge
    ? ' The 2 epoll_ctl calls are the two registrations; edge mode never changes them.'
    : ' The epoll_ctl calls are level mode changing registrations (EPOLLOUT while connecting, EPOLLIN off once a side has ended).';
  if (rdhup) {
    const versus = other ? ` (${n2(other.figures.readsPerConn)} without it)` : '';
    return `${head} With rdhup = true rsp registers EPOLLRDHUP, a flag epoll adds to an event when the other side has finished sending. When a read returns fewer bytes than asked for and the event carried EPOLLRDHUP, the data is all in and the end has come, so rsp skips the read() that would return 0: about one read per direction${versus}. (EPOLLRDHUP is also raised by a reset, which comes with EPOLLERR, and by a local shutdown(SHUT_RD): after EPOLLERR rsp does not take a short read as the end but reads on, and learns of the reset from read().)${ctlWhy}`;
  }
  const versus = other ? `: ${n2(f.readsPerConn)} reads per connection against ${n2(other.figures.readsPerConn)} with EPOLLRDHUP` : '';
  if (!edge && row.settings.readPolicy === 'drain') {
    const once = sibling(row, rows, (r) => r.mode === 'level' && r.settings.rdhup === false && r.settings.readPolicy === undefined && !r.figures.stalled);
    const edgeRow = sibling(row, rows, (r) => r.mode === 'edge' && r.settings.rdhup === false && !r.figures.stalled);
    const compare = once
      ? ` The reads are the same as level mode reading once per event (${n2(once.figures.readsPerConn)}), but the events are not: ${n2(f.eventsPerConn)} per connection against ${n2(once.figures.eventsPerConn)}${edgeRow ? `, and ${n2(edgeRow.figures.eventsPerConn)} in edge mode` : ''}. So the extra events of level mode without EPOLLRDHUP come from reading once per event, not from level triggering.`
      : '';
    return `${head} The control row: level-triggered and rdhup = false as above, but readPolicy = "drain", so after an event rsp reads on until the socket is empty, and without EPOLLRDHUP that means until read() returns 0 or EAGAIN: the data and the end are read in the same event.${compare}${ctlWhy}`;
  }
  const waits = !edge && other && f.eventsPerConn > other.figures.eventsPerConn
    ? `; and since level mode reads once per event by default, each of those reads needs an event of its own (${n2(f.eventsPerConn)} events per connection against ${n2(other.figures.eventsPerConn)}; how many epoll_wait calls that takes depends on how many events come together)${control ? `; reading on in the same event (the control row, readPolicy = "drain") brings that to ${n2(control.figures.eventsPerConn)}` : ''}`
    : '';
  return `${head} With rdhup = false rsp learns of the end the classic way, from a read() that returns 0, one more read per direction${versus}${waits}.${ctlWhy}`;
}

function explainEpollout(row: LabRow, rows: LabRow[]): string {
  const f = row.figures;
  const edge = row.mode === 'edge';
  const always = row.settings.epolloutPolicy === 'always';
  const sockets = f.connections * 2;
  const head = `${n0(f.connections)} keep-alive connections made ${n0(f.requests)} requests of 100 bytes, then stayed open and quiet for ${n1(f.idleSeconds)} s. Per request: ${n2(f.eventsPerRequest)} events in ${n2(f.waitsPerRequest)} epoll_wait calls, ${n2(f.ctlPerRequest)} epoll_ctl calls; while idle, ${n0(f.idleWaitsPerSecond)} wake-ups per second.`;
  if (!edge && always) {
    return `${head} EPOLLOUT ("room to write") stays registered for each connection's whole life. A socket's send buffer is almost always empty, so the socket is almost always writable, and level-triggered epoll reports every ready socket on every call: each epoll_wait returned about all ${sockets} sockets (${n1(f.eventsPerWait)} events per call) though only about 2 events per request meant work. epoll_wait never sleeps, even when nothing at all happens: rsp woke ${n0(f.idleWaits)} times in the idle pause, keeping a CPU core busy for nothing. This is why level mode registers EPOLLOUT only while bytes are queued (the default).`;
  }
  if (!edge) {
    return `${head} With EPOLLOUT registered only while rsp has bytes queued for a socket (epolloutPolicy = queued, the level-mode default), epoll reports a socket only when there is something to read: 2 events per request (the request, then the answer). A 100-byte answer always fits in the socket's buffer, so nothing was ever queued and no epoll_ctl was needed to switch EPOLLOUT on and off; in the idle pause rsp slept in epoll_wait (${n0(f.idleWaits)} wake-ups).`;
  }
  if (always) {
    const q = sibling(row, rows, (r) => r.mode === 'edge' && r.settings.epolloutPolicy === 'queued');
    const versus = q ? ` (${n2(f.eventsPerRequest)} events per request and ${n0(f.idleWaits)} idle wake-ups, against ${n2(q.figures.eventsPerRequest)} and ${n0(q.figures.idleWaits)} with "queued")` : '';
    return `${head} Edge-triggered with EPOLLOUT registered for good (the edge-mode default): epoll signals writability only when it changes, for instance when a full send buffer gets room again, so a socket that simply stays writable costs nothing${versus}, and no epoll_ctl is ever needed to switch EPOLLOUT on and off. That is why rsp registers each socket once in edge mode and never modifies it.`;
  }
  return `${head} Edge-triggered with EPOLLOUT registered only while something is queued: epoll reports a socket when something changes, so the idle sockets cost nothing either way. This policy costs an epoll_ctl call whenever a write has to be queued and another when the queue is empty; here every 100-byte answer fit at once, so that never happened (${n2(f.ctlPerRequest)} per request).`;
}

export const experiment: Experiment = {
  n: 6,
  title: 'wake-up costs: EPOLLRDHUP (6a) and the EPOLLOUT policy (6b)',
  rows: (p) => [
    ...[true, false].map((rdhup) => plan('6a', 'level', { rdhup }, () => rdhupCost('level', rdhup, p))),
    // The control: level mode reading on in the same event, as edge mode does.
    plan('6a', 'level', { rdhup: false, readPolicy: 'drain' }, () => rdhupCost('level', false, p, 'drain')),
    ...[true, false].map((rdhup) => plan('6a', 'edge', { rdhup }, () => rdhupCost('edge', rdhup, p))),
    ...MODES.flatMap((m) => (['queued', 'always'] as const).map((policy) => plan('6b', m, { epolloutPolicy: policy }, () => epolloutCost(m, policy, p)))),
  ],
  explain,
};
