// server_socket.c: the listening socket and its accept loop.
import * as libc from '../ffi/libc';
import { familyOf, formatHostPort, SOCKADDR_MAX, toSockaddr } from '../ffi/sockaddr';
import { log, logError } from './log';
import { localAddress, setFlag, setNoDelay } from './netutils';
import type { Handler, Reactor, Timer } from './reactor';
import { result, trace } from './trace';

export interface ListenerOptions {
  address: string;
  port: number;
  backlog: number;
  /** Connections accepted per readiness event before other handlers get a turn. */
  acceptBudget: number;
  /** Accept one connection per event and no more until epoll reports again (an experiment: strands connections in edge mode). */
  acceptOnce: boolean;
  /** Most connections from this listener open at once (maxConnections in its `listeners` entry); 0: no limit of its own. */
  maxConnections?: number;
  /** The limit it shares with the worker's other listeners (the global maxConnections); none if not given. */
  limit?: ConnectionLimit;
  /**
   * A listening socket opened elsewhere (by the main thread, src/supervisor/sockets.ts)
   * to accept on instead of binding one: the listener never closes it, it only
   * leaves the epoll set, so the socket outlives a reload and serves the next config.
   */
  fd?: number;
  /** Register with EPOLLEXCLUSIVE: the socket is in several workers' epoll sets and a connection should wake one. */
  exclusive?: boolean;
}

/** How long to stop accepting when the process or system is out of file descriptors. */
const FD_EXHAUSTED_PAUSE_MS = 100;
/**
 * An out-of-fds episode ends once accepting has gone this long without running
 * out again: a listener that flips between one accept and EMFILE while a
 * server is at its limit logs one line for the episode, not a pair per flip.
 */
const EPISODE_QUIET_MS = 1000;

/**
 * maxConnections: the connections (pairings, from accept to their last close)
 * the listeners of a worker may have open together. At the limit every
 * listener leaves the epoll set, so new clients wait in the kernel's listen
 * backlog instead of being accepted and dropped; below it they come back.
 */
export class ConnectionLimit {
  open = 0;
  readonly listeners: Listener[] = [];
  readonly episode: LimitEpisode;

  constructor(reactor: Reactor, readonly max: number, label = '') {
    this.episode = new LimitEpisode(reactor, '', max, label);
  }

  /** After open changed: pause or resume every listener if the limit was crossed. */
  update(): void {
    if (this.episode.change(this.open >= this.max)) for (const l of this.listeners) l.updateRegistration();
  }
}

/**
 * One limit's pauses, logged per episode: a line when the limit is first
 * reached, and one once accepting has gone on for EPISODE_QUIET_MS without
 * reaching it again, so a server that sits at its limit (a pause and a resume
 * for every client that leaves) logs two lines, not two per client.
 */
export class LimitEpisode {
  /** Accepting is paused by this limit now. */
  paused = false;
  private inEpisode = false;
  /** performance.now() when the limit was last reached or left. */
  private lastReached = 0;
  private timesReached = 0;
  private check: Timer | null = null;

  constructor(
    private readonly reactor: Reactor,
    /** "" for the global limit, "listener 127.0.0.1:8000: " for a listener's own. */
    private readonly prefix: string,
    private readonly max: number,
    /** With several workers: ": worker 0's share of 4" after the number. */
    private readonly share = '',
  ) {}

  /** `full`: open >= max. Returns whether `paused` changed. */
  change(full: boolean): boolean {
    if (full === this.paused) return false;
    this.paused = full;
    if (full) {
      this.lastReached = performance.now();
      this.timesReached++;
      if (!this.inEpisode) {
        this.inEpisode = true;
        this.timesReached = 1;
        log(`${this.prefix}maxConnections (${this.max}${this.share}) reached: not accepting until a connection closes (new clients wait in the listen backlog).`);
      }
    } else if (this.inEpisode) {
      // Quiet is counted from here: a long pause at the limit is not quiet.
      this.lastReached = performance.now();
      if (this.check === null) this.checkEnd();
    }
    return true;
  }

  cancel(): void {
    if (this.check) this.check.cancel();
    this.check = null;
  }

  private checkEnd(): void {
    if (this.paused) return; // reached again: the next resume checks
    const quietFor = performance.now() - this.lastReached;
    if (quietFor < EPISODE_QUIET_MS) {
      this.check = this.reactor.after(EPISODE_QUIET_MS - quietFor, () => {
        this.check = null;
        this.checkEnd();
      });
      return;
    }
    this.inEpisode = false;
    const times = this.timesReached;
    const again = this.prefix === '' ? 'Accepting connections again' : `${this.prefix}accepting connections again`;
    log(`${again}: below maxConnections (${this.max}${this.share}).${times > 1 ? ` (Reached ${times} times in this episode.)` : ''}`);
  }
}

