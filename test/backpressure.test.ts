// Memory stays bounded when a client (download) or a backend (upload) stops
// reading, everything arrives once it reads again, and two bulk streams share
// the proxy fairly.
import type { ExecutionContext } from 'ava';
import * as crypto from 'node:crypto';
import * as net from 'node:net';
import { bothModes, connectTo, countersOf, listen, once, patternBytes, rss, settle, sha256, startRsp, waitUntil, within } from './helpers';

const CHUNK = Buffer.alloc(64 * 1024, 'x');

/** A backend that streams `limit` bytes to every client as fast as it is allowed to. */
async function bulkBackend(t: ExecutionContext, limit: number, sent: number[]): Promise<number> {
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
  const rsp = await startRsp(t, { backendAddress: '127.0.0.1', backendPort, triggerMode: mode, zeroCopy: 'off' }); // the write queue (zero copy's pipe: test/splice.test.ts)

  // Warm up with a small complete exchange so the baseline includes start-up allocations.
  const warm = await connectTo(t, rsp.port);
  await within(new Promise<void>((resolve) => {
    let got = 0;
    warm.on('data', (c) => {
      got += c.length;
      if (got >= 16 * 1024 * 1024) {
        warm.destroy();
        resolve();
      }
    });
  }), 60000, 'the 16 MB warm-up download');
  const baseline = rss(rsp.pid);

  const stuck = net.connect(rsp.port, '127.0.0.1');
  t.teardown(() => stuck.destroy());
  stuck.pause(); // never read: the download backs up all the way to the backend
  const index = 1;
  await once(stuck, 'connect', 'the stuck client to connect');
  // A stall seen too early only makes the bounds below easier to meet; a
  // proxy without backpressure would not stall short of 300 MB at all.
  const stalledAt = await settle(() => sent[index] ?? 0, 8, 100);
  const grown = rss(rsp.pid) - baseline;
  t.log(`backend managed to send ${(stalledAt / 1048576).toFixed(1)} MB before stalling; proxy RSS grew ${(grown / 1048576).toFixed(1)} MB`);
  t.true(stalledAt < 64 * 1024 * 1024, 'the backend was stopped by backpressure, far short of 300 MB');
  t.true(grown < 16 * 1024 * 1024, `RSS grew by ${grown} bytes`);
  // The queue of one connection passed the high-water mark by at most one read.
  const c = await countersOf(rsp);
  t.true(c['peak-queue'] > 1024 * 1024, `peak queue ${c['peak-queue']}`);
  t.true(c['peak-queue'] <= 1024 * 1024 + 65536, `peak queue ${c['peak-queue']}`);
}, { serial: true });

/**
 * An upload of `pieces` MB from a client that writes as fast as it is let:
 * each 1 MB piece is a pattern stamped with its number (a reordered or
 * repeated piece changes the hash).
 */
function uploader(s: net.Socket, pieces: number): { offered: () => number; waiting: () => boolean; hash: Promise<string> } {
  const base = patternBytes(1024 * 1024, 5);
  const hash = crypto.createHash('sha256');
  let offered = 0;
  let next = 0;
  let blocked = false;
  const done = new Promise<string>((resolve) => {
    const pump = (): void => {
      blocked = false;
      while (next < pieces) {
        const piece = Buffer.from(base);
        piece.writeUInt32LE(next++, 0);
        hash.update(piece);
        offered += piece.length;
        if (!s.write(piece)) {
          blocked = true;
          s.once('drain', pump);
          return;
        }
      }
      s.end();
      resolve(hash.digest('hex'));
    };
    pump();
  });
  return { offered: () => offered, waiting: () => blocked, hash: done };
}

