// libc, bound directly with koffi. This file knows nothing of rsp: it is the
// list of system calls the proxy makes, their constants, and errno.
//
// Every function returns what the C function returns (-1 on failure); the
// caller reads errno() straight after a -1, before any other libc call.
// Buffers are passed as `void *`: koffi hands the C function a pointer into
// the Buffer's own memory, so nothing is copied and nothing is allocated.
import koffi from 'koffi';

const libc = koffi.load('libc.so.6');

type Fn<A extends unknown[]> = (...args: A) => number;
type Ptr = Buffer | null;

// --- sockets ---------------------------------------------------------------
export const socket: Fn<[domain: number, type: number, protocol: number]> = libc.func('int socket(int, int, int)');
export const bind: Fn<[fd: number, addr: Buffer, len: number]> = libc.func('int bind(int, const void *, uint32_t)');
export const listen: Fn<[fd: number, backlog: number]> = libc.func('int listen(int, int)');
export const accept4: Fn<[fd: number, addr: Ptr, len: Ptr, flags: number]> = libc.func('int accept4(int, void *, void *, int)');
export const connect: Fn<[fd: number, addr: Buffer, len: number]> = libc.func('int connect(int, const void *, uint32_t)');
export const socketpair: Fn<[domain: number, type: number, protocol: number, fds: Buffer]> = libc.func('int socketpair(int, int, int, void *)');
export const shutdown: Fn<[fd: number, how: number]> = libc.func('int shutdown(int, int)');
export const setsockopt: Fn<[fd: number, level: number, name: number, value: Buffer, len: number]> =
  libc.func('int setsockopt(int, int, int, const void *, uint32_t)');
export const getsockopt: Fn<[fd: number, level: number, name: number, value: Buffer, len: Buffer]> =
  libc.func('int getsockopt(int, int, int, void *, void *)');
export const getsockname: Fn<[fd: number, addr: Buffer, len: Buffer]> = libc.func('int getsockname(int, void *, void *)');
export const getpeername: Fn<[fd: number, addr: Buffer, len: Buffer]> = libc.func('int getpeername(int, void *, void *)');
export const inet_pton: Fn<[family: number, text: string, out: Buffer]> = libc.func('int inet_pton(int, const char *, void *)');
const inet_ntop_raw = libc.func('const char *inet_ntop(int, const void *, void *, uint32_t)');
export function inet_ntop(family: number, src: Buffer, out: Buffer): string | null {
  return inet_ntop_raw(family, src, out, out.length) as string | null;
}

