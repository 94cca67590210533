// A loose regression bound on syscalls per proxied request: 2,000 keep-alive
// requests through rsp (level mode) over 8 persistent connections, counted
// with `perf stat -e raw_syscalls:sys_enter` (or `strace -c -f`) attached to
// rsp's process. The benchmark reports the real figure; this only catches a
// gross regression (a syscall per byte, a busy loop). Declared as skipped
// (a visible skip in ava's summary) when neither tool works here.
import test from 'ava';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { within } from './helpers';

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

/**
 * Resolves once `tool` (pid `counter`) is attached to every thread of `pid`:
 * perf holds one perf_event fd per thread it counts; strace is the tracer of each.
 */
async function attached(tool: 'perf' | 'strace', counter: ChildProcess, pid: number): Promise<void> {
  const start = Date.now();
  for (;;) {
    if (counter.exitCode !== null || counter.signalCode !== null) throw new Error(`${tool} exited before attaching (${counter.exitCode ?? counter.signalCode})`);
    const threads = fs.readdirSync(`/proc/${pid}/task`);
    let ready: boolean;
    if (tool === 'perf') {
      let events = 0;
      for (const fd of fs.readdirSync(`/proc/${counter.pid}/fd`)) {
        try {
          if (fs.readlinkSync(`/proc/${counter.pid}/fd/${fd}`).includes('perf_event')) events++;
        } catch {
          // closed meanwhile
        }
      }
      ready = events >= threads.length;
    } else {
      ready = threads.every((tid) => {
        try {
          return new RegExp(`^TracerPid:\\s+${counter.pid}$`, 'm').test(fs.readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8'));
        } catch {
          return true; // the thread is gone
        }
      });
    }
    if (ready) return;
    if (Date.now() - start > 20000) throw new Error(`${tool} did not attach to all ${threads.length} threads of ${pid} within 20 s`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function exited(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => proc.once('close', () => resolve()));
}

/** One keep-alive connection that sends a request and waits for its (Content-Length) response. */
async function client(port: number): Promise<{ request(): Promise<void>; close(): void }> {
  const socket = await within(new Promise<net.Socket>((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  }), 20000, `a connection to rsp on port ${port}`);
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
      within(new Promise<void>((resolve, reject) => {
        waiting = { resolve, reject };
        socket.write(request);
      }), 20000, 'the response to a keep-alive request'),
    close: () => socket.destroy(),
  };
}

const tool = which();
const title = 'rsp (level) makes fewer than 8 syscalls per keep-alive request';
if (tool === null) test.skip(`${title} (skipped: neither perf with raw_syscalls:sys_enter nor strace works here)`, () => {});
else test(`${title} (counted with ${tool})`, async (t) => {
  t.timeout(60000);

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
    rsp.on('close', (code) => reject(new Error(`rsp exited (${code}):\n${out}`)));
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
  await attached(tool, counter.proc, rsp.pid!);
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
