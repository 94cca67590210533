// The command line, and how long and how big each measurement is.
import * as os from 'node:os';
import * as path from 'node:path';
import { ROOT } from './constants';
import { SETUPS } from './setups';

export interface Options {
  quick: boolean;
  /** Setup names, in table order. */
  only: string[];
  out: string;
  /** Tools to treat as missing (to try the fallbacks on a machine that has them). */
  without: Set<string>;
  /** Rounds instead of the preset's (null: the preset's). */
  rounds: number | null;
}

export interface Params {
  warmupS: number;
  keepAliveS: number;
  closeS: number;
  latencyS: number;
  /** Keep-alive and 1 req/conn runs per setup, in rounds that interleave the setups; the median is reported. */
  rounds: number;
  /** Latency run: this many connections, each waiting `latencyGapMs` between requests. */
  latencyConns: number;
  latencyGapMs: number;
  loadConns: number;
  bulkBytes: number;
  bulkRuns: number;
  idleConns: number;
  straceS: number;
  /** Pause before reading RSS (idle baseline, and once the connections are up). */
  settleMs: number;
}

export const FULL: Params = {
  warmupS: 2, keepAliveS: 4, closeS: 4, rounds: 3, latencyS: 6, latencyConns: 10, latencyGapMs: 10, loadConns: 64,
  bulkBytes: 200_000_000, bulkRuns: 3, idleConns: 5000, straceS: 3, settleMs: 1000,
};
export const QUICK: Params = {
  warmupS: 1, keepAliveS: 2, closeS: 2, rounds: 2, latencyS: 2, latencyConns: 10, latencyGapMs: 10, loadConns: 64,
  bulkBytes: 50_000_000, bulkRuns: 1, idleConns: 1000, straceS: 2, settleMs: 500,
};

/** Where a full run writes: the committed report. */
export const FULL_REPORT = path.join(ROOT, 'BENCHMARKS.md');
/** Where a quick run writes unless --out says otherwise: its rough figures must not replace the committed ones. */
export const QUICK_REPORT = path.join(os.tmpdir(), 'bench-quick.md');

const SETUP_NAMES = SETUPS.map((s) => s.name);
/** What a run without --only measures: every setup but the extra variants. */
const DEFAULT_SETUPS = SETUPS.filter((s) => s.extra !== true).map((s) => s.name);

const USAGE = `Usage: npm run bench -- [--quick] [--only a,b,...] [--rounds N] [--out FILE] [--without tool,...]
   or: node dist/scripts/bench/index.js [options]

  --quick          about 2 minutes: 2 rounds of 2 s runs (3 of 4 s in a full run),
                   50 MB bulk file, 1,000 idle connections; writes ${QUICK_REPORT}
                   (not BENCHMARKS.md) unless --out says otherwise
  --only LIST      run only these setups (comma separated) out of:
                   ${SETUP_NAMES.join(', ')}
                   (without --only: all but ${SETUPS.filter((s) => s.extra === true).map((s) => s.name).join(', ')},
                   the zero-copy variants: e.g. --only direct,rsp-level,rsp-level-copy)
  --out FILE       write the report here instead of BENCHMARKS.md
  --rounds N       this many interleaved rounds instead of ${FULL.rounds} (${QUICK.rounds} with --quick):
                   more rounds, steadier medians (1 to 20)
  --without LIST   behave as if these tools were not installed
                   (wrk, ab, nginx, haproxy, perf, strace, curl, autocannon)`;

export function parseOptions(argv: string[]): Options {
  const options: Options = { quick: false, only: [...DEFAULT_SETUPS], out: '', without: new Set(), rounds: null };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) usage(`${arg} needs a value`);
      return v;
    };
    if (arg === '--quick') options.quick = true;
    else if (arg === '--only') {
      const names = value().split(',').map((s) => s.trim()).filter(Boolean);
      for (const n of names) if (!SETUP_NAMES.includes(n)) usage(`unknown setup ${n} (the setups: ${SETUP_NAMES.join(', ')})`);
      options.only = SETUP_NAMES.filter((s) => names.includes(s));
    } else if (arg === '--out') options.out = path.resolve(value());
    else if (arg === '--rounds') {
      const text = value();
      const n = /^\d+$/.test(text) ? Number(text) : NaN;
      if (!(n >= 1 && n <= 20)) usage(`--rounds must be a whole number from 1 to 20, got ${text}`);
      options.rounds = n;
    } else if (arg === '--without') for (const t of value().split(',')) options.without.add(t.trim());
    else if (arg === '-h' || arg === '--help') {
      process.stdout.write(USAGE + '\n');
      process.exit(0);
    } else usage(`unknown argument ${arg}`);
  }
  if (options.out === '') options.out = options.quick ? QUICK_REPORT : FULL_REPORT;
  return options;
}

/** The preset the options choose, with their round count. */
export function paramsFor(options: Options): Params {
  const preset = options.quick ? QUICK : FULL;
  return options.rounds === null ? preset : { ...preset, rounds: options.rounds };
}

function usage(message: string): never {
  process.stderr.write(`bench: ${message}\n${USAGE}\n`);
  process.exit(2);
}
