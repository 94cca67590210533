// The counters beyond the totals (epoll_ctl by op, stale events, short
// writes, peak queue, close causes), checked against what each test did.
import * as net from 'node:net';
import { bothModes, connectTo, countersOf, echoBackend, exchange, listen, once, refusingPort, startRsp, type RunningProcess } from './helpers';

/** The close causes of the last counters printed: cause -> count. */
function closes(rsp: RunningProcess): Record<string, number> {
  const line = rsp.output().split('\n').filter((l) => l.includes('counters: closes')).pop() ?? '';
  return Object.fromEntries([...line.matchAll(/ (\S+)=(\d+)/g)].map((m) => [m[1], Number(m[2])]));
}

const total = (counts: Record<string, number>): number => Object.values(counts).reduce((a, b) => a + b, 0);

/** Counters once `condition` holds for them (each look is a SIGUSR2). */
async function countersWhen(rsp: RunningProcess, condition: (c: Record<string, number>) => boolean, what: string): Promise<Record<string, number>> {
  let c = await countersOf(rsp);
  const start = Date.now();
  while (!condition(c)) {
    if (Date.now() - start > 20000) throw new Error(`counters never showed ${what}: ${JSON.stringify(c)}`);
    await new Promise((r) => setTimeout(r, 20));
    c = await countersOf(rsp);
  }
  return c;
}

bothModes('n echo exchanges one after the other: registrations, accepts, connects, bytes and orderly closes', async (t, mode) => {
  const backendPort = await echoBackend(t);
  // One worker: the registrations counted are one reactor's.
  const rsp = await startRsp(t, { backendAddress: '127.0.0.1', backendPort, triggerMode: mode, workers: 1 });
  const n = 4;
  const message = 'twelve bytes';
  for (let i = 0; i < n; i++) t.is((await exchange(rsp.port, message, { end: true })).toString(), message);
  const c = await countersWhen(rsp, (x) => x.closed === 2 * n, `${2 * n} orderly closes`);
  t.is(c.accepts, n);
  t.is(c['accept-calls'], 2 * n, 'each listener event: one accept4() that succeeds, one that says EAGAIN');
  t.is(c.connects, n);
  t.is(c['bytes-read'], 2 * n * message.length);
  t.is(c['bytes-written'], 2 * n * message.length);
  t.is(c['short-writes'], 0);
  t.is(c['stale-events'], 0);
  // Queued only while a backend connect was in progress: never more than one message.
  t.true(c['peak-queue'] <= message.length, `peak-queue=${c['peak-queue']}`);
  t.true(c['bytes-queued'] <= n * message.length, `bytes-queued=${c['bytes-queued']}`);
  // The listener, the control eventfd, then a client and a backend per exchange.
  t.is(c.add, 2 + 2 * n);
  t.is(c.del, 0, 'closing an fd takes it out of the epoll set: no epoll_ctl(DEL)');
  if (mode === 'edge') t.is(c.mod, 0, 'edge: registered once for everything, never modified');
  else t.true(c.mod >= n, `level: at least the end of each backend connect (EPOLLOUT dropped), mod=${c.mod}`);
  t.is(Object.keys(c).filter((k) => /^(ECONN|EPIPE|ETIMEDOUT|idle|client|no-backend)/.test(k)).length, 0, JSON.stringify(c));
});

bothModes('a dead backend: each client is closed with the connect error as the cause, on both sides', async (t, mode) => {
  const { port } = refusingPort(t);
  const rsp = await startRsp(t, { backendAddress: '127.0.0.1', backendPort: port, triggerMode: mode });
  const n = 3;
  for (let i = 0; i < n; i++) await exchange(rsp.port, 'x').catch((e: NodeJS.ErrnoException) => e.code);
  const c = await countersWhen(rsp, (x) => x.accepts === n && (x['no-backend-(ECONNREFUSED)'] ?? 0) === n, `${n} clients closed for ECONNREFUSED`);
  t.is(c.ECONNREFUSED, n, 'the backend sockets');
  t.is(c.connects, 0);
  t.is(c.closed ?? 0, 0);
});

bothModes('a client that stops reading: short writes, a queue, and a reset that is not counted as an orderly close', async (t, mode) => {
  const chunk = Buffer.alloc(1024 * 1024, 'd');
  const backendPort = await listen(t, net.createServer((s) => {
    s.on('error', () => {});
    let sent = 0;
    const pump = (): void => {
      while (sent < 64 && !s.destroyed) {
        sent++;
        if (!s.write(chunk)) return void s.once('drain', pump);
      }
      s.end();
    };
    pump();
  }));
  // The write queue of the copying path (zero copy queues in a pipe: test/splice.test.ts).
  const rsp = await startRsp(t, { backendAddress: '127.0.0.1', backendPort, triggerMode: mode, zeroCopy: 'off' });
  const s = await connectTo(t, rsp.port);
  s.pause();
  s.on('error', () => {});
  const c = await countersWhen(rsp, (x) => x['peak-queue'] > 1024 * 1024, 'the client\'s queue past the high-water mark');
  t.true(c['short-writes'] >= 1, `short-writes=${c['short-writes']}`);
  t.true(c['bytes-queued'] >= c['peak-queue']);
  t.true(c['bytes-read'] - c['bytes-written'] > 1024 * 1024, 'more read than written: the rest is queued');
  s.resetAndDestroy();
  await once(s, 'close', 'the client socket to close');
  const after = await countersWhen(rsp, () => total(closes(rsp)) >= 2, 'both sides closed');
  t.is(after.closed ?? 0, 0, `a reset is not an orderly close: ${JSON.stringify(closes(rsp))}`);
  t.is(total(closes(rsp)), 2);
});
