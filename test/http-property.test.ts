// Properties of the parsers, on random input (fast-check; a failure prints its
// seed and the shrunk counterexample):
// - a valid head is accepted, and parses identically however it is split;
// - anything accepted, re-serialised, parses to the same request;
// - random and mutated heads never throw, end in a bounded number of steps, and
//   get the same result whole as split at random points;
// - chunked bodies end at the same byte, with the same size, however split.
import test from 'ava';
import fc from 'fast-check';
import { DONE, NEED_MORE } from '../src/http/head';
import { RequestHead } from '../src/http/request';
import { ResponseHead } from '../src/http/response';
import { CHUNKED_ERROR, CHUNKED_NEED_MORE, ChunkedBody } from '../src/http/chunked';
import { serializeRequest } from '../src/http/serialize';
import { CORPUS } from './http-corpus';

// HTTP_PROPERTY_RUNS=5000 for a longer hunt.
const RUNS = Number(process.env.HTTP_PROPERTY_RUNS ?? 300);
const STATUSES = [NEED_MORE, DONE, 400, 414, 431, 501, 505];

const ALPHA = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';
const DIGIT = '0123456789';
const TCHARS = ALPHA + DIGIT + "!#$%&'*+-.^_`|~";
const PCHARS = ALPHA + DIGIT + "-._~!$&'()*+,;=:@%/";

const chars = (set: string, minLength: number, maxLength: number) => fc.string({ unit: fc.constantFrom(...set.split('')), minLength, maxLength });
const token = (max = 12) => chars(TCHARS, 1, max);
const fieldChar = fc.oneof(
  fc.integer({ min: 0x21, max: 0x7e }),
  fc.integer({ min: 0x80, max: 0xff }),
  fc.constantFrom(0x20, 0x09),
).map((c) => String.fromCharCode(c));
const fieldValue = fc.string({ unit: fieldChar, maxLength: 40 });
const hostName = fc.oneof(
  fc.array(chars(ALPHA + DIGIT + '-', 1, 10), { minLength: 1, maxLength: 4 }).map((labels) => labels.join('.')),
  fc.constant('[::1]'),
  fc.constant('127.0.0.1'),
);
const port = fc.option(fc.integer({ min: 0, max: 65535 }).map(String), { nil: undefined });
const SPECIAL = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'upgrade', 'expect']);
const extraField = fc.tuple(token(16).filter((n) => !SPECIAL.has(n.toLowerCase())), fieldValue);

interface Req { method: string; target: string; version: string; lines: [string, string][] }

const validRequest: fc.Arbitrary<Req> = fc
  .record({
    method: fc.oneof(fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'HEAD', 'M-SEARCH', 'PURGE'), token(10)),
    path: chars(PCHARS, 0, 30).map((p) => '/' + p.replace(/%/g, '%25')),
    query: fc.option(chars(PCHARS + '?', 0, 20).map((q) => q.replace(/%/g, '%41')), { nil: undefined }),
    version: fc.constantFrom('1.0', '1.1'),
    host: hostName,
    port,
    hostCase: fc.constantFrom('Host', 'host', 'HOST'),
    framing: fc.oneof(fc.constant(''), fc.nat({ max: 1e9 }).map((n) => `cl:${n}`), fc.constant('te')),
    connection: fc.constantFrom('', 'close', 'keep-alive', 'Upgrade, keep-alive'),
    extras: fc.array(extraField, { maxLength: 30 }),
    at: fc.nat(),
  })
  .filter((r) => !(r.framing === 'te' && r.version === '1.0') && !['CONNECT', 'OPTIONS'].includes(r.method))
  .map((r) => {
    const lines: [string, string][] = [...r.extras];
    const put = (name: string, value: string) => lines.splice(r.at % (lines.length + 1), 0, [name, value]);
    put(r.hostCase, r.port === undefined ? r.host : `${r.host}:${r.port}`);
    if (r.framing.startsWith('cl:')) put('Content-Length', r.framing.slice(3));
    if (r.framing === 'te') put('Transfer-Encoding', 'chunked');
    if (r.connection) put('Connection', r.connection);
    return { method: r.method, target: r.path + (r.query === undefined ? '' : '?' + r.query), version: r.version, lines };
  });

