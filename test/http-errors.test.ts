// rsp's own answers in HTTP mode, through the real CLI: every error status
// with its status line, a body of the announced length and Connection: close,
// then the end of the stream; nothing refused reaches a backend; a backend
// that fails (refused, reset, silent, unparsable or smuggling responses)
// becomes a 502/503/504 and its connection is never used again.
import type { ExecutionContext } from 'ava';
import * as net from 'node:net';
import { bothModes, listen, once, waitUntil } from './helpers';
import {
  field, twoRefused, getRequest, hangingAddress, httpConfig, keepAnswering, okResponse, oneShot, RawClient, refusedAddress, sharedRsp,
  type BackendConn, type Ending, type Message,
} from './httpclient';
import { startRspLua } from './lua';
import { firstByte, readFd, takeOver } from './sockets';

/** A backend that reads a request and then does `what` instead of answering well. */
function misbehave(what: (c: BackendConn) => void): (c: BackendConn) => Promise<void> {
  return async (c) => {
    for (;;) {
      const req = await c.request(60000);
      if (req === null) return;
      what(c);
    }
  };
}

const LIMITS = 'limits = { requestLine = 200, headerBytes = 1024, headers = 10, body = 1000 }';

const fixture = sharedRsp({
  pools: {
    // The default pool: requests without a usable Host land here (none should).
    nothing: keepAnswering(() => okResponse('ok')),
    sink: keepAnswering(() => okResponse('ok')),
    reset: misbehave((c) => c.socket.resetAndDestroy()),
    fin: misbehave((c) => c.socket.end()),
    garbage: misbehave((c) => c.send('garbage\r\n\r\n')),
    dupcl: misbehave((c) => c.send('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nokk')),
    clte: misbehave((c) => c.send('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n')),
    barelf: misbehave((c) => c.send('HTTP/1.1 200 OK\nContent-Length: 2\n\nok')),
    cllist: misbehave((c) => c.send('HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok')),
    fold: misbehave((c) => c.send('HTTP/1.1 200 OK\r\nX-A: a\r\n folded\r\nContent-Length: 2\r\n\r\nok')),
    te10: misbehave((c) => c.send('HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n')),
    badstatus: misbehave((c) => c.send('HTTP/1.1 20 OK\r\nContent-Length: 2\r\n\r\nok')),
    hugehead: misbehave((c) => c.send(`HTTP/1.1 200 OK\r\n${`X-H: ${'h'.repeat(1000)}\r\n`.repeat(40)}Content-Length: 2\r\n\r\nok`)),
    unasked101: misbehave((c) => c.send('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n')),
    extra: keepAnswering((req) => (req.target === '/first' ? `${okResponse('first')}HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled` : okResponse('clean'))),
  },
  addresses: { refused: refusedAddress, down: twoRefused, checked: refusedAddress },
  // The only member of a pool is never taken out by failures (as nginx): two here.
  poolOptions: { down: 'maxFails = 1, failTimeout = 60000, retries = 1', checked: 'check = { interval = 100, timeout = 100, rise = 1, fall = 1 }' },
  extra: LIMITS,
});

/** Checks an answer of rsp's own: the status line, a body as long as announced, Connection: close, then the end. */
function ownAnswer(t: ExecutionContext, got: { res: Message; how: Ending; rest: Buffer }, line: string, what: string): void {
  t.is(got.res.line, line, what);
  t.is(field(got.res, 'connection'), 'close', what);
  t.regex(field(got.res, 'date') ?? '', /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT$/, `${what}: Date (RFC 9110 §6.6.1)`);
  t.is(got.res.framing, 'length', what);
  t.is(got.res.body.toString(), `${line.slice(9)}\n`, what);
  t.is(got.how, 'end', what);
  t.is(got.rest.length, 0, `${what}: nothing after the answer`);
}

