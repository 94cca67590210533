// A stream that is cut must look cut to the peer: a reset, never a FIN that
// makes it look complete - after every byte that came before the cut.
import test, { type ExecutionContext } from 'ava';
import * as net from 'node:net';
import * as libc from '../ffi/libc';
import { bothModes, listen, patternBytes, refusingPort, startRsp } from './helpers';
import { acknowledged, connectFd, firstByte, readFd, takeOver, writeFd, type Received } from './sockets';

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

const payload = patternBytes(100 * 1024, 7);

bothModes('a backend that resets after 100 KB: the client gets the 100 KB, then a reset', async (t, mode) => {
  const backendPort = await listen(t, net.createServer((s) => {
    s.write(payload);
    void acknowledged(s).then(() => s.resetAndDestroy());
  }));
  const rsp = await startRsp(t, { backendAddress: '127.0.0.1', backendPort, triggerMode: mode });
  for (let run = 0; run < 3; run++) {
    const got = await readFd(connectFd(rsp.port));
    t.is(got.how, 'ECONNRESET', `run ${run}`);
    t.true(got.bytes.equals(payload), `run ${run}: ${got.bytes.length} bytes`);
  }
});

bothModes('a backend that sends and resets before rsp has even seen its connect complete: the client still gets the bytes, then a reset', async (t, mode) => {
  let rsp!: Awaited<ReturnType<typeof startRsp>>;
  const backendPort = await listen(t, net.createServer((s) => {
    // rsp is stopped from here on: the connect completes, the bytes are
    // acknowledged by rsp's kernel and the reset arrives, all before rsp looks.
    rsp.proc.kill('SIGSTOP');
    s.write(payload);
    void acknowledged(s).then(() => {
      s.resetAndDestroy();
      rsp.proc.kill('SIGCONT');
    });
  }));
  rsp = await startRsp(t, { backendAddress: '127.0.0.1', backendPort, triggerMode: mode, trace: true });
  t.teardown(() => rsp.proc.kill('SIGCONT'));
  const got = await readFd(connectFd(rsp.port));
  t.is(got.how, 'ECONNRESET');
  t.true(got.bytes.equals(payload), `${got.bytes.length} bytes`);
});

bothModes('a backend that resets while the client is not reading: the client still gets every byte, then a reset', async (t, mode) => {
  const big = patternBytes(3 * 1024 * 1024, 3);
  let resetDone!: () => void;
  const reset = new Promise<void>((r) => (resetDone = r));
  const backendPort = await listen(t, net.createServer((s) => {
    s.write(big);
    void acknowledged(s).then(() => {
      s.resetAndDestroy();
      resetDone();
    });
  }));
  // Small queues: rsp is paused by backpressure, with bytes still in its backend socket, when the reset comes.
  const rsp = await startRsp(t, { backendAddress: '127.0.0.1', backendPort, triggerMode: mode, highWaterMark: 65536, lowWaterMark: 16384 });
  // The client reads nothing until the backend has reset (its bytes were all acknowledged by rsp's kernel first).
  const got = await readFd(connectFd(rsp.port), { limitMs: 30000, hold: reset });
  t.is(got.how, 'ECONNRESET');
  t.true(got.bytes.equals(big), `${got.bytes.length} of ${big.length} bytes`);
});

bothModes('a client that resets after uploading 100 KB: the backend gets the 100 KB, then a reset', async (t, mode) => {
  const received: Promise<Received>[] = [];
  const backendPort = await listen(t, net.createServer({ pauseOnConnect: true }, (s) => received.push(readFd(takeOver(s)))));
  const rsp = await startRsp(t, { backendAddress: '127.0.0.1', backendPort, triggerMode: mode });
  for (let run = 0; run < 3; run++) {
    const c = await connect(rsp.port);
    c.on('error', () => {});
    c.write(payload);
    await acknowledged(c);
    c.resetAndDestroy();
    while (received.length <= run) await new Promise((r) => setTimeout(r, 5));
    const got = await received[run];
    t.is(got.how, 'ECONNRESET', `run ${run}`);
    t.true(got.bytes.equals(payload), `run ${run}: ${got.bytes.length} bytes`);
  }
});

