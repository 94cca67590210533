// HTTP mode's in-process figures for the report, each run as a child process
// once the proxies are stopped: scripts/bench-parser.ts (rsp's RequestHead
// against llhttp as node's http module drives it; its markdown tables kept as
// printed) and route-cost.ts (what choosing a pool costs per request).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ROOT } from './constants';
import { foreign } from './procfs';
import { run } from './processes';

export const PARSER_BENCH = path.join(ROOT, 'dist', 'scripts', 'bench-parser.js');

export interface ParserFigures {
  /** Its output, as printed (markdown tables and a few lines of text); '' when it failed. */
  text: string;
  /** How it was run, for the report. */
  command: string;
  /** Why it failed, or ''. */
  failure: string;
  /** CPU-seconds other processes used while it ran, and its wall seconds. */
  foreignCpu: number;
  seconds: number;
}

/** Runs bench-parser.js: 5 rounds of 500 ms (its defaults) in a full run, 3 of 300 ms in a quick one. */
export async function runParserBench(quick: boolean): Promise<ParserFigures> {
  const env = quick ? ['ROUNDS=3', 'ROUND_MS=300'] : [];
  const command = `${env.length ? env.join(' ') + ' ' : ''}node dist/scripts/bench-parser.js`;
  const figures: ParserFigures = { text: '', command, failure: '', foreignCpu: 0, seconds: 0 };
  if (!fs.existsSync(PARSER_BENCH)) {
    figures.failure = `${PARSER_BENCH} is missing`;
    return figures;
  }
  const foreign0 = foreign.seconds();
  const t0 = Date.now();
  const r = await run('env', [...env, process.execPath, PARSER_BENCH], 300_000);
  figures.seconds = (Date.now() - t0) / 1000;
  figures.foreignCpu = foreign.seconds() - foreign0;
  if (r.code !== 0) figures.failure = `exited ${r.code}: ${(r.stderr.trim() || r.stdout.trim()).split('\n').slice(-3).join(' / ')}`;
  else figures.text = r.stdout.trim();
  return figures;
}

export const ROUTE_COST_BENCH = path.join(ROOT, 'dist', 'scripts', 'bench', 'route-cost.js');

/** route-cost.js's figures (ns per request: parse + choose the pool), or why it failed. */
export interface RouteCostFigures {
  bare?: number;
  routes?: number;
  lua?: number;
  command: string;
  failure: string;
}

/** Runs route-cost.js in a process of its own: 7 rounds of 300 ms (3 of 200 ms in a quick run). */
export async function runRouteCost(quick: boolean): Promise<RouteCostFigures> {
  const env = quick ? ['ROUNDS=3', 'ROUND_MS=200'] : [];
  const command = `${env.length ? env.join(' ') + ' ' : ''}node dist/scripts/bench/route-cost.js`;
  const r = await run('env', [...env, process.execPath, ROUTE_COST_BENCH], 120_000);
  if (r.code !== 0) return { command, failure: `exited ${r.code}: ${(r.stderr.trim() || r.stdout.trim()).split('\n').slice(-3).join(' / ')}` };
  try {
    const figures = JSON.parse(r.stdout.trim().split('\n').pop()!) as { bare: number; routes: number; lua: number };
    return { command, failure: '', bare: figures.bare, routes: figures.routes, lua: figures.lua };
  } catch {
    return { command, failure: `unreadable output: ${r.stdout.trim().slice(0, 200)}` };
  }
}