/**
 * create_and_bind + listen. The address is an IP literal (the config resolved
 * names already); "::" listens on IPv6 and IPv4 both.
 */
export function createAndBind(address: string, port: number, backlog: number, reusePort = false): number {
  const sockaddr = toSockaddr(address, port);
  const family = familyOf(sockaddr);
  const fd = libc.check('socket', libc.socket(family, libc.SOCK_STREAM | libc.SOCK_NONBLOCK | libc.SOCK_CLOEXEC, 0));
  try {
    setFlag(fd, libc.SOL_SOCKET, libc.SO_REUSEADDR, 'SO_REUSEADDR');
    // One socket per worker on the same address: the kernel spreads new connections over them.
    if (reusePort) setFlag(fd, libc.SOL_SOCKET, libc.SO_REUSEPORT, 'SO_REUSEPORT');
    if (family === libc.AF_INET6 && address === '::') {
      const zero = Buffer.alloc(4);
      libc.setsockopt(fd, libc.IPPROTO_IPV6, libc.IPV6_V6ONLY, zero, 4);
    }
    // Accepted sockets inherit TCP_NODELAY from the listener on Linux: one
    // setsockopt here instead of one per connection.
    setNoDelay(fd);
    libc.check('bind', libc.bind(fd, sockaddr, sockaddr.length), `${address} port ${port}`);
    libc.check('listen', libc.listen(fd, backlog));
  } catch (error) {
    libc.close(fd);
    throw error;
  }
  return fd;
}

export class Listener implements Handler {
  generation = 0;
  readyEvents = 0;
  readonly fd: number;
  readonly port: number;
  readonly label: string;
  private readonly acceptBudget: number;
  private readonly acceptOnce: boolean;
  private pausedUntilRetry: Timer | null = null;
  private out = false; // in an EMFILE/ENFILE episode
  private lastExhausted = 0; // performance.now() of the last EMFILE/ENFILE
  private episodeCheck: Timer | null = null;
  private pausesInEpisode = 0;
  /** Its pairings open now, from accept to their last close (see released()). */
  open = 0;
  private readonly maxOpen: number;
  private readonly own: LimitEpisode | null;
  private readonly limit: ConnectionLimit;
  private closed = false;
  /** Opened (and so closed) by this listener, not handed over by the main thread. */
  private readonly ownsFd: boolean;
  private readonly mask: number;
  // accept4 fills these in: the client's address, for balance = "hash" and logs.
  private readonly peer = Buffer.alloc(SOCKADDR_MAX);
  private readonly peerLength = Buffer.alloc(4);

  constructor(
    private readonly reactor: Reactor,
    options: ListenerOptions,
    /** Called with each accepted, non-blocking fd and the client's sockaddr (valid during the call only). */
    private readonly onAccept: (fd: number, peer: Buffer) => void,
  ) {
    this.ownsFd = options.fd === undefined;
    this.fd = options.fd ?? createAndBind(options.address, options.port, options.backlog);
    this.mask = options.exclusive === true ? libc.EPOLLIN | libc.EPOLLEXCLUSIVE : libc.EPOLLIN;
    this.port = localAddress(this.fd)?.port ?? options.port;
    this.label = `listener ${formatHostPort(options.address, this.port)}`;
    this.acceptOnce = options.acceptOnce;
    this.acceptBudget = options.acceptOnce ? 1 : options.acceptBudget;
    this.maxOpen = options.maxConnections ?? 0;
    this.own = this.maxOpen > 0 ? new LimitEpisode(reactor, `${this.label}: `, this.maxOpen) : null;
    this.limit = options.limit ?? new ConnectionLimit(reactor, Infinity);
    this.limit.listeners.push(this);
    this.updateRegistration();
  }

