// Observability: the stats listener (/stats, /metrics, /healthz, /) and the
// access log, checked against what the test did.
import test, { type ExecutionContext } from 'ava';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import parsePrometheus from 'parse-prometheus-text-format';
import { listen, refusingPort, tempFile } from './helpers';
import { startRspLua } from './lua';

/** A backend that answers "hello" to whatever comes and closes. */
async function backend(t: ExecutionContext): Promise<number> {
  return listen(t, net.createServer((s) => {
    s.resume();
    s.end('hello');
  }));
}

function exchange(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let text = '';
    const timer = setTimeout(() => reject(new Error('no answer within 10 s')), 10000);
    s.on('connect', () => s.end('hi'));
    s.on('data', (d) => (text += d));
    s.on('close', () => {
      clearTimeout(timer);
      resolve(text);
    });
    s.on('error', reject);
  });
}

/** Requests made to each stats listener so far (each is a connection rsp counts too). */
const fetches = new Map<number, number>();

function fetch(port: number, urlPath: string, method = 'GET'): Promise<{ status: number; type: string; date: string; body: string }> {
  fetches.set(port, (fetches.get(port) ?? 0) + 1);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: urlPath, method, agent: false, timeout: 10000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, type: String(res.headers['content-type']), date: String(res.headers.date), body }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer to ${urlPath} within 10 s`)));
    req.on('error', reject);
    req.end();
  });
}

async function until(what: string, done: () => Promise<boolean> | boolean, limitMs = 10000): Promise<void> {
  const start = Date.now();
  while (!(await done())) {
    if (Date.now() - start > limitMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function rspWithStats(t: ExecutionContext, extra = ''): Promise<{ port: number; statsPort: number; members: number[]; rsp: Awaited<ReturnType<typeof startRspLua>> }> {
  const members = [await backend(t), await backend(t)];
  // One worker: its counters are the totals (several workers: test/workers.test.ts).
  const rsp = await startRspLua(t, `listenPort = 0 listenAddress = "127.0.0.1" workers = 1
