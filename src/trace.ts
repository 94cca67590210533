// Trace mode (`rsp --trace` or `trace = true`): what each epoll_wait returned,
// which handler got each event, and every system call made for it, in words:
//
//   epoll_wait(max 256, timeout -1) = 1
//     fd 9 client 127.0.0.1:53122: EPOLLIN
//       read(9) = 78
//       write(11) = 78
//
// Lines are gathered during a loop turn and written to stdout with one
// write() at the end of it, straight from the worker thread: no message per
// line to the main thread. When tracing is off, every call site is a single
// `if (trace.on)` test.
import * as libc from '../ffi/libc';

const EVENT_NAMES: [number, string][] = [
  [libc.EPOLLIN, 'EPOLLIN'],
  [libc.EPOLLPRI, 'EPOLLPRI'],
  [libc.EPOLLOUT, 'EPOLLOUT'],
  [libc.EPOLLERR, 'EPOLLERR'],
  [libc.EPOLLHUP, 'EPOLLHUP'],
  [libc.EPOLLRDHUP, 'EPOLLRDHUP'],
  [libc.EPOLLET, 'EPOLLET'],
];

/** EPOLLIN|EPOLLRDHUP; `short` drops the EPOLL prefix (IN|OUT) as epoll_ctl lines do. */
export function eventNames(mask: number, short = false): string {
  const names = EVENT_NAMES.filter(([bit]) => (mask & bit) !== 0).map(([, name]) => (short ? name.slice(5) : name));
  return names.length > 0 ? names.join('|') : '0';
}

/** "= 4096" or "= -1 EAGAIN": a result as strace shows it. Call right after the syscall. */
export function result(n: number): string {
  return n < 0 ? `-1 ${libc.errnoName(libc.errno())}` : String(n);
}

/** Keep at most this much unwritten trace output; past it, count dropped lines instead. */
const MAX_PENDING = 4 * 1024 * 1024;

export class Trace {
  on = false;
  private fd = 1;
  private pending = '';
  /** Bytes a write() did not take (a full pipe): they go first next time, not encoded again. */
  private unwritten: Buffer | null = null;
  private dropped = 0;

  start(fd = 1): void {
    this.on = true;
    this.fd = fd;
  }

  /** Output is waiting for a stuck stdout: the reactor should not sleep for long. */
  get backlogged(): boolean {
    return this.unwritten !== null;
  }

  /** A line at depth 0 (epoll_wait), 1 (an event for a handler) or 2 (a call made for it). */
  line(depth: number, text: string): void {
    if (this.pending.length + (this.unwritten?.length ?? 0) > MAX_PENDING) {
      this.dropped++;
      return;
    }
    this.pending += '  '.repeat(depth) + text + '\n';
  }

  /** End of a loop turn: one write() for everything gathered. */
  flush(): void {
    if (this.dropped > 0) {
      this.pending += `[trace: ${this.dropped} lines dropped, output could not keep up]\n`;
      this.dropped = 0;
    }
    for (;;) {
      if (this.unwritten === null) {
        if (this.pending.length === 0) return;
        this.unwritten = Buffer.from(this.pending);
        this.pending = '';
      }
      const bytes = this.unwritten;
      const n = libc.write(this.fd, bytes, bytes.length);
      if (n < 0) {
        if (libc.errno() === libc.EINTR) continue;
        return; // EAGAIN on a full pipe: keep it for the next turn
      }
      this.unwritten = n === bytes.length ? null : bytes.subarray(n);
    }
  }
}

/** One per worker thread (each thread has its own copy of this module). */
export const trace = new Trace();