  /** handle_server_socket_event: accept until EAGAIN (or the budget is spent). */
  handle(_events: number): void {
    const counters = this.reactor.counters;
    counters.listenerWakeups++;
    for (let i = 0; i < this.acceptBudget; i++) {
      this.peerLength.writeUInt32LE(SOCKADDR_MAX, 0);
      const fd = libc.accept4(this.fd, this.peer, this.peerLength, libc.SOCK_NONBLOCK | libc.SOCK_CLOEXEC);
      counters.acceptCalls++;
      if (trace.on) trace.line(2, `accept4(${this.fd}) = ${result(fd)}`);
      if (fd >= 0) {
        counters.accepts++;
        if (this.out && this.episodeCheck === null) this.checkEpisodeEnd();
        this.open++;
        this.limit.open++;
        this.onAccept(fd, this.peer);
        this.countChanged();
        if (!this.reactor.isRegistered(this)) return; // at a maxConnections
        continue;
      }
      const err = libc.errno();
      if (err === libc.EAGAIN) {
        // Woken for nothing: another worker took the connection (the thundering herd).
        if (i === 0) counters.emptyWakeups++;
        return;
      }
      if (err === libc.EMFILE || err === libc.ENFILE || err === libc.ENOBUFS || err === libc.ENOMEM) {
        this.backOff(err);
        return;
      }
      // ECONNABORTED, EPROTO, EINTR, EPERM (firewall): that one connection is
      // gone; the listener is fine. Anything else is logged and retried.
      if (err !== libc.ECONNABORTED && err !== libc.EINTR && err !== libc.EPROTO && err !== libc.EPERM) {
        logError(`accept: ${libc.errnoName(err)}`);
        return;
      }
    }
    // More may be waiting. Level-triggered epoll will say so again; edge
    // mode needs to be told to come back - unless this is the accept-once
    // experiment, which shows what happens when it is not.
    if (this.reactor.edge && !this.acceptOnce) this.reactor.defer(this, libc.EPOLLIN);
  }

  abort(error: unknown): void {
    logError(`listener: ${error instanceof Error ? error.message : String(error)}`);
  }

  /** One of its pairings has closed both sides. */
  released(): void {
    this.open--;
    this.limit.open--;
    this.countChanged();
  }

  /** In the epoll set unless a limit or an out-of-fds pause holds it out. */
  updateRegistration(): void {
    const wanted = !this.closed && this.pausedUntilRetry === null && !(this.own?.paused ?? false) && !this.limit.episode.paused;
    if (wanted === this.reactor.isRegistered(this)) return;
    if (wanted) this.reactor.add(this, this.mask);
    else this.reactor.remove(this, false);
  }

  private countChanged(): void {
    if (this.own !== null && this.own.change(this.open >= this.maxOpen)) this.updateRegistration();
    this.limit.update();
  }

  close(): void {
    this.closed = true;
    this.own?.cancel();
    this.limit.episode.cancel();
    if (this.pausedUntilRetry) this.pausedUntilRetry.cancel();
    if (this.episodeCheck) this.episodeCheck.cancel();
    const i = this.limit.listeners.indexOf(this);
    if (i >= 0) this.limit.listeners.splice(i, 1);
    // A socket the main thread owns stays open (a reload passes it on): only leave the epoll set.
    if (this.reactor.isRegistered(this)) this.reactor.remove(this, this.ownsFd);
    if (this.ownsFd) libc.close(this.fd);
  }

  /**
   * Out of fds: the pending connection stays in the backlog, so a level-
   * triggered listener would be reported again at once and spin the CPU.
   * Leave the epoll set for a moment instead, and say so once per episode.
   */
  private backOff(err: number): void {
    this.lastExhausted = performance.now();
    this.pausesInEpisode++;
    if (!this.out) {
      this.out = true;
      this.pausesInEpisode = 1;
      logError(`accept: ${libc.errnoName(err)} (out of file descriptors); pausing accepts for ${FD_EXHAUSTED_PAUSE_MS} ms at a time until some are free`);
    }
    this.pausedUntilRetry = this.reactor.after(FD_EXHAUSTED_PAUSE_MS, () => {
      this.pausedUntilRetry = null;
      this.updateRegistration();
    });
    this.updateRegistration();
  }

  /**
   * Accepting works again: end the episode once it has kept working for
   * EPISODE_QUIET_MS (checked by a timer, so the line comes even if no other
   * client arrives); an EMFILE meanwhile pushes the end further out.
   */
  private checkEpisodeEnd(): void {
    const quietFor = performance.now() - this.lastExhausted;
    if (quietFor < EPISODE_QUIET_MS) {
      this.episodeCheck = this.reactor.after(EPISODE_QUIET_MS - quietFor, () => {
        this.episodeCheck = null;
        this.checkEpisodeEnd();
      });
      return;
    }
    this.out = false;
    const pauses = this.pausesInEpisode;
    log(`Accepting connections again.${pauses > 1 ? ` (Out of file descriptors ${pauses} times in this episode.)` : ''}`);
  }
}
