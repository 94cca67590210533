// Backends that follow DNS: a member given by name becomes one member per
// address, and the pool follows the name's answers as they change. The DNS
// server is a tiny one on 127.0.0.1 written here; the backends listen on
// 127.0.0.1, .2 and .3 (all loopback on Linux) or ::1, on one port.
import test, { type ExecutionContext } from 'ava';
import * as net from 'node:net';
import { DnsFollower, expandNames, type MemberChange } from '../src/dns';
import { setLogSink } from '../src/log';
import type { PoolConfig } from '../src/pools';
import { dnsServer } from './dnsserver';
import { connectTo, get, patternBytes, readBytes, readToEnd, RSP, sha256, spawnProcess, tempFile, waitUntil, type RunningProcess } from './helpers';

/**
 * Backends on one port at each of `hosts`: each says where it is ("127.0.0.2\n")
 * and then echoes. The port is the first host's ephemeral one, tried again
 * elsewhere if another host has it taken.
 */
async function backendsOnOnePort(t: ExecutionContext, hosts: string[], make: (host: string) => net.Server = echoNamed): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const servers: net.Server[] = [];
    let port = 0;
    try {
      for (const host of hosts) {
        const server = make(host);
        servers.push(server);
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen(port, host, () => resolve());
        });
        port = (server.address() as net.AddressInfo).port;
      }
      const sockets = new Set<net.Socket>();
      for (const server of servers) {
        server.on('connection', (s) => {
          sockets.add(s);
          s.on('close', () => sockets.delete(s));
        });
      }
      t.teardown(() => {
        for (const s of sockets) s.destroy();
        for (const server of servers) server.close();
      });
      return port;
    } catch (error) {
      for (const server of servers) server.close();
      if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error;
    }
  }
  throw new Error(`no port free on all of ${hosts.join(', ')} in 20 tries`);
}

/** Says where it is ("127.0.0.2\n"), then echoes. */
function echoNamed(host: string): net.Server {
  return net.createServer((s) => {
    s.on('error', () => {});
    s.write(`${host}\n`);
    s.pipe(s);
  });
}

/** The first line the backend sends: which one the client reached. */
async function whichBackend(s: net.Socket, what: string): Promise<string> {
  let line = '';
  while (!line.includes('\n')) line += (await readBytes(s, 1, what)).toString();
  const [first, rest] = line.split('\n', 2);
  if (rest !== undefined && rest !== '') throw new Error(`unexpected bytes after the backend's name: ${JSON.stringify(rest)}`);
  return first;
}

/** `n` clients one after another: how many reached each backend. */
async function spread(t: ExecutionContext, port: number, n: number): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const s = await connectTo(t, port);
    const who = await whichBackend(s, `client ${i + 1}'s backend`);
    counts[who] = (counts[who] ?? 0) + 1;
    s.destroy();
  }
  return counts;
}

async function startRspWith(t: ExecutionContext, lua: string): Promise<RunningProcess> {
  // One worker: the round-robin spreads counted here are one worker's (each worker balances its own share).
  const p = spawnProcess(t, process.execPath, [RSP, '--die-with-parent', tempFile(t, 'rsp.lua', `workers = 1\n${lua}`)]);
  const line = await p.waitFor(/Listening on port \d+/);
  return { ...p, port: Number(/Listening on port (\d+)/.exec(line)![1]) };
}

function countLines(rsp: RunningProcess, re: RegExp): number {
  return rsp.output().split('\n').filter((l) => re.test(l)).length;
}