const CLIENT_ERRORS: [string, string, string][] = [
  ['400', 'GET / HTTP/1.1\r\nHost: nothing.test\r\nBad Name: x\r\n\r\n', 'HTTP/1.1 400 Bad Request'],
  ['400 no Host', 'GET / HTTP/1.1\r\n\r\n', 'HTTP/1.1 400 Bad Request'],
  ['400 two Hosts', 'GET / HTTP/1.1\r\nHost: nothing.test\r\nHost: nothing.test\r\n\r\n', 'HTTP/1.1 400 Bad Request'],
  ['400 bare LF', 'GET / HTTP/1.1\nHost: nothing.test\n\n', 'HTTP/1.1 400 Bad Request'],
  ['400 garbage', '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 tls hello\r\n\r\n', 'HTTP/1.1 400 Bad Request'],
  ['400 CL+TE', 'POST / HTTP/1.1\r\nHost: nothing.test\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 'HTTP/1.1 400 Bad Request'],
  ['400 TE not chunked last', 'POST / HTTP/1.1\r\nHost: nothing.test\r\nTransfer-Encoding: chunked, gzip\r\n\r\n', 'HTTP/1.1 400 Bad Request'],
  ['501 unknown coding', 'POST / HTTP/1.1\r\nHost: nothing.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n', 'HTTP/1.1 501 Not Implemented'],
  ['501 made-up coding', 'POST / HTTP/1.1\r\nHost: nothing.test\r\nTransfer-Encoding: foo, chunked\r\n\r\n0\r\n\r\n', 'HTTP/1.1 501 Not Implemented'],
  ['505 HTTP/2.0', 'GET / HTTP/2.0\r\nHost: nothing.test\r\n\r\n', 'HTTP/1.1 505 HTTP Version Not Supported'],
  ['505 HTTP/1.2', 'GET / HTTP/1.2\r\nHost: nothing.test\r\n\r\n', 'HTTP/1.1 505 HTTP Version Not Supported'],
  ['414', `GET /${'a'.repeat(300)} HTTP/1.1\r\nHost: nothing.test\r\n\r\n`, 'HTTP/1.1 414 URI Too Long'],
  ['431 too large', `GET / HTTP/1.1\r\nHost: nothing.test\r\nX-Big: ${'b'.repeat(1100)}\r\n\r\n`, 'HTTP/1.1 431 Request Header Fields Too Large'],
  ['431 too many', `GET / HTTP/1.1\r\nHost: nothing.test\r\n${Array.from({ length: 11 }, (_, i) => `X-${i}: ${i}\r\n`).join('')}\r\n`, 'HTTP/1.1 431 Request Header Fields Too Large'],
  ['413 Content-Length', `POST / HTTP/1.1\r\nHost: nothing.test\r\nContent-Length: 1001\r\n\r\n${'x'.repeat(1001)}`, 'HTTP/1.1 413 Content Too Large'],
];

bothModes('client errors: 400, 501, 505, 414, 431 (too large, too many), 413 by Content-Length; each with Connection: close, none forwarded', async (t, mode) => {
  const { rsp, b } = await fixture(mode);
  for (const [what, bytes, line] of CLIENT_ERRORS) ownAnswer(t, await oneShot(t, rsp.port, bytes), line, what);
  t.is(b.nothing.conns.length, 0, 'no request reached the backend (it was not even connected to)');
  // Logged with the client's address.
  await rsp.waitFor(/431 Request Header Fields Too Large to client 127\.0\.0\.1:\d+/);
});

bothModes('a refused answer to a HEAD request announces its body but sends none', async (t, mode) => {
  const { rsp } = await fixture(mode);
  const got = await oneShot(t, rsp.port, `HEAD /${'a'.repeat(300)} HTTP/1.1\r\nHost: sink.test\r\n\r\n`, { noBody: true });
  t.is(got.res.line, 'HTTP/1.1 414 URI Too Long');
  t.is(field(got.res, 'connection'), 'close');
  t.is(got.how, 'end');
  t.is(got.rest.length, 0);
});

bothModes('a refused request does not take the rest of a pipeline with it: earlier responses are whole, later requests are not forwarded', async (t, mode) => {
  const { rsp, b } = await fixture(mode);
  const c = await RawClient.connect(t, rsp.port);
  c.send(`${getRequest('/pipe-ok', 'sink.test')}GET /bad HTTP/1.1\r\nHost: sink.test\r\nX: a\x00b\r\n\r\n${getRequest('/pipe-after', 'sink.test')}`);
  const first = await c.response();
  t.is(first.status, 200);
  const second = await c.response();
  t.is(second.line, 'HTTP/1.1 400 Bad Request');
  t.is((await c.ending()).rest.length, 0);
  t.true(b.sink.requests.some((r) => r.target === '/pipe-ok'));
  t.false(b.sink.requests.some((r) => r.target === '/bad' || r.target === '/pipe-after'));
});

bothModes('413: a chunked body over limits.body is refused when it crosses the limit, and never reaches the backend whole', async (t, mode) => {
  const { rsp, b } = await fixture(mode);
  const c = await RawClient.connect(t, rsp.port);
  c.send('POST /big-chunked HTTP/1.1\r\nHost: sink.test\r\nTransfer-Encoding: chunked\r\n\r\n');
  for (let i = 0; i < 3; i++) c.send(`190\r\n${'y'.repeat(400)}\r\n`);
  c.send('0\r\n\r\n');
  const res = await c.response();
  t.is(res.line, 'HTTP/1.1 413 Content Too Large');
  t.is(field(res, 'connection'), 'close');
  t.is((await c.ending()).how, 'end');
  t.false(b.sink.requests.some((r) => r.target === '/big-chunked'), 'the backend never got a complete request');
  // The backend connection that carried the partial request is not reused: it was cut.
  const conn = b.sink.conns.find((k) => k.all.includes('/big-chunked'));
  if (conn !== undefined) await waitUntil(() => conn.ended, 'the partial request\'s backend connection to be closed');
  t.pass();
});

bothModes('a chunked body refused in the read that brought its head: not even the head reaches a backend, kept-alive connection or new', async (t, mode) => {
  const { rsp, b } = await fixture(mode);
  // A kept-alive backend connection for the next requests to reuse: a head
  // written at once would go straight out on it.
  const warm = await RawClient.connect(t, rsp.port);
  warm.send(getRequest('/warm', 'sink.test'));
  t.is((await warm.response()).status, 200);
  const bodies = ['zz\r\n', '5;\x01\r\nhello\r\n0\r\n\r\n', 'FFFFFFFFFFFFFFFF0\r\nhello\r\n0\r\n\r\n', '5\r\nhelloX\r\n0\r\n\r\n', '0\r\nBad Trailer\r\n\r\n'];
  for (const [i, body] of bodies.entries()) {
    ownAnswer(t, await oneShot(t, rsp.port, `POST /bad-chunks-${i} HTTP/1.1\r\nHost: sink.test\r\nTransfer-Encoding: chunked\r\n\r\n${body}`), 'HTTP/1.1 400 Bad Request', JSON.stringify(body));
  }
  // A request behind them on a reused connection: whatever they had sent would have come first.
  const after = await RawClient.connect(t, rsp.port);
  after.send(getRequest('/after-bad-chunks', 'sink.test'));
  t.is((await after.response()).status, 200);
  t.false(b.sink.conns.some((k) => k.all.includes('/bad-chunks')), 'no backend connection got a byte of the refused requests');
});

bothModes('a chunked body that breaks its grammar after its head went on: the backend connection is reset, never ended with a FIN', async (t, mode) => {
  // A member read with read(2) on a raw fd: Node's sockets report some resets as an orderly end.
  const server = net.createServer({ pauseOnConnect: true });
  const port = await listen(t, server);
  const accepted = once(server, 'connection', 'the backend connection');
  const rsp = await startRspLua(t, httpConfig(mode, port));
  const c = await RawClient.connect(t, rsp.port);
  c.send('POST /upload HTTP/1.1\r\nHost: web.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n');
  const [socket] = (await accepted) as [net.Socket];
  t.teardown(() => socket.destroy());
  const fd = takeOver(socket);
  await firstByte(fd);
  const backend = readFd(fd);
  c.send('5\r\nworldX\r\n');
  const res = await c.response();
  t.is(res.line, 'HTTP/1.1 400 Bad Request');
  const got = await backend;
  t.is(got.how, 'ECONNRESET', `the backend got ${got.bytes.length} bytes, then ${got.how}`);
  t.true(got.bytes.toString('latin1').includes('5\r\nhello\r\n'), 'the first chunk had gone on');
  t.false(got.bytes.includes('world'), 'the broken chunk did not');
  t.is(await rsp.stop(), 0);
});

bothModes('405 for CONNECT (not proxied)', async (t, mode) => {
  const { rsp, b } = await fixture(mode);
  ownAnswer(t, await oneShot(t, rsp.port, 'CONNECT nothing.test:443 HTTP/1.1\r\nHost: nothing.test:443\r\n\r\n'), 'HTTP/1.1 405 Method Not Allowed', 'CONNECT');
  t.is(b.nothing.conns.length, 0);
});

const BACKEND_FAILURES: [string, string][] = [
  ['refused', 'connect refused'],
  ['reset', 'reset after the request'],
  ['fin', 'closed after the request, no byte of response'],
  ['garbage', 'not HTTP'],
  ['dupcl', 'two different Content-Length'],
  ['cllist', 'Content-Length list'],
  ['clte', 'Content-Length and Transfer-Encoding'],
  ['barelf', 'bare LF line ends'],
  ['fold', 'obs-fold'],
  ['te10', 'Transfer-Encoding in an HTTP/1.0 response'],
  ['badstatus', 'two-digit status'],
  ['unasked101', '101 to a request that did not ask to upgrade'],
  ['hugehead', 'a 40 KB response head'],
];

for (const [pool, what] of BACKEND_FAILURES) {
  bothModes(`502 when the backend fails: ${what}; the bad response never reaches the client, the connection is not reused`, async (t, mode) => {
    const { rsp, b } = await fixture(mode);
    for (let i = 0; i < 2; i++) {
      const got = await oneShot(t, rsp.port, getRequest(`/${pool}/${i}`, `${pool}.test`));
      ownAnswer(t, got, 'HTTP/1.1 502 Bad Gateway', `${what} #${i}`);
    }
    const be = b[pool];
    if (be !== undefined) {
      // Two requests, two connections: the first was not parked for the second.
      const mine = be.conns.filter((k) => k.all.includes(`/${pool}/`));
      t.is(mine.length, 2, `${what}: backend connections`);
      await waitUntil(() => mine.every((k) => k.ended), `${what}: rsp to close its backend connections`);
    }
  });
}

bothModes('response smuggling: bytes after a complete response are not passed on, and that connection is not reused', async (t, mode) => {
  const { rsp, b } = await fixture(mode);
  const c = await RawClient.connect(t, rsp.port);
  const conns = b.extra.conns.length;
  c.send(getRequest('/first', 'extra.test'));
  t.is((await c.response()).body.toString(), 'first');
  c.send(getRequest('/second', 'extra.test'));
  const second = await c.response();
  t.is(second.body.toString(), 'clean');
  t.is(c.unread.length, 0);
  t.is(b.extra.conns.length - conns, 2, 'the connection that sent extra bytes was not reused');
});

bothModes('503 when no member is up (maxFails took both out); the first failure was a 502', async (t, mode) => {
  const { rsp } = await fixture(mode);
  ownAnswer(t, await oneShot(t, rsp.port, getRequest('/', 'down.test')), 'HTTP/1.1 502 Bad Gateway', 'first: both refused');
  ownAnswer(t, await oneShot(t, rsp.port, getRequest('/', 'down.test')), 'HTTP/1.1 503 Service Unavailable', 'then: no member up');
});

bothModes('503 when the only member is down by its health check', async (t, mode) => {
  const { rsp } = await fixture(mode);
  await rsp.waitFor(/Backend checked member \S+ is down/);
  ownAnswer(t, await oneShot(t, rsp.port, getRequest('/', 'checked.test')), 'HTTP/1.1 503 Service Unavailable', 'checked down');
});

// Timeouts: fixtures of their own, so that the short timeouts touch nothing
// else; no pool that answers shares a short backendTimeout (a backend in this
// busy test process could miss it).
const slow = sharedRsp({
  pools: {
    silent: async (c) => {
      await c.request(60000); // and never answer
    },
  },
  addresses: { hanging: hangingAddress },
  poolOptions: { hanging: 'retries = 0' },
  extra: 'backendTimeout = 300\nconnectTimeout = 300',
});

const headTimeout = sharedRsp({
  pools: { quick: keepAnswering(() => okResponse('ok')) },
  extra: 'requestHeadTimeout = 300',
});

bothModes('408 when a request head is not complete within requestHeadTimeout', async (t, mode) => {
  const { rsp, b } = await headTimeout(mode);
  const c = await RawClient.connect(t, rsp.port);
  c.send('GET /slow HTTP/1.1\r\nHost: quick.test\r\nX-Partial: ');
  const res = await c.response();
  t.is(res.line, 'HTTP/1.1 408 Request Timeout');
  t.is(field(res, 'connection'), 'close');
  t.is((await c.ending()).how, 'end');
  t.false(b.quick.requests.some((r) => r.target === '/slow'));
  await rsp.waitFor(/408 Request Timeout to client 127\.0\.0\.1:\d+/);
});

bothModes('504 when the backend accepts the request and never answers (backendTimeout)', async (t, mode) => {
  const { rsp, b } = await slow(mode);
  ownAnswer(t, await oneShot(t, rsp.port, getRequest('/never', 'silent.test')), 'HTTP/1.1 504 Gateway Timeout', 'silent backend');
  t.true(b.silent.requests.some((r) => r.target === '/never'));
  const conn = b.silent.conns.find((k) => k.all.includes('/never'))!;
  await waitUntil(() => conn.ended, 'the silent backend\'s connection to be closed');
});

bothModes('504 when the connect to the backend times out (connectTimeout)', async (t, mode) => {
  const { rsp } = await slow(mode);
  ownAnswer(t, await oneShot(t, rsp.port, getRequest('/', 'hanging.test')), 'HTTP/1.1 504 Gateway Timeout', 'connect timeout');
});

bothModes('an idle keep-alive client is not cut by requestHeadTimeout between requests', async (t, mode) => {
  const { rsp } = await headTimeout(mode);
  const c = await RawClient.connect(t, rsp.port);
  c.send(getRequest('/1', 'quick.test'));
  t.is((await c.response()).status, 200);
  // Wait out the timeout: another client's 408 takes at least that long.
  const other = await RawClient.connect(t, rsp.port);
  other.send('GET /partial HTTP/1.1\r\n');
  t.is((await other.response()).status, 408);
  t.is(c.state, 'open');
  c.send(getRequest('/2', 'quick.test'));
  t.is((await c.response()).status, 200);
});

bothModes('a malformed second request on a keep-alive connection is answered 400 (not cut)', async (t, mode) => {
  const { rsp } = await fixture(mode);
  const c = await RawClient.connect(t, rsp.port);
  c.send(getRequest('/ka-1', 'sink.test'));
  t.is((await c.response()).status, 200);
  c.send('GET /ka-2 HTTP/1.1\r\nHost: sink.test\r\nBad Name: x\r\n\r\n');
  const res = await c.response();
  t.is(res.line, 'HTTP/1.1 400 Bad Request');
  t.is((await c.ending()).how, 'end');
});

bothModes('a second request over limits on a keep-alive connection is answered 431 (not cut)', async (t, mode) => {
  const { rsp } = await fixture(mode);
  const c = await RawClient.connect(t, rsp.port);
  c.send(getRequest('/ka-1', 'sink.test'));
  t.is((await c.response()).status, 200);
  c.send(`GET /ka-2 HTTP/1.1\r\nHost: sink.test\r\nX-Big: ${'b'.repeat(1100)}\r\n\r\n`);
  t.is((await c.response()).line, 'HTTP/1.1 431 Request Header Fields Too Large');
});
