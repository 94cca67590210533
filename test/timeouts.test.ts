// connectTimeout and idleTimeout: what they cut, and what they must not.
import test, { type ExecutionContext } from 'ava';
import * as net from 'node:net';
import * as libc from '../ffi/libc';
import { createAndBind } from '../src/listener';
import { localAddress } from '../src/netutils';
import { bothModes, connectTo, countersOf, echoBackend, listen, once, readBytes, startRsp, within } from './helpers';

/** Send `text` and wait for the echo of exactly that. */
async function ping(s: net.Socket, text: string): Promise<string> {
  s.write(text);
  return (await readBytes(s, Buffer.byteLength(text), `the echo of "${text}"`)).toString();
}

bothModes('a connection that lives longer than connectTimeout is not cut by the connect timer', async (t, mode) => {
  const connectTimeout = 200;
  const backendPort = await echoBackend(t);
  const rsp = await startRsp(t, { backendAddress: '127.0.0.1', backendPort, triggerMode: mode, connectTimeout }, ['--trace']);
  const s = await connectTo(t, rsp.port);
  const start = Date.now();
  t.is(await ping(s, 'first'), 'first');
  // The connect was in progress, so the timer was armed (else this test proves nothing).
  t.regex(rsp.output(), /connect\(\d+, 127\.0\.0\.1:\d+\) = -1 EINPROGRESS$/m);
  // Keep talking well past the timeout: a timer left running after the
  // connect finished would close the connection with ETIMEDOUT.
  let n = 0;
  while (Date.now() - start < 5 * connectTimeout) {
    t.is(await ping(s, `ping ${n}`), `ping ${n}`);
    n++;
    await new Promise((r) => setTimeout(r, 20));
  }
  // One more after the timer has surely fired (a timer runs at the next loop turn: this ping is one).
  t.is(await ping(s, 'last'), 'last');
  const c = await countersOf(rsp);
  t.is(c.ETIMEDOUT ?? 0, 0, rsp.output().split('\n').filter((l) => l.includes('counters:')).join('\n'));
  t.is(c.connects, 1);
  t.notRegex(rsp.output(), /Could not connect/);
});

/** rsp with `settings`, one client connected through it and echoed once. */
async function echoedClient(t: ExecutionContext, backendPort: number, settings: Record<string, string | number>) {
  const rsp = await startRsp(t, { backendAddress: '127.0.0.1', backendPort, ...settings });
  const s = await connectTo(t, rsp.port);
  s.on('error', () => {});
  t.is(await ping(s, 'hello'), 'hello');
  let closed = false;
  s.once('close', () => (closed = true));
  return { rsp, s, isClosed: () => closed };
}

bothModes('idleTimeout = 0: a silent connection stays open (while one with a timeout is closed)', async (t, mode) => {
  const backendPort = await echoBackend(t);
  const never = await echoedClient(t, backendPort, { triggerMode: mode, idleTimeout: 0 });
  const control = await echoedClient(t, backendPort, { triggerMode: mode, idleTimeout: 200 });
  // Both silent from here. The control connection's close says that its
  // timeout has passed; the other must still be open then.
  await once(control.s, 'close', 'the control connection to be closed by its idle timeout');
  t.is((await countersOf(control.rsp))['idle-timeout'], 2);
  t.false(never.isClosed());
  t.is(await ping(never.s, 'still here'), 'still here');
  t.is((await countersOf(never.rsp))['idle-timeout'] ?? 0, 0);
});

/**
 * A backend on 127.0.0.1 whose accept queue is full, so that it drops new
 * SYNs and a connect to it hangs; `serve()` turns it into an echo server
 * on the same socket (the retransmitted SYNs then get through).
 */