function text(r: Req, ows = ' '): string {
  return `${r.method} ${r.target} HTTP/${r.version}\r\n` + r.lines.map(([n, v]) => `${n}:${ows}${v}\r\n`).join('') + '\r\n';
}

/** Everything a parsed request says, for comparisons. */
function snapshot(p: RequestHead) {
  if (p.result !== DONE) return { result: p.result };
  return {
    result: p.result, method: p.method, target: p.target, path: p.path, query: p.query, version: p.version, host: p.host,
    headers: p.headers(), bodyKind: p.bodyKind, contentLength: p.contentLength, keepAlive: p.keepAlive,
    upgrade: p.upgrade, expectContinue: p.expectContinue, headLength: p.headLength,
  };
}

/** Feeds `b` in pieces ending at the given cut points; stops at the first result. */
function feedSplit(p: RequestHead | ResponseHead, b: Buffer, cuts: number[]): number {
  let from = 0;
  let r = NEED_MORE;
  const points = [...new Set(cuts.map((c) => c % (b.length + 1)))].sort((x, y) => x - y);
  for (const cut of [...points, b.length]) {
    if (cut < from) continue;
    r = p.feed(b, from, cut);
    from = cut;
    if (r !== NEED_MORE) break;
  }
  return r;
}

function parse(b: Buffer): RequestHead {
  const p = new RequestHead();
  p.feed(b);
  return p;
}

test('a valid request is accepted and parses to what was sent', (t) => {
  fc.assert(fc.property(validRequest, fc.constantFrom('', ' ', '\t', '  '), (r, ows) => {
    const p = parse(Buffer.from(text(r, ows), 'latin1'));
    if (p.result !== DONE) throw new Error(`${p.result} ${p.error}`);
    t.is(p.method, r.method);
    t.is(p.target, r.target);
    t.deepEqual(p.headers(), r.lines.map(([n, v]) => [n, v.replace(/^[ \t]+|[ \t]+$/g, '')]));
  }), { numRuns: RUNS });
  t.pass();
});

test('a valid request split at every byte boundary parses identically', (t) => {
  fc.assert(fc.property(validRequest, (r) => {
    const b = Buffer.from(text(r), 'latin1');
    const expected = snapshot(parse(b));
    for (let cut = 0; cut <= b.length; cut++) {
      const p = new RequestHead();
      feedSplit(p, b, [cut]);
      t.deepEqual(snapshot(p), expected);
    }
  }), { numRuns: 60 });
});

test('a valid request split at random points parses identically, with body bytes after it', (t) => {
  fc.assert(fc.property(validRequest, fc.array(fc.nat(), { maxLength: 20 }), (r, cuts) => {
    const head = Buffer.from(text(r), 'latin1');
    const b = Buffer.concat([head, Buffer.from('BODY')]);
    const p = new RequestHead();
    t.is(feedSplit(p, b, cuts), DONE);
    t.deepEqual(snapshot(p), snapshot(parse(b)));
    t.is(p.headLength, head.length);
  }), { numRuns: RUNS });
});

test('anything accepted, re-serialised, parses to the same request', (t) => {
  const mutated = mutatedHead();
  fc.assert(fc.property(fc.oneof(validRequest.map((r) => Buffer.from(text(r), 'latin1')), mutated), (b) => {
    const p = parse(b);
    if (p.result !== DONE) return;
    const again = parse(Buffer.from(serializeRequest(p), 'latin1'));
    const a = snapshot(p);
    const c = snapshot(again);
    t.deepEqual({ ...c, headLength: 0 }, { ...a, headLength: 0 });
  }), { numRuns: RUNS * 3 });
  t.pass();
});

