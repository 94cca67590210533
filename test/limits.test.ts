// maxConnections through the real CLI: at the limit rsp takes its listeners
// out of the epoll set, so the next client waits in the kernel's listen
// backlog (connected, unread) until one of the others leaves; the global limit,
// a listener's own, and the default derived from the open-files limit.
import test, { type ExecutionContext } from 'ava';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import type * as net from 'node:net';
import { acceptQueue, bothModes, connectTo, countersOf, echoBackend, exchange, readBytes, RSP, spawnProcess, startRsp, tempFile, waitUntil, type RunningProcess } from './helpers';


/** A client that has had one echo through rsp: accepted and paired. */
async function served(t: ExecutionContext, port: number, text: string): Promise<net.Socket> {
  const s = await connectTo(t, port);
  s.write(text);
  t.is((await readBytes(s, text.length, `the echo of ${text}`)).toString(), text);
  return s;
}

bothModes('maxConnections = 2: a third client waits in the backlog, unread, until one of the first two leaves; then it is served', async (t, mode) => {
  const backendPort = await echoBackend(t);
  const rsp = await startRsp(t, { backendAddress: '127.0.0.1', backendPort, triggerMode: mode, maxConnections: 2, workers: 1 });
  const first = await served(t, rsp.port, 'first');
  await served(t, rsp.port, 'second');
  await rsp.waitFor(/\] maxConnections \(2\) reached: not accepting until a connection closes/);
  const third = await connectTo(t, rsp.port); // the kernel completes the handshake
  third.write('third');
  await waitUntil(() => acceptQueue(rsp.port) === 1, 'the third client in the listen backlog');
  // rsp has handled a signal since (its reactor turned), and still has not accepted it.
  t.is((await countersOf(rsp)).accepts, 2);
  t.is(acceptQueue(rsp.port), 1);
  first.destroy();
  t.is((await readBytes(third, 5, 'the echo for the client that waited')).toString(), 'third');
  // Two open again (second and third): the same episode; one more leaves, and it ends.
  third.destroy();
  await rsp.waitFor(/\] Accepting connections again: below maxConnections \(2\)\./);
  // One line as the limit is reached, one as accepting goes on: per episode,
  // not per client (a busy machine may make it two episodes, each with its pair).
  const lines = (re: RegExp): number => rsp.output().split('\n').filter((l) => re.test(l)).length;
  t.true(lines(/maxConnections \(2\) reached/) >= 1, rsp.output());
  await waitUntil(() => lines(/maxConnections \(2\) reached/) === lines(/Accepting connections again: below maxConnections \(2\)/), `a resume line for each limit line:\n${rsp.output()}`);
  t.is((await countersOf(rsp)).accepts, 3);
});

/** rsp with a `listeners` table: its ports in order, from the start line. */
async function startListeners(t: ExecutionContext, lua: string): Promise<{ rsp: Omit<RunningProcess, 'port'>; ports: number[] }> {
  // One worker: with several, each holds its share of a limit (README, "Workers on every core").
  const file = tempFile(t, 'rsp.lua', `workers = 1\n${lua}`);
  const rsp = spawnProcess(t, process.execPath, [RSP, '--die-with-parent', file]);
  const line = await rsp.waitFor(/Listening on ports /);
  return { rsp, ports: /ports ([\d, ]+)\.$/.exec(line)![1].split(', ').map(Number) };
}

test('a listener\'s own maxConnections holds its clients only; the other listener keeps accepting', async (t) => {
  const backendPort = await echoBackend(t);
  const { rsp, ports } = await startListeners(t, `backends = { echo = { "127.0.0.1:${backendPort}" } }
listeners = { { port = "0", address = "127.0.0.1", maxConnections = 1 }, { port = "0", address = "127.0.0.1" } }
`);
  const [limited, free] = ports;
  const first = await served(t, limited, 'first');
  const line = await rsp.waitFor(/maxConnections \(1\) reached/);
  t.regex(line, new RegExp(`\\] listener 127\\.0\\.0\\.1:${limited}: maxConnections \\(1\\) reached: not accepting until a connection closes`));
  const waiting = await connectTo(t, limited);
  waiting.write('waiting');
  await waitUntil(() => acceptQueue(limited) === 1, 'the second client of the limited listener in its backlog');
  // The other listener is not held: served while the first waits.
  await served(t, free, 'other listener');
  t.is(acceptQueue(limited), 1);
  first.end();
  t.is((await readBytes(waiting, 7, 'the echo for the client that waited')).toString(), 'waiting');
  waiting.end();
  await rsp.waitFor(new RegExp(`\\] listener 127\\.0\\.0\\.1:${limited}: accepting connections again: below maxConnections \\(1\\)\\.`));
});

