// Raw-socket helpers for tests that need what Node's net module cannot do:
// urgent data (MSG_OOB) and looking at a socket's send queue.
import type * as net from 'node:net';
import * as libc from '../ffi/libc';
import { toSockaddr } from '../ffi/sockaddr';

/** The kernel fd under a connected net.Socket (Linux: the libuv handle's fd). */
export function fdOf(socket: net.Socket): number {
  return (socket as unknown as { _handle: { fd: number } })._handle.fd;
}

/** Send one byte as TCP urgent data, on a socket Node is not writing to right now. */
export function sendUrgent(socket: net.Socket, byte = '!'): void {
  const n = libc.send(fdOf(socket), Buffer.from(byte), 1, libc.MSG_OOB);
  if (n !== 1) throw new libc.SysError('send(MSG_OOB)', libc.errno());
}

const ioctlValue = Buffer.alloc(4);

/** Bytes written on `socket` that its peer's kernel has not acknowledged yet (SIOCOUTQ). */
export function unacknowledged(socket: net.Socket): number {
  if (libc.ioctlInt(fdOf(socket), libc.SIOCOUTQ, ioctlValue) < 0) throw new libc.SysError('ioctl(SIOCOUTQ)', libc.errno());
  return ioctlValue.readInt32LE(0);
}

/** Wait until the peer's kernel has acknowledged every byte written on `socket`. */
export async function acknowledged(socket: net.Socket, limitMs = 10000): Promise<void> {
  await new Promise<void>((resolve) => (socket.writableLength === 0 ? resolve() : socket.once('drain', () => resolve())));
  for (let waited = 0; unacknowledged(socket) > 0; waited += 5) {
    if (waited > limitMs) throw new Error(`${unacknowledged(socket)} bytes still unacknowledged after ${limitMs} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export interface Received {
  bytes: Buffer;
  /** "end" for an orderly end (read() returned 0), or the errno name (ECONNRESET). */
  how: string;
}

/**
 * Read a non-blocking fd with read(2) until the end or an error, and close
 * it. Node's own sockets cannot be trusted to tell a reset from an orderly
 * end: libuv takes a short read together with EPOLLHUP as EOF, and a reset
 * raises EPOLLHUP too. `holdMs`: read nothing for that long first; `gapMs`:
 * pause that long after each read (a slow reader).
 */
export async function readFd(fd: number, opts: { limitMs?: number; hold?: Promise<unknown>; gapMs?: number } = {}): Promise<Received> {
  const limitMs = opts.limitMs ?? 20000;
  const buf = Buffer.allocUnsafe(65536);
  const chunks: Buffer[] = [];
  const start = Date.now();
  if (opts.hold !== undefined) await opts.hold;
  try {
    for (;;) {
      const n = libc.read(fd, buf, buf.length);
      if (n > 0) {
        chunks.push(Buffer.from(buf.subarray(0, n)));
        if (opts.gapMs) await new Promise((r) => setTimeout(r, opts.gapMs));
        continue;
      }
      if (n === 0) return { bytes: Buffer.concat(chunks), how: 'end' };
      const err = libc.errno();
      if (err !== libc.EAGAIN && err !== libc.EINTR) return { bytes: Buffer.concat(chunks), how: libc.errnoName(err) };
      if (Date.now() - start > limitMs) throw new Error(`no end within ${limitMs} ms after ${Buffer.concat(chunks).length} bytes`);
      await new Promise((r) => setTimeout(r, 1));
    }
  } finally {
    libc.close(fd);
  }
}

/** A non-blocking TCP client socket connecting to 127.0.0.1:port, as a raw fd. */
export function connectFd(port: number, opts: { receiveBuffer?: number } = {}): number {
  const fd = libc.check('socket', libc.socket(libc.AF_INET, libc.SOCK_STREAM | libc.SOCK_NONBLOCK | libc.SOCK_CLOEXEC, 0));
  if (opts.receiveBuffer !== undefined) {
    // Before connect(): the window it advertises stays small, so the kernel holds little for a slow reader.
    const size = Buffer.alloc(4);
    size.writeInt32LE(opts.receiveBuffer, 0);
    libc.check('setsockopt(SO_RCVBUF)', libc.setsockopt(fd, libc.SOL_SOCKET, libc.SO_RCVBUF, size, 4));
  }
  const sa = toSockaddr('127.0.0.1', port);
  if (libc.connect(fd, sa, sa.length) < 0 && libc.errno() !== libc.EINPROGRESS) {
    const err = libc.errno();
    libc.close(fd);
    throw new libc.SysError('connect', err);
  }
  return fd;
}

/** Write all of `data` to a non-blocking fd (waiting out EAGAIN), or fail after `limitMs`. */
export async function writeFd(fd: number, data: Buffer, limitMs = 20000): Promise<void> {
  const start = Date.now();
  for (let off = 0; off < data.length; ) {
    const n = libc.write(fd, data.subarray(off), data.length - off);
    if (n > 0) {
      off += n;
      continue;
    }
    const err = libc.errno();
    if (n < 0 && err !== libc.EAGAIN && err !== libc.EINTR && err !== libc.ENOTCONN) throw new libc.SysError('write', err);
    if (Date.now() - start > limitMs) throw new Error(`write stalled after ${off} of ${data.length} bytes`);
    await new Promise((r) => setTimeout(r, 1));
  }
}

/**
 * Take a Node socket's fd over for raw reading. The socket must come from a
 * server created with `pauseOnConnect: true`, so that Node has read nothing;
 * its handle stays open until the test's teardown destroys it.
 */
export function takeOver(socket: net.Socket): number {
  return libc.check('dup', libc.dup(fdOf(socket)));
}


/** Wait until a byte has arrived on a raw fd (MSG_PEEK: it stays there for the reader). */
export async function firstByte(fd: number, limitMs = 10000): Promise<void> {
  const one = Buffer.alloc(1);
  const start = Date.now();
  while (libc.recv(fd, one, 1, libc.MSG_PEEK) !== 1) {
    if (Date.now() - start > limitMs) throw new Error(`no byte within ${limitMs} ms`);
    await new Promise((r) => setTimeout(r, 1));
  }
}
