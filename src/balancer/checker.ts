// Active health checks: every `interval` ms each member of a pool is probed
// with a non-blocking connect() on the reactor (a TCP check), or with an
// HTTP/1.0 GET of `http` whose status line must be 2xx or 3xx (an HTTP check).
// `fall` failed probes in a row mark a member down, `rise` passed ones up
// again, as HAProxy's check/rise/fall.
//
// No thread and no timer per member: one timer starts a round (a probe for
// every member at once), one more fails the probes still unanswered after
// `timeout`. A probe is a reactor Handler of its own, reused from round to
// round; its fd lives from connect() to the verdict and is always closed.
import * as libc from '../../ffi/libc';
import { socketError } from '../connection';
import { startConnect } from '../netutils';
import type { Handler, Reactor, Timer } from '../reactor';
import { logError } from '../log';
import { DOWN, UP, type Member } from './member';
import { describeReason, type Pool } from './pool';

const { EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP, EPOLLRDHUP, EAGAIN, EINTR } = libc;

export interface CheckOptions {
  /** Milliseconds between the starts of two rounds of probes (default 2000). */
  interval?: number;
  /** Milliseconds a probe may take, at most `interval` (default 1000). */
  timeout?: number;
  /** Passed probes in a row that bring a down member up (default 2). */
  rise?: number;
  /** Failed probes in a row that take an up member down (default 3). */
  fall?: number;
  /** Path for an HTTP check ("/health"); absent: a TCP connect check. */
  http?: string;
}

/** Bytes of the response kept to find its status line: plenty for "HTTP/1.1 200 OK\r\n". */
const STATUS_LINE_MAX = 256;

const CONNECTING = 0;
const SENDING = 1;
const READING = 2;

/** One member's probe: connect, then (HTTP) send the request and read the status line. */
class Probe implements Handler {
  fd = -1;
  generation = 0;
  readyEvents = 0;
  readonly label: string;
  /** Whether the member was up when this probe started. */
  startedUp = false;
  private phase = CONNECTING;
  private sent = 0;
  private received = 0;
  private readonly response: Buffer | null;

  constructor(
    private readonly checker: HealthChecker,
    private readonly reactor: Reactor,
    readonly member: Member,
    /** The whole HTTP request, or null for a TCP check. */
    private readonly request: Buffer | null,
  ) {
    this.label = `check ${member.name}`;
    this.response = request === null ? null : Buffer.alloc(STATUS_LINE_MAX);
  }

  get busy(): boolean {
    return this.fd >= 0;
  }

  start(): void {
    this.startedUp = this.member.state === UP;
    this.phase = CONNECTING;
    this.sent = 0;
    this.received = 0;
    let started;
    try {
      started = startConnect(this.member.sockaddr);
    } catch (error) {
      // Refused at once (loopback often is), or out of fds: a failed probe either way.
      this.checker.result(this, false, error instanceof libc.SysError ? error.code : String(error));
      return;
    }
    this.fd = started.fd;
    try {
      // Whether it connected at once or is in progress, EPOLLOUT says it is done.
      this.reactor.add(this, EPOLLOUT);
    } catch (error) {
      this.fail(error instanceof libc.SysError ? error.message : String(error));
    }
  }

