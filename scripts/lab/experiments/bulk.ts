// Experiment 1: bulk transfer. One connection, a large download from the
// backend to the client through rsp; system calls per MB and epoll_wait
// calls from the counters rsp prints on exit. Three rows: level and edge
// with their defaults (level reads once per event, edge drains), and the
// control that separates the two causes: level mode reading like edge mode
// (readPolicy = "drain": up to readBudget reads per event, until a short read).
import { ctl, explained, plan, sibling, type Experiment, type LabRow } from '../experiment';
import { MB, type LabParams, type Mode } from '../params';
import { REQUEST, withRsp } from '../peer';
import type { RspSettings } from '../rsp';
import { n0, n1, n2, plural } from '../table';

/**
 * 1: one connection, `bulkBytes` from the backend to the client. Figures from
 * the counters rsp prints on exit. `readPolicy`: rsp's default unless given.
 */
export async function bulkTransfer(mode: Mode, p: LabParams, readPolicy?: 'drain'): Promise<LabRow> {
  const extra: RspSettings = readPolicy !== undefined ? { readPolicy } : {};
  return withRsp({ triggerMode: mode, ...extra }, (peer, fd) => peer.bulkSender(fd, p.bulkBytes), async (rsp, peer) => {
    let received = 0;
    let ended = false;
    const start = performance.now();
    const client = peer.connect(rsp.port, {
      data: (_c, _d, length) => (received += length),
      end: (c) => {
        ended = true;
        c.close();
      },
    });
    client.write(REQUEST, REQUEST.length);
    if ((await peer.driveWhileMoving(() => received >= p.bulkBytes, () => received, p.stallMs)) === 'stalled') {
      throw new Error(`bulk transfer stalled: ${received} of ${p.bulkBytes} bytes, then nothing for ${p.stallMs} ms`);
    }
    const seconds = (performance.now() - start) / 1000;
    if (received !== p.bulkBytes) throw new Error(`bulk transfer: received ${received} bytes, expected ${p.bulkBytes}`);
    // The backend ended after its last byte; rsp should pass that end on. Measured
    // apart from the throughput, and waited for only so long (see docs/lab.md).
    const endForwarded = await peer.drive(() => ended, Math.min(p.stallMs, 2000));
    const c = await rsp.stop();
    const mb = received / MB;
    const figures = {
      megabytes: mb,
      seconds,
      mbPerSecond: mb / seconds,
      syscalls: c.syscalls,
      syscallsPerMB: c.syscalls / mb,
      epollWaits: c.waits,
      reads: c.reads,
      readsEagain: c.readsEagain,
      readsPerWait: c.reads / Math.max(1, c.waits),
      writes: c.writes,
      deferred: c.deferred,
      ctl: ctl(c),
      endForwarded: endForwarded ? 1 : 0,
    };
    return explained(explain, {
      experiment: 1,
      label: '1',
      title: `bulk transfer, ${n0(mb)} MB`,
      mode,
      settings: extra,
      figures,
      result: `${n0(figures.mbPerSecond)} MB/s · ${n1(figures.syscallsPerMB)} syscalls/MB · ${n0(c.waits)} epoll_wait${endForwarded ? '' : ' · END NOT FORWARDED'}`,
      explanation: '',
      counters: c,
    });
  });
}

