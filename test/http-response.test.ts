// The backend's response head and how its body is framed (RFC 9112 §4, §6.3).
// Anything wrong is 502.
import test from 'ava';
import { BODY_CHUNKED, BODY_LENGTH, BODY_NONE, BODY_UNTIL_CLOSE, DONE, NEED_MORE } from '../src/http/head';
import { ResponseHead } from '../src/http/response';
import { serializeResponse } from '../src/http/serialize';

function whole(text: string, head = false): ResponseHead {
  const p = new ResponseHead();
  p.reset(head);
  p.feed(Buffer.from(text, 'latin1'));
  return p;
}

function bytewise(text: string, head = false): ResponseHead {
  const p = new ResponseHead();
  p.reset(head);
  const b = Buffer.from(text, 'latin1');
  for (let i = 0; i < b.length; i++) if (p.feed(b, i, i + 1) !== NEED_MORE) break;
  return p;
}

const framing: [string, string, boolean, number, number][] = [
  // name, head, answers HEAD, result, bodyKind
  ['Content-Length', 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n', false, DONE, BODY_LENGTH],
  ['Content-Length: 0', 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n', false, DONE, BODY_NONE],
  ['chunked', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n', false, DONE, BODY_CHUNKED],
  ['gzip, chunked passes as chunked', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n', false, DONE, BODY_CHUNKED],
  ['Transfer-Encoding not ending in chunked: until close', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n', false, DONE, BODY_UNTIL_CLOSE],
  ['neither: until close', 'HTTP/1.1 200 OK\r\n\r\n', false, DONE, BODY_UNTIL_CLOSE],
  ['HEAD response with Content-Length has no body', 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n', true, DONE, BODY_NONE],
  ['HEAD response chunked has no body', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n', true, DONE, BODY_NONE],
  ['204 has no body', 'HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n', false, DONE, BODY_NONE],
  ['304 has no body', 'HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n', false, DONE, BODY_NONE],
  ['100 Continue has no body', 'HTTP/1.1 100 Continue\r\n\r\n', false, DONE, BODY_NONE],
  ['103 Early Hints has no body', 'HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n', false, DONE, BODY_NONE],
  ['status line without a reason', 'HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n', false, DONE, BODY_NONE],
  ['status line without the last SP', 'HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n', false, DONE, BODY_NONE],
  ['reason with HTAB and obs-text', 'HTTP/1.1 200 O\tK \xe9\r\nContent-Length: 0\r\n\r\n', false, DONE, BODY_NONE],
  ['HTTP/1.0 response', 'HTTP/1.0 200 OK\r\n\r\n', false, DONE, BODY_UNTIL_CLOSE],

  ['both Content-Length and Transfer-Encoding', 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n', false, 502, 0],
  ['both, even on a HEAD response', 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n', true, 502, 0],
  ['invalid Content-Length', 'HTTP/1.1 200 OK\r\nContent-Length: 5x\r\n\r\n', false, 502, 0],
  ['Content-Length list', 'HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n', false, 502, 0],
  ['Content-Length lines that differ', 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n', false, 502, 0],
  ['chunked twice', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n', false, 502, 0],
  ['Transfer-Encoding in HTTP/1.0', 'HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n', false, 502, 0],
  ['HTTP/2.0 status line', 'HTTP/2.0 200 OK\r\n\r\n', false, 502, 0],
  ['status code of two digits', 'HTTP/1.1 20 OK\r\n\r\n', false, 502, 0],
  ['status code 600', 'HTTP/1.1 600 OK\r\n\r\n', false, 502, 0],
  ['status code with a letter', 'HTTP/1.1 2x0 OK\r\n\r\n', false, 502, 0],
  ['status code of four digits', 'HTTP/1.1 2000 OK\r\n\r\n', false, 502, 0],
  ['no status line', 'Content-Length: 0\r\n\r\n', false, 502, 0],
  ['empty line before the status line', '\r\nHTTP/1.1 200 OK\r\n\r\n', false, 502, 0],
  ['bare LF', 'HTTP/1.1 200 OK\nContent-Length: 0\n\n', false, 502, 0],
  ['obs-fold', 'HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n', false, 502, 0],
  ['space before the colon', 'HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n', false, 502, 0],
  ['NUL in a value', 'HTTP/1.1 200 OK\r\nX: a\x00\r\nContent-Length: 0\r\n\r\n', false, 502, 0],
  ['header section too large', `HTTP/1.1 200 OK\r\nX: ${'a'.repeat(40000)}\r\n\r\n`, false, 502, 0],
];

for (const [name, head, isHead, result, kind] of framing) {
  test(`response: ${name} -> ${result === DONE ? ['no body', 'length', 'chunked', 'until close'][kind] : result}`, (t) => {
    for (const p of [whole(head, isHead), bytewise(head, isHead)]) {
      t.is(p.result, result, p.error);
      if (result === DONE) t.is(p.bodyKind, kind);
    }
  });
}

test('response fields: status, reason, keep-alive, headEnd', (t) => {
  const text = 'HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\nServer: x\r\n\r\nabc';
  const p = whole(text);
  t.is(p.status, 404);
  t.is(p.reason, 'Not Found');
  t.is(p.contentLength, 3);
  t.true(p.keepAlive);
  t.is(p.headEnd, text.length - 3);
  t.is(serializeResponse(p), text.slice(0, -3));
  t.false(whole('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n').keepAlive);
  t.false(whole('HTTP/1.1 200 OK\r\n\r\n').keepAlive, 'a body until close ends the connection');
  t.false(whole('HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n').keepAlive);
  t.true(whole('HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n').keepAlive);
});

test('a 100 Continue is a head of its own; the final head follows in the same bytes', (t) => {
  const b = Buffer.from('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok');
  const p = new ResponseHead();
  t.is(p.feed(b), DONE);
  t.true(p.interim);
  t.is(p.status, 100);
  const next = p.headEnd;
  p.reset();
  t.is(p.feed(b, next), DONE);
  t.false(p.interim);
  t.is(p.status, 201);
  t.is(b.toString('latin1', p.headEnd), 'ok');
});

test('101 Switching Protocols ends HTTP on the connection', (t) => {
  const p = whole('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
  t.true(p.upgrade);
  t.false(p.interim);
  t.is(p.bodyKind, BODY_NONE);
});

test('reset(head) is remembered for the next heads until changed', (t) => {
  const p = new ResponseHead();
  p.reset(true);
  t.is(p.feed(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n')), DONE);
  t.is(p.bodyKind, BODY_NONE);
  p.reset(false);
  t.is(p.feed(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n')), DONE);
  t.is(p.bodyKind, BODY_LENGTH);
});
