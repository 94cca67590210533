// HTTP mode: the owner of one client connection and, one request at a time,
// of a backend connection. TCP mode (proxy.ts) pairs the two sockets for
// their whole life; here rsp reads each request head itself, decides where
// it goes (the routes table or Lua's route()), takes a kept-alive connection
// to the member the pool picks or opens one, and passes on the request and
// then the response, each framed by its own head (Content-Length, chunked,
// or until close), so it knows where one exchange ends and the next begins.
//
//   client phase:  Idle → Head → Body → Waiting → Idle ...   (or Tunnel, Lingering)
//   response:      (none) → head → body → (none): the backend goes back to the pool
//
// Requests are answered strictly in order: bytes that arrive after a
// complete request (pipelining) are set aside and the client is not read
// until the response is complete. A client that shuts down its sending half
// after its request still gets the response, as in TCP mode. What rsp says
// itself (400, 408, 413, 414, 431, 501, 505, 502, 503, 504, route()'s
// statuses) ends with Connection: close; a response that is cut after its
// head was sent can only be cut: the client gets a reset, never a FIN that
// would make a truncated body look complete.
//
// After a 101 to an Upgrade request (WebSocket) the two connections are a
// plain TCP pairing: bytes both ways, backpressure, half-close and resets as
// in proxy.ts.
import type { Member } from '../balancer/member';
import { DEFAULT_POOL, type Pool } from '../balancer/pool';
import { Connection, type ConnectionOwner } from '../connection';
import { addressText, copySockaddr } from '../../ffi/sockaddr';
import { describePeer } from '../netutils';
import type { Pairing } from '../pairings';
import { clientName, openBackend, type ProxyContext } from '../proxy';
import { isHeaderError, NEED_MORE as HEADER_NEED_MORE, ProxyHeaderParser } from '../proxyprotocol/parse';
import { proxyHeader, type ProxyVersion } from '../proxyprotocol/write';
import { localSockaddr } from '../netutils';
import { trace } from '../trace';
import { CHUNKED_ERROR, CHUNKED_NEED_MORE, ChunkedBody } from './chunked';
import { errorResponse, reasonPhrase } from './errors';
import { appendToHead, COALESCE_MAX, headBuffer, requestHead, responseHead, type ClientFacts } from './forward';
import { BODY_CHUNKED, BODY_LENGTH, BODY_NONE, BODY_UNTIL_CLOSE, DONE, NEED_MORE, type HeadLimits } from './head';
import { RequestHead } from './request';
import { ResponseHead } from './response';
import type { Upstreams } from './upstream';

/** Where a request goes: a pool, or a status rsp answers itself. */
export type RouteRequest = (req: RequestHead, client: HttpSession) => Pool | number;

export interface HttpContext extends ProxyContext {
  route: RouteRequest;
  /** Kept-alive backend connections, one set per pool. */
  upstreams: Map<Pool, Upstreams>;
  /** The pools with sendProxy: a PROXY header on each new backend connection, which is then not reused for anyone else. */
  sendProxy: Map<Pool, ProxyVersion>;
  headLimits: HeadLimits;
  /** Most bytes of a request body; 0: no limit. */
  maxBody: number;
  /** Milliseconds; 0: no limit. */
  requestHeadTimeout: number;
  keepAliveTimeout: number;
  backendTimeout: number;
  /** The client is one of trustedProxies (its X-Forwarded-* are kept). */
  trusted: (sockaddr: Buffer | null) => boolean;
  xForwarded: boolean;
  /** Set while the worker drains: each client connection ends after its current response. */
  draining: { on: boolean };
}

const enum Phase { Idle, Head, Body, Waiting, Tunnel, Lingering, Closed }
const enum Wait { None, KeepAlive, Head, Backend, Linger }

/** How long a refused client may go on sending before its connection is closed (nginx's lingering_timeout). */
const LINGER_MS = 5000;

/** Where a body ends: a byte count, chunked, or the end of the connection. */
class Framing {
  kind = BODY_NONE;
  remaining = 0;
  /** Bytes of the body so far. */
  bytes = 0;
  chunked: ChunkedBody | null = null;

  /** `request`: trailers may not name framing fields (chunked.ts). */
  constructor(private readonly request: boolean) {}

  start(kind: number, length: number): void {
    this.kind = kind;
    this.remaining = kind === BODY_LENGTH ? length : 0;
    this.bytes = 0;
    if (kind === BODY_CHUNKED) {
      this.chunked ??= new ChunkedBody({}, !this.request);
      this.chunked.reset();
    }
  }

