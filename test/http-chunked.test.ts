// The chunked body validator (RFC 9112 §7.1): where a body ends, what it refuses.
import test from 'ava';
import { CHUNKED_ERROR, CHUNKED_NEED_MORE, ChunkedBody } from '../src/http/chunked';

/** Feeds all of `text`; returns [result, bodyBytes, error]. */
function run(text: string, limits = {}): [number, number, string] {
  const c = new ChunkedBody(limits);
  const r = c.feed(Buffer.from(text, 'latin1'));
  return [r, c.bodyBytes, c.error];
}

/** Every split of `text` in two, then every byte alone: the same end and body size as whole. */
function splits(text: string): [number, number][] {
  const b = Buffer.from(text, 'latin1');
  const out: [number, number][] = [];
  for (let cut = 0; cut <= b.length; cut++) {
    const c = new ChunkedBody();
    let r = c.feed(b, 0, cut);
    if (r === CHUNKED_NEED_MORE) r = c.feed(b, cut, b.length);
    out.push([r, c.bodyBytes]);
  }
  const c = new ChunkedBody();
  let r = CHUNKED_NEED_MORE;
  for (let i = 0; i < b.length && r === CHUNKED_NEED_MORE; i++) r = c.feed(b, i, i + 1);
  out.push([r, c.bodyBytes]);
  return out;
}

const valid: [string, string, number][] = [
  ['one chunk', '5\r\nhello\r\n0\r\n\r\n', 5],
  ['two chunks, upper- and lower-case hex', 'A\r\n0123456789\r\nb\r\n0123456789a\r\n0\r\n\r\n', 21],
  ['no chunk at all', '0\r\n\r\n', 0],
  ['last-chunk of several zeros', '000\r\n\r\n', 0],
  ['leading zeros in a size', '0005\r\nhello\r\n0\r\n\r\n', 5],
  ['extension without value', '5;foo\r\nhello\r\n0\r\n\r\n', 5],
  ['extension with token value', '5;foo=bar\r\nhello\r\n0\r\n\r\n', 5],
  ['extension with quoted value and escapes', '5;foo="b\\"a;r"\r\nhello\r\n0\r\n\r\n', 5],
  ['several extensions with BWS', '5 ; a = 1 ;b;c="x"\r\nhello\r\n0;last\r\n\r\n', 5],
  ['trailer fields', '5\r\nhello\r\n0\r\nChecksum: abc\r\nX-Other:\r\n\r\n', 5],
  ['data holding CRLFs', '4\r\n\r\n\r\n\r\n0\r\n\r\n', 4],
];

for (const [name, body, size] of valid) {
  test(`chunked: ${name}`, (t) => {
    const [r, n, why] = run(body + 'NEXT');
    t.is(r, body.length, why);
    t.is(n, size);
    for (const [sr, sn] of splits(body + 'NEXT')) {
      t.is(sr, body.length);
      t.is(sn, size);
    }
  });
}

const invalid: [string, string][] = [
  ['no size', '\r\nhello\r\n0\r\n\r\n'],
  ['size not hex', 'g\r\nhello\r\n0\r\n\r\n'],
  ['size with a sign', '+5\r\nhello\r\n0\r\n\r\n'],
  ['size with 0x', '0x5\r\nhello\r\n0\r\n\r\n'],
  ['size overflow', '20000000000000\r\n'],
  ['size way over 2^64', 'fffffffffffffffffffff\r\n'],
  ['space after the size with no extension', '5 \r\nhello\r\n0\r\n\r\n'],
  ['bare LF after the size', '5\nhello\r\n0\r\n\r\n'],
  ['bare CR after the size', '5\rhello\r\n0\r\n\r\n'],
  ['data longer than its size', '5\r\nhello!\r\n0\r\n\r\n'],
  ['LF alone after the data', '5\r\nhello\n0\r\n\r\n'],
  ['extension name not a token', '5;f@o\r\nhello\r\n0\r\n\r\n'],
  ['extension without a name', '5;=x\r\nhello\r\n0\r\n\r\n'],
  ['extension value empty', '5;a=\r\nhello\r\n0\r\n\r\n'],
  ['extension value not a token', '5;a=b@c\r\nhello\r\n0\r\n\r\n'],
  ['unterminated quoted value', '5;a="x\r\nhello\r\n0\r\n\r\n'],
  ['control byte in a quoted value', '5;a="\x01"\r\nhello\r\n0\r\n\r\n'],
  ['trailing space after an extension name', '5;a \r\nhello\r\n0\r\n\r\n'],
  ['text after a quoted value', '5;a="x"y\r\nhello\r\n0\r\n\r\n'],
  ['trailer without a colon', '0\r\nBad\r\n\r\n'],
  ['trailer with a space before the colon', '0\r\nBad : x\r\n\r\n'],
  ['trailer obs-fold', '0\r\nA: b\r\n c\r\n\r\n'],
  ['trailer with NUL', '0\r\nA: \x00\r\n\r\n'],
  ['bare LF at the end', '0\r\n\n'],
  ['size line over the limit', `5;${'a'.repeat(5000)}\r\n`],
  ['trailers over the limit', `0\r\nA: ${'b'.repeat(40000)}\r\n\r\n`],
];

