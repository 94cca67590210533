// The report's "HTTP mode" section (issue 9's Speed targets): rsp in HTTP mode
// (no routes, a routes table, routes + a Lua route()) against nginx http and
// HAProxy http and against rsp in TCP mode, all from the same interleaved
// rounds; the cost of route() and of the routes lookup; the parser's own
// figures (bench-parser.js, run by the benchmark after the proxies).
//
// The verdicts go by the proxy's CPU µs per request where the issue allows it
// (it measures the proxy's own work, and on this shared 2-core VM it moves
// less than req/s, which also depends on wrk and the backend getting the
// cores), and show every round's figures next to them.
import { fmt1, fmt2, fmtInt, median, rangeText } from './format';
import type { Params } from './options';
import type { ParserFigures, RouteCostFigures } from './parser';
import { labelOf } from './setups';
import type { Row } from './state';

/** rsp's HTTP-mode setups: no routes, routes, routes + route(). */
export const HTTP_SETUPS = ['rsp-http-bare', 'rsp-http', 'rsp-http-lua'] as const;
/** The row the targets are checked on: HTTP mode as configured in the issue's example (a routes table). */
const SUBJECT = 'rsp-http';
const PEERS = ['nginx-http', 'haproxy-http'] as const;
/** rsp in TCP mode, level (the trigger mode the HTTP rows use). */
const TCP = 'rsp-level';
/** route() may cost at most this share (issue 9). */
const ROUTE_LIMIT = 0.1;
/** Below this the routes lookup counts as "nothing measurable" even when the rounds do not overlap. */
const NEGLIGIBLE = 0.02;

export function runsHttp(names: readonly string[]): boolean {
  return HTTP_SETUPS.some((s) => names.includes(s));
}

type Series = (r: Row) => number[];
const kaRps: Series = (r) => r.keepAliveRuns;
const closeRps: Series = (r) => r.closeRuns;
const kaCpu: Series = (r) => r.keepAliveCpuRuns;
const closeCpu: Series = (r) => r.closeCpuRuns;

const signed = (x: number): string => `${x >= 0 ? '+' : '−'}${Math.abs(x * 100).toFixed(1)}%`;

/** Both series have a figure for every round, so they pair up round by round (a pair ran in the same round, close together). */
function paired(a: number[], b: number[], p: Params): boolean {
  return a.length === p.rounds && b.length === p.rounds && p.rounds > 1;
}

/** "1.08× (rounds 1.02 / 1.11 / 1.08)": the ratio of the medians, then each round's ratio. */
function ratioCell(a: Row | undefined, b: Row | undefined, series: Series, p: Params): string {
  if (!a || !b) return 'n/a';
  const x = series(a);
  const y = series(b);
  if (x.length === 0 || y.length === 0) return 'n/a';
  const rounds = paired(x, y, p) ? ` (rounds ${x.map((v, i) => (v / y[i]).toFixed(2)).join(' / ')})` : '';
  return `${(median(x) / median(y)).toFixed(2)}×${rounds}`;
}

/** "+4.1% (rounds +2.0% / +6.3% / +4.1%)": a's median over b's, as a change. */
function costCell(a: Row | undefined, b: Row | undefined, series: Series, p: Params): string {
  if (!a || !b) return 'n/a';
  const x = series(a);
  const y = series(b);
  if (x.length === 0 || y.length === 0) return 'n/a';
  const rounds = paired(x, y, p) ? ` (rounds ${x.map((v, i) => signed(v / y[i] - 1)).join(' / ')})` : '';
  return `${signed(median(x) / median(y) - 1)}${rounds}`;
}

/** Do the two series' ranges overlap (b's scaled by `factor`)? Then a verdict between them is within this machine's spread. */
function overlap(x: number[], y: number[], factor = 1): boolean {
  return x.length > 1 && y.length > 1 && Math.min(...x) <= Math.max(...y) * factor && Math.max(...x) >= Math.min(...y) * factor;
}

