// connection.c: one kind of connection for both sides of the proxy.
//
// Reading: on EPOLLIN read into the worker's one shared buffer and hand the
// bytes to the owner (onData); read() == 0 is the peer's FIN (onEnd).
// Writing: write() straight away when nothing is queued; whatever the kernel
// did not take (EAGAIN or a short write) is copied into the write queue, and
// EPOLLOUT is asked for only while something is queued.
// Closing: close() waits for the queue to flush (the C version's "close
// marker"); end() flushes and then shuts down our sending half only;
// reset() flushes, waits until the peer's kernel has every byte, then closes
// with SO_LINGER 0 so that the peer sees ECONNRESET: a stream that was cut
// (its other half reset, an idle timeout, no backend) never ends with a FIN
// that would make it look complete.
//
// Urgent data (MSG_OOB). rsp drops the urgent byte, as a receiver that does
// not ask for it does (SO_OOBINLINE is off): the client sees exactly the
// stream it would see from the backend directly. But read() stops at the
// urgent mark, so there a short read does NOT mean the receive queue is empty;
// EPOLLPRI (registered with EPOLLIN) says a mark is pending, and until a read
// gets EAGAIN or the end, short reads are not taken as drained or ended.
//
// Zero copy (src/splice.ts): with `splice` set, reading moves the bytes into
// a pipe instead of the read buffer (spliceSome), and a pipe's bytes queue
// here as a "pipe chunk" (writeFromPipe) that flush() sends with splice().
// Everything else - backpressure, half-close, close after flush, reset -
// counts pipe bytes as queued bytes and works unchanged.
//
// A connection knows nothing of its peer: the owner (proxy.ts, or src/http/
// session.ts) ties two of them.
import * as libc from '../ffi/libc';
import type { Handler, Reactor, Timer } from './reactor';
import type { Splice } from './splice';
import { logError } from './log';
import { result, trace } from './trace';

const { EPOLLIN, EPOLLPRI, EPOLLOUT, EPOLLRDHUP, EPOLLERR, EPOLLHUP, EAGAIN, EINTR } = libc;

export interface ConnectionOwner {
  /** A non-blocking connect() finished. */
  onConnect(conn: Connection): void;
  /** Bytes arrived. `data` is the shared read buffer: copy what you keep. */
  onData(conn: Connection, data: Buffer, length: number): void;
  /** Zero copy: `length` bytes went from this connection into its `splice` pipe (instead of onData). */
  onSpliced?(conn: Connection, length: number): void;
  /** Zero copy: reading stopped because this connection's pipe may be full; resume it on the peer's onDrain. */
  onPipeFull?(conn: Connection): void;
  /** The peer shut down its sending half (read() returned 0). */
  onEnd(conn: Connection): void;
  /** The write queue fell below the low-water mark after having passed the high-water mark. */
  onDrain(conn: Connection): void;
  /** The fd is closed. `cause` is "closed" for an orderly close, otherwise an errno name or reason. */
  onClose(conn: Connection, cause: string): void;
}

export interface ConnectionSettings {
  /** Stop reading from the peer once this many bytes are queued here. */
  highWater: number;
  /** ...and start again once the queue is down to this. */
  lowWater: number;
  /** Edge mode: reads per connection per loop turn before others get theirs (0: no limit). */
  readBudget: number;
  /** Bytes asked for by each read(): the size of the shared read buffer. */
  readSize: number;
  /** One read() per event and no more until epoll reports again (level mode's default; in edge mode an experiment that stalls). */
  readOnce: boolean;
  /** Keep reading after a short read, until EAGAIN (the strict textbook rule). */
  readToEagain: boolean;
  /** Keep EPOLLOUT registered all the time instead of only while something is queued. */
  outAlways: boolean;
  /** Register EPOLLRDHUP and take it, with a short read, as the end: saves the read() that returns 0. */
  rdhup: boolean;
}

/** One shared read buffer per worker thread (each thread has its own copy of this module). */
let readBuffer: Buffer = Buffer.allocUnsafe(64 * 1024);

/** Queued bytes: a chunk of a Buffer, written from `start` up to `end`; or `end - start` bytes waiting in a pipe. */
interface Chunk {
  buf: Buffer;
  start: number;
  end: number;
  pipe: Splice | null;
}
const NO_BYTES = Buffer.alloc(0);
/** Small writes are gathered into chunks of at least this size. */
const CHUNK_SIZE = 16 * 1024;

