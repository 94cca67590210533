// Shared by the functional tests: write a config, start the real CLI on an
// ephemeral port, start real backends, and clean every one of them up.
import test, { type ExecutionContext } from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as libc from '../ffi/libc';

export const ROOT = path.join(__dirname, '..', '..');
export const RSP = path.join(ROOT, 'bin', 'rsp');
export const MODES = ['level', 'edge'] as const;
export type Mode = (typeof MODES)[number];

/**
 * Declare the same test once per trigger mode. `serial` keeps a measuring test
 * from sharing this process's event loop with the other tests of its file.
 */
export function bothModes(title: string, fn: (t: ExecutionContext, mode: Mode) => Promise<void>, opts: { serial?: boolean } = {}): void {
  for (const mode of MODES) (opts.serial ? test.serial : test)(`${title} (${mode})`, (t) => fn(t, mode));
}

export function tempFile(t: ExecutionContext, name: string, text: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rsp-test-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
}

/** A Lua config from a table of globals (strings quoted, numbers as they are). */
export function luaConfig(settings: Record<string, string | number | boolean>): string {
  return Object.entries(settings)
    .map(([k, v]) => `${k} = ${typeof v === 'string' ? JSON.stringify(v) : String(v)}`)
    .join('\n') + '\n';
}

export interface RunningProcess {
  proc: ChildProcess;
  pid: number;
  port: number;
  /** Everything printed so far, stdout and stderr interleaved. */
  output(): string;
  /** Resolves with the first line matching `re` (already printed or still to come). */
  waitFor(re: RegExp, timeoutMs?: number): Promise<string>;
  /** SIGTERM, then the exit code. */
  stop(): Promise<number | null>;
}

/** Spawn a process and collect its output; it is killed when the test ends. */
export function spawnProcess(t: ExecutionContext, command: string, args: string[], env: NodeJS.ProcessEnv = {}): Omit<RunningProcess, 'port'> & { exited: Promise<number | null> } {
  const proc = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const waiters: { re: RegExp; resolve: (line: string) => void }[] = [];
  const onText = (chunk: Buffer): void => {
    out += chunk.toString();
    for (const w of [...waiters]) {
      const line = out.split('\n').find((l) => w.re.test(l));
      if (line !== undefined) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  };
  proc.stdout!.on('data', onText);
  proc.stderr!.on('data', onText);
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  t.teardown(() => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  });
  return {
    proc,
    pid: proc.pid!,
    exited,
    output: () => out,
    waitFor(re: RegExp, timeoutMs = 20000): Promise<string> {
      const line = out.split('\n').find((l) => re.test(l));
      if (line !== undefined) return Promise.resolve(line);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no line matching ${re} within ${timeoutMs} ms; output:\n${out}`)), timeoutMs);
        waiters.push({ re, resolve: (l) => { clearTimeout(timer); resolve(l); } });
        exited.then((code) => {
          clearTimeout(timer);
          reject(new Error(`process exited (${code}) before printing ${re}; output:\n${out}`));
        });
      });
    },
    async stop(): Promise<number | null> {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      return exited;
    },
  };
}

/** Run `rsp config.lua` (extra CLI args first) and wait for its start line. */
export async function startRsp(t: ExecutionContext, settings: Record<string, string | number | boolean>, extraArgs: string[] = []): Promise<RunningProcess> {
  const file = tempFile(t, 'rsp.lua', luaConfig({ listenPort: '0', ...settings }));
  // --die-with-parent: even if this test process is killed, rsp goes with it.
  const p = spawnProcess(t, process.execPath, [RSP, '--die-with-parent', ...extraArgs, file]);
  const line = await p.waitFor(/Listening on port \d+/);
  const port = Number(/Listening on port (\d+)/.exec(line)![1]);
  return { ...p, port };
}

export function listen(t: ExecutionContext, server: net.Server, host = '127.0.0.1'): Promise<number> {
  const sockets = new Set<net.Socket>();
  server.on('connection', (s) => {
    // rsp resets what is still open when it stops (and cuts with a reset
    // whatever the client cut): a backend's ECONNRESET is not a test failure.
    s.on('error', () => {});
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve((server.address() as net.AddressInfo).port));
  });
}

/** An HTTP backend on an ephemeral port. */
export function httpBackend(t: ExecutionContext, handler: http.RequestListener, host = '127.0.0.1'): Promise<number> {
  return listen(t, http.createServer(handler), host);
}

/** A TCP backend that sends back everything it receives, and ends when the client ends. */
export function echoBackend(t: ExecutionContext, host = '127.0.0.1'): Promise<number> {
  return listen(t, net.createServer((s) => s.pipe(s)), host);
}

export interface Response {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** One HTTP GET on a fresh connection. */
export function get(port: number, urlPath = '/', host = '127.0.0.1'): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host, port, path: urlPath, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

/** Connect, optionally send bytes, and collect everything until the other end closes. */
export function exchange(port: number, send: Buffer | string, opts: { end?: boolean; host?: string } = {}): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, opts.host ?? '127.0.0.1');
    const chunks: Buffer[] = [];
    s.on('connect', () => {
      s.write(send);
      if (opts.end) s.end();
    });
    s.on('data', (c) => chunks.push(c));
    s.on('end', () => resolve(Buffer.concat(chunks)));
    s.on('error', reject);
  });
}

export function sha256(b: Buffer): string {
  return crypto.createHash('sha256').update(b).digest('hex');
}

/** Deterministic pseudo-random bytes (so a mismatch is reproducible). */
export function patternBytes(size: number, seed = 1): Buffer {
  const b = Buffer.allocUnsafe(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b.writeUInt32LE(x >>> 0, Math.min(i, size - 4));
  }
  return b;
}

/** Resident memory of a process, in bytes. */
export function rss(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

/** Poll `probe` until it returns a value `stable` times in a row (e.g. a counter that stopped moving). */
export async function settle<T>(probe: () => T, stable = 5, intervalMs = 100, limitMs = 30000): Promise<T> {
  let last = probe();
  let same = 0;
  const start = Date.now();
  while (same < stable) {
    if (Date.now() - start > limitMs) throw new Error('value never settled');
    await new Promise((r) => setTimeout(r, intervalMs));
    const now = probe();
    same = now === last ? same + 1 : 0;
    last = now;
  }
  return last;
}

/** A connected pair of non-blocking AF_UNIX stream sockets, as raw fds. */
export function socketPair(): [number, number] {
  const fds = Buffer.alloc(8);
  libc.check('socketpair', libc.socketpair(libc.AF_UNIX, libc.SOCK_STREAM | libc.SOCK_NONBLOCK | libc.SOCK_CLOEXEC, 0, fds));
  return [fds.readInt32LE(0), fds.readInt32LE(4)];
}