function figuresTable(rows: Row[]): string {
  const order = [...HTTP_SETUPS, ...PEERS, TCP];
  const shown = order.map((name) => rows.find((r) => r.setup === name)).filter((r): r is Row => r !== undefined);
  const rps = (runs: number[]): string => {
    if (runs.length === 0) return 'n/a';
    const mid = median(runs);
    return `${fmtInt(mid)}${runs.length > 1 ? ` ±${(((Math.max(...runs) - Math.min(...runs)) / 2 / mid) * 100).toFixed(0)}%` : ''}`;
  };
  const cpu = (runs: number[]): string => (runs.length === 0 ? 'n/a' : `${fmt1(median(runs))}${runs.length > 1 ? ` (${fmt1(Math.min(...runs))}–${fmt1(Math.max(...runs))})` : ''}`);
  const lines = [
    '| Setup | Keep-alive req/s | 1 req/conn req/s | CPU µs/req, keep-alive | CPU µs/req, 1 req/conn | Syscalls/req, keep-alive | Backend connections/req, keep-alive; 1 req/conn | RSS per connection, a request in flight each |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  const conns = (runs: number[] | undefined): string => (!runs || runs.length === 0 ? 'n/a' : `${fmt2(median(runs))}${runs.length > 1 ? ` (${fmt2(Math.min(...runs))}–${fmt2(Math.max(...runs))})` : ''}`);
  for (const r of shown) {
    if (r.skipped) {
      lines.push(`| ${r.label} (skipped: ${r.skipped.replace(/\|/g, '/')}) | — | — | — | — | — | — | — |`);
      continue;
    }
    const rss = r.rss ? `+${((r.rss.loaded - r.rss.baseline) / 1000 / r.rss.conns).toFixed(1)} KB` : 'n/a';
    lines.push(`| ${r.label} | ${rps(kaRps(r))} | ${rps(closeRps(r))} | ${cpu(kaCpu(r))} | ${cpu(closeCpu(r))} | ${r.syscalls !== undefined ? fmt2(r.syscalls) : 'n/a'} | ${conns(r.keepAliveBackendConns)}; ${conns(r.closeBackendConns)} | ${rss} |`);
  }
  return lines.join('\n');
}

function ratiosTable(get: (s: string) => Row | undefined, p: Params): string {
  const subject = get(SUBJECT);
  const lines = [
    '| Comparison (same run) | Keep-alive req/s | 1 req/conn req/s | CPU µs/req, keep-alive | CPU µs/req, 1 req/conn |',
    '| --- | --- | --- | --- | --- |',
  ];
  for (const ref of [...PEERS, TCP]) {
    const other = get(ref);
    lines.push(`| ${labelOf(SUBJECT)} / ${labelOf(ref)} | ${[kaRps, closeRps, kaCpu, closeCpu].map((s) => ratioCell(subject, other, s, p)).join(' | ')} |`);
  }
  const costs: [string, string, string][] = [
    ['route() (Lua, reads one header, returns nil)', 'rsp-http-lua', SUBJECT],
    ['routes table lookup', SUBJECT, 'rsp-http-bare'],
  ];
  for (const [what, with_, without] of costs) {
    lines.push(`| cost of ${what}: ${labelOf(with_)} against ${labelOf(without)} | ${[kaRps, closeRps, kaCpu, closeCpu].map((s) => costCell(get(with_), get(without), s, p)).join(' | ')} |`);
  }
  return lines.join('\n');
}

function parserRatio(parser: ParserFigures | null): { ratio: number; heads: number } | null {
  if (!parser || parser.text === '') return null;
  // The corpus table (the first one): the row with every string made, the fair comparison with llhttp's callback.
  const corpus = parser.text.split(/\n(?=small heads:)/)[0];
  const m = /\| rsp RequestHead \+ all strings \| ([\d,]+) \| [\d.]+ \| ([\d.]+)x \|/.exec(corpus);
  return m ? { ratio: Number(m[2]), heads: Number(m[1].replace(/,/g, '')) } : null;
}

function targetsTable(get: (s: string) => Row | undefined, p: Params, parser: ParserFigures | null, cost: RouteCostFigures | null): string {
  const subject = get(SUBJECT);
  const lines = [`| Target (issue 9) | ${labelOf(SUBJECT)} |`, '| --- | --- |'];
  const add = (title: string, verdict: string): void => void lines.push(`| ${title} | ${verdict} |`);
  const missing = (name: string): string => `n/a (${labelOf(name)} not measured)`;

  /** The subject's median against `ref`'s: PASS when it is at least (`higher`) or at most (lower) as much. */
  const versus = (series: Series, ref: string, higher: boolean, fmt: (n: number) => string, unit: string): string => {
    const other = get(ref);
    if (!subject || series(subject).length === 0) return 'n/a (not measured)';
    if (!other || series(other).length === 0) return missing(ref);
    const a = median(series(subject));
    const b = median(series(other));
    const o = overlap(series(subject), series(other)) ? '; rounds overlap' : '';
    return `${(higher ? a >= b : a <= b) ? '**PASS**' : '**MISS**'}: ${fmt(a)} vs ${fmt(b)} ${unit} (${(a / b).toFixed(2)}×${o})`;
  };
  const atLeast = (series: Series, ref: string): string => versus(series, ref, true, fmtInt, 'req/s');
  const atMost = (series: Series, ref: string): string => versus(series, ref, false, fmt1, 'µs/req');
  for (const ref of PEERS) add(`Keep-alive req/s ≥ ${labelOf(ref)}`, atLeast(kaRps, ref));
  for (const ref of PEERS) add(`1 req/conn req/s ≥ ${labelOf(ref)}`, atLeast(closeRps, ref));
  add(`CPU µs/request ≤ ${labelOf('nginx-http')}'s (keep-alive)`, atMost(kaCpu, 'nginx-http'));
  add(`CPU µs/request ≤ ${labelOf('nginx-http')}'s (1 req/conn)`, atMost(closeCpu, 'nginx-http'));

  // route(): its cost in CPU per request (the proxy's own work) and in req/s.
  const lua = get('rsp-http-lua');
  const routeCost = (series: Series, higherIsWorse: boolean, unit: string): string => {
    if (!subject || !lua || series(subject).length === 0 || series(lua).length === 0) return `n/a (${!lua ? labelOf('rsp-http-lua') : labelOf(SUBJECT)} not measured)`;
    const a = median(series(lua));
    const b = median(series(subject));
    // The change with route(): CPU may rise by at most the limit, req/s fall by at most the limit.
    const change = a / b - 1;
    const ok = higherIsWorse ? change <= ROUTE_LIMIT : change >= -ROUTE_LIMIT;
    const o = overlap(series(lua), series(subject), higherIsWorse ? 1 + ROUTE_LIMIT : 1 - ROUTE_LIMIT) ? '; rounds overlap the limit' : '';
    const show = unit === 'req/s' ? `${fmtInt(a)} vs ${fmtInt(b)} req/s` : `${fmt1(a)} vs ${fmt1(b)} µs/req`;
    return `${ok ? '**PASS**' : '**MISS**'}: ${signed(change)} ${unit === 'req/s' ? 'req/s' : 'CPU'} with route() (${show}${o})`;
  };
  add('route() costs ≤ 10%: CPU µs/request, keep-alive', routeCost(kaCpu, true, 'µs'));
  add('route() costs ≤ 10%: CPU µs/request, 1 req/conn', routeCost(closeCpu, true, 'µs'));
  add('route() costs ≤ 10%: keep-alive req/s', routeCost(kaRps, false, 'req/s'));

  // routes lookup: nothing measurable = within NEGLIGIBLE, or not separable from the rounds' spread.
  const bare = get('rsp-http-bare');
  const lookup = (series: Series): string => {
    if (!subject || !bare || series(subject).length === 0 || series(bare).length === 0) return `n/a (${!bare ? labelOf('rsp-http-bare') : labelOf(SUBJECT)} not measured)`;
    const x = series(subject);
    const y = series(bare);
    const cost = median(x) / median(y) - 1;
    const apart = x.length > 1 && y.length > 1 && Math.min(...x) > Math.max(...y);
    const ok = cost <= NEGLIGIBLE || !apart;
    const why = cost <= 0 ? 'no cost: lower with routes, i.e. noise' : cost <= NEGLIGIBLE ? `within ${NEGLIGIBLE * 100}%` : apart ? 'every round with routes above every round without' : 'the rounds overlap: not separable from the noise';
    return `${ok ? '**PASS**' : '**MISS**'}: ${signed(cost)}, ${fmt1(median(x))} vs ${fmt1(median(y))} µs/req (${why})`;
  };
  add('routes lookup costs nothing measurable: CPU µs/request, keep-alive', lookup(kaCpu));
  add('routes lookup costs nothing measurable: CPU µs/request, 1 req/conn', lookup(closeCpu));

  // The same two costs measured in one process (route-cost.js), as a share of the request's CPU in the load runs.
  const share = (extra: number | undefined, limit: number, what: string): string => {
    if (!cost || cost.failure || extra === undefined) return `n/a (${cost?.failure ? `route-cost.js failed: ${cost.failure}` : 'route-cost.js did not run'})`;
    if (!subject || kaCpu(subject).length === 0) return `n/a (${labelOf(SUBJECT)} not measured)`;
    const cpu = median(kaCpu(subject));
    const s = extra / 1000 / cpu;
    return `${s <= limit ? '**PASS**' : '**MISS**'}: ${fmtInt(extra)} ns per request ${what} = ${(s * 100).toFixed(1)}% of ${labelOf(SUBJECT)}'s ${fmt1(cpu)} CPU µs/request (keep-alive)`;
  };
  const diff = (a: number | undefined, b: number | undefined): number | undefined => (a === undefined || b === undefined ? undefined : a - b);
  add('route() costs ≤ 10%: in one process, its time per call', share(diff(cost?.lua, cost?.routes), ROUTE_LIMIT, 'for route()'));
  add(`routes lookup costs nothing measurable: in one process (under ${NEGLIGIBLE * 100}% of a request)`, share(diff(cost?.routes, cost?.bare), NEGLIGIBLE, 'for the routes lookup'));

  const pr = parserRatio(parser);
  add('Parser heads/s ≥ llhttp (corpus, every string made)', pr === null ? 'n/a (the parser benchmark did not run)' : `${pr.ratio >= 1 ? '**PASS**' : '**MISS**'}: ${fmtInt(pr.heads)} heads/s, ${pr.ratio.toFixed(2)}× llhttp`);
  return lines.join('\n');
}

/** Puts a blank line before each table of bench-parser's output, so that markdown renders it as one. */
function parserText(text: string): string {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const prev = out[out.length - 1];
    if (line.startsWith('|') && prev !== undefined && prev !== '' && !prev.startsWith('|')) out.push('');
    out.push(line);
  }
  return out.join('\n');
}

