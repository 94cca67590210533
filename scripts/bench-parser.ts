// Micro-benchmark of rsp's request head parser against llhttp as Node's own
// http server drives it (process.binding('http_parser').HTTPParser: one parser
// per connection, execute() per read, the kOnHeadersComplete callback getting
// method, url and the header strings). Standalone: node dist/scripts/bench-parser.js
//
// Each head is one read (the common case). Figures: heads/s and MB/s over the
// corpus (browser, curl, API clients, 1-40 fields) and over small heads; rsp
// twice: parse only (strings are made lazily), and parse + every string llhttp
// hands its callback (method, target, all names and values), which is the fair
// comparison of work done. Best of several rounds of ~0.5 s each.
import { PerformanceObserver } from 'node:perf_hooks';
import { DONE } from '../src/http/head';
import { RequestHead } from '../src/http/request';
import { CHUNKED_NEED_MORE, ChunkedBody } from '../src/http/chunked';
import { CORPUS, SMALL } from '../test/http-corpus';
import { bestRates } from './bench/bestrate';

const ROUND_MS = Number(process.env.ROUND_MS ?? 500);
const ROUNDS = Number(process.env.ROUNDS ?? 5);

interface Result { headsPerSec: number; mbPerSec: number }

/**
 * Runs each variant's `parseAll` (one pass over the heads) for ROUND_MS, in
 * turn, ROUNDS times; keeps each one's best round. Interleaving the variants
 * keeps the ratio honest when the machine's load changes during the run.
 */
function measure(heads: Buffer[], variants: (() => void)[]): Result[] {
  const bytes = heads.reduce((n, b) => n + b.length, 0);
  const best = bestRates(variants, { rounds: ROUNDS, roundMs: ROUND_MS, warmup: 2000, batch: 100 });
  return best.map((rate) => ({ headsPerSec: rate * heads.length, mbPerSec: (rate * bytes) / 1e6 }));
}

function rspParseOnly(heads: Buffer[]): () => void {
  const p = new RequestHead();
  return () => {
    for (let i = 0; i < heads.length; i++) {
      p.reset();
      if (p.feed(heads[i], 0, heads[i].length) !== DONE) throw new Error(p.error);
    }
  };
}

let sink = 0;
function rspWithStrings(heads: Buffer[]): () => void {
  const p = new RequestHead();
  return () => {
    for (let i = 0; i < heads.length; i++) {
      p.reset();
      if (p.feed(heads[i], 0, heads[i].length) !== DONE) throw new Error(p.error);
      sink += p.method.length + p.target.length;
      for (let k = 0; k < p.headerCount; k++) sink += p.headerName(k).length + p.headerValue(k).length;
    }
  };
}

function llhttp(heads: Buffer[]): () => void {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const { HTTPParser } = (process as any).binding('http_parser');
  const parser = new HTTPParser();
  parser.initialize(HTTPParser.REQUEST, {}, 0, 0);
  let complete = 0;
  // As lib/_http_common.js sets them. Returning 1 from headers-complete skips a
  // body (node returns it for HEAD responses): each head here is followed by the next head.
  parser[HTTPParser.kOnHeaders] = function (headers: string[], url: string) {
    sink += headers.length + url.length;
  };
  parser[HTTPParser.kOnHeadersComplete] = function (_major: number, _minor: number, headers: string[], method: number, url: string) {
    complete++;
    // headers and url are undefined when they were flushed to kOnHeaders (over 32 fields), as node handles.
    sink += (headers === undefined ? 0 : headers.length) + method + (url === undefined ? 0 : url.length);
    return 1;
  };
  parser[HTTPParser.kOnBody] = function () {};
  parser[HTTPParser.kOnMessageComplete] = function () {};
  parser[HTTPParser.kOnExecute] = function () {};
  // After a head that ends the connection's HTTP (HTTP/1.0 without keep-alive,
  // an upgrade) llhttp parses no more: node would start the next connection's
  // parser with initialize(), and so does this loop.
  const last = heads.map((b) => {
    const p = new RequestHead();
    p.feed(b);
    return !p.keepAlive || p.upgrade;
  });
  return () => {
    const before = complete;
    for (let i = 0; i < heads.length; i++) {
      const r = parser.execute(heads[i]);
      if (last[i]) parser.initialize(HTTPParser.REQUEST, {}, 0, 0);
      if (typeof r !== 'number') throw r;
    }
    if (complete - before !== heads.length) throw new Error('llhttp missed a head');
  };
}