const soErrorValue = Buffer.alloc(4);
const soErrorLength = Buffer.alloc(4);
const ioctlValue = Buffer.alloc(4);
/** struct linger { l_onoff = 1, l_linger = 0 }: close() sends a reset. */
const lingerZero = Buffer.alloc(8);
lingerZero.writeInt32LE(1, 0);

/** How long to wait between looks at the send queue before a reset (doubling up to the last). */
const RESET_POLL_MS = [1, 2, 5, 10, 20, 50, 100];

/** The pending error of a socket (getsockopt SO_ERROR), e.g. after EPOLLERR or a failed connect. */
export function socketError(fd: number): number {
  soErrorLength.writeUInt32LE(4, 0);
  if (libc.getsockopt(fd, libc.SOL_SOCKET, libc.SO_ERROR, soErrorValue, soErrorLength) < 0) return libc.errno();
  return soErrorValue.readInt32LE(0);
}

export class Connection implements Handler {
  generation = 0;
  readyEvents = 0;
  /** "client 127.0.0.1:53122" or "backend 127.0.0.1:8888": set by the owner when tracing. */
  label = 'connection';
  private connecting: boolean;
  private reading = true; // false once paused, ended or closing
  private paused = false;
  private readEnded = false;
  private peerShutdown = false; // EPOLLRDHUP seen (without EPOLLERR): the peer's FIN has arrived
  private urgent = false; // EPOLLPRI seen: a short read may have stopped at the urgent mark
  private errorSeen = false; // EPOLLERR seen, or a write failed: reads end with the error, not with a FIN
  private brokenCause = 'ECONNRESET';
  private resetting = false; // reset(): close with SO_LINGER 0 once the peer has everything
  private resetTimer: Timer | null = null;
  private resetPolls = 0;
  private unacked = 0;
  /** SIOCOUTQ at the idle sweep's last look (-1: not looked yet). */
  private lastSendQueue = -1;
  private writeEnded = false; // end() or close() called: no more writes accepted
  private shutdownPending = false;
  private closePending = false;
  private closeCause = 'closed';
  private closed = false;
  private drainWanted = false;
  private registered = false;
  private mask = 0;
  private chunks: Chunk[] = [];
  private first = 0; // index of the oldest chunk still queued
  private queuedBytes = 0;
  private connectTimer: Timer | null = null;
  /** reactor.now when bytes last moved in either direction (for the idle timeout). */
  lastActive: number;
  /** Zero copy: bytes read here go into this pipe (set by the owner; null: read() into the shared buffer). */
  splice: Splice | null = null;
  /** A pipe chunk sent whole, kept for the next one: a splice round allocates nothing. */
  private sparePipeChunk: Chunk | null = null;

  constructor(
    private readonly reactor: Reactor,
    readonly fd: number,
    /** Who hears of its events; HTTP mode hands a kept-alive backend connection from one client to the next. */
    public owner: ConnectionOwner,
    private readonly settings: ConnectionSettings,
    connecting = false,
  ) {
    this.connecting = connecting;
    this.lastActive = reactor.now;
    if (readBuffer.length !== settings.readSize) readBuffer = Buffer.allocUnsafe(settings.readSize);
    this.updateInterest();
  }

  get queued(): number {
    return this.queuedBytes;
  }
  get isClosed(): boolean {
    return this.closed;
  }
  get hasEnded(): boolean {
    return this.readEnded;
  }
  get isConnecting(): boolean {
    return this.connecting;
  }

  /**
   * For the idle timeout: has the kernel sent on any of our bytes since the
   * last look? With large socket buffers a slow reader can take many seconds
   * to take what was written in one go, and that is progress too.
   */
  sendQueueMoved(): boolean {
    if (this.closed || this.connecting) return false;
    const r = libc.ioctlInt(this.fd, libc.SIOCOUTQ, ioctlValue);
    this.reactor.counters.otherCalls++;
    const queued = r < 0 ? 0 : ioctlValue.readInt32LE(0);
    const moved = this.lastSendQueue >= 0 && queued < this.lastSendQueue;
    this.lastSendQueue = queued;
    if (moved) this.lastActive = this.reactor.now;
    return moved;
  }