test('a pool follows DNS: addresses join, leave after their connections end, and a DNS outage keeps the last answer', async (t) => {
  const dns = await dnsServer(t);
  dns.a['svc.test'] = ['127.0.0.1', '127.0.0.2'];
  const port = await backendsOnOnePort(t, ['127.0.0.1', '127.0.0.2', '127.0.0.3']);
  const rsp = await startRspWith(t, [
    'listenAddress = "127.0.0.1" listenPort = "0"',
    `resolver = "127.0.0.1:${dns.port}"`,
    'resolveInterval = 100',
    `backends = { app = { "svc.test:${port}" } }`,
  ].join('\n') + '\n');
  const member = (address: string): string => `svc\\.test:${port} \\(${address.replace(/\./g, '\\.')}\\)`;

  // (a) Two A records: two members, round-robin between them.
  t.deepEqual(await spread(t, rsp.port, 4), { '127.0.0.1': 2, '127.0.0.2': 2 });

  // (b) A third address joins, and gets its share.
  dns.a['svc.test'] = ['127.0.0.1', '127.0.0.2', '127.0.0.3'];
  await rsp.waitFor(new RegExp(`Backend app member ${member('127.0.0.3')} joins; 3 of 3 up\\.`));
  t.deepEqual(await spread(t, rsp.port, 6), { '127.0.0.1': 2, '127.0.0.2': 2, '127.0.0.3': 2 });

  // (c) One leaves: a connection it has goes on, new clients go to the others.
  let long: net.Socket | null = null;
  for (let i = 0; i < 3 && long === null; i++) {
    const s = await connectTo(t, rsp.port);
    if ((await whichBackend(s, 'the long connection\'s backend')) === '127.0.0.2') long = s;
    else s.destroy();
  }
  if (long === null) throw new Error('three clients in a row did not reach 127.0.0.2 in a rotation of three');
  const first = patternBytes(64 * 1024, 7);
  long.write(first);
  t.is(sha256(await readBytes(long, first.length, 'the first echo on the long connection')), sha256(first));

  dns.a['svc.test'] = ['127.0.0.1', '127.0.0.3'];
  await rsp.waitFor(new RegExp(`Backend app member ${member('127.0.0.2')} leaves; 2 of 2 up\\.`));
  t.deepEqual(await spread(t, rsp.port, 4), { '127.0.0.1': 2, '127.0.0.3': 2 });
  const rest = patternBytes(1024 * 1024, 8);
  const echoed = readToEnd(long, 'the rest of the long connection, after its member left');
  long.end(rest);
  t.is(sha256(await echoed), sha256(rest), 'the long connection went on, byte-exact, after its member left the pool');

  // (d) The DNS server stops answering: the last answer stays, one line says so.
  const failure = /DNS: cannot resolve backends\.app member /;
  const recovery = /DNS: backends\.app member .* resolves again/;
  // A try that timed out on a busy machine is an episode of its own: let it end first.
  await waitUntil(() => countLines(rsp, failure) === countLines(rsp, recovery), 'no DNS failure episode in progress');
  const failuresBefore = countLines(rsp, failure);
  const recoveriesBefore = countLines(rsp, recovery);
  dns.silent = true;
  const line = await rsp.waitFor(failure, 20000, failuresBefore + 1);
  t.regex(line, new RegExp(`member svc\\.test:${port} \\(.*no answer in time.*\\); keeping its last addresses: 127\\.0\\.0\\.1, 127\\.0\\.0\\.3\\.$`));
  // Several more failed rounds (two questions, two tries each, a round) still make one line.
  const queries = dns.queries;
  await waitUntil(() => dns.queries >= queries + 12, 'three more rounds of lookups while the DNS server is silent');
  t.deepEqual(await spread(t, rsp.port, 4), { '127.0.0.1': 2, '127.0.0.3': 2 });
  t.is(countLines(rsp, failure), failuresBefore + 1, rsp.output());
  dns.silent = false;
  t.regex(await rsp.waitFor(recovery, 20000, recoveriesBefore + 1), /svc\.test:\d+ resolves again: 127\.0\.0\.1, 127\.0\.0\.3\.$/);
  t.deepEqual(await spread(t, rsp.port, 4), { '127.0.0.1': 2, '127.0.0.3': 2 });
  t.notRegex(rsp.output(), /\(127\.0\.0\.[13]\) leaves/);

  t.is(await rsp.stop(), 0);
});

test('a name with A and AAAA records is one member per address; an HTTP check asks for the name as Host', async (t) => {
  const dns = await dnsServer(t);
  dns.a['dual.test'] = ['127.0.0.1'];
  dns.aaaa['dual.test'] = ['::1'];
  const hosts = new Set<string>();
  const port = await backendsOnOnePort(t, ['127.0.0.1', '::1'], (host) => net.createServer((s) => {
    s.on('error', () => {});
    s.once('data', (request: Buffer) => {
      const header = /\r\nHost: ([^\r]*)\r\n/i.exec(request.toString('latin1'));
      if (request.toString('latin1').startsWith('GET /health ') && header !== null) hosts.add(header[1]);
      s.end(`HTTP/1.0 200 OK\r\nContent-Length: ${host.length}\r\n\r\n${host}`);
    });
  }));
  // resolveInterval = 0: resolved once, at start-up, to both addresses. fall = 100: a check
  // that times out on a busy machine takes no member down.
  const rsp = await startRspWith(t, [
    'listenAddress = "127.0.0.1" listenPort = "0"',
    `resolver = "127.0.0.1:${dns.port}"`,
    'resolveInterval = 0',
    `backends = { app = { { "dual.test:${port}", weight = 2 }, check = { interval = 100, timeout = 100, fall = 100, http = "/health" } } }`,
  ].join('\n') + '\n');
  const counts: Record<string, number> = {};
  for (let i = 0; i < 4; i++) {
    const body = (await get(rsp.port, '/')).body.toString();
    counts[body] = (counts[body] ?? 0) + 1;
  }
  t.deepEqual(counts, { '127.0.0.1': 2, '::1': 2 });
  await waitUntil(() => hosts.size > 0, 'a health check');
  t.deepEqual([...hosts], [`dual.test:${port}`]);
  t.is(await rsp.stop(), 0);
  t.notRegex(rsp.output(), /is down|DNS:/, rsp.output());
});

