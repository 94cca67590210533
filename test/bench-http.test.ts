// The benchmark's HTTP-mode parts: the rsp-http setups start the real CLI with
// configs it accepts and pass their own check through a real backend (route()
// runs in rsp-http-lua); route-cost.js measures all three configs; the "HTTP
// mode" report section's verdicts follow the figures they are given (synthetic
// rows: no figure of this machine is judged).
import test from 'ava';
import * as http from 'node:http';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SMALL_BODY } from '../scripts/bench/constants';
import { httpSection, runsHttp } from '../scripts/bench/http-report';
import { FULL } from '../scripts/bench/options';
import type { ParserFigures } from '../scripts/bench/parser';
import { killEverything } from '../scripts/bench/processes';
import { measureRouteCost } from '../scripts/bench/route-cost';
import { rspHttpBare, rspHttpLua, rspHttpRoutes } from '../scripts/bench/setups/rsp-http';
import type { Row } from '../scripts/bench/state';
import type { Tools } from '../scripts/bench/tools';

test.after.always(() => killEverything());

function backend(): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    if (req.url === '/small') {
      res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': SMALL_BODY.length });
      res.end(SMALL_BODY);
    } else {
      res.writeHead(404, { 'Content-Length': 0 });
      res.end();
    }
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

for (const setup of [rspHttpBare, rspHttpRoutes, rspHttpLua]) {
  test(`${setup.name} starts bin/rsp in HTTP mode and passes its check through a real backend`, async (t) => {
    t.timeout(60000);
    const server = await backend();
    t.teardown(() => server.close());
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rsp-bench-http-'));
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
    const port = (server.address() as { port: number }).port;
    const proxy = await setup.start(port, dir, {} as Tools, 100, [port]);
    t.teardown(() => proxy.stop());
    t.true(proxy.pids().length >= 1);
    t.truthy(setup.check, 'an HTTP setup checks itself');
    const seen = await setup.check!(proxy.port);
    t.regex(seen, /answered 200/);
    if (setup === rspHttpLua) t.regex(seen, /route\(\) ran/);
    t.is(proxy.exitStatus(), null, proxy.output());
    const config = fs.readFileSync(fs.readdirSync(dir).map((f) => path.join(dir, f)).find((f) => f.endsWith('.lua'))!, 'utf8');
    t.regex(config, /mode = "http"/);
    t.is(/routes = \{/.test(config), setup !== rspHttpBare);
    t.is(/function route\(req\)/.test(config), setup === rspHttpLua);
  });
}

test('a setup whose check fails is reported by the check, not silently passed', async (t) => {
  t.timeout(60000);
  // A backend that answers 404 to /small: the check must throw.
  const server = http.createServer((_req, res) => {
    res.writeHead(404, { 'Content-Length': 0 });
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  t.teardown(() => server.close());
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rsp-bench-http-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const port = (server.address() as { port: number }).port;
  const proxy = await rspHttpRoutes.start(port, dir, {} as Tools, 100, [port]);
  t.teardown(() => proxy.stop());
  await t.throwsAsync(rspHttpRoutes.check!(proxy.port), { message: /did not answer 200/ });
});

/** A row with the given per-round figures (3 rounds). */
function row(setup: string, label: string, f: { ka: number[]; close: number[]; kaCpu: number[]; closeCpu: number[] }): Row {
  return {
    setup,
    label,
    proxy: true,
    keepAliveRuns: f.ka,
    closeRuns: f.close,
    keepAliveCpuRuns: f.kaCpu,
    closeCpuRuns: f.closeCpu,
    keepAliveDisturbed: f.ka.map(() => false),
    closeDisturbed: f.close.map(() => false),
    notes: [],
    syscalls: 5,
  };
}

const PARSER: ParserFigures = {
  text: [
    'node v20, 5 rounds of 500 ms, best round',
    '',
    'corpus: 10 heads, 463 bytes on average',
    '| parser | heads/s | MB/s | vs llhttp |',
    '|---|---:|---:|---:|',
    '| llhttp (node http_parser binding) | 400,000 | 185.2 |  |',
    '| rsp RequestHead, parse only | 800,000 | 370.4 | 2.00x |',
    '| rsp RequestHead + all strings | 360,000 | 166.7 | 0.90x |',
    '',
    'small heads: 3 heads, 63 bytes on average',
    '| parser | heads/s | MB/s | vs llhttp |',
    '|---|---:|---:|---:|',
    '| rsp RequestHead + all strings | 1,000,000 | 63.0 | 2.00x |',
  ].join('\n'),
  command: 'node dist/scripts/bench-parser.js',
  failure: '',
  foreignCpu: 0,
  seconds: 20,
};

/** The verdict cell of the targets row whose title starts with `title`. */
function verdict(text: string, title: string): string {
  const line = text.split('\n').find((l) => l.startsWith(`| ${title}`));
  if (line === undefined) throw new Error(`no row "${title}" in:\n${text}`);
  return line.split(' | ')[1];
}

test('the HTTP mode section: verdicts follow the figures', (t) => {
  const p = { ...FULL, rounds: 3 };
  const rows = [
    row('rsp-http-bare', 'rsp http, no routes', { ka: [20000, 21000, 22000], close: [8000, 8000, 8000], kaCpu: [20, 21, 22], closeCpu: [40, 41, 42] }),
    // routes: +1% CPU, within the noise.
    row('rsp-http', 'rsp http, routes', { ka: [20500, 21000, 21600], close: [8100, 8000, 7900], kaCpu: [20.5, 21.2, 21.9], closeCpu: [40, 41.4, 42] }),
    // route(): +20% CPU keep-alive (every round above the limit), +5% 1 req/conn, req/s −5%.
    row('rsp-http-lua', 'rsp http, routes + route()', { ka: [19500, 19950, 20400], close: [7600, 7700, 7800], kaCpu: [25, 25.4, 26], closeCpu: [43, 43.5, 44] }),
    row('nginx-http', 'nginx http', { ka: [18000, 19000, 20000], close: [9000, 9000, 9000], kaCpu: [25, 26, 27], closeCpu: [30, 31, 32] }),
    row('haproxy-http', 'HAProxy http', { ka: [30000, 31000, 32000], close: [7000, 7000, 7000], kaCpu: [14, 15, 16], closeCpu: [50, 50, 50] }),
    row('rsp-level', 'rsp level', { ka: [30000, 30000, 30000], close: [6000, 6000, 6000], kaCpu: [13, 13, 13], closeCpu: [70, 70, 70] }),
  ];
  // In one process: routes +300 ns (1.4% of 21.2 µs), route() +2,500 ns (11.8%).
  const text = httpSection(rows, p, PARSER, { bare: 400, routes: 700, lua: 3200, command: 'node dist/scripts/bench/route-cost.js', failure: '' });
  t.regex(text, /^## HTTP mode$/m);
  t.regex(verdict(text, 'Keep-alive req/s ≥ nginx http'), /^\*\*PASS\*\*: 21,000 vs 19,000/);
  t.regex(verdict(text, 'Keep-alive req/s ≥ HAProxy http'), /^\*\*MISS\*\*/);
  t.regex(verdict(text, '1 req/conn req/s ≥ nginx http'), /^\*\*MISS\*\*/);
  t.regex(verdict(text, '1 req/conn req/s ≥ HAProxy http'), /^\*\*PASS\*\*/);
  t.regex(verdict(text, 'CPU µs/request ≤ nginx http\'s (keep-alive)'), /^\*\*PASS\*\*: 21\.2 vs 26\.0/);
  t.regex(verdict(text, 'CPU µs/request ≤ nginx http\'s (1 req/conn)'), /^\*\*MISS\*\*/);
  t.regex(verdict(text, 'route() costs ≤ 10%: CPU µs/request, keep-alive'), /^\*\*MISS\*\*: \+19\.8% CPU/);
  t.regex(verdict(text, 'route() costs ≤ 10%: CPU µs/request, 1 req/conn'), /^\*\*PASS\*\*: \+5\.1% CPU/);
  t.regex(verdict(text, 'route() costs ≤ 10%: keep-alive req/s'), /^\*\*PASS\*\*: −5\.0% req\/s/);
  t.regex(verdict(text, 'routes lookup costs nothing measurable: CPU µs/request, keep-alive'), /^\*\*PASS\*\*: \+1\.0%/);
  t.regex(verdict(text, 'Parser heads/s ≥ llhttp'), /^\*\*MISS\*\*: 360,000 heads\/s, 0\.90× llhttp/);
  t.regex(verdict(text, 'route() costs ≤ 10%: in one process'), /^\*\*MISS\*\*: 2,500 ns per request for route\(\) = 11\.8% of/);
  t.regex(verdict(text, 'routes lookup costs nothing measurable: in one process'), /^\*\*PASS\*\*: 300 ns per request for the routes lookup = 1\.4% of/);
  t.regex(text, /\| rsp http, routes \+ route\(\) \| 3,200 \| route\(\): \+2,500 ns \| 11\.8% \|/);
  // Same-run ratios, round by round.
  t.regex(text, /\| rsp http, routes \/ nginx http \| 1\.11× \(rounds 1\.14 \/ 1\.11 \/ 1\.08\)/);
  // The parser's tables, each after a blank line so that markdown renders them.
  t.true(text.includes('corpus: 10 heads, 463 bytes on average\n\n| parser |'));
});

test('the HTTP mode section: a routes lookup that costs in every round is a MISS; missing rows are n/a', (t) => {
  const p = { ...FULL, rounds: 3 };
  const rows = [
    row('rsp-http-bare', 'rsp http, no routes', { ka: [20000, 20000, 20000], close: [8000, 8000, 8000], kaCpu: [20, 20.2, 20.4], closeCpu: [40, 40, 40] }),
    row('rsp-http', 'rsp http, routes', { ka: [19000, 19000, 19000], close: [8000, 8000, 8000], kaCpu: [21, 21.2, 21.4], closeCpu: [40, 40, 40] }),
  ];
  const text = httpSection(rows, p, null);
  t.regex(verdict(text, 'routes lookup costs nothing measurable: CPU µs/request, keep-alive'), /^\*\*MISS\*\*: \+5\.0%.*every round with routes above/);
  t.regex(verdict(text, 'Keep-alive req/s ≥ nginx http'), /^n\/a \(nginx http not measured\)/);
  t.regex(verdict(text, 'route() costs ≤ 10%: CPU µs/request, keep-alive'), /^n\/a/);
  t.regex(verdict(text, 'Parser heads/s ≥ llhttp'), /^n\/a/);
  t.regex(verdict(text, 'route() costs ≤ 10%: in one process'), /^n\/a \(route-cost\.js did not run\)/);
  t.regex(text, /_Not run/);
});

test('no HTTP setup in the run: no HTTP mode section, and the parser benchmark is not run', (t) => {
  t.is(httpSection([row('rsp-level', 'rsp level', { ka: [1], close: [1], kaCpu: [1], closeCpu: [1] })], FULL, null), '');
  t.false(runsHttp(['rsp-level', 'node', 'nginx-http']));
  t.true(runsHttp(['rsp-level', 'rsp-http-lua']));
});

test('route-cost measures parse + routing for the three configs (each routes wrk\'s request to app, or it throws)', (t) => {
  const cost = measureRouteCost(1, 20);
  t.is(cost.rounds, 1);
  for (const ns of [cost.bare, cost.routes, cost.lua]) t.true(Number.isFinite(ns) && ns > 0, String(ns));
});
