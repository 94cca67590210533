// HTTP mode through the real CLI with real backends: routing by Host and by
// Lua's route(req), what the backend sees (X-Forwarded-*, hop-by-hop fields),
// message framing both ways (chunked, HEAD, 204, 304, 100-continue, HTTP/1.0),
// half-close, a head one byte at a time, and the access log.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { bothModes, waitUntil } from './helpers';
import { field, fieldAll, getRequest, httpConfig, keepAnswering, okResponse, oneShot, RawClient, scriptedBackend, sharedRsp, type BackendConn } from './httpclient';
import { startRspLua } from './lua';

/** A backend whose every answer is its own name, kept alive. */
function named(name: string): (c: BackendConn) => Promise<void> {
  return keepAnswering(() => okResponse(name));
}

const HOOK = `
function route(req)
  if req.headers["x-canary"] then return "hookapi" end
  if req.path == "/admin" then return 403 end
  if req.path == "/boom" then error("kaboom in route") end
  if req.path == "/loop" then while true do end end
  if req.path == "/q" and req.query == "a=1" then return "hookapi" end
  if req.method == "PURGE" and req.path == "/hook" then return "hookapi" end
  if req.path == "/nopool" then return "nosuchpool" end
  if req.path == "/remote" and string.match(req.remote, "^127%.0%.0%.1:%d+$") then return "hookapi" end
end
`;

