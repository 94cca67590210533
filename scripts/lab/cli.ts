// npm run lab: the command line. Parses the flags, runs the experiments
// (index.ts), prints the table, and kills every rsp it started on the way
// out, also on Ctrl-C and SIGTERM.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { labChartsDir, writeLabCharts } from '../charts/lab';
import { EXPERIMENTS, runLab } from './index';
import { FULL, QUICK } from './params';
import { SIDES } from './peer';
import { killAll } from './rsp';
import { formatTable, n1, PRIMER } from './table';

/** "  1  bulk transfer" ... one line per experiment, for the help and for a wrong --only. */
const CHOICES = EXPERIMENTS.map((e) => `  ${String(e.n).padStart(2)}  ${e.title}`).join('\n');

const USAGE = `Usage: npm run lab -- [--quick] [--only N,M] [--json FILE] [--charts DIR]

  --quick       shorter runs (50 MB bulk, fewer requests, 1 s timeouts): under 40 s
  --only LIST   run only these experiments (numbers, comma separated)
  --json FILE   also write the raw results to FILE
  --charts DIR  write the charts (SVG) and their raw results to DIR; a full run
                of every experiment writes them to docs/charts without it
  -h, --help    show this help

Experiments:
${CHOICES}`;

interface Options {
  quick: boolean;
  only: number[] | null;
  json: string | null;
  charts: string | null;
}

function parseOptions(argv: string[]): Options {
  const options: Options = { quick: false, only: null, json: null, charts: null };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) usage(`${arg} needs a value`);
      return v;
    };
    if (arg === '--quick') options.quick = true;
    else if (arg === '--only') {
      const words = value().split(',').map((s) => s.trim()).filter(Boolean);
      if (words.length === 0) usage('--only needs at least one experiment number');
      const valid = EXPERIMENTS.map((e) => e.n);
      for (const word of words) {
        if (!/^\d+$/.test(word) || !valid.includes(Number(word))) {
          usage(`no experiment "${word}": choose from ${valid.join(', ')} (comma separated, e.g. --only 4,5)`);
        }
      }
      options.only = words.map(Number);
    } else if (arg === '--json') options.json = path.resolve(value());
    else if (arg === '--charts') options.charts = path.resolve(value());
    else if (arg === '-h' || arg === '--help') {
      process.stdout.write(USAGE + '\n');
      process.exit(0);
    } else usage(`unknown argument ${arg}`);
  }
  return options;
}

function usage(message: string): never {
  process.stderr.write(`lab: ${message}\n${USAGE}\n`);
  process.exit(2);
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const p = options.quick ? QUICK : FULL;
  const bail = (signal: NodeJS.Signals): void => {
    killAll();
    process.stderr.write(`\nlab: ${signal}: stopped, every rsp it started is killed\n`);
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.on('SIGINT', () => bail('SIGINT'));
  process.on('SIGTERM', () => bail('SIGTERM'));
  process.on('exit', killAll);

  const started = performance.now();
  const print = (line: string): void => void process.stdout.write(line + '\n');
  print(`rsp epoll lab${options.quick ? ' (--quick)' : ''}: ${os.cpus().length} cores, Linux ${os.release()}, Node ${process.version}, load average ${os.loadavg()[0].toFixed(1)} at the start`);
  print(SIDES);
  const rows = await runLab(p, options.only, print);
  const seconds = (performance.now() - started) / 1000;
  print('');
  print(PRIMER);
  print('');
  print(formatTable(rows));
  const failed = rows.filter((r) => r.failed).length;
  print(`${rows.length} rows in ${n1(seconds)} s${failed > 0 ? `; ${failed} could not be measured` : ''}.`);
  if (options.json !== null) {
    const report = {
      date: new Date().toISOString(),
      quick: options.quick,
      params: p,
      machine: { cores: os.cpus().length, cpu: os.cpus()[0]?.model ?? '', kernel: os.release(), node: process.version, loadAverage: os.loadavg() },
      sides: SIDES,
      seconds,
      rows,
    };
    fs.writeFileSync(options.json, JSON.stringify(report, null, 2) + '\n');
    print(`raw results: ${options.json}`);
  }
  const chartsDir = labChartsDir(options.charts, options.quick, options.only);
  if (chartsDir !== null) {
    const files = writeLabCharts(chartsDir, { date: new Date().toISOString(), quick: options.quick, rows });
    print(`charts and their raw results in ${chartsDir}: ${files.map((f) => path.basename(f)).join(', ')}`);
  }
  if (failed > 0) process.exitCode = 1;
}

if (require.main === module) {
  main().catch((error: unknown) => {
    killAll();
    process.stderr.write(`lab: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`);
    process.exit(1);
  });
}
