// proxy_data: the pairing of one client connection with one backend
// connection, and the rules for what flows between them.
//
//  - bytes read on one side are written to the other;
//  - backpressure: once the other side has more than highWater bytes queued,
//    stop reading this side until that queue is down to lowWater;
//  - half-close: EOF from one side becomes shutdown(SHUT_WR) on the other once
//    its queue is flushed; the other direction carries on until it ends too;
//  - an orderly end stays orderly: the backend's close after both halves
//    ended closes the client once it has everything;
//  - an abnormal end on one side (a reset, an error, no backend, the idle
//    timeout) reaches the other side as a reset, after the bytes that came
//    before it: a cut stream must look cut, never complete.
//
// The backend comes from the listener's pool (src/balancer/): TCP mode picks
// a member as soon as the client is accepted. A connect that fails (refused,
// timed out) counts against that member, and the next member is tried, up to
// the pool's `retries`, never the same one twice; the bytes the client sent
// meanwhile go to the member that answers. Only when none could be reached
// is the client cut, at once.
import type { AccessLog } from './accesslog';
import type { Member } from './balancer/member';
import type { Pool } from './balancer/pool';
import { Connection, type ConnectionOwner, type ConnectionSettings } from './connection';
import type { LimitedLog } from './log';
import { describePeer, startConnect } from './netutils';
import { formatAddress, fromSockaddr } from '../ffi/sockaddr';
import type { Pairing, Pairings } from './pairings';
import type { Reactor } from './reactor';
import { SysError } from '../ffi/libc';
import { trace } from './trace';

/** "127.0.0.1:53122" from accept's sockaddr (only when an access log wants it). */
function clientName(peer: Buffer): string {
  try {
    return formatAddress(fromSockaddr(peer));
  } catch {
    return '?';
  }
}

/** Causes rsp itself gives (the others are the peer's errors: "client ECONNRESET", "backend ECONNRESET"). */
const OWN_CAUSES = /^(no backend|idle timeout|stopped|internal error|client gone|backend gone)/;

function howItEnded(client: boolean, cause: string): string {
  return OWN_CAUSES.test(cause) ? cause : `${client ? 'client' : 'backend'} ${cause}`;
}

/** The pool the C rsp's backendAddress/backendPort form (its members are named as the C rsp named its backend). */
const DEFAULT_POOL = 'default';

/** One listener's counters: plain numbers the proxy bumps and the stats listener reads. */
export class ListenerStats {
  /** Connections accepted, and still open. */
  total = 0;
  active = 0;
  /** Bytes from clients, and to them. */
  bytesIn = 0;
  bytesOut = 0;
  constructor(public name: string) {}
}

export interface ProxyContext {
  reactor: Reactor;
  /** The listener this pairing came in on. */
  listener: ListenerStats;
  /** One line per pairing when it ends, or null. */
  accessLog: AccessLog | null;
  pairings: Pairings;
  /** Where connect failures are logged, at most once a second per backend and reason. */
  errors: LimitedLog;
  settings: ConnectionSettings;
  /** Name connections by their addresses (costs a getpeername per client). */
  tracing: boolean;
  /** Milliseconds a backend connect may take; 0 for no limit. */
  connectTimeout: number;
}

export class Proxy implements ConnectionOwner, Pairing {
  readonly client: Connection;
  backend: Connection | null = null;
  /** The member picked for `backend`, until the pairing ends (then released to the pool). */
  private member: Member | null = null;
  /** Members whose connect failed for this client (null until one did), and why the last one did. */
  private tried: Member[] | null = null;
  private lastFailure = '';
  /** The client's sockaddr, kept only for balance = "hash" (a retry hashes it again). */
  private readonly clientKey: Buffer | null;
  /** resetBoth() is closing both sides itself: no cascade in onClose. */
  private cutting = false;
  // For the access log: when it began, what it carried, the member, how it ended.
  private readonly startedAt: number;
  private bytesIn = 0;
  private bytesOut = 0;
  private memberName = '-';
  private end = '';
  private readonly clientName: string;

