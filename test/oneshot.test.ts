// examples/oneshot.ts: blog part 1's blocking proxy, one client at a time.
import test, { type ExecutionContext } from 'ava';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import { get, httpBackend, refusingPort, ROOT, spawnProcess, waitUntil, within } from './helpers';

const ONESHOT = path.join(ROOT, 'dist', 'examples', 'oneshot.js');

async function startOneshot(t: ExecutionContext, backendPort: number) {
  // setpriv --pdeathsig: the one-shot proxy has no --die-with-parent of its
  // own; this way it still goes if this test process is killed.
  const p = spawnProcess(t, 'setpriv', ['--pdeathsig', 'SIGTERM', process.execPath, ONESHOT, '0', '127.0.0.1', String(backendPort)]);
  const line = await p.waitFor(/Started\. {2}Listening on port \d+\./);
  t.regex(line, /^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] Started/);
  return { ...p, port: Number(/port (\d+)/.exec(line)![1]) };
}

/**
 * Connections waiting in the accept queue of the TCP listener on `port`:
 * for a LISTEN socket, the rx_queue column of /proc/net/tcp is that count.
 */
function acceptQueue(port: number): number {
  const hexPort = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  for (const line of fs.readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length > 4 && f[1].endsWith(hexPort) && f[3] === '0A') return parseInt(f[4].split(':')[1], 16);
  }
  throw new Error(`no listener on port ${port} in /proc/net/tcp`);
}

/** A raw HTTP/1.0 request; resolves with the whole response once the proxy closes the connection. */
function rawRequest(t: ExecutionContext, port: number, urlPath: string, onConnect: () => void): Promise<string> {
  const s = net.connect(port, '127.0.0.1');
  t.teardown(() => s.destroy());
  return within(new Promise((resolve, reject) => {
    let text = '';
    s.on('connect', () => s.write(`GET ${urlPath} HTTP/1.0\r\nHost: x\r\n\r\n`, onConnect));
    s.on('data', (c) => (text += c.toString()));
    s.on('end', () => resolve(text));
    s.on('error', reject);
  }), 30000, `the response to ${urlPath}`);
}

test('the one-shot proxy serves two HTTP requests in sequence, then goes on accepting', async (t) => {
  const seen: string[] = [];
  const backendPort = await httpBackend(t, (req, res) => {
    seen.push(req.url!);
    res.end(`hello from ${req.url}`);
  });
  const proxy = await startOneshot(t, backendPort);

  const first = await get(proxy.port, '/first');
  t.is(first.status, 200);
  t.is(first.body.toString(), 'hello from /first');
  const second = await get(proxy.port, '/second');
  t.is(second.status, 200);
  t.is(second.body.toString(), 'hello from /second');
  t.deepEqual(seen, ['/first', '/second']);
  // Still running, waiting for the next client: a third one is served.
  t.is((await get(proxy.port, '/third')).body.toString(), 'hello from /third');
});

test('it serves one client at a time: a second client waits until the first one\'s slow response is complete', async (t) => {
  const events: string[] = [];
  let releaseSlow!: () => void;
  const slowReleased = new Promise<void>((r) => (releaseSlow = r));
  const backendPort = await httpBackend(t, (req, res) => {
    events.push(`backend got ${req.url}`);
    if (req.url === '/slow') {
      // Part of the response now, the rest when the test says so.
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('slow part 1, ');
      res.on('finish', () => events.push('backend finished /slow'));
      void slowReleased.then(() => res.end('slow part 2'));
    } else {
      res.end('fast');
    }
  });
  const proxy = await startOneshot(t, backendPort);

  const slow = rawRequest(t, proxy.port, '/slow', () => {}).then((text) => {
    events.push('client A done');
    return text;
  });
  await waitUntil(() => events.includes('backend got /slow'), 'the slow request to reach the backend');

  let bSent = false;
  const fast = rawRequest(t, proxy.port, '/fast', () => (bSent = true)).then((text) => {
    events.push('client B done');
    return text;
  });
  // B is connected and its request is sent, yet it sits unaccepted in the
  // listen backlog: the proxy is blocked in read() on A's backend.
  await waitUntil(() => bSent && acceptQueue(proxy.port) === 1, 'client B to wait in the accept queue');
  t.false(events.includes('backend got /fast'));
  t.deepEqual(events, ['backend got /slow']);

  releaseSlow();
  const [a, b] = await Promise.all([slow, fast]);
  t.regex(a, /^HTTP\/1\.1 200 /);
  t.true(a.endsWith('slow part 1, slow part 2'), a);
  t.regex(b, /^HTTP\/1\.1 200 /);
  t.true(b.endsWith('fast'), b);

  const order = (e: string): number => events.indexOf(e);
  t.true(order('backend finished /slow') >= 0, events.join(', '));
  t.true(order('backend got /fast') > order('backend finished /slow'), events.join(', '));
  t.true(order('client A done') < order('client B done'), events.join(', '));
});

test('a failed backend connect closes that client, and the next client is served', async (t) => {
  // A port that refuses connections, held (bound, not listening) until the backend comes up on it.
  const backend = refusingPort(t);
  const backendPort = backend.port;
  const proxy = await startOneshot(t, backendPort);

  // Closed without a response: a FIN, or a reset if the request had already
  // arrived (closing a socket with unread bytes makes the kernel send RST).
  const refused = await rawRequest(t, proxy.port, '/', () => {}).catch((error: NodeJS.ErrnoException) => error.code);
  t.true(refused === '' || refused === 'ECONNRESET', String(refused));
  await proxy.waitFor(/Could not connect to backend 127\.0\.0\.1:\d+: connect: ECONNREFUSED/);

  // Now bring the backend up on that port: the proxy is still accepting.
  await backend.serve(http.createServer((_req, res) => res.end('up now')));
  const response = await get(proxy.port, '/');
  t.is(response.body.toString(), 'up now');
});
