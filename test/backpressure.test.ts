// Memory stays bounded when a client stops reading, and two bulk streams
// share the proxy fairly.
import * as net from 'node:net';
import { bothModes, listen, rss, settle, startRsp } from './helpers';

const CHUNK = Buffer.alloc(64 * 1024, 'x');

/** A backend that streams `limit` bytes to every client as fast as it is allowed to. */
async function bulkBackend(t: Parameters<Parameters<typeof bothModes>[1]>[0], limit: number, sent: number[]): Promise<number> {
  return listen(
    t,
    net.createServer((s) => {
      const index = sent.push(0) - 1;
      const pump = (): void => {
        while (sent[index] < limit && !s.destroyed) {
          sent[index] += CHUNK.length;
          if (!s.write(CHUNK)) {
            s.once('drain', pump);
            return;
          }
        }
        s.end();
      };
      s.on('error', () => {});
      pump();
    }),
  );
}

bothModes('a client that stops reading a 300 MB download does not grow the proxy\'s memory', async (t, mode) => {
  const sent: number[] = [];
  const backendPort = await bulkBackend(t, 300 * 1024 * 1024, sent);
  const rsp = await startRsp(t, { backendAddress: '127.0.0.1', backendPort, triggerMode: mode });

  // Warm up with a small complete exchange so the baseline includes start-up allocations.
  const warm = net.connect(rsp.port, '127.0.0.1');
  await new Promise<void>((resolve) => {
    let got = 0;
    warm.on('data', (c) => {
      got += c.length;
      if (got >= 16 * 1024 * 1024) {
        warm.destroy();
        resolve();
      }
    });
  });
  const baseline = rss(rsp.pid);

  const stuck = net.connect(rsp.port, '127.0.0.1');
  t.teardown(() => stuck.destroy());
  stuck.pause(); // never read: the download backs up all the way to the backend
  const index = 1;
  await new Promise<void>((resolve) => stuck.on('connect', () => resolve()));
  const stalledAt = await settle(() => sent[index] ?? 0, 8, 100);
  const grown = rss(rsp.pid) - baseline;
  t.log(`backend managed to send ${(stalledAt / 1048576).toFixed(1)} MB before stalling; proxy RSS grew ${(grown / 1048576).toFixed(1)} MB`);
  t.true(stalledAt < 64 * 1024 * 1024, 'the backend was stopped by backpressure, far short of 300 MB');
  t.true(grown < 16 * 1024 * 1024, `RSS grew by ${grown} bytes`);
}, { serial: true });

bothModes('two concurrent bulk streams both make progress (fair shares)', async (t, mode) => {
  const sent: number[] = [];
  const backendPort = await bulkBackend(t, 1024 * 1024 * 1024, sent);
  // 1 KB reads make the proxy, not this test process that plays both client
  // and backend, the slowest part, and keep every read full (a short read
  // would end a connection's turn early): the shares then say how the proxy
  // divides its time.
  const rsp = await startRsp(t, { backendAddress: '127.0.0.1', backendPort, triggerMode: mode, readBufferSize: 1024 });
  const received = [0, 0];
  const sockets = [0, 1].map((i) => {
    const s = net.connect(rsp.port, '127.0.0.1');
    s.on('data', (c) => (received[i] += c.length));
    s.on('error', () => {});
    return s;
  });
  t.teardown(() => sockets.forEach((s) => s.destroy()));
  // Measure over a window that starts once both streams are flowing.
  const total = (): number => received[0] + received[1];
  const waitTotal = (bytes: number): Promise<void> =>
    new Promise((resolve) => {
      const check = (): void => (total() >= bytes && received[0] > 0 && received[1] > 0 ? resolve() : void setTimeout(check, 5));
      check();
    });
  await waitTotal(8 * 1024 * 1024);
  const start = [...received];
  await waitTotal(start[0] + start[1] + 32 * 1024 * 1024);
  const got = [received[0] - start[0], received[1] - start[1]];
  const share = Math.min(...got) / (got[0] + got[1]);
  t.log(`shares: ${(got[0] / 1048576).toFixed(0)} MB and ${(got[1] / 1048576).toFixed(0)} MB (smaller share ${share.toFixed(2)})`);
  t.true(share >= 0.4, `the smaller stream got ${share.toFixed(2)} of the bytes`);
}, { serial: true });
