// Trace mode and counters, on scripted exchanges through the real CLI.
import test from 'ava';
import * as crypto from 'node:crypto';
import * as net from 'node:net';
import { bothModes, connectTo, countersOf, exchange, listen, once, parseCounters, patternBytes, settle, sha256, startRsp } from './helpers';

/** Lines printed by the trace (log lines start with a timestamp in brackets). */
function traceLines(output: string): string[] {
  return output.split('\n').filter((l) => l !== '' && !l.startsWith('['));
}

/** System calls as the trace shows them: `name(args) = result`, several per line for a connect. */
function tracedCalls(output: string): string[] {
  return traceLines(output).flatMap((l) => [...l.matchAll(/\b([a-z_0-9]+)\([^()]*\) = /g)].map((m) => m[1]));
}

bothModes('--trace shows each epoll_wait, the events by name, the handler and the syscalls with results', async (t, mode) => {
  const backendPort = await listen(t, net.createServer((s) => s.on('data', (d) => s.end(`echo:${d}`))));
  const rsp = await startRsp(t, { backendAddress: '127.0.0.1', backendPort, triggerMode: mode }, ['--trace']);
  const reply = await exchange(rsp.port, 'hello');
  t.is(reply.toString(), 'echo:hello');
  // Our client's FIN reaches rsp a moment after we saw the end: wait for both closes.
  await rsp.waitFor(/close\(\d+\) = 0 \(closed\)/, 20000, 2);
  t.is(await rsp.stop(), 0);
  const out = rsp.output();
  t.regex(out, /^epoll_wait\(max 256, timeout -1\) = 1$/m);
  const listener = /^ {2}fd (\d+) listener 127\.0\.0\.1:(\d+): EPOLLIN$/m.exec(out);
  t.truthy(listener, out);
  t.is(Number(listener![2]), rsp.port);
  const accepted = new RegExp(`^ {4}accept4\\(${listener![1]}\\) = (\\d+)$`, 'm').exec(out);
  t.truthy(accepted, out);
  const client = accepted![1];
  t.regex(out, new RegExp(`^ {4}accept4\\(${listener![1]}\\) = -1 EAGAIN$`, 'm'));
  const et = mode === 'edge' ? '\\|ET' : '';
  const connect = /^ {4}socket\(\) = (\d+); setsockopt\(\d+, TCP_NODELAY\) = 0; connect\(\d+, 127\.0\.0\.1:(\d+)\) = (0|-1 EINPROGRESS)$/m.exec(out);
  t.truthy(connect, out);
  t.is(Number(connect![2]), backendPort);
  const backend = connect![1];
  if (mode === 'level') {
    t.regex(out, new RegExp(`^ {4}epoll_ctl\\(ADD, ${client}, IN\\|PRI\\|RDHUP\\) = 0$`, 'm'));
  } else {
    // Edge: registered once for everything, never modified.
    t.regex(out, new RegExp(`^ {4}epoll_ctl\\(ADD, ${client}, IN\\|PRI\\|OUT\\|RDHUP${et}\\) = 0$`, 'm'));
    t.regex(out, new RegExp(`^ {4}epoll_ctl\\(ADD, ${backend}, IN\\|PRI\\|OUT\\|RDHUP${et}\\) = 0$`, 'm'));
    t.notRegex(out, /epoll_ctl\(MOD/);
  }
  t.regex(out, new RegExp(`^ {2}fd ${client} client 127\\.0\\.0\\.1:\\d+: EPOLLIN(\\|EPOLLOUT)?$`, 'm'));
  t.regex(out, new RegExp(`^ {4}read\\(${client}\\) = 5$`, 'm'));
  t.regex(out, new RegExp(`^ {2}fd ${backend} backend 127\\.0\\.0\\.1:${backendPort}: EPOLLIN(\\|EPOLLOUT)?(\\|EPOLLRDHUP)?$`, 'm'));
  t.regex(out, new RegExp(`^ {4}read\\(${backend}\\) = 10$`, 'm'));
  t.regex(out, new RegExp(`^ {4}write\\(${client}\\) = 10$`, 'm'));
  t.regex(out, new RegExp(`^ {4}close\\(${client}\\) = 0 \\(closed\\)$`, 'm'));
  t.regex(out, new RegExp(`^ {4}close\\(${backend}\\) = 0 \\(closed\\)$`, 'm'));
});

bothModes('trace is off by default: no trace lines', async (t, mode) => {
  const backendPort = await listen(t, net.createServer((s) => s.on('data', (d) => s.end(d))));
  const rsp = await startRsp(t, { backendAddress: '127.0.0.1', backendPort, triggerMode: mode });
  t.is((await exchange(rsp.port, 'x')).toString(), 'x');
  t.is(await rsp.stop(), 0);
  t.regex(rsp.output(), /Stopped\./);
  t.deepEqual(traceLines(rsp.output()), []);
});

bothModes('counters add up: bytes, connections, and every system call the trace shows', async (t, mode) => {
  const response = Buffer.alloc(3 * 1024 * 1024, 'r');
  const backendPort = await listen(t, net.createServer((s) => s.once('data', () => s.end(response))));
  // The copying path's reads and writes (zero copy's splices: test/splice.test.ts).
  const rsp = await startRsp(t, { backendAddress: '127.0.0.1', backendPort, triggerMode: mode, zeroCopy: 'off' }, ['--trace']);
  const n = 5;
  for (let i = 0; i < n - 1; i++) t.is((await exchange(rsp.port, 'request')).length, response.length);
  await countersOf(rsp);
  // SIGUSR2 printed the counters, and rsp keeps serving.
  t.is((await exchange(rsp.port, 'request')).length, response.length);
  await rsp.waitFor(/close\(\d+\) = 0 \(closed\)/, 20000, 2 * n);
  t.is(await rsp.stop(), 0);
  const out = rsp.output();
  const c = parseCounters(out);
  t.is(c['bytes-read'], n * ('request'.length + response.length));
  t.is(c['bytes-written'], c['bytes-read']);
  t.is(c.accepts, n);
  t.is(c.connects, n);
  t.is(c.closed, 2 * n);
  // Counted independently: one trace line per call.
  const calls = tracedCalls(out);
  const count = (name: string): number => calls.filter((x) => x === name).length;
  const lines = traceLines(out);
  t.is(c.calls, count('epoll_wait'));
  t.is(c['accept-calls'], count('accept4'));
  t.is(c.reads, lines.filter((l) => /^ {4}read\(\d+\) = /.test(l) && !l.includes('message from the main thread')).length);
  t.is(c.writes, count('write'));
  t.is(c.add, lines.filter((l) => /epoll_ctl\(ADD,/.test(l)).length);
  t.is(c.mod, lines.filter((l) => /epoll_ctl\(MOD,/.test(l)).length);
  t.is(c.del, lines.filter((l) => /epoll_ctl\(DEL,/.test(l)).length);
  t.is(c.syscalls, calls.length, `calls by name: ${JSON.stringify(Object.fromEntries([...new Set(calls)].map((x) => [x, count(x)])))}`);
});

test('edge mode: a connection that spends its read budget goes on the ready list and is served from it', async (t) => {
  const body = patternBytes(4 * 1024 * 1024, 21);
  const backendPort = await listen(t, net.createServer((s) => s.once('data', () => s.end(body))));
  const rsp = await startRsp(t, { backendAddress: '127.0.0.1', backendPort, triggerMode: 'edge', readBudget: 2, readBufferSize: 1024, zeroCopy: 'off' }, ['--trace']);
  const got = await exchange(rsp.port, 'GET');
  t.is(sha256(got), sha256(body));
  await rsp.waitFor(/^ {4}read budget of 2 spent: on the ready list for the next turn, after the others$/);
  await rsp.waitFor(new RegExp(`^ {2}fd \\d+ backend 127\\.0\\.0\\.1:${backendPort}: EPOLLIN(\\|\\w+)* \\(from the ready list\\)$`));
  // The trace is written by the worker and the counters by the main thread:
  // a counters line can overtake the trace of the last turns, so wait until
  // the trace has stopped growing (no traffic is left) before asking.
  await settle(() => rsp.output().length, 5, 100, 20000);
  const c = await countersOf(rsp);
  t.true(c.deferred > 0);
  // Every spent budget put the connection on the ready list once (every one
  // the trace shows: on a loaded machine the trace may drop lines, and says so).
  const shown = (rsp.output().match(/read budget of 2 spent/g) ?? []).length;
  if (/lines dropped/.test(rsp.output())) t.true(c.deferred >= shown);
  else t.is(c.deferred, shown);
});

test('edge mode: trace output that cannot keep up is dropped and counted, and the proxy carries on', async (t) => {
  // 128 MB in 1 KB reads, no read budget (long turns: many lines per flush).
  const piece = patternBytes(1024 * 1024, 22);
  const pieces = 128;
  const backendPort = await listen(t, net.createServer((s) => {
    s.on('error', () => {});
    s.once('data', () => {
      let sent = 0;
      const pump = (): void => {
        while (sent < pieces) {
          sent++;
          if (!s.write(piece)) return void s.once('drain', pump);
        }
        s.end();
      };
      pump();
    });
  }));
  const rsp = await startRsp(t, { backendAddress: '127.0.0.1', backendPort, triggerMode: 'edge', readBufferSize: 1024, readBudget: 0, zeroCopy: 'off' }, ['--trace']);
  // Stop reading rsp's stdout: the pipe fills, the trace's writes get EAGAIN.
  rsp.proc.stdout!.pause();
  const s = await connectTo(t, rsp.port);
  const hash = crypto.createHash('sha256');
  let received = 0;
  s.on('data', (c: Buffer) => {
    hash.update(c);
    received += c.length;
  });
  s.write('GET');
  await once(s, 'end', 'the end of the 128 MB download with the trace stuck', 120000);
  const expected = crypto.createHash('sha256');
  for (let i = 0; i < pieces; i++) expected.update(piece);
  t.is(received, pieces * piece.length);
  t.is(hash.digest('hex'), expected.digest('hex'), 'every byte arrived although the trace could not be written');
  rsp.proc.stdout!.resume();
  // What the trace still holds goes out a pipeful per loop turn: give it turns
  // (SIGUSR2 wakes the worker) until the note about the dropped lines is out.
  const dropped = /^\[trace: \d+ lines dropped, output could not keep up\]$/m;
  for (let i = 0; i < 1000 && !dropped.test(rsp.output()); i++) await countersOf(rsp);
  const line = await rsp.waitFor(dropped, 1000);
  t.true(Number(/\d+/.exec(line)![0]) > 0, line);
});
