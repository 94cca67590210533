// The HTTP parser's own figures for the report: scripts/bench-parser.ts (rsp's
// RequestHead against llhttp as node's http module drives it) run as a child
// process once the proxies are stopped, its markdown tables kept as printed.
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
