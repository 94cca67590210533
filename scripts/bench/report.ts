// The report: the results table with ratios to the Node proxy and to direct,
// the round-by-round figures, the targets, the machine and the method; the
// hand-written notes below the marker are carried over from the previous file.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { benchResults, chartsSection } from '../charts/bench';
import { NOTES_MARKER, ROOT } from './constants';
import { fmt0, fmt1, fmt2, fmtInt, fmtMB, fmtMs, median, rangeText } from './format';
import type { Params } from './options';
import { foreign, loadAtStart, loadAverage } from './procfs';
import { labelOf } from './setups';
import type { Context, Row } from './state';
import type { Tools } from './tools';

/** The pool setup, compared with rsp level in the targets. */
const POOL = 'rsp-pool3';

interface Column {
  title: string;
  value: (row: Row) => number | undefined;
  format: (value: number, row: Row) => string;
  proxyOnly: boolean;
  /** The figures of the rounds the value is the median of. */
  runs?: (row: Row) => number[];
}

function columns(p: Params): Column[] {
  return [
    { title: 'Keep-alive req/s', value: (r) => r.keepAlive, format: fmtInt, proxyOnly: false, runs: (r) => r.keepAliveRuns },
    { title: '1 req/conn req/s', value: (r) => r.close, format: fmtInt, proxyOnly: false, runs: (r) => r.closeRuns },
    { title: 'p50 latency', value: (r) => r.p50, format: fmtMs, proxyOnly: false },
    { title: 'p99 latency', value: (r) => r.p99, format: fmtMs, proxyOnly: false },
    { title: `Bulk MB/s (${p.bulkBytes / 1e6} MB)`, value: (r) => r.bulk, format: fmt0, proxyOnly: false },
    { title: 'CPU µs/req', value: (r) => r.cpu, format: (v) => v.toFixed(1), proxyOnly: true },
    { title: 'Syscalls/req', value: (r) => r.syscalls, format: fmt2, proxyOnly: true },
    {
      title: `RSS, ${fmtInt(p.idleConns)} idle conns`,
      value: (r) => r.rss?.loaded,
      format: (v, r) => `${fmtMB(v)}, +${((v - r.rss!.baseline) / 1000 / r.rss!.conns).toFixed(1)} KB/conn`,
      proxyOnly: true,
    },
  ];
}

function cell(col: Column, row: Row, rows: Row[]): string {
  if (row.skipped) return '—';
  if (col.proxyOnly && !row.proxy) return '—';
  const v = col.value(row);
  if (v === undefined || !Number.isFinite(v)) return 'n/a';
  const ratios: string[] = [];
  for (const ref of ['node', 'direct'] as const) {
    if (ref === row.setup) continue;
    const other = rows.find((r) => r.setup === ref);
    const rv = other && !other.skipped ? col.value(other) : undefined;
    if (rv !== undefined && rv > 0 && Number.isFinite(rv)) ratios.push(`${(v / rv).toFixed(2)}× ${ref}`);
  }
  return col.format(v, row) + spread(col.runs?.(row), v) + (ratios.length ? ` (${ratios.join(', ')})` : '');
}

/** " ±4%": half the min–max range of the rounds, relative to their median ('' for a single figure). */
function spread(runs: number[] | undefined, mid: number): string {
  if (!runs || runs.length < 2 || !(mid > 0)) return '';
  return ` ±${(((Math.max(...runs) - Math.min(...runs)) / 2 / mid) * 100).toFixed(0)}%`;
}

