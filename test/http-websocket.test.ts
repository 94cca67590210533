// HTTP mode's streams through the real CLI: an Upgrade (WebSocket) that
// becomes a raw tunnel after the backend's 101, and bodies far larger than
// any buffer (50 MB each way, byte-exact) whose bytes in flight stay bounded
// while the reading side holds back (backpressure), as in TCP mode.
import type { ExecutionContext } from 'ava';
import * as crypto from 'node:crypto';
import * as net from 'node:net';
import { bothModes, listen, patternBytes, rss, settle, sha256, waitUntil, within } from './helpers';
import { field, httpConfig, parseMessage, RawClient, scriptedBackend } from './httpclient';
import { startRspLua } from './lua';

const WS_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
const WS_ACCEPT = crypto.createHash('sha1').update(`${WS_KEY}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');

bothModes('WebSocket: the Upgrade reaches the backend, its 101 comes back, then 200 KB each way are echoed byte-exact; half-close ends it', async (t, mode) => {
  const b = await scriptedBackend(t, async (c) => {
    const req = await c.request();
    if (req === null) return;
    // The 101, and the backend's first bytes in the same write.
    c.send(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${WS_ACCEPT}\r\n\r\nhello from backend|`);
    // From here on a raw echo (of what came after the head too).
    c.socket.removeAllListeners('data');
    const early = c.all.subarray(c.all.indexOf('\r\n\r\n') + 4);
    if (early.length > 0) c.socket.write(early);
    c.socket.on('data', (d: Buffer) => c.socket.write(d));
    c.socket.on('end', () => c.socket.end());
  });
  const rsp = await startRspLua(t, httpConfig(mode, b.port));
  const c = await RawClient.connect(t, rsp.port);
  // Bytes right behind the head, before the 101: they must wait and then go through the tunnel.
  c.send(`GET /chat HTTP/1.1\r\nHost: ws.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\nearly|`);
  const res = await c.response();
  t.is(res.line, 'HTTP/1.1 101 Switching Protocols');
  t.is(field(res, 'upgrade'), 'websocket');
  t.regex(field(res, 'connection') ?? '', /upgrade/i);
  t.is(field(res, 'sec-websocket-accept'), WS_ACCEPT);
  const got = b.requests[0];
  t.regex(field(got, 'connection') ?? '', /upgrade/i);
  t.is(field(got, 'sec-websocket-key'), WS_KEY);
  const payload = patternBytes(200 * 1024, 5);
  for (let i = 0; i < payload.length; i += 10_000) c.send(payload.subarray(i, i + 10_000));
  const want = Buffer.concat([Buffer.from('hello from backend|early|'), payload]);
  await waitUntil(() => c.unread.length >= want.length, `${want.length} bytes back through the tunnel`);
  t.is(c.unread.length, want.length);
  t.true(c.unread.equals(want), 'byte-exact');
  c.end();
  const end = await c.ending();
  t.is(end.how, 'end');
});

