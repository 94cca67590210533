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
//
// PROXY protocol (src/proxyprotocol/): with acceptProxy the client's first
// bytes are a header naming the real client; nothing is connected until it
// is complete, and its address is the client's everywhere (hash, logs). A
// connection without a valid one is reset. With the pool's sendProxy, each
// backend connection gets a header before any byte of the client's.
//
// Zero copy (zeroCopy, src/splice.ts): once one read of a direction brings
// the threshold or more (a full 64 KB read buffer: a bulk transfer; any read
// with "on"), and the backend is connected, that direction's bytes go through
// a pipe of its own with splice() instead of through the read buffer. The
// rules above stay as they are: the pipe's bytes count as the destination's
// queued bytes, so backpressure, half-close and resets wait for them as they
// wait for a write queue.
import type { AccessLog } from './accesslog';
import type { Member } from './balancer/member';
import { DEFAULT_POOL, type Pool } from './balancer/pool';
import { Connection, type ConnectionOwner, type ConnectionSettings } from './connection';
import type { LimitedLog } from './log';
import { describePeer, localSockaddr, startConnect } from './netutils';
import { isHeaderError, NEED_MORE, ProxyHeaderParser } from './proxyprotocol/parse';
import { proxyHeader, type ProxyVersion } from './proxyprotocol/write';
import { formatAddress, fromSockaddr, copySockaddr, type SocketAddress } from '../ffi/sockaddr';
import type { Pairing, Pairings } from './pairings';
import type { Reactor, Timer } from './reactor';
import type { Splice, ZeroCopy } from './splice';
import { SysError } from '../ffi/libc';
import { trace } from './trace';

/** Causes rsp itself gives (the others are the peer's errors: "client ECONNRESET", "backend ECONNRESET"). */
const OWN_CAUSES = /^(no backend|idle timeout|stopped|internal error|client gone|backend gone)/;

function howItEnded(client: boolean, cause: string): string {
  return OWN_CAUSES.test(cause) ? cause : `${client ? 'client' : 'backend'} ${cause}`;
}

/** One listener's counters: plain numbers the proxy bumps and the stats listener reads. */
export class ListenerStats {
  /** Connections accepted, and still open. */
  total = 0;
  active = 0;
  /** Bytes from clients, and to them. */
  bytesIn = 0;
  bytesOut = 0;
  /** HTTP mode: requests read, and responses by class (index 1: 1xx ... 5: 5xx), rsp's own answers included. */
  requests = 0;
  readonly responses = [0, 0, 0, 0, 0, 0];
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
  /** Zero copy with splice(): the worker's pipes and policy; null or absent: always copy. */
  zeroCopy?: ZeroCopy | null;
}

/** PROXY protocol settings of a listener and its pool. */
export interface ProxyOptions {
  /** The client's first bytes are a PROXY protocol header (v1 or v2). */
  acceptProxy: boolean;
  /** Send the backend a header of this version before the client's bytes. */
  sendProxy: ProxyVersion | null;
}

const PLAIN: ProxyOptions = { acceptProxy: false, sendProxy: null };

export class Proxy implements ConnectionOwner, Pairing {
  slot = -1;
  acceptedBy: { released(): void } | null = null;
  readonly client: Connection;
  backend: Connection | null = null;
  /** The member picked for `backend`, until the pairing ends (then released to the pool). */
  private member: Member | null = null;
  /** Members whose connect failed for this client (null until one did), and why the last one did. */
  private tried: Member[] | null = null;
  private lastFailure = '';
  /**
   * The client's sockaddr: accept()'s, or the PROXY header's. The key for
   * balance = "hash" (a retry hashes it again), and what clientAddress names.
   */
  private clientSockaddr: Buffer | null;
  /** clientAddress, once asked for (most connections never need it as text). */
  private clientText: string | null = null;
  /** Where the client connected to, as a PROXY header said (null: our own socket's address). */
  private clientDestination: Buffer | null = null;
  /** Reading the client's PROXY header (acceptProxy), until it is complete. */
  private header: ProxyHeaderParser | null = null;
  private headerTimer: Timer | null = null;
  /** The header each backend connection gets first (sendProxy), built once. */
  private sendHeader: Buffer | null = null;
  /** resetBoth() is closing both sides itself: no cascade in onClose. */
  private cutting = false;
  // For the access log: when it began, what it carried, the member, how it ended.
  private readonly startedAt: number;
  private bytesIn = 0;
  private bytesOut = 0;
  private memberName = '-';
  private end = '';
  // Zero copy: each direction's pipe, once it has one; noPipe once none could be had.
  private toBackend: Splice | null = null;
  private toClient: Splice | null = null;
  private noPipe = false;

