// Signals: every one rsp answers has its handler from the first line of
// main(), so none of them gets Node's default action: SIGUSR1 would open the
// inspector on 127.0.0.1:9229 (code execution for any local user), SIGUSR2 and
// SIGTERM during a slow config load would kill rsp without a word.
import test, { type ExecutionContext } from 'ava';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { exchange, listen, spawnProcess, startRsp, RSP, tempFile } from './helpers';

/** The TCP ports on which process `pid` itself holds a listening socket (its fds, not the whole namespace's). */
function listeningPorts(pid: number): number[] {
  const inodes = new Set<string>();
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m !== null) inodes.add(m[1]);
    } catch {
      // closed between readdir and readlink
    }
  }
  const ports: number[] = [];
  for (const table of ['tcp', 'tcp6']) {
    for (const line of fs.readFileSync(`/proc/${pid}/net/${table}`, 'utf8').split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      // sl local_address rem_address st ... inode(9); st 0A is LISTEN
      if (fields.length > 9 && fields[3] === '0A' && inodes.has(fields[9])) ports.push(parseInt(fields[1].split(':')[1], 16));
    }
  }
  return ports.sort((a, b) => a - b);
}

test('SIGUSR1 logs "Reopening log files." and opens no debugger: rsp listens on its own port only, and serves', async (t) => {
  const backend = await listen(t, net.createServer((s) => s.end('hi')));
  // One worker: one listening socket.
  const rsp = await startRsp(t, { listenAddress: '127.0.0.1', backendAddress: '127.0.0.1', backendPort: backend, workers: 1 });
  t.deepEqual(listeningPorts(rsp.pid), [rsp.port], 'before the signal');
  rsp.proc.kill('SIGUSR1');
  await rsp.waitFor(/Reopening log files\.$/);
  t.deepEqual(listeningPorts(rsp.pid), [rsp.port], 'after the signal: no inspector port (9229)');
  t.deepEqual(await exchange(rsp.port, ''), Buffer.from('hi'));
  t.deepEqual(listeningPorts(rsp.pid), [rsp.port], 'after a request');
  t.is(await rsp.stop(), 0);
});

/**
 * Start rsp on a config that waits, inside its load, on a FIFO that this
 * test holds open: `signal` is sent while rsp provably runs the config (it
 * cannot leave loadfile() before the FIFO is closed), then the load finishes.
 * The wait is one instruction of a config far shorter than the 10,000
 * instructions between two checks of the config time limit, so it is not
 * taken for an endless loop however long it lasts. The FIFO stays open until
 * `acted` says rsp has answered the signal: a signal reaches Node's event loop
 * through a pipe, and on a busy machine it can come after the load's own
 * message, so without the wait the test would race the scheduler.
 */
type Rsp = ReturnType<typeof spawnProcess>;
async function signalDuringLoad(
  t: ExecutionContext, signal: NodeJS.Signals, backendPort: number,
  acted: (rsp: Rsp, closed: Promise<number | null>) => Promise<unknown> = async () => undefined,
): Promise<{ rsp: Rsp; closed: Promise<number | null> }> {
  const file = tempFile(t, 'rsp.lua', '');
  const fifo = path.join(path.dirname(file), 'wait.fifo');
  execFileSync('mkfifo', [fifo]);
  fs.writeFileSync(file, `print("loading")\nloadfile(${JSON.stringify(fifo)})\n`
    + `listenAddress = "127.0.0.1" listenPort = "0" backendAddress = "127.0.0.1" backendPort = ${backendPort} workers = 1\n`);
  const rsp = spawnProcess(t, process.execPath, [RSP, '--die-with-parent', file]);
  const closed = new Promise<number | null>((resolve) => rsp.proc.on('close', (code) => resolve(code)));
  await rsp.waitFor(/^loading$/);
  // The write end opens (without blocking) once rsp has the read end open.
  let fd = -1;
  for (let waited = 0; fd === -1; waited += 10) {
    try {
      fd = fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENXIO' || waited > 20000 || rsp.proc.exitCode !== null) throw error;
      await new Promise((r) => setTimeout(r, 10));
    }
  }
  rsp.proc.kill(signal);
  await acted(rsp, closed);
  fs.closeSync(fd); // end of file: the config goes on (if rsp still runs)
  return { rsp, closed };
}

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  test(`${signal} while the config loads: one line, exit 0, nothing started`, async (t) => {
    // rsp exits with its config still waiting on the FIFO.
    const { rsp, closed } = await signalDuringLoad(t, signal, 9, async (_, c) => c);
    t.is(await closed, 0, rsp.output());
    t.regex(rsp.output(), new RegExp(`^loading\\n\\[[^\\]]+\\] Stopped by ${signal} before start-up finished\\.\\n$`));
  });
}

test('SIGUSR2 while the config loads is ignored (nothing to count yet): rsp starts and serves', async (t) => {
  const backend = await listen(t, net.createServer((s) => s.end('hi')));
  const { rsp, closed } = await signalDuringLoad(t, 'SIGUSR2', backend);
  const line = await rsp.waitFor(/Listening on port \d+/);
  t.deepEqual(await exchange(Number(/port (\d+)/.exec(line)![1]), ''), Buffer.from('hi'));
  t.regex(rsp.output(), /^loading\n\[[^\]]+\] Started\./, 'no counters before the start line');
  rsp.proc.kill('SIGTERM');
  t.is(await closed, 0, rsp.output());
});

test('SIGUSR1 while the config loads: logged, and rsp starts with no debugger port', async (t) => {
  const backend = await listen(t, net.createServer((s) => s.end('hi')));
  const { rsp, closed } = await signalDuringLoad(t, 'SIGUSR1', backend, (r) => r.waitFor(/Reopening log files\.$/));
  const line = await rsp.waitFor(/Listening on port \d+/);
  const port = Number(/port (\d+)/.exec(line)![1]);
  t.regex(rsp.output(), /^loading\n\[[^\]]+\] Reopening log files\.\n\[[^\]]+\] Started\./);
  t.deepEqual(listeningPorts(rsp.pid), [port]);
  t.deepEqual(await exchange(port, ''), Buffer.from('hi'));
  rsp.proc.kill('SIGTERM');
  t.is(await closed, 0, rsp.output());
});

test('SIGINT alone stops a running rsp: exit 0, counters and "Stopped."', async (t) => {
  const backend = await listen(t, net.createServer((s) => s.end('hi')));
  const rsp = await startRsp(t, { listenAddress: '127.0.0.1', backendAddress: '127.0.0.1', backendPort: backend });
  const closed = new Promise<number | null>((resolve) => rsp.proc.on('close', (code) => resolve(code)));
  rsp.proc.kill('SIGINT');
  t.is(await closed, 0, rsp.output());
  t.regex(rsp.output(), /counters: .*\n\[[^\]]+\] Stopped\.\n$/);
});
