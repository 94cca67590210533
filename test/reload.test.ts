// SIGHUP: rsp reads its config file again. New connections use the new
// config, open ones finish on the old one; a listening address that stays is
// never closed (not one connection refused or reset under load); added
// listeners open, removed ones close; members keep their health state; a bad
// file keeps the old config. Through the real CLI with 2 workers.
import test, { type ExecutionContext } from 'ava';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import { connectTo, echoBackend, exchange, listen, readBytes, readToEnd, refusingPort, RSP, spawnProcess, tempFile, type RunningProcess } from './helpers';

/** A backend that answers `name` to whatever comes, then closes. */
function named(t: ExecutionContext, name: string): Promise<number> {
  return listen(t, net.createServer((s) => {
    s.resume();
    s.end(name);
  }));
}

/** rsp on a config file the test rewrites; `reload` writes the new text, sends SIGHUP and waits for the answer line. */
async function startReloadable(t: ExecutionContext, config: string): Promise<{ rsp: RunningProcess; reload(text: string, expect?: RegExp): Promise<string> }> {
  const file = tempFile(t, 'rsp.lua', config);
  const p = spawnProcess(t, process.execPath, [RSP, '--die-with-parent', file]);
  const line = await p.waitFor(/Listening on ports? [\d, ]+\./);
  const port = Number(/Listening on ports? (\d+)/.exec(line)![1]);
  const rsp = { ...p, port };
  let answers = 0;
  return {
    rsp,
    async reload(text: string, expect = /Reloaded\./): Promise<string> {
      fs.writeFileSync(file, text);
      answers++;
      p.proc.kill('SIGHUP');
      const answer = await p.waitFor(/Reloaded\.|Error parsing config file/, 20000, answers);
      if (!expect.test(answer)) throw new Error(`expected ${expect}, got: ${answer}`);
      return answer;
    },
  };
}

function statsOf(port: number): Promise<{ pools: { name: string; members: { name: string; state: string }[] }[] }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/stats', agent: false, timeout: 10000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve(JSON.parse(body)));
    });
    req.on('timeout', () => req.destroy(new Error('no answer to /stats within 10 s')));
    req.on('error', reject);
  });
}

/** Connect, say hi, read the answer to its end: the answer, or the error's code. */
function attempt(port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let text = '';
    const timer = setTimeout(() => {
      s.destroy();
      resolve('ERR no answer within 20 s');
    }, 20000);
    s.on('connect', () => s.end('hi'));
    s.on('data', (d) => (text += d));
    s.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(`ERR ${e.code ?? e.message}`);
    });
    s.on('close', () => {
      clearTimeout(timer);
      resolve(text);
    });
  });
}

test('a reload switches backends under continuous load with no connection failed, refused or reset', async (t) => {
  const a = await named(t, 'A');
  const b = await named(t, 'B');
  const config = (port: number): string => `listenPort = 0 listenAddress = "127.0.0.1" backendAddress = "127.0.0.1" backendPort = ${port} workers = 2\n`;
  const { rsp, reload } = await startReloadable(t, config(a));
  const results: string[] = [];
  let reloadedAt = -1; // results.length when "Reloaded." was seen
  let stop = false;
  // Four clients, one connection after another each, until told to stop (bounded: 5000 in all).
  const client = async (): Promise<void> => {
    while (!stop && results.length < 5000) results.push(await attempt(rsp.port));
  };
  const clients = [client(), client(), client(), client()];
  while (results.length < 100 && !stop) await new Promise((r) => setTimeout(r, 10));
  await reload(config(b));
  reloadedAt = results.length;
  // Wait for 100 more answers after the reload (bounded by the clients' own limit).
  while (results.length < reloadedAt + 100 && results.length < 5000) await new Promise((r) => setTimeout(r, 10));
  stop = true;
  await Promise.all(clients);
  const failed = results.filter((r) => r !== 'A' && r !== 'B');
  t.log(`${results.length} connections, ${reloadedAt} before the reload was reported`);
  t.deepEqual(failed, [], 'every connection answered by a backend');
  t.true(results.slice(0, 100).every((r) => r === 'A'));
  // Connections still in flight when "Reloaded." came may have been accepted by the old config;
  // the last 50 started after it, on the new one.
  t.true(results.slice(-50).every((r) => r === 'B'), 'the new config serves new connections');
  t.is(await rsp.stop(), 0);
});

test('a bad config on reload is reported and the old config keeps running', async (t) => {
  const a = await named(t, 'A');
  const good = `listenPort = 0 listenAddress = "127.0.0.1" backendAddress = "127.0.0.1" backendPort = ${a} workers = 2\n`;
  const { rsp, reload } = await startReloadable(t, good);
  const line = await reload(`${good}this is not lua\n`, /Error parsing config file: .*rsp\.lua:2:/);
  t.regex(line, /Error parsing config file/);
  for (let i = 0; i < 5; i++) t.is(await attempt(rsp.port), 'A');
  // An unknown option is an error too, not a reload.
  await reload(`${good}workerz = 3\n`, /Error parsing config file: .*workerz/);
  t.is(await attempt(rsp.port), 'A');
  t.is(await rsp.stop(), 0);
});

