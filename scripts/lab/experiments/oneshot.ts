// Experiment 9: EPOLLONESHOT as the alternative to a ready list. Two
// streams that never run dry, read in small pieces by a loop on a raw
// epoll set. With EPOLLONESHOT the kernel reports an fd once and then
// ignores it until the program re-arms it with EPOLL_CTL_MOD; re-arming
// an fd that still has bytes puts it at the back of epoll's own ready
// list, so the kernel takes turns for the program, for one epoll_ctl per
// event. rsp instead registers each socket once (edge-triggered) and keeps
// a ready list of its own for the sockets that spent their read budget.
// Same loop, same reads, both ways, side by side.
import { spawn } from 'node:child_process';
import * as libc from '../../../ffi/libc';
import { explained, plan, sibling, type Experiment, type LabRow } from '../experiment';
import { HOST, MB, type LabParams, type Mode } from '../params';
import { Peer } from '../peer';
import { RawEpoll } from '../raw-epoll';
import { emptyCounters, track } from '../rsp';
import { n0, n1, n2, pct } from '../table';

export type Strategy = 'oneshot' | 'ready list';

/** Bytes per read and reads per turn: as experiment 3 (rsp with readBufferSize 1024, readBudget 16). */
const READ_SIZE = 1024;
const BUDGET = 16;

/**
 * The feeder: a separate Node process (so that it keeps writing while this
 * one reads) that opens two connections to `port` and writes to both as
 * fast as they take it. It exits when a connection ends.
 */
const FEEDER = `
const net = require('node:net');
const chunk = Buffer.alloc(65536, 'f');
for (let i = 0; i < 2; i++) {
  const s = net.connect(Number(process.argv[1]), process.argv[2]);
  const pump = () => { while (s.write(chunk)); };
  s.on('connect', pump);
  s.on('drain', pump);
  s.on('error', () => process.exit(0));
  s.on('close', () => process.exit(0));
}
`;

interface Stream {
  fd: number;
  bytes: number;
  /** On the ready list (ready-list strategy). */
  queued: boolean;
}

/** Read up to BUDGET pieces; true if the budget ran out before the socket was empty. */
function readTurn(s: Stream, buf: Buffer, count: { reads: number }): boolean {
  for (let i = 0; i < BUDGET; i++) {
    const n = libc.read(s.fd, buf, READ_SIZE);
    count.reads++;
    if (n > 0) {
      s.bytes += n;
      if (n < READ_SIZE) return false; // a short read: empty (no urgent data here)
      continue;
    }
    if (n < 0 && libc.errno() === libc.EINTR) continue;
    if (n < 0 && libc.errno() !== libc.EAGAIN) throw new libc.SysError('read', libc.errno());
    if (n === 0) throw new Error('the feeder closed a stream');
    return false;
  }
  return true;
}

/**
 * One row: accept the feeder's two connections, warm up until both flow,
 * then run the loop for `p.oneshotMs` in 20 ms slices (Node's own loop
 * turns in between) and count.
 */
export async function oneshotLoop(mode: Mode, strategy: Strategy, p: LabParams): Promise<LabRow> {
  const peer = new Peer();
  const ep = new RawEpoll(8);
  const accepted: number[] = [];
  let feeder: ReturnType<typeof spawn> | null = null;
  try {
    const port = peer.listen((fd) => accepted.push(fd));
    feeder = spawn(process.execPath, ['-e', FEEDER, String(port), HOST], { stdio: 'ignore' });
    track(feeder);
    if (!(await peer.drive(() => accepted.length === 2, 10000))) throw new Error(`the feeder connected ${accepted.length} of 2 streams`);
    const streams: Stream[] = accepted.map((fd) => ({ fd, bytes: 0, queued: false }));
    const byFd = new Map(streams.map((s) => [s.fd, s]));
    const et = mode === 'edge' ? libc.EPOLLET : 0;
    const mask = libc.EPOLLIN | et | (strategy === 'oneshot' ? libc.EPOLLONESHOT : 0);
    for (const s of streams) {
      if (ep.ctl(libc.EPOLL_CTL_ADD, s.fd, mask) !== '0') throw new Error('epoll_ctl(ADD) failed');
    }
    const buf = Buffer.alloc(READ_SIZE);
    const count = { reads: 0, rearms: 0 };
    let ready: Stream[] = [];
    /** One loop turn: epoll_wait, a budget for each reported fd, then (ready list) the ones left from the last turn. */
    const turn = (): void => {
      const n = ep.wait(ready.length > 0 ? 0 : 20);
      const last = ready;
      ready = [];
      const serve = (s: Stream): void => {
        s.queued = false;
        const more = readTurn(s, buf, count);
        if (strategy === 'oneshot') {
          // Re-arm: the kernel checks readiness again and, if bytes are left, queues it behind the others.
          if (ep.ctl(libc.EPOLL_CTL_MOD, s.fd, mask) !== '0') throw new Error('epoll_ctl(MOD) failed');
          count.rearms++;
        } else if (more && !s.queued) {
          s.queued = true;
          ready.push(s);
        }
      };
      for (let i = 0; i < n; i++) {
        const s = byFd.get(ep.fdAt(i));
        if (s !== undefined && !s.queued) serve(s);
      }
      for (const s of last) if (s.queued) serve(s);
    };
    const runFor = async (ms: number, until: () => boolean): Promise<number> => {
      const t0 = performance.now();
      const end = t0 + ms;
      while (performance.now() < end && !until()) {
        const slice = Math.min(end, performance.now() + 20);
        while (performance.now() < slice && !until()) turn();
        await new Promise((resolve) => setImmediate(resolve));
      }
      return (performance.now() - t0) / 1000;
    };
    await runFor(3000, () => streams.every((s) => s.bytes > 0) && streams[0].bytes + streams[1].bytes >= p.fairWarmBytes);
    const from = streams.map((s) => s.bytes);
    const before = { reads: count.reads, waits: ep.waits, ctls: ep.ctls, events: ep.events };
    const seconds = await runFor(p.oneshotMs, () => false);
    const got = streams.map((s, i) => s.bytes - from[i]);
    const total = got[0] + got[1];
    const reads = count.reads - before.reads;
    const waits = ep.waits - before.waits;
    const ctls = ep.ctls - before.ctls;
    const events = ep.events - before.events;
    const mb = total / MB;
    const figures = {
      windowSeconds: seconds,
      windowMB: mb,
      mbPerSecond: mb / seconds,
      share1: total > 0 ? got[0] / total : 0,
      share2: total > 0 ? got[1] / total : 0,
      smallerShare: total > 0 ? Math.min(got[0], got[1]) / total : 0,
      reads,
      epollWaits: waits,
      epollCtl: ctls,
      events,
      ctlPerEvent: ctls / Math.max(1, events),
      readsPerWait: reads / Math.max(1, waits),
      syscallsPerMB: (reads + waits + ctls) / Math.max(0.001, mb),
      ctlPerMB: ctls / Math.max(0.001, mb),
    };
    const subject = strategy === 'oneshot'
      ? `no rsp: raw epoll, EPOLLONESHOT${et ? '|EPOLLET' : ''}, re-armed with MOD`
      : 'no rsp: raw epoll, EPOLLET once + ready list (rsp\'s way)';
    return explained(explain, {
      experiment: 9,
      label: '9',
      title: 'EPOLLONESHOT vs a ready list: two streams',
      mode,
      settings: { strategy },
      subject,
      figures,
      result: `shares ${pct(figures.share1)} / ${pct(figures.share2)} · ${n2(figures.ctlPerEvent)} epoll_ctl/event · ${n1(figures.syscallsPerMB)} syscalls/MB`,
      explanation: '',
      counters: emptyCounters(),
    });
  } finally {
    ep.close();
    for (const fd of accepted) libc.close(fd);
    peer.close();
    feeder?.kill('SIGKILL');
  }
}