/** The req/s of every round, per setup, for the note under the table. */
function roundsList(rows: Row[], p: Params): string {
  const lines: string[] = [];
  for (const row of rows) {
    if (row.skipped) continue;
    const part = (title: string, runs: number[], disturbed: boolean[]): string =>
      runs.length === 0 ? `${title} n/a` : `${title} ${runs.map((v, i) => fmtInt(v) + (disturbed[i] ? '\\*' : '')).join(' / ')}${runs.length > 1 ? ` (${rangeText(runs)})` : ''}`;
    const short = (n: number): boolean => n > 0 && n < p.rounds;
    const missing = short(row.keepAliveRuns.length) || short(row.closeRuns.length) ? ' (a round failed: see the notes)' : '';
    const from = row.figuresRound !== undefined && row.proxy && p.rounds > 1 ? `; CPU${row.syscallsApart ? '' : ' and syscalls'} from keep-alive round ${row.figuresRound + 1}` : '';
    const cpuRuns = (runs: number[]): string => `${runs.map(fmt1).join(' / ')}${runs.length > 1 ? ` (median ${fmt1(median(runs))})` : ''}`;
    const cpu = row.proxy && row.keepAliveCpuRuns.length + row.closeCpuRuns.length > 0
      ? `; CPU µs/req keep-alive ${cpuRuns(row.keepAliveCpuRuns)}, 1 req/conn ${cpuRuns(row.closeCpuRuns)}`
      : '';
    const bulk = row.bulkRuns && row.bulkRuns.length > 0
      ? `; bulk MB/s ${row.bulkRuns.map(fmtInt).join(' / ')}${row.bulkCpu !== undefined ? `, ${fmt2(row.bulkCpu)} ms CPU/MB` : ''}`
      : '';
    lines.push(`- ${row.label}: ${part('keep-alive', row.keepAliveRuns, row.keepAliveDisturbed)}; ${part('1 req/conn', row.closeRuns, row.closeDisturbed)}${cpu}${from}${bulk}${missing}`);
  }
  return lines.join('\n');
}

export function table(rows: Row[], p: Params): string {
  const cols = columns(p);
  const lines = [`| Setup | ${cols.map((c) => c.title).join(' | ')} |`, `|${' --- |'.repeat(cols.length + 1)}`];
  for (const row of rows) {
    const label = row.label + (row.skipped ? ` (skipped: ${row.skipped.replace(/\|/g, '/')})` : '');
    lines.push(`| ${label} | ${cols.map((c) => cell(c, row, rows)).join(' | ')} |`);
  }
  return lines.join('\n');
}