  get done(): boolean {
    if (this.kind === BODY_NONE) return true;
    if (this.kind === BODY_LENGTH) return this.remaining === 0;
    if (this.kind === BODY_CHUNKED) return this.chunked!.done;
    return false;
  }

  /** How many of bytes [s, e) belong to the body; -1 when they break the chunked grammar. */
  take(d: Buffer, s: number, e: number): number {
    let n: number;
    if (this.kind === BODY_LENGTH) {
      n = Math.min(this.remaining, e - s);
      this.remaining -= n;
    } else if (this.kind === BODY_CHUNKED) {
      const r = this.chunked!.feed(d, s, e);
      if (r === CHUNKED_ERROR) return -1;
      n = r === CHUNKED_NEED_MORE ? e - s : r - s;
    } else if (this.kind === BODY_UNTIL_CLOSE) {
      n = e - s;
    } else {
      n = 0;
    }
    this.bytes += n;
    return n;
  }

  /** Bytes of body data (chunked: without the framing), for the body limit. */
  get dataBytes(): number {
    return this.kind === BODY_CHUNKED ? this.chunked!.bodyBytes : this.bytes;
  }
}

// Heads are taken from a free list when a message starts and given back when
// it is over: an idle keep-alive connection holds no parser.
const freeRequests: RequestHead[] = [];
const freeResponses: ResponseHead[] = [];
const FREE_MAX = 256;

export class HttpSession implements ConnectionOwner, Pairing {
  slot = -1;
  acceptedBy: { released(): void } | null = null;
  readonly client: Connection;
  private upstream: Connection | null = null;
  private member: Member | null = null;
  private pool: Pool | null = null;
  /** The upstream connection was kept alive from an earlier request. */
  private reused = false;
  private tried: Member[] | null = null;
  private phase = Phase.Idle;
  private wait = Wait.None;
  /** reactor.now when the current wait runs out (0: no limit). */
  private deadline = 0;
  private req: RequestHead | null = null;
  private res: ResponseHead | null = null;
  private readonly reqBody = new Framing(true);
  private readonly resBody = new Framing(false);
  /** A response is under way (its head is awaited, or its body is being passed on). */
  private responding = false;
  /** The response head went to the client: from then on an error can only cut. */
  private headSent = false;
  /** The request head is this.upstream's, not yet written: it goes once the bytes read with it have been checked. */
  private headOwed = false;
  private deferHead = false;
  /** Bytes the backend sent for the current request. */
  private backendBytes = 0;
  /** The client ends after the current response. */
  private closeAfter = false;
  private clientEnded = false;
  /** Bytes the client sent after a complete request, kept until its response is done. */
  private pending: Buffer | null = null;
  private clientSockaddr: Buffer | null;
  private clientText: string | null = null;
  private facts: ClientFacts | null = null;
  private cutting = false;
  /** acceptProxy: the client's PROXY protocol header, until it is complete. */
  private proxyHeader: ProxyHeaderParser | null = null;
  // For the access log, per request: when it began, the connection's byte counts then, the status.
  private requestStart = 0;
  private bytesIn = 0;
  private bytesOut = 0;
  private inAtStart = 0;
  private outAtStart = 0;
  private status = 0;
  private memberName = '-';
  /** De-chunking for an HTTP/1.0 client: chunk data on to the client (made on first use). */
  private dechunked: ((d: Uint8Array, s: number, e: number) => void) | null = null;
  private dechunking = false;

  constructor(
    private readonly ctx: HttpContext,
    clientFd: number,
    /** The listener's pool: where requests go when no route says otherwise. */
    readonly listenerPool: Pool | null,
    peer: Buffer | null,
    /** The client's first bytes are a PROXY protocol header naming the real client. */
    acceptProxy = false,
  ) {
    this.client = new Connection(ctx.reactor, clientFd, this, ctx.settings);
    if (acceptProxy) this.proxyHeader = new ProxyHeaderParser();
    this.clientSockaddr = peer === null ? null : copySockaddr(peer);
    if (peer === null) this.clientText = describePeer(clientFd);
    if (ctx.tracing) this.client.label = `client ${this.clientAddress}`;
    ctx.listener.total++;
    ctx.listener.active++;
    ctx.pairings.add(this);
    this.idle();
  }

  /** "192.0.2.7:51234", as logs and route()'s req.remote name the client. */
  get clientAddress(): string {
    return (this.clientText ??= clientName(this.clientSockaddr, this.client.fd));
  }

  // ------------------------------------------------------------ Pairing