function parserSection(parser: ParserFigures | null): string {
  if (parser === null) return '_Not run (no HTTP-mode setup in this run)._';
  if (parser.failure) return `_\`${parser.command}\` failed: ${parser.failure}_`;
  return [
    `\`${parser.command}\`, run by the benchmark after the proxies were stopped (${Math.round(parser.seconds)} s; other processes used ${parser.foreignCpu.toFixed(1)} CPU-seconds meanwhile). Each head is one read; "parse only" makes no string, "+ all strings" makes every string llhttp hands node's callback (method, target, every name and value), the fair comparison. The variants alternate within each round and the best round of each is kept.`,
    '',
    parserText(parser.text),
  ].join('\n');
}

function routeCostSection(cost: RouteCostFigures | null, get: (s: string) => Row | undefined): string {
  if (cost === null) return '_Not run (no HTTP-mode setup in this run)._';
  if (cost.failure) return `_\`${cost.command}\` failed: ${cost.failure}_`;
  const subject = get(SUBJECT);
  const cpu = subject && kaCpu(subject).length > 0 ? median(kaCpu(subject)) : undefined;
  const lines = [
    `\`${cost.command}\`, run by the benchmark after the proxies were stopped: the three configs above, loaded by rsp's own config loader; per request what an HTTP session does before it forwards: \`RequestHead\` reset() and feed() of wrk's request (\`GET /small\` with a Host), then \`requestRouter()\` (src/http/route.ts) with the config's route() and routes. Nanoseconds per request, best of the rounds (the three alternate within each round).`,
    '',
    `| Config | ns/request, parse + choose the pool | Added by | As a share of ${labelOf(SUBJECT)}'s CPU µs/request (keep-alive, this run) |`,
    '| --- | --- | --- | --- |',
  ];
  const pct = (ns: number): string => (cpu === undefined ? 'n/a' : `${((ns / 1000 / cpu) * 100).toFixed(1)}%`);
  lines.push(`| ${labelOf('rsp-http-bare')} | ${fmtInt(cost.bare!)} | — | — |`);
  lines.push(`| ${labelOf(SUBJECT)} | ${fmtInt(cost.routes!)} | routes lookup: +${fmtInt(cost.routes! - cost.bare!)} ns | ${pct(cost.routes! - cost.bare!)} |`);
  lines.push(`| ${labelOf('rsp-http-lua')} | ${fmtInt(cost.lua!)} | route(): +${fmtInt(cost.lua! - cost.routes!)} ns | ${pct(cost.lua! - cost.routes!)} |`);
  return lines.join('\n');
}