for (const [name, body] of invalid) {
  test(`chunked refuses: ${name}`, (t) => {
    const [r, , why] = run(body);
    t.is(r, CHUNKED_ERROR);
    t.true(why.length > 0);
    const b = Buffer.from(body, 'latin1');
    const c = new ChunkedBody();
    let s = CHUNKED_NEED_MORE;
    for (let i = 0; i < b.length && s === CHUNKED_NEED_MORE; i++) s = c.feed(b, i, i + 1);
    t.is(s, CHUNKED_ERROR, 'byte by byte');
  });
}

test('a request\'s trailers may not name Content-Length, Transfer-Encoding or Host (any case, split anywhere); a response\'s may, and other names pass both', (t) => {
  const feedBytewise = (text: string, framingTrailers: boolean): [number, string] => {
    const b = Buffer.from(text, 'latin1');
    const c = new ChunkedBody({}, framingTrailers);
    let r = CHUNKED_NEED_MORE;
    for (let i = 0; i < b.length && r === CHUNKED_NEED_MORE; i++) r = c.feed(b, i, i + 1);
    return [r, c.error];
  };
  for (const name of ['Content-Length', 'transfer-encoding', 'HOST']) {
    const body = `5\r\nhello\r\n0\r\nX-Sum: 1\r\n${name}: 5\r\n\r\n`;
    t.deepEqual(feedBytewise(body, false), [CHUNKED_ERROR, 'a framing field in the trailers'], `request: ${name}`);
    const whole = new ChunkedBody({}, false);
    t.is(whole.feed(Buffer.from(body, 'latin1')), CHUNKED_ERROR, `request, whole: ${name}`);
    t.is(feedBytewise(body, true)[0], body.length, `response: ${name}`);
  }
  for (const name of ['Content-Lengthy', 'Hosts', 'Content-Type', 'Transfer-Encodings-Extra', 'X-Host']) {
    const body = `0\r\n${name}: 5\r\n\r\n`;
    t.is(feedBytewise(body, false)[0], body.length, `request: ${name} passes`);
  }
});

test('chunked: a large chunk split anywhere is skipped in steps, not bytes; bodyBytes counts data only', (t) => {
  const data = Buffer.alloc(1 << 20, 0x61);
  const c = new ChunkedBody();
  t.is(c.feed(Buffer.from('100000\r\n')), CHUNKED_NEED_MORE);
  t.is(c.feed(data, 0, 12345), CHUNKED_NEED_MORE);
  t.is(c.bodyBytes, 12345);
  t.is(c.feed(data, 12345), CHUNKED_NEED_MORE);
  const tail = Buffer.from('\r\n0\r\n\r\nGET');
  t.is(c.feed(tail), 7);
  t.true(c.done);
  t.is(c.bodyBytes, 1 << 20);
  t.is(c.feed(tail, 7), 7, 'after the end it takes nothing');
  c.reset();
  t.false(c.done);
  t.is(c.feed(Buffer.from('0\r\n\r\n')), 5);
});
