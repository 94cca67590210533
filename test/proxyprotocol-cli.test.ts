// PROXY protocol through the real CLI: acceptProxy with hand-written v1 and
// v2 headers (split across writes too), the header's address in rsp's log
// and in `hash` balancing, connections without a header reset, and
// sendProxy v1/v2 received by a backend that parses them (also after a
// retry on another member: exactly one header).
import test, { type ExecutionContext } from 'ava';
import * as net from 'node:net';
import * as libc from '../ffi/libc';
import { createAndBind } from '../src/listener';
import { localAddress } from '../src/netutils';
import { isHeaderError, NEED_MORE, ProxyHeaderParser, V2_SIGNATURE } from '../src/proxyprotocol/parse';
import { parseConfig } from '../src/config';
import { bothModes, countersOf, echoBackend, listen, refusingPort, startRsp, tempFile, within } from './helpers';
import { startRspLua } from './lua';

/** A v2 header for an IPv4 or IPv6 client (command 1: PROXY, 0: LOCAL). */
function v2Header(source: [string, number] | null, destination: [string, number] | null): Buffer {
  const fixed = Buffer.alloc(16);
  V2_SIGNATURE.copy(fixed);
  if (source === null || destination === null) {
    fixed[12] = 0x20; // LOCAL
    return fixed;
  }
  fixed[12] = 0x21;
  const v6 = net.isIPv6(source[0]);
  fixed[13] = v6 ? 0x21 : 0x11;
  const block = Buffer.alloc(v6 ? 36 : 12);
  const bytes = (a: string): Buffer => (v6 ? v6Bytes(a) : Buffer.from(a.split('.').map(Number)));
  const n = v6 ? 16 : 4;
  bytes(source[0]).copy(block, 0);
  bytes(destination[0]).copy(block, n);
  block.writeUInt16BE(source[1], 2 * n);
  block.writeUInt16BE(destination[1], 2 * n + 2);
  fixed.writeUInt16BE(block.length, 14);
  return Buffer.concat([fixed, block]);
}

/** 16 bytes of an IPv6 address written out in full ("2001:db8:0:0:0:0:0:7"). */
function v6Bytes(a: string): Buffer {
  const b = Buffer.alloc(16);
  a.split(':').forEach((g, i) => b.writeUInt16BE(parseInt(g, 16), 2 * i));
  return b;
}

/**
 * Connect (from `localAddress` if given), write `pieces` one at a time
 * (each after the previous has been handed to the kernel), end, and read
 * the answer to the end. Rejects with the socket's error (ECONNRESET).
 */
function converse(port: number, pieces: (Buffer | string)[], opts: { localAddress?: string; end?: boolean; ms?: number } = {}): Promise<{ answer: Buffer; localPort: number }> {
  const s = net.connect({ port, host: '127.0.0.1', localAddress: opts.localAddress });
  s.setNoDelay(true);
  return within(new Promise<{ answer: Buffer; localPort: number }>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let localPort = 0;
    s.on('connect', async () => {
      localPort = s.localPort!;
      for (const piece of pieces) await new Promise<void>((r) => s.write(piece, () => r()));
      if (opts.end !== false) s.end();
    });
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => resolve({ answer: Buffer.concat(chunks), localPort }));
    s.on('error', reject);
  }), opts.ms ?? 20000, `the answer through port ${port}`).finally(() => s.destroy());
}

/** `bytes` cut into pieces at the given offsets. */
function cut(bytes: Buffer, at: number[]): Buffer[] {
  const pieces: Buffer[] = [];
  let from = 0;
  for (const to of [...at, bytes.length]) {
    pieces.push(bytes.subarray(from, to));
    from = to;
  }
  return pieces;
}

interface Received {
  version: number;
  command: string;
  source: string | null;
  destination: string | null;
  /** The bytes after the header, as text. */
  data: string;
}

/**
 * A backend that reads a PROXY header with rsp's own parser, then the
 * client's bytes to the end, and answers with what it got as JSON.
 */
function headerBackend(t: ExecutionContext): Promise<number> {
  return listen(t, net.createServer((s) => {
    const parser = new ProxyHeaderParser();
    let header: Omit<Received, 'data'> | null = null;
    let problem = '';
    const data: Buffer[] = [];
    s.on('data', (chunk: Buffer) => {
      if (header !== null || problem !== '') {
        data.push(chunk);
        return;
      }
      const r = parser.feed(chunk, chunk.length);
      if (r === NEED_MORE) return;
      if (isHeaderError(r)) {
        problem = r.error;
        return;
      }
      header = { version: r.version, command: r.command, source: r.source?.text ?? null, destination: r.destination?.text ?? null };
      data.push(chunk.subarray(parser.restOffset));
    });
    s.on('end', () => s.end(JSON.stringify(problem !== '' ? { problem } : { ...header, data: Buffer.concat(data).toString('latin1') })));
  }));
}

