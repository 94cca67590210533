// Zero copy: one direction of a pairing through a pipe, with splice(2).
//
// Copying moves every byte twice across the kernel boundary: read() into the
// worker's buffer, write() out of it. splice() moves bytes between a pipe and
// another fd inside the kernel: splice(socket -> pipe) takes them out of the
// receive queue, splice(pipe -> socket) puts them into the other side's send
// queue, and with SPLICE_F_MOVE the pages themselves change hands. Two system
// calls per chunk, as with read + write, but no byte is copied to user space.
//
// The pipe is the queue. What the destination cannot take yet stays in the
// pipe, counted in its Connection's write queue as a "pipe chunk" behind the
// bytes queued before it (connection.ts): order is the write queue's, so a
// switch from copying to splicing mid-stream is seamless, and so is the one
// read() at a TCP urgent mark (splice stops before the mark and never steps
// over it: see Connection.spliceSome). When the pipe is full the source stops
// being read, as with a write queue past its high-water mark.
//
// Pipes cost two fds and kernel memory (up to `pipeSize` each), so they are
// made lazily, only for directions that carry enough to gain (ZeroCopy.pipe),
// within a budget of fds the open-files limit leaves beside maxConnections
// (src/fdlimit.ts). When pipe2 fails (EMFILE, ENFILE, ENOMEM) or the budget is
// spent, that direction simply goes on copying; one line per burst says so.
import * as fs from 'node:fs';
import * as libc from '../ffi/libc';
import type { LimitedLog } from './log';
import type { Reactor } from './reactor';
import { result, trace } from './trace';

export type ZeroCopyMode = 'auto' | 'on' | 'off';

/**
 * "auto" splices a direction once one read() of it brings this many bytes
 * (or fills a smaller read buffer): more was waiting than one read takes, a
 * bulk transfer. Not a running total: a keep-alive connection that has
 * carried megabytes of small responses stays with read() and write(), which
 * cost it fewer system calls than splice (in edge mode a splice loop ends
 * on EAGAIN, where a short read() already says "empty") and no pipe.
 * See docs/lab.md, "copy vs splice".
 */
export const AUTO_THRESHOLD = 64 * 1024;

/** The pipe size asked for with F_SETPIPE_SZ (at most /proc/sys/fs/pipe-max-size). See docs/lab.md. */
export const PIPE_SIZE = 1024 * 1024;

/** PIPE_SIZE, or the most an unprivileged process may ask for when that is less. */
function pipeSizeAllowed(): number {
  try {
    const max = Number(fs.readFileSync('/proc/sys/fs/pipe-max-size', 'utf8').trim());
    return max > 0 ? Math.min(PIPE_SIZE, max) : PIPE_SIZE;
  } catch {
    return PIPE_SIZE;
  }
}

const MOVE = libc.SPLICE_F_MOVE | libc.SPLICE_F_NONBLOCK;
const pipeFds = Buffer.alloc(8);

/** One direction's pipe. `bytes` is what sits in it, spliced in and not yet out. */
export class Splice {
  // The trace names the pipe by its read end: "pipe 12".
  /** Bytes in the pipe. */
  bytes = 0;
  /** The pipe's capacity (F_GETPIPE_SZ), what one splice in asks for. */
  size = 0;
  private closed = false;

  constructor(
    private readonly reactor: Reactor,
    readonly readFd: number,
    readonly writeFd: number,
    size: number,
  ) {
    this.size = size;
  }

  /** splice(fd -> pipe): up to the pipe's size. Returns splice's result; errno is left for the caller. */
  fill(fd: number): number {
    const n = libc.splice(fd, this.writeFd, this.size, MOVE);
    const counters = this.reactor.counters;
    counters.splices++;
    if (trace.on) trace.line(2, `splice(${fd} → pipe ${this.readFd}) = ${result(n)}`);
    if (n > 0) {
      this.bytes += n;
      counters.bytesSpliced += n;
    }
    return n;
  }