bothModes('WebSocket: the backend gets the Upgrade field (a real WebSocket server refuses an upgrade without it)', async (t, mode) => {
  const b = await scriptedBackend(t, async (c) => {
    if ((await c.request()) === null) return;
    c.send('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
  });
  const rsp = await startRspLua(t, httpConfig(mode, b.port));
  const c = await RawClient.connect(t, rsp.port);
  c.send(`GET /chat HTTP/1.1\r\nHost: ws.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  t.is((await c.response()).status, 101);
  t.is(field(b.requests[0], 'upgrade'), 'websocket');
});

bothModes('an Upgrade the backend declines (200) stays HTTP: the connection carries the next request', async (t, mode) => {
  const b = await scriptedBackend(t);
  const rsp = await startRspLua(t, httpConfig(mode, b.port));
  const c = await RawClient.connect(t, rsp.port);
  c.send(`GET /chat HTTP/1.1\r\nHost: ws.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  t.is((await c.response()).status, 200);
  c.send('GET /next HTTP/1.1\r\nHost: ws.example\r\n\r\n');
  t.is((await c.response()).status, 200);
  t.is(b.requests[1].target, '/next');
});

const SIZE = 50 * 1024 * 1024;

/** Collects a stream's bytes without copying them on every read (a 50 MB body would be quadratic). */
class Collector {
  chunks: Buffer[] = [];
  length = 0;
  ended = false;
  constructor(readonly socket: net.Socket) {
    socket.on('data', (d: Buffer) => {
      this.chunks.push(d);
      this.length += d.length;
    });
    socket.on('end', () => (this.ended = true));
    socket.on('close', () => (this.ended = true));
    socket.on('error', () => (this.ended = true));
  }
  bytes(): Buffer {
    const all = Buffer.concat(this.chunks);
    this.chunks = [all];
    return all;
  }
}

/** Writes `data` in 1 MB pieces as the socket takes them; `flushed`: bytes the kernel has taken. */
function writeAll(socket: net.Socket, data: Buffer): { flushed: () => number; done: Promise<void> } {
  let flushed = 0;
  const done = new Promise<void>((resolve, reject) => {
    let at = 0;
    const more = (): void => {
      while (at < data.length) {
        const piece = data.subarray(at, at + 1024 * 1024);
        at += piece.length;
        const ok = socket.write(piece, (e) => {
          if (e) reject(e);
          else flushed += piece.length;
          if (flushed === data.length) resolve();
        });
        if (!ok) {
          socket.once('drain', more);
          return;
        }
      }
    };
    more();
  });
  return { flushed: () => flushed, done };
}

/**
 * While the far side holds back, the near side's writes stall: how far they
 * got must be bounded by the socket buffers and rsp's 1 MiB queue, not by the
 * body's size. Returns the bytes flushed when they stopped moving.
 */
async function stalled(flushed: () => number): Promise<number> {
  return settle(flushed, 5, 100, 30000);
}

async function rspGrowth(t: ExecutionContext, pid: number, base: number): Promise<number> {
  const now = rss(pid);
  t.log(`rsp RSS ${Math.round(base / 1e6)} MB before, ${Math.round(now / 1e6)} MB with the stream held`);
  return now - base;
}

bothModes('50 MB download and 50 MB upload, byte-exact; while the reader holds back, bytes in flight and rsp\'s memory stay bounded', async (t, mode) => {
  const body = patternBytes(SIZE, 11);
  const bodySha = sha256(body);
  let uploadSha = '';
  let uploadLength = 0;
  let backendSide: { socket: net.Socket; writer?: ReturnType<typeof writeAll> } | null = null;
  const server = net.createServer((s) => {
    s.on('error', () => {});
    const col = new Collector(s);
    let answered = false;
    let need = -1;
    const check = (): void => {
      if (answered) return;
      if (need < 0) {
        // The head is small: look for its end in what has come so far.
        const start = col.bytes();
        const end = start.indexOf('\r\n\r\n');
        if (end < 0) return;
        const cl = /content-length: (\d+)/i.exec(start.toString('latin1', 0, end));
        need = end + 4 + (cl === null ? 0 : Number(cl[1]));
      }
      if (col.length < need) return;
      answered = true;
      const m = parseMessage(col.bytes(), 'request')!;
      if (m.msg.method === 'GET') {
        backendSide = { socket: s };
        s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${SIZE}\r\n\r\n`);
        backendSide.writer = writeAll(s, body);
      } else {
        uploadLength = m.msg.body.length;
        uploadSha = sha256(m.msg.body);
        s.end(`HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok`);
      }
    };
    s.on('data', check);
    // The upload's backend reads nothing at first: the test resumes it.
    s.pause();
    backendSide = { socket: s };
  });
  const port = await listen(t, server);
  // keepalive = 0: the upload gets a backend connection of its own (held by the test).
  const rsp = await startRspLua(t, `listenPort = "0"\nlistenAddress = "127.0.0.1"\nmode = "http"\ntriggerMode = "${mode}"\nbackends = { web = { "127.0.0.1:${port}", keepalive = 0 } }\n`);
  const base = rss(rsp.pid);

  // Download: the client reads nothing until the backend's writes have stalled.
  const down = net.connect({ port: rsp.port, host: '127.0.0.1' });
  t.teardown(() => down.destroy());
  await new Promise<void>((r) => down.once('connect', () => r()));
  down.pause();
  down.write('GET /big HTTP/1.1\r\nHost: h\r\n\r\n');
  await waitUntil(() => backendSide !== null, 'the backend connection');
  (backendSide as unknown as { socket: net.Socket }).socket.resume();
  await waitUntil(() => (backendSide as { writer?: unknown } | null)?.writer !== undefined, 'the download to start');
  const writer = (backendSide as unknown as { writer: ReturnType<typeof writeAll> }).writer;
  const inFlight = await stalled(writer.flushed);
  t.log(`download held: ${Math.round(inFlight / 1e6)} MB left the backend`);
  t.true(inFlight < 32 * 1024 * 1024, `${inFlight} bytes left the backend while the client read nothing`);
  t.true((await rspGrowth(t, rsp.pid, base)) < 40 * 1024 * 1024, 'rsp did not buffer the body');
  const col = new Collector(down);
  down.resume();
  const headLength = `HTTP/1.1 200 OK\r\nContent-Length: ${SIZE}\r\n\r\n`.length;
  await within(writer.done, 60000, 'the download to be written');
  await waitUntil(() => col.length >= headLength + SIZE - 64 || col.ended, 'the whole download', 60000);
  await waitUntil(() => col.length >= SIZE || col.ended, 'the whole download', 60000);
  const got = col.bytes();
  const res = parseMessage(got, 'response');
  t.truthy(res);
  t.is(res!.msg.status, 200);
  t.is(res!.msg.body.length, SIZE);
  t.is(sha256(res!.msg.body), bodySha, 'download byte-exact');
  down.destroy();

  // Upload: the backend reads nothing until the client's writes have stalled.
  backendSide = null;
  const upBase = rss(rsp.pid);
  const up = net.connect({ port: rsp.port, host: '127.0.0.1' });
  t.teardown(() => up.destroy());
  await new Promise<void>((r) => up.once('connect', () => r()));
  const upCol = new Collector(up);
  up.write(`POST /big HTTP/1.1\r\nHost: h\r\nContent-Length: ${SIZE}\r\n\r\n`);
  const upWriter = writeAll(up, body);
  await waitUntil(() => backendSide !== null, 'the upload\'s backend connection');
  const upInFlight = await stalled(upWriter.flushed);
  t.log(`upload held: ${Math.round(upInFlight / 1e6)} MB left the client`);
  t.true(upInFlight < 32 * 1024 * 1024, `${upInFlight} bytes left the client while the backend read nothing`);
  t.true((await rspGrowth(t, rsp.pid, upBase)) < 40 * 1024 * 1024, 'rsp did not buffer the body');
  (backendSide as unknown as { socket: net.Socket }).socket.resume();
  await within(upWriter.done, 60000, 'the upload to be written');
  await waitUntil(() => uploadSha !== '', 'the upload at the backend', 60000);
  t.is(uploadLength, SIZE);
  t.is(uploadSha, bodySha, 'upload byte-exact');
  await waitUntil(() => upCol.length > 0 && upCol.bytes().includes('\r\n\r\nok'), 'the upload\'s response');
  t.regex(upCol.bytes().toString('latin1'), /^HTTP\/1\.1 200 OK\r\n/);
});