// --- file descriptors ----------------------------------------------------
export const read: Fn<[fd: number, buf: Buffer, count: number]> = libc.func('long read(int, void *, unsigned long)');
export const write: Fn<[fd: number, buf: Buffer, count: number]> = libc.func('long write(int, const void *, unsigned long)');
export const close: Fn<[fd: number]> = libc.func('int close(int)');
export const dup: Fn<[fd: number]> = libc.func('int dup(int)');
const open_raw = libc.func('int open(const char *, int, ...)');
/** open(path, flags, mode): for log files (O_WRONLY | O_APPEND | O_CREAT). */
export function open(path: string, flags: number, mode = 0o644): number {
  return open_raw(path, flags, 'unsigned int', mode) as number;
}
export const recv: Fn<[fd: number, buf: Buffer, count: number, flags: number]> = libc.func('long recv(int, void *, unsigned long, int)');
export const send: Fn<[fd: number, buf: Buffer, count: number, flags: number]> = libc.func('long send(int, const void *, unsigned long, int)');
const ioctl_raw = libc.func('int ioctl(int, unsigned long, ...)');
/** ioctl(fd, request, &int): for the requests that fill in one int (SIOCOUTQ, SIOCATMARK, FIONREAD). */
export function ioctlInt(fd: number, request: number, out: Buffer): number {
  return ioctl_raw(fd, request, 'void *', out) as number;
}
const fcntl_raw = libc.func('int fcntl(int, int, ...)');
export function fcntl(fd: number, cmd: number, arg = 0): number {
  return fcntl_raw(fd, cmd, 'int', arg) as number;
}
/** struct rlimit { rlim_t cur, max } as two uint64 in a 16-byte Buffer. */
export const getrlimit: Fn<[resource: number, rlim: Buffer]> = libc.func('int getrlimit(int, void *)');
export const setrlimit: Fn<[resource: number, rlim: Buffer]> = libc.func('int setrlimit(int, const void *)');
export const RLIMIT_NOFILE = 7;
const prctl_raw = libc.func('int prctl(int, ...)');
export const PR_SET_PDEATHSIG = 1;
export const SIGTERM = 15;
/** prctl(PR_SET_PDEATHSIG, sig): the kernel sends `sig` when the parent exits. */
export function setParentDeathSignal(sig: number): number {
  return prctl_raw(PR_SET_PDEATHSIG, 'unsigned long', sig) as number;
}
export const PR_SET_NAME = 15;
/** prctl(PR_SET_NAME, name): the calling thread's name (15 bytes at most), as top -H, ps -L and /proc/PID/task/TID/comm show it. */
export function setThreadName(name: string): number {
  return prctl_raw(PR_SET_NAME, 'const char *', name.slice(0, 15)) as number;
}
export const eventfd: Fn<[initval: number, flags: number]> = libc.func('int eventfd(unsigned int, int)');
/** The address as an integer (from /proc/self/maps), not a Buffer: it names pages rsp never allocated. */
export const madvise: Fn<[addr: bigint, length: bigint, advice: number]> = libc.func('int madvise(uintptr_t, size_t, int)');
export const MADV_DONTNEED = 4;
/** glibc: gives the free memory of every malloc arena back to the kernel; 1 if some was. */
export const malloc_trim: Fn<[pad: number]> = libc.func('int malloc_trim(size_t)');

// --- pipes and splice (zero copy) -----------------------------------------
/** pipe2(fds, flags): fds is an 8-byte Buffer, [read end, write end] as two int32. */
export const pipe2: Fn<[fds: Buffer, flags: number]> = libc.func('int pipe2(void *, int)');
/**
 * splice(fd_in, NULL, fd_out, NULL, len, flags): moves bytes between a pipe
 * and another fd inside the kernel (one of the two must be a pipe). The
 * offsets are always NULL here: sockets and pipes have none.
 */
const splice_raw = libc.func('long splice(int, void *, int, void *, unsigned long, unsigned int)');
export function splice(fdIn: number, fdOut: number, length: number, flags: number): number {
  return splice_raw(fdIn, null, fdOut, null, length, flags) as number;
}
/** Move pages instead of copying where the kernel can (a hint). */
export const SPLICE_F_MOVE = 1;
/** Do not block on the pipe (the sockets are non-blocking on their own). */
export const SPLICE_F_NONBLOCK = 2;
/** More data will follow (as MSG_MORE): lets TCP wait to fill a segment. */
export const SPLICE_F_MORE = 4;
/** fcntl on a pipe: set / get its capacity in bytes (bounded by /proc/sys/fs/pipe-max-size). */
export const F_SETPIPE_SZ = 1031;
export const F_GETPIPE_SZ = 1032;

// --- epoll -----------------------------------------------------------------
export const epoll_create1: Fn<[flags: number]> = libc.func('int epoll_create1(int)');
export const epoll_ctl: Fn<[epfd: number, op: number, fd: number, event: Buffer | null]> =
  libc.func('int epoll_ctl(int, int, int, void *)');
export const epoll_wait: Fn<[epfd: number, events: Buffer, maxevents: number, timeout: number]> =
  libc.func('int epoll_wait(int, void *, int, int)');

/** errno of the last failed call on this thread. */
export function errno(): number {
  return koffi.errno();
}

