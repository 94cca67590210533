// The request head parser, rule by rule (RFC 9112, RFC 9110): each case is a
// head and the status it must get (DONE for accepted).
import test from 'ava';
import { BODY_CHUNKED, BODY_LENGTH, BODY_NONE, DONE, NEED_MORE } from '../src/http/head';
import { RequestHead, ABSOLUTE_FORM, ASTERISK_FORM, AUTHORITY_FORM, ORIGIN_FORM } from '../src/http/request';
import { NameCache } from '../src/http/names';
import { serializeRequest } from '../src/http/serialize';
import { CORPUS } from './http-corpus';

function whole(text: string, limits = {}): RequestHead {
  const p = new RequestHead(limits);
  p.feed(Buffer.from(text, 'latin1'));
  return p;
}

/** Feeds one byte per call; returns the parser after the first result other than NEED_MORE. */
function bytewise(text: string, limits = {}): RequestHead {
  const p = new RequestHead(limits);
  const b = Buffer.from(text, 'latin1');
  for (let i = 0; i < b.length; i++) if (p.feed(b, i, i + 1) !== NEED_MORE) break;
  return p;
}

const H = 'Host: example.com\r\n';
const cases: [string, string, number][] = [
  // accepted
  ['simple GET', `GET / HTTP/1.1\r\n${H}\r\n`, DONE],
  ['HTTP/1.0 without Host', 'GET / HTTP/1.0\r\n\r\n', DONE],
  ['extension method M-SEARCH', `M-SEARCH * HTTP/1.1\r\n${H}\r\n`.replace('*', '/'), DONE],
  ['extension method PURGE', `PURGE /cache/x HTTP/1.1\r\n${H}\r\n`, DONE],
  ['one empty line before the request line (§2.2)', `\r\nGET / HTTP/1.1\r\n${H}\r\n`, DONE],
  ['several empty lines before the request line', `\r\n\r\n\r\nGET / HTTP/1.1\r\n${H}\r\n`, DONE],
  ['absolute-form', `GET http://example.com/a?b HTTP/1.1\r\n${H}\r\n`, DONE],
  ['absolute-form https, empty path', `GET https://example.com HTTP/1.1\r\n${H}\r\n`, DONE],
  ['authority-form for CONNECT', `CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n`, DONE],
  ['asterisk-form for OPTIONS', `OPTIONS * HTTP/1.1\r\n${H}\r\n`, DONE],
  ['field value with obs-text', `GET / HTTP/1.1\r\n${H}X-Name: caf\xe9\r\n\r\n`, DONE],
  ['field value with HTAB inside', `GET / HTTP/1.1\r\n${H}X: a\tb\r\n\r\n`, DONE],
  ['empty field value', `GET / HTTP/1.1\r\n${H}X:\r\n\r\n`, DONE],
  ['Host with port', `GET / HTTP/1.1\r\nHost: example.com:8080\r\n\r\n`, DONE],
  ['Host IPv6 literal', `GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n`, DONE],
  ['Host IPv4', `GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`, DONE],
  ['empty Host in absolute-form (the target names the host)', `GET http://example.com/ HTTP/1.1\r\nHost:\r\n\r\n`, DONE],
  ['Content-Length', `POST / HTTP/1.1\r\n${H}Content-Length: 5\r\n\r\n`, DONE],
  ['identical Content-Length lines are folded', `POST / HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: 5\r\n\r\n`, DONE],
  ['Transfer-Encoding: chunked', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n`, DONE],
  ['Transfer-Encoding: Chunked (coding names are case-insensitive)', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: Chunked\r\n\r\n`, DONE],
  ['target with every sub-delim and pct-encoding', `GET /a!$&'()*+,;=:@-._~%20?x=/?:@[]{}|^\`\\ HTTP/1.1\r\n${H}\r\n`, DONE],

  // request line
  ['bare LF after the request line', `GET / HTTP/1.1\n${H}\r\n`, 400],
  ['bare LF after a field', `GET / HTTP/1.1\r\nHost: a\n\r\n`, 400],
  ['bare LF as the end of the head', `GET / HTTP/1.1\r\n${H}\n`, 400],
  ['bare LF before the request line', `\nGET / HTTP/1.1\r\n${H}\r\n`, 400],
  ['bare CR inside the request line', `GET /\r HTTP/1.1\r\n${H}\r\n`, 400],
  ['bare CR inside a field value', `GET / HTTP/1.1\r\n${H}X: a\rb\r\n\r\n`, 400],
  ['bare CR before the request line', `\rGET / HTTP/1.1\r\n${H}\r\n`, 400],
  ['method not a token (@)', `GE@T / HTTP/1.1\r\n${H}\r\n`, 400],
  ['empty method', ` / HTTP/1.1\r\n${H}\r\n`, 400],
  ['two spaces after the method', `GET  / HTTP/1.1\r\n${H}\r\n`, 400],
  ['two spaces before the version', `GET /  HTTP/1.1\r\n${H}\r\n`, 400],
  ['HTAB between parts', `GET\t/ HTTP/1.1\r\n${H}\r\n`, 400],
  ['trailing space after the version', `GET / HTTP/1.1 \r\n${H}\r\n`, 400],
  ['no version (HTTP/0.9 style)', `GET /\r\n\r\n`, 400],
  ['raw UTF-8 in the target', `GET /caf\xc3\xa9 HTTP/1.1\r\n${H}\r\n`, 400],
  ['control byte in the target', `GET /a\x01b HTTP/1.1\r\n${H}\r\n`, 400],
  ['NUL in the target', `GET /a\x00b HTTP/1.1\r\n${H}\r\n`, 400],
  ['fragment in the target', `GET /a#b HTTP/1.1\r\n${H}\r\n`, 400],
  ['relative target', `GET a/b HTTP/1.1\r\n${H}\r\n`, 400],
  ['absolute-form with another scheme', `GET ftp://example.com/ HTTP/1.1\r\n${H}\r\n`, 400],
  ['absolute-form with userinfo', `GET http://user@example.com/ HTTP/1.1\r\n${H}\r\n`, 400],
  ['absolute-form with an empty host', `GET http:///a HTTP/1.1\r\n${H}\r\n`, 400],
  ['authority-form for GET', `GET example.com:80 HTTP/1.1\r\n${H}\r\n`, 400],
  ['origin-form for CONNECT', `CONNECT / HTTP/1.1\r\n${H}\r\n`, 400],
  ['CONNECT without a port', `CONNECT example.com HTTP/1.1\r\n${H}\r\n`, 400],
  ['asterisk-form for GET', `GET * HTTP/1.1\r\n${H}\r\n`, 400],
  ['lower-case version', `GET / http/1.1\r\n${H}\r\n`, 400],
  ['garbage version', `GET / HTTP/1.x\r\n${H}\r\n`, 400],
  ['version with two-digit major', `GET / HTTP/11.1\r\n${H}\r\n`, 400],
  ['HTTP/2.0', `GET / HTTP/2.0\r\n${H}\r\n`, 505],
  ['HTTP/1.2', `GET / HTTP/1.2\r\n${H}\r\n`, 505],
  ['HTTP/0.9 with a version', `GET / HTTP/0.9\r\n${H}\r\n`, 505],

  // fields
  ['space before the colon', `GET / HTTP/1.1\r\n${H}X-A : b\r\n\r\n`, 400],
  ['tab before the colon', `GET / HTTP/1.1\r\n${H}X-A\t: b\r\n\r\n`, 400],
  ['field name with @', `GET / HTTP/1.1\r\n${H}Fo@: x\r\n\r\n`, 400],
  ['empty field name', `GET / HTTP/1.1\r\n${H}: x\r\n\r\n`, 400],
  ['line without a colon', `GET / HTTP/1.1\r\n${H}NoColon\r\n\r\n`, 400],
  ['obs-fold (SP)', `GET / HTTP/1.1\r\n${H}X: a\r\n b\r\n\r\n`, 400],
  ['obs-fold (HTAB)', `GET / HTTP/1.1\r\n${H}X: a\r\n\tb\r\n\r\n`, 400],
  ['whitespace before the first field', `GET / HTTP/1.1\r\n ${H}\r\n`, 400],
  ['NUL in a field value', `GET / HTTP/1.1\r\n${H}X: a\x00b\r\n\r\n`, 400],
  ['control byte in a field value', `GET / HTTP/1.1\r\n${H}X: a\x1bb\r\n\r\n`, 400],
  ['DEL in a field value', `GET / HTTP/1.1\r\n${H}X: a\x7fb\r\n\r\n`, 400],

  // Host
  ['HTTP/1.1 without Host', 'GET / HTTP/1.1\r\nX: y\r\n\r\n', 400],
  ['two Host fields', `GET / HTTP/1.1\r\n${H}${H}\r\n`, 400],
  ['two Host fields on HTTP/1.0', `GET / HTTP/1.0\r\n${H}${H}\r\n`, 400],
  ['Host with a path', 'GET / HTTP/1.1\r\nHost: example.com/a\r\n\r\n', 400],
  ['Host with a space', 'GET / HTTP/1.1\r\nHost: exa mple.com\r\n\r\n', 400],
  ['Host with userinfo', 'GET / HTTP/1.1\r\nHost: u@example.com\r\n\r\n', 400],
  ['Host with a bad port', 'GET / HTTP/1.1\r\nHost: example.com:8o\r\n\r\n', 400],
  ['Host with a port over 65535', 'GET / HTTP/1.1\r\nHost: example.com:65536\r\n\r\n', 400],
  ['Host with a bad IPv6 literal', 'GET / HTTP/1.1\r\nHost: [::1::2]\r\n\r\n', 400],
  ['Host list', 'GET / HTTP/1.1\r\nHost: a.com, b.com\r\n\r\n', 400],
  ['empty Host: an http target URI without a host (RFC 9112 §3.3, RFC 9110 §4.2.1)', 'GET / HTTP/1.1\r\nHost:\r\n\r\n', 400],
  ['empty Host on HTTP/1.0', 'GET / HTTP/1.0\r\nHost: \r\n\r\n', 400],
  ['empty Host with OPTIONS *', 'OPTIONS * HTTP/1.1\r\nHost:\r\n\r\n', 400],

  // framing
  ['Content-Length not digits', `POST / HTTP/1.1\r\n${H}Content-Length: 5a\r\n\r\n`, 400],
  ['Content-Length negative', `POST / HTTP/1.1\r\n${H}Content-Length: -1\r\n\r\n`, 400],
  ['Content-Length with a sign', `POST / HTTP/1.1\r\n${H}Content-Length: +5\r\n\r\n`, 400],
  ['Content-Length empty', `POST / HTTP/1.1\r\n${H}Content-Length:\r\n\r\n`, 400],
  ['Content-Length list "5, 5"', `POST / HTTP/1.1\r\n${H}Content-Length: 5, 5\r\n\r\n`, 400],
  ['Content-Length lines that differ', `POST / HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: 6\r\n\r\n`, 400],
  ['Content-Length overflow', `POST / HTTP/1.1\r\n${H}Content-Length: 9007199254740992\r\n\r\n`, 400],
  ['Content-Length way over 2^64', `POST / HTTP/1.1\r\n${H}Content-Length: 99999999999999999999999999\r\n\r\n`, 400],
  ['both Content-Length and Transfer-Encoding', `POST / HTTP/1.1\r\n${H}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n`, 400],
  ['Transfer-Encoding not ending in chunked', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked, gzip\r\n\r\n`, 400],
  ['Transfer-Encoding: gzip alone', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: gzip\r\n\r\n`, 400],
  ['Transfer-Encoding: identity', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: identity\r\n\r\n`, 400],
  ['chunked twice', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked, chunked\r\n\r\n`, 400],
  ['chunked twice over two lines', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n`, 400],
  ['Transfer-Encoding not a token', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: "chunked"\r\n\r\n`, 400],
  ['Transfer-Encoding empty', `POST / HTTP/1.1\r\n${H}Transfer-Encoding:\r\n\r\n`, 400],
  ['Transfer-Encoding in HTTP/1.0', `POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n`, 400],
  ['parameters on chunked', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked;q=1\r\n\r\n`, 400],
  ['Transfer-Encoding with a space inside the coding', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chun ked\r\n\r\n`, 400],
  ['gzip, chunked: a coding rsp does not implement', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: gzip, chunked\r\n\r\n`, 501],
  ['gzip then chunked over two lines', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n`, 501],
  ['Connection not a token list', `GET / HTTP/1.1\r\n${H}Connection: close; x\r\n\r\n`, 400],

  // limits
  ['request line over 8192 bytes', `GET /${'a'.repeat(8200)} HTTP/1.1\r\n${H}\r\n`, 414],
  ['a method over 8192 bytes: no request line at all (400, not 414)', `${'A'.repeat(8200)} / HTTP/1.1\r\n${H}\r\n`, 400],
  ['header section over 32768 bytes', `GET / HTTP/1.1\r\n${H}X: ${'a'.repeat(33000)}\r\n\r\n`, 431],
  ['101 header fields', `GET / HTTP/1.1\r\n${H}${'X: y\r\n'.repeat(100)}\r\n`, 431],
];