// One rsp per mode for most of this file: each test has its own pool, routed by "<pool>.test".
const fixture = sharedRsp({
  pools: {
    other: named('other'),
    web: named('web'),
    api: named('api'),
    hooked: named('hooked'),
    hookapi: named('hookapi'),
    xff: keepAnswering(() => okResponse('ok')),
    hop: keepAnswering(() =>
      'HTTP/1.1 200 OK\r\nX-B: 1\r\nConnection: X-Secret-Res, keep-alive\r\nX-Secret-Res: hidden\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nUpgrade: h2c\r\nx-mixed-CASE:  spaced  value\r\nContent-Length: 2\r\n\r\nok'),
    chunked: keepAnswering(() => `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${CHUNKED_RES}`),
    heads: keepAnswering((req) => {
      if (req.method === 'HEAD' && req.target === '/headchunked') return 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n';
      if (req.method === 'HEAD') return 'HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n';
      if (req.target === '/204') return 'HTTP/1.1 204 No Content\r\n\r\n';
      if (req.target === '/304') return 'HTTP/1.1 304 Not Modified\r\nETag: "x"\r\nContent-Length: 50\r\n\r\n';
      return okResponse('after');
    }),
    cont: async (c) => {
      // The head alone first (request() would wait for the body too).
      await waitUntil(() => c.all.includes('\r\n\r\n'), 'the head at the backend');
      c.send('HTTP/1.1 100 Continue\r\n\r\n');
      await c.request();
      c.send(okResponse('got it'));
    },
    v10: keepAnswering(() => okResponse('one')),
    // Chunked whatever the request's version (a backend that ignores that it was asked in HTTP/1.0).
    chunky: keepAnswering(() => 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n'),
    half: keepAnswering(() => okResponse(BIG)),
    onebyte: keepAnswering(() => okResponse('ok')),
    ext: keepAnswering(() => okResponse('ok')),
    absolute: keepAnswering(() => okResponse('ok')),
    rewrite: keepAnswering(() => okResponse('ok')),
    logpool: keepAnswering((req) => (req.target === '/missing' ? 'HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n' : okResponse('ok'))),
  },
  routes: '  ["example.com"] = "web",\n  ["*.api.example.com"] = "api",\n  ["*.b.api.example.com"] = "other",',
  fallback: 'other',
  extra: `accessLog = "$DIR/access.log"\n${HOOK}`,
});
const CHUNKED_RES = '5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: yes\r\n\r\n';
const BIG = Buffer.alloc(300_000, 'z');

bothModes('routes by Host: exact, wildcard (any depth), port and case ignored, absolute-form, default', async (t, mode) => {
  const { rsp, b } = await fixture(mode);
  const c = await RawClient.connect(t, rsp.port);
  const cases: [string, string][] = [
    [getRequest('/', 'example.com'), 'web'],
    [getRequest('/', 'EXAMPLE.com:8080'), 'web'],
    [getRequest('/', 'example.com.'), 'web'],
    [getRequest('/', 'x.api.example.com'), 'api'],
    [getRequest('/', 'X.Y.API.example.COM:1'), 'api'],
    [getRequest('/', 'a.b.api.example.com'), 'other'], // the longest wildcard wins
    [getRequest('/', 'api.example.com'), 'other'], // *.api.example.com is not api.example.com itself
    [getRequest('/', 'unknown.test'), 'other'],
    ['GET http://q.api.example.com/x HTTP/1.1\r\nHost: example.com\r\n\r\n', 'api'], // the target's authority wins over Host
  ];
  const before = b.web.requests.length + b.api.requests.length + b.other.requests.length;
  for (const [req, want] of cases) {
    c.send(req);
    const res = await c.response();
    t.is(res.status, 200, req);
    t.is(res.body.toString(), want, req);
  }
  t.true(b.web.requests.length + b.api.requests.length + b.other.requests.length >= before + cases.length);
});

bothModes('without routes.default a host no route names is answered 404, and the connection closes', async (t, mode) => {
  const web = await scriptedBackend(t, named('web'));
  const api = await scriptedBackend(t, named('api'));
  const rsp = await startRspLua(t, `listenPort = "0"\nlistenAddress = "127.0.0.1"\nmode = "http"\ntriggerMode = "${mode}"
backends = { web = { "127.0.0.1:${web.port}" }, api = { "127.0.0.1:${api.port}" } }
routes = { ["example.com"] = "web", ["*.api.example.com"] = "api" }\n`);
  const { res, how } = await oneShot(t, rsp.port, getRequest('/', 'nobody.test'));
  t.is(res.line, 'HTTP/1.1 404 Not Found');
  t.is(field(res, 'connection'), 'close');
  t.is(how, 'end');
  t.is(web.requests.length + api.requests.length, 0);
  // And a host that has a route still works on the same rsp.
  const ok = await oneShot(t, rsp.port, getRequest('/', 'a.api.example.com', 'Connection: close\r\n'));
  t.is(ok.res.body.toString(), 'api');
});

bothModes('route(req): a pool, a status, nil falls through; an error or an endless loop is a 500 and rsp goes on serving', async (t, mode) => {
  const { rsp, b } = await fixture(mode);
  const ok: [string, string][] = [
    [getRequest('/', 'hooked.test'), 'hooked'],
    [getRequest('/', 'hooked.test', 'X-Canary: 1\r\n'), 'hookapi'],
    [getRequest('/q?a=1', 'hooked.test'), 'hookapi'],
    [getRequest('/q?a=2', 'hooked.test'), 'hooked'],
    ['PURGE /hook HTTP/1.1\r\nHost: web.test\r\n\r\n', 'hookapi'],
    [getRequest('/remote', 'hooked.test'), 'hookapi'],
  ];
  const c = await RawClient.connect(t, rsp.port);
  for (const [req, want] of ok) {
    c.send(req);
    const res = await c.response();
    t.is(res.status, 200, req);
    t.is(res.body.toString(), want, req);
  }
  const refused: [string, string][] = [
    ['/admin', 'HTTP/1.1 403 Forbidden'],
    ['/boom', 'HTTP/1.1 500 Internal Server Error'],
    ['/loop', 'HTTP/1.1 500 Internal Server Error'],
    ['/nopool', 'HTTP/1.1 500 Internal Server Error'],
  ];
  for (const [p, line] of refused) {
    const before = b.hooked.requests.length + b.hookapi.requests.length;
    const { res, how } = await oneShot(t, rsp.port, getRequest(p, 'hooked.test'));
    t.is(res.line, line, p);
    t.is(field(res, 'connection'), 'close', p);
    t.is(how, 'end', p);
    t.is(b.hooked.requests.length + b.hookapi.requests.length, before, `${p} reached no backend`);
  }
  // Logged with the Lua message (later 500s within the same second may be folded into "and N more like it").
  await rsp.waitFor(/500 Internal Server Error to client 127\.0\.0\.1:\d+: route\(\): .*kaboom in route/);
  // Still alive and still routing.
  const { res } = await oneShot(t, rsp.port, getRequest('/', 'hooked.test', 'X-Canary: yes\r\nConnection: close\r\n'));
  t.is(res.body.toString(), 'hookapi');
  t.notRegex(rsp.output(), /\n\s+at /, 'no stack trace');
});

bothModes('X-Forwarded-For replaced for an untrusted client; X-Forwarded-Proto/Host set; Host kept', async (t, mode) => {
  const { rsp, b } = await fixture(mode);
  const { res } = await oneShot(t, rsp.port, 'GET /a?b HTTP/1.1\r\nHost: XFF.test:81\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-For: 7.7.7.7\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil\r\nConnection: close\r\n\r\n');
  t.is(res.status, 200);
  const got = b.xff.requests.at(-1)!;
  t.is(got.line, 'GET /a?b HTTP/1.1');
  t.deepEqual(fieldAll(got, 'x-forwarded-for'), ['127.0.0.1']);
  t.deepEqual(fieldAll(got, 'x-forwarded-proto'), ['http']);
  t.deepEqual(fieldAll(got, 'x-forwarded-host'), ['XFF.test:81']);
  t.deepEqual(fieldAll(got, 'host'), ['XFF.test:81']);
});

bothModes('X-Forwarded-For appended for a trusted proxy (its X-Forwarded-Proto/Host kept); xForwarded = false sets neither', async (t, mode) => {
  const b = await scriptedBackend(t);
  const rsp = await startRspLua(t, httpConfig(mode, b.port, 'trustedProxies = { "10.0.0.0/8", "127.0.0.0/8" }\nxForwarded = true'));
  await oneShot(t, rsp.port, 'GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.0.0.1, 10.0.0.2\r\nX-Forwarded-For: 10.0.0.3\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: orig.example\r\nConnection: close\r\n\r\n');
  const got = b.requests[0];
  t.deepEqual(fieldAll(got, 'x-forwarded-for'), ['10.0.0.1, 10.0.0.2, 10.0.0.3, 127.0.0.1']);
  t.deepEqual(fieldAll(got, 'x-forwarded-proto'), ['https']);
  t.deepEqual(fieldAll(got, 'x-forwarded-host'), ['orig.example']);

  const b2 = await scriptedBackend(t);
  const rsp2 = await startRspLua(t, httpConfig(mode, b2.port, 'xForwarded = false'));
  await oneShot(t, rsp2.port, getRequest('/', 'h', 'X-Forwarded-For: 1.2.3.4\r\nConnection: close\r\n'));
  const got2 = b2.requests[0];
  t.deepEqual(fieldAll(got2, 'x-forwarded-for'), ['127.0.0.1']);
  t.deepEqual(fieldAll(got2, 'x-forwarded-proto'), []);
  t.deepEqual(fieldAll(got2, 'x-forwarded-host'), []);
});

bothModes('hop-by-hop fields are removed both ways, names listed in Connection too (Close with Connection: close); the rest is passed byte for byte, in order', async (t, mode) => {
  const { rsp, b } = await fixture(mode);
  const c = await RawClient.connect(t, rsp.port);
  c.send('GET / HTTP/1.1\r\nHost: hop.test\r\nX-A: 1\r\nConnection: keep-alive, X-Secret, x-other\r\nX-Secret: s\r\nX-Other: o\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\nUpgrade: websocket\r\nX-Z: last\r\n\r\n');
  const res = await c.response();
  const got = b.hop.requests.at(-1)!;
  const names = got.fields.map(([k]) => k.toLowerCase());
  for (const hop of ['connection', 'x-secret', 'x-other', 'keep-alive', 'proxy-connection', 'te', 'upgrade']) t.false(names.includes(hop), `request kept ${hop}`);
  t.deepEqual(names.filter((n) => n === 'host' || n === 'x-a' || n === 'x-z'), ['host', 'x-a', 'x-z']);
  t.is(res.status, 200);
  const rnames = res.fields.map(([k]) => k.toLowerCase());
  for (const hop of ['x-secret-res', 'keep-alive', 'proxy-connection', 'upgrade']) t.false(rnames.includes(hop), `response kept ${hop}`);
  t.true(res.head.includes('x-mixed-CASE:  spaced  value\r\n'), res.head.toString());
  t.is(field(res, 'x-b'), '1');
  // Still kept alive (rsp's own Connection, if any, is not close).
  t.not(field(res, 'connection'), 'close');
  c.send(getRequest('/', 'hop.test'));
  t.is((await c.response()).status, 200);
  // Connection: close makes a field named Close hop-by-hop too.
  c.send('GET / HTTP/1.1\r\nHost: hop.test\r\nClose: x\r\nX-Before: 1\r\nConnection: close\r\nX-After: 2\r\n\r\n');
  const last = await c.response();
  t.is(field(last, 'connection'), 'close');
  const lastNames = b.hop.requests.at(-1)!.fields.map(([k]) => k.toLowerCase());
  t.false(lastNames.includes('close'));
  t.deepEqual(lastNames.filter((n) => n.startsWith('x-') && !n.startsWith('x-forwarded')), ['x-before', 'x-after']);
});

bothModes('chunked both ways, byte-exact (extensions and trailers passed through)', async (t, mode) => {
  const { rsp, b } = await fixture(mode);
  const c = await RawClient.connect(t, rsp.port);
  const reqBody = '3\r\nabc\r\n10;name="quoted"\r\n0123456789abcdef\r\n0\r\nX-T: 1\r\n\r\n';
  c.send(`POST /up HTTP/1.1\r\nHost: chunked.test\r\nTransfer-Encoding: chunked\r\n\r\n`);
  // The body in small pieces.
  for (let i = 0; i < reqBody.length; i += 7) c.send(reqBody.slice(i, i + 7));
  const res = await c.response();
  t.is(res.framing, 'chunked');
  t.is(res.raw.toString('latin1'), CHUNKED_RES);
  t.is(res.body.toString(), 'helloabcdefghijklmnopqrstuvwxyz');
  const got = b.chunked.requests.at(-1)!;
  t.is(got.framing, 'chunked');
  t.is(got.raw.toString('latin1'), reqBody);
  t.is(got.body.toString(), 'abc0123456789abcdef');
  // And the connection goes on.
  c.send(getRequest('/', 'chunked.test'));
  t.is((await c.response()).body.toString(), 'helloabcdefghijklmnopqrstuvwxyz');
});

bothModes('HEAD, 204 and 304 have no body; the connection is reused after each', async (t, mode) => {
  const { rsp, b } = await fixture(mode);
  const c = await RawClient.connect(t, rsp.port);
  const conns = b.heads.conns.length;
  c.send('HEAD / HTTP/1.1\r\nHost: heads.test\r\n\r\n');
  const head = await c.response({ noBody: true });
  t.is(head.status, 200);
  t.is(field(head, 'content-length'), '1000');
  c.send(getRequest('/204', 'heads.test'));
  t.is((await c.response()).status, 204);
  c.send(getRequest('/304', 'heads.test'));
  t.is((await c.response()).status, 304);
  c.send('HEAD /headchunked HTTP/1.1\r\nHost: heads.test\r\n\r\n');
  t.is((await c.response({ noBody: true })).status, 200);
  c.send(getRequest('/last', 'heads.test'));
  const last = await c.response();
  t.is(last.body.toString(), 'after');
  t.is(c.unread.length, 0, 'no stray body bytes');
  t.is(b.heads.conns.length - conns, 1, 'one backend connection for all five');
});

bothModes('Expect: 100-continue: the 100 comes back before the body is sent, then the final response', async (t, mode) => {
  const { rsp, b } = await fixture(mode);
  const c = await RawClient.connect(t, rsp.port);
  c.send('POST /x HTTP/1.1\r\nHost: cont.test\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n');
  const cont = await c.response();
  t.is(cont.line, 'HTTP/1.1 100 Continue');
  c.send('0123456789');
  const res = await c.response();
  t.is(res.status, 200);
  t.is(res.body.toString(), 'got it');
  const got = b.cont.requests.at(-1)!;
  t.is(field(got, 'expect'), '100-continue');
  t.is(got.body.toString(), '0123456789');
});

bothModes('HTTP/1.0: closed after the response without keep-alive, kept with Connection: keep-alive', async (t, mode) => {
  const { rsp, b } = await fixture(mode);
  const plain = await oneShot(t, rsp.port, 'GET /plain HTTP/1.0\r\nHost: v10.test\r\n\r\n');
  t.is(plain.res.status, 200);
  t.is(plain.res.body.toString(), 'one');
  t.is(plain.how, 'end');
  t.is(b.v10.requests.find((r) => r.target === '/plain')!.version, 'HTTP/1.0');
  const c = await RawClient.connect(t, rsp.port);
  c.send('GET /1 HTTP/1.0\r\nHost: v10.test\r\nConnection: keep-alive\r\n\r\n');
  const r1 = await c.response();
  t.is(r1.body.toString(), 'one');
  t.regex(field(r1, 'connection') ?? '', /keep-alive/i);
  c.send('GET /2 HTTP/1.0\r\nHost: v10.test\r\nConnection: keep-alive\r\n\r\n');
  t.is((await c.response()).body.toString(), 'one');
  t.is(c.state, 'open');
});

bothModes('half-close: a client that sends its request and shuts down its sending half gets the whole response', async (t, mode) => {
  const { rsp, b } = await fixture(mode);
  const { res, how } = await oneShot(t, rsp.port, getRequest('/', 'half.test'), { end: true });
  t.is(res.status, 200);
  t.true(res.body.equals(BIG));
  t.is(how, 'end');
  // A POST with a body, then the FIN.
  const { res: r2 } = await oneShot(t, rsp.port, 'POST /post HTTP/1.1\r\nHost: half.test\r\nContent-Length: 3\r\n\r\nabc', { end: true });
  t.is(r2.status, 200);
  t.is(b.half.requests.find((r) => r.target === '/post')!.body.toString(), 'abc');
});

bothModes('a request head sent one byte at a time arrives whole, and the response is complete', async (t, mode) => {
  const { rsp, b } = await fixture(mode);
  const c = await RawClient.connect(t, rsp.port);
  c.socket.setNoDelay(true);
  const req = 'POST /one/byte?at=a-time HTTP/1.1\r\nHost: onebyte.test\r\nX-Long: ' + 'v'.repeat(100) + '\r\nContent-Length: 5\r\n\r\nhello';
  for (const ch of req) {
    c.send(ch);
    // Let each byte go out in a segment of its own.
    await new Promise((r) => setImmediate(r));
  }
  const res = await c.response();
  t.is(res.status, 200);
  const got = b.onebyte.requests.at(-1)!;
  t.is(got.line, 'POST /one/byte?at=a-time HTTP/1.1');
  t.is(field(got, 'x-long'), 'v'.repeat(100));
  t.is(got.body.toString(), 'hello');
});

bothModes('extension methods are forwarded; OPTIONS * and absolute-form reach the backend as sent', async (t, mode) => {
  const { rsp, b } = await fixture(mode);
  const c = await RawClient.connect(t, rsp.port);
  for (const line of ['M-SEARCH /ssdp HTTP/1.1', 'PURGE /cache HTTP/1.1', 'OPTIONS * HTTP/1.1', 'GET http://ext.test/abs?x=1 HTTP/1.1']) {
    c.send(`${line}\r\nHost: ext.test\r\n\r\n`);
    t.is((await c.response()).status, 200, line);
    t.is(b.ext.requests.at(-1)!.line, line);
  }
});

bothModes('absolute-form: the backend gets the target\'s authority as Host and X-Forwarded-Host, whatever Host the client sent', async (t, mode) => {
  const { rsp, b } = await fixture(mode);
  const c = await RawClient.connect(t, rsp.port);
  for (const [line, host] of [['GET http://absolute.test:8080/abs HTTP/1.1', 'elsewhere.example'], ['GET http://ABSOLUTE.test HTTP/1.1', ''], ['GET http://absolute.test/ HTTP/1.0', null]] as const) {
    c.send(`${line}\r\n${host === null ? '' : `Host: ${host}\r\n`}Connection: keep-alive\r\n\r\n`);
    t.is((await c.response()).status, 200, line);
    const got = b.absolute.requests.at(-1)!;
    t.is(got.line, line);
    const authority = /^GET https?:\/\/([^/ ]+)/.exec(line)![1];
    t.deepEqual(fieldAll(got, 'host'), [authority], line);
    t.deepEqual(fieldAll(got, 'x-forwarded-host'), [authority], line);
  }
});

bothModes('Content-Length with leading zeros, or on two lines, reaches the backend as one plain number; Content_Length, Transfer_Encoding and X_Forwarded_For do not reach it at all', async (t, mode) => {
  const { rsp, b } = await fixture(mode);
  const c = await RawClient.connect(t, rsp.port);
  const body = 'x'.repeat(200);
  c.send(`POST /zeros HTTP/1.1\r\nHost: rewrite.test\r\nX-Before: 1\r\nContent-Length: 0200\r\nX-After: 2\r\n\r\n${body}`);
  t.is((await c.response()).status, 200);
  let got = b.rewrite.requests.at(-1)!;
  t.deepEqual(got.fields.slice(0, 4), [['Host', 'rewrite.test'], ['X-Before', '1'], ['Content-Length', '200'], ['X-After', '2']], 'rewritten in its place');
  t.is(got.body.toString(), body);
  c.send('POST /twice HTTP/1.1\r\nHost: rewrite.test\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello');
  t.is((await c.response()).status, 200);
  got = b.rewrite.requests.at(-1)!;
  t.deepEqual(fieldAll(got, 'content-length'), ['5']);
  c.send('POST /plain HTTP/1.1\r\nHost: rewrite.test\r\nContent-Length:  0 \r\n\r\n');
  t.is((await c.response()).status, 200);
  t.true(b.rewrite.conns.some((k) => k.all.includes('Content-Length:  0 \r\n')), 'a plain value goes on byte for byte');
  c.send('GET /shadows HTTP/1.1\r\nHost: rewrite.test\r\nContent_Length: 99\r\nTransfer_Encoding: chunked\r\nX_Forwarded_For: 6.6.6.6\r\nx_forwarded-HOST: evil\r\nX-Forwarded_Proto: https\r\nX_Custom: kept\r\nContent_Type: kept\r\n\r\n');
  t.is((await c.response()).status, 200);
  got = b.rewrite.requests.at(-1)!;
  t.deepEqual(got.fields.filter(([k]) => k.includes('_')), [['X_Custom', 'kept'], ['Content_Type', 'kept']]);
  t.deepEqual(fieldAll(got, 'x-forwarded-for'), ['127.0.0.1']);
});

/** The access log lines of pool `pool` from the client on local port `port`, once there are `n`. */
async function logLines(dir: string, pool: string, port: number, n: number): Promise<string[]> {
  const log = path.join(dir, 'access.log');
  const mine = (): string[] => (fs.existsSync(log) ? fs.readFileSync(log, 'utf8').split('\n').filter((l) => l.includes(` ${pool} `) && l.startsWith(`127.0.0.1:${port} `)) : []);
  await waitUntil(() => mine().length >= n, `${n} access log lines for pool ${pool}`);
  return mine();
}

bothModes('access log: one line per HTTP request with the request line, status and pool', async (t, mode) => {
  const { rsp, dir } = await fixture(mode);
  const c = await RawClient.connect(t, rsp.port);
  c.send(getRequest('/', 'logpool.test'));
  await c.response();
  c.send(getRequest('/missing', 'logpool.test'));
  await c.response();
  c.send('POST /p HTTP/1.1\r\nHost: logpool.test\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi');
  await c.response();
  await c.ending();
  const ours = await logLines(dir, 'logpool', c.socket.localPort!, 3);
  t.is(ours.length, 3, ours.join('\n'));
  t.regex(ours[0], /^127\.0\.0\.1:\d+ \[[^\]]+\] "GET \/ HTTP\/1\.1" 200 127\.0\.0\.1:\d+ logpool /);
  t.regex(ours[1], /"GET \/missing HTTP\/1\.1" 404 /);
  t.regex(ours[2], /"POST \/p HTTP\/1\.1" 200 /);
});

