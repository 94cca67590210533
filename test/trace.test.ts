// Trace mode and counters, on a scripted exchange through the real CLI.
import test from 'ava';
import * as net from 'node:net';
import { exchange, listen, startRsp } from './helpers';

function counters(output: string): Record<string, number> {
  const values: Record<string, number> = {};
  for (const line of output.split('\n').filter((l) => l.includes('counters:'))) {
    for (const [, key, value] of line.matchAll(/([\w-]+)=(\d+(?:\.\d+)?)/g)) values[key] = Number(value);
  }
  return values;
}

test('--trace shows each epoll_wait, the events by name, the handler and the syscalls with results', async (t) => {
  const backendPort = await listen(t, net.createServer((s) => s.on('data', (d) => s.end(`echo:${d}`))));
  const rsp = await startRsp(t, { backendAddress: '127.0.0.1', backendPort }, ['--trace']);
  const reply = await exchange(rsp.port, 'hello');
  t.is(reply.toString(), 'echo:hello');
  // Our client's FIN reaches rsp a moment after we saw the end: wait for both closes.
  for (let waited = 0; (rsp.output().match(/close\(\d+\) = 0 \(closed\)/g) ?? []).length < 2; waited += 20) {
    if (waited > 10000) {
      t.fail(`rsp did not close both sides:\n${rsp.output()}`);
      break;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  t.is(await rsp.stop(), 0);
  const out = rsp.output();
  t.regex(out, /^epoll_wait\(max 256, timeout -1\) = 1$/m);
  const listener = /^ {2}fd (\d+) listener 0\.0\.0\.0:(\d+): EPOLLIN$/m.exec(out);
  t.truthy(listener, out);
  t.is(Number(listener![2]), rsp.port);
  const accepted = new RegExp(`^ {4}accept4\\(${listener![1]}\\) = (\\d+)$`, 'm').exec(out);
  t.truthy(accepted, out);
  const client = accepted![1];
  t.regex(out, new RegExp(`^ {4}accept4\\(${listener![1]}\\) = -1 EAGAIN$`, 'm'));
  t.regex(out, new RegExp(`^ {4}epoll_ctl\\(ADD, ${client}, IN\\|PRI\\|RDHUP\\) = 0$`, 'm'));
  const connect = /^ {4}socket\(\) = (\d+); setsockopt\(\d+, TCP_NODELAY\) = 0; connect\(\d+, 127\.0\.0\.1:(\d+)\) = (0|-1 EINPROGRESS)$/m.exec(out);
  t.truthy(connect, out);
  t.is(Number(connect![2]), backendPort);
  const backend = connect![1];
  t.regex(out, new RegExp(`^ {2}fd ${client} client 127\\.0\\.0\\.1:\\d+: EPOLLIN$`, 'm'));
  t.regex(out, new RegExp(`^ {4}read\\(${client}\\) = 5$`, 'm'));
  t.regex(out, new RegExp(`^ {2}fd ${backend} backend 127\\.0\\.0\\.1:${backendPort}: EPOLLIN(\\|EPOLLRDHUP)?$`, 'm'));
  t.regex(out, new RegExp(`^ {4}read\\(${backend}\\) = 10$`, 'm'));
  t.regex(out, new RegExp(`^ {4}write\\(${client}\\) = 10$`, 'm'));
  t.regex(out, new RegExp(`^ {4}close\\(${client}\\) = 0 \\(closed\\)$`, 'm'));
  t.regex(out, new RegExp(`^ {4}close\\(${backend}\\) = 0 \\(closed\\)$`, 'm'));
});

test('trace is off by default: no trace lines', async (t) => {
  const backendPort = await listen(t, net.createServer((s) => s.on('data', (d) => s.end(d))));
  const rsp = await startRsp(t, { backendAddress: '127.0.0.1', backendPort });
  await exchange(rsp.port, 'x');
  await rsp.stop();
  t.notRegex(rsp.output(), /epoll_wait\(|read\(\d/);
});

test('counters add up: bytes read equal bytes written, and every connection is counted', async (t) => {
  const response = Buffer.alloc(3 * 1024 * 1024, 'r');
  const backendPort = await listen(t, net.createServer((s) => s.once('data', () => s.end(response))));
  const rsp = await startRsp(t, { backendAddress: '127.0.0.1', backendPort });
  const n = 5;
  for (let i = 0; i < n; i++) t.is((await exchange(rsp.port, 'request')).length, response.length);
  rsp.proc.kill('SIGUSR2');
  await rsp.waitFor(/counters: closes/);
  t.is(rsp.proc.exitCode, null, 'SIGUSR2 prints counters and rsp keeps running');
  t.is(await rsp.stop(), 0);
  // The five lines printed on the way out.
  const c = counters(rsp.output().split('\n').filter((l) => l.includes('counters:')).slice(-5).join('\n'));
  t.is(c['bytes-read'], n * ('request'.length + response.length));
  t.is(c['bytes-written'], c['bytes-read']);
  t.is(c.accepts, n);
  t.is(c.connects, n);
  t.is(c.closed, 2 * n);
  t.true(c.reads >= n * 3);
  t.true(c.syscalls >= c.calls + c.reads + c.writes);
});
