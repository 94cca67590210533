// Workers on every core: `workers = N` reactor threads, each with its own
// epoll set; acceptMode "reuseport" (a listening socket per worker) and
// "shared" (one socket, EPOLLEXCLUSIVE); counters summed and per worker; one
// health authority. Through the real CLI, with real backends.
import test, { type ExecutionContext } from 'ava';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import { acceptQueue, connectTo, echoBackend, exchange, listen, readBytes, refusingPort, waitUntil, type RunningProcess } from './helpers';
import { startRspLua } from './lua';
import * as lab from '../scripts/lab';
import { herd } from '../scripts/lab/experiments/herd';
import { LineEchoes } from '../src/supervisor/echo';

/** A backend that answers `name` to whatever comes, then closes. */
function named(t: ExecutionContext, name: string): Promise<number> {
  return listen(t, net.createServer((s) => {
    s.resume();
    s.end(name);
  }));
}

/** Listening TCP sockets on 127.0.0.1:`port` in this network namespace (from /proc/net/tcp: state 0A). */
function listeningSockets(port: number): number {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  return fs.readFileSync('/proc/net/tcp', 'utf8').split('\n').filter((line) => {
    const f = line.trim().split(/\s+/);
    return f[1] === `0100007F:${hexPort}` && f[3] === '0A';
  }).length;
}

/** Listening sockets among the fds of process `pid` (each fd's inode against /proc/net/tcp). */
function listeningFdsOf(pid: number, port: number): number {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  const inodes = new Set(fs.readFileSync('/proc/net/tcp', 'utf8').split('\n').map((l) => l.trim().split(/\s+/))
    .filter((f) => f[1] === `0100007F:${hexPort}` && f[3] === '0A').map((f) => f[9]));
  let n = 0;
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m !== null && inodes.has(m[1])) n++;
    } catch {
      // an fd closed while we looked
    }
  }
  return n;
}

/** SIGUSR2, then accepts= of each "counters: worker N" line it printed (they follow the summed lines). */
async function acceptsPerWorker(rsp: RunningProcess, workers: number): Promise<number[]> {
  const last = new RegExp(`counters: worker ${workers - 1} `);
  const before = rsp.output().split('\n').filter((l) => last.test(l)).length;
  rsp.proc.kill('SIGUSR2');
  await rsp.waitFor(last, 20000, before + 1);
  const lines = rsp.output().split('\n').filter((l) => /counters: worker \d+ /.test(l)).slice(-workers);
  return lines.map((l) => Number(/accepts=(\d+)/.exec(l)![1]));
}

