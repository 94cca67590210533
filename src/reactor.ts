// epollinterface.c: one epoll set, handlers registered in it, and the loop
// that waits for events and hands each one to its handler.
//
// A handler is an object with an fd and a handle(events) method; its own
// fields are the "closure" of the C version. The reactor knows nothing of
// connections or proxying.
//
// Batch safety. The C rsp first took one event per epoll_wait, because a batch
// can hold an event for a handler that an earlier event of the same batch
// closed. Worse, the fd number of the closed handler may already belong to a
// new connection accepted earlier in the batch. rsp fetches up to maxEvents
// events per call and keeps them apart with a generation number: every add()
// gives the handler a fresh generation, and epoll_event.data carries both the
// fd and that generation. An event is delivered only if handlers[fd] is still
// there and still has the generation the event was registered with.
import * as libc from '../ffi/libc';
import { EPOLL_DATA_OFFSET, EPOLL_EVENT_SIZE, writeEpollEvent } from '../ffi/epoll_event';
import { Counters } from './counters';
import { eventNames, result, trace } from './trace';

export { Counters } from './counters';

export interface Handler {
  fd: number;
  /** What it is, for trace output: "listener 0.0.0.0:8000", "client 127.0.0.1:53122". */
  label: string;
  /** Set by the reactor on add(); 0 while not registered. */
  generation: number;
  /** Set by the reactor: events waiting for it on the ready list (0 when not on it). */
  readyEvents: number;
  /** Called with the epoll event mask (EPOLLIN, EPOLLOUT...). */
  handle(events: number): void;
  /** Called if handle() threw: the handler must release its fd. */
  abort(error: unknown): void;
}

export type TriggerMode = 'level' | 'edge';

export interface ReactorOptions {
  triggerMode: TriggerMode;
  maxEvents: number;
}

export class Timer {
  cancelled = false;
  constructor(
    readonly due: number,
    private action: () => void,
  ) {}
  fire(): void {
    this.action();
  }
  /**
   * A cancelled timer stays in the list until it is due or compacted away,
   * but lets go of its action at once: that closure holds a connection and
   * everything it owns (a connect timeout, cancelled as soon as the connect
   * succeeds, would otherwise keep each closed connection alive for
   * connectTimeout ms).
   */
  cancel(): void {
    this.cancelled = true;
    this.action = noAction;
  }
}

function noAction(): void {}

/** Timers in the list, cancelled ones included, past which after() drops the cancelled ones. */
const COMPACT_MIN = 1024;

export class Reactor {
  readonly epfd: number;
  readonly edge: boolean;
  readonly counters = new Counters();
  private readonly handlers: (Handler | undefined)[] = [];
  private nextGeneration = 1;
  private readonly eventBuffer: Buffer;
  private readonly words: Uint32Array;
  private readonly maxEvents: number;
  private readonly ctlEvent = Buffer.alloc(EPOLL_EVENT_SIZE);
  private running = false;
  /** performance.now() as of the last epoll_wait return: a clock that costs nothing to read. */
  now = performance.now();
  // Ready list: handlers that stopped early (edge mode budget, resumed reading)
  // and must be called again without waiting for a new edge.
  // Each handler is on it at most once (handler.readyEvents != 0 while it is).
  private ready: Handler[] = [];
  private spareReady: Handler[] = [];
  // Timers sorted by due time, oldest at timers[firstTimer]. Nearly all are
  // connect timeouts of one length, so a new one almost always goes at the end.
  private timers: Timer[] = [];
  private firstTimer = 0;
  private compactAt = COMPACT_MIN;

  constructor(options: ReactorOptions) {
    this.epfd = libc.check('epoll_create1', libc.epoll_create1(libc.EPOLL_CLOEXEC));
    this.edge = options.triggerMode === 'edge';
    this.maxEvents = options.maxEvents;
    this.eventBuffer = Buffer.alloc(EPOLL_EVENT_SIZE * this.maxEvents);
    this.words = new Uint32Array(this.eventBuffer.buffer, this.eventBuffer.byteOffset, this.eventBuffer.length / 4);
  }