for (const [name, head, status] of cases) {
  test(`${name} -> ${status === DONE ? 'accepted' : status}`, (t) => {
    const a = whole(head);
    t.is(a.result, status, a.error);
    const b = bytewise(head);
    t.is(b.result, status, `byte by byte: ${b.error}`);
  });
}

test('100 header fields are allowed; limits can be set', (t) => {
  t.is(whole(`GET / HTTP/1.1\r\n${H}${'X: y\r\n'.repeat(99)}\r\n`).result, DONE);
  t.is(whole(`GET /abcdef HTTP/1.1\r\n${H}\r\n`, { requestLine: 19 }).result, 414);
  t.is(whole(`GET /abcde HTTP/1.1\r\n${H}\r\n`, { requestLine: 19 }).result, DONE);
  t.is(whole(`GET / HTTP/1.1\r\n${H}X: y\r\n\r\n`, { headers: 1 }).result, 431);
  t.is(whole(`GET / HTTP/1.1\r\n${H}\r\n`, { headerBytes: H.length + 2 }).result, DONE);
  t.is(whole(`GET / HTTP/1.1\r\n${H}\r\n`, { headerBytes: H.length + 1 }).result, 431);
});

test('limits are enforced before the end of the line arrives', (t) => {
  const p = new RequestHead();
  t.is(p.feed(Buffer.from('GET /' + 'a'.repeat(9000))), 414);
  t.is(new RequestHead().feed(Buffer.from('A'.repeat(9000))), 400, 'still in the method');
  const q = new RequestHead();
  t.is(q.feed(Buffer.from(`GET / HTTP/1.1\r\nX: ${'a'.repeat(20000)}`)), NEED_MORE);
  t.is(q.feed(Buffer.from('a'.repeat(20000))), 431);
});