  constructor(
    private readonly ctx: ProxyContext,
    clientFd: number,
    private readonly pool: Pool,
    /** The client's sockaddr from accept4 (the listener's buffer: valid during this call only). */
    peer: Buffer | null,
  ) {
    this.client = new Connection(ctx.reactor, clientFd, this, ctx.settings);
    if (ctx.tracing) this.client.label = `client ${describePeer(clientFd)}`;
    this.clientKey = pool.balance === 'hash' && peer !== null ? Buffer.from(peer) : null;
    this.startedAt = ctx.reactor.now;
    this.clientName = ctx.accessLog !== null && peer !== null ? clientName(peer) : '';
    ctx.listener.total++;
    ctx.listener.active++;
    ctx.pairings.add(this);
  }

  /** Pick a member of the pool and connect to it. */
  start(): void {
    this.connectNext(null);
  }

  lastActive(): number {
    return this.backend === null ? this.client.lastActive : Math.max(this.client.lastActive, this.backend.lastActive);
  }

  sendQueuesMoved(): boolean {
    const client = this.client.sendQueueMoved();
    return (this.backend !== null && this.backend.sendQueueMoved()) || client;
  }

  resetBoth(cause: string): void {
    if (trace.on) trace.line(1, `${cause}: resetting fd ${this.client.fd}${this.backend ? ` and fd ${this.backend.fd}` : ''}`);
    this.cutting = true;
    this.backend?.resetNow(cause);
    this.client.resetNow(cause);
  }

  /**
   * Open the backend side to the next member the pool gives. Client bytes
   * that arrive meanwhile are queued on it; `failed` is the connection whose
   * connect just failed, whose queue moves to the new one.
   */
  private connectNext(failed: Connection | null): void {
    const member = this.pool.pick(this.clientKey, this.tried);
    if (member === null) {
      this.backend = null;
      this.noMember();
      return;
    }
    this.member = member;
    this.memberName = member.name;
    const counters = this.ctx.reactor.counters;
    let started;
    try {
      started = startConnect(member.sockaddr);
    } catch (error) {
      counters.otherCalls += 2;
      const reason = error instanceof SysError ? error.message : String(error);
      if (trace.on) trace.line(2, `${reason} (backend ${member.name})`);
      this.connectFailed(failed, error instanceof SysError ? error.code : String(error));
      return;
    }
    counters.otherCalls += 3; // socket, setsockopt(TCP_NODELAY), connect
    if (trace.on) {
      trace.line(2, `socket() = ${started.fd}; setsockopt(${started.fd}, TCP_NODELAY) = 0; connect(${started.fd}, ${member.name}) = ${started.inProgress ? '-1 EINPROGRESS' : '0'}`);
    }
    const backend = new Connection(this.ctx.reactor, started.fd, this, this.ctx.settings, started.inProgress);
    backend.label = `backend ${member.name}`;
    this.backend = backend;
    if (failed !== null) {
      failed.moveQueueTo(backend);
      if (this.client.hasEnded) backend.end();
    }
    if (started.inProgress) {
      backend.connectTimeout(this.ctx.connectTimeout);
    } else {
      counters.connects++;
      this.pool.connected(member);
    }
  }

  onConnect(conn: Connection): void {
    if (this.member === null) return;
    this.pool.connected(this.member);
    this.member.bytesOut += conn.queued;
  }

  onData(from: Connection, data: Buffer, length: number): void {
    const to = from === this.client ? this.backend : this.client;
    if (to === null) return;
    const member = this.member;
    if (from === this.client) {
      this.bytesIn += length;
      this.ctx.listener.bytesIn += length;
      // Bytes queued during a connect count for the member once it answers (onConnect).
      if (member !== null && !to.isConnecting) member.bytesOut += length;
    } else {
      this.bytesOut += length;
      this.ctx.listener.bytesOut += length;
      if (member !== null) member.bytesIn += length;
    }
    to.write(data, length);
    if (to.queued > this.ctx.settings.highWater && !from.isClosed) {
      from.pauseReading();
      to.wantDrain();
    }
  }