  /** Fail the connect if it has not finished within `ms`. */
  connectTimeout(ms: number): void {
    if (this.connecting && ms > 0) this.connectTimer = this.reactor.after(ms, () => this.destroy('ETIMEDOUT'));
  }

  handle(events: number): void {
    // Remembered, not just read off this event: a handler called again from
    // the ready list gets only the events it asked for. A reset raises
    // EPOLLRDHUP too, together with EPOLLERR: that is no FIN.
    if ((events & EPOLLERR) !== 0) this.errorSeen = true;
    else if ((events & EPOLLRDHUP) !== 0) this.peerShutdown = true;
    if ((events & EPOLLPRI) !== 0 && !this.urgent) {
      this.urgent = true;
      this.reactor.counters.urgentMarks++;
    }
    if (this.connecting) {
      this.finishConnect(events);
      if (this.connecting || this.closed) return;
      // Connected, and the same event may say the backend already spoke
      // (edge mode would never say it again): carry on and read.
      events &= ~EPOLLOUT;
    }
    if (this.queuedBytes > 0 && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) !== 0) {
      this.flush();
      if (this.closed) return;
    }
    if ((events & (EPOLLIN | EPOLLPRI | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) === 0) return;
    if (this.reading) {
      if (this.splice !== null) this.spliceSome();
      else this.readSome();
    } else if ((events & (EPOLLERR | EPOLLHUP)) === 0) {
      if (trace.on) trace.line(2, this.paused ? 'not reading (its peer has too much queued): ignored for now' : 'not reading any more: ignored');
    } else if (this.paused && !this.closePending) {
      // Paused by backpressure: what the peer sent before its FIN or reset
      // is still in the receive queue and is owed to the other side; read()
      // will return it, then 0 or the error. Level-triggered epoll reports
      // HUP and ERR even with an empty mask, so leave the epoll set instead
      // of spinning on it (the error stays pending: SO_ERROR is not read).
      if (!this.reactor.edge && this.queuedBytes === 0) {
        if (trace.on) trace.line(2, 'not reading and EPOLLHUP/EPOLLERR: leave the epoll set until reading again');
        this.reactor.remove(this, false);
        this.registered = false;
      }
    } else if (this.resetting) {
      // The peer is gone: nothing left to wait for before the reset.
      this.destroy(this.closeCause);
    } else if ((events & EPOLLERR) !== 0) {
      this.destroy(libc.errnoName(socketError(this.fd) || libc.ECONNRESET));
    } else if (!this.reactor.edge && this.queuedBytes === 0 && this.registered) {
      if (trace.on) trace.line(2, 'not reading and EPOLLHUP: leave the epoll set');
      this.reactor.remove(this, false);
      this.registered = false;
    }
  }

  abort(error: unknown): void {
    // A bug, not a network event: say so, and drop only this connection.
    const message = error instanceof Error ? error.message : String(error);
    logError(`internal error on fd ${this.fd} (${this.label}): ${message}`);
    this.resetNow('internal error');
  }

  /** connection_write: send now if possible, queue the rest. */
  write(data: Buffer, length: number): void {
    if (this.closed || this.writeEnded) return;
    let written = 0;
    if (!this.connecting && this.queuedBytes === 0) {
      const counters = this.reactor.counters;
      const n = libc.write(this.fd, data, length);
      counters.writes++;
      if (trace.on) trace.line(2, `write(${this.fd}) = ${result(n)}${n >= 0 && n < length ? ` of ${length} (queued ${length - n})` : ''}`);
      if (n === length) {
        counters.bytesWritten += n;
        this.lastActive = this.reactor.now;
        return;
      }
      if (n >= 0) {
        written = n;
        counters.bytesWritten += n;
        counters.shortWrites++;
        if (n > 0) this.lastActive = this.reactor.now;
      } else {
        const err = libc.errno();
        if (err !== EAGAIN && err !== EINTR) {
          this.writeFailed(err);
          return;
        }
      }
    }
    if (trace.on && (this.connecting || written === 0)) trace.line(2, `queued ${length - written} bytes on fd ${this.fd}${this.connecting ? ' (connect in progress)' : ''}`);
    this.enqueue(data, written, length);
  }