  lastActive(): number {
    // Between requests the keep-alive timeout applies, not the idle timeout.
    if (this.phase === Phase.Idle) return this.ctx.reactor.now;
    return this.upstream === null ? this.client.lastActive : Math.max(this.client.lastActive, this.upstream.lastActive);
  }

  sendQueuesMoved(): boolean {
    const client = this.client.sendQueueMoved();
    return (this.upstream !== null && this.upstream.sendQueueMoved()) || client;
  }

  resetBoth(cause: string): void {
    this.cutting = true;
    this.dropUpstream(cause, true);
    this.client.resetNow(cause);
  }

  /** The sweep's look at this session's own timeouts. */
  expire(now: number): void {
    if (this.deadline === 0 || now < this.deadline) return;
    const wait = this.wait;
    this.deadline = 0;
    this.wait = Wait.None;
    if (wait === Wait.KeepAlive || wait === Wait.Linger) this.client.close();
    else if (wait === Wait.Head) this.refuse(408, 'request head not complete in time');
    else if (wait === Wait.Backend) this.backendFailed(504, `no response from ${this.member?.name ?? 'the backend'} within backendTimeout`, true);
  }

  /** Its config is retired: the connection ends after the current (or, on a reload, the next) response; `idleToo`: an idle one ends now. */
  drain(idleToo: boolean): void {
    if (idleToo && this.phase === Phase.Idle && this.pending === null) this.client.close();
    else this.closeAfter = true;
  }

  private waitFor(wait: Wait, ms: number): void {
    this.wait = wait;
    this.deadline = ms > 0 ? this.ctx.reactor.now + ms : 0;
  }

  // ------------------------------------------------------------ connection events

  onConnect(conn: Connection): void {
    if (conn !== this.upstream || this.member === null || this.pool === null) return;
    this.pool.connected(this.member);
  }

  onData(conn: Connection, data: Buffer, length: number): void {
    if (conn === this.client) {
      this.bytesIn += length;
      this.ctx.listener.bytesIn += length;
      if (this.proxyHeader !== null) this.readProxyHeader(data, length);
      else this.fromClient(data, 0, length);
    } else if (conn === this.upstream) {
      if (this.member !== null) this.member.bytesIn += length;
      this.fromBackend(data, 0, length);
    }
  }

  onDrain(conn: Connection): void {
    if (conn === this.client) this.upstream?.resumeReading();
    else if (this.phase === Phase.Body || this.phase === Phase.Tunnel) this.client.resumeReading();
  }

  onEnd(conn: Connection): void {
    if (conn === this.client) this.clientEnd();
    else if (conn === this.upstream) this.backendEnd();
  }

  onClose(conn: Connection, cause: string): void {
    if (conn === this.client) {
      this.phase = Phase.Closed;
      // The client went before its exchange was over: the backend connection cannot be reused.
      if (!this.cutting) this.dropUpstream('client gone', cause !== 'closed');
      this.finished(cause);
      return;
    }
    if (conn !== this.upstream) return; // handed back to the pool, or replaced
    this.upstream = null;
    if (this.cutting || this.phase === Phase.Closed) return;
    if (this.phase === Phase.Tunnel) {
      this.releaseMember();
      if (cause === 'closed') this.client.close();
      else this.client.reset('backend gone');
      return;
    }
    if (conn.isConnecting) {
      this.connectFailed(conn, cause);
      return;
    }
    if (!this.responding) {
      this.releaseMember();
      return;
    }
    if (!this.headSent) {
      if (this.retryable()) {
        this.retryFresh();
        return;
      }
      this.backendFailed(502, `backend ${cause} before a complete response head`, true);
      return;
    }
    // Cut in the middle of the body: the client must see it cut.
    this.releaseMember();
    this.client.reset('backend gone');
  }

  // ------------------------------------------------------------ the client's side

  private fromClient(data: Buffer, i: number, length: number): void {
    this.readRequests(data, i, length);
    // A head routed in this pass goes out after the body bytes that came with
    // it have been checked: a request refused for those never reaches a
    // backend, not even its head on a kept-alive connection.
    if (this.headOwed) this.writeOwedHead();
  }