function fetchJson(port: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false, timeout: 10000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve(body));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer to ${path} within 10 s`)));
    req.on('error', reject);
  });
}

test('workers = 2: two listening sockets (SO_REUSEPORT), and both workers serve', async (t) => {
  const backend = await named(t, 'A');
  const rsp = await startRspLua(t, `listenPort = 0 listenAddress = "127.0.0.1" backendAddress = "127.0.0.1" backendPort = ${backend} workers = 2`);
  t.regex(await rsp.waitFor(/workers, /), /2 workers, a listening socket each \(SO_REUSEPORT\)/);
  t.is(listeningSockets(rsp.port), 2, 'one listening socket per worker');
  t.is(listeningFdsOf(rsp.pid, rsp.port), 2, 'both are rsp\'s');
  // The kernel spreads by a hash of the client's address and port: a few
  // connections reach both. Bounded: 400 connections at most.
  let per = [0, 0];
  let made = 0;
  for (let round = 0; round < 20 && !(per[0] > 0 && per[1] > 0); round++) {
    for (let i = 0; i < 20; i++, made++) t.is((await exchange(rsp.port, 'hi', { end: true })).toString(), 'A');
    per = await acceptsPerWorker(rsp, 2);
  }
  t.log(`accepts per worker after ${made} connections: ${per.join(', ')}`);
  t.true(per[0] > 0 && per[1] > 0, `both workers accepted (${per.join(', ')})`);
  const summed = Number(/connections accepts=(\d+)/.exec(rsp.output().split('\n').filter((l) => l.includes('connections accepts=')).at(-1)!)![1]);
  t.is(summed, per[0] + per[1], 'the summed line adds the workers up');
  t.is(summed, made);
  t.is(await rsp.stop(), 0);
});

test('acceptMode = "shared": one listening socket in both workers\' epoll sets, serving', async (t) => {
  const backend = await named(t, 'A');
  const rsp = await startRspLua(t, `listenPort = 0 listenAddress = "127.0.0.1" backendAddress = "127.0.0.1" backendPort = ${backend} workers = 2 acceptMode = "shared"`);
  t.regex(await rsp.waitFor(/workers, /), /2 workers, one shared listening socket \(EPOLLEXCLUSIVE\)/);
  t.is(listeningSockets(rsp.port), 1);
  // 30 connections, 10 at a time.
  for (let round = 0; round < 3; round++) {
    const answers = await Promise.all(Array.from({ length: 10 }, () => exchange(rsp.port, 'hi', { end: true })));
    for (const a of answers) t.is(a.toString(), 'A');
  }
  const per = await acceptsPerWorker(rsp, 2);
  // EPOLLEXCLUSIVE wakes one waiter (or a few): which one is the kernel's choice, so only the sum is certain.
  t.log(`accepts per worker: ${per.join(', ')}`);
  t.is(per[0] + per[1], 30);
  t.is(await rsp.stop(), 0);
});

test('stats with 2 workers: per-worker counters in /stats and a worker label in /metrics, listeners summed', async (t) => {
  const backend = await named(t, 'A');
  const rsp = await startRspLua(t, `listenPort = 0 listenAddress = "127.0.0.1" backendAddress = "127.0.0.1" backendPort = ${backend} workers = 2
stats = { listen = "127.0.0.1:0" }`);
  const statsPort = Number(/Stats on port (\d+)/.exec(await rsp.waitFor(/Stats on port \d+/))![1]);
  const n = 12;
  for (let i = 0; i < n; i++) t.is((await exchange(rsp.port, 'hi', { end: true })).toString(), 'A');
  const s = JSON.parse(await fetchJson(statsPort, '/stats')) as {
    workers: { worker: number; counters: { accepts: number } }[];
    totals: { accepts: number };
    listeners: { connectionsTotal: number }[];
    pools: { members: { total: number }[] }[];
  };
  t.deepEqual(s.workers.map((w) => w.worker), [0, 1]);
  // Worker 0 also accepted the stats requests (its own listener).
  t.is(s.totals.accepts, s.workers[0].counters.accepts + s.workers[1].counters.accepts);
  t.is(s.listeners[0].connectionsTotal, n, 'the proxied connections of both workers');
  t.is(s.pools[0].members[0].total, n, 'the member\'s connections of both workers');
  const metrics = await fetchJson(statsPort, '/metrics');
  t.regex(metrics, /rsp_accepts_total\{worker="0"\} \d+/);
  t.regex(metrics, /rsp_accepts_total\{worker="1"\} \d+/);
  t.is(await rsp.stop(), 0);
});

test('--trace runs one worker, and says so', async (t) => {
  const backend = await named(t, 'A');
  const rsp = await startRspLua(t, `listenPort = 0 listenAddress = "127.0.0.1" backendAddress = "127.0.0.1" backendPort = ${backend} workers = 2`, ['--trace']);
  t.regex(rsp.output(), /trace: running 1 worker instead of 2/);
  t.is(listeningSockets(rsp.port), 1);
  t.is((await exchange(rsp.port, 'hi', { end: true })).toString(), 'A');
  t.is(await rsp.stop(), 0);
});

test('health with 2 workers: a member going down is logged once, and neither worker sends to it', async (t) => {
  const up = await named(t, 'A');
  const down = refusingPort(t).port;
  const rsp = await startRspLua(t, `listenPort = 0 listenAddress = "127.0.0.1" workers = 2
