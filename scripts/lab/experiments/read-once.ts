// Experiment 5: readPolicy "once", one small read per event: level mode is
// told again while bytes remain, edge mode stalls.
import { explained, plan, type Experiment, type LabRow } from '../experiment';
import { MODES, type LabParams, type Mode } from '../params';
import { REQUEST, withRsp } from '../peer';
import { n0, n1, pct } from '../table';

/**
 * 5: readPolicy "once", readBufferSize 4096: one 4 KB read per event. The
 * backend sends `readOnceBytes` in answer to a 100-byte request and then keeps the
 * connection open; the client waits for all of it, at most readOnceTimeoutMs.
 */
export async function readOnce(mode: Mode, p: LabParams): Promise<LabRow> {
  const settings = { triggerMode: mode, readPolicy: 'once', readBufferSize: 4096 };
  return withRsp(settings, (peer, fd) => peer.bulkSender(fd, p.readOnceBytes, false), async (rsp, peer) => {
    let received = 0;
    const t0 = performance.now();
    const client = peer.connect(rsp.port, { data: (_c, _d, length) => (received += length) });
    client.write(REQUEST, REQUEST.length);
    const complete = await peer.drive(() => received >= p.readOnceBytes, p.readOnceTimeoutMs);
    const ms = performance.now() - t0;
    const snap = await rsp.snapshot();
    await rsp.stop();
    const figures = {
      bytes: p.readOnceBytes,
      received,
      fraction: received / p.readOnceBytes,
      complete: complete ? 1 : 0,
      ms,
      timeoutMs: p.readOnceTimeoutMs,
      reads: snap.reads,
      epollWaits: snap.waits,
    };
    const kb = (b: number): string => `${n0(b / 1024)} KB`;
    return explained(explain, {
      experiment: 5,
      label: '5',
      title: `read once per event, 4 KB reads, ${kb(p.readOnceBytes)} response`,
      mode,
      settings: { readPolicy: 'once', readBufferSize: 4096 },
      figures,
      result: complete
        ? `all ${kb(received)} in ${n0(ms)} ms (${n0(snap.reads)} reads, ${n0(snap.waits)} epoll_wait)`
        : `stalled: ${kb(received)} of ${kb(p.readOnceBytes)} after ${n1(ms / 1000)} s (${n0(snap.reads)} reads)`,
      explanation: '',
      counters: snap,
    });
  });
}

export function explain(row: LabRow, _rows: LabRow[]): string {
  const f = row.figures;
  const edge = row.mode === 'edge';
  const kb = n0(f.bytes / 1024);
  const head = `The backend answered a request with ${kb} KB, and rsp read one 4 KB piece per event and then waited for epoll again (readPolicy = once, readBufferSize = 4096).`;
  if (f.complete) {
    const why = edge
      ? ' Unexpectedly for edge mode, it all arrived in this run'
      : ' Level-triggered epoll kept reporting the socket as long as bytes were left in it, so it all arrived anyway';
    return `${head}${why}: ${kb} KB in ${n0(f.ms)} ms, one 4 KB read per report (${n0(f.reads)} reads, ${n0(f.epollWaits)} epoll_wait calls).`;
  }
  const pieces = Math.round(f.received / 4096);
  return `${head} Edge-triggered epoll reports a socket when new bytes arrive, not while bytes remain. The backend sent until rsp's receive buffer was full (the window TCP advertises to the sender then closes), rsp was told ${pieces === 1 ? 'once' : `${pieces} times`} and forwarded ${pieces === 1 ? 'one 4 KB piece' : `${pieces} pieces of 4 KB`}. That read did make room, 4 KB of it, but rsp's kernel did not tell the backend: TCP avoids advertising small windows (Linux keeps the window closed until at least one MSS, about 64 KB on loopback, or a sixteenth of the buffer is free, and sends a window update only when the window at least doubles). So the backend's kernel, stopped by a closed window, sent nothing more; no new bytes arrived, no new edge came, and rsp waited for a report that never came while the rest of the answer sat in the two kernels, unread by rsp and unsent by the backend. After ${n1(f.timeoutMs / 1000)} s the client had ${n0(f.received / 1024)} of ${kb} KB (${pct(f.fraction)}; ${n0(f.reads)} reads in all). With edge-triggered epoll a program must read until the socket is empty, as rsp's default for edge mode (readPolicy = "drain") does.`;
}

export const experiment: Experiment = {
  n: 5,
  title: 'read once per event (readPolicy "once")',
  rows: (p) => MODES.map((m) => plan('5', m, { readPolicy: 'once', readBufferSize: 4096 }, () => readOnce(m, p))),
  explain,
};