export function httpSection(rows: Row[], p: Params, parser: ParserFigures | null, routeCost: RouteCostFigures | null = null): string {
  if (!rows.some((r) => (HTTP_SETUPS as readonly string[]).includes(r.setup))) return '';
  const get = (s: string): Row | undefined => rows.find((r) => r.setup === s && !r.skipped);
  return `## HTTP mode

rsp with \`mode = "http"\` (one reactor thread, level mode, the pool's default \`keepalive = 32\` idle connections per member) in three configs that differ by one thing each: **${labelOf('rsp-http-bare')}** (\`backends = { app = { one member } }\`, every request to that pool), **${labelOf(SUBJECT)}** (the same plus a \`routes\` table of six entries: exact hosts, two wildcards, \`default\`; wrk's Host is one of the exact ones), **${labelOf('rsp-http-lua')}** (the same plus \`function route(req) if req.headers["x-bench-check"] then return 299 end return nil end\`: one header read, nil, then the table). Against nginx http (upstream \`keepalive 32\`, \`proxy_http_version 1.1\`, \`proxy_set_header Connection ""\`) and HAProxy http (\`http-reuse safe\`), and against rsp in TCP mode (${labelOf(TCP)}). They are rows of the results table above and ran in the same interleaved rounds (the three rsp HTTP rows one after another in each round); keep-alive is \`wrk -c${p.loadConns}\` to /small, 1 req/conn the same with \`-H 'Connection: close'\` (every HTTP proxy keeps its backend connections across clients). Before the rounds, one request through each rsp HTTP setup checks the 200 and the backend's body, and that route() runs (it answers 299 to a request marked with that header).

Req/s: median over the rounds ± half the min–max range. CPU µs/req: the proxy's utime+stime over each run divided by the requests it completed, median over the rounds (min–max). Syscalls/req: from the keep-alive round at the median req/s. Backend connections/req: the connections the backend accepted during each run (nginx's stub_status) divided by the requests, median (min–max): 0 when every request reuses a kept-alive backend connection, 1 when each opens one (as a TCP proxy does in 1 req/conn). RSS per connection: the idle-memory run of the results table, where every connection has sent one request that the holding backend never answers (so not an idle keep-alive connection).

${figuresTable(rows)}

Ratios in this run: for req/s above 1 is faster, for CPU µs/req below 1 is cheaper; "rounds": each round's own ratio (a pair ran in the same round). A cost is the setup's median over the other's, as a change: for req/s a negative figure is the cost, for CPU a positive one.

${ratiosTable(get, p)}

### Targets (issue 9, Speed)

For ${labelOf(SUBJECT)}, on the medians over the rounds; "rounds overlap": the two setups' round figures overlap, so the verdict is within this VM's run-to-run spread and could flip on another run. route()'s cost is checked on CPU µs/request (the proxy's own work per request; req/s also depends on how wrk and the backend get the 2 cores) and, as the issue words it, on keep-alive req/s. The routes lookup counts as "nothing measurable" when its cost is under ${NEGLIGIBLE * 100}% or its rounds overlap those without routes. The two "in one process" rows take the nanoseconds that route() and the routes lookup add per request, measured without sockets (next section), as a share of the CPU µs per request ${labelOf(SUBJECT)} used in this run's keep-alive runs: a steadier figure than the difference between two setups' load runs, which on this VM move by ±10% from round to round.

${targetsTable(get, p, parser, routeCost)}

### Choosing the pool, in one process

${routeCostSection(routeCost, get)}

### The parser alone

${parserSection(parser)}
`;
}