// --- constants (Linux, same on x86_64 and aarch64) -------------------------
export const AF_UNIX = 1;
export const AF_INET = 2;
export const AF_INET6 = 10;
export const SOCK_STREAM = 1;
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;
export const SOL_SOCKET = 1;
export const SO_REUSEADDR = 2;
export const SO_ERROR = 4;
export const SO_SNDBUF = 7;
export const SO_RCVBUF = 8;
export const SO_OOBINLINE = 10;
export const SO_LINGER = 13;
export const SO_REUSEPORT = 15;
export const MSG_OOB = 1;
export const MSG_PEEK = 2;
/** Bytes in a socket's send queue not yet acknowledged by the peer (TIOCOUTQ). */
export const SIOCOUTQ = 0x5411;
/** Bytes waiting to be read (TIOCINQ / FIONREAD). */
export const SIOCINQ = 0x541b;
/** 1 when the next byte to read is the urgent mark. */
export const SIOCATMARK = 0x8905;
export const IPPROTO_TCP = 6;
export const IPPROTO_IPV6 = 41;
export const TCP_NODELAY = 1;
export const IPV6_V6ONLY = 26;
export const SHUT_RD = 0;
export const SHUT_WR = 1;
export const F_GETFL = 3;
export const F_SETFL = 4;
export const O_NONBLOCK = 0o4000;
export const O_WRONLY = 0o1;
export const O_CREAT = 0o100;
export const O_APPEND = 0o2000;
export const O_CLOEXEC = 0o2000000;
export const EFD_NONBLOCK = 0o4000;
export const EFD_CLOEXEC = 0o2000000;

export const EPOLL_CLOEXEC = 0o2000000;
export const EPOLL_CTL_ADD = 1;
export const EPOLL_CTL_DEL = 2;
export const EPOLL_CTL_MOD = 3;
export const EPOLLIN = 0x001;
export const EPOLLPRI = 0x002;
export const EPOLLOUT = 0x004;
export const EPOLLERR = 0x008;
export const EPOLLHUP = 0x010;
export const EPOLLRDHUP = 0x2000;
export const EPOLLEXCLUSIVE = 1 << 28;
export const EPOLLONESHOT = 1 << 30;
export const EPOLLET = 1 << 31; // negative as an int32: use `>>> 0` when printing

// --- errno -----------------------------------------------------------------
const codes = koffi.os.errno as Record<string, number>;
export const EAGAIN: number = codes.EAGAIN;
export const EINTR: number = codes.EINTR;
export const EINPROGRESS: number = codes.EINPROGRESS;
export const ECONNRESET: number = codes.ECONNRESET;
export const ECONNREFUSED: number = codes.ECONNREFUSED;
export const ECONNABORTED: number = codes.ECONNABORTED;
export const EPIPE: number = codes.EPIPE;
export const EMFILE: number = codes.EMFILE;
export const ENFILE: number = codes.ENFILE;
export const ENOBUFS: number = codes.ENOBUFS;
export const ENOMEM: number = codes.ENOMEM;
export const EPROTO: number = codes.EPROTO;
export const EPERM: number = codes.EPERM;
export const ETIMEDOUT: number = codes.ETIMEDOUT;
export const EBADF: number = codes.EBADF;
export const ENOTCONN: number = codes.ENOTCONN;

const names: string[] = [];
for (const [name, code] of Object.entries(codes)) {
  // EAGAIN and EWOULDBLOCK share a number: keep the first, most familiar name.
  if (names[code] === undefined) names[code] = name;
}
names[codes.EAGAIN] = 'EAGAIN';

/** The symbolic name of an errno value, e.g. 104 -> "ECONNRESET". */
export function errnoName(code: number): string {
  return names[code] ?? `errno ${code}`;
}

/** A failed system call: `socket: EMFILE`. `code` is the errno name, as in Node's own errors. */
export class SysError extends Error {
  readonly code: string;
  readonly errno: number;
  readonly syscall: string;
  constructor(syscall: string, errnum: number, detail?: string) {
    super(`${syscall}${detail ? ` ${detail}` : ''}: ${errnoName(errnum)}`);
    this.name = 'SysError';
    this.code = errnoName(errnum);
    this.errno = errnum;
    this.syscall = syscall;
  }
}

/** Throw a SysError when a setup-time call failed; returns the result otherwise. */
export function check(syscall: string, result: number, detail?: string): number {
  if (result < 0) throw new SysError(syscall, errno(), detail);
  return result;
}