  private readRequests(data: Buffer, i: number, length: number): void {
    const phase = this.phase;
    if (phase === Phase.Tunnel) {
      this.toUpstream(data, i, length);
      return;
    }
    if (phase === Phase.Lingering || phase === Phase.Closed) return;
    while (i < length) {
      if (this.phase === Phase.Idle || this.phase === Phase.Head) {
        if (this.responding) {
          this.setAside(data, i, length); // pipelined behind a response still under way
          return;
        }
        if (this.phase === Phase.Idle) {
          this.phase = Phase.Head;
          this.requestStart = this.ctx.reactor.now;
          this.inAtStart = this.bytesIn - (length - i);
          this.outAtStart = this.bytesOut;
          this.waitFor(Wait.Head, this.ctx.requestHeadTimeout);
          this.req ??= freeRequests.pop() ?? new RequestHead(this.ctx.headLimits);
        }
        const req = this.req!;
        const r = req.feed(data, i, length);
        if (r === NEED_MORE) return;
        if (r !== DONE) {
          this.refuse(r, req.error, req.error);
          return;
        }
        i = req.headEnd;
        this.waitFor(Wait.None, 0);
        this.ctx.listener.requests++;
        if (!this.startRequest()) return;
      } else if (this.phase === Phase.Body) {
        const n = this.reqBody.take(data, i, length);
        if (n < 0) {
          this.refuse(400, `bad chunked request body: ${this.reqBody.chunked!.error}`, 'bad chunked');
          return;
        }
        if (this.ctx.maxBody > 0 && this.reqBody.dataBytes > this.ctx.maxBody) {
          this.refuse(413, `request body over ${this.ctx.maxBody} bytes`);
          return;
        }
        this.toUpstream(data, i, i + n);
        i += n;
        if (this.reqBody.done) this.requestSent();
        if (this.phase !== Phase.Body && this.phase !== Phase.Waiting) return;
      } else {
        // Waiting: the request is complete and its response is not.
        this.setAside(data, i, length);
        return;
      }
    }
  }

  /** acceptProxy: the header comes first; its source is the client from then on (logs, X-Forwarded-For, hash). */
  private readProxyHeader(data: Buffer, length: number): void {
    const parser = this.proxyHeader!;
    const r = parser.feed(data, length);
    if (r === HEADER_NEED_MORE) return;
    this.proxyHeader = null;
    if (isHeaderError(r)) {
      this.ctx.errors.error('bad PROXY header', `Bad PROXY protocol header from ${this.clientAddress}: ${r.error}; connection reset`);
      this.client.resetNow('bad PROXY header');
      return;
    }
    if (r.source !== null) {
      this.clientSockaddr = r.source.sockaddr;
      this.clientText = r.source.text;
      if (this.ctx.tracing) this.client.label = `client ${this.clientAddress}`;
    }
    if (parser.restOffset < length) this.fromClient(data, parser.restOffset, length);
  }

  /** Bytes [s, e) of `data` to the backend, with backpressure. */
  private toUpstream(data: Buffer, s: number, e: number): void {
    const up = this.upstream;
    if (up === null) return;
    let from = s;
    if (this.headOwed) {
      // The body's first bytes, when few, go in the same write as the head.
      if (e - s <= COALESCE_MAX) from = e;
      this.writeOwedHead(data, s, from);
    }
    if (e <= s) return;
    if (from < e) up.write(from === 0 ? data : data.subarray(from), e - from);
    if (this.member !== null && !up.isConnecting) this.member.bytesOut += e - s;
    if (up.queued > this.ctx.settings.highWater && !this.client.isClosed) {
      this.client.pauseReading();
      up.wantDrain();
    }
  }

  private setAside(data: Buffer, s: number, e: number): void {
    const more = data.subarray(s, e);
    this.pending = this.pending === null ? Buffer.from(more) : Buffer.concat([this.pending, more]);
    // Not read any further until this response is done: the pipeline is bounded by the socket buffer.
    this.client.pauseReading();
  }

  private clientEnd(): void {
    this.clientEnded = true;
    if (this.proxyHeader !== null && this.proxyHeader.pending > 0) {
      this.proxyHeader = null;
      this.client.resetNow('bad PROXY header');
      return;
    }
    switch (this.phase) {
      case Phase.Tunnel:
        if (this.upstream === null || this.upstream.hasEnded) this.closeBoth();
        else this.upstream.end();
        return;
      case Phase.Waiting:
        // Half-closed after a complete request: the response still comes.
        this.closeAfter = true;
        return;
      case Phase.Body:
        // The request was cut short: nothing can answer it.
        this.ctx.errors.error('http client ended inside a request', `Client ${this.clientAddress} ended its connection inside a request body`);
        this.dropUpstream('client gone', true);
        this.client.close();
        return;
      default:
        if (this.pending !== null || this.responding) this.closeAfter = true;
        else this.client.close();
    }
  }

  // ------------------------------------------------------------ routing and the backend connection

