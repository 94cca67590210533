// What HTTP mode's routing costs per request: the config's route(req) through
// LuaRoute (fengari), against the `routes` table lookup (Router.poolFor).
// Standalone: node dist/scripts/bench-route.js
//
// The request is a browser-like head (test/http-corpus.ts), parsed once by
// RequestHead; the route sees it through the adapter HTTP mode passes. Variants:
//   (a) route(req) that returns nil (the hook's fixed cost: req set up, call, result)
//   (b) route(req) that reads one header (req.headers["x-canary"], absent)
//   (c) Router.poolFor(host) alone, on a routes table of 3 exact hosts and 2 wildcards
// and, for scale, the parse of that head alone (RequestHead.feed, strings made
// on first use: the route's first call on a fresh head also makes the strings
// of method, path and host, which forwarding needs anyway).
// Each figure is the best of several interleaved rounds of ~0.5 s.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DONE } from '../src/http/head';
import { RequestHead } from '../src/http/request';
import { LuaRoute, ROUTE_INSTRUCTION_LIMIT, type RouteRequest } from '../src/http/luaroute';
import { Router } from '../src/http/router';
import { CORPUS } from '../test/http-corpus';
import { bestRates } from './bench/bestrate';

const ROUND_MS = Number(process.env.ROUND_MS ?? 500);
const ROUNDS = Number(process.env.ROUNDS ?? 5);

/** RequestHead as route(req) sees it, with the client's address. */
class HeadRequest implements RouteRequest {
  constructor(public head: RequestHead, public remote: string) {}
  get method(): string { return this.head.method; }
  get path(): string { return this.head.path; }
  get query(): string | null { return this.head.query; }
  get host(): string { return this.head.host; }
  get headerCount(): number { return this.head.headerCount; }
  header(name: string): string | null { return this.head.header(name); }
  headerKey(k: number): string { return this.head.headerKey(k); }
  headerValue(k: number): string { return this.head.headerValue(k); }
}

/** Calls per second of each variant: best round, rounds interleaved so a change in load hits all alike. */
function measure(variants: (() => void)[]): number[] {
  return bestRates(variants, { rounds: ROUNDS, roundMs: ROUND_MS, warmup: 20_000, batch: 1000 });
}

function configFile(dir: string, name: string, route: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, `listenPort = "0" mode = "http"
backends = { web = { "127.0.0.1:9001" }, api = { "127.0.0.1:9100" } }
routes = { ["www.example.com"] = "web", ["example.com"] = "web", ["admin.example.com"] = "api", ["*.api.example.com"] = "api", ["*.example.com"] = "web" }
function route(req)
${route}
end
`);
  return file;
}

function main(): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rsp-bench-route-'));
  try {
    const nil = LuaRoute.load(configFile(dir, 'nil.lua', '  return nil'));
    const oneHeader = LuaRoute.load(configFile(dir, 'header.lua', '  if req.headers["x-canary"] then return "api" end'));
    const router = new Router({
      exact: [['www.example.com', 'web'], ['example.com', 'web'], ['admin.example.com', 'api']],
      wildcard: [['.api.example.com', 'api'], ['.example.com', 'web']],
      default: 'web',
    });
    const bytes = Buffer.from(CORPUS[0]); // a Chrome navigation request
    const head = new RequestHead();
    if (head.feed(bytes, 0, bytes.length) !== DONE) throw new Error(head.error);
    const req = new HeadRequest(head, '192.0.2.7:51234');
    let sink = 0;
    const parse = (): void => {
      head.reset();
      if (head.feed(bytes, 0, bytes.length) !== DONE) throw new Error(head.error);
    };
    const alone = measure([
      () => { if (nil.call(req) === null) sink++; },
      () => { if (oneHeader.call(req) === null) sink++; },
      () => { if (router.poolFor(req.host) !== null) sink++; },
    ]);
    const [parsed] = measure([parse]);
    const us = (rate: number): string => (1e6 / rate).toFixed(3);
    const k = (rate: number): string => `${Math.round(rate / 1000).toLocaleString('en-US')}k/s`;
    console.log(`node ${process.version}, ${os.cpus()[0]?.model ?? 'cpu'}; head: ${bytes.length} bytes, ${head.headerCount} fields; best of ${ROUNDS} rounds of ${ROUND_MS} ms`);
    console.log('');
    console.log('| variant | calls/s | µs per call |');
    console.log('|---|---|---|');
    const names = ['(a) route(req) returning nil', '(b) route(req) reading one header', '(c) Router.poolFor(host)'];
    names.forEach((name, i) => console.log(`| ${name} | ${k(alone[i])} | ${us(alone[i])} |`));
    console.log(`| for scale: parsing the head (RequestHead.feed) | ${k(parsed)} | ${us(parsed)} |`);
    // How long a runaway route holds the reactor before the instruction limit stops it.
    const endless = LuaRoute.load(configFile(dir, 'endless.lua', '  while true do end'));
    const stalls: number[] = [];
    for (let i = 0; i < 30; i++) {
      const start = process.hrtime.bigint();
      try {
        endless.call(req);
      } catch {
        stalls.push(Number(process.hrtime.bigint() - start) / 1e6);
      }
    }
    stalls.sort((a, b) => a - b);
    console.log('');
    console.log(`an endless route(req) is stopped after ${ROUTE_INSTRUCTION_LIMIT.toLocaleString('en-US')} instructions: ${stalls[Math.floor(stalls.length / 2)].toFixed(1)} ms (median of ${stalls.length}, warm)`);
    if (sink < 0) console.log(sink);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main();