test('reload: a removed listener closes (its open connection goes on to its end), an added one opens', async (t) => {
  const echo = await echoBackend(t);
  const both = `workers = 2 backends = { app = { "127.0.0.1:${echo}" } }
listeners = { { port = 0, address = "127.0.0.1" }, { port = 0, address = "127.0.0.1" } }\n`;
  const { rsp, reload } = await startReloadable(t, both);
  const ports = /Listening on ports (\d+), (\d+)/.exec(rsp.output())!.slice(1).map(Number);
  // A connection through the second listener, open across the reload.
  const held = await connectTo(t, ports[1]);
  held.write('before');
  t.is((await readBytes(held, 6, 'the echo before the reload')).toString(), 'before');
  const line = await reload(`workers = 2 backends = { app = { "127.0.0.1:${echo}" } }
listeners = { { port = 0, address = "127.0.0.1" } }\n`);
  t.regex(line, /1 listener closed/);
  t.is(await attempt(ports[1]), 'ERR ECONNREFUSED', 'the removed listener is closed');
  t.is((await exchange(ports[0], 'kept', { end: true })).toString(), 'kept', 'the kept one still serves');
  held.write('after');
  t.is((await readBytes(held, 5, 'the echo after the reload')).toString(), 'after', 'its connection goes on');
  held.end();
  t.is((await readToEnd(held, 'the end of the held connection')).length, 0);
  // Added: a third listener; the line says where.
  const added = await reload(`workers = 2 backends = { app = { "127.0.0.1:${echo}" } }
listeners = { { port = 0, address = "127.0.0.1" }, { port = 0, address = "127.0.0.1", maxConnections = 10 } }\n`);
  const newPort = Number(/listening on 127\.0\.0\.1:(\d+) too/.exec(added)![1]);
  t.not(newPort, ports[0]);
  t.is((await exchange(newPort, 'new', { end: true })).toString(), 'new');
  t.is((await exchange(ports[0], 'old', { end: true })).toString(), 'old');
  t.is(await rsp.stop(), 0);
});

test('reload keeps the health state of members that stay, and says which options need a restart', async (t) => {
  const up = await named(t, 'A');
  const down = refusingPort(t).port;
  const config = (extra: string): string => `listenPort = 0 listenAddress = "127.0.0.1" workers = 2 stats = { listen = "127.0.0.1:0" }
backends = { app = { "127.0.0.1:${up}", "127.0.0.1:${down}", check = { interval = 100, timeout = 100, fall = 1, rise = 1 } } }
${extra}\n`;
  const { rsp, reload } = await startReloadable(t, config(''));
  const statsPort = Number(/Stats on port (\d+)/.exec(await rsp.waitFor(/Stats on port \d+/))![1]);
  await rsp.waitFor(/member 127\.0\.0\.1:\d+ is down/);
  const line = await reload(config('idleTimeout = 30000 workers = 3 triggerMode = "edge"'));
  t.regex(line, /needing a restart, so kept: workers \(still 2\), triggerMode \(still "level"\)/);
  const s = await statsOf(statsPort);
  const states = Object.fromEntries(s.pools[0].members.map((m) => [m.name, m.state]));
  t.is(states[`127.0.0.1:${down}`], 'down', 'still down after the reload');
  t.is(states[`127.0.0.1:${up}`], 'up');
  for (let i = 0; i < 20; i++) t.is(await attempt(rsp.port), 'A');
  // Not logged again: the state was carried, not found out anew.
  t.is(rsp.output().split('\n').filter((l) => /is down/.test(l)).length, 1);
  t.is(await rsp.stop(), 0);
});

test('reload: a new listener that cannot be bound keeps the whole old config (and its listeners)', async (t) => {
  const a = await named(t, 'A');
  const b = await named(t, 'B');
  const taken = refusingPort(t).port; // bound by this test, not listening: EADDRINUSE for rsp
  // drainDelay: a drain that lasts until a second SIGTERM, so the SIGHUP below surely finds rsp draining.
  const config = (backend: number, extra: string): string => `workers = 2 drainDelay = 600000 backends = { app = { "127.0.0.1:${backend}" } }
listeners = { { port = 0, address = "127.0.0.1" }${extra} }\n`;
  const { rsp, reload } = await startReloadable(t, config(a, ''));
  const line = await reload(config(b, `, { port = ${taken}, address = "127.0.0.1" }`), /Error parsing config file: Could not listen on 127\.0\.0\.1:\d+: EADDRINUSE; still running on the old config\./);
  t.regex(line, /EADDRINUSE/);
  t.is(await attempt(rsp.port), 'A', 'the old pool still serves');
  // SIGHUP while draining: said, and nothing reloaded.
  rsp.proc.kill('SIGTERM');
  await rsp.waitFor(/draining/);
  rsp.proc.kill('SIGHUP');
  await rsp.waitFor(/SIGHUP: draining or stopping; not reloading\./);
  rsp.proc.kill('SIGTERM'); // the second one stops at once
  t.is(await rsp.exited, 0);
});
