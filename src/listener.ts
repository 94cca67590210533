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
 * create_and_bind + listen. The address is an IP literal (the config resolved
 * names already); "::" listens on IPv6 and IPv4 both.
 */
export function createAndBind(address: string, port: number, backlog: number): number {
  const sockaddr = toSockaddr(address, port);
  const family = familyOf(sockaddr);
  const fd = libc.check('socket', libc.socket(family, libc.SOCK_STREAM | libc.SOCK_NONBLOCK | libc.SOCK_CLOEXEC, 0));
  try {
    setFlag(fd, libc.SOL_SOCKET, libc.SO_REUSEADDR, 'SO_REUSEADDR');
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
  // accept4 fills these in: the client's address, for balance = "hash" and logs.
  private readonly peer = Buffer.alloc(SOCKADDR_MAX);
  private readonly peerLength = Buffer.alloc(4);

  constructor(
    private readonly reactor: Reactor,
    options: ListenerOptions,
    /** Called with each accepted, non-blocking fd and the client's sockaddr (valid during the call only). */
    private readonly onAccept: (fd: number, peer: Buffer) => void,
  ) {
    this.fd = createAndBind(options.address, options.port, options.backlog);
    this.port = localAddress(this.fd)?.port ?? options.port;
    this.label = `listener ${formatHostPort(options.address, this.port)}`;
    this.acceptOnce = options.acceptOnce;
    this.acceptBudget = options.acceptOnce ? 1 : options.acceptBudget;
    reactor.add(this, libc.EPOLLIN);
  }

  /** handle_server_socket_event: accept until EAGAIN (or the budget is spent). */
  handle(_events: number): void {
    const counters = this.reactor.counters;
    for (let i = 0; i < this.acceptBudget; i++) {
      this.peerLength.writeUInt32LE(SOCKADDR_MAX, 0);
      const fd = libc.accept4(this.fd, this.peer, this.peerLength, libc.SOCK_NONBLOCK | libc.SOCK_CLOEXEC);
      counters.acceptCalls++;
      if (trace.on) trace.line(2, `accept4(${this.fd}) = ${result(fd)}`);
      if (fd >= 0) {
        counters.accepts++;
        if (this.out && this.episodeCheck === null) this.checkEpisodeEnd();
        this.onAccept(fd, this.peer);
        continue;
      }
      const err = libc.errno();
      if (err === libc.EAGAIN) return;
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

  close(): void {
    if (this.pausedUntilRetry) this.pausedUntilRetry.cancel();
    if (this.episodeCheck) this.episodeCheck.cancel();
    if (this.reactor.isRegistered(this)) this.reactor.remove(this, true);
    libc.close(this.fd);
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
    this.reactor.remove(this, false);
    this.pausedUntilRetry = this.reactor.after(FD_EXHAUSTED_PAUSE_MS, () => {
      this.pausedUntilRetry = null;
      this.reactor.add(this, libc.EPOLLIN);
    });
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