export function targets(rows: Row[], p: Params, quick: boolean): string {
  const get = (s: string): Row | undefined => rows.find((r) => r.setup === s && !r.skipped);
  type Check = (r: Row) => string;
  const atLeast = (what: (r: Row) => number | undefined, refName: string, factor: number, unit: string, runsOf?: (r: Row) => number[]): Check => (r) => {
    const v = what(r);
    const ref = get(refName);
    const rv = ref ? what(ref) : undefined;
    if (v === undefined) return 'n/a (not measured)';
    if (rv === undefined) return `n/a (${labelOf(refName)} not measured)`;
    const need = rv * factor;
    // Do the two setups' rounds overlap (the reference's scaled by the factor)?
    const mine = runsOf?.(r) ?? [];
    const theirs = ref && runsOf ? runsOf(ref).map((x) => x * factor) : [];
    const overlap = mine.length > 1 && theirs.length > 1 && Math.min(...mine) <= Math.max(...theirs) && Math.max(...mine) >= Math.min(...theirs);
    return `${v >= need ? '**PASS**' : '**MISS**'}: ${fmtInt(v)} vs ${fmtInt(need)} ${unit} needed (${(v / rv).toFixed(2)}×${overlap ? '; rounds overlap' : ''})`;
  };
  const atMost = (what: (r: Row) => number | undefined, limit: number, format: (n: number) => string, note = ''): Check => (r) => {
    const v = what(r);
    if (v === undefined) return 'n/a (not measured)';
    return `${v <= limit ? '**PASS**' : '**MISS**'}: ${format(v)}${note}`;
  };
  const checks: [string, Check][] = [
    ['Keep-alive req/s ≥ 1.1× Node net proxy', atLeast((r) => r.keepAlive, 'node', 1.1, 'req/s', (r) => r.keepAliveRuns)],
    ['Keep-alive req/s ≥ HAProxy tcp', atLeast((r) => r.keepAlive, 'haproxy-tcp', 1, 'req/s', (r) => r.keepAliveRuns)],
    ['Keep-alive syscalls/request ≤ 4.5', atMost((r) => r.syscalls, 4.5, fmt2)],
    ['1 req/conn req/s ≥ 1.5× Node net proxy', atLeast((r) => r.close, 'node', 1.5, 'req/s', (r) => r.closeRuns)],
    ['1 req/conn req/s ≥ nginx stream', atLeast((r) => r.close, 'nginx-stream', 1, 'req/s', (r) => r.closeRuns)],
    ['Bulk MB/s ≥ nginx stream', atLeast((r) => r.bulk, 'nginx-stream', 1, 'MB/s')],
    ['Bulk MB/s ≥ 0.8× direct', atLeast((r) => r.bulk, 'direct', 0.8, 'MB/s')],
    // Issue 12's goals: the baseline (both isolates, before the first client) and with 5,000 idle connections.
    [
      'RSS at start, before the first client < 45 MB',
      (r) => (r.rss ? `${r.rss.baseline < 45e6 ? '**PASS**' : '**MISS**'}: ${fmtMB(r.rss.baseline)}` : 'n/a (not measured)'),
    ],
    [
      'RSS with 5,000 idle proxied connections < 55 MB',
      (r) => {
        if (!r.rss) return 'n/a (not measured)';
        const note = r.rss.established < r.rss.conns ? ` (only ${fmtInt(r.rss.established)} established)` : '';
        if (quick || r.rss.conns !== 5000) {
          return `n/a: measured with ${fmtInt(r.rss.conns)} connections, not 5,000 (${fmtMB(r.rss.loaded)})${note}`;
        }
        return `${r.rss.loaded < 55e6 ? '**PASS**' : '**MISS**'}: ${fmtMB(r.rss.loaded)}${note}`;
      },
    ],
  ];
  // The pool of 3 against single-backend rsp level (the same mode), on the
  // CPU µs/req of each round's run: medians over the rounds, and the rounds
  // side by side (they interleave, so each pair ran under the same weather).
  const poolWithin = (runsOf: (r: Row) => number[], limit: number, tableOf?: (r: Row) => number | undefined): Check => (r) => {
    if (r.setup !== 'rsp-level') return `n/a (the pool of 3 runs in level mode: see the ${labelOf('rsp-level')} column)`;
    const pool = get(POOL);
    if (!pool) return `n/a (${labelOf(POOL)} not measured)`;
    const mine = runsOf(pool);
    const theirs = runsOf(r);
    if (mine.length === 0 || theirs.length === 0) return 'n/a (not measured)';
    const a = median(mine);
    const b = median(theirs);
    const pct = (x: number, y: number): string => {
      const v = (x / y - 1) * 100;
      return `${v >= 0 ? '+' : '−'}${Math.abs(v).toFixed(1)}%`;
    };
    const notes = [`medians over ${mine.length === theirs.length ? `${mine.length} rounds` : `${mine.length} and ${theirs.length} rounds`}`];
    // Side by side only when no round failed for either (the lists hold the rounds that worked).
    if (mine.length === p.rounds && theirs.length === p.rounds && p.rounds > 1) notes.push(`round by round ${mine.map((v, i) => pct(v, theirs[i])).join(' / ')}`);
    const ta = tableOf?.(pool);
    const tb = tableOf?.(r);
    if (ta !== undefined && tb !== undefined) notes.push(`the table's figures ${fmt1(ta)} vs ${fmt1(tb)}, ${pct(ta, tb)}`);
    // Undecided unless every round of the pool is on the same side of every round of the single backend (× the limit).
    const decided = mine.length > 1 && theirs.length > 1 && (Math.max(...mine) <= Math.min(...theirs) * limit || Math.min(...mine) > Math.max(...theirs) * limit);
    if (mine.length > 1 && theirs.length > 1 && !decided) notes.push('rounds overlap');
    return `${a <= b * limit ? '**PASS**' : '**MISS**'}: ${fmt1(a)} vs ${fmt1(b)} µs/req, ${pct(a, b)} (${notes.join('; ')})`;
  };
  checks.push(
    ['Pool of 3 within 3% of single-backend CPU µs/request (keep-alive)', poolWithin((r) => r.keepAliveCpuRuns, 1.03, (r) => r.cpu)],
    ['Pool of 3 within 3% of single-backend CPU µs/request (1 req/conn: a pick per request)', poolWithin((r) => r.closeCpuRuns, 1.03)],
  );
  // rsp level's column also carries the pool rows, so it is there when only the pool ran.
  const subjects = (['rsp-level', 'rsp-edge'] as const).filter((s) => rows.some((r) => r.setup === s || (s === 'rsp-level' && r.setup === POOL)));
  if (subjects.length === 0) return '_No rsp setup was run, so no target was checked._';
  const lines = [`| Target | ${subjects.map((s) => labelOf(s)).join(' | ')} |`, `|${' --- |'.repeat(subjects.length + 1)}`];
  for (const [title, check] of checks) {
    lines.push(`| ${title} | ${subjects.map((s) => {
      const r = get(s);
      return r ? check(r) : 'n/a (did not run)';
    }).join(' | ')} |`);
  }
  return lines.join('\n');
}


