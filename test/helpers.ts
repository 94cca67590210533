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
import { toSockaddr } from '../ffi/sockaddr';
import { localAddress } from '../src/netutils';

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
  /**
   * Resolves with the `count`th complete line matching `re` (already printed or
   * still to come); rejects after `timeoutMs`, or once the process has closed
   * its output without printing it.
   */
  waitFor(re: RegExp, timeoutMs?: number, count?: number): Promise<string>;
  /** SIGTERM, then the exit code (once its output is read to the end). */
  stop(): Promise<number | null>;
  /** Resolves when the process has exited and its stdout and stderr are read to the end. */
  closed: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The exit code, resolved on 'close' (not 'exit': the output is all read by then). */
  exited: Promise<number | null>;
}

/** True while the child has not exited (as far as Node knows). */
export function running(proc: ChildProcess): boolean {
  return proc.exitCode === null && proc.signalCode === null;
}

/**
 * Spawn a process and collect its output; it is killed when the test ends.
 * Its end is taken from 'close', which comes after 'exit' once stdout and
 * stderr have been read to the end: a line printed just before exiting is
 * never missed.
 */
export function spawnProcess(t: ExecutionContext, command: string, args: string[], env: NodeJS.ProcessEnv = {}): Omit<RunningProcess, 'port'> {
  const proc = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  // Complete lines, split as they come (a chunk may end in the middle of
  // one): waiters scan only what is new, so a long trace costs no more than its length.
  const lines: string[] = [];
  let partial = '';
  let isClosed = false;
  const waiters = new Set<() => void>();
  const onText = (chunk: Buffer): void => {
    const text = chunk.toString();
    out += text;
    const parts = (partial + text).split('\n');
    partial = parts.pop()!;
    for (const line of parts) lines.push(line);
    for (const check of [...waiters]) check();
  };
  proc.stdout!.on('data', onText);
  proc.stderr!.on('data', onText);
  const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    proc.on('close', (code, signal) => {
      isClosed = true;
      if (partial !== '') lines.push(partial);
      partial = '';
      for (const check of [...waiters]) check();
      resolve({ code, signal });
    });
    // A spawn failure (ENOENT) comes as 'error', then 'close'.
    proc.on('error', (error) => {
      out += `[spawn error: ${error.message}]\n`;
    });
  });
  const exited = closed.then((c) => c.code);
  t.teardown(async () => {
    // Through the ChildProcess object, and only while it has not exited: a
    // bare pid could belong to another process by now.
    if (running(proc)) proc.kill('SIGKILL');
    await Promise.race([closed, new Promise((r) => setTimeout(r, 5000).unref())]);
  });
  /** The end of the output, for error messages. */
  const tail = (): string => (out.length > 8000 ? `[...]${out.slice(-8000)}` : out);
  return {
    proc,
    pid: proc.pid!,
    closed,
    exited,
    output: () => out,
    waitFor(re: RegExp, timeoutMs = 20000, count = 1): Promise<string> {
      return new Promise((resolve, reject) => {
        let scanned = 0;
        const found: string[] = [];
        const what = `${count > 1 ? `${count} lines` : 'line'} matching ${re}`;
        const check = (): void => {
          for (; scanned < lines.length && found.length < count; scanned++) if (re.test(lines[scanned])) found.push(lines[scanned]);
          if (found.length >= count) {
            done();
            resolve(found[count - 1]);
          } else if (isClosed) {
            done();
            reject(new Error(`process closed its output (exit ${proc.exitCode ?? proc.signalCode}) before printing ${what} (${found.length} seen); output:\n${tail()}`));
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`no ${what} within ${timeoutMs} ms (${found.length} seen); output:\n${tail()}`));
        }, timeoutMs);
        const done = (): void => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    async stop(): Promise<number | null> {
      if (running(proc)) proc.kill('SIGTERM');
      return exited;
    },
  };
}

export interface CliRun {
  code: number | null;
  /** stdout and stderr interleaved as they came, then each apart. */
  out: string;
  stdout: string;
  stderr: string;
}

/**
 * Run the CLI (`rsp --die-with-parent ARGS`) to its end. Resolves on 'close',
 * when both pipes have been read to the end (on 'exit' the last line may
 * still be in the pipe); killed after `limitMs`, which the output then says.
 */