export function explain(row: LabRow, rows: LabRow[]): string {
  const f = row.figures;
  const oneshot = row.settings.strategy === 'oneshot';
  const head = `Two streams that never run dry (a separate process writes to both as fast as they take it), read ${READ_SIZE} bytes at a time, at most ${BUDGET} reads per turn, by a small loop on a raw epoll set. Over ${n1(f.windowSeconds)} s stream 1 got ${pct(f.share1)} and stream 2 ${pct(f.share2)} of ${n0(f.windowMB)} MB, with ${n0(f.epollWaits)} epoll_wait, ${n0(f.reads)} reads and ${n0(f.epollCtl)} epoll_ctl calls (${n1(f.syscallsPerMB)} system calls per MB).`;
  const ready = sibling(row, rows, (r) => r.settings.strategy === 'ready list');
  if (oneshot) {
    const versus = ready ? ` The ready-list row below needed ${n0(ready.figures.epollCtl)} epoll_ctl calls (${n1(ready.figures.syscallsPerMB)} system calls per MB) for ${pct(ready.figures.share1)} / ${pct(ready.figures.share2)}.` : '';
    const trig = row.mode === 'edge'
      ? ' Edge-triggered or not makes no difference here: re-arming checks readiness afresh, so bytes left behind are reported again without a new edge.'
      : ' Level-triggered or edge-triggered makes no difference here: re-arming checks readiness afresh either way.';
    return `${head} Each fd is registered with EPOLLONESHOT: after epoll reports it once, the kernel ignores it until the program re-arms it with EPOLL_CTL_MOD. The loop reads its budget, then re-arms; if bytes are left, re-arming puts the fd at the back of epoll's own ready list, behind the other stream, so the kernel takes the turns and nothing is lost or starved, with no ready list in the program.${trig} The price is one epoll_ctl per event handled (${n2(f.ctlPerEvent)} here, ${n1(f.ctlPerMB)} per MB), a system call rsp does not make.${versus} EPOLLONESHOT's real purpose is several threads waiting on one epoll set: an fd reported to one thread stays silent for the others until that thread re-arms it. rsp has one epoll set per thread, so it does not need that guarantee.`;
  }
  const one = sibling(row, rows, (r) => r.settings.strategy === 'oneshot' && r.mode === row.mode);
  const versus = one ? ` (EPOLLONESHOT, same trigger mode: ${n0(one.figures.epollCtl)} epoll_ctl, ${n1(one.figures.syscallsPerMB)} per MB)` : '';
  return `${head} This is rsp's way: each fd is registered once, edge-triggered, and never modified: no epoll_ctl in the window${versus}. A stream that spends its read budget goes on the loop's own ready list and gets its next turn after epoll_wait has been asked (with timeout 0) what else is ready, so the two take turns as fairly as with EPOLLONESHOT. The program keeps the list, the kernel keeps the registration untouched.`;
}

export const experiment: Experiment = {
  n: 9,
  title: 'EPOLLONESHOT vs a ready list',
  rows: (p) => [
    plan('9', 'level', { strategy: 'oneshot' }, () => oneshotLoop('level', 'oneshot', p)),
    plan('9', 'edge', { strategy: 'oneshot' }, () => oneshotLoop('edge', 'oneshot', p)),
    plan('9', 'edge', { strategy: 'ready list' }, () => oneshotLoop('edge', 'ready list', p)),
  ],
  explain,
};