/** A head from the corpus or generated, then damaged: bytes replaced, inserted, deleted, or a piece repeated. */
function mutatedHead(): fc.Arbitrary<Buffer> {
  const source = fc.oneof(fc.constantFrom(...CORPUS).map((s) => Buffer.from(s, 'latin1')), validRequest.map((r) => Buffer.from(text(r), 'latin1')));
  const interesting = fc.constantFrom(0, 9, 10, 13, 32, 0x3a, 0x2c, 0x3b, 0x22, 0x7f, 0x80, 0xff, 0x2f, 0x3f, 0x23, 0x40);
  const byte = fc.oneof(fc.integer({ min: 0, max: 255 }), interesting);
  const mutation = fc.tuple(fc.constantFrom('replace', 'insert', 'delete', 'repeat'), fc.nat(), byte, fc.integer({ min: 1, max: 12 }));
  return fc.tuple(source, fc.array(mutation, { minLength: 1, maxLength: 6 })).map(([b, ms]) => {
    let bytes = [...b];
    for (const [kind, at, value, n] of ms) {
      const i = at % (bytes.length + 1);
      if (kind === 'replace' && i < bytes.length) bytes[i] = value;
      else if (kind === 'insert') bytes.splice(i, 0, value);
      else if (kind === 'delete') bytes.splice(i, n);
      else bytes.splice(i, 0, ...bytes.slice(i, i + n));
    }
    return Buffer.from(bytes);
  });
}

test('random and mutated heads never throw and get the same result whole and split', (t) => {
  const input = fc.oneof(mutatedHead(), fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)));
  fc.assert(fc.property(input, fc.array(fc.nat(), { maxLength: 10 }), (b, cuts) => {
    const whole = parse(b);
    t.true(STATUSES.includes(whole.result), String(whole.result));
    const split = new RequestHead();
    feedSplit(split, b, cuts);
    t.deepEqual(snapshot(split), snapshot(whole));
    if (whole.result !== DONE && whole.result !== NEED_MORE) t.true(whole.error.length > 0);
  }), { numRuns: RUNS * 3 });
});

test('one parser reused with reset() across random heads parses as a fresh one', (t) => {
  const reused = new RequestHead();
  fc.assert(fc.property(mutatedHead(), fc.array(fc.nat(), { maxLength: 5 }), (b, cuts) => {
    reused.reset();
    feedSplit(reused, b, cuts);
    t.deepEqual(snapshot(reused), snapshot(parse(b)));
  }), { numRuns: RUNS });
});

// ---------------------------------------------------------------- responses

const validResponse = fc.record({
  version: fc.constantFrom('1.0', '1.1'),
  status: fc.integer({ min: 100, max: 599 }),
  reason: fc.string({ unit: fieldChar, maxLength: 20 }).map((s) => s.replace(/^[ \t]+/, '')),
  extras: fc.array(extraField, { maxLength: 20 }),
  cl: fc.option(fc.nat({ max: 1e6 }), { nil: undefined }),
}).map((r) => {
  const lines = r.extras.map(([n, v]) => `${n}: ${v}\r\n`);
  if (r.cl !== undefined) lines.push(`Content-Length: ${r.cl}\r\n`);
  return `HTTP/${r.version} ${r.status} ${r.reason}\r\n${lines.join('')}\r\n`;
});

test('a valid response split at random points parses identically', (t) => {
  fc.assert(fc.property(validResponse, fc.array(fc.nat(), { maxLength: 10 }), fc.boolean(), (s, cuts, head) => {
    const b = Buffer.from(s, 'latin1');
    const a = new ResponseHead();
    a.reset(head);
    t.is(a.feed(b), DONE, a.error);
    const p = new ResponseHead();
    p.reset(head);
    t.is(feedSplit(p, b, cuts), DONE);
    t.deepEqual([p.status, p.reason, p.headers(), p.bodyKind, p.contentLength, p.keepAlive, p.interim], [a.status, a.reason, a.headers(), a.bodyKind, a.contentLength, a.keepAlive, a.interim]);
  }), { numRuns: RUNS });
});

