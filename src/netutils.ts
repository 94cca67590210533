// netutils.c: small socket helpers shared by the listener and the proxy.
import * as libc from '../ffi/libc';
import { familyOf, fromSockaddr, formatAddress, SOCKADDR_MAX, type SocketAddress } from '../ffi/sockaddr';

const one = Buffer.alloc(4);
one.writeInt32LE(1, 0);

/** make_socket_non_blocking: for an fd that did not get SOCK_NONBLOCK at birth. */
export function makeSocketNonBlocking(fd: number): void {
  const flags = libc.check('fcntl(F_GETFL)', libc.fcntl(fd, libc.F_GETFL));
  libc.check('fcntl(F_SETFL)', libc.fcntl(fd, libc.F_SETFL, flags | libc.O_NONBLOCK));
}

export function setFlag(fd: number, level: number, option: number, name: string): void {
  libc.check(`setsockopt(${name})`, libc.setsockopt(fd, level, option, one, 4));
}

/** Send small writes at once instead of waiting for the previous segment's ACK (Nagle). */
export function setNoDelay(fd: number): boolean {
  return libc.setsockopt(fd, libc.IPPROTO_TCP, libc.TCP_NODELAY, one, 4) === 0;
}

const addressBuffer = Buffer.alloc(SOCKADDR_MAX);
const addressLength = Buffer.alloc(4);

function askAddress(fd: number, peer: boolean): SocketAddress | null {
  addressLength.writeUInt32LE(SOCKADDR_MAX, 0);
  const r = peer ? libc.getpeername(fd, addressBuffer, addressLength) : libc.getsockname(fd, addressBuffer, addressLength);
  if (r < 0) return null;
  try {
    return fromSockaddr(addressBuffer);
  } catch {
    return null;
  }
}

export function localAddress(fd: number): SocketAddress | null {
  return askAddress(fd, false);
}

/** getsockname's sockaddr itself (a copy), or null. */
export function localSockaddr(fd: number): Buffer | null {
  addressLength.writeUInt32LE(SOCKADDR_MAX, 0);
  if (libc.getsockname(fd, addressBuffer, addressLength) < 0) return null;
  return Buffer.from(addressBuffer.subarray(0, Math.min(addressLength.readUInt32LE(0), SOCKADDR_MAX)));
}

/** "127.0.0.1:53122", or "fd 9" if the peer is already gone. */
export function describePeer(fd: number): string {
  const a = askAddress(fd, true);
  return a ? formatAddress(a) : `fd ${fd}`;
}

/** A started non-blocking connect(): `inProgress` until EPOLLOUT says how it went. */
export interface StartedConnect {
  fd: number;
  inProgress: boolean;
}

/**
 * connect_to_backend, non-blocking: socket(), connect(), and either it is
 * done (loopback often is) or EINPROGRESS. Throws SysError for an immediate failure.
 */
export function startConnect(sockaddr: Buffer): StartedConnect {
  const fd = libc.socket(familyOf(sockaddr), libc.SOCK_STREAM | libc.SOCK_NONBLOCK | libc.SOCK_CLOEXEC, 0);
  if (fd < 0) throw new libc.SysError('socket', libc.errno());
  setNoDelay(fd);
  if (libc.connect(fd, sockaddr, sockaddr.length) === 0) return { fd, inProgress: false };
  const err = libc.errno();
  if (err === libc.EINPROGRESS || err === libc.EINTR) return { fd, inProgress: true };
  libc.close(fd);
  throw new libc.SysError('connect', err);
}