bothModes('no backend: the client gets a reset, not an empty clean end', async (t, mode) => {
  const { port } = refusingPort(t);
  const rsp = await startRsp(t, { backendAddress: '127.0.0.1', backendPort: port, triggerMode: mode });
  const c = connectFd(rsp.port);
  // The reset may come before the write: then the write reports it (and
  // takes the error, so a read after it would see a 0).
  const wrote = await writeFd(c, Buffer.from('hello')).then(() => 'written', (e: NodeJS.ErrnoException) => e.code);
  const result = wrote === 'written' ? await readFd(c) : { how: String(wrote), bytes: Buffer.alloc(0) };
  if (wrote !== 'written') libc.close(c);
  t.true(result.how === 'ECONNRESET' || result.how === 'EPIPE', result.how);
  t.is(result.bytes.length, 0);
});

bothModes('the idle timeout resets both sides', async (t, mode) => {
  const backendSide: Promise<Received>[] = [];
  const backendPort = await listen(t, net.createServer({ pauseOnConnect: true }, (s) => backendSide.push(readFd(takeOver(s)))));
  const rsp = await startRsp(t, { backendAddress: '127.0.0.1', backendPort, triggerMode: mode, idleTimeout: 300 });
  const c = connectFd(rsp.port);
  await writeFd(c, Buffer.from('one request, then silence'));
  const got = await readFd(c);
  t.is(got.how, 'ECONNRESET');
  while (backendSide.length === 0) await new Promise((r) => setTimeout(r, 5));
  const backend = await backendSide[0];
  t.is(backend.how, 'ECONNRESET');
  t.is(backend.bytes.toString(), 'one request, then silence');
  rsp.proc.kill('SIGUSR2');
  t.regex(await rsp.waitFor(/counters: closes/), /idle-timeout=2/);
});

/**
 * Read `socket` slowly: one chunk, then a pause of `gapMs`, until it ends.
 * Progress is steady, so an idle timeout longer than the gap must not cut it.
 */
function readSlowly(fd: number, gapMs: number): Promise<Received> {
  return readFd(fd, { limitMs: 60000, gapMs });
}

async function slowTransfer(t: ExecutionContext, mode: 'level' | 'edge', direction: 'download' | 'upload'): Promise<void> {
  const data = patternBytes(1024 * 1024, 11);
  const atBackend: Promise<Received>[] = [];
  const backendPort = await listen(t, net.createServer({ pauseOnConnect: true }, (s) => {
    if (direction === 'download') s.end(data);
    else atBackend.push(readSlowly(takeOver(s), 100));
  }));
  // The reader takes what arrives every 100 ms (with a small receive buffer
  // on the client), so most of the time everything rsp has is in the
  // kernel's send buffer and rsp neither reads nor writes for longer than
  // idleTimeout. The reader's steady progress shows in the kernel's send
  // queue going down: no cut.
  const rsp = await startRsp(t, { backendAddress: '127.0.0.1', backendPort, triggerMode: mode, idleTimeout: 1500, highWaterMark: 262144, lowWaterMark: 65536 });
  if (direction === 'download') {
    const got = await readSlowly(connectFd(rsp.port, { receiveBuffer: 16384 }), 100);
    t.is(got.how, 'end');
    t.true(got.bytes.equals(data), `${got.bytes.length} of ${data.length} bytes`);
  } else {
    const c = await connect(rsp.port);
    c.on('error', () => {});
    c.end(data);
    c.resume();
    while (atBackend.length === 0) await new Promise((r) => setTimeout(r, 5));
    const got = await atBackend[0];
    t.is(got.how, 'end');
    t.true(got.bytes.equals(data), `${got.bytes.length} of ${data.length} bytes`);
  }
  rsp.proc.kill('SIGUSR2');
  t.notRegex(await rsp.waitFor(/counters: closes/), /idle-timeout/);
}

bothModes('a slow but steady download is not cut by the idle timeout', (t, mode) => slowTransfer(t, mode, 'download'));
bothModes('a slow but steady upload is not cut by the idle timeout', (t, mode) => slowTransfer(t, mode, 'upload'));

bothModes('a drain that runs out of time resets the streams still in flight instead of ending them cleanly', async (t, mode) => {
  const backendPort = await listen(t, net.createServer((s) => s.write(patternBytes(8 * 1024 * 1024, 5))));
  const rsp = await startRsp(t, { backendAddress: '127.0.0.1', backendPort, triggerMode: mode, drainTimeout: 300 });
  const c = connectFd(rsp.port);
  // Once the first bytes are through, stop rsp; then read everything.
  await firstByte(c);
  rsp.proc.kill('SIGTERM');
  const result = await readFd(c);
  const code = await rsp.stop();
  t.is(result.how, 'ECONNRESET', `${result.bytes.length} bytes, then ${result.how}\n${rsp.output()}`);
  t.is(code, 0);
});
