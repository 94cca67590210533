// Experiment 3: two bulk streams through one rsp: does each get its share?
// Level mode takes turns by itself; edge mode needs the read budget.
import { explained, plan, sibling, type Experiment, type LabRow } from '../experiment';
import { MB, type LabParams, type Mode } from '../params';
import { REQUEST, withRsp } from '../peer';
import { diffCounters, type RspSettings } from '../rsp';
import { n0, n1, pct } from '../table';

const HIGH_WATER = 1024 * 1024; // rsp's default highWaterMark, which the lab leaves alone
const SAMPLE_MS = 100;

/**
 * 3: two bulk streams through one rsp with small reads (fairReadSize, so
 * that rsp is the slowest part), measured over a window that opens once both
 * flow (or after fairStartMs if one never starts).
 */
export async function fairness(mode: Mode, readBudget: number, p: LabParams): Promise<LabRow> {
  const settings: RspSettings = { triggerMode: mode, readBufferSize: p.fairReadSize, readBudget };
  return withRsp(settings, (peer, fd) => peer.bulkSender(fd, Infinity), async (rsp, peer) => {
    const received = [0, 0];
    const firstByteMs = [-1, -1];
    const start = performance.now();
    for (const i of [0, 1]) {
      const client = peer.connect(rsp.port, {
        data: (_c, _d, length) => {
          if (received[i] === 0) firstByteMs[i] = performance.now() - start;
          received[i] += length;
        },
      });
      client.write(REQUEST, REQUEST.length);
    }
    const bothFlowing = await peer.drive(() => received[0] > 0 && received[1] > 0 && received[0] + received[1] >= p.fairWarmBytes, p.fairStartMs);
    const a = await rsp.snapshot();
    const from = [...received];
    const t0 = performance.now();
    // Each stream's bytes every SAMPLE_MS, for the shares-over-time chart.
    const series = { t: [0], stream1: [0], stream2: [0] };
    const sample = (now: number): void => {
      series.t.push((now - t0) / 1000);
      series.stream1.push(received[0] - from[0]);
      series.stream2.push(received[1] - from[1]);
    };
    let nextSample = t0 + SAMPLE_MS;
    await peer.drive(() => {
      const now = performance.now();
      if (now >= nextSample) {
        sample(now);
        nextSample += SAMPLE_MS;
      }
      return received[0] - from[0] + received[1] - from[1] >= p.fairWindowBytes;
    }, p.fairWindowMs);
    sample(performance.now());
    const seconds = (performance.now() - t0) / 1000;
    const got = [received[0] - from[0], received[1] - from[1]];
    const b = await rsp.snapshot();
    await rsp.stop();
    const c = diffCounters(b, a);
    const total = got[0] + got[1];
    const figures = {
      readBudget,
      bothFlowing: bothFlowing ? 1 : 0,
      startWaitMs: p.fairStartMs,
      /** The stream that had not had a byte when the window opened (0: both had). */
      silentAtStart: from[0] === 0 ? 1 : from[1] === 0 ? 2 : 0,
      firstByteMs1: firstByteMs[0],
      firstByteMs2: firstByteMs[1],
      windowSeconds: seconds,
      windowMB: total / MB,
      mbPerSecond: total / MB / seconds,
      share1: total > 0 ? got[0] / total : 0,
      share2: total > 0 ? got[1] / total : 0,
      smallerShare: total > 0 ? Math.min(got[0], got[1]) / total : 0,
      readSize: p.fairReadSize,
      reads: c.reads,
      bytesPerRead: c.bytesRead / Math.max(1, c.reads),
      deferred: c.deferred,
      readsPerWait: c.reads / Math.max(1, c.waits),
      peakQueue: c.peakQueue,
    };
    const rowSettings: RspSettings = mode === 'edge' ? { readBufferSize: p.fairReadSize, readBudget } : { readBufferSize: p.fairReadSize };
    return explained(explain, {
      experiment: 3,
      label: '3',
      title: 'fairness: two bulk streams',
      mode,
      settings: rowSettings,
      figures,
      result: `shares ${pct(figures.share1)} / ${pct(figures.share2)} of ${n0(figures.windowMB)} MB in ${n1(seconds)} s`,
      explanation: '',
      counters: c,
      series,
    });
  });
}

