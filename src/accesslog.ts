// The access log: one line per proxied connection, written by the worker
// itself straight to the file (opened O_APPEND, so several writers and
// logrotate's copies keep whole lines), gathered during a loop turn and
// written with one write() at its end - no message per line to the main
// thread. SIGUSR1 reopens the file (logrotate's postrotate).
//
//   combined: 127.0.0.1:53122 [29/Nov/2026:10:00:00 +0000] TCP 0.0.0.0:8000 app 10.0.0.2:8080 in=78 out=1024 time=0.012 end=closed
//   json:     {"time":"2026-11-29T10:00:00.000Z","client":"127.0.0.1:53122",...,"end":"closed"}
//   HTTP mode, one line per request:
//             127.0.0.1:53122 [29/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 0.0.0.0:8080 web 10.0.0.2:8080 in=78 out=1024 time=0.002 end=closed
import * as libc from '../ffi/libc';
import { logError } from './log';
import type { Reactor } from './reactor';

export interface AccessEntry {
  client: string;
  listener: string;
  pool: string;
  /** '-' when no member was reached. */
  member: string;
  /** Bytes from the client, and to it. */
  bytesIn: number;
  bytesOut: number;
  /** Seconds from accept to the last close. */
  seconds: number;
  /** closed, client reset, backend reset, no backend, idle timeout, stopped... */
  end: string;
  /** HTTP mode: the request line ("GET /index.html HTTP/1.1") and the status answered (0: none). */
  request?: string;
  status?: number;
}

/** Beyond this much unwritten (stdout stuck), lines are counted and dropped instead. */
const MAX_PENDING = 4 * 1024 * 1024;
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

function pad(n: number): string {
  return n < 10 ? `0${n}` : `${n}`;
}

/** nginx's $time_local: 29/Nov/2026:10:00:00 +0000 */
function timeLocal(d: Date): string {
  const offset = -d.getTimezoneOffset();
  const sign = offset >= 0 ? '+' : '-';
  const abs = Math.abs(offset);
  return `${pad(d.getDate())}/${MONTHS[d.getMonth()]}/${d.getFullYear()}:${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())} ${sign}${pad(Math.floor(abs / 60))}${pad(abs % 60)}`;
}

export function formatEntry(e: AccessEntry, format: 'combined' | 'json', now: Date): string {
  if (format === 'json') {
    return JSON.stringify({
      time: now.toISOString(), client: e.client, listener: e.listener, pool: e.pool, member: e.member,
      ...(e.request === undefined ? {} : { request: e.request, status: e.status }),
      bytes_in: e.bytesIn, bytes_out: e.bytesOut, duration: Number(e.seconds.toFixed(3)), end: e.end,
    });
  }
  if (e.request !== undefined) {
    return `${e.client} [${timeLocal(now)}] "${e.request.replace(/["\\]/g, '\\$&')}" ${e.status || '-'} ${e.listener} ${e.pool} ${e.member} in=${e.bytesIn} out=${e.bytesOut} time=${e.seconds.toFixed(3)} end=${e.end.replace(/\s+/g, '-')}`;
  }
  return `${e.client} [${timeLocal(now)}] TCP ${e.listener} ${e.pool} ${e.member} in=${e.bytesIn} out=${e.bytesOut} time=${e.seconds.toFixed(3)} end=${e.end.replace(/\s+/g, '-')}`;
}

export class AccessLog {
  private fd = -1;
  private pending = '';
  private dropped = 0;
  private armed = false;

  constructor(
    private readonly reactor: Reactor,
    /** A file path, or "-" for stdout. */
    private readonly path: string,
    private readonly format: 'combined' | 'json',
  ) {
    this.open();
  }

  /** Throws a SysError when the file cannot be opened (at start-up: a one-line error). */
  private open(): void {
    if (this.path === '-') {
      this.fd = 1;
      return;
    }
    const fd = libc.open(this.path, libc.O_WRONLY | libc.O_APPEND | libc.O_CREAT | libc.O_CLOEXEC, 0o644);
    if (fd < 0) throw new libc.SysError('open', libc.errno(), this.path);
    this.fd = fd;
  }

  /** SIGUSR1: the file may have been renamed away; start a new one under the name. */
  reopen(): void {
    if (this.path === '-') return;
    this.flush();
    const old = this.fd;
    try {
      this.open();
      libc.close(old);
    } catch (error) {
      this.fd = old;
      logError(`access log: cannot reopen ${this.path}: ${error instanceof Error ? error.message : String(error)}; still writing to the old file`);
    }
  }

  write(entry: AccessEntry): void {
    if (this.pending.length > MAX_PENDING) {
      this.dropped++;
      return;
    }
    this.pending += formatEntry(entry, this.format, new Date()) + '\n';
    if (!this.armed) {
      // A timer due now runs at the end of this loop turn: one write() per turn.
      this.armed = true;
      this.reactor.after(0, () => {
        this.armed = false;
        this.flush();
      });
    }
  }

  flush(): void {
    if (this.dropped > 0) {
      this.pending += `[access log: ${this.dropped} lines dropped, output could not keep up]\n`;
      this.dropped = 0;
    }
    while (this.pending.length > 0) {
      const bytes = Buffer.from(this.pending);
      const n = libc.write(this.fd, bytes, bytes.length);
      if (n < 0) {
        const err = libc.errno();
        if (err === libc.EINTR) continue;
        if (err !== libc.EAGAIN) {
          logError(`access log: write to ${this.path}: ${libc.errnoName(err)}; ${this.pending.split('\n').length - 1} lines lost`);
          this.pending = '';
          return;
        }
        // stdout stuck: try again a little later.
        if (!this.armed) {
          this.armed = true;
          this.reactor.after(50, () => {
            this.armed = false;
            this.flush();
          });
        }
        return;
      }
      this.pending = n === bytes.length ? '' : bytes.subarray(n).toString();
    }
  }

  close(): void {
    this.flush();
    if (this.fd > 1) libc.close(this.fd);
    this.fd = -1;
  }
}
