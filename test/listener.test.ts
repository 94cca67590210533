// The accept loop when the process runs out of file descriptors, on a
// reactor driven by the test itself, in both trigger modes.
import test, { type ExecutionContext } from 'ava';
import * as net from 'node:net';
import * as libc from '../ffi/libc';
import { Listener } from '../src/listener';
import { setLogSink } from '../src/log';
import { Reactor } from '../src/reactor';
import { MODES, within } from './helpers';

// One test at a time: they lower this process's own fd limit.
const serial = test.serial;

interface Setup {
  reactor: Reactor;
  listener: Listener;
  accepted: number[];
  lines: string[];
  hogs: number[];
}

/**
 * A listener with `clients` connections waiting in its backlog, in a process
 * that has no fd left to accept them with.
 */
async function exhausted(t: ExecutionContext, mode: (typeof MODES)[number], clients: number): Promise<Setup> {
  const lines: string[] = [];
  setLogSink((_level, line) => lines.push(line));
  const reactor = new Reactor({ triggerMode: mode, maxEvents: 64 });
  const accepted: number[] = [];
  const listener = new Listener(reactor, { address: '127.0.0.1', port: 0, backlog: 64, acceptBudget: 64, acceptOnce: false }, (fd) => accepted.push(fd));
  const sockets: net.Socket[] = [];
  const hogs: number[] = [];
  const saved = Buffer.alloc(16);
  libc.check('getrlimit', libc.getrlimit(libc.RLIMIT_NOFILE, saved));
  t.teardown(() => {
    hogs.forEach((fd) => libc.close(fd));
    libc.setrlimit(libc.RLIMIT_NOFILE, saved);
    sockets.forEach((s) => s.destroy());
    accepted.forEach((fd) => libc.close(fd));
    listener.close();
    reactor.close();
  });
  // The clients (this process's own sockets need fds too) first: they wait in
  // the listener's backlog, unaccepted.
  for (let i = 0; i < clients; i++) {
    const s = net.connect(listener.port, '127.0.0.1');
    s.on('error', () => {});
    sockets.push(s);
    await within(new Promise((r) => s.once('connect', r)), 20000, `client ${i + 1} to connect`);
  }
  // Lower our own fd limit a little above what is open, then use up the rest.
  const probe = libc.eventfd(0, libc.EFD_CLOEXEC);
  libc.close(probe);
  const low = Buffer.alloc(16);
  low.writeBigUInt64LE(BigInt(probe + 64), 0);
  low.writeBigUInt64LE(saved.readBigUInt64LE(8), 8);
  libc.check('setrlimit', libc.setrlimit(libc.RLIMIT_NOFILE, low));
  for (let i = 0; i < 10000; i++) {
    const fd = libc.eventfd(0, libc.EFD_CLOEXEC);
    if (fd < 0) break;
    hogs.push(fd);
  }
  return { reactor, listener, accepted, lines, hogs };
}

const emfileLines = (lines: string[]): string[] => lines.filter((l) => /accept: EMFILE/.test(l));
const againLines = (lines: string[]): string[] => lines.filter((l) => /Accepting connections again\./.test(l));

/** Turn the reactor (waiting as long as it likes) until `condition` holds; a bounded number of turns. */
function turnUntil(reactor: Reactor, condition: () => boolean, what: string): void {
  for (let i = 0; i < 1000 && !condition(); i++) reactor.turn(200);
  if (!condition()) throw new Error(`never happened: ${what}`);
}

for (const mode of MODES) {
  serial(`EMFILE neither exits nor spins: accepts pause, are logged once, and resume by themselves (${mode})`, async (t) => {
    const { reactor, listener, accepted, lines, hogs } = await exhausted(t, mode, 1);
    reactor.turn(1000);
    t.is(accepted.length, 0);
    t.is(emfileLines(lines).length, 1, lines.join('\n'));
    // Out of the epoll set while paused: nothing to report, no busy loop.
    t.false(reactor.isRegistered(listener));

    // Half a second of turns, each waiting as long as the reactor wants:
    // a listener left in the set (level mode) would be reported on every
    // turn and fail accept4() thousands of times; backing off, it is tried
    // once per 100 ms retry.
    const callsBefore = reactor.counters.acceptCalls;
    const start = performance.now();
    for (let i = 0; i < 100000 && performance.now() - start < 500; i++) reactor.turn(-1);
    const elapsed = performance.now() - start;
    const calls = reactor.counters.acceptCalls - callsBefore;
    t.true(calls >= 1, 'the retry timer tried again');
    t.true(calls <= elapsed / 100 + 2, `${calls} accept4() calls in ${elapsed.toFixed(0)} ms`);
    t.is(emfileLines(lines).length, 1, 'logged once per episode');
    t.is(againLines(lines).length, 0);

    // Free some fds: the listener comes back by itself and accepts the waiting client.
    for (let i = 0; i < 8; i++) libc.close(hogs.pop()!);
    turnUntil(reactor, () => accepted.length === 1, 'the waiting client to be accepted');
    t.true(reactor.isRegistered(listener));
    // The episode ends once accepting has gone a second without EMFILE.
    turnUntil(reactor, () => againLines(lines).length > 0, 'the end of the episode to be logged');
    t.is(againLines(lines).length, 1, lines.join('\n'));
    t.regex(againLines(lines)[0], /\] Accepting connections again\. \(Out of file descriptors \d+ times in this episode\.\)$/);
    t.is(emfileLines(lines).length, 1);
  });

  serial(`a listener flipping between one accept and EMFILE logs one line per episode, not a pair per flip (${mode})`, async (t) => {
    const flips = 6;
    const { reactor, accepted, lines, hogs } = await exhausted(t, mode, flips + 2);
    reactor.turn(1000);
    t.is(accepted.length, 0);
    // Free one fd at a time: each retry accepts one client, then runs out again.
    for (let i = 1; i <= flips; i++) {
      libc.close(hogs.pop()!);
      turnUntil(reactor, () => accepted.length === i, `accept number ${i}`);
    }
    t.is(emfileLines(lines).length, 1, lines.join('\n'));
    t.is(againLines(lines).length, 0, `the episode is not over while accepts keep running out:\n${lines.join('\n')}`);
    // Now plenty of fds: the rest are accepted, and a second later the episode ends, once.
    for (let i = 0; i < 16; i++) libc.close(hogs.pop()!);
    turnUntil(reactor, () => accepted.length === flips + 2, 'the remaining clients to be accepted');
    turnUntil(reactor, () => againLines(lines).length > 0, 'the end of the episode to be logged');
    t.is(emfileLines(lines).length, 1, lines.join('\n'));
    t.is(againLines(lines).length, 1, lines.join('\n'));
    const pauses = Number(/Out of file descriptors (\d+) times in this episode/.exec(againLines(lines)[0])?.[1]);
    t.true(pauses >= flips, againLines(lines)[0]);
  });
}