bothModes('access log names the member that answered', async (t, mode) => {
  const { rsp, dir, b } = await fixture(mode);
  const c = await RawClient.connect(t, rsp.port);
  c.send(getRequest('/member', 'logpool.test'));
  await c.response();
  const lines = await logLines(dir, 'logpool', c.socket.localPort!, 1);
  const line = lines.find((l) => l.includes('/member'));
  t.truthy(line);
  t.regex(line!, new RegExp(` logpool 127\\.0\\.0\\.1:${b.logpool.port} `));
});

bothModes('Expect: 100-continue with a Content-Length over limits.body: 413 at once, no 100, nothing forwarded', async (t, mode) => {
  const b = await scriptedBackend(t);
  const rsp = await startRspLua(t, httpConfig(mode, b.port, 'limits = { body = 100 }'));
  const { res, how } = await oneShot(t, rsp.port, 'POST /x HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 1000\r\n\r\n');
  t.is(res.line, 'HTTP/1.1 413 Content Too Large');
  t.is(how, 'end');
  t.is(b.conns.length, 0);
});

bothModes('route() answering a status to the second request of a keep-alive connection: the client gets that status', async (t, mode) => {
  const { rsp } = await fixture(mode);
  const c = await RawClient.connect(t, rsp.port);
  c.send(getRequest('/', 'hooked.test'));
  t.is((await c.response()).body.toString(), 'hooked');
  c.send(getRequest('/admin', 'hooked.test'));
  t.is((await c.response()).line, 'HTTP/1.1 403 Forbidden');
});