  onDrain(conn: Connection): void {
    const other = conn === this.client ? this.backend : this.client;
    other?.resumeReading();
  }

  onEnd(from: Connection): void {
    const to = from === this.client ? this.backend : this.client;
    if (to === null) {
      from.close();
      return;
    }
    if (to.hasEnded) {
      // Both directions are finished: flush what is queued, then close
      // (close() sends the FIN itself: no shutdown() first).
      this.client.close();
      this.backend!.close();
      return;
    }
    to.end();
  }

  onClose(conn: Connection, cause: string): void {
    if (conn !== this.client && conn === this.backend && !conn.isConnecting && this.member !== null) {
      this.pool.released(this.member);
      this.member = null;
    }
    // How it ended, for the access log: the first abnormal close (not a connect that a retry may still make good).
    if (this.end === '' && cause !== 'closed' && (conn === this.client || !conn.isConnecting)) this.end = howItEnded(conn === this.client, cause);
    if (this.client.isClosed && (this.backend === null || this.backend.isClosed)) this.finished();
    if (this.cutting) {
      if (conn === this.backend && conn.isConnecting && this.member !== null) {
        this.pool.released(this.member); // the pick ends; not the member's fault
        this.member = null;
      }
      return;
    }
    if (conn === this.client) {
      // An orderly close of the client happens only once the backend is
      // closing too (it flushes on its own); anything else is a cut, and
      // the backend gets what the client sent before it, then a reset.
      if (cause !== 'closed') this.backend?.reset('client gone');
      return;
    }
    if (conn.isConnecting) {
      if (this.client.isClosed) {
        // Cut because the client went: the pick ends, no fault of the member's.
        if (this.member !== null) this.pool.released(this.member);
        this.member = null;
        return;
      }
      this.connectFailed(conn, cause);
      return;
    }
    // Backend gone: the client still gets what was queued for it, then the
    // same kind of end the backend gave.
    if (cause === 'closed') this.client.close();
    else this.client.reset('backend gone');
  }

  /** Both sides are closed: the pairing is over. */
  private finished(): void {
    this.ctx.pairings.delete(this);
    const listener = this.ctx.listener;
    listener.active--;
    this.ctx.accessLog?.write({
      client: this.clientName,
      listener: listener.name,
      pool: this.pool.name,
      member: this.memberName,
      bytesIn: this.bytesIn,
      bytesOut: this.bytesOut,
      seconds: (this.ctx.reactor.now - this.startedAt) / 1000,
      end: this.end === '' ? 'closed' : this.end,
    });
  }

  /** The connect to this.member failed: count it against the member, then try the next one (or give up). */
  private connectFailed(failed: Connection | null, reason: string): void {
    const member = this.member!;
    this.member = null;
    const name = this.pool.name === DEFAULT_POOL ? member.name : `${this.pool.name} member ${member.name}`;
    this.ctx.errors.error(`backend ${name} ${reason}`, `Could not connect to backend ${name} for client ${describePeer(this.client.fd)}: ${reason}`);
    this.pool.failed(member, reason);
    if (this.client.isClosed) return;
    (this.tried ??= []).push(member);
    this.lastFailure = reason;
    if (this.tried.length <= this.pool.retries) {
      this.connectNext(failed);
      return;
    }
    this.backend = null;
    this.client.reset(`no backend (${reason})`);
  }

  /** No member of the pool can take this client (all down, full, or tried). */
  private noMember(): void {
    if (this.tried === null) {
      this.ctx.errors.error(`pool ${this.pool.name} empty`, `No member of backend ${this.pool.name} is up: client ${describePeer(this.client.fd)} cut`);
    }
    this.client.reset(`no backend (${this.tried === null ? 'none up' : this.lastFailure})`);
  }
}
