// Kept-alive backend connections (nginx's `keepalive N` in an upstream block,
// HAProxy's http-reuse): when a response is complete and both sides allow it,
// the backend connection is parked here instead of being closed, and the next
// request for the same member takes it back, saving a connect (and the
// backend an accept) per request.
//
// A parked connection keeps reading, so that a backend closing it (its own
// keep-alive timeout) is seen at once and the fd is closed: anything it sends
// while parked is not an answer to any request, so that closes it too. The
// newest parked connection is taken first (it is the least likely to have
// been closed by the backend meanwhile); at most `keep` per member are
// parked, and one parked longer than `timeout` ms is closed by a sweep that
// runs only while something is parked.
//
// The `keep` limit is applied a little later (TRIM_MS), not at once: one
// epoll batch often completes many responses before their clients' next
// requests arrive, and closing the connections over the limit there, only to
// connect again for those requests a moment later, would cost a connect and
// a close per request under a steady load of more clients than `keep`.
import type { Member } from '../balancer/member';
import type { Connection, ConnectionOwner } from '../connection';
import type { Reactor } from '../reactor';
import { trace } from '../trace';

/** How long parked connections may stand over the limit before the extra ones are closed. */
const TRIM_MS = 100;

export class Upstreams implements ConnectionOwner {
  private readonly parked = new Map<Member, Connection[]>();
  /** Parked connections, all members together. */
  private count = 0;
  private armed = false;
  private trimArmed = false;
  private readonly interval: number;

  constructor(
    private readonly reactor: Reactor,
    /** Parked connections kept per member; 0: none (every response closes its connection). */
    readonly keep: number,
    /** Milliseconds a parked connection is kept. */
    private readonly timeout: number,
  ) {
    this.interval = Math.min(5000, Math.max(10, Math.floor(timeout / 4)));
  }

  get size(): number {
    return this.count;
  }

  /** A parked connection to `member`, now owned by `owner`; null when there is none. */
  take(member: Member, owner: ConnectionOwner): Connection | null {
    const list = this.parked.get(member);
    if (list === undefined || list.length === 0) return null;
    const conn = list.pop()!;
    this.count--;
    conn.owner = owner;
    if (trace.on) trace.line(2, `reusing kept-alive fd ${conn.fd} to ${member.name}`);
    return conn;
  }

  /** Park `conn` (its response is complete); closed instead when `member` already has `keep` parked or has left the pool. */
  park(member: Member, conn: Connection): void {
    let list = this.parked.get(member);
    if (list === undefined) {
      list = [];
      this.parked.set(member, list);
    }
    if (this.keep === 0 || !member.inPool || conn.isClosed) {
      conn.close();
      return;
    }
    if (list.length >= this.keep && !this.trimArmed) {
      this.trimArmed = true;
      this.reactor.after(TRIM_MS, () => this.trim());
    }
    conn.owner = this;
    list.push(conn);
    this.count++;
    if (trace.on) trace.line(2, `fd ${conn.fd} kept alive for the next request to ${member.name}`);
    if (!this.armed && this.timeout > 0) {
      this.armed = true;
      this.reactor.after(this.interval, () => this.sweep());
    }
  }

  /** Close every parked connection (the worker is stopping or draining). */
  closeAll(): void {
    for (const conn of this.all()) conn.close();
  }

  private all(): Connection[] {
    return [...this.parked.values()].flat();
  }

  onConnect(_conn: Connection): void {}

  onData(conn: Connection, _data: Buffer, _length: number): void {
    // Bytes nobody asked for: the connection's state is unknown, so it goes.
    conn.resetNow('unexpected bytes');
  }

  onEnd(conn: Connection): void {
    conn.close();
  }

  onDrain(_conn: Connection): void {}

  onClose(conn: Connection, _cause: string): void {
    // Rare (a backend closing an idle connection, the sweep): a look through
    // the lists costs less than keeping a map up to date on every request.
    for (const list of this.parked.values()) {
      const i = list.indexOf(conn);
      if (i < 0) continue;
      list.splice(i, 1);
      this.count--;
      return;
    }
  }

  /** Close the oldest parked connections of each member beyond `keep`. */
  private trim(): void {
    this.trimArmed = false;
    for (const list of this.parked.values()) {
      if (list.length <= this.keep) continue;
      const extra = list.splice(0, list.length - this.keep);
      this.count -= extra.length;
      for (const conn of extra) conn.close();
    }
  }

  private sweep(): void {
    this.armed = false;
    const limit = this.reactor.now - this.timeout;
    for (const conn of this.all()) if (conn.lastActive < limit) conn.close();
    if (this.count > 0) {
      this.armed = true;
      this.reactor.after(this.interval, () => this.sweep());
    }
  }
}
