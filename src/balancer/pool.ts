// A backend pool (nginx's upstream, HAProxy's backend): its members, their
// state, and which of them the next client goes to.
//
// The proxy's side of it, per client:
//   const member = pool.pick(clientKey, tried);  // null: nobody to send to
//   ...connect...  pool.connected(member)  or  pool.failed(member, 'ECONNREFUSED')
//   ...pairing over...  pool.released(member)
// Every pick is ended by exactly one failed() or released(): between the two
// the member counts the connection as active (leastconn, random and
// maxConnections go by that count). A retry passes the members already tried
// for this client in `tried`, so it never goes to the same one twice.
//
// Health. Passive (always on unless maxFails = 0, and not for the only
// member of a pool): maxFails failed connects within failTimeout ms mark a
// member down. Without active checks it is tried
// again after failTimeout ms (nginx's max_fails/fail_timeout). With active
// checks (checker.ts) only the checks bring it back, after `rise` passed
// checks in a row, and `fall` failed checks in a row take it down too
// (HAProxy's observe + check). Every change of state is one log line.
//
// The pool knows members, not sockets; its clock is anything with a `now` in
// milliseconds, normally the Reactor (whose `now` costs nothing to read).
import { log, logError } from '../log';
import { ConsistentHash } from './hash';
import { hashClient } from './hash32';
import { LeastConn } from './leastconn';
import { DOWN, Member, UP, type MemberSpec } from './member';
import type { BalanceMethod } from './method';
import { PowerOfTwo } from './random';
import { RoundRobin } from './roundrobin';

export const BALANCE_METHODS = ['roundrobin', 'leastconn', 'random', 'hash'] as const;

/** The pool the C rsp's backendAddress/backendPort form (its member is named as the C rsp named its backend). */
export const DEFAULT_POOL = 'default';
export type BalanceName = (typeof BALANCE_METHODS)[number];

export interface Clock {
  /** Milliseconds, monotonic. */
  readonly now: number;
}

export interface PoolOptions {
  /** The pool's name in the config ("app"), for logs. */
  name: string;
  members: MemberSpec[];
  balance?: BalanceName;
  /** Failed connects within failTimeout that mark a member down; 0: never (default 1). */
  maxFails?: number;
  /** Milliseconds: the window for maxFails, and how long a member stays down for it (default 10000). */
  failTimeout?: number;
  /** Milliseconds over which a member that comes up or joins ramps to its full weight (default 0: at once). */
  slowStart?: number;
  /** Other members tried, for one client, after a failed connect (default 2). */
  retries?: number;
  clock: Clock;
  /** Uniform in [0, 1) for balance = "random"; default Math.random. */
  random?: () => number;
}

/** Plain words for the errno names a connect fails with, for the log line. */
const REASONS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ETIMEDOUT: 'connect timed out',
  ECONNRESET: 'connection reset',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  EADDRNOTAVAIL: 'no local address available',
};

export function describeReason(reason: string): string {
  return REASONS[reason] ?? reason;
}

export class Pool {
  readonly name: string;
  readonly balance: BalanceName;
  readonly maxFails: number;
  readonly failTimeout: number;
  readonly slowStart: number;
  readonly retries: number;
  /** Every member, primaries and backups, in config order. */
  readonly members: Member[] = [];
  /** Members up, of all, and of the primaries. */
  upCount = 0;
  primaryUpCount = 0;
  /** Set by a HealthChecker: then only its checks bring a member back up. */
  activeChecks = false;
  /** Bumped when members join or leave (the checker follows it). */
  version = 0;
  private readonly primaries: Member[] = [];
  private readonly backups: Member[] = [];
  private readonly primaryMethod: BalanceMethod;
  private readonly backupMethod: BalanceMethod;
  private readonly clock: Clock;
  private readonly hashing: boolean;
  /** The earliest downUntil of a passively downed member (Infinity: none). */
  private nextRevival = Infinity;

