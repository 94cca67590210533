// Connections that outlive a request, through the real CLI: client
// keep-alive and pipelining (answered in order across pools), kept-alive
// backend connections (reuse, the retry of an idempotent request when a
// reused one fails, what makes a connection unfit to reuse), a response cut
// short, keepAliveTimeout, and the drain on SIGTERM.
import * as net from 'node:net';
import { bothModes, countersOf, patternBytes, waitUntil } from './helpers';
import { field, getRequest, httpConfig, keepAnswering, okResponse, oneShot, RawClient, scriptedBackend, sharedRsp, type BackendConn } from './httpclient';
import { startRspLua } from './lua';
import { connectFd, readFd, writeFd } from './sockets';

/** Answers each request with its own target as the body, in `parts` writes `gapMs` apart (a slow backend). */
function slowAnswers(parts: number, gapMs: number): (c: BackendConn) => Promise<void> {
  return async (c) => {
    for (;;) {
      const req = await c.request(60000);
      if (req === null) return;
      const bytes = Buffer.from(okResponse(`slow ${req.target}`) as string, 'latin1');
      for (let i = 0; i < parts; i++) {
        c.send(bytes.subarray(Math.floor((i * bytes.length) / parts), Math.floor(((i + 1) * bytes.length) / parts)));
        await new Promise((r) => setTimeout(r, gapMs));
      }
    }
  };
}

/** The first connection answers its first request, then closes (`how`) when the next one comes; later connections answer everything. */
function closesReused(how: 'fin' | 'reset'): (c: BackendConn) => Promise<void> {
  return async (c) => {
    let n = 0;
    for (;;) {
      const req = await c.request(60000);
      if (req === null) {
        c.socket.end();
        return;
      }
      if (c.index === 0 && n++ === 1) {
        if (how === 'fin') c.socket.end();
        else c.socket.resetAndDestroy();
        return;
      }
      c.send(okResponse(`conn ${c.index} ${req.method} ${req.target}`));
    }
  };
}

/** Sends `head` and 50,000 bytes of a longer body, then ends (`how`) the connection. */
function cutShort(how: 'fin' | 'reset', head: string): (c: BackendConn) => Promise<void> {
  return async (c) => {
    if ((await c.request(60000)) === null) return;
    c.send(Buffer.concat([Buffer.from(head), patternBytes(50_000, 3)]));
    await waitUntil(() => c.socket.writableLength === 0, 'the partial body to be written');
    if (how === 'fin') c.socket.end();
    else c.socket.resetAndDestroy();
  };
}