test('a TLS ClientHello is refused at once', (t) => {
  const p = new RequestHead();
  t.is(p.feed(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03])), 400);
});

test('what a request exposes', (t) => {
  const p = whole('GET /a/b?c=d&e HTTP/1.1\r\nHost: Example.COM:8080\r\nX-Y:  spaced value \t\r\nConnection: close\r\n\r\n');
  t.is(p.result, DONE);
  t.is(p.method, 'GET');
  t.true(p.isMethod('GET'));
  t.false(p.isMethod('get'));
  t.is(p.target, '/a/b?c=d&e');
  t.is(p.path, '/a/b');
  t.is(p.query, 'c=d&e');
  t.is(p.version, 11);
  t.is(p.host, 'example.com');
  t.is(p.header('x-y'), 'spaced value');
  t.is(p.header('X-Y'), 'spaced value');
  t.is(p.header('nope'), null);
  t.is(p.form, ORIGIN_FORM);
  t.false(p.keepAlive);
  t.is(p.bodyKind, BODY_NONE);
  t.deepEqual(p.headers(), [['Host', 'Example.COM:8080'], ['X-Y', 'spaced value'], ['Connection', 'close']]);
});

test('target forms, host from the target, path and query', (t) => {
  const a = whole('GET HTTP://Other.example:81?q HTTP/1.1\r\nHost: ignored.example\r\n\r\n');
  t.is(a.form, ABSOLUTE_FORM);
  t.is(a.host, 'other.example');
  t.is(a.path, '/');
  t.is(a.query, 'q');
  const c = whole('CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n');
  t.is(c.form, AUTHORITY_FORM);
  t.is(c.host, '[::1]');
  t.is(c.query, null);
  t.true(c.isConnect);
  const o = whole(`OPTIONS * HTTP/1.1\r\n${H}\r\n`);
  t.is(o.form, ASTERISK_FORM);
  t.is(o.path, '*');
  t.is(whole('GET / HTTP/1.0\r\n\r\n').host, '');
  t.is(whole('GET /x? HTTP/1.1\r\nHost: h\r\n\r\n').query, '');
});