function received(answer: Buffer): Received {
  const r = JSON.parse(answer.toString()) as Received & { problem?: string };
  if (r.problem !== undefined) throw new Error(`the backend got no valid PROXY header: ${r.problem}`);
  return r;
}

/** A backend that answers each connection with its name. */
function named(t: ExecutionContext, name: string): Promise<number> {
  return listen(t, net.createServer((s) => {
    s.resume();
    s.end(name);
  }));
}

// ---------------------------------------------------------------- acceptProxy

const V1 = Buffer.from('PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\n');
const V2 = v2Header(['192.0.2.7', 56324], ['198.51.100.1', 443]);
const V2_6 = v2Header(['2001:db8:0:0:0:0:0:7', 2222], ['2001:db8:0:0:0:0:0:1', 443]);

bothModes('acceptProxy: v1 and v2 headers, whole or split across writes: the backend gets exactly the bytes after them', async (t, mode) => {
  const backendPort = await echoBackend(t);
  const rsp = await startRsp(t, { backendAddress: '127.0.0.1', backendPort, triggerMode: mode, acceptProxy: true });
  const data = Buffer.from('hello through the header\r\n');
  for (const [name, head] of [['v1', V1], ['v2', V2], ['v2 IPv6', V2_6]] as const) {
    const whole = Buffer.concat([head, data]);
    const splits: [string, number[]][] = [
      ['in one write', []],
      ['the header alone, then the data', [head.length]],
      ['one byte, then the rest', [1]],
      ['cut inside the header, the data with its end', [5, 13, head.length - 1]],
      ['cut inside the data', [head.length + 3]],
    ];
    for (const [how, at] of splits) {
      const { answer } = await converse(rsp.port, cut(whole, at));
      t.is(answer.toString(), data.toString(), `${name} ${how}`);
    }
  }
});

test('acceptProxy: rsp\'s log names the client from the header (v1, v2 IPv6), and the real one for v2 LOCAL', async (t) => {
  const { port } = refusingPort(t);
  const rsp = await startRsp(t, { backendAddress: '127.0.0.1', backendPort: port, acceptProxy: true });
  await converse(rsp.port, [V1, 'x']).catch(() => null);
  t.regex(await rsp.waitFor(/for client|client .* cut/), /client 192\.0\.2\.7:56324\b/);
  await converse(rsp.port, [V2_6, 'x']).catch(() => null);
  t.regex(await rsp.waitFor(/client \[2001:db8::7\]:2222\b/), /2001:db8::7/);
  // LOCAL (a balancer's own health check): the connection's own address.
  let localPort = 0;
  await converse(rsp.port, [v2Header(null, null), 'x'], { localAddress: '127.0.0.2' }).then((r) => (localPort = r.localPort), () => null);
  const line = await rsp.waitFor(/client 127\.0\.0\.2:\d+/);
  if (localPort !== 0) t.regex(line, new RegExp(`client 127\\.0\\.0\\.2:${localPort}\\b`));
  t.notRegex(rsp.output(), /client 127\.0\.0\.1:/);
});

test('acceptProxy with balance = "hash": the header\'s address picks the member', async (t) => {
  const a = await named(t, 'a');
  const b = await named(t, 'b');
  const rsp = await startRspLua(t, `
listenPort = "0"
listenAddress = "127.0.0.1"
acceptProxy = true
backends = { app = { "127.0.0.1:${a}", "127.0.0.1:${b}", balance = "hash" } }
`);
  const seen = new Map<string, Set<string>>();
  for (let i = 1; i <= 16; i++) {
    const client = `10.1.${i}.${i * 7}`;
    const picks = new Set<string>();
    // The same header address from different real ports (and v1 or v2): one member.
    for (const head of [Buffer.from(`PROXY TCP4 ${client} 10.0.0.1 ${1000 + i} 80\r\n`), v2Header([client, 2000 + i], ['10.0.0.1', 80]), Buffer.from(`PROXY TCP4 ${client} 10.0.0.1 ${3000 + i} 80\r\n`)]) {
      picks.add((await converse(rsp.port, [head, '?'])).answer.toString());
    }
    t.is(picks.size, 1, `${client} went to ${[...picks].join(' and ')}`);
    seen.set(client, picks);
  }
  // Every real connection came from 127.0.0.1: only the headers can spread them.
  const members = new Set([...seen.values()].flatMap((s) => [...s]));
  t.deepEqual([...members].sort(), ['a', 'b']);
});

async function resetOrEmpty(promise: Promise<{ answer: Buffer }>): Promise<string> {
  return promise.then((r) => `answer ${JSON.stringify(r.answer.toString())}`, (e: NodeJS.ErrnoException) => e.code ?? String(e));
}

