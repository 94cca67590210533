// Connection on its own, over a socketpair: queued writes, close after flush,
// errors as closes.
import test from 'ava';
import * as libc from '../ffi/libc';
import { Connection, type ConnectionOwner } from '../src/connection';
import { Reactor } from '../src/reactor';
import { patternBytes, sha256, socketPair } from './helpers';

class Owner implements ConnectionOwner {
  closed: string[] = [];
  data: Buffer[] = [];
  ended = 0;
  drained = 0;
  onConnect(): void {}
  onData(_c: Connection, data: Buffer, length: number): void {
    this.data.push(Buffer.from(data.subarray(0, length)));
  }
  onEnd(): void {
    this.ended++;
  }
  onDrain(): void {
    this.drained++;
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
    t.true(reactor.counters.shortWrites + reactor.counters.writes >= 1);
    const before = conn.queued;
    conn.write(Buffer.from('tail'), 4); // queued behind, never written ahead of the queue
    t.is(conn.queued, before + 4);
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
    t.true(reactor.counters.peakQueue >= before);
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
  conn.write(Buffer.from('again'), 5); // ignored
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