backends = { app = { "127.0.0.1:${members[0]}", "127.0.0.1:${members[1]}" } }
stats = { listen = "127.0.0.1:0" }
${extra}`);
  const statsPort = Number(/Stats on port (\d+)/.exec(await rsp.waitFor(/Stats on port \d+/))![1]);
  return { port: rsp.port, statsPort, members, rsp };
}

test('/stats counts what the test did: connections, bytes, members, closes', async (t) => {
  const { port, statsPort, members } = await rspWithStats(t);
  const n = 6;
  for (let i = 0; i < n; i++) t.is(await exchange(port), 'hello');
  const fetchesBefore = fetches.get(statsPort) ?? 0;
  // The last pairing's close is seen by rsp a moment after the client's.
  await until('every pairing closed', async () => JSON.parse((await fetch(statsPort, '/stats')).body).listeners[0].connectionsActive === 0);
  const r = await fetch(statsPort, '/stats');
  t.is(r.status, 200);
  t.regex(r.type, /^application\/json/);
  const s = JSON.parse(r.body);
  t.is(s.listeners.length, 1);
  t.is(s.listeners[0].pool, 'app');
  t.is(s.listeners[0].connectionsTotal, n);
  t.is(s.listeners[0].bytesIn, n * 2);
  t.is(s.listeners[0].bytesOut, n * 5);
  t.deepEqual(s.pools[0].members.map((m: { name: string }) => m.name), members.map((p) => `127.0.0.1:${p}`));
  t.deepEqual(s.pools[0].members.map((m: { total: number }) => m.total), [n / 2, n / 2]);
  t.deepEqual(s.pools[0].members.map((m: { state: string }) => m.state), ['up', 'up']);
  // The stats requests are connections too: each one before this is closed, this one is open.
  const statsRequests = fetches.get(statsPort)! - fetchesBefore;
  t.is(s.closes.closed, 2 * n + statsRequests - 1);
  t.is(s.totals.accepts, n + statsRequests);
  t.deepEqual(s.workers[0].counters, s.totals);
});

test('/metrics is Prometheus text format that a real parser reads, with HELP and TYPE for every metric', async (t) => {
  const { port, statsPort } = await rspWithStats(t);
  for (let i = 0; i < 4; i++) await exchange(port);
  const fetchesBefore = fetches.get(statsPort) ?? 0;
  await until('every pairing closed', async () => /rsp_connections_active\{[^}]*\} 0/.test((await fetch(statsPort, '/metrics')).body));
  const r = await fetch(statsPort, '/metrics');
  t.is(r.status, 200);
  t.regex(r.type, /^text\/plain; version=0\.0\.4/);
  const families = parsePrometheus(r.body) as { name: string; help: string; type: string; metrics: { value: string; labels?: Record<string, string> }[] }[];
  const byName = new Map(families.map((f) => [f.name, f]));
  for (const f of families) {
    t.regex(f.name, /^rsp_[a-z_]+$/);
    t.true(f.help.length > 0, f.name);
    if (f.type === 'COUNTER') t.regex(f.name, /_total$/);
  }
  t.is(Number(byName.get('rsp_connections_total')!.metrics[0].value), 4);
  t.is(byName.get('rsp_backend_up')!.metrics.length, 2);
  t.true(byName.get('rsp_backend_up')!.metrics.every((m) => m.value === '1' && m.labels!.pool === 'app'));
  t.is(byName.get('rsp_backend_connections_total')!.metrics.reduce((n, m) => n + Number(m.value), 0), 4);
  t.is(Number(byName.get('rsp_closes_total')!.metrics.find((m) => m.labels!.cause === 'closed')!.value), 8 + (fetches.get(statsPort)! - fetchesBefore) - 1, 'the pairings and the stats requests before this one');
  t.true(Number(byName.get('rsp_epoll_wait_calls_total')!.metrics[0].value) > 0);
  t.is(byName.get('rsp_epoll_wait_calls_total')!.metrics[0].labels!.worker, '0');
});

test('a member that goes down shows as down in /stats, /metrics and on the page', async (t) => {
  const dead = refusingPort(t);
  const alive = await backend(t);
  const rsp = await startRspLua(t, `listenPort = 0 listenAddress = "127.0.0.1"
backends = { app = { "127.0.0.1:${dead.port}", "127.0.0.1:${alive}" } }
stats = { listen = "127.0.0.1:0" }`);
  const statsPort = Number(/Stats on port (\d+)/.exec(await rsp.waitFor(/Stats on port \d+/))![1]);
  t.is(await exchange(rsp.port), 'hello', 'retried on the live member');
  await rsp.waitFor(/is down/);
  const s = JSON.parse((await fetch(statsPort, '/stats')).body);
  const [down, up] = s.pools[0].members;
  t.is(down.state, 'down');
  t.is(down.downReason, 'connection refused');
  t.is(down.failures, 1);
  t.is(up.state, 'up');
  t.is(s.pools[0].up, 1);
  const metrics = (await fetch(statsPort, '/metrics')).body;
  t.true(metrics.includes(`rsp_backend_up{pool="app",member="127.0.0.1:${dead.port}"} 0`));
  t.true(metrics.includes(`rsp_backend_failures_total{pool="app",member="127.0.0.1:${dead.port}"} 1`));
  const page = (await fetch(statsPort, '/')).body;
  t.regex(page, new RegExp(`<tr class="down"><td>127\\.0\\.0\\.1:${dead.port}</td>`));
  t.regex(page, /1 of 2 up/);
});

test('/healthz says ok while serving; / is a self-contained page with a table per pool; other paths 404, other methods 405', async (t) => {
  const { statsPort, members } = await rspWithStats(t);
  const health = await fetch(statsPort, '/healthz');
  t.is(health.status, 200);
  t.is(health.body, 'ok\n');
  t.true(Math.abs(Date.parse(health.date) - Date.now()) < 60_000, `Date: ${health.date} (RFC 9110 §6.6.1)`);
  const page = await fetch(statsPort, '/');
  t.is(page.status, 200);
  t.regex(page.type, /^text\/html/);
  t.regex(page.body, /<meta http-equiv="refresh" content="5">/);
  t.regex(page.body, /<h2>Pool app/);
  for (const p of members) t.true(page.body.includes(`127.0.0.1:${p}`));
  t.notRegex(page.body, /<(script|link|img)\b[^>]*(src|href)="http/i, 'no external assets');
  t.is((await fetch(statsPort, '/nope')).status, 404);
  t.is((await fetch(statsPort, '/stats', 'POST')).status, 405);
  const head = await fetch(statsPort, '/stats', 'HEAD');
  t.is(head.status, 200);
  t.is(head.body, '');
});

const chromium = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => fs.existsSync(p));
(chromium === undefined ? test.skip : test)('the status page renders in headless Chromium (skipped when Chromium is not installed)', async (t) => {
  const { statsPort } = await rspWithStats(t);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rsp-chromium-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const shot = path.join(dir, 'page.png');
  const r = spawnSync(chromium!, [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', `--user-data-dir=${dir}`, '--window-size=1200,800',
    `--screenshot=${shot}`, `http://127.0.0.1:${statsPort}/`,
  ], { timeout: 60000, encoding: 'utf8' });
  t.true(fs.existsSync(shot), `no screenshot: ${r.stderr}`);
  t.true(fs.statSync(shot).size > 5000, 'a screenshot of a real page');
  const dom = spawnSync(chromium!, [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', `--user-data-dir=${dir}`, '--dump-dom', `http://127.0.0.1:${statsPort}/`,
  ], { timeout: 60000, encoding: 'utf8' });
  t.regex(dom.stdout, /<h2>Pool app/);
});

