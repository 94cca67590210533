// The benchmark: rsp (both trigger modes, level mode with a pool of three
// members, and level mode with two workers) against the direct path to the
// backend, a plain Node `net` pipe proxy, nginx (stream and http) and HAProxy
// (tcp and http) on loopback, every proxy with one worker process/thread but
// rsp-w2; rsp in HTTP mode (no routes, routes, routes + a Lua route())
// against nginx http and HAProxy http, and the HTTP parser against llhttp
// (bench-parser.js), in the report's "HTTP mode" section (http-report.ts).
// Writes a markdown report: BENCHMARKS.md for a full run; a quick run writes
// bench-quick.md in the temp directory (its rough figures must not replace the
// committed ones) unless --out says where.
//
// The req/s figures come from rounds that interleave the setups (every setup
// once per round, the order rotated from round to round) and are medians over
// the rounds: on a shared VM a single run of a setup can be 15–30% off, and
// interleaving spreads whatever disturbs the machine over all the setups.
// Every proxy is started once and stays up through the rounds; bulk downloads
// follow, interleaved the same way; latency and idle memory are measured
// after them, one setup after another.
//
//   npm run build && npm run bench                  # full run, about 6 minutes on 2 cores
//   npm run bench -- --quick                        # about 2 minutes, shorter and smaller
//   node dist/scripts/bench/index.js --only rsp-level,node --out /tmp/b.md
//   npm run bench -- --quick --only rsp-level,rsp-pool3   # balancing's cost
//   npm run bench -- --only rsp-level,nginx-http,haproxy-http,rsp-http-bare,rsp-http,rsp-http-lua --rounds 5   # HTTP mode
//
// The parts: setups/ (one file per setup: how it starts, its pids, how it
// stops), backends.ts (what they are pointed at), rounds.ts and finish.ts (the
// measurements, with load.ts, syscalls.ts, memory.ts and procfs.ts), report.ts.
// Every process it starts runs in a process group of its own and is killed on
// the way out, on Ctrl-C and on errors too.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { benchResults, writeBenchCharts } from '../charts/bench';
import { BENCH_BACKEND, startBackend, startHoldBackend } from './backends';
import { ROOT } from './constants';
import { bulkRounds, finishSetup } from './finish';
import { httpSection, runsHttp } from './http-report';
import { FULL_REPORT, paramsFor, parseOptions } from './options';
import { runParserBench, runRouteCost, type ParserFigures, type RouteCostFigures } from './parser';
import { killEverything, makeTempRoot, stopProcess } from './processes';
import { foreign } from './procfs';
import { commandLine, methodTexts, readPreviousNotes, report, table, targets } from './report';
import { summarizeRounds, throughputRound } from './rounds';
import { SETUPS } from './setups';
import { NODE_PROXY } from './setups/node-net';
import { RSP_BIN } from './setups/rsp';
import { startSetup, type Context, type SetupState } from './state';
import { detectTools } from './tools';

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const options = parseOptions(argv);
  const params = paramsFor(options);
  const startedAt = new Date();
  const started = Date.now();
  for (const file of [RSP_BIN, NODE_PROXY, BENCH_BACKEND, path.join(ROOT, 'dist', 'src', 'cli.js')]) {
    if (!fs.existsSync(file)) throw new Error(`${file} is missing: run "npm run build" first`);
  }

  foreign.start();
  const tools = detectTools(options);
  const say = (line: string): void => void process.stdout.write(line + '\n');
  say(`rsp benchmark (${options.quick ? 'quick' : 'full'}): ${options.only.join(', ')}`);
  say(`report: ${options.out}`);
  say(`one worker process/thread per proxy (rsp-w2: two); ${os.cpus().length} cores; loopback only`);
  for (const [tool, present] of [['wrk', tools.wrk], ['ab', tools.ab], ['nginx', tools.nginx], ['haproxy', tools.haproxy], ['strace', tools.strace], ['curl', tools.curl]] as const) {
    if (!present) say(`  ${tool} not found: skipping what needs it`);
  }
  if (!tools.perf) say(`  ${tools.perfNote}${tools.strace ? '; counting syscalls with strace -c instead' : ''}`);
  if (tools.nginx && tools.nginxStream === null) say('  nginx stream module not found: skipping nginx stream');

  const dir = makeTempRoot();
  if (!tools.nginx) say(`  backend: a Node http server (nginx not installed; slower, so every figure is capped lower)`);
  else say(`  backend: nginx, 1 worker (writing the ${params.bulkBytes / 1e6} MB bulk file)`);
  const backend = await startBackend(tools, dir, params);
  const hold = await startHoldBackend();

  const ctx: Context = {
    options,
    params,
    tools,
    dir,
    backend,
    hold,
    ...methodTexts(tools, params),
  };

  // Every proxy up first; it stays up through the rounds.
  say('Starting the proxies:');
  const states: SetupState[] = [];
  for (const setup of SETUPS.filter((s) => options.only.includes(s.name))) states.push(await startSetup(ctx, setup));

  // Keep-alive and 1 req/conn, in rounds that interleave the setups; each
  // round rotates the order by 1/rounds of the list.
  const active = states.filter((s) => !s.row.skipped);
  for (let round = 0; round < params.rounds && active.length > 0; round++) {
    const shift = Math.round((round * active.length) / params.rounds) % active.length;
    const order = [...active.slice(shift), ...active.slice(0, shift)];
    say(`Round ${round + 1} of ${params.rounds} (${order.map((s) => s.setup.name).join(', ')}):`);
    for (const s of order) await throughputRound(ctx, s, round);
  }
  say('Medians over the rounds:');
  for (const s of active) summarizeRounds(s, params);

  // Bulk downloads, interleaved like the rounds.
  say(`Bulk downloads (${params.bulkRuns} of ${params.bulkBytes / 1e6} MB per setup, interleaved):`);
  await bulkRounds(ctx, active);

  // The rest, one setup after another; each proxy is stopped after its turn.
  for (const s of active) {
    say(`${s.setup.label}:`);
    await finishSetup(ctx, s);
  }
  const rows = states.map((s) => s.row);

  // HTTP mode's parser and routing on their own, with the proxies stopped.
  let parser: ParserFigures | null = null;
  let routeCost: RouteCostFigures | null = null;
  if (runsHttp(options.only)) {
    parser = await runParserBench(options.quick);
    say(`HTTP parser (${parser.command}): ${parser.failure ? `failed: ${parser.failure}` : `${Math.round(parser.seconds)} s`}`);
    routeCost = await runRouteCost(options.quick);
    say(`HTTP routing (${routeCost.command}): ${routeCost.failure ? `failed: ${routeCost.failure}` : `parse + route ${[routeCost.bare, routeCost.routes, routeCost.lua].map((n) => `${Math.round(n!)} ns`).join(', ')} (no routes, routes, routes + route())`}`);
  }

  await stopProcess(hold.service.proc);
  await stopProcess(backend.service.proc);

  const text = report(ctx, rows, commandLine(argv), startedAt, (Date.now() - started) / 1000, readPreviousNotes(options.out), httpSection(rows, params, parser, routeCost));
  fs.writeFileSync(options.out, text);
  const charts = writeBenchCharts(options.out, benchResults(rows, params, commandLine(argv), options.quick, startedAt));
  say('');
  say(table(rows, params));
  say('');
  say(targets(rows, params, options.quick));
  say('');
  say(`Wrote ${options.out} (${Math.round((Date.now() - started) / 1000)} s), and ${charts.length - 1} charts with their raw figures in ${path.dirname(charts[0])}.`);
  if (options.quick && options.out !== FULL_REPORT) say('(A quick run does not replace BENCHMARKS.md; --out BENCHMARKS.md would.)');
}

process.on('exit', killEverything);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    process.stderr.write(`\nbench: ${signal}, stopping everything it started\n`);
    killEverything();
    process.exit(130);
  });
}
// Started by something that died without stopping us (a killed test runner):
// stop too, and take everything with us.
const parentPid = process.ppid;
setInterval(() => {
  if (process.ppid !== parentPid) {
    killEverything();
    process.exit(1);
  }
}, 1000).unref();
process.on('unhandledRejection', (error) => {
  process.stderr.write(`bench: ${error instanceof Error ? error.stack : String(error)}\n`);
  killEverything();
  process.exit(1);
});

main().then(
  () => {
    killEverything();
    process.exit(0);
  },
  (error: unknown) => {
    process.stderr.write(`bench: ${error instanceof Error ? error.message : String(error)}\n`);
    killEverything();
    process.exit(1);
  },
);