bothModes('request heads of 8 KB and 20 KB (a big Cookie) reach the backend byte for byte, also on a fresh rsp', async (t, mode) => {
  const b = await scriptedBackend(t);
  const rsp = await startRspLua(t, httpConfig(mode, b.port));
  const c = await RawClient.connect(t, rsp.port);
  for (const size of [8000, 20000]) {
    const cookie = 'c'.repeat(size);
    c.send(getRequest(`/cookie${size}`, 'h', `Cookie: ${cookie}\r\n`));
    const res = await c.response();
    t.is(res.status, 200, `${size}: ${res.line}`);
    const got = b.requests.at(-1);
    t.is(got?.line, `GET /cookie${size} HTTP/1.1`);
    t.is(got === undefined ? undefined : field(got, 'cookie'), cookie);
  }
});

bothModes('acceptProxy on an HTTP listener: the PROXY header is read, and its source address goes into X-Forwarded-For', async (t, mode) => {
  const b = await scriptedBackend(t);
  const rsp = await startRspLua(t, `mode = "http"\ntriggerMode = "${mode}"\nbackends = { web = { "127.0.0.1:${b.port}" } }
listeners = { { port = "0", address = "127.0.0.1", acceptProxy = true } }\n`);
  const { res } = await oneShot(t, rsp.port, `PROXY TCP4 203.0.113.9 127.0.0.1 5555 80\r\n${getRequest('/pp', 'h', 'Connection: close\r\n')}`);
  t.is(res.status, 200, res.line);
  t.is(b.requests.length, 1);
  t.is(b.requests[0] === undefined ? undefined : field(b.requests[0], 'x-forwarded-for'), '203.0.113.9');
});