for (const format of ['combined', 'json'] as const) {
  test(`the access log has one ${format} line per connection, and SIGUSR1 reopens it`, async (t) => {
    const file = tempFile(t, 'access.log', '');
    fs.rmSync(file);
    const { port, rsp } = await rspWithStats(t, `accessLog = ${JSON.stringify(file)} accessLogFormat = "${format}"`);
    for (let i = 0; i < 3; i++) await exchange(port);
    await until('three lines', () => fs.existsSync(file) && fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).length === 3);
    const lines = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean);
    for (const line of lines) {
      if (format === 'json') {
        const e = JSON.parse(line);
        t.regex(e.client, /^127\.0\.0\.1:\d+$/);
        t.is(e.pool, 'app');
        t.regex(e.member, /^127\.0\.0\.1:\d+$/);
        t.is(e.bytes_in, 2);
        t.is(e.bytes_out, 5);
        t.is(e.end, 'closed');
        t.true(typeof e.duration === 'number' && e.duration >= 0);
        t.false(Number.isNaN(Date.parse(e.time)));
      } else {
        t.regex(line, /^127\.0\.0\.1:\d+ \[\d\d\/[A-Z][a-z]{2}\/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] TCP 127\.0\.0\.1:\d+ app 127\.0\.0\.1:\d+ in=2 out=5 time=\d+\.\d{3} end=closed$/);
      }
    }
    // logrotate: move the file away, SIGUSR1, and new lines go to a new file of the old name.
    fs.renameSync(file, `${file}.1`);
    rsp.proc.kill('SIGUSR1');
    await rsp.waitFor(/Reopening log files\./);
    await until('the reopened file', () => fs.existsSync(file));
    await exchange(port);
    await until('a line in the new file', () => fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).length === 1);
    t.is(fs.readFileSync(`${file}.1`, 'utf8').split('\n').filter(Boolean).length, 3);
  });
}

test('the access log says how a connection ended: no backend, or a backend reset', async (t) => {
  const file = tempFile(t, 'access.log', '');
  const reset = await listen(t, net.createServer((s) => s.resetAndDestroy()));
  const rsp = await startRspLua(t, `listenPort = 0 listenAddress = "127.0.0.1"
backends = { app = { "127.0.0.1:${reset}" } }
accessLog = ${JSON.stringify(file)} accessLogFormat = "json"`);
  await exchange(rsp.port).catch(() => '');
  await until('a line', () => fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).length === 1);
  const e = JSON.parse(fs.readFileSync(file, 'utf8').trim());
  t.regex(e.end, /^backend (ECONNRESET|EPIPE)$/);
});