export function runCli(t: ExecutionContext, args: string[], limitMs = 20000): Promise<CliRun> {
  const proc = spawn(process.execPath, [RSP, '--die-with-parent', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let stdout = '';
  let stderr = '';
  proc.stdout!.on('data', (c: Buffer) => {
    out += c.toString();
    stdout += c.toString();
  });
  proc.stderr!.on('data', (c: Buffer) => {
    out += c.toString();
    stderr += c.toString();
  });
  const timer = setTimeout(() => proc.kill('SIGKILL'), limitMs);
  t.teardown(() => {
    clearTimeout(timer);
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  });
  return new Promise((resolve) => {
    proc.on('close', (code, signal) => {
      clearTimeout(timer);
      const killed = signal === null ? '' : `[killed by ${signal}]`;
      resolve({ code, out: out + killed, stdout, stderr: stderr + killed });
    });
  });
}

/**
 * Run `rsp config.lua` (extra CLI args first) and wait for its start line. Listens on 127.0.0.1 unless told otherwise.
 * One worker unless `settings` says `workers`: a test file starts dozens of rsp at once on a 2-core
 * machine, and what most tests check is one reactor's work (test/workers.test.ts and
 * test/reload.test.ts are about several).
 */
export async function startRsp(t: ExecutionContext, settings: Record<string, string | number | boolean>, extraArgs: string[] = []): Promise<RunningProcess> {
  // RSP_TEST_ZERO_COPY=on npm test: the whole suite through splice() (zeroCopy), unless a test sets it.
  const zeroCopy = process.env.RSP_TEST_ZERO_COPY;
  const file = tempFile(t, 'rsp.lua', luaConfig({ listenPort: '0', listenAddress: '127.0.0.1', workers: 1, ...(zeroCopy ? { zeroCopy } : {}), ...settings }));
  // --die-with-parent: even if this test process is killed, rsp goes with it.
  const p = spawnProcess(t, process.execPath, [RSP, '--die-with-parent', ...extraArgs, file]);
  const line = await p.waitFor(/Listening on port \d+/);
  const port = Number(/Listening on port (\d+)/.exec(line)![1]);
  return { ...p, port };
}

/** The counters from the last set of `counters:` lines in `output`, as key -> number. */
export function parseCounters(output: string): Record<string, number> {
  const values: Record<string, number> = {};
  const lines = output.split('\n').filter((l) => l.includes('counters:'));
  // One set is five lines, the last ending in "closes".
  const last = lines.map((l) => l.includes('counters: closes')).lastIndexOf(true);
  for (const line of lines.slice(Math.max(0, last - 4), last + 1)) {
    for (const [, key, value] of line.matchAll(/([\w()-]+)=(\d+(?:\.\d+)?)/g)) values[key] = Number(value);
  }
  return values;
}

/** SIGUSR2, then the counters rsp prints for it. */
export async function countersOf(rsp: RunningProcess): Promise<Record<string, number>> {
  const before = rsp.output().split('\n').filter((l) => l.includes('counters: closes')).length;
  rsp.proc.kill('SIGUSR2');
  await rsp.waitFor(/counters: closes/, 20000, before + 1);
  return parseCounters(rsp.output());
}

/** Rejects with an error naming `what` unless `promise` settles within `ms`. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Poll `condition` every 10 ms until it holds; throws naming `what` after `limitMs`. */
export async function waitUntil(condition: () => boolean, what: string, limitMs = 20000): Promise<void> {
  const start = Date.now();
  while (!condition()) {
    if (Date.now() - start > limitMs) throw new Error(`timed out after ${limitMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Wait for an event on an emitter, with a timeout naming it. */
export function once(emitter: NodeJS.EventEmitter, event: string, what: string, ms = 20000): Promise<unknown[]> {
  return within(new Promise<unknown[]>((resolve) => emitter.once(event, (...args: unknown[]) => resolve(args))), ms, what);
}

/** A connected TCP client (rejects on error or after `ms`); destroyed when the test ends. */
export function connectTo(t: ExecutionContext, port: number, host = '127.0.0.1', opts: { allowHalfOpen?: boolean; ms?: number } = {}): Promise<net.Socket> {
  const s = net.connect({ port, host, allowHalfOpen: opts.allowHalfOpen });
  t.teardown(() => s.destroy());
  return within(new Promise<net.Socket>((resolve, reject) => {
    s.once('connect', () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  }), opts.ms ?? 20000, `a connection to ${host} port ${port}`);
}

/**
 * A TCP port on 127.0.0.1 held by a bound socket that does not listen:
 * connections to it are refused, and no one else can take it. `serve` hands
 * the very socket to a server, which listens on it: no window in which
 * another process could take the port.
 */
export function refusingPort(t: ExecutionContext): { port: number; serve(server: net.Server): Promise<void> } {
  const fd = libc.check('socket', libc.socket(libc.AF_INET, libc.SOCK_STREAM | libc.SOCK_CLOEXEC, 0));
  let owned = true;
  t.teardown(() => {
    if (owned) libc.close(fd);
  });
  const sa = toSockaddr('127.0.0.1', 0);
  libc.check('bind', libc.bind(fd, sa, sa.length));
  const port = localAddress(fd)!.port;
  return {
    port,
    serve(server: net.Server): Promise<void> {
      owned = false;
      t.teardown(() => {
        if (server instanceof http.Server) server.closeAllConnections();
        server.close();
      });
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen({ fd }, () => resolve());
      });
    },
  };
}

export function listen(t: ExecutionContext, server: net.Server, host = '127.0.0.1'): Promise<number> {
  const sockets = new Set<net.Socket>();
  server.on('connection', (s) => {
    // rsp resets what is still open when it stops (and cuts with a reset
    // whatever the client cut): a backend's ECONNRESET is not a test failure.
    s.on('error', () => {});
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    // A reset (rsp killed at the end of a test, a client that resets) must
    // not become an uncaught error that takes the whole test file down.
    s.on('error', () => {});
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

/** One HTTP GET on a fresh connection; fails naming the request if it is not complete within `ms`. */
export function get(port: number, urlPath = '/', host = '127.0.0.1', ms = 20000): Promise<Response> {
  let req: http.ClientRequest;
  return within(new Promise<Response>((resolve, reject) => {
    req = http.get({ host, port, path: urlPath, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
  }), ms, `the response to GET ${urlPath} from ${host} port ${port}`).finally(() => req.destroy());
}

/**
 * Connect, optionally send bytes, and collect everything until the other end
 * closes; fails naming what it waited for if that takes more than `ms`.
 */
export function exchange(port: number, send: Buffer | string, opts: { end?: boolean; host?: string; ms?: number } = {}): Promise<Buffer> {
  const host = opts.host ?? '127.0.0.1';
  const s = net.connect(port, host);
  return within(new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    s.on('connect', () => {
      s.write(send);
      if (opts.end) s.end();
    });
    s.on('data', (c) => chunks.push(c));
    s.on('end', () => resolve(Buffer.concat(chunks)));
    s.on('error', reject);
  }), opts.ms ?? 20000, `the end of the stream from ${host} port ${port}`).finally(() => s.destroy());
}

/** Everything `s` receives until its peer ends the stream (or `ms` passes: an error naming `what`). */
export function readToEnd(s: net.Socket, what: string, ms = 20000): Promise<Buffer> {
  return within(new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.once('end', () => resolve(Buffer.concat(chunks)));
    s.once('error', reject);
  }), ms, what);
}

/** Reads from `s` until `n` bytes have arrived (more may follow). */
export function readBytes(s: net.Socket, n: number, what: string, ms = 20000): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let got = 0;
  let onData!: (c: Buffer) => void;
  let onError!: (e: Error) => void;
  let onEnd!: () => void;
  return within(new Promise<Buffer>((resolve, reject) => {
    onData = (c: Buffer): void => {
      chunks.push(c);
      got += c.length;
      if (got >= n) resolve(Buffer.concat(chunks));
    };
    onError = reject;
    onEnd = (): void => reject(new Error(`stream ended after ${got} of ${n} bytes (${what})`));
    s.on('data', onData);
    s.on('error', onError);
    s.on('end', onEnd);
  }), ms, what).finally(() => {
    s.off('data', onData);
    s.off('error', onError);
    s.off('end', onEnd);
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

/** File descriptors a process holds now. */
export function fdCount(pid: number): number {
  return fs.readdirSync(`/proc/${pid}/fd`).length;
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
    if (Date.now() - start > limitMs) throw new Error(`value never settled within ${limitMs} ms (last: ${String(last)})`);
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

/** Connections completed by the kernel and not yet accepted on 127.0.0.1:`port` (rx_queue of the LISTEN line in /proc/net/tcp). */
export function acceptQueue(port: number): number {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  for (const line of fs.readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length > 4 && f[1] === `0100007F:${hexPort}` && f[3] === '0A') return parseInt(f[4].split(':')[1], 16);
  }
  throw new Error(`no listener on 127.0.0.1:${port} in /proc/net/tcp`);
}