  constructor(options: PoolOptions) {
    this.name = options.name;
    this.balance = options.balance ?? 'roundrobin';
    if (!BALANCE_METHODS.includes(this.balance)) throw new Error(`pool ${this.name}: unknown balance "${this.balance}" (one of ${BALANCE_METHODS.join(', ')})`);
    this.maxFails = options.maxFails ?? 1;
    this.failTimeout = options.failTimeout ?? 10000;
    this.slowStart = options.slowStart ?? 0;
    this.retries = options.retries ?? 2;
    for (const [key, value] of [['maxFails', this.maxFails], ['failTimeout', this.failTimeout], ['slowStart', this.slowStart], ['retries', this.retries]] as const) {
      if (!Number.isInteger(value) || value < 0) throw new Error(`pool ${this.name}: ${key} must be a whole number >= 0, not ${value}`);
    }
    this.clock = options.clock;
    this.hashing = this.balance === 'hash';
    const random = options.random ?? Math.random;
    this.primaryMethod = makeMethod(this.balance, this.primaries, random);
    this.backupMethod = makeMethod(this.balance, this.backups, random);
    for (const spec of options.members) {
      if (this.members.some((m) => m.name === spec.name)) throw new Error(`pool ${this.name}: member ${spec.name} is listed twice`);
      this.insert(new Member(spec));
    }
    if (this.members.length === 0) throw new Error(`pool ${this.name}: no members`);
    this.primaryMethod.changed();
    this.backupMethod.changed();
  }

  /**
   * The member for a new connection, or null when none is up and free.
   * Primaries first; the backups only when no primary can take it (none up,
   * all at maxConnections, or all already tried for this client).
   * `clientKey` is the client's address (text or sockaddr) for
   * balance = "hash", ignored otherwise; `exclude` the members already tried
   * for this client, or null.
   */
  pick(clientKey: string | Buffer | null = null, exclude: readonly Member[] | null = null): Member | null {
    const now = this.clock.now;
    if (now >= this.nextRevival) this.revive(now);
    if (this.upCount === 0) return null;
    const key = this.hashing && clientKey !== null ? hashClient(clientKey) : 0;
    let m = this.primaryUpCount > 0 ? this.primaryMethod.pick(key, exclude, now) : null;
    if (m === null && this.upCount > this.primaryUpCount) m = this.backupMethod.pick(key, exclude, now);
    if (m !== null) m.active++;
    return m;
  }

  /** The connect to `m` succeeded: a success also clears the failures counted towards maxFails. */
  connected(m: Member): void {
    m.total++;
    m.failCount = 0;
  }

  /** The connect to `m` failed (`reason`: an errno name such as ECONNREFUSED, or words). Ends the pick. */
  failed(m: Member, reason: string): void {
    if (m.active > 0) m.active--;
    m.failures++;
    // As nginx: the only member of a pool is never taken out by failures -
    // there is nowhere else to send its clients (active checks still can).
    if (this.maxFails === 0 || m.state !== UP || !m.inPool || this.members.length === 1) return;
    const now = this.clock.now;
    if (m.failCount === 0 || now - m.firstFailAt >= this.failTimeout) {
      m.failCount = 0;
      m.firstFailAt = now;
    }
    m.failCount++;
    if (m.failCount < this.maxFails) return;
    const why = this.maxFails === 1 ? describeReason(reason) : `${describeReason(reason)}; ${m.failCount} failures within ${this.failTimeout} ms`;
    this.markDown(m, why, this.activeChecks ? Infinity : now + this.failTimeout);
  }

  /** The pairing with `m` is over (or the pick was not used). Ends the pick. */
  released(m: Member): void {
    if (m.active > 0) m.active--;
  }