test('keep-alive per version and Connection', (t) => {
  t.true(whole(`GET / HTTP/1.1\r\n${H}\r\n`).keepAlive);
  t.false(whole(`GET / HTTP/1.1\r\n${H}Connection: Close\r\n\r\n`).keepAlive);
  t.false(whole(`GET / HTTP/1.1\r\n${H}Connection: keep-alive, close\r\n\r\n`).keepAlive);
  t.false(whole('GET / HTTP/1.0\r\n\r\n').keepAlive);
  t.true(whole('GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n').keepAlive);
  t.true(whole(`GET / HTTP/1.1\r\n${H}Connection: ,, foo ,\r\n\r\n`).keepAlive);
});

test('Expect: 100-continue and Upgrade', (t) => {
  t.true(whole(`POST / HTTP/1.1\r\n${H}Expect: 100-Continue\r\nContent-Length: 3\r\n\r\n`).expectContinue);
  t.false(whole('POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n').expectContinue);
  t.false(whole(`POST / HTTP/1.1\r\n${H}Expect: something\r\n\r\n`).expectContinue);
  t.true(whole(`GET / HTTP/1.1\r\n${H}Connection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n`).upgrade);
  t.false(whole(`GET / HTTP/1.1\r\n${H}Upgrade: websocket\r\n\r\n`).upgrade);
  t.false(whole('GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n').upgrade);
});