bothModes('acceptProxy: a connection without a valid header is reset, never connected, and logged once per burst', async (t, mode) => {
  let served = 0;
  const backendPort = await listen(t, net.createServer((s) => {
    served++;
    s.resume();
    s.end('served');
  }));
  const rsp = await startRsp(t, { backendAddress: '127.0.0.1', backendPort, triggerMode: mode, acceptProxy: true, connectTimeout: 300 });
  t.is(await resetOrEmpty(converse(rsp.port, ['GET / HTTP/1.1\r\nHost: x\r\n\r\n'], { end: false })), 'ECONNRESET');
  t.regex(await rsp.waitFor(/Bad PROXY/), /Bad PROXY protocol header from 127\.0\.0\.1:\d+: not a PROXY protocol header \(starts with "G"\); connection reset$/);
  const bad = [
    'PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\ndata',
    'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n',
    `PROXY UNKNOWN ${'x'.repeat(120)}\r\n`,
    Buffer.concat([V2.subarray(0, 12), Buffer.from([0x31, 0x11, 0, 12])]),
    Buffer.concat([V2.subarray(0, 14), Buffer.from([0xff, 0xff])]),
  ];
  for (const head of bad) t.is(await resetOrEmpty(converse(rsp.port, [head], { end: false })), 'ECONNRESET', String(head));
  // A header cut short by the client's FIN is no header either.
  t.is(await resetOrEmpty(converse(rsp.port, [V1.subarray(0, 20)])), 'ECONNRESET');
  // Silence: reset once connectTimeout has passed.
  t.is(await resetOrEmpty(converse(rsp.port, [], { end: false })), 'ECONNRESET');
  // The last of the burst: logged itself, or held back and then logged at the end of its second.
  await rsp.waitFor(/no PROXY header within connectTimeout/);
  t.is(served, 0);
  // Eight bad connections; at most one line a second for them.
  const lines = rsp.output().split('\n').filter((l) => l.includes('Bad PROXY'));
  t.true(lines.length < 8, lines.join('\n'));
  // Still serving: a good header goes through.
  t.is((await converse(rsp.port, [V1, 'ok'])).answer.toString(), 'served');
  t.is(served, 1);
  const c = await countersOf(rsp);
  t.is(c['bad-PROXY-header'], 8, JSON.stringify(c));
  t.is(c.accepts, 9);
});

const CONFIG_ERRORS: [string, string, RegExp][] = [
  ['acceptProxy not a boolean', 'listenPort = 0 backendAddress = "127.0.0.1" backendPort = 9 acceptProxy = "yes"', /^acceptProxy must be true or false, got "yes"$/],
  ['acceptProxy with listeners', 'acceptProxy = true backends = { app = { "127.0.0.1:9" } } listeners = { { port = 0 } }', /^acceptProxy and listeners both set: with listeners, each one says its port, address and backend$/],
  ['a listener\'s acceptProxy not a boolean', 'backends = { app = { "127.0.0.1:9" } } listeners = { { port = 0, acceptProxy = 1 } }', /^listeners\[1\]\.acceptProxy must be true or false, got 1$/],
  ['sendProxy not a version', 'listenPort = 0 backends = { app = { "127.0.0.1:9", sendProxy = "v3" } }', /^backends\.app\.sendProxy must be "v1" or "v2" \(or false\), got "v3"$/],
  ['sendProxy misspelt', 'listenPort = 0 backends = { app = { "127.0.0.1:9", sendproxy = "v1" } }', /^unknown option backends\.app\.sendproxy \(did you mean sendProxy\?\)$/],
  ['acceptProxy misspelt in a listener', 'backends = { app = { "127.0.0.1:9" } } listeners = { { port = 0, acceptproxy = true } }', /^unknown option listeners\[1\]\.acceptproxy \(did you mean acceptProxy\?\)$/],
];

for (const [what, body, expected] of CONFIG_ERRORS) {
  test(`config: ${what} is an error naming it`, (t) => {
    const error = t.throws(() => parseConfig(tempFile(t, 'rsp.lua', body)));
    t.regex(error!.message, expected);
  });
}

test('config: acceptProxy and sendProxy reach the listeners and pools; off by default', (t) => {
  const on = parseConfig(tempFile(t, 'rsp.lua', 'listenPort = 0 acceptProxy = true backends = { app = { "127.0.0.1:9", sendProxy = "v2" }, db = { "127.0.0.1:10" } } backend = "app"'));
  t.deepEqual(on.listeners.map((l) => l.acceptProxy), [true]);
  t.deepEqual(on.pools.map((p) => [p.name, p.sendProxy]), [['app', 'v2'], ['db', null]]);
  const off = parseConfig(tempFile(t, 'rsp.lua', 'listenPort = 0 backendAddress = "127.0.0.1" backendPort = 9'));
  t.false(off.listeners[0].acceptProxy);
  t.is(off.pools[0].sendProxy, null);
});