  /**
   * Zero copy: `length` more bytes for this connection sit in `pipe`. They
   * queue behind whatever is queued already and go out with splice() when
   * their turn comes. False if nothing more can be written here (closed, or
   * the peer is gone): the bytes stay in the pipe, unsent.
   */
  writeFromPipe(pipe: Splice, length: number): boolean {
    if (this.closed || this.writeEnded) return false;
    const last = this.chunks.length > this.first ? this.chunks[this.chunks.length - 1] : null;
    if (last !== null && last.pipe === pipe) {
      last.end += length;
    } else {
      const chunk = this.sparePipeChunk ?? { buf: NO_BYTES, start: 0, end: 0, pipe };
      this.sparePipeChunk = null;
      chunk.start = 0;
      chunk.end = length;
      chunk.pipe = pipe;
      this.chunks.push(chunk);
    }
    this.queuedBytes += length;
    // First in line: send now; otherwise EPOLLOUT brings its turn.
    if (!this.connecting && this.chunks.length - this.first === 1) this.flush();
    else this.updateInterest();
    return !this.closed && !this.writeEnded;
  }

  /** Shut down our sending half once the queue is flushed (half-close). */
  end(): void {
    if (this.closed || this.writeEnded) return;
    this.writeEnded = true;
    if (this.connecting || this.queuedBytes > 0) this.shutdownPending = true;
    else this.shutdownNow();
  }

  /** connection_close: stop reading, flush the queue, then close. `cause` is what the counters record. */
  close(cause = 'closed'): void {
    if (this.closed) return;
    this.reading = false;
    this.writeEnded = true;
    this.closeCause = cause;
    if (this.queuedBytes === 0) {
      this.destroy(cause);
      return;
    }
    this.closePending = true;
    this.updateInterest();
  }

  /**
   * An abnormal end that the peer must see as one: stop reading, flush what
   * is queued, wait until the peer's kernel has acknowledged every byte
   * (SIOCOUTQ = 0), then close with SO_LINGER 0, which sends a reset.
   */
  reset(cause: string): void {
    if (this.closed) return;
    if (this.resetting) return;
    this.reading = false;
    this.paused = false;
    this.writeEnded = true;
    this.shutdownPending = false;
    this.closeCause = cause;
    this.resetting = true;
    if (this.connecting && this.queuedBytes === 0) {
      this.resetNow(cause);
      return;
    }
    // Still connecting with bytes queued: they go out once connected, then the reset.
    if (this.queuedBytes > 0) {
      this.closePending = true;
      this.updateInterest();
      return;
    }
    this.updateInterest();
    this.resetWhenSent();
  }

  /** Close with a reset at once: queued bytes, and any the kernel still holds, are dropped. */
  resetNow(cause: string): void {
    if (this.closed) return;
    const r = libc.setsockopt(this.fd, libc.SOL_SOCKET, libc.SO_LINGER, lingerZero, 8);
    this.reactor.counters.otherCalls++;
    if (trace.on) trace.line(2, `setsockopt(${this.fd}, SO_LINGER, {1, 0}) = ${result(r)}: close() sends a reset`);
    this.destroy(cause);
  }

  /** Backpressure: stop reading until resumeReading(). */
  pauseReading(quiet = false): void {
    if (!this.reading) return;
    this.reading = false;
    this.paused = true;
    if (trace.on && !quiet) trace.line(2, `fd ${this.fd}: its peer has over ${this.settings.highWater} bytes queued, stop reading`);
    this.updateInterest();
  }

  resumeReading(): void {
    if (!this.paused || this.closed) return;
    this.paused = false;
    if (this.readEnded || this.closePending) return;
    this.reading = true;
    // No new edge will come for bytes that are already waiting: look ourselves.
    if (this.reactor.edge) this.reactor.defer(this, EPOLLIN);
    if (trace.on) trace.line(2, `fd ${this.fd}: queue of its peer drained, reading again`);
    this.updateInterest();
  }

  /** Ask for onDrain() once the queue is at the low-water mark. */
  wantDrain(): void {
    this.drainWanted = true;
  }