test('framing: length, chunked, none', (t) => {
  const a = whole(`POST / HTTP/1.1\r\n${H}Content-Length: 0012\r\n\r\n`);
  t.is(a.bodyKind, BODY_LENGTH);
  t.is(a.contentLength, 12);
  const z = whole(`POST / HTTP/1.1\r\n${H}Content-Length: 0\r\n\r\n`);
  t.is(z.bodyKind, BODY_NONE);
  t.is(z.contentLength, 0);
  const c = whole(`POST / HTTP/1.1\r\n${H}Transfer-Encoding: ,chunked\r\n\r\n`);
  t.is(c.bodyKind, BODY_CHUNKED);
  t.is(c.contentLength, -1);
  t.is(whole(`POST / HTTP/1.1\r\n${H}Content-Length: 9007199254740991\r\n\r\n`).contentLength, Number.MAX_SAFE_INTEGER);
});

test('headEnd points at the body in the last buffer fed, whole or split', (t) => {
  const head = `POST /u HTTP/1.1\r\n${H}Content-Length: 4\r\n\r\n`;
  const b = Buffer.from(head + 'BODY');
  const p = new RequestHead();
  t.is(p.feed(b), DONE);
  t.is(p.headEnd, head.length);
  t.is(p.headLength, head.length);
  const q = new RequestHead();
  t.is(q.feed(b, 0, 10), NEED_MORE);
  t.is(q.feed(b, 10, b.length), DONE);
  t.is(q.headEnd, head.length);
  // With leading empty lines and an offset into the buffer.
  const c = Buffer.from('xx\r\n\r\n' + head + 'BODY');
  const r = new RequestHead();
  t.is(r.feed(c, 2, 5), NEED_MORE);
  t.is(r.feed(c, 5, 20), NEED_MORE);
  t.is(r.feed(c, 20, c.length), DONE);
  t.is(c.toString('latin1', r.headEnd), 'BODY');
  t.is(r.raw().toString('latin1'), head);
});

test('the head outlives the caller\'s buffer; reset() parses the next request', (t) => {
  const p = new RequestHead();
  const b = Buffer.from(`GET /one HTTP/1.1\r\n${H}\r\nGET /two HTTP/1.1\r\n${H}\r\n`);
  t.is(p.feed(b), DONE);
  const second = p.headEnd;
  b.fill(0, 0, second);
  t.is(p.target, '/one');
  t.is(p.host, 'example.com');
  p.reset();
  t.is(p.feed(b, second), DONE);
  t.is(p.target, '/two');
  t.is(p.headEnd, b.length);
  p.reset();
  t.is(p.feed(Buffer.from('GET /three HTTP/1.0\r\n\r\n')), DONE);
  t.is(p.host, '', 'nothing of the previous request is left');
  t.is(p.headerCount, 0);
  t.is(p.header('host'), null);
});