  constructor(
    private readonly ctx: ProxyContext,
    clientFd: number,
    private readonly pool: Pool,
    /** The client's sockaddr from accept4 (the listener's buffer: valid during this call only). */
    peer: Buffer | null,
    private readonly options: ProxyOptions = PLAIN,
  ) {
    this.client = new Connection(ctx.reactor, clientFd, this, ctx.settings);
    this.clientSockaddr = peer === null ? null : copySockaddr(peer);
    if (peer === null) this.clientText = describePeer(clientFd);
    if (ctx.tracing) this.client.label = `client ${this.clientAddress}`;
    this.startedAt = ctx.reactor.now;
    ctx.listener.total++;
    ctx.listener.active++;
    ctx.pairings.add(this);
  }

  /** The client as logs name it, "192.0.2.7:51234": from accept(), or from the PROXY header. */
  get clientAddress(): string {
    return (this.clientText ??= clientName(this.clientSockaddr, this.client.fd));
  }

  /** Pick a member of the pool and connect to it (with acceptProxy: once the client's header is in). */
  start(): void {
    if (!this.options.acceptProxy) {
      this.connectNext(null);
      return;
    }
    this.header = new ProxyHeaderParser();
    // A client that says nothing gets as long as a backend connect would.
    if (this.ctx.connectTimeout > 0) this.headerTimer = this.ctx.reactor.after(this.ctx.connectTimeout, () => this.badHeader('no PROXY header within connectTimeout'));
  }

  /** Bytes of the client while its PROXY header is not complete yet. */
  private readHeader(data: Buffer, length: number): void {
    const parser = this.header!;
    const r = parser.feed(data, length);
    if (r === NEED_MORE) return;
    if (isHeaderError(r)) {
      this.badHeader(r.error);
      return;
    }
    this.stopHeader();
    if (r.source !== null) {
      // LOCAL and UNKNOWN headers leave the connection's own address in place.
      this.clientSockaddr = r.source.sockaddr;
      this.clientText = r.source.text;
      this.clientDestination = r.destination!.sockaddr;
      if (this.ctx.tracing) this.client.label = `client ${this.clientAddress}`;
    }
    if (trace.on) trace.line(2, `PROXY v${r.version} header (${r.length} bytes): client ${this.clientAddress}`);
    this.connectNext(null);
    const rest = parser.restOffset;
    if (rest < length && this.backend !== null) this.onData(this.client, data.subarray(rest), length - rest);
  }

  private badHeader(reason: string): void {
    if (this.client.isClosed) return;
    this.stopHeader();
    this.ctx.errors.error('bad PROXY header', `Bad PROXY protocol header from ${this.clientAddress}: ${reason}; connection reset`);
    this.client.resetNow('bad PROXY header');
  }

  private stopHeader(): void {
    this.header = null;
    this.headerTimer?.cancel();
    this.headerTimer = null;
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
    const member = this.pool.pick(this.clientSockaddr, this.tried);
    if (member === null) {
      this.backend = null;
      this.noMember();
      return;
    }
    this.member = member;
    this.memberName = member.name;
    const backend = openBackend(this.ctx, member, this);
    if (typeof backend === 'string') {
      this.connectFailed(failed, backend);
      return;
    }
    this.backend = backend;
    if (this.options.sendProxy !== null) {
      // First on every backend connection; a failed one's copy stays behind.
      this.sendHeader ??= this.headerForBackend(this.options.sendProxy);
      backend.write(this.sendHeader, this.sendHeader.length);
    }
    if (failed !== null) {
      failed.moveQueueTo(backend, this.sendHeader === null ? 0 : this.sendHeader.length);
      if (this.client.hasEnded) backend.end();
    }
    if (!backend.isConnecting) this.pool.connected(member);
  }

  /** The client's address and the one it connected to (a header's, or our socket's). */
  private headerForBackend(version: ProxyVersion): Buffer {
    let destination = this.clientDestination;
    if (destination === null) {
      destination = localSockaddr(this.client.fd);
      this.ctx.reactor.counters.otherCalls++;
    }
    return proxyHeader(version, this.clientSockaddr, destination);
  }

  onConnect(conn: Connection): void {
    if (this.member === null) return;
    this.pool.connected(this.member);
    this.member.bytesOut += conn.queued;
  }

  onData(from: Connection, data: Buffer, length: number): void {
    if (this.header !== null && from === this.client) {
      this.readHeader(data, length);
      return;
    }
    const to = from === this.client ? this.backend : this.client;
    if (to === null) return;
    this.count(from, to, length);
    to.write(data, length);
    if (to.queued > this.ctx.settings.highWater && !from.isClosed) {
      from.pauseReading();
      to.wantDrain();
    }
    const zeroCopy = this.ctx.zeroCopy;
    if (zeroCopy != null && length >= zeroCopy.threshold && !this.noPipe && from.splice === null) this.startSplice(zeroCopy, from, to);
  }

  /** Bytes from `from` to `to`, for the access log, the listener and the member. */
  private count(from: Connection, to: Connection, length: number): void {
    const member = this.member;
    if (from === this.client) {
      this.bytesIn += length;
      this.ctx.listener.bytesIn += length;
      // Bytes queued during a connect count for the member once it answers (onConnect).
      if (member !== null && !to.isConnecting) member.bytesOut += length;
      return;
    }
    this.bytesOut += length;
    this.ctx.listener.bytesOut += length;
    if (member !== null) member.bytesIn += length;
  }