  /** connection_really_close: close the fd now, queued bytes are dropped. */
  destroy(cause: string): void {
    if (this.closed) return;
    this.closed = true;
    this.reading = false;
    if (this.connectTimer !== null) this.connectTimer.cancel();
    if (this.resetTimer !== null) this.resetTimer.cancel();
    if (this.registered) this.reactor.remove(this, true);
    this.registered = false;
    const r = libc.close(this.fd);
    this.reactor.counters.otherCalls++;
    if (trace.on) trace.line(2, `close(${this.fd}) = ${result(r)} (${cause})`);
    const closes = this.reactor.counters.closes;
    closes[cause] = (closes[cause] ?? 0) + 1;
    // The queue is still there for the owner (a failed connect's bytes go to the next backend tried).
    this.owner.onClose(this, cause);
    this.chunks = [];
    this.first = 0;
    this.queuedBytes = 0;
  }

  /**
   * Hand what is queued here, unsent, to `other` (a connect failed: the next
   * backend gets the client's bytes), leaving out the first `skip` bytes
   * (a PROXY header the new connection got already).
   */
  moveQueueTo(other: Connection, skip = 0): void {
    for (let i = this.first; i < this.chunks.length; i++) {
      const chunk = this.chunks[i];
      if (chunk.pipe !== null) throw new Error('moveQueueTo: bytes in a pipe cannot move (zero copy starts only once connected)');
      const start = Math.min(chunk.start + skip, chunk.end);
      skip -= start - chunk.start;
      if (start < chunk.end) other.write(start === 0 ? chunk.buf : chunk.buf.subarray(start), chunk.end - start);
    }
    this.chunks = [];
    this.first = 0;
    this.queuedBytes = 0;
  }

  private finishConnect(events: number): void {
    if ((events & (EPOLLERR | EPOLLHUP)) !== 0) {
      // The socket's pending error says what happened. A connect that failed
      // leaves ECONNREFUSED, ETIMEDOUT...; ECONNRESET or EPIPE mean it was
      // established and the backend has already sent, and reset, before we
      // got to look: what it sent before the reset is owed to the client.
      const err = socketError(this.fd) || libc.ECONNREFUSED;
      this.reactor.counters.otherCalls++;
      const established = err === libc.ECONNRESET || err === libc.EPIPE;
      if (trace.on) trace.line(2, `getsockopt(${this.fd}, SO_ERROR) = ${libc.errnoName(err)}: ${established ? 'connected, then reset: reading what came first' : 'connect failed'}`);
      if (!established) {
        this.destroy(libc.errnoName(err));
        return;
      }
      // SO_ERROR is consumed: the reads end in a 0 that is this error, not a FIN.
      this.errorSeen = true;
      this.brokenCause = libc.errnoName(err);
      events |= EPOLLOUT;
    }
    if ((events & EPOLLOUT) === 0) return;
    this.connecting = false;
    this.reactor.counters.connects++;
    if (trace.on) trace.line(2, `connect(${this.fd}) completed`);
    if (this.connectTimer !== null) {
      this.connectTimer.cancel();
      this.connectTimer = null;
    }
    this.owner.onConnect(this);
    if (this.closed) return;
    if (this.queuedBytes > 0) this.flush();
    else if (this.shutdownPending) this.shutdownNow();
    if (!this.closed) this.updateInterest();
  }