async function hangingBackend(t: ExecutionContext): Promise<{ port: number; serve(): Promise<void> }> {
  const fd = createAndBind('127.0.0.1', 0, 1);
  let owned = true;
  t.teardown(() => {
    if (owned) libc.close(fd);
  });
  const port = localAddress(fd)!.port;
  for (let i = 0; i < 2; i++) {
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => {});
    t.teardown(() => s.destroy());
    await once(s, 'connect', 'a filler of the accept queue to connect');
  }
  return {
    port,
    serve(): Promise<void> {
      owned = false;
      const server = net.createServer((s) => {
        s.on('error', () => {});
        s.pipe(s);
      });
      t.teardown(() => server.close());
      return within(new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ fd }, () => resolve());
      }), 20000, 'the backend to listen on its socket');
    },
  };
}

bothModes('connectTimeout = 0: a connect that hangs is waited for, and completes when the backend accepts again', async (t, mode) => {
  const backend = await hangingBackend(t);
  const rsp = await startRsp(t, { backendAddress: '127.0.0.1', backendPort: backend.port, triggerMode: mode, connectTimeout: 0 });
  const control = await startRsp(t, { backendAddress: '127.0.0.1', backendPort: backend.port, triggerMode: mode, connectTimeout: 200 });
  const s = await connectTo(t, rsp.port);
  s.on('error', () => {});
  let closed = false;
  s.once('close', () => (closed = true));
  s.write('queued while connecting');
  const c2 = await connectTo(t, control.port);
  c2.on('error', () => {});
  await once(c2, 'close', 'the control client to be closed after its connect timeout');
  await control.waitFor(/Could not connect to backend .*: ETIMEDOUT$/);
  // The control's timeout has passed; without one, the client is still waiting.
  t.false(closed);
  const c = await countersOf(rsp);
  t.is(c.connects, 0);
  t.is(c.ETIMEDOUT ?? 0, 0);
  // The backend accepts again: the client's SYN is retransmitted (after 1 s,
  // then 3 s...), the connect completes and the queued bytes come back.
  await backend.serve();
  const echo = await readBytes(s, 'queued while connecting'.length, 'the echo once the connect completes', 60000);
  t.is(echo.toString(), 'queued while connecting');
  t.is((await countersOf(rsp)).connects, 1);
  t.notRegex(rsp.output(), /Could not connect/);
});

bothModes('one-way traffic in either direction keeps a pairing out of the idle timeout', async (t, mode) => {
  // The backend trickles a byte every 50 ms (far inside the 1 s timeout, even
  // on a busy machine) to connections that ask with "down",
  // reads without answering on the others.
  const trickles: NodeJS.Timeout[] = [];
  t.teardown(() => trickles.forEach((x) => clearInterval(x)));
  const backendPort = await listen(t, net.createServer((s) => {
    s.on('error', () => {});
    s.once('data', (d) => {
      if (d.toString() === 'down') trickles.push(setInterval(() => s.write('.'), 50));
    });
  }));
  const rsp = await startRsp(t, { backendAddress: '127.0.0.1', backendPort, triggerMode: mode, idleTimeout: 1000 });
  const open = async (first: string) => {
    const s = await connectTo(t, rsp.port);
    s.on('error', () => {});
    let closed = false;
    s.once('close', () => (closed = true));
    s.write(first);
    return { s, isClosed: () => closed };
  };
  const down = await open('down');
  down.s.resume();
  const up = await open('up');
  trickles.push(setInterval(() => up.s.write('.'), 50));
  // Two silent connections in turn, each closed by the idle timeout: by then
  // at least two timeouts have passed for the trickling ones too.
  for (const name of ['first', 'second']) {
    const silent = await open('silent');
    await once(silent.s, 'close', `the ${name} silent connection to be closed as idle`);
  }
  t.false(down.isClosed(), 'a download trickling a byte every 50 ms is not idle');
  t.false(up.isClosed(), 'an upload trickling a byte every 50 ms is not idle');
  t.is((await countersOf(rsp))['idle-timeout'], 4, 'only the two silent pairings, both sides');
});