function machine(ctx: Context, command: string, startedAt: Date, seconds: number): string {
  const cpuinfo = (() => {
    try {
      return fs.readFileSync('/proc/cpuinfo', 'utf8');
    } catch {
      return '';
    }
  })();
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? os.cpus()[0]?.model ?? 'unknown';
  const git = spawnSync('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' });
  const dirty = spawnSync('git', ['-C', ROOT, 'status', '--porcelain', '--', 'src', 'ffi', 'bin'], { encoding: 'utf8' });
  const commit = git.status === 0 ? git.stdout.trim() + (dirty.stdout?.trim() ? ' (with uncommitted changes in src/ffi/bin)' : '') : 'unknown';
  return [
    `- CPU: ${model}, ${os.cpus().length} cores`,
    `- Memory: ${(os.totalmem() / 1e9).toFixed(1)} GB`,
    `- Kernel: ${os.type()} ${os.release()}`,
    `- Node: ${process.version}`,
    `- Tools: ${ctx.tools.versions.length ? ctx.tools.versions.join('; ') : 'none found'}`,
    `- rsp commit: ${commit}`,
    `- Date: ${startedAt.toISOString()} (run took ${Math.round(seconds)} s)`,
    `- Load average (1/5/15 min): ${loadAtStart} at the start, ${loadAverage()} at the end; other processes used ${foreign.seconds().toFixed(1)} CPU-seconds during the run (anything else running skews the figures; setups where it exceeded 10% of a core over their own runs are flagged in the notes)`,
    `- Command: \`${command}\``,
  ].join('\n');
}

