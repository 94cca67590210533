// ffi/: struct layouts and system calls, checked against the real kernel.
import test from 'ava';
import koffi from 'koffi';
import * as libc from '../ffi/libc';
import { EpollEventType, EPOLL_DATA_OFFSET, EPOLL_EVENT_SIZE, writeEpollEvent } from '../ffi/epoll_event';
import { fromSockaddr, toSockaddr, SOCKADDR_IN_SIZE, SOCKADDR_IN6_SIZE, SOCKADDR_MAX } from '../ffi/sockaddr';
import { localAddress, makeSocketNonBlocking } from '../src/netutils';

test('struct epoll_event is 12 bytes packed on x86_64 and 16 bytes elsewhere', (t) => {
  const expected = process.arch === 'x64' ? { size: 12, data: 4 } : { size: 16, data: 8 };
  t.is(EPOLL_EVENT_SIZE, expected.size);
  t.is(EPOLL_DATA_OFFSET, expected.data);
  t.is(koffi.sizeof(EpollEventType), expected.size);
  t.is(koffi.offsetof(EpollEventType, 'data'), expected.data);
});

test('epoll_wait fills events at the layout we read them with', (t) => {
  const epfd = libc.check('epoll_create1', libc.epoll_create1(libc.EPOLL_CLOEXEC));
  const a = libc.check('eventfd', libc.eventfd(0, libc.EFD_NONBLOCK | libc.EFD_CLOEXEC));
  const b = libc.check('eventfd', libc.eventfd(0, libc.EFD_NONBLOCK | libc.EFD_CLOEXEC));
  const ev = Buffer.alloc(EPOLL_EVENT_SIZE);
  writeEpollEvent(ev, 0, libc.EPOLLIN, a, 0xdeadbeef);
  t.is(libc.epoll_ctl(epfd, libc.EPOLL_CTL_ADD, a, ev), 0);
  writeEpollEvent(ev, 0, libc.EPOLLIN | libc.EPOLLOUT, b, 7);
  t.is(libc.epoll_ctl(epfd, libc.EPOLL_CTL_ADD, b, ev), 0);
  const one = Buffer.alloc(8);
  one.writeBigUInt64LE(1n);
  t.is(libc.write(a, one, 8), 8);
  const events = Buffer.alloc(EPOLL_EVENT_SIZE * 4);
  const n = libc.epoll_wait(epfd, events, 4, 1000);
  t.is(n, 2);
  const seen = new Map<number, [number, number]>();
  for (let i = 0; i < n; i++) {
    const base = i * EPOLL_EVENT_SIZE;
    seen.set(events.readUInt32LE(base + EPOLL_DATA_OFFSET), [events.readUInt32LE(base), events.readUInt32LE(base + EPOLL_DATA_OFFSET + 4)]);
  }
  t.deepEqual(seen.get(a), [libc.EPOLLIN, 0xdeadbeef]);
  t.deepEqual(seen.get(b), [libc.EPOLLOUT, 7]);
  [a, b, epfd].forEach((fd) => libc.close(fd));
});

function boundAddress(address: string): { family: number; address: string; port: number } {
  const sa = toSockaddr(address, 0);
  const fd = libc.check('socket', libc.socket(sa.readUInt16LE(0), libc.SOCK_STREAM | libc.SOCK_CLOEXEC, 0));
  try {
    libc.check('bind', libc.bind(fd, sa, sa.length));
    const out = Buffer.alloc(SOCKADDR_MAX);
    const len = Buffer.alloc(4);
    len.writeUInt32LE(SOCKADDR_MAX);
    libc.check('getsockname', libc.getsockname(fd, out, len));
    return { ...fromSockaddr(out), family: out.readUInt16LE(0) };
  } finally {
    libc.close(fd);
  }
}

test('sockaddr_in round trip through bind and getsockname', (t) => {
  const sa = toSockaddr('127.0.0.1', 8080);
  t.is(sa.length, SOCKADDR_IN_SIZE);
  t.deepEqual([...sa.subarray(0, 8)], [2, 0, 0x1f, 0x90, 127, 0, 0, 1]);
  t.deepEqual(fromSockaddr(sa), { family: 4, address: '127.0.0.1', port: 8080 });
  const bound = boundAddress('127.0.0.1');
  t.is(bound.family, libc.AF_INET);
  t.is(bound.address, '127.0.0.1');
  t.true(bound.port > 0);
});

test('sockaddr_in6 round trip through bind and getsockname', (t) => {
  const sa = toSockaddr('::1', 443);
  t.is(sa.length, SOCKADDR_IN6_SIZE);
  t.is(sa.readUInt16LE(0), libc.AF_INET6);
  t.is(sa.readUInt16BE(2), 443);
  t.is(sa[23], 1);
  t.deepEqual(fromSockaddr(sa), { family: 6, address: '::1', port: 443 });
  t.deepEqual(fromSockaddr(toSockaddr('[2001:db8::a:b]', 1)), { family: 6, address: '2001:db8::a:b', port: 1 });
  const bound = boundAddress('::1');
  t.is(bound.family, libc.AF_INET6);
  t.is(bound.address, '::1');
});

test('sockaddr rejects what is not an IP literal', (t) => {
  t.throws(() => toSockaddr('localhost', 80), { message: /not an IP address/ });
  t.throws(() => toSockaddr('127.0.0.1', 70000), { message: /invalid port/ });
});

test('errors carry the errno name', (t) => {
  // A port held by a bound socket that does not listen: refused, whatever else runs here.
  const holder = libc.check('socket', libc.socket(libc.AF_INET, libc.SOCK_STREAM | libc.SOCK_CLOEXEC, 0));
  const any = toSockaddr('127.0.0.1', 0);
  libc.check('bind', libc.bind(holder, any, any.length));
  const fd = libc.socket(libc.AF_INET, libc.SOCK_STREAM, 0);
  const sa = toSockaddr('127.0.0.1', localAddress(holder)!.port);
  t.is(libc.connect(fd, sa, sa.length), -1);
  const err = new libc.SysError('connect', libc.errno());
  t.is(err.code, 'ECONNREFUSED');
  t.is(err.message, 'connect: ECONNREFUSED');
  libc.close(fd);
  libc.close(holder);
  t.is(libc.errnoName(libc.EAGAIN), 'EAGAIN');
  t.is(libc.close(-1), -1);
  t.is(libc.errnoName(libc.errno()), 'EBADF');
});

test('make_socket_non_blocking sets O_NONBLOCK through fcntl', (t) => {
  const fd = libc.check('socket', libc.socket(libc.AF_INET, libc.SOCK_STREAM, 0));
  t.is(libc.fcntl(fd, libc.F_GETFL) & libc.O_NONBLOCK, 0);
  makeSocketNonBlocking(fd);
  t.not(libc.fcntl(fd, libc.F_GETFL) & libc.O_NONBLOCK, 0);
  libc.close(fd);
});