  /** splice(pipe -> fd): up to `length` bytes. Returns splice's result; errno is left for the caller. */
  drain(fd: number, length: number): number {
    const n = libc.splice(this.readFd, fd, length, MOVE);
    this.reactor.counters.splices++;
    if (trace.on) trace.line(2, `splice(pipe ${this.readFd} → ${fd}) = ${result(n)}${n >= 0 && n < length ? ` of ${length} (${this.bytes - n} left in the pipe)` : ''}`);
    if (n > 0) this.bytes -= n;
    return n;
  }

  /** Close both ends (once neither connection can refer to the pipe any more). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const r = libc.close(this.readFd);
    if (trace.on) trace.line(2, `close(${this.readFd}) = ${result(r)} (pipe ${this.readFd}, read end)`);
    const w = libc.close(this.writeFd);
    if (trace.on) trace.line(2, `close(${this.writeFd}) = ${result(w)} (pipe ${this.readFd}, write end)`);
    this.reactor.counters.otherCalls += 2;
  }
}

/** A worker's zero-copy policy: which mode, how many pipes it may still open, and where failures are logged. */
export class ZeroCopy {
  /** Pipes open now. */
  open = 0;
  /** One read of a direction must bring this many bytes for it to get a pipe (1 for "on": any read). */
  readonly threshold: number;

  constructor(
    private readonly reactor: Reactor,
    readonly mode: ZeroCopyMode,
    /** Most pipes open at once (two fds each), from the fds maxConnections leaves (src/fdlimit.ts). */
    private readonly maxPipes: number,
    private readonly errors: LimitedLog,
    /** The read buffer's size (readBufferSize): a full read is bulk when it is below AUTO_THRESHOLD. */
    readSize = AUTO_THRESHOLD,
    private readonly pipeSize = pipeSizeAllowed(),
  ) {
    this.threshold = mode === 'on' ? 1 : Math.min(AUTO_THRESHOLD, readSize);
  }

  /** A pipe for one direction, or null (go on copying) when none can be had; `who` names the client for the log. */
  pipe(who: string): Splice | null {
    if (this.open >= this.maxPipes) {
      this.errors.error('zero copy budget', this.maxPipes === 0
        ? `Zero copy: the open-files limit leaves no fds for pipes beside maxConnections; copying for client ${who}`
        : `Zero copy: all ${this.maxPipes} pipes the open-files limit leaves beside maxConnections are in use; copying for client ${who}`);
      return null;
    }
    const counters = this.reactor.counters;
    const r = libc.pipe2(pipeFds, libc.O_NONBLOCK | libc.O_CLOEXEC);
    counters.otherCalls++;
    if (r < 0) {
      const err = libc.errno();
      if (trace.on) trace.line(2, `pipe2(O_NONBLOCK|O_CLOEXEC) = ${result(r)}: copying instead`);
      this.errors.error(`pipe2 ${libc.errnoName(err)}`, `Zero copy: pipe2: ${libc.errnoName(err)}; copying for client ${who}`);
      return null;
    }
    const readFd = pipeFds.readInt32LE(0);
    const writeFd = pipeFds.readInt32LE(4);
    // A larger pipe: fewer splice rounds per MB. Failing (EPERM past the
    // per-user pipe quota) just leaves the default size.
    if (trace.on) trace.line(2, `pipe2(O_NONBLOCK|O_CLOEXEC) = 0: pipe ${readFd} (read end ${readFd}, write end ${writeFd})`);
    let size = libc.fcntl(writeFd, libc.F_SETPIPE_SZ, this.pipeSize);
    counters.otherCalls++;
    if (trace.on) trace.line(2, `fcntl(${writeFd}, F_SETPIPE_SZ, ${this.pipeSize}) = ${result(size)}`);
    if (size < 0) {
      size = libc.fcntl(writeFd, libc.F_GETPIPE_SZ);
      counters.otherCalls++;
      if (trace.on) trace.line(2, `fcntl(${writeFd}, F_GETPIPE_SZ) = ${result(size)}`);
      if (size <= 0) size = 65536;
    }
    this.open++;
    counters.pipes++;
    return new Splice(this.reactor, readFd, writeFd, size);
  }

  /** Give a pipe back (the pairing is over). */
  release(splice: Splice): void {
    splice.close();
    this.open--;
  }
}