  /** A request head is complete: route it and send it on. False when it was answered here instead. */
  private startRequest(): boolean {
    const req = this.req!;
    const ctx = this.ctx;
    if (req.isConnect) return this.refuse(405, 'CONNECT is not proxied'), false;
    if (ctx.maxBody > 0 && req.bodyKind === BODY_LENGTH && req.contentLength > ctx.maxBody) {
      return this.refuse(413, `Content-Length ${req.contentLength} over ${ctx.maxBody}`), false;
    }
    let where: Pool | number;
    try {
      where = ctx.route(req, this);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      return this.refuse(500, `route(): ${message}`, 'route() failed'), false;
    }
    if (typeof where === 'number') {
      return this.refuse(where, where === 404 ? `no route for host "${req.host}"` : `route() answered ${where}`), false;
    }
    this.pool = where;
    this.tried = null;
    this.memberName = '-';
    this.status = 0;
    this.closeAfter ||= !req.keepAlive || ctx.draining.on;
    this.reqBody.start(req.bodyKind, req.contentLength);
    this.res ??= freeResponses.pop() ?? new ResponseHead();
    this.res.reset(req.isHead);
    this.responding = true;
    this.headSent = false;
    this.backendBytes = 0;
    this.phase = Phase.Body;
    this.deferHead = true;
    const opened = this.openUpstream(null, true);
    this.deferHead = false;
    if (!opened) return false;
    if (this.reqBody.done) this.requestSent();
    return true;
  }

  /** The whole request is with the backend (or queued for it): now its first response byte is awaited. */
  private requestSent(): void {
    this.phase = Phase.Waiting;
    if (this.responding && this.backendBytes === 0) this.waitFor(Wait.Backend, this.ctx.backendTimeout);
  }

  /** The client as forwarded headers say it (made once per connection). */
  private clientFacts(): ClientFacts {
    if (this.facts === null) {
      const ip = this.clientSockaddr === null ? null : addressText(this.clientSockaddr);
      this.facts = { ip: ip ?? 'unknown', trusted: this.ctx.trusted(this.clientSockaddr), xForwarded: this.ctx.xForwarded };
    }
    return this.facts;
  }

  /**
   * Give the request a backend connection to the member the pool picks: a
   * kept-alive one when `mayReuse`, else a new connect. `failed`: the
   * connection whose connect just failed (its queue, the request so far,
   * moves to the new one). False when there was nobody to send it to.
   */
  private openUpstream(failed: Connection | null, mayReuse: boolean): boolean {
    const pool = this.pool!;
    const member = pool.pick(this.clientSockaddr, this.tried);
    if (member === null) {
      if (this.tried === null) this.ctx.errors.error(`pool ${pool.name} empty`, `No member of backend ${pool.name} is up for client ${this.clientAddress}`);
      this.backendFailed(this.tried === null ? 503 : 502, this.tried === null ? `no member of ${pool.name} is up` : 'no backend could be reached', false);
      return false;
    }
    this.member = member;
    this.memberName = member.name;
    const upstreams = this.ctx.upstreams.get(pool)!;
    let conn = mayReuse ? upstreams.take(member, this) : null;
    this.reused = conn !== null;
    if (conn !== null) {
      pool.connected(member);
    } else {
      conn = this.connect(member);
      // Even socket() failed: connectFailed went on to the next member, or answered.
      if (conn === null) return this.upstream !== null;
    }
    const sent = this.sendHead(conn);
    if (failed !== null) failed.moveQueueTo(conn, sent);
    return true;
  }

  /**
   * `conn` becomes this request's backend connection and gets its head, at
   * once or, while startRequest() routes it, once the bytes read with the
   * head have been checked (fromClient). Returns the bytes written (what a
   * failed connect's queue skips).
   */
  private sendHead(conn: Connection): number {
    this.upstream = conn;
    if (this.deferHead) {
      this.headOwed = true;
      return 0;
    }
    return this.writeHead(conn);
  }

  /** The owed head goes now, with body bytes [s, e) of `data` in the same write. */
  private writeOwedHead(data: Buffer | null = null, s = 0, e = 0): void {
    this.headOwed = false;
    if (this.upstream !== null) this.writeHead(this.upstream, data, s, e);
  }

  /**
   * The head on `conn`, with body bytes [s, e) of `data` in the same write:
   * on a new connection of a sendProxy pool, a PROXY header naming the client
   * first. Returns the bytes of PROXY header and head written.
   */
  private writeHead(conn: Connection, data: Buffer | null = null, s = 0, e = 0): number {
    let sent = 0;
    const version = this.reused ? undefined : this.ctx.sendProxy.get(this.pool!);
    if (version !== undefined) {
      const header = proxyHeader(version, this.clientSockaddr, localSockaddr(this.client.fd));
      this.ctx.reactor.counters.otherCalls++;
      conn.write(header, header.length);
      sent = header.length;
    }
    const length = requestHead(this.req!, this.clientFacts());
    conn.write(headBuffer(), e > s ? appendToHead(data!, s, e, length) : length);
    return sent + length;
  }