function method(ctx: Context): string {
  const p = ctx.params;
  const backend = ctx.backend.kind === 'nginx'
    ? 'nginx (1 worker process) serving a 100-byte `return 200` response at /small and a static file with sendfile at /bulk'
    : 'a Node http server of the benchmark\'s own (scripts/bench/backend-server.ts; nginx is not installed), which is slower than nginx, so the direct row and every proxy are capped lower than they would be with nginx';
  const later = p.rounds === 2 ? 'round 2 starts halfway down the list (the order rotated)' : `each later round starts 1/${p.rounds} of the way further down the list (the order rotated)`;
  return [
    `Everything ran on loopback (127.0.0.1), with every proxy given one worker process/thread for fairness: rsp (one reactor thread, \`workers = 1\`; the row "rsp level, 2 workers" has two, for the scaling figures), the Node \`net\` pipe proxy (scripts/bench/node-pipe-proxy.ts, one event loop), nginx \`worker_processes 1\`, HAProxy \`nbthread 1\`. The load generator and the backend share the same ${os.cpus().length} cores.`,
    '',
    `- Rounds: the keep-alive and 1 req/conn figures come from ${p.rounds} rounds that interleave the setups, because on this kind of shared VM one run of a setup can be 15–30% off (CPU steal), and interleaving spreads whatever disturbs the machine over every setup instead of landing on one. A round runs every setup once (a keep-alive run, then a 1 req/conn run); round 1 goes in table order and ${later}, so each setup is measured at different points of a round. Every proxy is started once before round 1 and stays up, idle in its event loop, while the others are measured (the CPU it uses meanwhile is checked, and noted above 1% of a core). Each req/s cell is the median over the rounds${p.rounds === 2 ? ' (with two rounds, their mean)' : ''}, followed by ± half the min–max range as a share of the median; the figures of every round are listed under the table. Bulk downloads follow the rounds, interleaved the same way; latency and idle memory are measured after them, one setup after another.`,
    `- Backend: ${backend}.`,
    `- Keep-alive req/s: ${ctx.throughputMethod}`,
    `- 1 req/conn req/s: ${ctx.closeMethod}`,
    `- p50/p99 latency: ${ctx.latencyMethod}`,
    `- Bulk: ${ctx.tools.curl ? '`curl -o /dev/null`' : 'a Node http client that discards the body'} downloading a ${p.bulkBytes / 1e6} MB file, median of ${p.bulkRuns} run(s), interleaved across the setups as the rounds are (every setup once per run, the order rotated); MB = 10^6 bytes. A proxy's CPU ms per MB over those runs is noted under the table.`,
    `- CPU µs/req: utime+stime of the proxy's processes (all threads; nginx master and worker summed) from /proc/<pid>/stat, before and after a keep-alive run, divided by the requests it completed; taken from the setup's keep-alive round at the median${p.rounds % 2 === 0 ? ' (with an even number of rounds, the lower of the two middle ones)' : ''}. The same is measured around every 1 req/conn run; the figures of every round are listed under the table.`,
    `- Syscalls/req: ${ctx.syscallMethod}`,
    `- RSS: a fresh proxy pointed at a Node server that accepts connections and holds them without answering; ${fmtInt(p.idleConns)} client connections are opened through the proxy and each sends one small HTTP request (so the HTTP proxies open their backend connection too), and RSS (VmRSS, summed over nginx's processes) is read once the backend counts them all. "+KB/conn" is (RSS − RSS of the same fresh proxy before the connections) / connections. MB = 10^6 bytes, KB = 10^3 bytes.`,
    '- rsp runs with its defaults (bin/rsp with a config that sets only listenPort, listenAddress, backendAddress, backendPort and triggerMode).',
    `- ${labelOf(POOL)}: rsp in level mode with \`backends = { app = { "127.0.0.1:P1", "127.0.0.1:P2", "127.0.0.1:P3", balance = "roundrobin" } }\` instead of backendAddress/backendPort: the same backend process listening on three ports (every setup's backend listens on all three; the others use the first), so the members are three distinct sockets and the backend's capacity is the same as for the single-backend rows. At start-up the benchmark opens three clients through it and checks in /proc/net/tcp that rsp holds exactly one connection to each member. TCP mode picks a member per client connection, so keep-alive runs pick only ${ctx.params.loadConns} times; the 1 req/conn runs pick once per request.`,
    '- TCP proxies (rsp, Node, nginx stream, HAProxy tcp) open one backend connection per client connection; the HTTP proxies (nginx http, HAProxy http, the rsp http rows: see "HTTP mode" for their configs) keep backend connections alive across client connections, which matters most in the 1 req/conn column.',
    '- Proxy settings are the defaults except: nginx http has upstream `keepalive 32`, `proxy_http_version 1.1`, `proxy_set_header Connection ""` and `proxy_max_temp_file_size 0` (no disk buffering); HAProxy http has `http-reuse safe` (its default); nginx/HAProxy timeouts are raised to 600 s for the idle-connection run; nginx `worker_rlimit_nofile`/`worker_connections` and HAProxy `maxconn` are raised to fit the connections.',
    '- Ratios are plain quotients of the figures (for latency, CPU, syscalls and RSS, lower is better).',
    '- Cells: "n/a" means not measured (tool missing or the measurement failed, see the notes); "—" means not applicable (direct has no proxy) or the setup was skipped.',
  ].join('\n');
}