test('random bytes as a response never throw: DONE, NEED_MORE or 502', (t) => {
  fc.assert(fc.property(fc.oneof(fc.uint8Array({ maxLength: 200 }), validResponse.map((s) => Buffer.from(s, 'latin1'))), fc.nat(), fc.integer({ min: 0, max: 255 }), (a, at, v) => {
    const b = Buffer.from(a);
    if (b.length > 0) b[at % b.length] = v;
    const p = new ResponseHead();
    const r = p.feed(b);
    t.true(r === DONE || r === NEED_MORE || r === 502);
  }), { numRuns: RUNS });
});

// ---------------------------------------------------------------- chunked

const ext = fc.oneof(
  token(6).map((n) => `;${n}`),
  fc.tuple(token(6), token(6)).map(([n, v]) => `;${n}=${v}`),
  fc.tuple(token(6), fc.string({ unit: fc.constantFrom(...'ab ;=,\t'.split('')), maxLength: 8 })).map(([n, v]) => ` ; ${n} = "${v}"`),
);
const chunk = fc.tuple(fc.uint8Array({ minLength: 1, maxLength: 300 }), fc.array(ext, { maxLength: 3 }), fc.boolean());
const chunkedBody = fc.tuple(fc.array(chunk, { maxLength: 8 }), fc.array(extraField, { maxLength: 4 })).map(([chunks, trailers]) => {
  const parts: Buffer[] = [];
  let size = 0;
  for (const [data, exts, upper] of chunks) {
    const hex = data.length.toString(16);
    parts.push(Buffer.from(`${upper ? hex.toUpperCase() : hex}${exts.join('')}\r\n`), Buffer.from(data), Buffer.from('\r\n'));
    size += data.length;
  }
  parts.push(Buffer.from('0\r\n' + trailers.map(([n, v]) => `${n}: ${v}\r\n`).join('') + '\r\n', 'latin1'));
  return { body: Buffer.concat(parts), size };
});

test('chunked bodies split at every boundary end at the same byte with the same size', (t) => {
  fc.assert(fc.property(chunkedBody, ({ body, size }) => {
    const b = Buffer.concat([body, Buffer.from('NEXT')]);
    for (let cut = 0; cut <= b.length; cut++) {
      const c = new ChunkedBody();
      let r = c.feed(b, 0, cut);
      if (r === CHUNKED_NEED_MORE) r = c.feed(b, cut, b.length);
      if (r !== body.length || c.bodyBytes !== size) t.fail(`cut ${cut}: ${r} ${c.bodyBytes} ${c.error}`);
    }
  }), { numRuns: 40 });
  t.pass();
});

test('mutated chunked bodies never throw and get the same result whole and split', (t) => {
  fc.assert(fc.property(chunkedBody, fc.nat(), fc.integer({ min: 0, max: 255 }), fc.array(fc.nat(), { maxLength: 8 }), ({ body }, at, v, cuts) => {
    const b = Buffer.from(body);
    b[at % b.length] = v;
    const whole = new ChunkedBody();
    const expected = whole.feed(b);
    const c = new ChunkedBody();
    let from = 0;
    let r = CHUNKED_NEED_MORE;
    for (const cut of [...[...new Set(cuts.map((x) => x % (b.length + 1)))].sort((x, y) => x - y), b.length]) {
      r = c.feed(b, from, cut);
      from = cut;
      if (r !== CHUNKED_NEED_MORE) break;
    }
    t.is(r, expected);
    t.true(expected === CHUNKED_ERROR || expected === CHUNKED_NEED_MORE || expected > 0);
  }), { numRuns: RUNS });
});