  /** epoll_add_handler: register `handler` for `mask` (EPOLLET is added in edge mode). */
  add(handler: Handler, mask: number): void {
    const generation = this.nextGeneration;
    this.nextGeneration = this.nextGeneration === 0xffffffff ? 1 : this.nextGeneration + 1;
    this.ctl(libc.EPOLL_CTL_ADD, handler.fd, mask, generation);
    handler.generation = generation;
    this.handlers[handler.fd] = handler;
    this.counters.ctlAdd++;
  }

  /** Change what `handler` is registered for. */
  modify(handler: Handler, mask: number): void {
    this.ctl(libc.EPOLL_CTL_MOD, handler.fd, mask, handler.generation);
    this.counters.ctlMod++;
  }

  /**
   * epoll_remove_handler. When the caller is about to close the fd, the kernel
   * drops it from the epoll set by itself, so `closing` skips the syscall.
   */
  remove(handler: Handler, closing: boolean): void {
    if (this.handlers[handler.fd] === handler) this.handlers[handler.fd] = undefined;
    if (!closing) {
      if (libc.epoll_ctl(this.epfd, libc.EPOLL_CTL_DEL, handler.fd, null) < 0) {
        throw new libc.SysError('epoll_ctl(DEL)', libc.errno(), `fd ${handler.fd}`);
      }
      this.counters.ctlDel++;
      if (trace.on) trace.line(2, `epoll_ctl(DEL, ${handler.fd}) = 0`);
    }
    handler.generation = 0;
  }

  isRegistered(handler: Handler): boolean {
    return handler.generation !== 0 && this.handlers[handler.fd] === handler;
  }

  /** Call handler.handle(events) on this loop turn, after the current batch, without waiting for epoll. */
  defer(handler: Handler, events: number): void {
    if (handler.readyEvents === 0) this.ready.push(handler);
    handler.readyEvents |= events;
    this.counters.deferred++;
  }

  /** Run `fire` once after `ms` milliseconds (not on the hot path: timeouts and back-offs). */
  after(ms: number, fire: () => void): Timer {
    // Cancelled timers pile up under a high connection rate: drop them when
    // the list has doubled since the last time (amortised O(1) per timer).
    if (this.timers.length - this.firstTimer >= this.compactAt) {
      this.timers = this.timers.filter((t, i) => i >= this.firstTimer && !t.cancelled);
      this.firstTimer = 0;
      this.compactAt = Math.max(COMPACT_MIN, 2 * this.timers.length);
    }
    const timer = new Timer(performance.now() + ms, fire);
    let i = this.timers.length;
    while (i > this.firstTimer && this.timers[i - 1].due > timer.due) i--;
    if (i === this.timers.length) this.timers.push(timer);
    else this.timers.splice(i, 0, timer);
    return timer;
  }

  stop(): void {
    this.running = false;
  }

  /** do_reactor_loop: wait, dispatch, repeat until stop(). */
  run(): void {
    this.running = true;
    while (this.running) this.turn(-1);
  }

