// The accept loop when the process runs out of file descriptors.
import test from 'ava';
import * as net from 'node:net';
import * as libc from '../ffi/libc';
import { Listener } from '../src/listener';
import { setLogSink } from '../src/log';
import { Reactor } from '../src/reactor';

test('EMFILE neither exits nor spins: accepts pause, are logged once, and resume by themselves', async (t) => {
  const lines: string[] = [];
  setLogSink((_level, line) => lines.push(line));
  const reactor = new Reactor({ triggerMode: 'level', maxEvents: 64 });
  const accepted: number[] = [];
  const listener = new Listener(reactor, { address: '127.0.0.1', port: 0, backlog: 64, acceptBudget: 64, acceptOnce: false }, (fd) => accepted.push(fd));

  // Lower our own fd limit a little above what is open, then use up the rest.
  const saved = Buffer.alloc(16);
  libc.check('getrlimit', libc.getrlimit(libc.RLIMIT_NOFILE, saved));
  const probe = libc.eventfd(0, libc.EFD_CLOEXEC);
  libc.close(probe);
  const low = Buffer.alloc(16);
  low.writeBigUInt64LE(BigInt(probe + 64), 0);
  low.writeBigUInt64LE(saved.readBigUInt64LE(8), 8);
  libc.check('setrlimit', libc.setrlimit(libc.RLIMIT_NOFILE, low));
  const hogs: number[] = [];
  t.teardown(() => {
    hogs.forEach((fd) => libc.close(fd));
    libc.setrlimit(libc.RLIMIT_NOFILE, saved);
  });
  for (;;) {
    const fd = libc.eventfd(0, libc.EFD_CLOEXEC);
    if (fd < 0) break;
    hogs.push(fd);
  }

  // Node's own sockets need fds too: connect first, then take the last ones.
  const clients: net.Socket[] = [];
  libc.close(hogs.pop()!);
  libc.close(hogs.pop()!);
  await new Promise<void>((resolve) => {
    const c = net.connect(listener.port, '127.0.0.1', () => resolve());
    clients.push(c);
  });
  t.teardown(() => clients.forEach((c) => c.destroy()));
  for (;;) {
    const fd = libc.eventfd(0, libc.EFD_CLOEXEC);
    if (fd < 0) break;
    hogs.push(fd);
  }

  reactor.turn(1000);
  t.is(accepted.length, 0);
  t.is(lines.filter((l) => /accept: EMFILE/.test(l)).length, 1, lines.join('\n'));
  // Out of the epoll set while paused: nothing to report, no busy loop.
  t.false(reactor.isRegistered(listener));
  const waitsBefore = reactor.counters.waits;
  reactor.turn(20); // the retry timer fires, accept fails again, back off again
  reactor.turn(200);
  t.true(reactor.counters.waits - waitsBefore <= 3);
  t.is(lines.filter((l) => /accept: EMFILE/.test(l)).length, 1, 'logged once per episode');

  // Free some fds: the listener comes back by itself and accepts the waiting client.
  for (let i = 0; i < 8; i++) libc.close(hogs.pop()!);
  for (let i = 0; i < 50 && accepted.length === 0; i++) reactor.turn(200);
  t.is(accepted.length, 1);
  t.true(lines.some((l) => /Accepting connections again\./.test(l)));
  accepted.forEach((fd) => libc.close(fd));
  listener.close();
  reactor.close();
});