test('listeners: acceptProxy per listener', async (t) => {
  const backendPort = await echoBackend(t);
  const rsp = await startRspLua(t, `
backends = { app = { "127.0.0.1:${backendPort}" } }
listeners = { { port = "0", address = "127.0.0.1", acceptProxy = true }, { port = "0", address = "127.0.0.1" } }
`);
  const ports = /Listening on ports? ([\d, ]+)\./.exec(rsp.output())![1].split(', ').map(Number);
  t.is(ports.length, 2);
  t.is((await converse(ports[0], [V2, 'with'])).answer.toString(), 'with');
  t.is((await converse(ports[1], ['without'])).answer.toString(), 'without');
  // The plain listener takes a header as the client's data.
  t.is((await converse(ports[1], [V1])).answer.toString(), V1.toString());
});

// ---------------------------------------------------------------- sendProxy

for (const version of ['v1', 'v2'] as const) {
  bothModes(`sendProxy = "${version}": the backend gets the client's address and rsp's, then exactly the client's bytes`, async (t, mode) => {
    const backendPort = await headerBackend(t);
    const rsp = await startRspLua(t, `
listenPort = "0"
listenAddress = "127.0.0.1"
triggerMode = "${mode}"
backends = { app = { "127.0.0.1:${backendPort}", sendProxy = "${version}" } }
`);
    for (const data of ['hello', 'PROXY TCP4 1.1.1.1 2.2.2.2 1 2\r\n', '']) {
      const { answer, localPort } = await converse(rsp.port, data === '' ? [] : [data], { localAddress: '127.0.0.2' });
      const r = received(answer);
      t.is(r.version, version === 'v1' ? 1 : 2);
      t.is(r.command, 'proxy');
      t.is(r.source, `127.0.0.2:${localPort}`);
      t.is(r.destination, `127.0.0.1:${rsp.port}`);
      t.is(r.data, data);
    }
  });
}

test('acceptProxy and sendProxy together: the header\'s addresses are passed on', async (t) => {
  const backendPort = await headerBackend(t);
  const rsp = await startRspLua(t, `
listenPort = "0"
listenAddress = "127.0.0.1"
acceptProxy = true
backends = { app = { "127.0.0.1:${backendPort}", sendProxy = "v1" } }
`);
  const r = received((await converse(rsp.port, [V2_6.subarray(0, 30), V2_6.subarray(30), 'data'])).answer);
  t.deepEqual(r, { version: 1, command: 'proxy', source: '[2001:db8::7]:2222', destination: '[2001:db8::1]:443', data: 'data' });
  // LOCAL: rsp names the real connection.
  const local = await converse(rsp.port, [v2Header(null, null), 'x'], { localAddress: '127.0.0.3' });
  const l = received(local.answer);
  t.is(l.source, `127.0.0.3:${local.localPort}`);
  t.is(l.destination, `127.0.0.1:${rsp.port}`);
  t.is(l.data, 'x');
});

bothModes('sendProxy after a connect that timed out: the next member gets one header, then the bytes sent meanwhile', async (t, mode) => {
  // A listener whose accept queue is full drops new SYNs: connect() hangs.
  const fd = createAndBind('127.0.0.1', 0, 1);
  t.teardown(() => libc.close(fd));
  const blackHole = localAddress(fd)!.port;
  const fillers: net.Socket[] = [];
  t.teardown(() => fillers.forEach((s) => s.destroy()));
  for (let i = 0; i < 2; i++) {
    const s = net.connect(blackHole, '127.0.0.1');
    s.on('error', () => {});
    fillers.push(s);
    await new Promise((r) => s.once('connect', r));
  }
  const backendPort = await headerBackend(t);
  const rsp = await startRspLua(t, `
listenPort = "0"
listenAddress = "127.0.0.1"
triggerMode = "${mode}"
connectTimeout = 300
backends = { app = { "127.0.0.1:${blackHole}", "127.0.0.1:${backendPort}", sendProxy = "v2", maxFails = 5 } }
`);
  // Round-robin starts with the first member: the black hole.
  for (let i = 0; i < 2; i++) {
    const data = `sent while connecting ${i}`;
    const { answer, localPort } = await converse(rsp.port, [data], { localAddress: '127.0.0.2' });
    const r = received(answer);
    t.is(r.source, `127.0.0.2:${localPort}`);
    t.is(r.data, data, 'one header, then the data');
  }
  t.regex(await rsp.waitFor(/Could not connect/), /Could not connect to backend app member 127\.0\.0\.1:\d+ for client 127\.0\.0\.2:\d+: ETIMEDOUT$/);
});
