// The reactor on its own: batch safety, ready list, timers.
import test from 'ava';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import * as libc from '../ffi/libc';
import { Reactor, type Handler } from '../src/reactor';
import { socketPair } from './helpers';

class Recorder implements Handler {
  generation = 0;
  readyEvents = 0;
  label = 'recorder';
  calls: number[] = [];
  constructor(
    public fd: number,
    private readonly onEvent: (self: Recorder) => void = () => {},
  ) {}
  handle(events: number): void {
    this.calls.push(events);
    this.onEvent(this);
  }
  abort(error: unknown): void {
    throw error;
  }
}

for (const mode of ['level', 'edge'] as const) {
  test(`an event for a handler closed earlier in the same batch never reaches the new owner of its fd (${mode})`, (t) => {
    const reactor = new Reactor({ triggerMode: mode, maxEvents: 16 });
    const [x1, y1] = socketPair();
    const [x2, y2] = socketPair();
    const byte = Buffer.from('x');
    libc.write(y1, byte, 1);
    libc.write(y2, byte, 1);

    let replacement: Recorder | null = null;
    let victim: Recorder | null = null;
    // Whichever of the two runs first closes the other, then opens a new fd,
    // which gets the lowest free number: the one it just closed.
    const first = (self: Recorder): void => {
      if (victim !== null) return;
      victim = self === a ? b : a;
      reactor.remove(victim, true);
      libc.close(victim.fd);
      const fd = libc.eventfd(1, libc.EFD_NONBLOCK | libc.EFD_CLOEXEC); // readable at once
      t.is(fd, victim.fd, 'the kernel reused the closed fd number');
      replacement = new Recorder(fd);
      reactor.add(replacement, libc.EPOLLIN);
    };
    const a = new Recorder(x1, first);
    const b = new Recorder(x2, first);
    reactor.add(a, libc.EPOLLIN);
    reactor.add(b, libc.EPOLLIN);

    t.is(reactor.turn(1000), 2, 'both events came in one batch');
    t.is(victim!.calls.length, 0, 'the closed handler was not called');
    t.is(replacement!.calls.length, 0, 'the stale event did not reach the fd number\'s new owner');
    t.is(reactor.counters.staleEvents, 1);

    reactor.turn(1000);
    t.is(replacement!.calls.length, 1, 'the new handler gets its own events');
    t.is(replacement!.calls[0] & libc.EPOLLIN, libc.EPOLLIN);
    [x1, y1, y2, replacement!.fd].forEach((fd) => libc.close(fd));
    reactor.close();
  });
}

test('a handler that throws is aborted and the loop goes on', (t) => {
  const reactor = new Reactor({ triggerMode: 'level', maxEvents: 16 });
  const [x, y] = socketPair();
  let aborted: unknown = null;
  const bad: Handler = {
    fd: x,
    generation: 0,
    readyEvents: 0,
    label: 'bad',
    handle() {
      throw new Error('boom');
    },
    abort(error) {
      aborted = error;
      reactor.remove(this, false);
    },
  };
  reactor.add(bad, libc.EPOLLOUT);
  t.notThrows(() => reactor.turn(1000));
  t.is((aborted as Error | null)?.message, 'boom');
  [x, y].forEach((fd) => libc.close(fd));
  reactor.close();
});

test('deferred handlers run after the batch, and timers fire when due', async (t) => {
  const reactor = new Reactor({ triggerMode: 'edge', maxEvents: 16 });
  const [x, y] = socketPair();
  const order: string[] = [];
  const h = new Recorder(x, () => order.push('handle'));
  reactor.add(h, libc.EPOLLOUT);
  reactor.turn(1000); // the initial EPOLLOUT edge
  reactor.defer(h, libc.EPOLLIN);
  t.is(reactor.turn(5000), 0, 'epoll_wait did not block with a handler on the ready list');
  t.deepEqual(order, ['handle', 'handle']);
  t.is(h.calls[1], libc.EPOLLIN);
  // Nothing else is ready: the next turns wait in epoll_wait until the timer is due.
  reactor.after(20, () => order.push('timer'));
  for (let turns = 0; turns < 10 && order.length < 3; turns++) reactor.turn(-1);
  t.deepEqual(order, ['handle', 'handle', 'timer']);
  [x, y].forEach((fd) => libc.close(fd));
  reactor.close();
});

test('a handler already on the ready list is called once per turn, with its epoll events merged in', (t) => {
  const reactor = new Reactor({ triggerMode: 'edge', maxEvents: 16 });
  const [x, y] = socketPair();
  const h = new Recorder(x);
  reactor.add(h, libc.EPOLLIN | libc.EPOLLOUT);
  reactor.defer(h, libc.EPOLLIN);
  reactor.defer(h, libc.EPOLLIN); // twice: still one entry
  t.is(reactor.turn(1000), 1, 'epoll also reported it (the first EPOLLOUT edge)');
  t.is(h.calls.length, 1);
  t.is(h.calls[0], libc.EPOLLIN | libc.EPOLLOUT);
  t.is(reactor.turn(0), 0);
  t.is(h.calls.length, 1);
  [x, y].forEach((fd) => libc.close(fd));
  reactor.close();
});

test('a cancelled timer lets go of its action at once, and cancelled timers do not pile up', async (t) => {
  const reactor = new Reactor({ triggerMode: 'level', maxEvents: 16 });
  const timers = (): number => (reactor as unknown as { timers: unknown[] }).timers.length;
  // What a connect timeout's closure holds: a connection and all it owns.
  let held: { connection: Buffer } | null = { connection: Buffer.alloc(1024) };
  const ref = new WeakRef(held);
  const first = reactor.after(60_000, ((h) => () => t.fail(`fired while cancelled (${h.connection.length})`))(held));
  held = null;
  first.cancel();
  first.fire(); // does nothing now
  // A high connection rate: a timeout per connect, each cancelled when the connect succeeds.
  const live: string[] = [];
  reactor.after(60_000, () => live.push('late'));
  for (let i = 0; i < 50_000; i++) reactor.after(60_000, () => t.fail('a cancelled timer fired')).cancel();
  t.true(timers() <= 2 * 1024 + 2, `${timers()} timers kept for 2 live ones`);
  // Still in order: one due soon fires, the far one stays.
  reactor.after(10, () => live.push('soon'));
  for (let turns = 0; turns < 20 && live.length === 0; turns++) reactor.turn(-1);
  t.deepEqual(live, ['soon']);
  // And the closure is gone: nothing holds what it captured.
  await new Promise((resolve) => setImmediate(resolve));
  v8.setFlagsFromString('--expose-gc');
  (vm.runInNewContext('gc') as () => void)();
  t.is(ref.deref(), undefined);
  reactor.close();
});