bothModes('upload: a backend that stops reading blocks the client\'s writes, memory stays bounded, and everything arrives once it reads again', async (t, mode) => {
  // Connection 0 warms up (read at once); connection 1 is not read until released.
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  const received: { bytes: number; hash: Promise<string> }[] = [];
  const backendPort = await listen(t, net.createServer((s) => {
    const index = received.length;
    const hash = crypto.createHash('sha256');
    const entry = { bytes: 0, hash: new Promise<string>((resolve) => s.on('end', () => resolve(hash.digest('hex')))) };
    received.push(entry);
    s.pause();
    const read = (): void => {
      s.on('data', (c: Buffer) => {
        entry.bytes += c.length;
        hash.update(c);
      });
      s.resume();
    };
    if (index === 0) read();
    else void released.then(read);
  }));
  const rsp = await startRsp(t, { backendAddress: '127.0.0.1', backendPort, triggerMode: mode });

  const warm = await connectTo(t, rsp.port);
  const warmUp = uploader(warm, 16);
  const warmHash = await within(warmUp.hash, 60000, 'the warm-up upload to be written');
  await waitUntil(() => received.length === 1, 'the warm-up connection at the backend');
  t.is(await within(received[0].hash, 60000, 'the warm-up upload to arrive'), warmHash);
  const baseline = rss(rsp.pid);

  const pieces = 192;
  const client = await connectTo(t, rsp.port);
  const up = uploader(client, pieces);
  await waitUntil(() => received.length === 2, 'the upload connection at the backend');
  const stalledAt = await settle(() => up.offered(), 8, 100);
  const grown = rss(rsp.pid) - baseline;
  t.log(`the client got ${(stalledAt / 1048576).toFixed(1)} MB into its socket before its writes blocked; proxy RSS grew ${(grown / 1048576).toFixed(1)} MB`);
  t.true(up.waiting(), 'the client is waiting for its socket to drain');
  t.true(stalledAt < (pieces * 1024 * 1024) / 2, `the client wrote ${stalledAt} bytes before blocking`);
  t.is(received[1].bytes, 0, 'the backend has read nothing yet');
  t.true(grown < 16 * 1024 * 1024, `RSS grew by ${grown} bytes`);
  const c = await countersOf(rsp);
  t.true(c['peak-queue'] <= 1024 * 1024 + 65536, `peak queue ${c['peak-queue']}`);

  release();
  const sentHash = await within(up.hash, 120000, 'the rest of the upload to be written');
  t.is(await within(received[1].hash, 120000, 'the whole upload to arrive at the backend'), sentHash);
  t.is(received[1].bytes, pieces * 1024 * 1024);
}, { serial: true });

bothModes('a forced pause and resume: a client that stops reading, then reads again, gets every byte in order', async (t, mode) => {
  const body = patternBytes(24 * 1024 * 1024, 23);
  const backendPort = await listen(t, net.createServer((s) => s.once('data', () => s.end(body))));
  // Small water marks: the pause comes after a few hundred KB.
  const rsp = await startRsp(t, { backendAddress: '127.0.0.1', backendPort, triggerMode: mode, highWaterMark: 65536, lowWaterMark: 16384, zeroCopy: 'off' });
  const s = await connectTo(t, rsp.port);
  s.pause();
  s.write('GET');
  // Wait until rsp has queued past the high-water mark for this client: it has stopped reading the backend.
  let c = await countersOf(rsp);
  for (let i = 0; i < 2000 && c['peak-queue'] <= 65536; i++) c = await countersOf(rsp);
  t.true(c['peak-queue'] > 65536, `peak queue ${c['peak-queue']}`);
  t.true(c['peak-queue'] <= 65536 + 65536, `peak queue ${c['peak-queue']}`);
  const readBefore = c['bytes-read'];
  t.true(readBefore < body.length, 'rsp has not read the whole body yet');
  const chunks: Buffer[] = [];
  s.on('data', (d: Buffer) => chunks.push(d));
  s.resume();
  await once(s, 'end', 'the end of the download after the resume', 60000);
  t.is(sha256(Buffer.concat(chunks)), sha256(body));
  c = await countersOf(rsp);
  if (mode === 'level') t.true(c.mod >= 2, 'level: EPOLLIN dropped on the pause and registered again on the resume');
  else t.true(c.deferred >= 1, 'edge: the resumed connection put itself on the ready list');
});

bothModes('two concurrent bulk streams both make progress (fair shares)', async (t, mode) => {
  const sent: number[] = [];
  const backendPort = await bulkBackend(t, 1024 * 1024 * 1024, sent);
  // 1 KB reads make the proxy, not this test process that plays both client
  // and backend, the slowest part, and keep every read full (a short read
  // would end a connection's turn early): the shares then say how the proxy
  // divides its time. (Zero copy off: a splice is not bounded by readBufferSize.)
  const rsp = await startRsp(t, { backendAddress: '127.0.0.1', backendPort, triggerMode: mode, readBufferSize: 1024, zeroCopy: 'off' });
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
    waitUntil(() => total() >= bytes && received[0] > 0 && received[1] > 0, `${bytes} bytes over both streams`, 60000);
  await waitTotal(8 * 1024 * 1024);
  const start = [...received];
  await waitTotal(start[0] + start[1] + 32 * 1024 * 1024);
  const got = [received[0] - start[0], received[1] - start[1]];
  const share = Math.min(...got) / (got[0] + got[1]);
  t.log(`shares: ${(got[0] / 1048576).toFixed(0)} MB and ${(got[1] / 1048576).toFixed(0)} MB (smaller share ${share.toFixed(2)})`);
  t.true(share >= 0.4, `the smaller stream got ${share.toFixed(2)} of the bytes`);
}, { serial: true });