backends = { app = { "127.0.0.1:${up}", "127.0.0.1:${down}", check = { interval = 100, timeout = 100, fall = 1, rise = 1 } } }`);
  await rsp.waitFor(/member 127\.0\.0\.1:\d+ is down/);
  // Bounded: 60 connections, every one answered by the member that is up.
  for (let i = 0; i < 60; i++) t.is((await exchange(rsp.port, 'hi', { end: true })).toString(), 'A');
  const per = await acceptsPerWorker(rsp, 2);
  t.log(`accepts per worker: ${per.join(', ')}`);
  const downLines = rsp.output().split('\n').filter((l) => /is down/.test(l));
  t.is(downLines.length, 1, `one line for the episode, not one per worker:\n${downLines.join('\n')}`);
  t.is(await rsp.stop(), 0);
});

test('lab experiment 11 (thundering herd), shortened: a plain shared socket wakes more threads per connection than SO_REUSEPORT', async (t) => {
  t.teardown(() => lab.killAll());
  const p = { ...lab.QUICK, shortConns: 100, stallMs: 10000 };
  const plain = await herd('shared-herd', p);
  const reuseport = await herd('reuseport', p);
  t.log(plain.result);
  t.log(reuseport.result);
  t.is(plain.figures.accepts, 100);
  t.is(reuseport.figures.accepts, 100);
  // Structural, not a speed: every sleeping worker is woken for each connection in the one case, one worker in the other.
  t.true(plain.figures.threadWakeupsPerConn > reuseport.figures.threadWakeupsPerConn + 1, `${plain.figures.threadWakeupsPerConn} vs ${reuseport.figures.threadWakeupsPerConn}`);
  t.is(reuseport.figures.emptyPerConn, 0, 'a worker\'s own socket is never emptied by another worker');
});


test('maxConnections = 2 with 2 workers is for the process: a share of 1 each, the third client waits until one leaves', async (t) => {
  const echo = await echoBackend(t);
  // "shared": one accept queue, so which worker takes which client does not matter.
  const rsp = await startRspLua(t, `listenPort = 0 listenAddress = "127.0.0.1" backendAddress = "127.0.0.1" backendPort = ${echo} workers = 2 acceptMode = "shared" maxConnections = 2`);
  const served = async (text: string) => {
    const s = await connectTo(t, rsp.port);
    s.on('error', () => {}); // reset when rsp stops with it still open
    s.write(text);
    t.is((await readBytes(s, text.length, `the echo of ${text}`)).toString(), text);
    return s;
  };
  const first = await served('first');
  const second = await served('second');
  await rsp.waitFor(/maxConnections \(1: worker \d's share of 2\) reached/, 20000, 2);
  const third = await connectTo(t, rsp.port);
  third.on('error', () => {});
  third.write('third');
  await waitUntil(() => acceptQueue(rsp.port) === 1, 'the third client in the listen backlog');
  first.destroy();
  t.is((await readBytes(third, 5, 'the echo for the third client')).toString(), 'third');
  // Gone before the stop, which would otherwise drain them for drainTimeout (30 s).
  second.destroy();
  third.destroy();
  t.is(await rsp.stop(), 0);
});

test('the same log line from two workers within a second is printed once; a worker repeating itself is not an echo', (t) => {
  const e = new LineEchoes(1000);
  const line = (time: string): string => `[2026-11-29 10:00:${time}] accept: EMFILE (out of file descriptors); pausing accepts for 100 ms at a time until some are free`;
  t.false(e.isEcho(0, line('00'), 0));
  t.true(e.isEcho(1, line('00'), 400), 'worker 1, the same event');
  t.false(e.isEcho(0, line('00'), 500), 'worker 0 again: a new event');
  t.true(e.isEcho(1, line('01'), 900), 'the timestamp is not part of the text');
  t.false(e.isEcho(1, line('02'), 1600), 'a second later: a new event');
  t.false(e.isEcho(1, '[x] another line', 1600));
});
