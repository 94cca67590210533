// Stopping without cutting anyone short: SIGTERM/SIGINT drain (stop
// accepting, let open connections finish), drainTimeout bounds it (the rest
// are reset), a second signal or SIGQUIT stops at once, drainDelay keeps
// accepting while /healthz already says 503.
import test from 'ava';
import * as http from 'node:http';
import * as net from 'node:net';
import { bothModes, listen, patternBytes, startRsp } from './helpers';
import { startRspLua } from './lua';
import { connectFd, firstByte, readFd } from './sockets';

/** A backend that sends `size` bytes in `parts` writes, `gapMs` apart, then ends. */
function slowBackend(size: number, parts: number, gapMs: number): net.Server {
  return net.createServer((s) => {
    s.on('error', () => {});
    const data = patternBytes(size, 9);
    let i = 0;
    const step = (): void => {
      const end = Math.round(((i + 1) * size) / parts);
      s.write(data.subarray(Math.round((i * size) / parts), end));
      if (++i < parts) setTimeout(step, gapMs);
      else s.end();
    };
    step();
  });
}

function refused(port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.on('connect', () => {
      s.destroy();
      resolve('connected');
    });
    s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
  });
}

bothModes('SIGTERM drains: an in-flight transfer finishes whole, new clients are refused, then rsp exits 0', async (t, mode) => {
  const backendPort = await listen(t, slowBackend(300_000, 6, 150));
  const rsp = await startRsp(t, { backendAddress: '127.0.0.1', backendPort, triggerMode: mode });
  const fd = connectFd(rsp.port);
  // Once the transfer is under way, stop.
  await firstByte(fd);
  const reading = readFd(fd);
  rsp.proc.kill('SIGTERM');
  t.regex(await rsp.waitFor(/Draining: not accepting/), /1 connection still open/);
  t.is(await refused(rsp.port), 'ECONNREFUSED');
  const got = await reading;
  t.is(got.how, 'end');
  t.true(got.bytes.equals(patternBytes(300_000, 9)), `${got.bytes.length} bytes`);
  t.is(await rsp.stop(), 0);
  t.regex(rsp.output(), /SIGTERM: draining/);
  t.notRegex(rsp.output(), /Drain timeout/);
});

test('SIGINT drains too; a second SIGINT stops at once and resets what is open', async (t) => {
  const backendPort = await listen(t, net.createServer((s) => s.write('x'))); // never ends
  const rsp = await startRsp(t, { backendAddress: '127.0.0.1', backendPort });
  const fd = connectFd(rsp.port);
  await firstByte(fd);
  const reading = readFd(fd);
  rsp.proc.kill('SIGINT');
  await rsp.waitFor(/Draining: not accepting/);
  rsp.proc.kill('SIGINT');
  await rsp.waitFor(/SIGINT: stopping now/);
  const got = await reading;
  t.is(got.how, 'ECONNRESET');
  t.is(await rsp.stop(), 0);
});

test('SIGQUIT stops at once, resetting what is open', async (t) => {
  const backendPort = await listen(t, net.createServer((s) => s.write('x')));
  const rsp = await startRsp(t, { backendAddress: '127.0.0.1', backendPort });
  const fd = connectFd(rsp.port);
  await firstByte(fd);
  const reading = readFd(fd);
  rsp.proc.kill('SIGQUIT');
  t.is((await reading).how, 'ECONNRESET');
  t.is(await rsp.stop(), 0);
  t.notRegex(rsp.output(), /Draining/);
});

test('drainTimeout = 0: no drain, what is open is reset at once', async (t) => {
  const backendPort = await listen(t, net.createServer((s) => s.write('x')));
  const rsp = await startRsp(t, { backendAddress: '127.0.0.1', backendPort, drainTimeout: 0 });
  const fd = connectFd(rsp.port);
  await firstByte(fd);
  const reading = readFd(fd);
  rsp.proc.kill('SIGTERM');
  t.is((await reading).how, 'ECONNRESET');
  t.is(await rsp.stop(), 0);
});

function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path, agent: false, timeout: 10000 }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    }).on('error', reject);
  });
}

test('drainDelay: /healthz says 503 at once while rsp still accepts, then the listener closes', async (t) => {
  const backendPort = await listen(t, net.createServer((s) => s.end('hi')));
  const rsp = await startRspLua(t, `listenPort = 0 listenAddress = "127.0.0.1" backendAddress = "127.0.0.1" backendPort = ${backendPort}
stats = { listen = "127.0.0.1:0" } drainDelay = 3000`);
  const statsPort = Number(/Stats on port (\d+)/.exec(await rsp.waitFor(/Stats on port/))![1]);
  t.deepEqual(await get(statsPort, '/healthz'), { status: 200, body: 'ok\n' });
  rsp.proc.kill('SIGTERM');
  await rsp.waitFor(/SIGTERM: draining/);
  t.deepEqual(await get(statsPort, '/healthz'), { status: 503, body: 'draining\n' });
  // Still accepting during the delay (a load balancer is still sending).
  const during = await readFd(connectFd(rsp.port));
  t.is(during.bytes.toString(), 'hi');
  await rsp.waitFor(/Draining: not accepting/);
  t.is(await refused(rsp.port), 'ECONNREFUSED');
  t.is(await rsp.stop(), 0);
});

test('SIGHUP (systemctl reload) on an unchanged file: logged, reloaded, and rsp keeps serving', async (t) => {
  const backendPort = await listen(t, net.createServer((s) => s.end('still here')));
  const rsp = await startRsp(t, { backendAddress: '127.0.0.1', backendPort });
  rsp.proc.kill('SIGHUP');
  await rsp.waitFor(/SIGHUP: reloading the config\./);
  await rsp.waitFor(/Reloaded\./); // the rest of reloading: test/reload.test.ts
  t.is((await readFd(connectFd(rsp.port))).bytes.toString(), 'still here');
  t.is(await rsp.stop(), 0);
});
