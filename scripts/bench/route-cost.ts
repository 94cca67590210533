// What choosing a pool costs per request in HTTP mode, measured in one process
// without sockets, so that a few hundred nanoseconds are not lost in the
// load runs' noise: the three rsp-http setups' configs (setups/rsp-http.ts),
// parsed by rsp's own config loader, and per request what HttpSession does
// before it forwards: RequestHead.reset() + feed() of wrk's request, then
// requestRouter() (src/http/route.ts) with the config's route() and routes.
//
//   node dist/scripts/bench/route-cost.js      (the benchmark runs it too)
//
// Prints one JSON line: nanoseconds per request for each config (best of the
// rounds; the variants alternate within each round).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Pool } from '../../src/balancer/pool';
import { parseConfig } from '../../src/config';
import { LuaRoute } from '../../src/http/luaroute';
import { DONE } from '../../src/http/head';
import { RequestHead } from '../../src/http/request';
import { requestRouter } from '../../src/http/route';
import { Router } from '../../src/http/router';
import type { HttpSession } from '../../src/http/session';
import { rspHttpConfig } from './setups/rsp-http';
import { bestRates } from './bestrate';


export interface RouteCost {
  /** Nanoseconds per request: parse + route, for each config. */
  bare: number;
  routes: number;
  lua: number;
  rounds: number;
  roundMs: number;
}

function variant(kind: 'bare' | 'routes' | 'lua', dir: string): () => void {
  const file = path.join(dir, `${kind}.lua`);
  fs.writeFileSync(file, rspHttpConfig(kind, 8080));
  const config = parseConfig(file);
  const pools = new Map<string, Pool>(config.pools.map((p) => [p.name, { name: p.name } as unknown as Pool]));
  const router = config.routes === null ? null : new Router(config.routes);
  const lua = config.routeHook ? LuaRoute.load(file, [...pools.keys()]) : null;
  const route = requestRouter(pools, pools.get('app')!, router, lua);
  // What wrk sends, and a client as route() sees it.
  const head = Buffer.from('GET /small HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n', 'latin1');
  const session = { clientAddress: '127.0.0.1:40000' } as unknown as HttpSession;
  const req = new RequestHead();
  const app = pools.get('app');
  return () => {
    req.reset();
    if (req.feed(head, 0, head.length) !== DONE) throw new Error(req.error);
    if (route(req, session) !== app) throw new Error(`${kind}: the request was not routed to app`);
  };
}

export function measureRouteCost(ROUNDS = Number(process.env.ROUNDS ?? 7), ROUND_MS = Number(process.env.ROUND_MS ?? 300)): RouteCost {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rsp-route-cost-'));
  try {
    const kinds = ['bare', 'routes', 'lua'] as const;
    const fns = kinds.map((k) => variant(k, dir));
    // ns per request: the best round's rate, as a time.
    const best = bestRates(fns, { rounds: ROUNDS, roundMs: ROUND_MS, warmup: 20_000, batch: 1000 }).map((rate) => 1e9 / rate);
    return { bare: best[0], routes: best[1], lua: best[2], rounds: ROUNDS, roundMs: ROUND_MS };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (require.main === module) process.stdout.write(JSON.stringify(measureRouteCost()) + '\n');
