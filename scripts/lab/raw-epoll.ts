// A bare epoll set for the experiments that look at epoll itself rather
// than at rsp: each call made straight on ffi/libc.ts, counted, and (when
// `log` is on) written down as strace would show it, for the explanation.
// event.data holds the fd number alone, as a C program would store it.
import * as libc from '../../ffi/libc';
import { EPOLL_DATA_OFFSET, EPOLL_EVENT_SIZE, writeEpollEvent } from '../../ffi/epoll_event';
import { eventNames } from '../../src/trace';

const OPS: Record<number, string> = { [libc.EPOLL_CTL_ADD]: 'ADD', [libc.EPOLL_CTL_MOD]: 'MOD', [libc.EPOLL_CTL_DEL]: 'DEL' };

export class RawEpoll {
  readonly epfd: number;
  /** Calls made, by kind. */
  waits = 0;
  ctls = 0;
  events = 0;
  /** The calls as text, when `log` is on. */
  readonly lines: string[] = [];
  private readonly buf: Buffer;
  private readonly ctlEvent = Buffer.alloc(EPOLL_EVENT_SIZE);

  constructor(readonly maxEvents = 64, public log = false) {
    this.epfd = libc.check('epoll_create1', libc.epoll_create1(libc.EPOLL_CLOEXEC));
    this.buf = Buffer.alloc(maxEvents * EPOLL_EVENT_SIZE);
  }

  /** epoll_ctl(op, fd, mask) with data = fd. Returns 0 or the errno name (never throws: failures are results here). */
  ctl(op: number, fd: number, mask = 0): string {
    writeEpollEvent(this.ctlEvent, 0, mask, fd, 0);
    const r = libc.epoll_ctl(this.epfd, op, fd, op === libc.EPOLL_CTL_DEL ? null : this.ctlEvent);
    const outcome = r < 0 ? libc.errnoName(libc.errno()) : '0';
    this.ctls++;
    if (this.log) this.lines.push(`epoll_ctl(${OPS[op]}, ${fd}${op === libc.EPOLL_CTL_DEL ? '' : `, ${eventNames(mask, true)}`}) = ${r < 0 ? `-1 ${outcome}` : '0'}`);
    return outcome;
  }

  /** epoll_wait; then fdAt(i) / eventsAt(i) for i < the result. */
  wait(timeoutMs: number): number {
    let n = libc.epoll_wait(this.epfd, this.buf, this.maxEvents, timeoutMs);
    while (n < 0 && libc.errno() === libc.EINTR) n = libc.epoll_wait(this.epfd, this.buf, this.maxEvents, timeoutMs);
    if (n < 0) throw new libc.SysError('epoll_wait', libc.errno());
    this.waits++;
    this.events += n;
    if (this.log) {
      const list = Array.from({ length: n }, (_, i) => `data.fd ${this.fdAt(i)} ${eventNames(this.eventsAt(i))}`);
      this.lines.push(`epoll_wait(timeout ${timeoutMs}) = ${n}${n > 0 ? `: ${list.join(', ')}` : ''}`);
    }
    return n;
  }

  fdAt(i: number): number {
    return this.buf.readUInt32LE(i * EPOLL_EVENT_SIZE + EPOLL_DATA_OFFSET);
  }

  eventsAt(i: number): number {
    return this.buf.readUInt32LE(i * EPOLL_EVENT_SIZE);
  }

  /** A line of the experiment's own, in the same log. */
  note(line: string): void {
    if (this.log) this.lines.push(line);
  }

  close(): void {
    libc.close(this.epfd);
  }
}