/** How each figure was measured, given the tools found: the Method section's lines, and the notes when a tool is missing. */
export function methodTexts(tools: Tools, p: Params): Pick<Context, 'throughputMethod' | 'closeMethod' | 'latencyMethod' | 'syscallMethod'> {
  return {
    throughputMethod: tools.wrk
      ? `\`wrk -t1 -c${p.loadConns} -d${p.keepAliveS}s\` to /small, once per round; a setup's first run follows a ${p.warmupS} s warm-up run (its proxy then stays up, so later rounds need none).`
      : tools.autocannon
        ? `autocannon (${p.loadConns} connections, ${p.keepAliveS} s, running inside the benchmark process), once per round; a setup's first run follows a warm-up run.`
        : 'not measured: neither wrk nor autocannon is installed (CPU/request and syscalls/request need it too).',
    closeMethod: tools.wrk
      ? `\`wrk -t1 -c${p.loadConns} -d${p.closeS}s -H 'Connection: close'\`, once per round, right after the setup's keep-alive run: the server closes after each response and wrk reconnects (the direct row's progress lines show connections/request counted at the backend).`
      : tools.ab
        ? `\`ab -c ${p.loadConns} -t ${p.closeS}\` without -k (a new connection per request), once per round.`
        : 'not measured: neither wrk nor ab is installed.',
    latencyMethod: tools.wrk
      ? `\`wrk -t1 -c${p.latencyConns} --latency\` for ${p.latencyS} s with a Lua \`delay()\` of ${p.latencyGapMs} ms between a connection's requests, so about ${fmtInt((p.latencyConns * 1000) / p.latencyGapMs)} req/s (wrk2 is not available, so this is closed-loop pacing, not a constant-rate open loop); time from sending a request to its complete response.`
      : `a paced Node client in the benchmark process: ${p.latencyConns} keep-alive connections, each waiting ${p.latencyGapMs} ms between requests (about ${fmtInt((p.latencyConns * 1000) / p.latencyGapMs)} req/s) for ${p.latencyS} s; time from write() to the complete response, so Node's own event-loop overhead is included.`,
    syscallMethod: tools.perf
      ? '`perf stat -e raw_syscalls:sys_enter -p <pids>` attached during every keep-alive run (it adds a small cost to each of the proxy\'s syscalls, the same for every proxy and every round), divided by its requests; from the same run as CPU µs/req.'
      : tools.strace && tools.wrk
        ? `\`strace -c -f -p <pids>\` during a separate ${p.straceS} s keep-alive run (strace slows the proxy a lot, so that run's throughput is not reported), divided by its requests.`
        : 'not measured (n/a): perf does not work here and strace is not installed, or there is no wrk.',
  };
}

