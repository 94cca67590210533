// Idle timeout (nginx stream's proxy_timeout, HAProxy's timeout client and
// server): a pairing that has read nothing in either direction for `timeout`
// ms is closed, so clients that connect and go quiet cannot hold file
// descriptors for ever. One sweep timer for all pairings, armed only while
// there are any: an idle proxy still sleeps in epoll_wait.
import type { Reactor } from './reactor';

export interface Idler {
  /** reactor.now when it last read something. */
  lastActive(): number;
  closeIdle(): void;
}

export class IdleSweeper {
  private readonly live = new Set<Idler>();
  private armed = false;
  private readonly interval: number;

  constructor(
    private readonly reactor: Reactor,
    /** Milliseconds; 0: never. */
    private readonly timeout: number,
  ) {
    // Closed between `timeout` and `timeout + interval` after the last byte.
    this.interval = Math.min(5000, Math.max(10, Math.floor(timeout / 4)));
  }

  add(idler: Idler): void {
    if (this.timeout === 0) return;
    this.live.add(idler);
    if (!this.armed) this.arm();
  }

  delete(idler: Idler): void {
    this.live.delete(idler);
  }

  private arm(): void {
    this.armed = true;
    this.reactor.after(this.interval, () => this.sweep());
  }

  private sweep(): void {
    this.armed = false;
    const limit = this.reactor.now - this.timeout;
    for (const idler of this.live) {
      if (idler.lastActive() < limit) {
        this.live.delete(idler);
        idler.closeIdle();
      }
    }
    if (this.live.size > 0) this.arm();
  }
}