  /**
   * One loop turn: wait for events (at most `maxWait` ms; -1 waits for the
   * next event or timer), dispatch them, then the ready list and due timers.
   * Returns the number of events epoll_wait reported.
   */
  turn(maxWait: number): number {
    const words = this.words;
    const stride = EPOLL_EVENT_SIZE / 4;
    const dataWord = EPOLL_DATA_OFFSET / 4;
    const counters = this.counters;
    // Whatever the last turn traced goes out before we may block.
    if (trace.on) trace.flush();
    // The ready list as it stands runs after this batch; what gets deferred
    // during this turn waits for the next one, so a handler that spends its
    // budget now does not get a second helping before the others had theirs.
    const due = this.ready;
    this.ready = this.spareReady;
    let timeout = due.length > 0 ? 0 : this.nextTimeout();
    // Trace output stuck behind a full stdout: come back for it soon.
    if (trace.on && trace.backlogged && (timeout < 0 || timeout > 50)) timeout = 50;
    if (maxWait >= 0 && (timeout < 0 || timeout > maxWait)) timeout = maxWait;
    const n = libc.epoll_wait(this.epfd, this.eventBuffer, this.maxEvents, timeout);
    if (trace.on) trace.line(0, `epoll_wait(max ${this.maxEvents}, timeout ${timeout}) = ${result(n)}`);
    if (n < 0) {
      const err = libc.errno();
      // A signal (SIGSTOP/SIGCONT, a debugger): nothing happened. The ready
      // list goes back as it was, to run on the next turn.
      this.spareReady = this.ready; // still empty: no handler ran
      this.ready = due;
      if (err === libc.EINTR) return 0;
      throw new libc.SysError('epoll_wait', err);
    }
    this.now = performance.now();
    counters.waits++;
    counters.events += n;
    if (n > counters.maxBatch) counters.maxBatch = n;
    for (let i = 0; i < n; i++) {
      const base = i * stride;
      const handler = this.handlers[words[base + dataWord]];
      // Closed earlier in this batch, or its fd now belongs to someone else.
      if (handler === undefined || handler.generation !== words[base + dataWord + 1]) {
        counters.staleEvents++;
        if (trace.on) trace.line(1, `fd ${words[base + dataWord]}: ${eventNames(words[base])}: stale (its handler was closed earlier in this batch), skipped`);
        continue;
      }
      if (trace.on) trace.line(1, `fd ${handler.fd} ${handler.label}: ${eventNames(words[base])}${handler.readyEvents !== 0 ? ' (already on the ready list: handled there)' : ''}`);
      if (handler.readyEvents !== 0) {
        // Already on the ready list: one call, there, with both masks, so a
        // busy handler never gets two turns for another's one.
        handler.readyEvents |= words[base];
        continue;
      }
      this.dispatch(handler, words[base]);
    }
    if (due.length > 0) this.runReady(due);
    this.spareReady = due;
    if (this.firstTimer < this.timers.length) this.runTimers();
    return n;
  }

  close(): void {
    libc.close(this.epfd);
  }

  private dispatch(handler: Handler, events: number): void {
    try {
      handler.handle(events);
    } catch (error) {
      // A bug in one handler must not stop the loop for every other connection.
      handler.abort(error);
    }
  }

  private runReady(handlers: Handler[]): void {
    for (let i = 0; i < handlers.length; i++) {
      const handler = handlers[i];
      const events = handler.readyEvents;
      handler.readyEvents = 0;
      // Skipped if it was closed meanwhile (its fd may be someone else's now).
      if (this.handlers[handler.fd] !== handler) continue;
      if (trace.on) trace.line(1, `fd ${handler.fd} ${handler.label}: ${eventNames(events)} (from the ready list)`);
      this.dispatch(handler, events);
    }
    handlers.length = 0;
  }

  private nextTimeout(): number {
    const timers = this.timers;
    while (this.firstTimer < timers.length && timers[this.firstTimer].cancelled) this.firstTimer++;
    if (this.firstTimer === timers.length) {
      timers.length = 0;
      this.firstTimer = 0;
      return -1;
    }
    return Math.max(0, Math.ceil(timers[this.firstTimer].due - performance.now()));
  }

  private runTimers(): void {
    const now = performance.now();
    const timers = this.timers;
    while (this.firstTimer < timers.length && timers[this.firstTimer].due <= now) {
      const timer = timers[this.firstTimer++];
      if (timer.cancelled) continue;
      if (trace.on) trace.line(1, 'timer');
      timer.fire();
    }
    // Drop the fired ones from the front now and then, not on every call.
    if (this.firstTimer > 1024 && this.firstTimer * 2 > timers.length) {
      this.timers = timers.slice(this.firstTimer);
      this.firstTimer = 0;
    }
  }

  private ctl(op: number, fd: number, mask: number, generation: number): void {
    const events = this.edge ? mask | libc.EPOLLET : mask;
    writeEpollEvent(this.ctlEvent, 0, events, fd, generation);
    const r = libc.epoll_ctl(this.epfd, op, fd, this.ctlEvent);
    const name = op === libc.EPOLL_CTL_ADD ? 'ADD' : 'MOD';
    if (trace.on) trace.line(2, `epoll_ctl(${name}, ${fd}, ${eventNames(events, true)}) = ${result(r)}`);
    if (r < 0) throw new libc.SysError(`epoll_ctl(${name})`, libc.errno(), `fd ${fd}`);
  }
}
