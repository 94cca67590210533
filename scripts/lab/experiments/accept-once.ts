// Experiment 4: the accept puzzle. acceptPolicy "once" accepts one
// connection per event: level mode is told again while the backlog is not
// empty, edge mode is not.
import { explained, plan, type Experiment, type LabRow } from '../experiment';
import { MODES, type LabParams, type Mode } from '../params';
import { REQUEST, withRsp, type Peer } from '../peer';
import { n0, n1, ordinal } from '../table';

/**
 * 4: acceptPolicy "once". rsp is stopped (SIGSTOP) while `acceptConns`
 * clients connect and send a 100-byte ping, so that all of them are waiting
 * in the listen backlog when it looks; then it continues (SIGCONT). A client
 * is served when the backend's echo comes back. Whoever is not served within
 * strandTimeoutMs is stranded. Then one more client connects.
 */
export async function acceptOnce(mode: Mode, p: LabParams): Promise<LabRow> {
  const echo = (peer: Peer, fd: number): void => {
    peer.adopt(fd, { data: (c, data, length) => c.write(data, length) });
  };
  return withRsp({ triggerMode: mode, acceptPolicy: 'once' }, echo, async (rsp, peer) => {
    const served: boolean[] = [];
    let servedCount = 0;
    let connected = 0;
    const open = (index: number): void => {
      served[index] = false;
      const conn = peer.connect(rsp.port, {
        connect: () => connected++,
        data: () => {
          if (!served[index]) {
            served[index] = true;
            servedCount++;
          }
        },
      });
      conn.write(REQUEST, REQUEST.length);
    };
    await rsp.pause();
    try {
      for (let i = 0; i < p.acceptConns; i++) open(i);
      // The kernel completes the handshakes by itself; the clients' pings are sent once they are connected.
      if (!(await peer.drive(() => connected === p.acceptConns, 5000))) throw new Error(`accept: only ${connected} of ${p.acceptConns} connected`);
    } finally {
      rsp.resume();
    }
    const t0 = performance.now();
    await peer.drive(() => servedCount === p.acceptConns, p.strandTimeoutMs);
    const allServedMs = servedCount === p.acceptConns ? performance.now() - t0 : -1;
    const servedInTime = servedCount;
    let servedAfterKick = 0;
    let kickServed = 0;
    if (servedInTime < p.acceptConns) {
      // One more connection: a new arrival, so a new edge.
      open(p.acceptConns);
      // Until the new edge has served someone (a stranded client or the newcomer), at most kickTimeoutMs.
      await peer.drive(() => servedCount > servedInTime, p.kickTimeoutMs);
      servedAfterKick = served.slice(0, p.acceptConns).filter(Boolean).length - servedInTime;
      kickServed = served[p.acceptConns] ? 1 : 0;
    }
    const c = await rsp.stop();
    const figures = {
      connections: p.acceptConns,
      served: servedInTime,
      stranded: p.acceptConns - servedInTime,
      timeoutMs: p.strandTimeoutMs,
      allServedMs,
      kicked: servedInTime < p.acceptConns ? 1 : 0,
      servedAfterKick,
      kickServed,
      accepts: c.accepts,
      acceptCalls: c.acceptCalls,
      epollWaits: c.waits,
    };
    let result = figures.stranded === 0
      ? `all ${servedInTime} served in ${n0(allServedMs)} ms, 0 stranded`
      : `${servedInTime} served, ${figures.stranded} stranded after ${n1(p.strandTimeoutMs / 1000)} s`;
    if (figures.kicked) result += `; a ${ordinal(p.acceptConns + 1)} connection freed ${servedAfterKick}`;
    return explained(explain, {
      experiment: 4,
      label: '4',
      title: `accept puzzle: ${p.acceptConns} connections at once`,
      mode,
      settings: { acceptPolicy: 'once' },
      figures,
      result,
      explanation: '',
      counters: c,
    });
  });
}

export function explain(row: LabRow, _rows: LabRow[]): string {
  const f = row.figures;
  const edge = row.mode === 'edge';
  const n = f.connections;
  const head = `${n} clients connected while rsp was stopped (SIGSTOP, standing in for a reactor busy elsewhere), so all ${n} were waiting in the listen backlog, the kernel's queue of connections not yet accept()ed, when it continued; rsp accepted one connection per event (acceptPolicy = once).`;
  if (!edge || f.stranded === 0) {
    const why = edge
      ? ' Unexpectedly for edge mode, none were stranded in this run.'
      : ' Level-triggered epoll reports the listening socket on every epoll_wait for as long as the backlog is not empty, so rsp was told again and again, once per connection,';
    return `${head}${why} and served all ${n} in ${n0(f.allServedMs)} ms (${n0(f.accepts)} accepts, ${n0(f.epollWaits)} epoll_wait calls).`;
  }
  const kick = f.kicked
    ? ` Then a ${ordinal(n + 1)} client connected. Its arrival was a new edge: rsp accepted one connection, the oldest one waiting (the backlog is first in, first out), so ${f.servedAfterKick === 1 ? 'one stranded client was' : `${f.servedAfterKick} stranded clients were`} freed and the newcomer ${f.kickServed ? 'was served too' : 'took its place in the queue'}.`
    : '';
  return `${head} Edge-triggered epoll reported the listening socket once, when connections arrived; rsp accepted ${f.served === 1 ? 'one' : f.served}, and then epoll stayed silent: nothing new happened, so there was no new edge, although ${f.stranded} connections were still in the backlog. After ${n1(f.timeoutMs / 1000)} s they were still stranded (${n0(f.epollWaits)} epoll_wait calls, ${n0(f.accepts)} accepts in the whole run).${kick} This is why an edge-triggered server must accept until accept() answers EAGAIN, as rsp does by default (acceptPolicy = drain).`;
}

export const experiment: Experiment = {
  n: 4,
  title: 'the accept puzzle (acceptPolicy "once")',
  rows: (p) => MODES.map((m) => plan('4', m, { acceptPolicy: 'once' }, () => acceptOnce(m, p))),
  explain,
};