  private readSome(): void {
    const counters = this.reactor.counters;
    const edge = this.reactor.edge;
    const { rdhup, readOnce, readToEagain } = this.settings;
    // readOnce (level mode's default): one read per event; epoll will report
    // again if more is waiting (level) - or never (edge: the experiment).
    const budget = readOnce ? 1 : this.settings.readBudget || Infinity;
    const buf = readBuffer;
    for (let turn = 0; turn < budget; turn++) {
      const n = libc.read(this.fd, buf, buf.length);
      counters.reads++;
      if (trace.on) trace.line(2, `read(${this.fd}) = ${result(n)}`);
      if (n > 0) {
        counters.bytesRead += n;
        this.lastActive = this.reactor.now;
        this.owner.onData(this, buf, n);
        if (!this.reading) return;
        // The owner has just switched this connection to zero copy (not at an urgent mark: read() steps over it).
        if (this.splice !== null && !this.urgent) {
          this.spliceSome();
          return;
        }
        // read() stops at an urgent mark (SIOCATMARK then says so), and
        // after a reset it returns what is left before the error: neither
        // short read is the end, nor proof the queue is empty.
        if (n < buf.length && this.urgent) {
          if (this.atUrgentMark()) {
            if (trace.on) trace.line(2, `short read at the urgent mark: not empty${budget === 1 ? ', epoll will report the rest' : ', reading on'}`);
            continue;
          }
          this.urgent = false; // past the mark: a short read means what it always means
        }
        if (n < buf.length && this.errorSeen) {
          if (trace.on) trace.line(2, `short read with an error pending (EPOLLERR): not the end${budget === 1 ? ', epoll will report the rest' : ', reading on'}`);
          continue;
        }
        if (n < buf.length && rdhup) {
          // A short read from a stream socket means its receive queue is
          // empty (epoll(7)). If the FIN has arrived (EPOLLRDHUP), this was
          // the end: no read() for the 0.
          if (this.peerShutdown) {
            if (trace.on) trace.line(2, 'short read after EPOLLRDHUP: that was the end, no read() for the 0');
            this.ended();
            return;
          }
          // Otherwise it counts as drained, saving the read() that returns
          // EAGAIN: new bytes or a FIN bring a new edge. Without EPOLLRDHUP
          // a FIN that came with these bytes would go unseen, so that case
          // (and readPolicy "eagain") reads on.
          if (!readToEagain) return;
        }
        continue;
      }
      if (n === 0) {
        this.urgent = false;
        // After a failed write took the socket's error, a reset reads as 0.
        if (this.errorSeen) this.destroy(this.brokenCause);
        else this.ended();
        return;
      }
      const err = libc.errno();
      if (err === EAGAIN) {
        counters.readsEagain++;
        this.urgent = false;
        return;
      }
      if (err === EINTR) continue;
      this.destroy(libc.errnoName(err));
      return;
    }
    if (!edge || readOnce) return;
    // Edge-triggered and still not drained: let every other ready connection
    // have its turn first, then carry on (no new edge would wake us).
    if (trace.on) trace.line(2, `read budget of ${budget} spent: on the ready list for the next turn, after the others`);
    this.reactor.defer(this, EPOLLIN);
  }

  /**
   * Zero copy: readSome's rules, with splice(fd -> pipe) for read(). Bytes go
   * to the owner as a length (onSpliced): they are in the pipe. A short
   * splice proves nothing (the pipe may have run out of room), so it goes on
   * until EAGAIN, 0 or the budget. EAGAIN while the pipe still holds bytes
   * may mean a full pipe rather than an empty socket: stop reading, as with a
   * full write queue, until the peer has taken them (onDrain resumes).
   */
  private spliceSome(): void {
    const pipe = this.splice!;
    const readOnce = this.settings.readOnce;
    const budget = readOnce ? 1 : this.settings.readBudget || Infinity;
    for (let turn = 0; turn < budget; turn++) {
      const n = pipe.fill(this.fd);
      if (n > 0) {
        this.lastActive = this.reactor.now;
        this.owner.onSpliced!(this, n);
        if (!this.reading || this.splice !== pipe) return;
        continue;
      }
      const err = n < 0 ? libc.errno() : 0;
      // splice() stops before a TCP urgent mark and, unlike read(), never
      // steps over it: there it says EAGAIN for ever, or - once a FIN or a
      // reset is in - 0 or the error, with the bytes after the mark unread.
      // One read() skips the urgent byte; its bytes queue behind the pipe's.
      // So every end is checked (its EPOLLPRI may still be on its way to
      // us), and EAGAIN once EPOLLPRI was seen.
      if (err === EAGAIN ? this.urgent : err !== EINTR) {
        if (this.atUrgentMark()) {
          if (trace.on) trace.line(2, 'splice stopped at the urgent mark: read() past it');
          // The error splice() returned was the socket's, and is consumed:
          // the reads past the mark end in a 0 that is this reset, not a FIN
          // (its EPOLLERR may not have reached us yet).
          if (n < 0 && err !== EAGAIN) {
            this.errorSeen = true;
            this.brokenCause = libc.errnoName(err);
          }
          this.readSome();
          return;
        }
        this.urgent = false;
      }
      if (n === 0) {
        if (this.errorSeen) this.destroy(this.brokenCause);
        else this.ended();
        return;
      }
      if (err === EAGAIN) {
        if (pipe.bytes > 0 && this.reading) {
          if (trace.on) trace.line(2, `pipe ${pipe.readFd} holds ${pipe.bytes} bytes (full, or the socket is empty): stop reading fd ${this.fd} until they are sent`);
          this.pauseReading(true);
          this.owner.onPipeFull?.(this);
        }
        return;
      }
      if (err === EINTR) continue;
      this.destroy(libc.errnoName(err));
      return;
    }
    if (!this.reactor.edge || readOnce) return;
    if (trace.on) trace.line(2, `read budget of ${budget} spent: on the ready list for the next turn, after the others`);
    this.reactor.defer(this, EPOLLIN);
  }

