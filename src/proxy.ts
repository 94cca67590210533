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
// The backend is not chosen here. TCP mode connects as soon as the client is
// accepted; an HTTP mode can read a request head first, then call connect(),
// and detach() / connect() again per request on a keep-alive connection.
import { Connection, type ConnectionOwner, type ConnectionSettings } from './connection';
import type { LimitedLog } from './log';
import { describePeer, startConnect } from './netutils';
import type { Pairing, Pairings } from './pairings';
import type { Reactor } from './reactor';
import { SysError } from '../ffi/libc';
import { trace } from './trace';

/** Where to connect: resolved once at start-up. */
export interface Backend {
  /** "127.0.0.1:8888", for logs. */
  name: string;
  sockaddr: Buffer;
}

/** Chooses the backend for a new pairing (a balancer later chooses among many). */
export interface BackendPicker {
  pick(): Backend | null;
}

export interface ProxyContext {
  reactor: Reactor;
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
  private target: Backend | null = null;
  /** resetBoth() is closing both sides itself: no cascade in onClose. */
  private cutting = false;

  constructor(
    private readonly ctx: ProxyContext,
    clientFd: number,
  ) {
    this.client = new Connection(ctx.reactor, clientFd, this, ctx.settings);
    if (ctx.tracing) this.client.label = `client ${describePeer(clientFd)}`;
    ctx.pairings.add(this);
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

  /** Open the backend side. Client bytes that arrive meanwhile are queued on it. */
  connect(target: Backend): void {
    this.target = target;
    const counters = this.ctx.reactor.counters;
    let started;
    try {
      started = startConnect(target.sockaddr);
    } catch (error) {
      counters.otherCalls += 2;
      const reason = error instanceof SysError ? error.message : String(error);
      if (trace.on) trace.line(2, `${reason} (backend ${target.name})`);
      this.backendFailed(error instanceof SysError ? error.code : String(error));
      return;
    }
    counters.otherCalls += 3; // socket, setsockopt(TCP_NODELAY), connect
    if (trace.on) {
      trace.line(2, `socket() = ${started.fd}; setsockopt(${started.fd}, TCP_NODELAY) = 0; connect(${started.fd}, ${target.name}) = ${started.inProgress ? '-1 EINPROGRESS' : '0'}`);
    }
    const backend = new Connection(this.ctx.reactor, started.fd, this, this.ctx.settings, started.inProgress);
    backend.label = `backend ${target.name}`;
    this.backend = backend;
    if (started.inProgress) backend.connectTimeout(this.ctx.connectTimeout);
    else this.ctx.reactor.counters.connects++;
  }

  onConnect(_conn: Connection): void {}

  onData(from: Connection, data: Buffer, length: number): void {
    const to = from === this.client ? this.backend : this.client;
    if (to === null) return;
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
    if (this.client.isClosed && (this.backend === null || this.backend.isClosed)) this.ctx.pairings.delete(this);
    if (this.cutting) return;
    if (conn === this.client) {
      // An orderly close of the client happens only once the backend is
      // closing too (it flushes on its own); anything else is a cut, and
      // the backend gets what the client sent before it, then a reset.
      if (cause !== 'closed') this.backend?.reset('client gone');
      return;
    }
    if (conn.isConnecting) {
      this.backendFailed(cause);
      return;
    }
    // Backend gone: the client still gets what was queued for it, then the
    // same kind of end the backend gave.
    if (cause === 'closed') this.client.close();
    else this.client.reset('backend gone');
  }

  private backendFailed(reason: string): void {
    const name = this.target?.name ?? '?';
    this.ctx.errors.error(`backend ${name} ${reason}`, `Could not connect to backend ${name} for client ${describePeer(this.client.fd)}: ${reason}`);
    this.client.reset(`no backend (${reason})`);
  }
}