bothModes('HTTP and TCP listeners side by side: mode per listener', async (t, mode) => {
  const b = await scriptedBackend(t);
  const rsp = await startRspLua(t, `mode = "http"\ntriggerMode = "${mode}"\nbackends = { web = { "127.0.0.1:${b.port}" } }
listeners = { { port = "0", address = "127.0.0.1" }, { port = "0", address = "127.0.0.1", mode = "tcp" } }\n`);
  const ports = /Listening on ports (\d+), (\d+)/.exec(await rsp.waitFor(/Listening on ports/))!.slice(1).map(Number);
  for (const [port, target] of [[ports[0], '/http'], [ports[1], '/tcp']] as const) {
    const c = await RawClient.connect(t, port);
    c.send(getRequest(target, 'h'));
    t.is((await c.response()).status, 200);
  }
  t.deepEqual(b.requests.map((r) => r.target), ['/http', '/tcp']);
  t.deepEqual(fieldAll(b.requests[0], 'x-forwarded-for'), ['127.0.0.1'], 'HTTP mode rewrites the head');
  t.deepEqual(fieldAll(b.requests[1], 'x-forwarded-for'), [], 'TCP mode passes the bytes as they are');
});

bothModes('an IPv6 client: X-Forwarded-For names it, and trustedProxies takes IPv6 CIDRs', async (t, mode) => {
  const b = await scriptedBackend(t);
  const rsp = await startRspLua(t, `mode = "http"\ntriggerMode = "${mode}"\nbackends = { web = { "127.0.0.1:${b.port}" } }
trustedProxies = { "::1/128" }\nlisteners = { { port = "0", address = "::1" } }\n`);
  const c = await RawClient.connect(t, rsp.port, '::1');
  c.send(getRequest('/v6', '[::1]', 'X-Forwarded-For: 192.0.2.1\r\n'));
  t.is((await c.response()).status, 200);
  t.deepEqual(fieldAll(b.requests[0], 'x-forwarded-for'), ['192.0.2.1, ::1']);
});

bothModes('an HTTP/1.0 client never gets a chunked response, even from a backend that sends one', async (t, mode) => {
  const { rsp } = await fixture(mode);
  const { res, how } = await oneShot(t, rsp.port, 'GET /chunky HTTP/1.0\r\nHost: chunky.test\r\n\r\n');
  t.is(res.status, 200);
  t.is(field(res, 'transfer-encoding'), undefined);
  t.is(res.body.toString(), 'hello');
  t.is(how, 'end');
});
