// Connection on its own, over a socketpair (or a TCP pair where TCP is the
// point): queued writes, close after flush, errors as closes.
import test from 'ava';
import * as net from 'node:net';
import * as libc from '../ffi/libc';
import { Connection, type ConnectionOwner } from '../src/connection';
import { Reactor } from '../src/reactor';
import { Splice } from '../src/splice';
import { listen, once, patternBytes, sha256, socketPair, waitUntil } from './helpers';
import { acknowledged, connectFd, sendUrgent } from './sockets';

class Owner implements ConnectionOwner {
  closed: string[] = [];
  data: Buffer[] = [];
  ended = 0;
  drained = 0;
  /** conn.queued at each onDrain call. */
  queuedAtDrain: number[] = [];
  onConnect(): void {}
  onData(_c: Connection, data: Buffer, length: number): void {
    this.data.push(Buffer.from(data.subarray(0, length)));
  }
  onEnd(): void {
    this.ended++;
  }
  onDrain(c: Connection): void {
    this.drained++;
    this.queuedAtDrain.push(c.queued);
  }
  onClose(_c: Connection, cause: string): void {
    this.closed.push(cause);
  }
}

const limits = { highWater: 1 << 20, lowWater: 1 << 18, readBudget: 16, readSize: 65536, readOnce: false, readToEagain: false, outAlways: false, rdhup: true };

/** Read everything available on `fd` into `into`; true once EOF was seen. */
function drain(fd: number, into: Buffer[]): boolean {
  const buf = Buffer.alloc(65536);
  for (;;) {
    const n = libc.read(fd, buf, buf.length);
    if (n > 0) into.push(Buffer.from(buf.subarray(0, n)));
    else return n === 0;
  }
}

for (const mode of ['level', 'edge'] as const) {
  test(`a short write queues the rest, EPOLLOUT flushes it, and close() waits for the flush (${mode})`, (t) => {
    const reactor = new Reactor({ triggerMode: mode, maxEvents: 16 });
    const [x, y] = socketPair();
    const small = Buffer.alloc(4);
    small.writeInt32LE(4096);
    libc.setsockopt(x, libc.SOL_SOCKET, libc.SO_SNDBUF, small, 4);
    const owner = new Owner();
    const conn = new Connection(reactor, x, owner, limits);
    const payload = patternBytes(2 * 1024 * 1024, 5);
    conn.write(payload, payload.length);
    t.true(conn.queued > 0, 'the kernel did not take 2 MB at once');
    // One write(), short: what it took is written, the rest queued.
    t.is(reactor.counters.writes, 1);
    t.is(reactor.counters.shortWrites, 1);
    t.is(reactor.counters.bytesWritten + conn.queued, payload.length);
    t.is(reactor.counters.bytesQueued, conn.queued);
    const before = conn.queued;
    conn.write(Buffer.from('tail'), 4); // queued behind, never written ahead of the queue
    t.is(conn.queued, before + 4);
    t.is(reactor.counters.writes, 1, 'no write() while something is queued');
    conn.close();
    t.false(conn.isClosed, 'close() waits for the queue');

    const got: Buffer[] = [];
    let eof = false;
    for (let turns = 0; !eof && turns < 10000; turns++) {
      eof = drain(y, got);
      reactor.turn(100);
    }
    t.true(eof, 'the peer saw EOF after the data');
    const all = Buffer.concat(got);
    t.is(all.length, payload.length + 4);
    t.is(sha256(all), sha256(Buffer.concat([payload, Buffer.from('tail')])));
    t.deepEqual(owner.closed, ['closed']);
    t.is(reactor.counters.peakQueue, before + 4);
    t.is(reactor.counters.bytesWritten, payload.length + 4);
    t.true(reactor.counters.writes > 1);
    libc.close(y);
    reactor.close();
  });
}

test('writing to a peer that has gone is a close with the errno name, not a crash', (t) => {
  const reactor = new Reactor({ triggerMode: 'level', maxEvents: 16 });
  const [x, y] = socketPair();
  const owner = new Owner();
  const conn = new Connection(reactor, x, owner, limits);
  libc.close(y);
  conn.write(Buffer.from('hello'), 5);
  // What the peer sent before it went would still be read first: the close
  // comes from the read side, with the write's errno.
  for (let turns = 0; !conn.isClosed && turns < 10; turns++) reactor.turn(100);
  t.deepEqual(owner.closed, ['EPIPE']);
  t.true(conn.isClosed);
  const writes = reactor.counters.writes;
  conn.write(Buffer.from('again'), 5); // ignored: no write(), no second close
  t.is(reactor.counters.writes, writes);
  t.deepEqual(owner.closed, ['EPIPE']);
  t.deepEqual(reactor.counters.closes, { EPIPE: 1 });
  reactor.close();
});

test('end() shuts down only the sending half; reading goes on', (t) => {
  const reactor = new Reactor({ triggerMode: 'level', maxEvents: 16 });
  const [x, y] = socketPair();
  const owner = new Owner();
  const conn = new Connection(reactor, x, owner, limits);
  conn.write(Buffer.from('bye'), 3);
  conn.end();
  const got: Buffer[] = [];
  t.true(drain(y, got), 'peer sees EOF');
  t.is(Buffer.concat(got).toString(), 'bye');
  libc.write(y, Buffer.from('still talking'), 13);
  reactor.turn(1000);
  t.is(Buffer.concat(owner.data).toString(), 'still talking');
  libc.shutdown(y, libc.SHUT_WR);
  reactor.turn(1000);
  t.is(owner.ended, 1);
  t.deepEqual(owner.closed, []);
  conn.close();
  t.deepEqual(owner.closed, ['closed']);
  libc.close(y);
  reactor.close();
});

