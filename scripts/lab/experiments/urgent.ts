// Experiment 7: TCP urgent data and EPOLLPRI. A backend sends 1000 × 'A',
// one byte with MSG_OOB, 1000 × 'B', then closes. A plain client reading
// the backend directly gets 2000 bytes (the urgent byte is out of band);
// through rsp it should get the same. It is where "a short read means the
// socket is empty" does not hold: read() stops at the urgent mark.
import * as libc from '../../../ffi/libc';
import { toSockaddr } from '../../../ffi/sockaddr';
import { socketError } from '../../../src/connection';
import { startConnect } from '../../../src/netutils';
import type { Handler } from '../../../src/reactor';
import { explained, plan, sibling, type Experiment, type LabRow } from '../experiment';
import { HOST, MODES, type LabParams, type Mode } from '../params';
import { Peer, REQUEST, withRsp } from '../peer';
import type { RspSettings } from '../rsp';
import { n0, plural } from '../table';

const PART = 1000;
const A = Buffer.alloc(PART, 'A');
const B = Buffer.alloc(PART, 'B');
const URGENT = Buffer.from('!');

/**
 * The backend: waits for the request, then A's, the urgent byte, B's, and
 * close. Everything fits in the socket's send buffer, so each call is one
 * complete write; a failure is kept for the row.
 */
class UrgentSender implements Handler {
  generation = 0;
  readyEvents = 0;
  readonly label = 'lab urgent sender';
  failure = '';
  private readonly scratch = Buffer.alloc(4096);

  constructor(private readonly peer: Peer, readonly fd: number) {
    peer.reactor.add(this, libc.EPOLLIN);
  }

  handle(): void {
    const n = libc.read(this.fd, this.scratch, this.scratch.length);
    if (n < 0 && libc.errno() === libc.EAGAIN) return;
    if (n > 0) {
      const step = (what: string, result: number, length: number): boolean => {
        if (result === length) return true;
        this.failure = `${what} = ${result < 0 ? libc.errnoName(libc.errno()) : result}`;
        return false;
      };
      // Each step only if the one before went through.
      void (step('write A', libc.write(this.fd, A, A.length), A.length) &&
        step('send MSG_OOB', libc.send(this.fd, URGENT, 1, libc.MSG_OOB), 1) &&
        step('write B', libc.write(this.fd, B, B.length), B.length));
    }
    this.abort();
  }

  abort(): void {
    this.peer.reactor.remove(this, true);
    libc.close(this.fd);
  }
}

/**
 * A client as plain as can be, independent of rsp's code: connect, send the
 * request, then read until read() returns 0 (each read until EAGAIN; the
 * lab's reactor is level-triggered, so it is told again when more comes).
 */
class PlainReader implements Handler {
  generation = 0;
  readyEvents = 0;
  readonly label = 'lab plain reader';
  bytes = 0;
  reads = 0;
  /** '' while open; then "closed" (read() returned 0) or the errno name. */
  end = '';
  private connecting: boolean;
  private readonly buf = Buffer.alloc(64 * 1024);
  readonly fd: number;

  constructor(private readonly peer: Peer, port: number) {
    const started = startConnect(toSockaddr(HOST, port));
    this.fd = started.fd;
    this.connecting = started.inProgress;
    if (!this.connecting) this.sendRequest();
    peer.reactor.add(this, this.connecting ? libc.EPOLLOUT : libc.EPOLLIN);
  }

  private sendRequest(): void {
    if (libc.write(this.fd, REQUEST, REQUEST.length) !== REQUEST.length) this.finish(`write: ${libc.errnoName(libc.errno())}`);
  }

  handle(events: number): void {
    if (this.connecting) {
      if ((events & (libc.EPOLLOUT | libc.EPOLLERR | libc.EPOLLHUP)) === 0) return;
      this.connecting = false;
      const err = socketError(this.fd);
      if (err !== 0) return this.finish(`connect: ${libc.errnoName(err)}`);
      this.sendRequest();
      if (this.end === '') this.peer.reactor.modify(this, libc.EPOLLIN);
      return;
    }
    for (let i = 0; i < 64; i++) {
      const n = libc.read(this.fd, this.buf, this.buf.length);
      this.reads++;
      if (n > 0) {
        this.bytes += n;
        continue;
      }
      if (n === 0) return this.finish('closed');
      const err = libc.errno();
      if (err === libc.EAGAIN) return;
      if (err !== libc.EINTR) return this.finish(libc.errnoName(err));
    }
  }

  abort(): void {
    this.finish('lab error');
  }

  finish(end: string): void {
    if (this.end !== '') return;
    this.end = end;
    if (this.peer.reactor.isRegistered(this)) this.peer.reactor.remove(this, true);
    libc.close(this.fd);
  }
}

/** What a plain reader got from `port`: bytes and how it ended ("stalled" if not within timeoutMs). */
async function readAll(peer: Peer, port: number, timeoutMs: number): Promise<PlainReader> {
  const reader = new PlainReader(peer, port);
  if (!(await peer.drive(() => reader.end !== '', timeoutMs))) reader.finish('stalled');
  return reader;
}

/**
 * The trace lines rsp printed for its backend connection: each event and the
 * calls made for it (up to the close), e.g.
 * "fd 12 backend 127.0.0.1:40991: EPOLLIN|EPOLLPRI|EPOLLRDHUP", "read(12) = 1000".
 */
export function backendTrace(output: string): string[] {
  const lines = output.split('\n');
  const out: string[] = [];
  let inside = false;
  for (const line of lines) {
    const event = /^ {2}fd (\d+) (\S+)/.exec(line);
    if (event !== null) inside = event[2] === 'backend';
    else if (!line.startsWith('    ')) inside = false;
    if (inside) out.push(line.trim());
  }
  return out;
}