  /** Take `m` out of rotation until `until` (Infinity: until an active check brings it back). */
  markDown(m: Member, why: string, until = Infinity): void {
    if (m.state === DOWN || !m.inPool) return; // one that left no longer counts towards upCount
    // Members whose failTimeout is over count as up in this line's tally.
    if (this.clock.now >= this.nextRevival) this.revive(this.clock.now);
    m.state = DOWN;
    m.downReason = why;
    m.downSince = this.clock.now;
    m.downUntil = until;
    m.current = 0;
    m.checkSuccesses = 0;
    this.upCount--;
    if (!m.backup) this.primaryUpCount--;
    if (until < this.nextRevival) this.nextRevival = until;
    logError(`Backend ${this.name} member ${m.name} is down (${why}); ${this.upCountText()}.`);
  }

  /** Put `m` back in rotation (ramping its weight over slowStart). */
  markUp(m: Member): void {
    if (m.state === UP || !m.inPool) return;
    const now = this.clock.now;
    m.state = UP;
    m.downReason = '';
    m.downUntil = 0;
    m.failCount = 0;
    m.checkFailures = 0;
    m.current = 0;
    this.startRamp(m, now);
    this.upCount++;
    if (!m.backup) this.primaryUpCount++;
    log(`Backend ${this.name} member ${m.name} is up; ${this.upCountText()}.`);
  }

  /** A new member joins the pool (up, ramping over slowStart). */
  add(spec: MemberSpec): Member {
    if (this.members.some((m) => m.name === spec.name)) throw new Error(`pool ${this.name}: member ${spec.name} is already in it`);
    const m = new Member(spec);
    this.insert(m);
    this.startRamp(m, this.clock.now);
    (m.backup ? this.backupMethod : this.primaryMethod).changed();
    this.version++;
    log(`Backend ${this.name} member ${m.name} joins; ${this.upCountText()}.`);
    return m;
  }

  /** A member leaves the pool; pairings already with it go on (and may still call released()). */
  remove(m: Member): void {
    const i = this.members.indexOf(m);
    if (i < 0) return;
    this.members.splice(i, 1);
    m.inPool = false;
    const group = m.backup ? this.backups : this.primaries;
    group.splice(group.indexOf(m), 1);
    if (m.state === UP) {
      this.upCount--;
      if (!m.backup) this.primaryUpCount--;
    }
    (m.backup ? this.backupMethod : this.primaryMethod).changed();
    this.version++;
    log(`Backend ${this.name} member ${m.name} leaves; ${this.upCountText()}.`);
  }

  /** Bring back members whose failTimeout is over (runs from pick(), only when one is due). */
  revive(now: number): void {
    let next = Infinity;
    for (let i = 0; i < this.members.length; i++) {
      const m = this.members[i];
      if (m.state !== DOWN) continue;
      if (m.downUntil <= now) this.markUp(m);
      else if (m.downUntil < next) next = m.downUntil;
    }
    this.nextRevival = next;
  }

  /** "2 of 3 up", and what that means when it matters. */
  private upCountText(): string {
    const text = `${this.upCount} of ${this.members.length} up`;
    if (this.upCount === 0) return `${text}: no member to send to`;
    if (this.primaryUpCount === 0 && this.primaries.length > 0) return `${text}: backups only`;
    return text;
  }

  private insert(m: Member): void {
    this.members.push(m);
    (m.backup ? this.backups : this.primaries).push(m);
    this.upCount++;
    if (!m.backup) this.primaryUpCount++;
  }

  private startRamp(m: Member, now: number): void {
    if (this.slowStart === 0) return;
    m.rampFrom = now;
    m.rampUntil = now + this.slowStart;
  }
}

function makeMethod(balance: BalanceName, members: Member[], random: () => number): BalanceMethod {
  switch (balance) {
    case 'roundrobin':
      return new RoundRobin(members);
    case 'leastconn':
      return new LeastConn(members);
    case 'random':
      return new PowerOfTwo(members, random);
    case 'hash':
      return new ConsistentHash(members);
  }
}