  /** A new connection to `member`; null when even socket() or connect() failed (then the next member is tried). */
  private connect(member: Member): Connection | null {
    const conn = openBackend(this.ctx, member, this);
    if (typeof conn === 'string') {
      this.upstream = null;
      this.connectFailed(null, conn);
      return null;
    }
    if (!conn.isConnecting) this.pool!.connected(member);
    return conn;
  }

  /** The connect to this.member failed: count it, then the next member, or 502/504. */
  private connectFailed(failed: Connection | null, reason: string): void {
    const member = this.member!;
    const pool = this.pool!;
    this.member = null;
    const name = pool.name === DEFAULT_POOL ? member.name : `${pool.name} member ${member.name}`;
    this.ctx.errors.error(`backend ${name} ${reason}`, `Could not connect to backend ${name} for client ${this.clientAddress}: ${reason}`);
    pool.failed(member, reason);
    if (this.client.isClosed) return;
    (this.tried ??= []).push(member);
    if (this.tried.length <= pool.retries) {
      this.openUpstream(failed, false);
      return;
    }
    this.backendFailed(reason === 'ETIMEDOUT' ? 504 : 502, `could not connect: ${reason}`, false);
  }

  /**
   * A kept-alive connection failed before any byte of the response: the
   * backend may have closed it just as the request went out. An idempotent
   * request without a body is sent once more, on a new connection.
   */
  private retryable(): boolean {
    const req = this.req;
    return this.reused && this.backendBytes === 0 && req !== null && req.bodyKind === BODY_NONE && idempotent(req);
  }

  private retryFresh(): void {
    if (trace.on) trace.line(2, 'a kept-alive backend connection failed before answering: sending the request again on a new one');
    const member = this.member!;
    this.reused = false;
    const conn = this.connect(member);
    if (conn !== null) this.sendHead(conn);
  }

  // ------------------------------------------------------------ the backend's side

  private fromBackend(data: Buffer, i: number, length: number): void {
    if (this.phase === Phase.Tunnel) {
      this.toClient(data, i, length);
      return;
    }
    if (!this.responding) {
      // Nothing was asked: a backend that talks out of turn is not to be trusted.
      this.dropUpstream('unexpected bytes', true);
      return;
    }
    if (this.backendBytes === 0 && this.wait === Wait.Backend) this.waitFor(Wait.None, 0);
    this.backendBytes += length - i;
    while (i < length) {
      if (!this.headSent) {
        const res = this.res!;
        const r = res.feed(data, i, length);
        if (r === NEED_MORE) return;
        if (r !== DONE) {
          this.backendFailed(502, `bad response from ${this.member?.name ?? 'backend'}: ${res.error}`, true);
          return;
        }
        i = res.headEnd;
        const req = this.req!;
        if (res.interim) {
          // 100 Continue and friends: passed on as they are (never to an HTTP/1.0 client, RFC 9110 §15.2).
          if (req.version === 11) this.toClient(res.raw(), 0, res.headLength);
          res.reset(req.isHead);
          continue;
        }
        if (res.upgrade) {
          if (!req.upgrade) {
            this.backendFailed(502, `101 from ${this.member?.name ?? 'backend'} to a request that did not ask to upgrade`, true);
            return;
          }
          this.status = 101;
          this.headSent = true;
          this.toClient(res.raw(), 0, res.headLength);
          this.becomeTunnel(data, i, length);
          return;
        }
        this.status = res.status;
        this.resBody.start(res.bodyKind, res.contentLength);
        // An HTTP/1.0 client cannot read chunked (RFC 9112 §6.1): it gets the data alone, ended by the close.
        const dechunk = req.version === 10 && res.bodyKind === BODY_CHUNKED;
        this.dechunking = dechunk;
        const chunked = this.resBody.chunked;
        if (chunked !== null) chunked.onData = dechunk ? (this.dechunked ??= (d, s, e) => this.toClient(d as Buffer, s, e)) : null;
        if (dechunk) this.closeAfter = true;
        // Until close, a client that has gone, or a request body still coming (the backend answered
        // early, a 413 say): this connection ends after the response, and the head says so.
        if (res.bodyKind === BODY_UNTIL_CLOSE || this.clientEnded || this.phase === Phase.Body) this.closeAfter = true;
        let headLength = responseHead(res, this.closeAfter || this.ctx.draining.on, req.version, dechunk);
        // The body's first bytes, when few, go in the same write as the head.
        if (length - i <= COALESCE_MAX && !this.resBody.done && !dechunk) {
          const n = this.resBody.take(data, i, length);
          if (n < 0) {
            this.backendFailed(502, `bad chunked response body from ${this.member?.name ?? 'backend'}: ${this.resBody.chunked!.error}`, true);
            return;
          }
          headLength = appendToHead(data, i, i + n, headLength);
          i += n;
        }
        this.headSent = true;
        this.toClient(headBuffer(), 0, headLength);
        if (this.resBody.done) {
          this.responseDone(i === length);
          return;
        }
      } else {
        const n = this.resBody.take(data, i, length);
        if (n < 0) {
          this.ctx.errors.error('http bad chunked response', `Bad chunked response body from ${this.member?.name ?? 'backend'}: ${this.resBody.chunked!.error}; client ${this.clientAddress} cut`);
          this.dropUpstream('bad response', true);
          this.client.reset('backend gone');
          return;
        }
        if (!this.dechunking) this.toClient(data, i, i + n);
        i += n;
        if (this.resBody.done) {
          this.responseDone(i === length);
          return;
        }
      }
    }
  }