const fixture = sharedRsp({
  pools: {
    slow: slowAnswers(4, 30),
    fast: keepAnswering((req) => okResponse(`fast ${req.target}`)),
    reuse: keepAnswering(() => okResponse('ok')),
    nokeep: keepAnswering(() => okResponse('ok')),
    closeres: keepAnswering(() => okResponse('bye', 'Connection: close\r\n')),
    retryfin: closesReused('fin'),
    retryrst: closesReused('reset'),
    postfin: closesReused('fin'),
    shortclose: cutShort('fin', 'HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n'),
    shortreset: cutShort('reset', 'HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n'),
    shortchunked: cutShort('fin', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nC350\r\n'),
    late: keepAnswering((req, c) => {
      if (req.target === '/late') setImmediate(() => c.send('HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nunwanted!'));
      return okResponse(`late ${req.target}`);
    }),
    early: async (c) => {
      // Answers as soon as the head is in, before the body (as a server refusing an upload does).
      await waitUntil(() => c.all.includes('\r\n\r\n'), 'the head at the backend');
      c.send('HTTP/1.1 413 Payload Too Large\r\nContent-Length: 3\r\nConnection: close\r\n\r\nbig');
      c.socket.end();
    },
    hold: async (c) => {
      await c.request(60000); // never answered
    },
  },
  poolOptions: { nokeep: 'keepalive = 0' },
});

bothModes('pipelined requests across a slow pool and a fast one are answered in order, whole', async (t, mode) => {
  const { rsp } = await fixture(mode);
  const c = await RawClient.connect(t, rsp.port);
  const targets = ['/1', '/2', '/3', '/4', '/5', '/6'];
  const pools = ['slow', 'fast', 'slow', 'fast', 'fast', 'slow'];
  c.send(targets.map((p, i) => getRequest(p, `${pools[i]}.test`)).join(''));
  for (let i = 0; i < targets.length; i++) {
    const res = await c.response();
    t.is(res.status, 200);
    t.is(res.body.toString(), `${pools[i]} ${targets[i]}`);
  }
  t.is(c.unread.length, 0);
  // And the connection is still usable, one request at a time.
  c.send(getRequest('/after', 'fast.test'));
  t.is((await c.response()).body.toString(), 'fast /after');
});

bothModes('pipelined requests with bodies (Content-Length and chunked) keep their boundaries', async (t, mode) => {
  const { rsp, b } = await fixture(mode);
  const c = await RawClient.connect(t, rsp.port);
  c.send('POST /b1 HTTP/1.1\r\nHost: fast.test\r\nContent-Length: 5\r\n\r\nGET /xPOST /b2 HTTP/1.1\r\nHost: fast.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nGET /\r\n0\r\n\r\nGET /b3 HTTP/1.1\r\nHost: fast.test\r\n\r\n');
  for (const p of ['/b1', '/b2', '/b3']) t.is((await c.response()).body.toString(), `fast ${p}`);
  const got = b.fast.requests.filter((r) => r.target.startsWith('/b'));
  t.deepEqual(got.map((r) => [r.target, r.body.toString()]), [['/b1', 'GET /x'.slice(0, 5)], ['/b2', 'GET /'], ['/b3', '']]);
});

bothModes('upstream keep-alive: 50 requests on 50 client connections, one after another, use few backend connections', async (t, mode) => {
  const { rsp, b } = await fixture(mode);
  for (let i = 0; i < 50; i++) {
    const { res } = await oneShot(t, rsp.port, getRequest(`/${i}`, 'reuse.test', 'Connection: close\r\n'));
    t.is(res.status, 200);
  }
  t.is(b.reuse.requests.length, 50);
  t.true(b.reuse.conns.length <= 3, `${b.reuse.conns.length} backend connections for 50 requests`);
});

bothModes('a small request body rides in the same write() as its head: per POST one write to the backend and one to the client', async (t, mode) => {
  const b = await scriptedBackend(t, keepAnswering(() => okResponse('ok')));
  const rsp = await startRspLua(t, httpConfig(mode, b.port));
  const c = await RawClient.connect(t, rsp.port);
  c.send(getRequest('/warm', 'web.test'));
  t.is((await c.response()).status, 200, 'a backend connection parked for the POSTs');
  const before = await countersOf(rsp);
  const body = 'x'.repeat(1000);
  for (let i = 0; i < 10; i++) {
    c.send(`POST /p${i} HTTP/1.1\r\nHost: web.test\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    t.is((await c.response()).status, 200);
  }
  const after = await countersOf(rsp);
  t.is(after.writes - before.writes, 20);
  t.deepEqual(b.requests.slice(-10).map((r) => `${r.target} ${r.body.toString()}`), Array.from({ length: 10 }, (_, i) => `/p${i} ${body}`));
  t.is(await rsp.stop(), 0);
});

bothModes('keepalive = 0: each request gets a backend connection of its own', async (t, mode) => {
  const { rsp, b } = await fixture(mode);
  const c = await RawClient.connect(t, rsp.port);
  for (let i = 0; i < 5; i++) {
    c.send(getRequest(`/${i}`, 'nokeep.test'));
    t.is((await c.response()).status, 200);
  }
  t.is(b.nokeep.conns.length, 5);
});

bothModes('a response with Connection: close: its backend connection is not reused; the client stays', async (t, mode) => {
  const { rsp, b } = await fixture(mode);
  const c = await RawClient.connect(t, rsp.port);
  for (let i = 0; i < 3; i++) {
    c.send(getRequest(`/${i}`, 'closeres.test'));
    const res = await c.response();
    t.is(res.body.toString(), 'bye');
    t.not(field(res, 'connection'), 'close', 'the client connection is rsp\'s, not the backend\'s');
  }
  t.is(b.closeres.conns.length, 3);
});

for (const [pool, how] of [['retryfin', 'closes'], ['retryrst', 'resets']] as const) {
  bothModes(`a GET on a reused backend connection that the backend ${how} before answering is sent again on a new one`, async (t, mode) => {
    const { rsp, b } = await fixture(mode);
    const c = await RawClient.connect(t, rsp.port);
    c.send(getRequest('/one', `${pool}.test`));
    t.is((await c.response()).body.toString(), 'conn 0 GET /one');
    c.send(getRequest('/two', `${pool}.test`));
    const res = await c.response();
    t.is(res.status, 200);
    t.is(res.body.toString(), 'conn 1 GET /two');
    t.is(b[pool].requests.filter((r) => r.target === '/two').length, 2, 'sent twice: on the reused connection, then a new one');
  });
}

bothModes('a POST on a reused backend connection that fails before answering is not sent again: 502', async (t, mode) => {
  const { rsp, b } = await fixture(mode);
  const c = await RawClient.connect(t, rsp.port);
  c.send(getRequest('/one', 'postfin.test'));
  t.is((await c.response()).status, 200);
  c.send('POST /two HTTP/1.1\r\nHost: postfin.test\r\nContent-Length: 2\r\n\r\nhi');
  const res = await c.response();
  t.is(res.line, 'HTTP/1.1 502 Bad Gateway');
  t.is(b.postfin.requests.filter((r) => r.target === '/two').length, 1);
});

bothModes('bytes a parked backend connection sends out of turn do not become the next request\'s response', async (t, mode) => {
  const { rsp, b } = await fixture(mode);
  const c = await RawClient.connect(t, rsp.port);
  c.send(getRequest('/late', 'late.test'));
  t.is((await c.response()).body.toString(), 'late /late');
  // The unwanted bytes are in rsp's socket by the time the backend has sent them.
  await waitUntil(() => b.late.conns[0].socket.bytesWritten > 0 && b.late.conns[0].socket.writableLength === 0, 'the late bytes to be written');
  c.send(getRequest('/next', 'late.test'));
  const res = await c.response();
  t.is(res.body.toString(), 'late /next');
});

bothModes('a backend that cuts a Content-Length response short: the client sees it cut (a reset), never a complete response', async (t, mode) => {
  const { rsp } = await fixture(mode);
  for (const host of ['shortclose.test', 'shortreset.test', 'shortchunked.test']) {
    const fd = connectFd(rsp.port);
    await writeFd(fd, Buffer.from(getRequest('/', host)));
    const got = await readFd(fd);
    t.is(got.how, 'ECONNRESET', `${host}: ${got.bytes.length} bytes, then ${got.how}`);
    const text = got.bytes.toString('latin1');
    t.true(text.startsWith('HTTP/1.1 200 OK\r\n'), host);
    const bodyLength = got.bytes.length - (text.indexOf('\r\n\r\n') + 4);
    t.true(bodyLength <= 50_000 + 20, `${host}: ${bodyLength} body bytes`);
  }
});

bothModes('keepAliveTimeout closes an idle client connection (with a FIN, nothing sent)', async (t, mode) => {
  const b = await scriptedBackend(t);
  const rsp = await startRspLua(t, httpConfig(mode, b.port, 'keepAliveTimeout = 300'));
  const c = await RawClient.connect(t, rsp.port);
  c.send(getRequest('/'));
  t.is((await c.response()).status, 200);
  const end = await c.ending();
  t.is(end.how, 'end');
  t.is(end.rest.length, 0);
});

bothModes('drain (SIGTERM): an idle keep-alive client is closed at once, a request in flight gets its response with Connection: close, one mid-body finishes whole, then rsp exits 0', async (t, mode) => {
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  const rest = patternBytes(100_000, 8);
  const b = await scriptedBackend(t, async (c) => {
    for (;;) {
      const req = await c.request(60000);
      if (req === null) return;
      if (req.target === '/held') await held;
      if (req.target === '/streaming') {
        // The head and a first part now, the rest after the drain has begun.
        c.send(`HTTP/1.1 200 OK\r\nContent-Length: ${5 + rest.length}\r\n\r\nfirst`);
        await held;
        c.send(rest);
        continue;
      }
      c.send(okResponse(`done ${req.target}`));
    }
  });
  const rsp = await startRspLua(t, httpConfig(mode, b.port));
  const idle = await RawClient.connect(t, rsp.port);
  idle.send(getRequest('/idle'));
  t.is((await idle.response()).status, 200);
  const busy = await RawClient.connect(t, rsp.port);
  busy.send(getRequest('/held'));
  const streaming = await RawClient.connect(t, rsp.port);
  streaming.send(getRequest('/streaming'));
  await waitUntil(() => b.requests.some((r) => r.target === '/held'), 'the held request at the backend');
  await waitUntil(() => streaming.unread.includes('first'), 'the first part of the streaming response');
  rsp.proc.kill('SIGTERM');
  await rsp.waitFor(/Draining/);
  const idleEnd = await idle.ending();
  t.is(idleEnd.how, 'end');
  t.is(idleEnd.rest.length, 0);
  t.is(busy.state, 'open');
  release();
  const res = await busy.response();
  t.is(res.body.toString(), 'done /held');
  t.is(field(res, 'connection'), 'close');
  t.is((await busy.ending()).how, 'end');
  const whole = await streaming.response();
  t.true(whole.body.equals(Buffer.concat([Buffer.from('first'), rest])), 'the streaming response is whole');
  t.is((await streaming.ending()).how, 'end');
  // As any client does on the server's FIN (rsp lingers until then, to not reset its own answer).
  busy.end();
  streaming.end();
  t.is(await rsp.exited, 0);
  // New clients are refused by then.
  const refused = await new Promise<string>((resolve) => {
    const s = net.connect(rsp.port, '127.0.0.1');
    s.on('connect', () => {
      s.destroy();
      resolve('connected');
    });
    s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
  });
  t.is(refused, 'ECONNREFUSED');
});

bothModes('pipelined requests followed by the client\'s FIN are all answered, in order, then the connection ends', async (t, mode) => {
  const { rsp } = await fixture(mode);
  const c = await RawClient.connect(t, rsp.port);
  c.send(['/f1', '/f2', '/f3'].map((p, i) => getRequest(p, i === 1 ? 'slow.test' : 'fast.test')).join(''));
  c.end();
  t.is((await c.response()).body.toString(), 'fast /f1');
  t.is((await c.response()).body.toString(), 'slow /f2');
  t.is((await c.response()).body.toString(), 'fast /f3');
  t.is((await c.ending()).how, 'end');
});

bothModes('200 pipelined requests in one write are answered in order', async (t, mode) => {
  const { rsp } = await fixture(mode);
  const c = await RawClient.connect(t, rsp.port);
  c.send(Array.from({ length: 200 }, (_, i) => getRequest(`/p${i}`, i % 50 === 3 ? 'slow.test' : 'fast.test')).join(''));
  const bodies: string[] = [];
  for (let i = 0; i < 200; i++) bodies.push((await c.response()).body.toString());
  t.deepEqual(bodies, Array.from({ length: 200 }, (_, i) => `${i % 50 === 3 ? 'slow' : 'fast'} /p${i}`));
});

bothModes('a client that resets while its response is awaited: that backend connection is closed, not reused', async (t, mode) => {
  const { rsp, b } = await fixture(mode);
  const c = await RawClient.connect(t, rsp.port);
  c.send(getRequest('/gone', 'hold.test'));
  await waitUntil(() => b.hold.requests.some((r) => r.target === '/gone'), 'the request at the backend');
  // A reset: a FIN alone would be a half-close, after which the response is still owed.
  c.socket.resetAndDestroy();
  const conn = b.hold.conns.find((k) => k.all.includes('/gone'))!;
  await waitUntil(() => conn.ended, 'rsp to close the backend connection');
  t.pass();
});

bothModes('a backend that answers before the request body is complete: the client gets the answer with Connection: close, then the end', async (t, mode) => {
  const { rsp } = await fixture(mode);
  const c = await RawClient.connect(t, rsp.port);
  c.send('POST /upload HTTP/1.1\r\nHost: early.test\r\nContent-Length: 100000\r\n\r\npartial');
  const res = await c.response();
  t.is(res.status, 413);
  t.is(res.body.toString(), 'big');
  t.is(field(res, 'connection'), 'close');
  t.is((await c.ending()).how, 'end');
});

bothModes('after a backend answered before the request body was complete, the rest of the body is never read as requests', async (t, mode) => {
  const { rsp, b } = await fixture(mode);
  const c = await RawClient.connect(t, rsp.port);
  c.send('POST /upload2 HTTP/1.1\r\nHost: early.test\r\nContent-Length: 100\r\n\r\npartial');
  t.is((await c.response()).status, 413);
  // What the client sends now is the rest of its body, whatever it looks like.
  c.send(`${getRequest('/smuggled', 'fast.test')}${'x'.repeat(60)}`);
  c.end();
  await c.ending();
  t.false(b.fast.requests.some((r) => r.target === '/smuggled'));
  t.false(b.early.conns.some((k) => k.all.includes('/smuggled')));
});