function row(name: string, r: Result, base?: Result): string {
  const ratio = base ? `${(r.headsPerSec / base.headsPerSec).toFixed(2)}x` : '';
  return `| ${name} | ${Math.round(r.headsPerSec).toLocaleString('en-US')} | ${r.mbPerSec.toFixed(1)} | ${ratio} |`;
}

function main(): void {
  const sets: [string, Buffer[]][] = [
    ['corpus', CORPUS.map((s) => Buffer.from(s, 'latin1'))],
    ['small heads', SMALL.map((s) => Buffer.from(s, 'latin1'))],
  ];
  console.log(`node ${process.version}, ${ROUNDS} rounds of ${ROUND_MS} ms, best round`);
  for (const [name, heads] of sets) {
    const bytes = heads.reduce((n, b) => n + b.length, 0);
    console.log(`\n${name}: ${heads.length} heads, ${Math.round(bytes / heads.length)} bytes on average`);
    console.log('| parser | heads/s | MB/s | vs llhttp |');
    console.log('|---|---:|---:|---:|');
    const [base, only, strings] = measure(heads, [llhttp(heads), rspParseOnly(heads), rspWithStrings(heads)]);
    console.log(row('llhttp (node http_parser binding)', base));
    console.log(row('rsp RequestHead, parse only', only, base));
    console.log(row('rsp RequestHead + all strings', strings, base));
  }
  chunked();
  if (sink === 0.5) console.log(sink);
  garbage();
}

/** The chunked validator on a 4 MB body in 64 KB reads, with big and with small chunks. */
function chunked(): void {
  console.log('\nchunked body, 4 MB in 64 KB reads');
  console.log('| chunks | MB/s |');
  console.log('|---|---:|');
  for (const size of [16384, 100]) {
    const parts: Buffer[] = [];
    const data = Buffer.alloc(size, 0x61);
    for (let n = 0; n < (4 << 20); n += size) parts.push(Buffer.from(`${size.toString(16)};ext=v\r\n`), data, Buffer.from('\r\n'));
    parts.push(Buffer.from('0\r\n\r\n'));
    const body = Buffer.concat(parts);
    const c = new ChunkedBody();
    const once = () => {
      c.reset();
      for (let at = 0; at < body.length; at += 65536) {
        const r = c.feed(body, at, Math.min(at + 65536, body.length));
        if (r !== CHUNKED_NEED_MORE && r !== body.length) throw new Error(c.error);
      }
    };
    const [passes] = bestRates([once], { rounds: ROUNDS, roundMs: ROUND_MS, warmup: 20, batch: 1 });
    const best = (passes * body.length) / 1e6;
    console.log(`| ${size} bytes each | ${Math.round(best).toLocaleString('en-US')} |`);
  }
}

/** Allocation on the hot path shows as garbage collections: count them over a million parses. */
function garbage(): void {
  const heads = CORPUS.map((s) => Buffer.from(s, 'latin1'));
  const parseAll = rspParseOnly(heads);
  const passes = Math.ceil(1e6 / heads.length);
  let gcs = 0;
  const observer = new PerformanceObserver((list) => { gcs += list.getEntries().length; });
  observer.observe({ entryTypes: ['gc'] });
  for (let i = 0; i < passes; i++) parseAll();
  // GC entries are delivered asynchronously.
  setTimeout(() => {
    observer.disconnect();
    console.log(`\ngarbage collections while parsing ${passes * heads.length} corpus heads (parse only): ${gcs}`);
  }, 50);
}

main();