  /** SIOCATMARK: is the next byte to read the urgent mark? (Asked only after EPOLLPRI.) */
  private atUrgentMark(): boolean {
    const r = libc.ioctlInt(this.fd, libc.SIOCATMARK, ioctlValue);
    this.reactor.counters.otherCalls++;
    if (trace.on) trace.line(2, `ioctl(${this.fd}, SIOCATMARK) = ${r < 0 ? result(r) : `0: ${ioctlValue.readInt32LE(0) === 1 ? 'at the mark' : 'not at the mark'}`}`);
    return r < 0 || ioctlValue.readInt32LE(0) === 1;
  }

  /** The peer's FIN: no more reading; the owner decides what it means. */
  private ended(): void {
    this.readEnded = true;
    this.reading = false;
    this.owner.onEnd(this);
    if (!this.closed) this.updateInterest();
  }

  private enqueue(data: Buffer, from: number, to: number): void {
    const length = to - from;
    const last = this.chunks.length > this.first ? this.chunks[this.chunks.length - 1] : null;
    if (last !== null && last.pipe === null && last.buf.length - last.end >= length) {
      data.copy(last.buf, last.end, from, to);
      last.end += length;
    } else {
      // The first chunk is exactly the size needed (small ones come from Node's
      // shared pool): a request queued while the backend connects costs no
      // more than itself. Later chunks leave room for small writes to gather.
      const buf = Buffer.allocUnsafe(last === null && this.queuedBytes === 0 ? length : Math.max(CHUNK_SIZE, length));
      data.copy(buf, 0, from, to);
      this.chunks.push({ buf, start: 0, end: length, pipe: null });
    }
    this.queuedBytes += length;
    const counters = this.reactor.counters;
    counters.bytesQueued += length;
    if (this.queuedBytes > counters.peakQueue) counters.peakQueue = this.queuedBytes;
    this.updateInterest();
  }

  /** connection_on_out_event: write queued chunks until done or EAGAIN. */
  private flush(): void {
    const counters = this.reactor.counters;
    while (this.first < this.chunks.length) {
      const chunk = this.chunks[this.first];
      const length = chunk.end - chunk.start;
      let n;
      if (chunk.pipe !== null) {
        n = chunk.pipe.drain(this.fd, length);
      } else {
        n = libc.write(this.fd, chunk.start === 0 ? chunk.buf : chunk.buf.subarray(chunk.start), length);
        counters.writes++;
        if (trace.on) trace.line(2, `write(${this.fd}) = ${result(n)}${n >= 0 && n < length ? ` of ${length} (queued ${this.queuedBytes - n})` : ''} (from the queue)`);
      }
      if (n < 0) {
        const err = libc.errno();
        if (err === EAGAIN) break;
        if (err === EINTR) continue;
        this.writeFailed(err);
        return;
      }
      if (chunk.pipe === null) counters.bytesWritten += n;
      this.queuedBytes -= n;
      if (n > 0) this.lastActive = this.reactor.now;
      if (n < length) {
        if (chunk.pipe === null) counters.shortWrites++;
        chunk.start += n;
        break;
      }
      if (chunk.pipe !== null) this.sparePipeChunk = chunk;
      this.first++;
    }
    if (this.first === this.chunks.length) {
      this.chunks.length = 0;
      this.first = 0;
    } else if (this.first > 64) {
      this.chunks = this.chunks.slice(this.first);
      this.first = 0;
    }
    if (this.queuedBytes === 0) {
      if (this.closePending) {
        if (this.resetting) this.resetWhenSent();
        else this.destroy(this.closeCause);
        return;
      }
      if (this.shutdownPending) this.shutdownNow();
    }
    if (this.drainWanted && this.queuedBytes <= this.settings.lowWater) {
      this.drainWanted = false;
      this.owner.onDrain(this);
      if (this.closed) return;
    }
    this.updateInterest();
  }