  /** Bytes [s, e) of `data` to the client, with backpressure. */
  private toClient(data: Buffer, s: number, e: number): void {
    if (e <= s) return;
    const client = this.client;
    client.write(s === 0 ? data : data.subarray(s), e - s);
    this.bytesOut += e - s;
    this.ctx.listener.bytesOut += e - s;
    const up = this.upstream;
    if (client.queued > this.ctx.settings.highWater && up !== null && !up.isClosed) {
      up.pauseReading();
      client.wantDrain();
    }
  }

  private backendEnd(): void {
    if (this.phase === Phase.Tunnel) {
      if (this.client.hasEnded) this.closeBoth();
      else this.client.end();
      return;
    }
    const up = this.upstream!;
    if (this.responding && this.headSent && this.resBody.kind === BODY_UNTIL_CLOSE) {
      this.responseDone(false); // the end of the connection is the end of this body
      return;
    }
    if (this.responding && !this.headSent && this.retryable()) {
      this.upstream = null;
      up.close();
      this.retryFresh();
      return;
    }
    // A FIN where the response was not complete: for onClose, as an error.
    up.resetNow(this.responding ? 'backend ended early' : 'closed');
  }

  /** The response is complete: the backend connection goes back to the pool (when it can), the client on to its next request. */
  private responseDone(reusable: boolean): void {
    const up = this.upstream;
    this.upstream = null;
    this.responding = false;
    this.waitFor(Wait.None, 0);
    if (up !== null) {
      const keep = reusable && this.res!.keepAlive && this.resBody.kind !== BODY_UNTIL_CLOSE && this.phase === Phase.Waiting &&
        !up.hasEnded && !this.ctx.sendProxy.has(this.pool!);
      if (keep) this.ctx.upstreams.get(this.pool!)!.park(this.member!, up);
      else up.close();
    }
    this.releaseMember();
    this.logRequest('closed');
    const stillSending = this.phase === Phase.Body;
    this.giveBackHeads();
    if (stillSending) {
      // Answered before the client had sent all of its body (a 413 from the backend...).
      this.lingerClose();
      return;
    }
    if (this.closeAfter || this.ctx.draining.on) {
      // A client that sent more after this request (pipelined past a
      // Connection: close) gets its bytes read away first: closing with
      // unread bytes sends a reset. Otherwise a plain close, as nginx does.
      if (this.pending !== null && !this.clientEnded) {
        this.lingerClose();
        return;
      }
      this.phase = Phase.Closed;
      this.client.close();
      return;
    }
    this.idle();
    const pending = this.pending;
    this.pending = null;
    this.client.resumeReading();
    if (pending !== null) this.fromClient(pending, 0, pending.length);
  }

  private idle(): void {
    this.phase = Phase.Idle;
    this.headSent = false;
    this.waitFor(Wait.KeepAlive, this.ctx.keepAliveTimeout);
  }

  private giveBackHeads(): void {
    // A head on the free list keeps its buffer for the next message; one dropped lets it go.
    const req = this.req;
    if (req !== null) {
      this.req = null;
      if (freeRequests.length < FREE_MAX) {
        req.reset();
        freeRequests.push(req);
      }
    }
    const res = this.res;
    if (res !== null) {
      this.res = null;
      if (freeResponses.length < FREE_MAX) {
        res.reset();
        freeResponses.push(res);
      }
    }
  }

