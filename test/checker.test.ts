// Active health checks on a real Reactor, driven by turn() from the test,
// against real loopback listeners: TCP checks follow a listener closing and
// reopening, HTTP checks follow the status a backend answers.
import test, { type ExecutionContext } from 'ava';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as libc from '../ffi/libc';
import { toSockaddr } from '../ffi/sockaddr';
import { HealthChecker, type CheckOptions } from '../src/balancer/checker';
import { DOWN, UP } from '../src/balancer/member';
import { Pool } from '../src/balancer/pool';
import { setLogSink } from '../src/log';
import { localAddress, setFlag } from '../src/netutils';
import { Reactor } from '../src/reactor';
import { MODES, type Mode } from './helpers';

const lines: string[] = [];
setLogSink((_level, line) => lines.push(line.replace(/^\[[^\]]+\] /, '')));

/** The log lines of one pool (each test has its own pool name). */
function poolLines(name: string): string[] {
  return lines.filter((l) => l.startsWith(`Backend ${name} `));
}

/** Turn the reactor, letting Node's own loop (the test's servers) run in between, until `done()`. */
async function until(reactor: Reactor, done: () => boolean, what: string, each: () => void = () => {}, limitMs = 30000): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    each();
    reactor.turn(2);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** Each test server's open connections (as the server sees them). */
const connections = new WeakMap<net.Server, Set<net.Socket>>();

/** A listener on 127.0.0.1 that tracks its connections; closed (and they destroyed) when the test ends. */
function listenOn(t: ExecutionContext, server: net.Server, port = 0, host = '127.0.0.1'): Promise<number> {
  const open = new Set<net.Socket>();
  connections.set(server, open);
  server.on('connection', (s) => {
    open.add(s);
    s.on('close', () => open.delete(s));
    s.on('error', () => {}); // a probe may reset it
  });
  t.teardown(() => {
    for (const s of open) s.destroy();
    server.close();
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve((server.address() as net.AddressInfo).port));
  });
}

/** A raw socket of a test: closed by close(), or at teardown if still open. */
interface RawSocket {
  fd: number;
  close(): void;
}

/**
 * A TCP socket bound to 127.0.0.1:port (0: any), not listening yet: connects
 * to it are refused, and no other process can take the port meanwhile.
 * SO_REUSEPORT lets a second one be bound to the port of a listening first.
 */
function boundSocket(t: ExecutionContext, port: number, reusePort: boolean): RawSocket {
  const fd = libc.check('socket', libc.socket(libc.AF_INET, libc.SOCK_STREAM | libc.SOCK_NONBLOCK | libc.SOCK_CLOEXEC, 0));
  let open = true;
  const sock = {
    fd,
    close(): void {
      if (!open) return;
      open = false;
      libc.check('close', libc.close(fd));
    },
  };
  t.teardown(() => sock.close());
  if (reusePort) setFlag(fd, libc.SOL_SOCKET, libc.SO_REUSEPORT, 'SO_REUSEPORT');
  const sa = toSockaddr('127.0.0.1', port);
  libc.check('bind', libc.bind(fd, sa, sa.length));
  return sock;
}

/** Accept and close whatever connections wait on listening socket `fd` (the probes'). */
function drain(fd: number): void {
  for (let i = 0; i < 64; i++) {
    const c = libc.accept4(fd, null, null, libc.SOCK_CLOEXEC);
    if (c < 0) return; // EAGAIN: none left (or not listening any more)
    libc.close(c);
  }
}

/**
 * Like until(), but a new round starts as soon as the last one is over
 * (checkNow): for HTTP checks, whose server runs on this thread's event loop
 * between turns, with a timeout long enough that no stall of this process
 * can pass for a dead server.
 */
async function roundsUntil(reactor: Reactor, checker: HealthChecker, done: () => boolean, what: string): Promise<void> {
  await until(reactor, done, what, () => {
    if (checker.inFlight === 0) checker.checkNow();
  });
}

/** Checks driven by roundsUntil(): the timer would start a round only after a minute. */
const DRIVEN = { interval: 60000, timeout: 10000 };

function setupChecker(t: ExecutionContext, mode: Mode, name: string, ports: number[], check: CheckOptions): { reactor: Reactor; pool: Pool; checker: HealthChecker } {
  const reactor = new Reactor({ triggerMode: mode, maxEvents: 64 });
  const pool = new Pool({
    name,
    members: ports.map((port) => ({ name: `127.0.0.1:${port}`, sockaddr: toSockaddr('127.0.0.1', port) })),
    clock: reactor,
  });
  const checker = new HealthChecker(reactor, pool, check);
  t.teardown(() => {
    checker.stop();
    reactor.close();
  });
  checker.start();
  return { reactor, pool, checker };
}