test('NXDOMAIN and SERVFAIL keep the last answer: one line for the whole episode, one when it ends', async (t) => {
  const dns = await dnsServer(t);
  dns.a['gone.test'] = ['127.0.0.1', '127.0.0.2'];
  const port = await backendsOnOnePort(t, ['127.0.0.1', '127.0.0.2']);
  const rsp = await startRspWith(t, [
    'listenAddress = "127.0.0.1" listenPort = "0"',
    `resolver = "127.0.0.1:${dns.port}"`,
    'resolveInterval = 100',
    `backends = { app = { "gone.test:${port}" } }`,
  ].join('\n') + '\n');
  const failure = /DNS: cannot resolve backends\.app member /;
  await waitUntil(() => countLines(rsp, failure) === countLines(rsp, /resolves again/), 'no DNS failure episode in progress');
  const before = countLines(rsp, failure);
  dns.rcode = 3;
  t.regex(await rsp.waitFor(failure, 20000, before + 1), /gone\.test:\d+ \(no such name \(NXDOMAIN\), ENOTFOUND\); keeping its last addresses: 127\.0\.0\.1, 127\.0\.0\.2\.$/);
  dns.rcode = 2;
  const queries = dns.queries;
  await waitUntil(() => dns.queries >= queries + 8, 'more rounds of lookups answered SERVFAIL');
  t.deepEqual(await spread(t, rsp.port, 4), { '127.0.0.1': 2, '127.0.0.2': 2 });
  t.is(countLines(rsp, failure), before + 1, rsp.output());
  dns.rcode = 0;
  await rsp.waitFor(/DNS: backends\.app member gone\.test:\d+ resolves again: 127\.0\.0\.1, 127\.0\.0\.2\.$/);
  t.notRegex(rsp.output(), /leaves/);
  t.is(await rsp.stop(), 0);
});

test('weight, backup and maxConnections of a name apply to each of its addresses, at start-up and when one joins', async (t) => {
  const dns = await dnsServer(t);
  dns.a['svc.test'] = ['127.0.0.2', '127.0.0.1'];
  dns.aaaa['svc.test'] = ['::1'];
  const pool: PoolConfig = {
    name: 'app',
    members: [
      { name: '10.0.0.1:80', host: '10.0.0.1', port: 80, address: '10.0.0.1', weight: 1, backup: false, maxConnections: 0 },
      { name: 'svc.test:080', host: 'svc.test', port: 80, address: 'svc.test', weight: 3, backup: true, maxConnections: 7 },
    ],
    balance: 'roundrobin', maxFails: 1, failTimeout: 10000, slowStart: 0, retries: 2, check: null, sendProxy: null, keepalive: 32, keepaliveTimeout: 60000,
  };
  const names = await expandNames([pool], `127.0.0.1:${dns.port}`, () => 'backends.app member');
  const like = { port: 80, weight: 3, backup: true, maxConnections: 7, host: 'svc.test' };
  t.deepEqual(pool.members, [
    { name: '10.0.0.1:80', host: '10.0.0.1', port: 80, address: '10.0.0.1', weight: 1, backup: false, maxConnections: 0 },
    { name: 'svc.test:080 (127.0.0.1)', address: '127.0.0.1', ...like },
    { name: 'svc.test:080 (127.0.0.2)', address: '127.0.0.2', ...like },
    { name: 'svc.test:080 (::1)', address: '::1', ...like },
  ]);
  t.is(names.length, 1);
  t.deepEqual(names[0].addresses, ['127.0.0.1', '127.0.0.2', '::1']);

  setLogSink(() => {}); // a try that times out on a busy machine may log; not what this test is about
  t.teardown(() => setLogSink((level, line) => (level === 'error' ? process.stderr : process.stdout).write(line + '\n')));
  const changes: MemberChange[] = [];
  const follower = new DnsFollower(names, 20, `127.0.0.1:${dns.port}`, (c) => changes.push(c));
  t.teardown(() => follower.stop());
  dns.a['svc.test'] = ['127.0.0.3', '127.0.0.1'];
  follower.start();
  await waitUntil(() => changes.length > 0, 'the change posted to the worker');
  follower.stop();
  t.deepEqual(changes, [{ pool: 'app', add: [{ name: 'svc.test:080 (127.0.0.3)', address: '127.0.0.3', ...like }], remove: ['svc.test:080 (127.0.0.2)'] }]);
  t.deepEqual(names[0].addresses, ['127.0.0.1', '127.0.0.3', '::1']);
});
