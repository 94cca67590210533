// The lab's own client and backend: every socket that is not rsp's, all in
// this process, on rsp's own reactor (src/reactor.ts with src/connection.ts,
// src/listener.ts and src/netutils.ts), level-triggered, driven in short
// slices so that the lab's Node event loop (child output, signals, Ctrl-C)
// keeps turning in between.
import * as libc from '../../ffi/libc';
import { toSockaddr } from '../../ffi/sockaddr';
import { Connection, type ConnectionOwner, type ConnectionSettings } from '../../src/connection';
import { Listener } from '../../src/listener';
import { startConnect } from '../../src/netutils';
import { Reactor, type Handler } from '../../src/reactor';
import { HOST } from './params';
import { RspProcess, type RspSettings } from './rsp';

/** Who plays client and backend (printed with the results). */
export const SIDES =
  'client and backend: this lab process, on rsp\'s own reactor (src/reactor.ts + src/connection.ts + src/listener.ts, level-triggered); ' +
  'system under test: the rsp CLI (bin/rsp) as a child process, one per row, on 127.0.0.1.';

/** What a peer connection does when something happens to it. */
export interface Callbacks {
  connect?(c: Connection): void;
  data?(c: Connection, data: Buffer, length: number): void;
  end?(c: Connection): void;
  drain?(c: Connection): void;
  close?(c: Connection, cause: string): void;
}

const PEER_SETTINGS: ConnectionSettings = {
  highWater: 8 * 1024 * 1024,
  lowWater: 2 * 1024 * 1024,
  readBudget: 16,
  readSize: 256 * 1024,
  // Level-triggered: one read per event, as rsp's level default; epoll reports again.
  readOnce: true,
  readToEagain: false,
  outAlways: false,
  rdhup: true,
};

/** Bytes a bulk sender writes from, over and over (no copy: write() takes them straight from here). */
const BULK_CHUNK = Buffer.alloc(256 * 1024, 'b');

/**
 * A backend connection that waits for the client's request (any bytes), then
 * streams `limit` bytes (Infinity: until the lab stops it) as fast as the
 * socket takes them, then (if `endWhenDone`) shuts down its sending half.
 * A small Handler of its own, so nothing is copied into a write queue.
 * It waits for a request as a real server would, so a transfer starts (and
 * is timed) when the client asks for it.
 */
export class BulkSender implements Handler {
  generation = 0;
  readyEvents = 0;
  readonly label = 'lab bulk sender';
  sent = 0;
  private closed = false;
  private sending = false;
  private finished = false;
  private readonly scratch = Buffer.alloc(4096);

  constructor(
    private readonly peer: Peer,
    readonly fd: number,
    private readonly limit: number,
    /** Shut down the sending half after the last byte (false: stay open and quiet). */
    private readonly endWhenDone: boolean,
  ) {
    peer.reactor.add(this, libc.EPOLLIN);
    peer.senders.add(this);
  }

  handle(events: number): void {
    if ((events & (libc.EPOLLIN | libc.EPOLLHUP | libc.EPOLLERR)) !== 0) {
      // The request (the first bytes), and later the client's end.
      const n = libc.read(this.fd, this.scratch, this.scratch.length);
      if (n === 0 || (n < 0 && libc.errno() !== libc.EAGAIN)) {
        this.destroy();
        return;
      }
      if (n > 0 && !this.sending && !this.finished) {
        this.sending = true;
        this.peer.reactor.modify(this, libc.EPOLLIN | libc.EPOLLOUT);
        events |= libc.EPOLLOUT;
      }
    }
    if (!this.sending || (events & libc.EPOLLOUT) === 0) return;
    for (let i = 0; i < 16 && this.sent < this.limit; i++) {
      const length = Math.min(BULK_CHUNK.length, this.limit - this.sent);
      const n = libc.write(this.fd, BULK_CHUNK, length);
      if (n < 0) {
        const err = libc.errno();
        if (err === libc.EAGAIN || err === libc.EINTR) return;
        this.destroy();
        return;
      }
      this.sent += n;
      if (n < length) return;
    }
    if (this.sent >= this.limit) {
      this.sending = false;
      this.finished = true;
      if (this.endWhenDone) libc.shutdown(this.fd, libc.SHUT_WR);
      this.peer.reactor.modify(this, libc.EPOLLIN);
    }
  }

  abort(_error: unknown): void {
    this.destroy();
  }

  destroy(): void {
    if (this.closed) return;
    this.closed = true;
    this.peer.senders.delete(this);
    if (this.peer.reactor.isRegistered(this)) this.peer.reactor.remove(this, true);
    libc.close(this.fd);
  }
}

/**
 * The lab's side of every experiment: clients that connect to rsp and the
 * backend rsp connects to, all on one level-triggered Reactor in this process.
 */
export class Peer {
  readonly reactor = new Reactor({ triggerMode: 'level', maxEvents: 256 });
  readonly connections = new Set<Connection>();
  readonly senders = new Set<BulkSender>();
  private listeners: Listener[] = [];
  private closing = false;