  /** From now on `from`'s bytes go to `to` through a pipe (after what is queued on `to` already). */
  private startSplice(zeroCopy: ZeroCopy, from: Connection, to: Connection): void {
    // Not while connecting: a failed connect hands its queue to the next member, and a pipe's bytes cannot move.
    if (to.isConnecting || to.isClosed || from.isClosed || this.header !== null) return;
    const pipe = zeroCopy.pipe(this.clientAddress);
    if (pipe === null) {
      this.noPipe = true;
      return;
    }
    if (from === this.client) this.toBackend = pipe;
    else this.toClient = pipe;
    from.splice = pipe;
    if (trace.on) trace.line(2, `zero copy from fd ${from.fd} to fd ${to.fd} through pipe ${pipe.readFd} from here on`);
  }

  onSpliced(from: Connection, length: number): void {
    const to = from === this.client ? this.backend : this.client;
    const pipe = from.splice!;
    if (to === null) return;
    this.count(from, to, length);
    if (!to.writeFromPipe(pipe, length)) {
      // The other side takes nothing more (its peer is gone): read on, as copying does, and drop.
      from.splice = null;
      return;
    }
    if (to.queued > this.ctx.settings.highWater && !from.isClosed) {
      from.pauseReading();
      to.wantDrain();
    }
  }

  onPipeFull(from: Connection): void {
    const to = from === this.client ? this.backend : this.client;
    if (to !== null && to.queued > 0) {
      to.wantDrain();
      return;
    }
    // Nothing queued on the other side, so the pipe's bytes were dropped with
    // its queue (its peer is gone): read on, as copying does, and drop.
    from.splice = null;
    from.resumeReading();
  }

  onDrain(conn: Connection): void {
    const other = conn === this.client ? this.backend : this.client;
    other?.resumeReading();
  }

  onEnd(from: Connection): void {
    if (this.header !== null && from === this.client && this.header.pending > 0) {
      this.badHeader('the connection ended inside the header');
      return;
    }
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
    if (conn === this.client && this.header !== null) this.stopHeader();
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
    // Neither connection can refer to a pipe any more.
    if (this.toBackend !== null) this.ctx.zeroCopy!.release(this.toBackend);
    if (this.toClient !== null) this.ctx.zeroCopy!.release(this.toClient);
    this.toBackend = this.toClient = null;
    this.ctx.pairings.delete(this);
    const listener = this.ctx.listener;
    listener.active--;
    this.ctx.accessLog?.write({
      client: this.clientAddress,
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
    this.ctx.errors.error(`backend ${name} ${reason}`, `Could not connect to backend ${name} for client ${this.clientAddress}: ${reason}`);
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
      this.ctx.errors.error(`pool ${this.pool.name} empty`, `No member of backend ${this.pool.name} is up: client ${this.clientAddress} cut`);
    }
    this.client.reset(`no backend (${this.tried === null ? 'none up' : this.lastFailure})`);
  }
}

/**
 * socket() + connect() to `member` for `owner`: the new connection (its
 * connect in progress, with connectTimeout), or the errno name when even
 * that failed (EMFILE, ENETUNREACH...).
 */
export function openBackend(ctx: ProxyContext, member: Member, owner: ConnectionOwner): Connection | string {
  const counters = ctx.reactor.counters;
  let started;
  try {
    started = startConnect(member.sockaddr);
  } catch (error) {
    counters.otherCalls += 2;
    const reason = error instanceof SysError ? error.message : String(error);
    if (trace.on) trace.line(2, `${reason} (backend ${member.name})`);
    return error instanceof SysError ? error.code : String(error);
  }
  counters.otherCalls += 3; // socket, setsockopt(TCP_NODELAY), connect
  if (trace.on) {
    trace.line(2, `socket() = ${started.fd}; setsockopt(${started.fd}, TCP_NODELAY) = 0; connect(${started.fd}, ${member.name}) = ${started.inProgress ? '-1 EINPROGRESS' : '0'}`);
  }
  const conn = new Connection(ctx.reactor, started.fd, owner, ctx.settings, started.inProgress);
  conn.label = `backend ${member.name}`;
  if (started.inProgress) conn.connectTimeout(ctx.connectTimeout);
  else counters.connects++;
  return conn;
}

/** How logs name a client: "192.0.2.7:51234" from its sockaddr, or "fd 25" when it has none that is IP. */
export function clientName(sockaddr: Buffer | null, fd: number): string {
  const a = sockaddr === null ? null : addressOf(sockaddr);
  return a === null ? `fd ${fd}` : formatAddress(a);
}

/** The address in a sockaddr from accept(), or null for one that is not IP. */
export function addressOf(sa: Buffer): SocketAddress | null {
  try {
    return fromSockaddr(sa);
  } catch {
    return null;
  }
}