/** One row: direct first, then through rsp (trace on, to show rsp's reads on the backend socket). */
export async function urgentData(mode: Mode, p: LabParams): Promise<LabRow> {
  const timeoutMs = p.readOnceTimeoutMs;
  const senders: UrgentSender[] = [];
  const backend = (peer: Peer, fd: number): void => void senders.push(new UrgentSender(peer, fd));
  const direct = new Peer();
  let directReader: PlainReader;
  try {
    const port = direct.listen((fd) => backend(direct, fd));
    directReader = await readAll(direct, port, timeoutMs);
  } finally {
    direct.close();
  }
  const settings: RspSettings = { triggerMode: mode, trace: true };
  return withRsp(settings, backend, async (rsp, peer) => {
    const viaRsp = await readAll(peer, rsp.port, timeoutMs);
    const c = await rsp.stop();
    const failure = senders.find((s) => s.failure !== '')?.failure;
    if (failure !== undefined) throw new Error(`the urgent-data backend could not send: ${failure}`);
    const trace = backendTrace(rsp.output());
    const backendReads = trace.filter((l) => /^read\(/.test(l));
    const figures = {
      sent: 2 * PART,
      direct: directReader.bytes,
      directClean: directReader.end === 'closed' ? 1 : 0,
      viaRsp: viaRsp.bytes,
      viaRspClean: viaRsp.end === 'closed' ? 1 : 0,
      viaRspStalled: viaRsp.end === 'stalled' ? 1 : 0,
      lost: directReader.bytes - viaRsp.bytes,
      backendReads: backendReads.length,
      priEvents: trace.filter((l) => /EPOLLPRI/.test(l) && /^fd /.test(l)).length,
      reads: c.reads,
      timeoutMs,
    };
    const ends = (r: PlainReader): string => (r.end === 'closed' ? 'clean end' : r.end);
    return explained(explain, {
      experiment: 7,
      label: '7',
      title: 'urgent data (MSG_OOB) and EPOLLPRI',
      mode,
      settings: { trace: true },
      figures,
      result: `direct ${n0(figures.direct)} B (${ends(directReader)}) · via rsp ${n0(figures.viaRsp)} B (${ends(viaRsp)}) · rsp: ${backendReads.map((l) => l.replace(/^read\(\d+\) = /, '')).join(', ')}`,
      explanation: '',
      counters: c,
      // The trace excerpt, for the explanation and docs.
      trace,
    });
  });
}

export function explain(row: LabRow, rows: LabRow[]): string {
  const f = row.figures;
  // From the event that brought the bytes on (the connect before it is not the point).
  const trace = row.trace ?? [];
  const first = trace.findIndex((l) => /^fd \d+ .*EPOLL(IN|PRI)/.test(l));
  const excerpt = trace.slice(Math.max(0, first), Math.max(0, first) + 8).join(' / ');
  const head = `The backend sent 1,000 × "A", one byte with MSG_OOB (TCP urgent data), 1,000 × "B", and closed. A plain client reading the backend directly got ${n0(f.direct)} bytes and ${f.directClean ? 'a clean end' : 'no clean end'}: the urgent byte travels "out of band" and is not part of the stream a normal read() returns. Through rsp the client got ${n0(f.viaRsp)} bytes${f.viaRspStalled ? ` and then nothing for ${n0(f.timeoutMs)} ms` : f.viaRspClean ? ' and a clean end' : ''}. rsp's trace for its backend socket: ${excerpt}.`;
  const mark = 'The urgent byte sits in the receive queue at the "urgent mark", and read() stops there: the first read returns the 1,000 A\'s, fewer bytes than asked for, although 1,000 B\'s are already waiting behind the mark; the next read() steps over the urgent byte (it is dropped, since SO_OOBINLINE is off) and returns the B\'s.';
  if (f.lost > 0) {
    const other = sibling(row, rows, (r) => r.mode !== row.mode);
    const both = other && other.figures.lost > 0 ? ' The same happens in both trigger modes: it is the read rule, not the trigger.' : '';
    return `${head} ${mark} rsp took that short read as a fact about the stream: a short read means "the socket is empty", and with EPOLLRDHUP (the FIN has arrived) "that was the end", so it ended the client's stream after ${n0(f.viaRsp)} bytes with an orderly close: ${n0(f.lost)} bytes silently lost, and the client cannot tell a cut stream from a complete one.${both} The fix: register EPOLLPRI (epoll's report of urgent data) with EPOLLIN, and never take a short read after EPOLLPRI as "drained" or "ended"; read on, and drop the urgent byte as a normal receiver does.`;
  }
  const pri = f.priEvents > 0 ? ` epoll reported EPOLLPRI (urgent data) on ${plural(f.priEvents, 'event')}, since rsp registers EPOLLPRI with EPOLLIN, and` : '';
  return `${head} ${mark} rsp delivered every byte the direct client got:${pri} after EPOLLPRI it does not take a short read as "drained" or "ended", so it read on past the mark (${plural(f.backendReads, 'read')} on the backend socket) and dropped the urgent byte, as a normal receiver would. The short-read rule ("fewer bytes than asked means the socket is empty") holds for a stream socket except at the urgent mark.`;
}

export const experiment: Experiment = {
  n: 7,
  title: 'urgent data (MSG_OOB) and EPOLLPRI',
  rows: (p) => MODES.map((m) => plan('7', m, { trace: true }, () => urgentData(m, p))),
  explain,
};