test('the global maxConnections holds every listener', async (t) => {
  const backendPort = await echoBackend(t);
  const { rsp, ports } = await startListeners(t, `backends = { echo = { "127.0.0.1:${backendPort}" } }
listeners = { { port = "0", address = "127.0.0.1" }, { port = "0", address = "127.0.0.1" } }
maxConnections = 1
`);
  const first = await served(t, ports[0], 'first');
  await rsp.waitFor(/\] maxConnections \(1\) reached/);
  const waiting = await connectTo(t, ports[1]);
  waiting.write('waiting');
  await waitUntil(() => acceptQueue(ports[1]) === 1, 'the client of the other listener in its backlog');
  first.destroy();
  t.is((await readBytes(waiting, 7, 'the echo for the client that waited')).toString(), 'waiting');
  waiting.destroy();
  t.is((await exchange(ports[0], 'after', { end: true })).toString(), 'after');
  await rsp.waitFor(/\] Accepting connections again: below maxConnections \(1\)\./);
});

const hasPrlimit = spawnSync('prlimit', ['--version'], { timeout: 10000 }).status === 0;
const withPrlimit = hasPrlimit ? test : (title: string) => test.skip(`${title} (skipped: prlimit from util-linux is not installed)`, () => {});

/** The soft and hard "Max open files" of a process. */
function openFilesLimit(pid: number): { soft: number; hard: number } {
  const line = fs.readFileSync(`/proc/${pid}/limits`, 'utf8').split('\n').find((l) => l.startsWith('Max open files'))!;
  const [soft, hard] = line.replace('Max open files', '').trim().split(/\s+/).map(Number);
  return { soft, hard };
}

withPrlimit('rsp raises its soft open-files limit to the hard one, and the default maxConnections is (soft - 64 - listeners - members) / 3 (zeroCopy "auto": room for pipes)', async (t) => {
  const backendPort = await echoBackend(t);
  const file = tempFile(t, 'rsp.lua', `listenAddress = "127.0.0.1" listenPort = "0" backendAddress = "127.0.0.1" backendPort = "${backendPort}" workers = 1\n`);
  // prlimit execs rsp: same pid. Soft 70, hard 100: raised to 100, so (100 - 64 - 1 - 1) / 3 = 11.
  const p = spawnProcess(t, 'prlimit', ['--nofile=70:100', process.execPath, RSP, '--die-with-parent', file]);
  const port = Number(/Listening on port (\d+)/.exec(await p.waitFor(/Listening on port \d+/))![1]);
  t.deepEqual(openFilesLimit(p.pid), { soft: 100, hard: 100 });
  const clients: net.Socket[] = [];
  for (let i = 0; i < 11; i++) clients.push(await served(t, port, `client ${i}`));
  await p.waitFor(/\] maxConnections \(11\) reached/);
  const waiting = await connectTo(t, port);
  waiting.write('12th');
  await waitUntil(() => acceptQueue(port) === 1, 'the 12th client in the listen backlog');
  clients[0].destroy();
  t.is((await readBytes(waiting, 4, 'the echo for the 12th client')).toString(), '12th');
});

withPrlimit('a maxConnections the open-files limit cannot hold is one warning line at start-up', async (t) => {
  const backendPort = await echoBackend(t);
  const file = tempFile(t, 'rsp.lua', `listenAddress = "127.0.0.1" listenPort = "0" backendAddress = "127.0.0.1" backendPort = "${backendPort}" maxConnections = 100 workers = 1\n`);
  const p = spawnProcess(t, 'prlimit', ['--nofile=100:100', process.execPath, RSP, '--die-with-parent', file]);
  await p.waitFor(/Listening on port \d+/);
  t.regex(p.output(), /\] Warning: maxConnections = 100 needs about 266 file descriptors but the open-files limit is 100: accepts will pause on EMFILE before maxConnections is reached/);
});
