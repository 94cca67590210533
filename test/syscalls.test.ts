// A loose regression bound on syscalls per proxied request: 2,000 keep-alive
// requests through rsp (level mode) over 8 persistent connections, counted
// with `perf stat -e raw_syscalls:sys_enter` (or `strace -c -f`) attached to
// rsp's process. The benchmark reports the real figure; this only catches a
// gross regression (a syscall per byte, a busy loop). Skipped when neither
// tool works here.
import test from 'ava';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

const ROOT = path.join(__dirname, '..', '..');
const RSP = path.join(ROOT, 'bin', 'rsp');
const REQUESTS = 2000;
const CONNECTIONS = 8;
const LIMIT = 8;

function which(): 'perf' | 'strace' | null {
  const perf = spawnSync('perf', ['stat', '-x', ',', '-e', 'raw_syscalls:sys_enter', 'true'], { encoding: 'utf8', timeout: 10000 });
  if (perf.status === 0 && /^\d+,/m.test(perf.stderr ?? '')) return 'perf';
  const strace = spawnSync('strace', ['-c', '-o', '/dev/null', 'true'], { timeout: 10000 });
  if (strace.status === 0) return 'strace';
  return null;
}

function exited(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => proc.once('exit', () => resolve()));
}

/** One keep-alive connection that sends a request and waits for its (Content-Length) response. */
async function client(port: number): Promise<{ request(): Promise<void>; close(): void }> {
  const socket = await new Promise<net.Socket>((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
  socket.setNoDelay(true);
  let buffer: Buffer = Buffer.alloc(0);
  let waiting: { resolve: () => void; reject: (e: Error) => void } | null = null;
  const check = (): void => {
    if (!waiting) return;
    const end = buffer.indexOf('\r\n\r\n');
    if (end < 0) return;
    const length = /content-length:\s*(\d+)/i.exec(buffer.subarray(0, end).toString('latin1'));
    const total = end + 4 + Number(length?.[1] ?? 0);
    if (buffer.length < total) return;
    buffer = buffer.subarray(total);
    const w = waiting;
    waiting = null;
    w.resolve();
  };
  socket.on('data', (c: Buffer) => {
    buffer = Buffer.concat([buffer, c]);
    check();
  });
  socket.on('close', () => waiting?.reject(new Error('connection closed')));
  socket.on('error', () => {});
  const request = Buffer.from(`GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
  return {
    request: () =>
      new Promise<void>((resolve, reject) => {
        waiting = { resolve, reject };
        socket.write(request);
      }),
    close: () => socket.destroy(),
  };
}

test('rsp (level) makes fewer than 8 syscalls per keep-alive request', async (t) => {
  t.timeout(30000);
  const tool = which();
  if (tool === null) {
    t.log('neither perf (raw_syscalls:sys_enter) nor strace works here: skipped');
    t.pass();
    return;
  }

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rsp-syscalls-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const backend = http.createServer((_req, res) => res.end('hello'));
  backend.keepAliveTimeout = 60000;
  const backendPort = await new Promise<number>((resolve) => backend.listen(0, '127.0.0.1', () => resolve((backend.address() as net.AddressInfo).port)));
  t.teardown(() => {
    backend.closeAllConnections();
    backend.close();
  });

  const config = path.join(dir, 'rsp.lua');
  fs.writeFileSync(config, `listenPort = "0"\nlistenAddress = "127.0.0.1"\nbackendAddress = "127.0.0.1"\nbackendPort = "${backendPort}"\ntriggerMode = "level"\n`);
  const rsp = spawn(process.execPath, [RSP, '--die-with-parent', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  const counter: { proc: ChildProcess | null } = { proc: null };
  t.teardown(async () => {
    for (const p of [counter.proc, rsp]) {
      if (p && p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
      if (p) await exited(p);
    }
  });
  let out = '';
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`rsp did not start:\n${out}`)), 15000);
    const onData = (c: Buffer): void => {
      out += c.toString();
      const m = /Listening on port (\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    };
    rsp.stdout.on('data', onData);
    rsp.stderr.on('data', onData);
    rsp.on('exit', (code) => reject(new Error(`rsp exited (${code}):\n${out}`)));
  });

  const clients = await Promise.all(Array.from({ length: CONNECTIONS }, () => client(port)));
  const load = (total: number): Promise<void[]> =>
    Promise.all(clients.map(async (c) => {
      for (let i = 0; i < total / CONNECTIONS; i++) await c.request();
    }));
  await load(400); // warm up (JIT) before counting

  const file = path.join(dir, 'count.txt');
  counter.proc = tool === 'perf'
    ? spawn('perf', ['stat', '-x', ',', '-e', 'raw_syscalls:sys_enter', '-o', file, '-p', String(rsp.pid)], { stdio: 'ignore' })
    : spawn('strace', ['-c', '-f', '-o', file, '-p', String(rsp.pid)], { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, tool === 'perf' ? 500 : 1000)); // let it attach
  await load(REQUESTS);
  counter.proc.kill('SIGINT');
  await exited(counter.proc);
  for (const c of clients) c.close();

  const text = fs.readFileSync(file, 'utf8');
  let calls: number;
  if (tool === 'perf') calls = Number(/^(\d+),[^\n]*raw_syscalls:sys_enter/m.exec(text)?.[1]);
  else calls = Number(text.split('\n').find((l) => /\stotal\s*$/.test(l))?.trim().split(/\s+/)[3]);
  t.true(Number.isFinite(calls) && calls > 0, `no count from ${tool}:\n${text}`);
  const perRequest = calls / REQUESTS;
  t.log(`${tool}: ${calls} syscalls for ${REQUESTS} requests = ${perRequest.toFixed(2)} per request`);
  t.true(perRequest < LIMIT, `${perRequest.toFixed(2)} syscalls per request (limit ${LIMIT})`);
});