for (const mode of MODES) {
  test(`a TCP check marks a member down when its listener closes and up when it listens again (${mode})`, async (t) => {
    // Raw sockets, so the port stays ours throughout: first listener, then a
    // second bound beside it (SO_REUSEPORT) that takes over once the first is
    // closed, refusing connects until it listens in turn.
    const first = boundSocket(t, 0, true);
    libc.check('listen', libc.listen(first.fd, 64));
    const port = localAddress(first.fd)!.port;
    const name = `tcp-${mode}`;
    const { reactor, pool, checker } = setupChecker(t, mode, name, [port], { interval: 100, timeout: 100, rise: 2, fall: 2 });
    const m = pool.members[0];
    await until(reactor, () => m.checkSuccesses >= 3, 'three passed checks', () => drain(first.fd));
    t.is(m.state, UP);
    t.is(m.lastCheck, 'ok');

    const second = boundSocket(t, port, true);
    first.close();
    await until(reactor, () => m.state === DOWN, 'the member to go down');
    t.is(m.lastCheck, 'connection refused');
    t.is(m.checkFailures, 2, 'down after `fall` failures, not before');

    libc.check('listen', libc.listen(second.fd, 64));
    await until(reactor, () => m.state === UP, 'the member to come back', () => drain(second.fd));
    t.is(m.checkSuccesses, 2, 'up after `rise` successes, not before');
    t.deepEqual(poolLines(name), [
      `Backend ${name} member 127.0.0.1:${port} is down (health check: connection refused, 2 in a row); 0 of 1 up: no member to send to.`,
      `Backend ${name} member 127.0.0.1:${port} is up; 1 of 1 up.`,
    ]);
    checker.stop();
    t.is(checker.inFlight, 0);
  });

  test(`an HTTP check passes on 2xx/3xx and fails on 503, with the path and Host asked for (${mode})`, async (t) => {
    let status = 200;
    const seen: string[] = [];
    const server = http.createServer((req, res) => {
      seen.push(`${req.method} ${req.url} HTTP/${req.httpVersion} host=${req.headers.host}`);
      res.writeHead(status, { 'content-type': 'text/plain' });
      res.end(status === 200 ? 'fine\n' : 'not now\n');
    });
    const port = await listenOn(t, server);
    const name = `http-${mode}`;
    const { reactor, pool, checker } = setupChecker(t, mode, name, [port], { ...DRIVEN, rise: 2, fall: 3, http: '/health' });
    const m = pool.members[0];
    await roundsUntil(reactor, checker, () => m.checkSuccesses >= 2, 'two passed checks');
    t.is(m.state, UP);
    t.is(seen[0], `GET /health HTTP/1.0 host=127.0.0.1:${port}`);

    status = 503;
    await roundsUntil(reactor, checker, () => m.state === DOWN, 'the member to go down on 503');
    t.is(m.lastCheck, 'status 503');

    status = 302; // a redirect is an answer too
    await roundsUntil(reactor, checker, () => m.state === UP, 'the member to come back on 302');
    t.deepEqual(poolLines(name), [
      `Backend ${name} member 127.0.0.1:${port} is down (health check: status 503, 3 in a row); 0 of 1 up: no member to send to.`,
      `Backend ${name} member 127.0.0.1:${port} is up; 1 of 1 up.`,
    ]);
  });

  test(`an HTTP check that gets no answer within timeout fails, and its connection is closed (${mode})`, async (t) => {
    const server = http.createServer(() => {}); // never answers
    const port = await listenOn(t, server);
    const open = connections.get(server)!;
    const name = `silent-${mode}`;
    const { reactor, pool, checker } = setupChecker(t, mode, name, [port], { interval: 60, timeout: 30, rise: 1, fall: 2, http: '/' });
    const m = pool.members[0];
    await until(reactor, () => m.state === DOWN, 'the member to go down');
    t.is(m.lastCheck, 'timed out');
    checker.stop();
    // Every probe's fd was closed: the server sees each of its connections end.
    await until(reactor, () => open.size === 0, 'the server to see every probe connection closed');
    t.is(open.size, 0);
    t.deepEqual(poolLines(name), [`Backend ${name} member 127.0.0.1:${port} is down (health check: timed out, 2 in a row); 0 of 1 up: no member to send to.`]);
  });
}

test('a backend that answers something other than HTTP fails the HTTP check', async (t) => {
  const server = net.createServer((s) => s.end('SSH-2.0-OpenSSH_9.6\r\n'));
  const port = await listenOn(t, server);
  const { reactor, pool, checker } = setupChecker(t, 'level', 'not-http', [port], { ...DRIVEN, rise: 1, fall: 1, http: '/' });
  await roundsUntil(reactor, checker, () => pool.members[0].state === DOWN, 'the member to go down');
  t.is(pool.members[0].lastCheck, 'not an HTTP response');
});

