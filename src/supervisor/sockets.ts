// The listening sockets, owned by the main thread. The workers accept on them
// and register them in their epoll sets, but never open or close them, so
// that a reload can hand a socket whose address did not change to the new
// config without a moment in which nothing listens on it (a connection that
// arrives meanwhile waits in the backlog). fds are process-wide: a number
// opened here is valid in every worker thread.
//
// acceptMode "reuseport": one socket per worker on each address, bound with
// SO_REUSEPORT (the kernel spreads connections over them by a hash of the
// client's address and port). "shared" and "shared-herd": one socket that
// every worker registers (with EPOLLEXCLUSIVE, or without it for the lab).
import * as libc from '../../ffi/libc';
import { formatHostPort } from '../../ffi/sockaddr';
import type { Config, ListenerConfig } from '../config';
import { createAndBind } from '../listener';
import { localAddress } from '../netutils';

export interface ListenSocket {
  address: string;
  /** As the config says (0: any free port). */
  configPort: number;
  /** As bound. */
  port: number;
  /** One per worker ("reuseport" with several workers), or one for all. */
  fds: number[];
}

/** The sockets a config's listeners need: those kept from before, and those opened for it. */
export interface SocketPlan {
  /** In the order of config.listeners. */
  sockets: ListenSocket[];
  opened: ListenSocket[];
  /** Open now, not wanted by the config: closed once the workers have let go of them. */
  removed: ListenSocket[];
}

export class ListenSockets {
  private current: ListenSocket[] = [];

  constructor(
    private readonly workers: number,
    private readonly acceptMode: Config['acceptMode'],
    private readonly backlog: number,
  ) {}

  /** Which socket each worker accepts on for each listener of the config (the same fd for all, when shared). */
  fdsFor(worker: number, sockets: ListenSocket[]): number[] {
    return sockets.map((s) => s.fds[s.fds.length === 1 ? 0 : worker]);
  }

  /**
   * The sockets for `listeners`: an open one with the same address and port
   * is kept (a port-0 listener keeps the port it got), the others are opened.
   * On a bind error whatever it opened is closed again and the error thrown.
   */
  plan(listeners: ListenerConfig[]): SocketPlan {
    const unused = [...this.current];
    const sockets: ListenSocket[] = [];
    const opened: ListenSocket[] = [];
    try {
      for (const l of listeners) {
        const i = unused.findIndex((s) => s.address === l.address && s.configPort === l.port);
        if (i >= 0) {
          sockets.push(unused.splice(i, 1)[0]);
          continue;
        }
        const socket = this.open(l.address, l.port);
        opened.push(socket);
        sockets.push(socket);
      }
    } catch (error) {
      for (const s of opened) close(s);
      throw error;
    }
    return { sockets, opened, removed: unused };
  }

  /** The plan is now what the workers use. */
  commit(plan: SocketPlan): void {
    this.current = plan.sockets;
  }

  /** Close sockets no worker has in its epoll set any more. */
  static close(sockets: ListenSocket[]): void {
    for (const s of sockets) close(s);
  }

  closeAll(): void {
    for (const s of this.current) close(s);
    this.current = [];
  }

  private open(address: string, port: number): ListenSocket {
    const count = this.acceptMode === 'reuseport' ? this.workers : 1;
    const reusePort = count > 1;
    const fds: number[] = [];
    let bound = port;
    try {
      for (let w = 0; w < count; w++) {
        let fd: number;
        try {
          fd = createAndBind(address, bound, this.backlog, reusePort);
        } catch (error) {
          if (error instanceof libc.SysError && error.syscall === 'bind') throw new Error(`Could not listen on ${formatHostPort(address, bound)}: ${error.code}`);
          throw error;
        }
        fds.push(fd);
        // Port 0: the first socket picks the port, the others of the group join it.
        if (w === 0) bound = localAddress(fd)?.port ?? port;
      }
    } catch (error) {
      for (const fd of fds) libc.close(fd);
      throw error;
    }
    return { address, configPort: port, port: bound, fds };
  }
}

function close(s: ListenSocket): void {
  for (const fd of s.fds) libc.close(fd);
  s.fds = [];
}
