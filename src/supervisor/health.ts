// Health with several workers: one authority per pool. Each worker has its
// own copy of every pool (picking a member must not cross threads), but the
// state of a member - up or down - is decided in one place, worker 0:
//
//  - active checks run there only (one probe per member per interval, not N);
//  - a connect that fails in another worker is reported there and counts
//    towards maxFails as if it had failed there;
//  - every change of state worker 0 makes (a check, maxFails, the end of a
//    failTimeout) is logged there, once, and sent to the other workers, which
//    apply it without logging.
//
// Checks that each worker ran on its own could disagree (one worker sends to a
// member that another holds down) and would log every change N times; one
// authority costs a message per change of state, which is rare.
import { muted } from '../log';
import type { Member } from '../balancer/member';
import { DOWN, UP } from '../balancer/member';
import { Pool, type PoolOptions } from '../balancer/pool';

/** A change of state, as worker 0 sends it to the others. */
export interface MemberStateChange {
  pool: string;
  member: string;
  down: boolean;
  why: string;
}

/** Worker 0's pool: decides, logs, and tells the others through `onChange`. */
export class LeaderPool extends Pool {
  onChange: ((change: MemberStateChange) => void) | null = null;
  private readonly clockRef: { readonly now: number };

  constructor(
    options: PoolOptions,
    /** Runs `fire` after `ms` (the reactor's timers): the end of a failTimeout is acted on when due, not at the next pick. */
    private readonly schedule: (ms: number, fire: () => void) => void,
  ) {
    super(options);
    this.clockRef = options.clock;
  }

  override markDown(m: Member, why: string, until = Infinity): void {
    const was = m.state;
    super.markDown(m, why, until);
    if (was === m.state) return;
    // Without a pick in this worker revive() would not run; the others wait for its word.
    if (until !== Infinity && this.onChange !== null) this.schedule(Math.max(1, until - this.now()), () => this.revive(this.now()));
    this.onChange?.({ pool: this.name, member: m.name, down: true, why });
  }

  override markUp(m: Member): void {
    const was = m.state;
    super.markUp(m);
    if (was !== m.state) this.onChange?.({ pool: this.name, member: m.name, down: false, why: '' });
  }

  /** Another worker's connect to `name` failed: count it towards maxFails here. */
  failedElsewhere(name: string, reason: string): void {
    const m = this.members.find((x) => x.name === name);
    if (m === undefined) return;
    // failed() ends a pick and counts a failure; the pick and the failure were the other worker's.
    m.active++;
    this.failed(m, reason);
    m.failures--;
  }

  /** After a reload carried members that are down for a while (failTimeout): bring them back when it is over. */
  scheduleRevivals(): void {
    for (const m of this.members) {
      if (m.state === DOWN && m.downUntil !== Infinity) this.schedule(Math.max(1, m.downUntil - this.now()), () => this.revive(this.now()));
    }
  }

  private now(): number {
    return this.clockRef.now;
  }
}

/** The pool of worker 1, 2...: never decides a state itself (maxFails 0, no checks), reports its failures. */
export class FollowerPool extends Pool {
  onFailed: ((pool: string, member: string, reason: string) => void) | null = null;

  constructor(options: PoolOptions) {
    super({ ...options, maxFails: 0 });
  }

  override failed(m: Member, reason: string): void {
    super.failed(m, reason);
    this.onFailed?.(this.name, m.name, reason);
  }

  /** What worker 0 decided (and logged). */
  apply(change: MemberStateChange): void {
    const m = this.members.find((x) => x.name === change.member);
    if (m === undefined) return;
    muted(() => {
      if (change.down && m.state === UP) this.markDown(m, change.why, Infinity);
      else if (!change.down && m.state === DOWN) this.markUp(m);
    });
  }
}

/** Health fields carried from a member of the old config to the same member (pool and name) of a reloaded one. */
export function carryHealth(from: Pool, to: Pool): void {
  for (const m of to.members) {
    const old = from.members.find((x) => x.name === m.name);
    if (old === undefined) continue;
    m.lastCheck = old.lastCheck;
    m.checkSuccesses = old.checkSuccesses;
    m.checkFailures = old.checkFailures;
    m.failCount = old.failCount;
    m.firstFailAt = old.firstFailAt;
    if (old.state === DOWN) muted(() => to.markDown(m, old.downReason, old.downUntil));
    m.downSince = old.downSince;
  }
}