  /**
   * A write failed (ECONNRESET, EPIPE): the peer is gone. But what it sent
   * before it went may still wait in the receive queue, owed to the other
   * side, so while reading the connection lives on: the queue is dropped,
   * nothing more is written, and reading ends with the error. (The failed
   * write consumed the socket's error, so the reads will end in a 0 that
   * is not a FIN.)
   */
  private writeFailed(err: number): void {
    this.brokenCause = libc.errnoName(err);
    if (this.readEnded || this.closePending || this.resetting || (!this.reading && !this.paused)) {
      this.destroy(this.brokenCause);
      return;
    }
    if (trace.on) trace.line(2, `write failed: nothing more is written to fd ${this.fd}; reading what the peer sent before it went`);
    this.errorSeen = true;
    this.writeEnded = true;
    this.shutdownPending = false;
    this.chunks = [];
    this.first = 0;
    this.queuedBytes = 0;
    this.updateInterest();
    // Level-triggered epoll reports again what is left; edge mode would not.
    if (this.reactor.edge && this.reading) this.reactor.defer(this, EPOLLIN);
  }

  /**
   * reset(), once our own queue is empty: the kernel may still hold bytes
   * the peer has not acknowledged, and a reset now would drop them. There is
   * no epoll event for "acknowledged", so look again after a short while.
   */
  private resetWhenSent(): void {
    this.resetTimer = null;
    if (this.closed) return;
    const r = libc.ioctlInt(this.fd, libc.SIOCOUTQ, ioctlValue);
    this.reactor.counters.otherCalls++;
    const unacked = r < 0 ? 0 : ioctlValue.readInt32LE(0);
    if (trace.on) trace.line(2, `ioctl(${this.fd}, SIOCOUTQ) = ${r < 0 ? result(r) : `0: ${unacked} bytes not yet acknowledged`}`);
    if (unacked <= 0) {
      this.resetNow(this.closeCause);
      return;
    }
    // Still moving: that is activity, as far as the idle timeout goes.
    if (this.resetPolls > 0 && unacked < this.unacked) this.lastActive = this.reactor.now;
    this.unacked = unacked;
    const wait = RESET_POLL_MS[Math.min(this.resetPolls++, RESET_POLL_MS.length - 1)];
    this.resetTimer = this.reactor.after(wait, () => this.resetWhenSent());
  }

  private shutdownNow(): void {
    this.shutdownPending = false;
    const r = libc.shutdown(this.fd, libc.SHUT_WR);
    this.reactor.counters.otherCalls++;
    if (trace.on) trace.line(2, `shutdown(${this.fd}, SHUT_WR) = ${result(r)}`);
    if (r < 0) {
      const err = libc.errno();
      // ENOTCONN: the peer is already gone; the read side will tell us.
      if (err !== libc.ENOTCONN) this.destroy(libc.errnoName(err));
    }
  }

  /**
   * Keep the epoll registration in line with what we want to hear about.
   * Level-triggered: EPOLLIN while reading, EPOLLOUT only while something is
   * queued (or a connect is in progress) - otherwise every turn would report
   * the socket writable. Edge-triggered: an edge only comes when something
   * changes, so by default (outAlways) everything is registered once and never
   * modified.
   */
  private updateInterest(): void {
    if (this.closed) return;
    const rdhup = this.settings.rdhup ? EPOLLRDHUP : 0;
    let mask = 0;
    // Edge: EPOLLIN stays registered even while paused (a flag does it, no epoll_ctl).
    // EPOLLPRI with EPOLLIN: it says a short read may have stopped at an urgent mark.
    if (this.reactor.edge || this.reading) mask |= EPOLLIN | EPOLLPRI | rdhup;
    if (this.connecting || this.queuedBytes > 0 || this.settings.outAlways) mask |= EPOLLOUT;
    if (!this.registered) {
      if (mask === 0) return; // see handle(): left the set after a HUP
      this.reactor.add(this, mask);
      this.registered = true;
      this.mask = mask;
    } else if (mask !== this.mask) {
      this.reactor.modify(this, mask);
      this.mask = mask;
    }
  }
}