  handle(events: number): void {
    if (this.phase === CONNECTING) {
      if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) === 0) return;
      const err = socketError(this.fd);
      if (err !== 0) return this.fail(libc.errnoName(err));
      if ((events & EPOLLOUT) === 0) return this.fail('connection closed');
      // Connected: that is all a TCP check asks, even if the peer hangs up at once.
      if (this.request === null) return this.pass();
      this.phase = SENDING;
    }
    if (this.phase === SENDING) {
      if (!this.send()) return;
      this.phase = READING;
      // Now wait for the answer (EPOLLOUT would only spin, level-triggered).
      this.reactor.modify(this, EPOLLIN | EPOLLRDHUP);
      return;
    }
    if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP)) !== 0) this.readStatus();
  }

  abort(error: unknown): void {
    this.fail(`internal error: ${error instanceof Error ? error.message : String(error)}`);
  }

  /** Give up on a probe still running (its round's timeout, or stop()). */
  cancel(reason: string): void {
    if (this.busy) this.fail(reason);
  }

  /** Write the request; false while some of it is still to go (or it failed). */
  private send(): boolean {
    const request = this.request!;
    while (this.sent < request.length) {
      const n = libc.write(this.fd, this.sent === 0 ? request : request.subarray(this.sent), request.length - this.sent);
      if (n > 0) {
        this.sent += n;
        continue;
      }
      if (n === 0) {
        this.fail('write() took nothing'); // never for a stream socket; no endless loop if it did
        return false;
      }
      const err = libc.errno();
      if (err === EINTR) continue;
      if (err !== EAGAIN) this.fail(libc.errnoName(err));
      return false; // EAGAIN: EPOLLOUT, still registered, brings us back
    }
    return true;
  }

  /** Read until the status line is complete, then judge it. Reads to EAGAIN: edge mode says nothing twice. */
  private readStatus(): void {
    const buf = this.response!;
    while (this.received < buf.length) {
      const n = libc.read(this.fd, this.received === 0 ? buf : buf.subarray(this.received), buf.length - this.received);
      if (n > 0) {
        const from = this.received;
        this.received += n;
        // Only up to `received`: the rest of the buffer is last round's.
        const lineEnd = buf.indexOf(10, from);
        if (lineEnd >= 0 && lineEnd < this.received) return this.judge();
        continue;
      }
      if (n === 0) return this.received > 0 ? this.judge() : this.fail('closed without an answer');
      const err = libc.errno();
      if (err === EINTR) continue;
      if (err !== EAGAIN) this.fail(libc.errnoName(err));
      return;
    }
    this.judge(); // no line end in the first STATUS_LINE_MAX bytes
  }

  /** "HTTP/1.x NNN ...": 2xx and 3xx pass. */
  private judge(): void {
    const buf = this.response!;
    const ok =
      this.received >= 12 &&
      buf.toString('latin1', 0, 7) === 'HTTP/1.' &&
      buf[8] === 0x20 &&
      buf[9] >= 0x30 && buf[9] <= 0x39 && buf[10] >= 0x30 && buf[10] <= 0x39 && buf[11] >= 0x30 && buf[11] <= 0x39;
    if (!ok) return this.fail('not an HTTP response');
    const status = Number(buf.toString('latin1', 9, 12));
    if (status >= 200 && status < 400) this.pass();
    else this.fail(`status ${status}`);
  }

  private pass(): void {
    this.close();
    this.checker.result(this, true, 'ok');
  }

  private fail(reason: string): void {
    this.close();
    this.checker.result(this, false, reason);
  }

  private close(): void {
    if (this.fd < 0) return;
    if (this.reactor.isRegistered(this)) this.reactor.remove(this, true);
    if (libc.close(this.fd) < 0) logError(`health check of ${this.member.name}: close(${this.fd}): ${libc.errnoName(libc.errno())}`);
    this.fd = -1;
  }
}

export class HealthChecker {
  readonly interval: number;
  readonly timeout: number;
  readonly rise: number;
  readonly fall: number;
  readonly http: string | null;
  /** Rounds started so far. */
  rounds = 0;
  private probes: Probe[] = [];
  private seenVersion = -1;
  private roundTimer: Timer | null = null;
  private timeoutTimer: Timer | null = null;
  private running = false;

  constructor(
    private readonly reactor: Reactor,
    private readonly pool: Pool,
    options: CheckOptions = {},
  ) {
    this.interval = options.interval ?? 2000;
    this.timeout = Math.min(options.timeout ?? 1000, this.interval);
    this.rise = options.rise ?? 2;
    this.fall = options.fall ?? 3;
    this.http = options.http ?? null;
    for (const [key, value] of [['interval', this.interval], ['timeout', this.timeout], ['rise', this.rise], ['fall', this.fall]] as const) {
      if (!Number.isInteger(value) || value < 1) throw new Error(`pool ${pool.name}: check.${key} must be a whole number >= 1, not ${value}`);
    }
    if (this.http !== null && (!this.http.startsWith('/') || /[\s\x00-\x1f\x7f]/.test(this.http))) {
      throw new Error(`pool ${pool.name}: check.http must be a path starting with "/", without spaces: ${JSON.stringify(this.http)}`);
    }
    // From now on only the checks bring a member back up.
    pool.activeChecks = true;
  }