  /** A backend listening on 127.0.0.1 (an ephemeral port), calling `onAccept` with each accepted fd. */
  listen(onAccept: (fd: number) => void): number {
    const listener = new Listener(this.reactor, { address: HOST, port: 0, backlog: 4096, acceptBudget: 64, acceptOnce: false }, (fd) => {
      if (this.closing) libc.close(fd);
      else onAccept(fd);
    });
    this.listeners.push(listener);
    return listener.port;
  }

  /** Wrap an accepted (or connecting) fd in a Connection driven by `callbacks`. */
  adopt(fd: number, callbacks: Callbacks, connecting = false): Connection {
    const peer = this;
    const owner: ConnectionOwner = {
      onConnect: (c) => callbacks.connect?.(c),
      onData: (c, data, length) => callbacks.data?.(c, data, length),
      onEnd: (c) => (callbacks.end ? callbacks.end(c) : c.close()),
      onDrain: (c) => callbacks.drain?.(c),
      onClose: (c, cause) => {
        peer.connections.delete(c);
        if (!peer.closing) callbacks.close?.(c, cause);
      },
    };
    const conn = new Connection(this.reactor, fd, owner, PEER_SETTINGS, connecting);
    this.connections.add(conn);
    return conn;
  }

  /** A client: a non-blocking connect to 127.0.0.1:port. Writes made before it is connected are queued. */
  connect(port: number, callbacks: Callbacks): Connection {
    const started = startConnect(toSockaddr(HOST, port));
    const conn = this.adopt(started.fd, callbacks, started.inProgress);
    if (!started.inProgress) callbacks.connect?.(conn);
    return conn;
  }

  /** A backend connection that streams `limit` bytes. */
  bulkSender(fd: number, limit: number, endWhenDone = true): BulkSender {
    return new BulkSender(this, fd, limit, endWhenDone);
  }

  /**
   * Run the reactor until `done()` or `timeoutMs` has passed; true if done.
   * It runs in slices of 20 ms, giving Node's own event loop a turn between
   * them (child output, timers, signals).
   */
  async drive(done: () => boolean, timeoutMs: number): Promise<boolean> {
    const deadline = performance.now() + timeoutMs;
    while (!done()) {
      let now = performance.now();
      if (now >= deadline) return false;
      const sliceEnd = Math.min(deadline, now + 20);
      while (!done() && now < sliceEnd) {
        this.reactor.turn(Math.min(5, Math.ceil(sliceEnd - now)));
        now = performance.now();
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
    return true;
  }

  /**
   * drive() until `done()`, but give up when `progress()` has not changed
   * for `stallMs`: "done", or "stalled" (rsp stopped moving).
   */
  async driveWhileMoving(done: () => boolean, progress: () => number, stallMs: number): Promise<'done' | 'stalled'> {
    for (;;) {
      const before = progress();
      if (await this.drive(done, stallMs)) return 'done';
      if (progress() === before) return 'stalled';
    }
  }

  /** Close every socket and the epoll set. */
  close(): void {
    this.closing = true;
    for (const c of [...this.connections]) c.destroy('lab done');
    for (const s of [...this.senders]) s.destroy();
    for (const l of this.listeners) l.close();
    this.reactor.close();
  }
}

/**
 * A Peer with a backend, and rsp in front of that backend: run `body`, then
 * close everything, whatever happens.
 */
export async function withRsp<T>(settings: RspSettings, onBackend: (peer: Peer, fd: number) => void, body: (rsp: RspProcess, peer: Peer) => Promise<T>): Promise<T> {
  const peer = new Peer();
  let rsp: RspProcess | null = null;
  try {
    const backendPort = peer.listen((fd) => onBackend(peer, fd));
    rsp = await RspProcess.start('backends' in settings ? settings : { backendPort, ...settings });
    return await body(rsp, peer);
  } finally {
    if (rsp !== null) await rsp.kill();
    peer.close();
  }
}

export const REQUEST = Buffer.alloc(100, 'q');
export const RESPONSE = Buffer.alloc(100, 'r');

/** A backend that answers every 100 bytes it receives with 100 bytes, and closes when the client has ended. */
export function answeringBackend(peer: Peer, fd: number): void {
  let pending = 0;
  peer.adopt(fd, {
    data: (c, _data, length) => {
      pending += length;
      while (pending >= REQUEST.length) {
        pending -= REQUEST.length;
        c.write(RESPONSE, RESPONSE.length);
      }
    },
  });
}

/** A backend that answers the first 100 bytes with 100 bytes and then ends its sending side (short connections). */
export function answerAndEnd(peer: Peer, fd: number): void {
  let got = 0;
  let answered = false;
  peer.adopt(fd, {
    data: (c, _d, length) => {
      got += length;
      if (got >= REQUEST.length && !answered) {
        answered = true;
        c.write(RESPONSE, RESPONSE.length);
        c.end();
      }
    },
  });
}