for (const mode of ['level', 'edge'] as const) {
  test(`pauseReading() leaves bytes in the kernel, resumeReading() picks them up without a new event (${mode})`, (t) => {
    const reactor = new Reactor({ triggerMode: mode, maxEvents: 16 });
    const [x, y] = socketPair();
    const owner = new Owner();
    const conn = new Connection(reactor, x, owner, limits);
    conn.pauseReading();
    libc.write(y, Buffer.from('waiting'), 7);
    for (let i = 0; i < 3; i++) reactor.turn(50);
    t.deepEqual(owner.data, [], 'nothing read while paused');
    const ctlMod = reactor.counters.ctlMod;
    conn.resumeReading();
    // Level: EPOLLIN is registered again; edge: no new edge will come for
    // bytes that were already there, so the connection puts itself on the ready list.
    if (mode === 'level') t.is(reactor.counters.ctlMod, ctlMod + 1);
    else t.is(reactor.counters.deferred, 1);
    reactor.turn(1000);
    t.is(Buffer.concat(owner.data).toString(), 'waiting');
    conn.close();
    libc.close(y);
    reactor.close();
  });

  test(`onDrain() comes once, when the queue is down to the low-water mark (${mode})`, (t) => {
    const reactor = new Reactor({ triggerMode: mode, maxEvents: 16 });
    const [x, y] = socketPair();
    const small = Buffer.alloc(4);
    small.writeInt32LE(4096);
    libc.setsockopt(x, libc.SOL_SOCKET, libc.SO_SNDBUF, small, 4);
    const owner = new Owner();
    const settings = { ...limits, highWater: 256 * 1024, lowWater: 64 * 1024 };
    const conn = new Connection(reactor, x, owner, settings);
    const payload = patternBytes(512 * 1024, 9);
    conn.write(payload, payload.length);
    t.true(conn.queued > settings.highWater);
    conn.wantDrain();
    const got: Buffer[] = [];
    for (let turns = 0; owner.drained === 0 && turns < 10000; turns++) {
      // Read a little at a time, so the queue goes down in steps.
      const buf = Buffer.alloc(8192);
      const n = libc.read(y, buf, buf.length);
      if (n > 0) got.push(buf.subarray(0, n));
      reactor.turn(100);
    }
    t.is(owner.drained, 1);
    t.true(owner.queuedAtDrain[0] <= settings.lowWater, `queued ${owner.queuedAtDrain[0]} at onDrain`);
    for (let turns = 0; conn.queued > 0 && turns < 10000; turns++) {
      drain(y, got);
      reactor.turn(100);
    }
    drain(y, got);
    t.is(owner.drained, 1, 'once per wantDrain()');
    t.is(sha256(Buffer.concat(got)), sha256(payload));
    conn.close();
    libc.close(y);
    reactor.close();
  });
}

/** tcp_info's first byte, tcpi_state (getsockopt TCP_INFO): it does not take the socket's pending error, as a read would. */
function tcpState(fd: number): number {
  const info = Buffer.alloc(256);
  const length = Buffer.alloc(4);
  length.writeUInt32LE(info.length, 0);
  libc.check('getsockopt(TCP_INFO)', libc.getsockopt(fd, libc.IPPROTO_TCP, TCP_INFO, info, length));
  return info[0];
}
const TCP_INFO = 11;
const TCP_CLOSE = 7;

test('zero copy: a reset that comes after epoll_wait, behind an urgent byte, is the end splice() and read() report: a reset, never a FIN', async (t) => {
  // The race it pins down (found by the streams property test): epoll said
  // EPOLLIN|EPOLLPRI; then the backend's reset arrived. splice() stops at the
  // urgent mark and returns the socket's error, which takes it; the read()
  // that steps over the mark then returns 0, which is the reset, not a FIN.
  const server = net.createServer();
  const port = await listen(t, server);
  const accepted = once(server, 'connection', 'the accept');
  const fd = connectFd(port);
  t.teardown(() => libc.close(fd));
  const [peer] = (await accepted) as [net.Socket];
  peer.on('error', () => {});
  await new Promise<void>((resolve) => peer.write(Buffer.alloc(1000, 'A'), () => resolve()));
  sendUrgent(peer);
  await acknowledged(peer);
  peer.resetAndDestroy();
  await waitUntil(() => tcpState(fd) === TCP_CLOSE, 'the reset to arrive');

  const reactor = new Reactor({ triggerMode: 'edge', maxEvents: 16 });
  const owner = new (class extends Owner {
    spliced = 0;
    onSpliced(_c: Connection, length: number): void {
      this.spliced += length;
    }
  })();
  const conn = new Connection(reactor, fd, owner, limits);
  const fds = Buffer.alloc(8);
  libc.check('pipe2', libc.pipe2(fds, libc.O_NONBLOCK | libc.O_CLOEXEC));
  const pipe = new Splice(reactor, fds.readInt32LE(0), fds.readInt32LE(4), 65536);
  t.teardown(() => pipe.close());
  conn.splice = pipe;
  // The event as epoll_wait collected it, before the reset came: no EPOLLERR.
  conn.handle(libc.EPOLLIN | libc.EPOLLPRI);
  t.is(owner.spliced, 1000, 'the bytes before the mark, through the pipe');
  t.is(owner.ended, 0, 'no FIN');
  t.deepEqual(owner.closed, ['ECONNRESET']);
  reactor.close();
});
