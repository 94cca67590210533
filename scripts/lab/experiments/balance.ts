// Experiment 10: balancing a pool with one slow member. Three backends on
// the lab's reactor answer a 100-byte request with 100 bytes; one of them
// takes balanceSlowMs to do it. Clients open a connection per request,
// balanceConcurrency at a time, through rsp with the pool balanced by
// "roundrobin" or "leastconn". Per member: how many requests it got; per
// request: how long it took (p50, p90, p99).
//
// Nothing here is about epoll: the trigger mode does not change how rsp
// picks a member, so the rows are in level mode only.
import type { Connection } from '../../../src/connection';
import { explained, plan, sibling, type Experiment, type LabRow } from '../experiment';
import { HOST, type LabParams } from '../params';
import { Peer, REQUEST, RESPONSE } from '../peer';
import { Lua, RspProcess, type RspCounters, type RspSettings } from '../rsp';
import { n0, n1 } from '../table';

type Balance = 'roundrobin' | 'leastconn';

/** A backend that answers each 100-byte request with 100 bytes, after `delayMs` (0: at once); counts its clients. */
function backend(peer: Peer, delayMs: number, served: number[], index: number): number {
  return peer.listen((fd) => {
    served[index]++;
    let pending = 0;
    peer.adopt(fd, {
      data: (c, _d, length) => {
        pending += length;
        while (pending >= REQUEST.length) {
          pending -= REQUEST.length;
          if (delayMs === 0) c.write(RESPONSE, RESPONSE.length);
          else peer.reactor.after(delayMs, () => c.write(RESPONSE, RESPONSE.length));
        }
      },
    });
  });
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

export async function balanceRun(p: LabParams, balance: Balance): Promise<LabRow> {
  const served = [0, 0, 0];
  const latencies: number[] = [];
  let result: { seconds: number; counters: RspCounters } | null = null;
  // The backends first (rsp's config names their ports), then rsp, then the clients; all closed whatever happens.
  const peer = new Peer();
  let rsp: RspProcess | null = null;
  try {
    const ports = [backend(peer, 0, served, 0), backend(peer, 0, served, 1), backend(peer, p.balanceSlowMs, served, 2)];
    const settings: RspSettings = {
      backends: new Lua(`{ app = { ${ports.map((port) => `"${HOST}:${port}"`).join(', ')}, balance = "${balance}" } }`),
    };
    rsp = await RspProcess.start(settings);
    const proxy = rsp;
    let started = 0;
    let finished = 0;
    const one = (): void => {
      if (started >= p.balanceRequests) return;
      started++;
      const t0 = performance.now();
      let got = 0;
      peer.connect(proxy.port, {
        connect: (c: Connection) => c.write(REQUEST, REQUEST.length),
        data: (c, _d, length) => {
          got += length;
          if (got < RESPONSE.length) return;
          latencies.push(performance.now() - t0);
          finished++;
          c.close();
          one();
        },
        close: () => {
          if (got >= RESPONSE.length) return;
          // Cut before its answer: counted, as a failure.
          finished++;
          latencies.push(Infinity);
          one();
        },
      });
    };
    for (let i = 0; i < p.balanceConcurrency; i++) one();
    const t0 = performance.now();
    if ((await peer.driveWhileMoving(() => finished >= p.balanceRequests, () => finished, p.stallMs)) === 'stalled') {
      throw new Error(`balancing stalled after ${finished} of ${p.balanceRequests} requests`);
    }
    const seconds = (performance.now() - t0) / 1000;
    const counters = await proxy.stop();
    result = { seconds, counters };
  } finally {
    if (rsp !== null) await rsp.kill();
    peer.close();
  }
  if (result === null) throw new Error('no result');
  latencies.sort((a, b) => a - b);
  const total = served[0] + served[1] + served[2];
  const figures = {
    requests: p.balanceRequests,
    requestsPerSecond: p.balanceRequests / result.seconds,
    fastA: served[0],
    fastB: served[1],
    slow: served[2],
    slowShare: served[2] / Math.max(1, total),
    p50: percentile(latencies, 0.5),
    p90: percentile(latencies, 0.9),
    p99: percentile(latencies, 0.99),
    failed: latencies.filter((l) => l === Infinity).length,
  };
  return explained(explain, {
    experiment: 10,
    label: '10',
    title: `a pool of 3, one answering in ${p.balanceSlowMs} ms; ${n0(p.balanceRequests)} one-request connections, ${p.balanceConcurrency} at a time`,
    mode: 'level',
    settings: { balance },
    figures,
    result: `requests per member ${figures.fastA} / ${figures.fastB} / ${figures.slow} (slow) · p50 ${n1(figures.p50)} ms, p90 ${n1(figures.p90)} ms, p99 ${n1(figures.p99)} ms`,
    explanation: '',
    counters: result.counters,
  });
}

function explain(row: LabRow, rows: LabRow[]): string {
  const f = row.figures;
  const share = `${n0(f.slowShare * 100)}%`;
  if (row.settings.balance === 'roundrobin') {
    return `Round-robin gives each member its turn whatever it is doing: the slow member gets a third of the clients (${share} here), and every one of them waits for it, so the slow tail reaches the 90th percentile (p90 ${n1(f.p90)} ms, p99 ${n1(f.p99)} ms). This is nginx's default and HAProxy's "balance roundrobin": right when the members are alike.`;
  }
  const rr = sibling(row, rows, (r) => r.settings.balance === 'roundrobin');
  const compare = rr === undefined ? '' : ` (round-robin: ${n0(rr.figures.slowShare * 100)}%, p90 ${n1(rr.figures.p90)} ms)`;
  return `Least connections sends each new client to the member with the fewest open connections. A slow member holds its clients longer, so it has more open and gets new ones only when the fast members are as busy: ${share} of the clients here${compare}, and p90 ${n1(f.p90)} ms. The slow member is not avoided entirely - when every member has the same count the tie goes round - so the p99 still shows it whenever more than 1% of the clients land there. nginx's least_conn, HAProxy's "balance leastconn".`;
}

export const experiment: Experiment = {
  n: 10,
  title: 'leastconn vs roundrobin with one slow member',
  rows: (p) => (['roundrobin', 'leastconn'] as const).map((balance) => plan('10', 'level', { balance }, () => balanceRun(p, balance))),
  explain,
};