export function explain(row: LabRow, rows: LabRow[]): string {
  const f = row.figures;
  const edge = row.mode === 'edge';
  const head = `rsp copied ${n0(f.megabytes)} MB from the backend to the client at ${n0(f.mbPerSecond)} MB/s, with ${n1(f.syscallsPerMB)} system calls per MB (${n0(f.reads)} reads, ${n0(f.writes)} writes, ${n0(f.epollWaits)} epoll_wait calls in all).`;
  const lost = f.endForwarded === 0
    ? ' Note: every byte arrived, but rsp never passed on the backend\'s end of stream (its FIN): in edge mode a connection that spends its read budget continues from rsp\'s ready list without the EPOLLRDHUP it was reported with, takes the last short read as "socket empty", and the end, already there, brings no new edge. An rsp bug (fixed once already, see docs/lab.md).'
    : '';
  const tail = ` The MB/s also depend on this lab process, which plays both ends on the same machine; the system-call counts are rsp's alone.${lost}`;
  const drain = row.settings.readPolicy === 'drain';
  const levelOnce = sibling(row, rows, (r) => r.mode === 'level' && r.settings.readPolicy === undefined);
  const levelDrain = sibling(row, rows, (r) => r.mode === 'level' && r.settings.readPolicy === 'drain');
  const edgeRow = sibling(row, rows, (r) => r.mode === 'edge');
  const perMB = (r: LabRow | undefined): string => (r ? n1(r.figures.syscallsPerMB) : '?');
  if (!edge && !drain) {
    const control = levelDrain && edgeRow
      ? ` Edge mode needed ${perMB(edgeRow)} per MB, but the control row (level-triggered too, reading like edge mode) needed ${perMB(levelDrain)}: the difference comes from how many reads rsp makes per report, not from the trigger mode.`
      : '';
    return `${head} Level-triggered epoll reports the backend socket on every epoll_wait for as long as it holds unread bytes, and by default (readPolicy = "auto") rsp reads once (up to 64 KB, its readBufferSize) per report and goes back to epoll_wait, which returns at once because the socket is still readable: ${n2(f.readsPerWait)} reads per epoll_wait here. Nothing can be missed that way, but every 64 KB costs one more trip into the kernel just to hear again what rsp already knew.${control}${tail}`;
  }
  if (!edge) {
    const versus = levelOnce && edgeRow
      ? ` That is ${perMB(row)} system calls per MB against ${perMB(levelOnce)} for level mode reading once per report, and ${perMB(edgeRow)} for edge mode: ${Math.abs(f.syscallsPerMB - edgeRow.figures.syscallsPerMB) < Math.abs(levelOnce.figures.syscallsPerMB - edgeRow.figures.syscallsPerMB) ? 'close to edge mode, so the saving that this table used to credit to edge triggering comes from the read policy' : 'not as close to edge mode as expected: see the figures'}.`
      : '';
    return `${head} The control row: level-triggered as in the first row, but with readPolicy = "drain", so rsp reads after each report as edge mode does, until a read returns fewer bytes than asked (the socket is then empty) or readBudget = 16 reads are done. Level-triggered epoll needs no ready list for a socket left unread when the budget is spent: the next epoll_wait reports it again. One epoll_wait so covered ${n1(f.readsPerWait)} reads.${versus}${tail}`;
  }
  const control = levelDrain ? ` The level-mode row with the same read policy needed ${perMB(levelDrain)} per MB${levelOnce ? `, against ${perMB(levelOnce)} for level mode reading once per report` : ''}: fewer system calls per MB come from reading more per report, which level mode can do too, not from edge triggering itself. What edge mode cannot do is read less: it must drain, or stall (experiment 5).` : '';
  return `${head} Edge-triggered epoll reports the backend socket only when new bytes arrive, so after each report rsp keeps reading until the socket is empty (a read returns fewer bytes than asked, or read() answers EAGAIN), but at most readBudget = 16 reads before other connections get a turn; the connection then waits on rsp's own ready list instead of in epoll (${n0(f.deferred)} times here). One epoll_wait so covered ${n1(f.readsPerWait)} reads on average. The backend kept the socket full, so ${plural(f.deferred, 'turn')} ended on the budget; ${plural(f.readsEagain, 'read')} found the socket empty (EAGAIN).${control}${tail}`;
}

export const experiment: Experiment = {
  n: 1,
  title: 'bulk transfer',
  rows: (p) => [
    plan('1', 'level', {}, () => bulkTransfer('level', p)),
    plan('1', 'level', { readPolicy: 'drain' }, () => bulkTransfer('level', p, 'drain')),
    plan('1', 'edge', {}, () => bulkTransfer('edge', p)),
  ],
  explain,
};
