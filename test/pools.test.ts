// Backend pools through the real CLI: balancing, weights, backups, retries
// past a dead member, active checks, several listeners, and config errors.
import test, { type ExecutionContext } from 'ava';
import * as net from 'node:net';
import { bothModes, listen, refusingPort, runCli, startRsp, tempFile } from './helpers';
import { startRspLua } from './lua';

/** A backend that answers every connection with its name and closes; counts what it served and what is open. */
async function named(t: ExecutionContext, name: string, opts: { holdMs?: number } = {}): Promise<{ port: number; served: () => number; open: () => number }> {
  let served = 0;
  let open = 0;
  const port = await listen(t, net.createServer((s) => {
    served++;
    open++;
    s.on('close', () => open--);
    s.resume(); // read (and drop) what comes, so the client's FIN is seen and the socket closes
    if (opts.holdMs === undefined) s.end(name);
    else s.once('data', () => setTimeout(() => s.end(name), opts.holdMs));
  }));
  return { port, served: () => served, open: () => open };
}

async function until(what: string | (() => string), done: () => boolean, limitMs = 10000): Promise<void> {
  const start = Date.now();
  while (!done()) {
    if (Date.now() - start > limitMs) throw new Error(`timed out waiting for ${typeof what === 'string' ? what : what()}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** Connect (from `localAddress` if given), send a byte, read the answer to the end. */
function ask(port: number, localAddress?: string, limitMs = 10000): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1', localAddress });
    let text = '';
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`no answer within ${limitMs} ms (got ${JSON.stringify(text)})`));
    }, limitMs);
    s.on('connect', () => s.write('?'));
    s.on('data', (d) => (text += d));
    s.on('end', () => {
      clearTimeout(timer);
      resolve(text);
    });
    s.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

const run = runCli;

/** rsp with a config written verbatim (tables need Lua, not key = value pairs). */
/** One worker: the balancing counted here is one worker's (each worker balances its own share of the clients). */
const rspWith = (t: Parameters<typeof startRspLua>[0], config: string, extraArgs: string[] = []): ReturnType<typeof startRspLua> => startRspLua(t, `workers = 1\n${config}`, extraArgs);

function count(answers: string[]): Record<string, number> {
  const c: Record<string, number> = {};
  for (const a of answers) c[a] = (c[a] ?? 0) + 1;
  return c;
}

bothModes('roundrobin: 30 connections over 3 members are exactly 10 each', async (t, mode) => {
  const [a, b, c] = await Promise.all([named(t, 'a'), named(t, 'b'), named(t, 'c')]);
  const rsp = await rspWith(t, `listenPort = 0 listenAddress = "127.0.0.1" triggerMode = "${mode}"
backends = { app = { "127.0.0.1:${a.port}", "127.0.0.1:${b.port}", "127.0.0.1:${c.port}" } }`);
  const answers: string[] = [];
  for (let i = 0; i < 30; i++) answers.push(await ask(rsp.port));
  t.deepEqual(count(answers), { a: 10, b: 10, c: 10 });
  // Smooth: each member once in every round of three.
  for (let i = 0; i < 30; i += 3) t.is(new Set(answers.slice(i, i + 3)).size, 3, answers.join(''));
});

test('weights 3:1 over 40 connections are 30:10, without bursts', async (t) => {
  const [a, b] = await Promise.all([named(t, 'a'), named(t, 'b')]);
  const rsp = await rspWith(t, `listenPort = 0 listenAddress = "127.0.0.1"
backends = { app = { { "127.0.0.1:${a.port}", weight = 3 }, "127.0.0.1:${b.port}" } }`);
  const answers: string[] = [];
  for (let i = 0; i < 40; i++) answers.push(await ask(rsp.port));
  t.deepEqual(count(answers), { a: 30, b: 10 });
  t.notRegex(answers.join(''), /aaaa/, 'smooth weighted round-robin: never four in a row');
});

bothModes('leastconn sends new clients to the member not busy with slow requests', async (t, mode) => {
  const slow = await named(t, 'slow', { holdMs: 3000 });
  const fast = await named(t, 'fast');
  const rsp = await rspWith(t, `listenPort = 0 listenAddress = "127.0.0.1" triggerMode = "${mode}"
backends = { app = { "127.0.0.1:${slow.port}", "127.0.0.1:${fast.port}", balance = "leastconn" } }`);
  // One client at a time; the next comes once the last one's member has it
  // (and a fast answer's connection is closed, so rsp has counted it gone).
  // Round-robin would give 5 and 5; leastconn gives "slow" one client, the
  // one that found both idle, and never another while it holds that one.
  const answers: Promise<string>[] = [];
  for (let i = 0; i < 10; i++) {
    const before = slow.served() + fast.served();
    answers.push(ask(rsp.port));
    await until(() => `a member to take client ${i} (served: slow ${slow.served()}, fast ${fast.served()}; open at fast ${fast.open()})`, () => slow.served() + fast.served() > before && fast.open() === 0);
  }
  t.deepEqual(count(await Promise.all(answers)), { fast: 9, slow: 1 });
});

test('hash: a client address always reaches the same member; adding a member moves about 1/N of them', async (t) => {
  const members = await Promise.all(['a', 'b', 'c', 'd'].map((n) => named(t, n)));
  const config = (n: number): string => `listenPort = 0 listenAddress = "127.0.0.1"
backends = { app = { ${members.slice(0, n).map((m) => `"127.0.0.1:${m.port}"`).join(', ')}, balance = "hash" } }`;
  // Clients from 60 loopback source addresses (127.0.0.0/8 is all loopback on Linux).
  const sources = Array.from({ length: 60 }, (_, i) => `127.1.${Math.floor(i / 10)}.${10 + (i % 10)}`);
  const first = await rspWith(t, config(3));
  const before: string[] = [];
  for (const source of sources) {
    const again = [await ask(first.port, source), await ask(first.port, source), await ask(first.port, source)];
    t.is(new Set(again).size, 1, `${source} went to ${again.join(',')}`);
    before.push(again[0]);
  }
  t.true(Object.keys(count(before)).length === 3, `every member gets some: ${JSON.stringify(count(before))}`);
  await first.stop();
  const second = await rspWith(t, config(4));
  const after: string[] = [];
  for (const source of sources) after.push(await ask(second.port, source));
  const moved = sources.filter((_, i) => before[i] !== after[i]);
  // Ideal: 1/4 of the clients move, all of them to the new member "d".
  t.true(moved.every((_, i) => after[sources.indexOf(moved[i])] === 'd'), 'only moves to the new member');
  t.true(moved.length > 0 && moved.length <= sources.length / 2, `${moved.length} of ${sources.length} moved`);
});

bothModes('a dead member costs no client an error: its connects are retried on the others', async (t, mode) => {
  const dead = refusingPort(t);
  const [a, b] = await Promise.all([named(t, 'a'), named(t, 'b')]);
  const rsp = await rspWith(t, `listenPort = 0 listenAddress = "127.0.0.1" triggerMode = "${mode}"
backends = { app = { "127.0.0.1:${dead.port}", "127.0.0.1:${a.port}", "127.0.0.1:${b.port}" } }`);
  const answers: string[] = [];
  for (let i = 0; i < 12; i++) answers.push(await ask(rsp.port));
  t.deepEqual(new Set(answers), new Set(['a', 'b']));
  t.regex(await rsp.waitFor(/is down/), new RegExp(`Backend app member 127\\.0\\.0\\.1:${dead.port} is down \\(connection refused\\); 2 of 3 up\\.$`));
  t.regex(rsp.output(), new RegExp(`Could not connect to backend app member 127\\.0\\.0\\.1:${dead.port} for client 127\\.0\\.0\\.1:\\d+: ECONNREFUSED`));
});

test('the bytes a client sent before a failed connect reach the member that answers', async (t) => {
  const dead = refusingPort(t);
  const echo = await listen(t, net.createServer((s) => s.pipe(s)));
  const rsp = await rspWith(t, `listenPort = 0 listenAddress = "127.0.0.1"
backends = { app = { "127.0.0.1:${dead.port}", "127.0.0.1:${echo}" } }`);
  const reply = await new Promise<string>((resolve, reject) => {
    const s = net.connect(rsp.port, '127.0.0.1');
    let text = '';
    s.on('connect', () => s.end('hello, whoever answers'));
    s.on('data', (d) => (text += d));
    s.on('end', () => resolve(text));
    s.on('error', reject);
  });
  t.is(reply, 'hello, whoever answers');
});

test('backup members take traffic only while no primary is up', async (t) => {
  const dead = refusingPort(t);
  const [primary, spare] = await Promise.all([named(t, 'primary'), named(t, 'spare')]);
  const rsp = await rspWith(t, `listenPort = 0 listenAddress = "127.0.0.1"
backends = { app = { "127.0.0.1:${primary.port}", { "127.0.0.1:${spare.port}", backup = true } } }`);
  for (let i = 0; i < 5; i++) t.is(await ask(rsp.port), 'primary');
  const rsp2 = await rspWith(t, `listenPort = 0 listenAddress = "127.0.0.1"
backends = { app = { "127.0.0.1:${dead.port}", { "127.0.0.1:${spare.port}", backup = true } } }`);
  for (let i = 0; i < 5; i++) t.is(await ask(rsp2.port), 'spare');
  t.regex(await rsp2.waitFor(/is down/), /1 of 2 up: backups only\.$/);
});

bothModes('all members down: clients are reset promptly and rsp keeps serving', async (t, mode) => {
  const dead1 = refusingPort(t);
  const dead2 = refusingPort(t);
  const rsp = await rspWith(t, `listenPort = 0 listenAddress = "127.0.0.1" triggerMode = "${mode}"
backends = { app = { "127.0.0.1:${dead1.port}", "127.0.0.1:${dead2.port}", failTimeout = 200 } }`);
  for (let i = 0; i < 3; i++) {
    const error = await ask(rsp.port).then((text) => `answered ${JSON.stringify(text)}`, (e: NodeJS.ErrnoException) => e.code);
    t.is(error, 'ECONNRESET');
  }
  t.regex(await rsp.waitFor(/0 of 2 up/), /no member to send to\.$/);
  rsp.proc.kill('SIGUSR2');
  t.regex(await rsp.waitFor(/counters: closes/), /no-backend/);
  // Still serving: a listener that answers works through a second rsp on the same config style.
  const a = await named(t, 'a');
  const other = await rspWith(t, `listenPort = 0 listenAddress = "127.0.0.1" triggerMode = "${mode}"
backends = { app = { "127.0.0.1:${dead1.port}", "127.0.0.1:${a.port}" } }`);
  t.is(await ask(other.port), 'a');
});

test('active checks take a member down and bring it back, with one log line each', async (t) => {
  // A member whose listener we close and reopen on the same port.
  let served = 0;
  const makeServer = (): net.Server => net.createServer((s) => {
    s.on('error', () => {});
    served++;
    s.end('b');
  });
  let server = makeServer();
  const port = await listen(t, server);
  const a = await named(t, 'a');
  const rsp = await rspWith(t, `listenPort = 0 listenAddress = "127.0.0.1"
backends = { app = { "127.0.0.1:${a.port}", "127.0.0.1:${port}", check = { interval = 100, timeout = 100, rise = 2, fall = 2 } } }`);
  await new Promise((r) => server.close(r));
  t.regex(await rsp.waitFor(new RegExp(`member 127\\.0\\.0\\.1:${port} is down`)), new RegExp(`^\\[[^\\]]+\\] Backend app member 127\\.0\\.0\\.1:${port} is down \\(health check: connection refused, 2 in a row\\); [01] of 2 up`));
  for (let i = 0; i < 4; i++) t.is(await ask(rsp.port), 'a');
  server = makeServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  t.teardown(() => server.close());
  t.regex(await rsp.waitFor(new RegExp(`member 127\\.0\\.0\\.1:${port} is up`)), new RegExp(`Backend app member 127\\.0\\.0\\.1:${port} is up; [12] of 2 up\\.$`));
  const answers: string[] = [];
  for (let i = 0; i < 4; i++) answers.push(await ask(rsp.port));
  t.true(answers.includes('b'), answers.join(','));
  t.true(served >= 2);
});

test('an HTTP check: a member answering 503 is down, 200 brings it back', async (t) => {
  let status = 503;
  const http = await import('node:http');
  const checks = http.createServer((req, res) => {
    res.statusCode = req.url === '/health' ? status : 404;
    res.end();
  });
  const port = await listen(t, checks);
  const healthy = await listen(t, http.createServer((_req, res) => res.end('ok')));
  const rsp = await rspWith(t, `listenPort = 0 listenAddress = "127.0.0.1"
backends = { app = { "127.0.0.1:${healthy}", "127.0.0.1:${port}", check = { interval = 200, timeout = 200, rise = 1, fall = 1, http = "/health" } } }`);
  // Lines about this member (on a busy machine the healthy one may time out now and then).
  t.regex(await rsp.waitFor(new RegExp(`member 127\\.0\\.0\\.1:${port} is down`)), /is down \(health check: status 503\); [01] of 2 up/);
  status = 200;
  t.regex(await rsp.waitFor(new RegExp(`member 127\\.0\\.0\\.1:${port} is up`)), /is up; [12] of 2 up\.$/);
});

test('several listeners, each with its own pool', async (t) => {
  const [app, db] = await Promise.all([named(t, 'app'), named(t, 'db')]);
  const rsp = await rspWith(t, `listeners = { { port = 0, address = "127.0.0.1", backend = "app" }, { port = "0", address = "127.0.0.1", backend = "db" } }
backends = { app = { "127.0.0.1:${app.port}" }, db = { "127.0.0.1:${db.port}" } }`);
  const ports = /Listening on ports (\d+), (\d+)\./.exec(await rsp.waitFor(/Listening on ports/))!.slice(1).map(Number);
  t.is(await ask(ports[0]), 'app');
  t.is(await ask(ports[1]), 'db');
});

test('the C rsp\'s three globals still make a one-member pool', async (t) => {
  const a = await named(t, 'only');
  const rsp = await startRsp(t, { backendAddress: '127.0.0.1', backendPort: a.port });
  t.is(await ask(rsp.port), 'only');
});

const poolErrors: [string, string, RegExp][] = [
  ['a misspelt pool option', 'backends = { app = { "127.0.0.1:9", balanse = "hash" } }', /^Error parsing config file: unknown option backends\.app\.balanse \(did you mean balance\?\)\n$/],
  ['a misspelt member option', 'backends = { app = { { "127.0.0.1:9", wieght = 2 } } }', /^Error parsing config file: unknown option backends\.app\[1\]\.wieght \(did you mean weight\?\)\n$/],
  ['a misspelt check option', 'backends = { app = { "127.0.0.1:9", check = { intervall = 5 } } }', /^Error parsing config file: unknown option backends\.app\.check\.intervall \(did you mean interval\?\)\n$/],
  ['an unknown balance', 'backends = { app = { "127.0.0.1:9", balance = "fastest" } }', /^Error parsing config file: backends\.app\.balance must be "roundrobin" or "leastconn" or "random" or "hash", got "fastest"\n$/],
  ['a member without a port', 'backends = { app = { "127.0.0.1" } }', /^Error parsing config file: backends\.app\[1\] must be "host:port" .*got "127\.0\.0\.1"\n$/],
  ['a pool with no members', 'backends = { app = { balance = "hash" } }', /^Error parsing config file: backends\.app has no members\n$/],
  ['a listener naming a pool that does not exist', 'backends = { app = { "127.0.0.1:9" } } listeners = { { port = 0, backend = "ap" } }', /^Error parsing config file: listeners\[1\] names pool "ap", which backends does not define \(pools: app\)\n$/],
  ['two pools and no backend', 'backends = { a = { "127.0.0.1:9" }, b = { "127.0.0.1:10" } }', /^Error parsing config file: backend: say which pool it sends to .*\n$/],
  ['backends and backendAddress both', 'backendAddress = "127.0.0.1" backendPort = 9 backends = { app = { "127.0.0.1:9" } }', /^Error parsing config file: backendAddress and backendPort and backends both set: the members go in backends\n$/],
  ['a misspelt listener option', 'backends = { app = { "127.0.0.1:9" } } listeners = { { prot = 0 } }', /^Error parsing config file: unknown option listeners\[1\]\.prot \(did you mean port\?\)\n$/],
];

for (const [what, body, expected] of poolErrors) {
  test(`a config with ${what} gets one line and exit 1`, async (t) => {
    const config = /listeners/.test(body) ? body : `listenPort = 0 listenAddress = "127.0.0.1" ${body}`;
    const { code, out } = await run(t, [tempFile(t, 'rsp.lua', config)]);
    t.is(code, 1, out);
    t.regex(out, expected);
  });
}