export function explain(row: LabRow, rows: LabRow[]): string {
  const f = row.figures;
  const edge = row.mode === 'edge';
  const budget = Number(row.settings.readBudget ?? 16);
  const s1 = pct(f.share1);
  const s2 = pct(f.share2);
  const size = f.readSize >= 1024 && f.readSize % 1024 === 0 ? `${f.readSize / 1024} KB` : `${f.readSize} B`;
  const full = f.bytesPerRead >= f.readSize * 0.99 ? `; every read got the full ${size}, so rsp never found a socket empty` : `; reads got ${n0(f.bytesPerRead)} bytes on average`;
  const head = `Two clients download as fast as they can through one rsp, which reads in ${size} pieces (readBufferSize = ${f.readSize}) so that rsp, not this lab process or TCP, is the slowest part${full}. Over ${n1(f.windowSeconds)} s${f.bothFlowing ? ' after both streams were flowing' : f.silentAtStart ? ` (opened after ${n1(f.startWaitMs / 1000)} s although stream ${f.silentAtStart} had not had a single byte yet)` : ` (opened after ${n1(f.startWaitMs / 1000)} s)`}, stream 1 got ${s1} and stream 2 ${s2} of ${n0(f.windowMB)} MB.`;
  if (!edge) {
    return `${head} Level-triggered, rsp reads once per socket per report, and every epoll_wait reports both backend sockets while they hold bytes (${n1(f.readsPerWait)} reads per epoll_wait), so the streams take turns ${size} by ${size}: fair shares with no extra machinery (readBudget matters only where rsp reads more than once per report: edge mode, or readPolicy = \"drain\").`;
  }
  if (budget > 0) {
    return `${head} Edge-triggered, rsp must read a reported socket until it is empty, and a socket the backend keeps filling never empties: left alone, the first stream could keep rsp to itself. readBudget = ${budget} stops after ${budget} reads (${n0((budget * f.readSize) / 1024)} KB), puts the socket on rsp's own ready list (${n0(f.deferred)} times in this window) and lets the other stream have its turn, so each gets about half${f.smallerShare >= 0.4 ? '' : ' (not quite here: see the figures)'}.`;
  }
  const other = sibling(row, rows, (r) => r.mode === 'edge' && Number(r.settings.readBudget ?? 16) > 0);
  const rpw = other ? ` against ${n1(other.figures.readsPerWait)} with the budget` : '';
  const late = f.firstByteMs2 >= 0 && f.firstByteMs1 >= 0 && Math.abs(f.firstByteMs2 - f.firstByteMs1) >= 5
    ? ` At the start, stream ${f.firstByteMs2 > f.firstByteMs1 ? 2 : 1} got its first byte ${n0(Math.abs(f.firstByteMs2 - f.firstByteMs1))} ms after the other.`
    : '';
  const hog = f.share1 >= f.share2 ? 1 : 2;
  const outcome = f.smallerShare < 0.1
    ? `Stream ${3 - hog} was all but starved (${pct(f.smallerShare)}).`
    : f.smallerShare < 0.4
      ? `The starvation shows, but only partly (${s1} / ${s2}).`
      : `In this run the shares still came out close to even (${s1} / ${s2}).`;
  return `${head} readBudget = 0 removes the per-turn limit, as in the C rsp: once epoll reports a backend socket, rsp reads it until it is empty, which rarely happens while the backend keeps it full (${n0(f.readsPerWait)} reads per epoll_wait${rpw}); meanwhile the other stream waits.${late} ${outcome} What lets the other stream through at all is backpressure: rsp queues what a client cannot take yet, and when that queue passes highWaterMark (${n0(HIGH_WATER / 1024)} KB; the largest queue here was ${n0(f.peakQueue / 1024)} KB) rsp stops reading that stream's backend, the read loop ends, and the other stream is served until the first resumes. So the shares measure how often backpressure interrupts the hog (it varies from run to run), not a total monopoly.`;
}

export const experiment: Experiment = {
  n: 3,
  title: 'two competing bulk streams (fairness)',
  rows: (p) => [
    plan('3', 'level', { readBufferSize: p.fairReadSize }, () => fairness('level', 16, p)),
    plan('3', 'edge', { readBufferSize: p.fairReadSize, readBudget: 16 }, () => fairness('edge', 16, p)),
    plan('3', 'edge', { readBufferSize: p.fairReadSize, readBudget: 0 }, () => fairness('edge', 0, p)),
  ],
  explain,
};