  private becomeTunnel(data: Buffer, i: number, length: number): void {
    this.phase = Phase.Tunnel;
    this.responding = false;
    this.waitFor(Wait.None, 0);
    this.logRequest('upgraded');
    this.giveBackHeads();
    this.toClient(data, i, length);
    const pending = this.pending;
    this.pending = null;
    if (pending !== null) this.toUpstream(pending, 0, pending.length);
    this.client.resumeReading();
    if (this.clientEnded) this.upstream?.end();
  }

  private closeBoth(): void {
    this.client.close();
    this.upstream?.close();
  }

  // ------------------------------------------------------------ errors

  /**
   * rsp answers `status` itself and closes: a bad request (400, 414, 431,
   * 501, 505, 413, 408), route()'s answer, or 500 for route()'s error.
   */
  private refuse(status: number, why: string, kind = ''): void {
    if (status >= 400) {
      // At most one line a second per kind (`why` may carry what a client chose: not a key).
      this.ctx.errors.error(`http ${status} ${kind}`, `${status} ${reasonPhrase(status)} to client ${this.clientAddress}: ${why}`);
    }
    this.answer(status);
  }

  /** 502, 503, 504: the backend could not answer. `drop`: its connection is not to be reused. */
  private backendFailed(status: number, why: string, drop: boolean): void {
    this.ctx.errors.error(`http ${status} ${why.replace(/ from .*/, '')}`, `${status} ${reasonPhrase(status)} to client ${this.clientAddress}: ${why}`);
    if (drop) this.dropUpstream('bad response', true);
    this.answer(status);
  }

  private answer(status: number): void {
    this.headOwed = false;
    if (this.client.isClosed || this.phase === Phase.Lingering || this.phase === Phase.Closed) return;
    if (this.headSent) {
      // Too late for a status: the client has part of a response.
      this.dropUpstream('client cut', true);
      this.client.reset('backend gone');
      return;
    }
    this.dropUpstream('answered by rsp', true);
    this.status = status;
    const head = this.req !== null && this.req.mayBeHead;
    const bytes = errorResponse(status, head);
    this.toClient(bytes, 0, bytes.length);
    this.logRequest(status >= 500 ? 'backend error' : 'refused');
    this.responding = false;
    this.giveBackHeads();
    this.lingerClose();
  }

  /**
   * End our side and read what the client still sends, discarding it, until
   * it ends too or LINGER_MS pass: closing with unread bytes would make the
   * kernel send a reset, which can destroy the answer before it is read.
   */
  private lingerClose(): void {
    this.phase = Phase.Lingering;
    this.pending = null;
    this.waitFor(Wait.Linger, LINGER_MS);
    if (this.clientEnded) {
      this.client.close();
      return;
    }
    this.client.end();
    this.client.resumeReading();
  }

  /** Let go of the backend connection of this exchange: closed (or reset), never reused. */
  private dropUpstream(cause: string, reset: boolean): void {
    const up = this.upstream;
    this.upstream = null;
    if (up !== null) {
      if (reset) up.resetNow(cause);
      else up.close();
    }
    this.releaseMember();
  }

  private releaseMember(): void {
    if (this.member !== null && this.pool !== null) this.pool.released(this.member);
    this.member = null;
  }

  // ------------------------------------------------------------ the end

  private logRequest(end: string): void {
    if (this.status >= 100 && this.status < 600) this.ctx.listener.responses[(this.status / 100) | 0]++;
    const log = this.ctx.accessLog;
    const req = this.req;
    if (log === null || req === null) return;
    log.write({
      client: this.clientAddress,
      listener: this.ctx.listener.name,
      pool: this.pool?.name ?? '-',
      member: this.memberName,
      bytesIn: this.bytesIn - this.inAtStart,
      bytesOut: this.bytesOut - this.outAtStart,
      seconds: (this.ctx.reactor.now - this.requestStart) / 1000,
      end,
      request: `${req.method} ${req.target} HTTP/1.${req.version - 10}`,
      status: this.status,
    });
  }

  private finished(cause: string): void {
    this.deadline = 0;
    this.ctx.pairings.delete(this);
    this.ctx.listener.active--;
    if (this.req !== null && this.req.result !== NEED_MORE && this.status === 0) this.logRequest(cause === 'closed' ? 'client gone' : `client ${cause}`);
    this.giveBackHeads();
  }
}

function idempotent(req: RequestHead): boolean {
  return req.isMethod('GET') || req.isMethod('HEAD') || req.isMethod('OPTIONS') || req.isMethod('PUT') || req.isMethod('DELETE') || req.isMethod('TRACE');
}