  /** Probes currently in flight (for tests and stats). */
  get inFlight(): number {
    let n = 0;
    for (const p of this.probes) if (p.busy) n++;
    return n;
  }

  /** First round at once, then one every `interval`. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.roundTimer = this.reactor.after(0, this.round);
  }

  /** No more rounds; probes in flight are dropped and their fds closed. */
  stop(): void {
    this.running = false;
    this.roundTimer?.cancel();
    this.timeoutTimer?.cancel();
    this.roundTimer = this.timeoutTimer = null;
    for (const p of this.probes) p.cancel('stopped');
  }

  /**
   * Start a round now instead of waiting for the timer (the next one follows
   * `interval` after this one). Probes of the last round still in flight
   * count as timed out. For an operator's "check now", and for tests that
   * must not depend on how fast the machine is.
   */
  checkNow(): void {
    if (this.running) this.round();
  }

  /** A probe's verdict: count it towards rise or fall, and change the member's state when one is reached. */
  result(probe: Probe, ok: boolean, reason: string): void {
    const m = probe.member;
    if (!this.running || !this.probes.includes(probe)) return; // stopped, or the member left
    m.lastCheck = ok ? 'ok' : describeReason(reason);
    if (ok) {
      // A probe already under way when the member went down (a passive
      // failure) does not count towards `rise`: only probes started since.
      if (m.state === DOWN && probe.startedUp) return;
      m.checkSuccesses++;
      m.checkFailures = 0;
      if (m.state === DOWN && m.checkSuccesses >= this.rise) this.pool.markUp(m);
    } else {
      m.checkFailures++;
      m.checkSuccesses = 0;
      if (m.state === UP && m.checkFailures >= this.fall) {
        this.pool.markDown(m, `health check: ${m.lastCheck}${this.fall > 1 ? `, ${this.fall} in a row` : ''}`);
      }
    }
  }

  // Bound once: the timers call these without a closure per round.
  private readonly round = (): void => {
    if (!this.running) return;
    this.rounds++;
    // The last round's timeout may be due at this very moment (timeout ==
    // interval): it must not fire after this round's probes have started and
    // count them as timed out. Its own probes time out here instead.
    this.timeoutTimer?.cancel();
    this.roundTimer?.cancel(); // due now, or checkNow() came first
    this.expire();
    if (this.seenVersion !== this.pool.version) this.followMembers();
    this.roundTimer = this.reactor.after(this.interval, this.round);
    this.timeoutTimer = this.reactor.after(this.timeout, this.expireRound);
    for (let i = 0; i < this.probes.length; i++) this.probes[i].start();
  };

  private readonly expireRound = (): void => {
    this.expire();
  };

  private expire(): void {
    for (let i = 0; i < this.probes.length; i++) this.probes[i].cancel('timed out');
  }

  /** One probe per member of the pool as it is now. */
  private followMembers(): void {
    const old = this.probes;
    this.probes = this.pool.members.map((m) => old.find((p) => p.member === m) ?? new Probe(this, this.reactor, m, this.requestFor(m)));
    for (const p of old) if (!this.probes.includes(p)) p.cancel('member left');
    this.seenVersion = this.pool.version;
  }

  private requestFor(m: Member): Buffer | null {
    if (this.http === null) return null;
    return Buffer.from(`GET ${this.http} HTTP/1.0\r\nHost: ${hostOf(m.name)}\r\nUser-Agent: rsp-health-check\r\nConnection: close\r\n\r\n`, 'latin1');
  }
}

/** The Host of a member's check: "app.internal:8080" of "app.internal:8080 (10.0.0.5)", a member that follows DNS. */
function hostOf(name: string): string {
  const space = name.indexOf(' ');
  return space < 0 ? name : name.slice(0, space);
}