export function commandLine(argv: string[]): string {
  const args = argv.map((a) => (/^[\w./,:=-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
  if (process.env.npm_lifecycle_event === 'bench') return `npm run bench${args ? ` -- ${args}` : ''}`;
  return `node dist/scripts/bench/index.js${args ? ` ${args}` : ''}`;
}

/** `sections`: whole sections of other parts of the benchmark (http-report.ts's "HTTP mode"), placed after Targets. */
export function report(ctx: Context, rows: Row[], command: string, startedAt: Date, seconds: number, previousNotes: string, sections = ''): string {
  const p = ctx.params;
  const kind = ctx.options.quick
    ? `**Quick run (\`--quick\`)**: ${p.rounds} rounds of ${p.keepAliveS} s load runs, ${p.bulkBytes / 1e6} MB bulk file, ${fmtInt(p.idleConns)} idle connections; the figures are rougher than a full run's.`
    : `Full run: ${p.rounds} rounds of ${p.keepAliveS} s keep-alive and ${p.closeS} s one-request-per-connection runs per setup, ${p.latencyS} s latency run, ${p.bulkBytes / 1e6} MB bulk file, ${fmtInt(p.idleConns)} idle connections.`;
  const notes = rows.flatMap((r) => r.notes.map((n) => `- ${r.label}: ${n}`));
  const skipped = rows.filter((r) => r.skipped).map((r) => `- ${r.label} skipped: ${r.skipped}`);
  const toolNotes: string[] = [];
  if (!ctx.tools.wrk) toolNotes.push(`- wrk not installed. Keep-alive req/s: ${ctx.throughputMethod} 1 req/conn: ${ctx.closeMethod}`);
  if (!ctx.tools.perf) toolNotes.push(`- ${ctx.tools.perfNote}. Syscalls/req: ${ctx.syscallMethod}`);
  return `# Benchmarks

Generated by \`npm run bench\` (scripts/bench/). Everything above the \`${NOTES_MARKER}\` line is rewritten by each run; notes below it are kept.

## Results

${kind} One worker process/thread per proxy (two for "rsp level, 2 workers"). Each cell: the figure, then its ratio to the Node \`net\` pipe proxy and to direct. The req/s figures are medians over the rounds, ± half their min–max range (as a share of the median).

${table(rows, p)}

Req/s round by round (in the order the rounds ran, then min–max${rows.some((r) => [...r.keepAliveDisturbed, ...r.closeDisturbed].includes(true)) ? '; \\* = other processes used over 10% of a core during that run' : ''}):

${roundsList(rows, p)}
${[...skipped, ...toolNotes, ...notes].length ? `\nNotes from this run:\n\n${[...skipped, ...toolNotes, ...notes].join('\n')}\n` : ''}
## Charts

${chartsSection(ctx.options.out, benchResults(rows, p, command, ctx.options.quick, startedAt))}

## Targets

For rsp level and rsp edge, checked against the figures above (for req/s, the medians over the rounds). "rounds overlap": the two setups' round-by-round figures overlap (the other setup's scaled by the target's factor), so that verdict is within this machine's run-to-run spread and could flip on another run. The two "Pool of 3" rows compare ${labelOf(POOL)} with single-backend rsp level, both in this run: the verdict is on the medians over the rounds of the proxy's CPU µs per request in each round's run (listed under the results table), then each round's pair side by side (the rounds interleave the setups, so a pair ran close together) and, for keep-alive, the table's CPU column (from the round at the median req/s); "rounds overlap" there means the pool's rounds are not all on one side of the single backend's rounds × 1.03, so a difference of a few percent is within this machine's spread (±15–30% run to run).

${targets(rows, p, ctx.options.quick)}
${sections ? `\n${sections}` : ''}
## Machine

${machine(ctx, command, startedAt, seconds)}

## Method

${method(ctx)}

${NOTES_MARKER}
${previousNotes}`;
}

export function readPreviousNotes(file: string): string {
  try {
    // The marker on a line of its own (the intro mentions it inline too); the
    // last such line, so that a file where an older version of this script
    // nested old reports into the notes comes out clean.
    const text = fs.readFileSync(file, 'utf8');
    const markers = [...text.matchAll(new RegExp(`^${NOTES_MARKER}[ \\t]*\\r?$`, 'gm'))];
    if (markers.length === 0) return '';
    const at = markers[markers.length - 1].index! + markers[markers.length - 1][0].length;
    return text.slice(at).replace(/^\n/, '');
  } catch {
    return '';
  }
}
