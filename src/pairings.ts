// The live pairings of a worker: every client with its backend, from accept
// to the last close. Two things need the whole set:
//
//  - the idle timeout (nginx stream's proxy_timeout, HAProxy's timeout
//    client/server): a pairing that has moved no byte in either direction
//    for `idleTimeout` ms - nothing read, nothing written, nothing leaving
//    the kernel's send queues - is cut, so peers that go quiet cannot hold
//    file descriptors for ever. One sweep timer for all of them, armed only while
//    there are any: an idle proxy still sleeps in epoll_wait.
//  - stopping: pairings still open when the worker stops are reset, never
//    closed with a FIN that would make a cut stream look complete.
//
// The set is an array in which each pairing knows its slot (a leaving one's
// slot takes the last pairing): not a Set. A Set's hash table is rebuilt as
// pairings come and go, and V8 links each old table to the next for its
// iterators; once the table has lived long enough to be in the old
// generation (a set of long keep-alive connections), every later table is
// made there too, and each table left behind keeps the pairings it held
// alive until the next full collection. At 20,000 connections a second that
// promoted every pairing: 16 MB/s into the old generation, 1.5 µs of CPU per
// connection more, for as long as the worker lived.
import type { Reactor } from './reactor';

export interface Pairing {
  /** Its index in Pairings' array while it is there; -1 otherwise (kept by Pairings). */
  slot: number;
  /** The listener that accepted it, while it holds a place under maxConnections (set by the worker). */
  acceptedBy: { released(): void } | null;
  /** reactor.now when a byte last moved, read or written, on either side. */
  lastActive(): number;
  /** Ask the kernel whether bytes written earlier are still leaving (moves lastActive if so). */
  sendQueuesMoved(): boolean;
  /** Cut it now, with a reset on both sides; `cause` is what the counters record. */
  resetBoth(cause: string): void;
  /** HTTP mode's own timeouts (request head, keep-alive, first response byte): act on any that ran out by `now`. */
  expire?(now: number): void;
  /**
   * Its config is retired: end after the current exchange (HTTP: Connection:
   * close on the next response). `idleToo`: rsp is draining, so a connection
   * with no exchange under way (an idle keep-alive client) ends now; on a
   * reload it may still send one more request, served by the old config.
   */
  drain?(idleToo: boolean): void;
}

export class Pairings {
  private readonly live: Pairing[] = [];
  private armed = false;
  /** Set while draining: called when the last pairing has gone. */
  onEmpty: (() => void) | null = null;
  private readonly interval: number;
  /** Called once per pairing when it leaves the set before the worker stops (maxConnections counts with it). */
  onRemoved: ((pairing: Pairing) => void) | null = null;

  /** The sweep runs while there are pairings: there is a timeout to watch. */
  private readonly sweeping: boolean;

  constructor(
    private readonly reactor: Reactor,
    /** Milliseconds without progress before a pairing is cut; 0: never. */
    private readonly idleTimeout: number,
    /** The shortest of the other timeouts pairings watch through expire() (HTTP mode); 0: none. */
    shortest = 0,
  ) {
    // Cut between `idleTimeout` and `idleTimeout + interval` after the last byte.
    const tightest = Math.min(idleTimeout > 0 ? idleTimeout : Infinity, shortest > 0 ? shortest : Infinity);
    this.sweeping = tightest !== Infinity;
    this.interval = this.sweeping ? Math.min(5000, Math.max(10, Math.floor(tightest / 4))) : 5000;
  }

  get size(): number {
    return this.live.length;
  }

  add(pairing: Pairing): void {
    pairing.slot = this.live.length;
    this.live.push(pairing);
    if (this.sweeping && !this.armed) this.arm();
  }

  delete(pairing: Pairing): void {
    const live = this.live;
    const slot = pairing.slot;
    if (slot < 0 || live[slot] !== pairing) return;
    const last = live.pop()!;
    if (last !== pairing) {
      live[slot] = last;
      last.slot = slot;
    }
    pairing.slot = -1;
    if (this.onRemoved !== null) this.onRemoved(pairing);
    if (live.length === 0 && this.onEmpty !== null) this.onEmpty();
  }

  /** Tell every open pairing that the worker drains (a copy is walked: draining closes some). */
  drainAll(idleToo: boolean): void {
    for (const pairing of this.live.slice()) if (pairing.slot >= 0) pairing.drain?.(idleToo);
  }

  /** Reset every open pairing (the worker is stopping). */
  resetAll(cause: string): void {
    this.onEmpty = null;
    this.onRemoved = null; // stopping: nothing is accepted any more, so nothing needs counting
    const all = this.live.splice(0);
    for (const pairing of all) {
      pairing.slot = -1;
      pairing.resetBoth(cause);
    }
  }

  private arm(): void {
    this.armed = true;
    this.reactor.after(this.interval, () => this.sweep());
  }

  private sweep(): void {
    this.armed = false;
    const now = this.reactor.now;
    const limit = now - this.idleTimeout;
    // A copy is walked: an expired or idle pairing leaves the array as it closes.
    for (const pairing of this.live.slice()) {
      if (pairing.slot < 0) continue;
      if (pairing.expire !== undefined) {
        pairing.expire(now);
        if (pairing.slot < 0) continue;
      }
      if (this.idleTimeout === 0) continue;
      // Quiet since the last sweep: a slow reader may still be taking bytes
      // out of the socket buffers (one ioctl per side, only for these).
      if (pairing.lastActive() < now - this.interval && pairing.sendQueuesMoved()) continue;
      if (pairing.lastActive() < limit) pairing.resetBoth('idle timeout'); // its last close deletes it
    }
    if (this.live.length > 0) this.arm();
  }
}