test('after DONE or an error, feed() returns the same result until reset()', (t) => {
  const p = whole(`GET / HTTP/1.1\r\n${H}\r\n`);
  t.is(p.feed(Buffer.from('GET')), DONE);
  const q = whole('GET / HTTP/9.9\r\n\r\n');
  t.is(q.feed(Buffer.from('\r\n')), 505);
  t.is(q.error, 'HTTP version not supported');
  q.reset();
  t.is(q.feed(Buffer.from(`GET / HTTP/1.1\r\n${H}\r\n`)), DONE);
});

test('the corpus: whole, byte by byte and re-serialised heads parse identically', (t) => {
  for (const head of CORPUS) {
    const a = whole(head);
    t.is(a.result, DONE, `${a.error}: ${head.slice(0, 40)}`);
    const b = bytewise(head);
    t.is(b.result, DONE);
    t.deepEqual(b.headers(), a.headers());
    t.is(b.target, a.target);
    t.is(serializeRequest(a), head);
  }
});

test('inProgress says a head is partly here; release() drops the buffer and the parser still works', (t) => {
  const p = new RequestHead();
  t.false(p.inProgress);
  t.is(p.feed(Buffer.from('\r\n')), NEED_MORE);
  t.true(p.inProgress, 'an empty line counts as the start');
  t.is(p.feed(Buffer.from('GET / HT')), NEED_MORE);
  t.true(p.inProgress);
  t.is(p.feed(Buffer.from(`TP/1.1\r\n${H}\r\n`)), DONE);
  t.false(p.inProgress);
  p.release();
  t.false(p.inProgress);
  t.is(p.feed(Buffer.from(`GET /after HTTP/1.1\r\n${H}\r\n`)), DONE);
  t.is(p.target, '/after');
});

test('empty lines before the request line are bounded', (t) => {
  t.is(whole('\r\n'.repeat(4096) + `GET / HTTP/1.1\r\n${H}\r\n`).result, DONE);
  t.is(whole('\r\n'.repeat(4097) + `GET / HTTP/1.1\r\n${H}\r\n`).result, 400);
});

test('a huge read after a partial head is refused by the limits, not buffered', (t) => {
  const p = new RequestHead();
  t.is(p.feed(Buffer.from(`GET / HTTP/1.1\r\n${H}X: `)), NEED_MORE);
  t.is(p.feed(Buffer.alloc(1 << 20, 0x61)), 431);
  t.true(p.bytes.length <= 64 * 1024, `the parser's buffer stayed small: ${p.bytes.length}`);
});

test('the field-name cache gives back exactly the bytes as text (or lower-cased), with many names per set and names of every length', (t) => {
  const tchars = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  let seed = 7;
  const next = (n: number): number => ((seed = (seed * 1103515245 + 12345) % 2147483648) % n);
  const names: string[] = [];
  for (let i = 0; i < 3000; i++) {
    let name = '';
    for (let n = 1 + next(i < 2000 ? 20 : 60); name.length < n;) name += tchars[next(tchars.length)];
    names.push(name);
  }
  names.push('Content-Type', 'content-type', 'CONTENT-TYPE', 'X');
  const asIs = new NameCache(false);
  const lower = new NameCache(true);
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < names.length; i++) {
      const name = names[(i * 7919 + round) % names.length];
      const d = Buffer.from(`..${name}:`, 'latin1');
      const got = asIs.get(d, 2, 2 + name.length);
      const key = lower.get(d, 2, 2 + name.length);
      if (got !== name || key !== name.toLowerCase()) {
        t.fail(`${JSON.stringify(name)}: ${JSON.stringify(got)}, ${JSON.stringify(key)}`);
        return;
      }
    }
  }
  t.is(asIs.get(Buffer.from('x'), 0, 0), '');
  t.pass();
});