test('with checks on, a passive failure marks a member down and the checks bring it back after rise passes', async (t) => {
  const server = net.createServer((s) => s.destroy());
  const port = await listenOn(t, server);
  const other = await listenOn(t, net.createServer((s) => s.destroy()));
  const { reactor, pool, checker } = setupChecker(t, 'level', 'observe', [port, other], { interval: 50, timeout: 50, rise: 3, fall: 3 });
  const m = pool.members[0];
  await until(reactor, () => m.checkSuccesses >= 1, 'a passed check');
  const rounds = checker.rounds;
  pool.failed(pool.pick()!, 'ECONNRESET');
  t.is(m.state, DOWN);
  t.is(m.downUntil, Infinity, 'no failTimeout return: the checks decide');
  await until(reactor, () => m.state === UP, 'the checks to bring it back');
  t.true(checker.rounds - rounds >= 3, `back after ${checker.rounds - rounds} rounds, at least rise = 3`);
  t.deepEqual(poolLines('observe'), [
    `Backend observe member 127.0.0.1:${port} is down (connection reset); 1 of 2 up.`,
    `Backend observe member 127.0.0.1:${port} is up; 2 of 2 up.`,
  ]);
});

// Serial (ava runs these before the others): no other test opens fds while this one counts them.
test.serial('one member down of two; a member that joins is probed from the next round; probes do not leak fds', async (t) => {
  const good = await listenOn(t, net.createServer((s) => s.destroy()));
  // A port bound but not listening: refused, and nobody else can take it.
  const refused = localAddress(boundSocket(t, 0, false).fd)!.port;
  const { reactor, pool, checker } = setupChecker(t, 'edge', 'pair', [good, refused], { interval: 20, timeout: 20, rise: 1, fall: 1 });
  const [ok, bad] = pool.members;
  await until(reactor, () => bad.state === DOWN && ok.checkSuccesses >= 2, 'the refused member down');
  t.is(ok.state, UP);
  t.is(pool.pick(), ok);
  const fdsAt = (): number => fs.readdirSync('/proc/self/fd').length;
  const start = checker.rounds;
  const before = fdsAt();
  const late = pool.add({ name: `127.0.0.1:${good}`.replace('127.0.0.1', '127.0.0.2'), sockaddr: toSockaddr('127.0.0.2', good) });
  await until(reactor, () => checker.rounds >= start + 40, '40 more rounds');
  // 40 rounds of 3 probes: a leak of one fd per failed probe alone would be 40.
  t.true(fdsAt() - before < 10, `fds before ${before}, after ${fdsAt()}`);
  // Nothing listens on 127.0.0.2 for that port (the listener is bound to 127.0.0.1).
  t.is(late.state, DOWN);
  t.is(late.lastCheck, 'connection refused');
});

test('an HTTP check of an IPv6 member sends Host: [::1]:port', async (t) => {
  const hosts: string[] = [];
  const port = await listenOn(t, http.createServer((req, res) => {
    hosts.push(req.headers.host ?? '');
    res.end();
  }), 0, '::1');
  const reactor = new Reactor({ triggerMode: 'level', maxEvents: 16 });
  const pool = new Pool({ name: 'v6', members: [{ name: `[::1]:${port}`, sockaddr: toSockaddr('::1', port) }], clock: reactor });
  const checker = new HealthChecker(reactor, pool, { ...DRIVEN, http: '/' });
  t.teardown(() => {
    checker.stop();
    reactor.close();
  });
  checker.start();
  await roundsUntil(reactor, checker, () => pool.members[0].checkSuccesses >= 1, 'a passed check');
  t.is(hosts[0], `[::1]:${port}`);
  t.is(pool.members[0].lastCheck, 'ok');
});

test('with timeout equal to interval, a round\'s timeout never fails the next round\'s probes', async (t) => {
  const listener = boundSocket(t, 0, false);
  libc.check('listen', libc.listen(listener.fd, 64));
  const port = localAddress(listener.fd)!.port;
  const { reactor, pool, checker } = setupChecker(t, 'level', 'same-timeout', [port], { interval: 20, timeout: 20, rise: 1, fall: 1 });
  const m = pool.members[0];
  // A TCP connect to loopback completes in the kernel, and the reactor
  // dispatches its EPOLLOUT before any timer of the same turn: every probe passes.
  await until(reactor, () => checker.rounds >= 15 && checker.inFlight === 0, '15 rounds', () => drain(listener.fd));
  t.true(m.checkSuccesses >= 14, `passed in a row: ${m.checkSuccesses}`);
  t.is(m.lastCheck, 'ok');
  t.deepEqual(poolLines('same-timeout'), []);
});
