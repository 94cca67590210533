// The epoll lab: a fixed set of experiments that show what level- and
// edge-triggered epoll do, measured on rsp itself.
//
//   npm run lab                      # everything, under a minute on 2 cores
//   npm run lab -- --quick           # shorter runs, under 30 seconds
//   npm run lab -- --only 4,5        # selected experiments
//   npm run lab -- --json out.json   # also write the raw results
//
// The system under test is the real rsp CLI (bin/rsp), started as a child
// process with a Lua config written for each row. Its own counters (printed
// on SIGUSR2 and on exit, src/counters.ts) give the system-call and wake-up
// figures. The other two parties, the client and the backend, are played by
// this process on the project's own reactor (src/reactor.ts, with
// src/connection.ts, src/listener.ts and src/netutils.ts): a level-triggered
// Reactor that the lab drives in short slices so that its own Node event loop
// (child output, signals, Ctrl-C) keeps turning in between.
//
// Every rsp it starts is killed on the way out: after each row, on errors,
// on Ctrl-C and on SIGTERM.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as libc from '../ffi/libc';
import { toSockaddr } from '../ffi/sockaddr';
import { Connection, type ConnectionOwner, type ConnectionSettings } from '../src/connection';
import { Listener } from '../src/listener';
import { startConnect } from '../src/netutils';
import { Reactor, type Handler } from '../src/reactor';

const ROOT = path.join(__dirname, '..', '..');
const RSP_BIN = path.join(ROOT, 'bin', 'rsp');
const HOST = '127.0.0.1';
const MB = 1_000_000;

export type Mode = 'level' | 'edge';
export const MODES: readonly Mode[] = ['level', 'edge'];

/** Who plays client and backend (printed with the results). */
export const SIDES =
  'client and backend: this lab process, on rsp\'s own reactor (src/reactor.ts + src/connection.ts + src/listener.ts, level-triggered); ' +
  'system under test: the rsp CLI (bin/rsp) as a child process, one per row, on 127.0.0.1.';

// ---------------------------------------------------------------- parameters

export interface LabParams {
  quick: boolean;
  /** 1: bytes sent through rsp on one connection. */
  bulkBytes: number;
  /** 2 and 6b: persistent connections, warm-up and measured request/response pairs. */
  keepAliveConns: number;
  keepAliveWarmup: number;
  keepAliveRequests: number;
  /**
   * 3: rsp's readBufferSize: small enough that rsp is the slowest part and
   * finds a backend socket never empty when it comes back to it (with 4 KB,
   * rsp's short-read rule often finds it empty, and the shares then follow
   * how fast TCP refills each socket rather than how rsp takes turns).
   */
  fairReadSize: number;
  /** 3: both streams flowing and at least this many bytes before the window opens (or fairStartMs passed). */
  fairWarmBytes: number;
  fairStartMs: number;
  /** 3: the window lasts this many ms (or until this many bytes, whichever first). */
  fairWindowBytes: number;
  fairWindowMs: number;
  /** 4: connections opened at once, how long to wait for them, how long after the 51st. */
  acceptConns: number;
  strandTimeoutMs: number;
  kickTimeoutMs: number;
  /** 5: size of the response, and how long to wait for it. */
  readOnceBytes: number;
  readOnceTimeoutMs: number;
  /** 6a: short connections (one request each), this many at a time. */
  shortConns: number;
  shortConcurrency: number;
  /** 6b: keep-alive requests, then an idle pause with the connections open. */
  wakeRequests: number;
  idleMs: number;
  /** Any experiment: no progress for this long means rsp is stuck (reported, never waited out). */
  stallMs: number;
}

export const FULL: LabParams = {
  quick: false,
  bulkBytes: 200 * MB,
  keepAliveConns: 16,
  keepAliveWarmup: 2000,
  keepAliveRequests: 20000,
  fairReadSize: 1024,
  fairWarmBytes: 8 * MB,
  fairStartMs: 2000,
  fairWindowBytes: 2000 * MB,
  fairWindowMs: 2500,
  acceptConns: 50,
  strandTimeoutMs: 2000,
  kickTimeoutMs: 1000,
  readOnceBytes: 1024 * 1024,
  readOnceTimeoutMs: 2000,
  shortConns: 2000,
  shortConcurrency: 16,
  wakeRequests: 5000,
  idleMs: 1000,
  stallMs: 3000,
};

export const QUICK: LabParams = {
  quick: true,
  bulkBytes: 50 * MB,
  keepAliveConns: 16,
  keepAliveWarmup: 500,
  keepAliveRequests: 3000,
  fairReadSize: 1024,
  fairWarmBytes: 4 * MB,
  fairStartMs: 600,
  fairWindowBytes: 500 * MB,
  fairWindowMs: 600,
  acceptConns: 50,
  strandTimeoutMs: 1000,
  kickTimeoutMs: 500,
  readOnceBytes: 1024 * 1024,
  readOnceTimeoutMs: 1000,
  shortConns: 300,
  shortConcurrency: 16,
  wakeRequests: 1000,
  idleMs: 300,
  stallMs: 1000,
};

// ---------------------------------------------------------------- rsp's counters

/** One set of rsp's counter lines (describeCounters in src/counters.ts), by field. */
export interface RspCounters {
  waits: number;
  events: number;
  maxBatch: number;
  staleEvents: number;
  deferred: number;
  ctlAdd: number;
  ctlMod: number;
  ctlDel: number;
  reads: number;
  readsEagain: number;
  writes: number;
  shortWrites: number;
  bytesRead: number;
  bytesWritten: number;
  bytesQueued: number;
  peakQueue: number;
  accepts: number;
  acceptCalls: number;
  connects: number;
  otherCalls: number;
  syscalls: number;
  closes: Record<string, number>;
}

/** line group -> { key printed by rsp -> field here } */
const COUNTER_KEYS: Record<string, Record<string, keyof RspCounters>> = {
  epoll_wait: { calls: 'waits', events: 'events', 'max-events-per-wait': 'maxBatch', 'stale-events': 'staleEvents', deferred: 'deferred' },
  epoll_ctl: { add: 'ctlAdd', mod: 'ctlMod', del: 'ctlDel' },
  io: {
    reads: 'reads', 'reads-eagain': 'readsEagain', writes: 'writes', 'short-writes': 'shortWrites', 'bytes-read': 'bytesRead',
    'bytes-written': 'bytesWritten', 'bytes-queued': 'bytesQueued', 'peak-queue': 'peakQueue',
  },
  connections: { accepts: 'accepts', 'accept-calls': 'acceptCalls', connects: 'connects', 'other-calls': 'otherCalls', syscalls: 'syscalls' },
};

function emptyCounters(): RspCounters {
  return {
    waits: 0, events: 0, maxBatch: 0, staleEvents: 0, deferred: 0, ctlAdd: 0, ctlMod: 0, ctlDel: 0, reads: 0, readsEagain: 0,
    writes: 0, shortWrites: 0, bytesRead: 0, bytesWritten: 0, bytesQueued: 0, peakQueue: 0, accepts: 0, acceptCalls: 0,
    connects: 0, otherCalls: 0, syscalls: 0, closes: {},
  };
}

/**
 * Every complete set of counter lines in rsp's output, in order. A set is
 * the lines "counters: epoll_wait ...", "epoll_ctl", "io", "connections" and
 * ends with "counters: closes ...".
 */
export function parseCounterSets(output: string): RspCounters[] {
  const sets: RspCounters[] = [];
  let current: RspCounters | null = null;
  for (const line of output.split('\n')) {
    const m = /counters: (\S+) (.*)$/.exec(line);
    if (m === null) continue;
    const [, group, rest] = m;
    if (group === 'epoll_wait') current = emptyCounters();
    if (current === null) continue;
    const pairs = [...rest.matchAll(/(\S+)=(\S+)/g)];
    if (group === 'closes') {
      for (const [, key, value] of pairs) current.closes[key] = Number(value);
      sets.push(current);
      current = null;
      continue;
    }
    const keys = COUNTER_KEYS[group] ?? {};
    for (const [, key, value] of pairs) {
      const field = keys[key];
      if (field !== undefined && field !== 'closes') current[field] = Number(value);
    }
  }
  return sets;
}

/** b - a, field by field (maxBatch and peakQueue are high-water marks: b's). */
export function diffCounters(b: RspCounters, a: RspCounters): RspCounters {
  const d = emptyCounters();
  for (const key of Object.keys(d) as (keyof RspCounters)[]) {
    if (key === 'closes') continue;
    d[key] = key === 'maxBatch' || key === 'peakQueue' ? b[key] : b[key] - a[key];
  }
  for (const [cause, n] of Object.entries(b.closes)) d.closes[cause] = n - (a.closes[cause] ?? 0);
  return d;
}

// ---------------------------------------------------------------- rsp as a child process

/** rsp processes still running, with the temporary directory of their config, for killAll(). */
const running = new Map<ChildProcess, string>();

/** SIGKILL every rsp this module started that is still there (safe to call any time, synchronous). */
export function killAll(): void {
  for (const [proc, dir] of running) {
    try {
      proc.kill('SIGCONT'); // a stopped process dies of SIGKILL too, but do not leave it stopped if that fails
      proc.kill('SIGKILL');
    } catch {
      // already gone
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
  running.clear();
}

export type RspSettings = Record<string, string | number | boolean>;

function luaConfig(settings: RspSettings): string {
  return Object.entries(settings)
    .map(([k, v]) => `${k} = ${typeof v === 'string' ? JSON.stringify(v) : String(v)}`)
    .join('\n') + '\n';
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export class RspProcess {
  private constructor(
    readonly proc: ChildProcess,
    readonly port: number,
    private readonly exited: Promise<void>,
    /** Everything it printed so far, stdout and stderr interleaved. */
    readonly output: () => string,
  ) {}

  /** Write the config, start `bin/rsp config.lua`, wait for "Listening on port N". */
  static async start(settings: RspSettings): Promise<RspProcess> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rsp-lab-'));
    const config = path.join(dir, 'rsp.lua');
    fs.writeFileSync(config, luaConfig({ listenPort: '0', listenAddress: HOST, backendAddress: HOST, ...settings }));
    const proc = spawn(process.execPath, [RSP_BIN, '--die-with-parent', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    running.set(proc, dir);
    const exited = new Promise<void>((resolve) => proc.once('exit', () => {
      running.delete(proc);
      fs.rmSync(dir, { recursive: true, force: true });
      resolve();
    }));
    let out = '';
    let onText: (() => void) | null = null; // until the start line is seen
    const onData = (chunk: Buffer): void => {
      out += chunk.toString();
      onText?.();
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', onData);
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`rsp did not start within 20 s:\n${out}`)), 20000);
      const check = (): void => {
        const m = /Listening on port (\d+)/.exec(out);
        if (m !== null) {
          clearTimeout(timer);
          onText = null;
          resolve(Number(m[1]));
        }
      };
      onText = check;
      exited.then(() => {
        clearTimeout(timer);
        reject(new Error(`rsp exited before listening:\n${out}`));
      });
      check();
    }).catch((error: unknown) => {
      proc.kill('SIGKILL');
      throw error;
    });
    return new RspProcess(proc, port, exited, () => out);
  }

  get pid(): number {
    return this.proc.pid!;
  }

  private sets(): RspCounters[] {
    return parseCounterSets(this.output());
  }

  private async waitForSets(count: number, what: string): Promise<RspCounters[]> {
    const deadline = Date.now() + 15000;
    for (;;) {
      const sets = this.sets();
      if (sets.length >= count) return sets;
      if (this.proc.exitCode !== null || this.proc.signalCode !== null) {
        // The exit event may come before the last pipe data: give it a moment.
        await sleep(50);
        const last = this.sets();
        if (last.length >= count) return last;
        throw new Error(`rsp exited before printing ${what}:\n${this.output()}`);
      }
      if (Date.now() > deadline) throw new Error(`rsp did not print ${what} within 15 s:\n${this.output()}`);
      await sleep(5);
    }
  }

  /** SIGUSR2: rsp prints its counters as they are now. */
  async snapshot(): Promise<RspCounters> {
    const before = this.sets().length;
    this.proc.kill('SIGUSR2');
    return (await this.waitForSets(before + 1, 'its counters after SIGUSR2'))[before];
  }

  /** SIGTERM, wait for the exit, and return the counters it printed on the way out. */
  async stop(): Promise<RspCounters> {
    const before = this.sets().length;
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 10000);
    await this.exited;
    clearTimeout(timer);
    const sets = await this.waitForSets(before + 1, 'its counters on exit');
    return sets[sets.length - 1];
  }

  /** SIGSTOP, and wait until every thread of it is stopped. */
  async pause(): Promise<void> {
    this.proc.kill('SIGSTOP');
    const deadline = Date.now() + 5000;
    for (;;) {
      if (allThreadsStopped(this.pid)) return;
      if (Date.now() > deadline) throw new Error('rsp did not stop after SIGSTOP');
      await sleep(2);
    }
  }

  resume(): void {
    this.proc.kill('SIGCONT');
  }

  /** SIGKILL if still running (cleanup after an error). */
  async kill(): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      this.proc.kill('SIGCONT');
      this.proc.kill('SIGKILL');
    }
    await this.exited;
  }
}

function allThreadsStopped(pid: number): boolean {
  try {
    const tasks = fs.readdirSync(`/proc/${pid}/task`);
    return tasks.every((tid) => {
      const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
      return state === 'T' || state === 't';
    });
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------- the lab's own client and backend

/** What a peer connection does when something happens to it. */
export interface Callbacks {
  connect?(c: Connection): void;
  data?(c: Connection, data: Buffer, length: number): void;
  end?(c: Connection): void;
  drain?(c: Connection): void;
  close?(c: Connection, cause: string): void;
}

const PEER_SETTINGS: ConnectionSettings = {
  highWater: 8 * 1024 * 1024,
  lowWater: 2 * 1024 * 1024,
  readBudget: 16,
  readSize: 256 * 1024,
  readOnce: false,
  readToEagain: false,
  outAlways: false,
  rdhup: true,
};

/** Bytes a bulk sender writes from, over and over (no copy: write() takes them straight from here). */
const BULK_CHUNK = Buffer.alloc(256 * 1024, 'b');

/**
 * A backend connection that waits for the client's request (any bytes), then
 * streams `limit` bytes (Infinity: until the lab stops it) as fast as the
 * socket takes them, then (if `endWhenDone`) shuts down its sending half.
 * A small Handler of its own, so nothing is copied into a write queue.
 * It waits for a request as a real server would, so a transfer starts (and
 * is timed) when the client asks for it.
 */
class BulkSender implements Handler {
  generation = 0;
  readyEvents = 0;
  readonly label = 'lab bulk sender';
  sent = 0;
  private closed = false;
  private sending = false;
  private finished = false;
  private readonly scratch = Buffer.alloc(4096);

  constructor(
    private readonly peer: Peer,
    readonly fd: number,
    private readonly limit: number,
    /** Shut down the sending half after the last byte (false: stay open and quiet). */
    private readonly endWhenDone: boolean,
  ) {
    peer.reactor.add(this, libc.EPOLLIN);
    peer.senders.add(this);
  }

  handle(events: number): void {
    if ((events & (libc.EPOLLIN | libc.EPOLLHUP | libc.EPOLLERR)) !== 0) {
      // The request (the first bytes), and later the client's end.
      const n = libc.read(this.fd, this.scratch, this.scratch.length);
      if (n === 0 || (n < 0 && libc.errno() !== libc.EAGAIN)) {
        this.destroy();
        return;
      }
      if (n > 0 && !this.sending && !this.finished) {
        this.sending = true;
        this.peer.reactor.modify(this, libc.EPOLLIN | libc.EPOLLOUT);
        events |= libc.EPOLLOUT;
      }
    }
    if (!this.sending || (events & libc.EPOLLOUT) === 0) return;
    for (let i = 0; i < 16 && this.sent < this.limit; i++) {
      const length = Math.min(BULK_CHUNK.length, this.limit - this.sent);
      const n = libc.write(this.fd, BULK_CHUNK, length);
      if (n < 0) {
        const err = libc.errno();
        if (err === libc.EAGAIN || err === libc.EINTR) return;
        this.destroy();
        return;
      }
      this.sent += n;
      if (n < length) return;
    }
    if (this.sent >= this.limit) {
      this.sending = false;
      this.finished = true;
      if (this.endWhenDone) libc.shutdown(this.fd, libc.SHUT_WR);
      this.peer.reactor.modify(this, libc.EPOLLIN);
    }
  }

  abort(_error: unknown): void {
    this.destroy();
  }

  destroy(): void {
    if (this.closed) return;
    this.closed = true;
    this.peer.senders.delete(this);
    if (this.peer.reactor.isRegistered(this)) this.peer.reactor.remove(this, true);
    libc.close(this.fd);
  }
}

/**
 * The lab's side of every experiment: clients that connect to rsp and the
 * backend rsp connects to, all on one level-triggered Reactor in this process.
 */
export class Peer {
  readonly reactor = new Reactor({ triggerMode: 'level', maxEvents: 256 });
  readonly connections = new Set<Connection>();
  readonly senders = new Set<BulkSender>();
  private listeners: Listener[] = [];
  private closing = false;

  /** A backend listening on 127.0.0.1 (an ephemeral port), calling `onAccept` with each accepted fd. */
  listen(onAccept: (fd: number) => void): number {
    const listener = new Listener(this.reactor, { address: HOST, port: 0, backlog: 4096, acceptBudget: 64, acceptOnce: false }, (fd) => {
      if (this.closing) libc.close(fd);
      else onAccept(fd);
    });
    this.listeners.push(listener);
    return listener.port;
  }

  /** Wrap an accepted (or connecting) fd in a Connection driven by `callbacks`. */
  adopt(fd: number, callbacks: Callbacks, connecting = false): Connection {
    const peer = this;
    const owner: ConnectionOwner = {
      onConnect: (c) => callbacks.connect?.(c),
      onData: (c, data, length) => callbacks.data?.(c, data, length),
      onEnd: (c) => (callbacks.end ? callbacks.end(c) : c.close()),
      onDrain: (c) => callbacks.drain?.(c),
      onClose: (c, cause) => {
        peer.connections.delete(c);
        if (!peer.closing) callbacks.close?.(c, cause);
      },
    };
    const conn = new Connection(this.reactor, fd, owner, PEER_SETTINGS, connecting);
    this.connections.add(conn);
    return conn;
  }

  /** A client: a non-blocking connect to 127.0.0.1:port. Writes made before it is connected are queued. */
  connect(port: number, callbacks: Callbacks): Connection {
    const started = startConnect(toSockaddr(HOST, port));
    const conn = this.adopt(started.fd, callbacks, started.inProgress);
    if (!started.inProgress) callbacks.connect?.(conn);
    return conn;
  }

  /** A backend connection that streams `limit` bytes. */
  bulkSender(fd: number, limit: number, endWhenDone = true): BulkSender {
    return new BulkSender(this, fd, limit, endWhenDone);
  }

  /**
   * Run the reactor until `done()` or `timeoutMs` has passed; true if done.
   * It runs in slices of 20 ms, giving Node's own event loop a turn between
   * them (child output, timers, signals).
   */
  async drive(done: () => boolean, timeoutMs: number): Promise<boolean> {
    const deadline = performance.now() + timeoutMs;
    while (!done()) {
      let now = performance.now();
      if (now >= deadline) return false;
      const sliceEnd = Math.min(deadline, now + 20);
      while (!done() && now < sliceEnd) {
        this.reactor.turn(Math.min(5, Math.ceil(sliceEnd - now)));
        now = performance.now();
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
    return true;
  }

  /**
   * drive() until `done()`, but give up when `progress()` has not changed
   * for `stallMs`: "done", or "stalled" (rsp stopped moving).
   */
  async driveWhileMoving(done: () => boolean, progress: () => number, stallMs: number): Promise<'done' | 'stalled'> {
    for (;;) {
      const before = progress();
      if (await this.drive(done, stallMs)) return 'done';
      if (progress() === before) return 'stalled';
    }
  }

  /** Close every socket and the epoll set. */
  close(): void {
    this.closing = true;
    for (const c of [...this.connections]) c.destroy('lab done');
    for (const s of [...this.senders]) s.destroy();
    for (const l of this.listeners) l.close();
    this.reactor.close();
  }
}

/**
 * A Peer with a backend, and rsp in front of that backend: run `body`, then
 * close everything, whatever happens.
 */
async function withRsp<T>(settings: RspSettings, onBackend: (peer: Peer, fd: number) => void, body: (rsp: RspProcess, peer: Peer) => Promise<T>): Promise<T> {
  const peer = new Peer();
  let rsp: RspProcess | null = null;
  try {
    const backendPort = peer.listen((fd) => onBackend(peer, fd));
    rsp = await RspProcess.start({ backendPort, ...settings });
    return await body(rsp, peer);
  } finally {
    if (rsp !== null) await rsp.kill();
    peer.close();
  }
}

// ---------------------------------------------------------------- results

export interface LabRow {
  /** Experiment number, 1-6. */
  experiment: number;
  /** "1", "3", "6a"...: the experiment as the table shows it. */
  label: string;
  title: string;
  mode: Mode;
  /** The config options this row sets besides triggerMode (the rest are defaults). */
  settings: RspSettings;
  /** The raw figures, by name. */
  figures: Record<string, number>;
  /** Short, for the table. */
  result: string;
  /** One paragraph: what the figures show and why, in terms of what epoll does. */
  explanation: string;
  /** rsp's counters for the measured part (see each experiment). */
  counters: RspCounters;
  /** Set when the row could not be measured (result and explanation say why). */
  failed?: boolean;
}

function n0(x: number): string {
  return Math.round(x).toLocaleString('en-US');
}

function n1(x: number): string {
  return x.toLocaleString('en-US', { minimumFractionDigits: 1, maximumFractionDigits: 1 });
}

function n2(x: number): string {
  return x.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
}

function pct(x: number): string {
  return x > 0 && x < 0.1 ? `${n1(x * 100)}%` : `${Math.round(x * 100)}%`;
}

/** "1 read", "3 reads" */
function plural(n: number, word: string): string {
  return `${n0(n)} ${word}${Math.round(n) === 1 ? '' : 's'}`;
}

function ctl(c: RspCounters): number {
  return c.ctlAdd + c.ctlMod + c.ctlDel;
}

const REQUEST = Buffer.alloc(100, 'q');
const RESPONSE = Buffer.alloc(100, 'r');

/** A backend that answers every 100 bytes it receives with 100 bytes, and closes when the client has ended. */
function answeringBackend(peer: Peer, fd: number): void {
  let pending = 0;
  peer.adopt(fd, {
    data: (c, _data, length) => {
      pending += length;
      while (pending >= REQUEST.length) {
        pending -= REQUEST.length;
        c.write(RESPONSE, RESPONSE.length);
      }
    },
  });
}

// ---------------------------------------------------------------- 1. bulk transfer

/** 1: one connection, `bulkBytes` from the backend to the client. Figures from the counters rsp prints on exit. */
export async function bulkTransfer(mode: Mode, p: LabParams): Promise<LabRow> {
  return withRsp({ triggerMode: mode }, (peer, fd) => peer.bulkSender(fd, p.bulkBytes), async (rsp, peer) => {
    let received = 0;
    let ended = false;
    const start = performance.now();
    const client = peer.connect(rsp.port, {
      data: (_c, _d, length) => (received += length),
      end: (c) => {
        ended = true;
        c.close();
      },
    });
    client.write(REQUEST, REQUEST.length);
    if ((await peer.driveWhileMoving(() => received >= p.bulkBytes, () => received, p.stallMs)) === 'stalled') {
      throw new Error(`bulk transfer stalled: ${received} of ${p.bulkBytes} bytes, then nothing for ${p.stallMs} ms`);
    }
    const seconds = (performance.now() - start) / 1000;
    if (received !== p.bulkBytes) throw new Error(`bulk transfer: received ${received} bytes, expected ${p.bulkBytes}`);
    // The backend ended after its last byte; rsp should pass that end on. Measured
    // apart from the throughput, and waited for only so long (see docs/lab.md).
    const endForwarded = await peer.drive(() => ended, Math.min(p.stallMs, 2000));
    const c = await rsp.stop();
    const mb = received / MB;
    const figures = {
      megabytes: mb,
      seconds,
      mbPerSecond: mb / seconds,
      syscalls: c.syscalls,
      syscallsPerMB: c.syscalls / mb,
      epollWaits: c.waits,
      reads: c.reads,
      readsEagain: c.readsEagain,
      readsPerWait: c.reads / Math.max(1, c.waits),
      writes: c.writes,
      deferred: c.deferred,
      ctl: ctl(c),
      endForwarded: endForwarded ? 1 : 0,
    };
    return withExplanation({
      experiment: 1,
      label: '1',
      title: `bulk transfer, ${n0(mb)} MB`,
      mode,
      settings: {},
      figures,
      result: `${n0(figures.mbPerSecond)} MB/s · ${n1(figures.syscallsPerMB)} syscalls/MB · ${n0(c.waits)} epoll_wait${endForwarded ? '' : ' · END NOT FORWARDED'}`,
      explanation: '',
      counters: c,
    });
  });
}

// ---------------------------------------------------------------- 2 and 6b. keep-alive requests

interface KeepAliveResult {
  seconds: number;
  requests: number;
  /** rsp's counters over the measured requests. */
  busy: RspCounters;
  /** rsp's counters over the idle pause after them (idleMs 0: none). */
  idle: RspCounters;
  idleSeconds: number;
}

/**
 * `conns` persistent client connections through rsp to the answering
 * backend; each sends a 100-byte request and waits for the 100-byte answer
 * before the next. A warm-up first, then `requests` measured between two
 * counter snapshots (SIGUSR2), then, if `idleMs`, a pause with every
 * connection open and quiet, between two more.
 */
async function keepAliveRun(settings: RspSettings, conns: number, warmup: number, requests: number, idleMs: number, stallMs: number): Promise<KeepAliveResult> {
  return withRsp(settings, answeringBackend, async (rsp, peer) => {
    let issued = 0;
    let completed = 0;
    let target = 0;
    const clients: Connection[] = [];
    for (let i = 0; i < conns; i++) {
      let pending = 0;
      clients.push(peer.connect(rsp.port, {
        data: (c, _d, length) => {
          pending += length;
          while (pending >= RESPONSE.length) {
            pending -= RESPONSE.length;
            completed++;
            if (issued < target) {
              issued++;
              c.write(REQUEST, REQUEST.length);
            }
          }
        },
      }));
    }
    const phase = async (count: number): Promise<number> => {
      issued = 0;
      completed = 0;
      target = count;
      const start = performance.now();
      for (const c of clients) {
        if (issued < target) {
          issued++;
          c.write(REQUEST, REQUEST.length);
        }
      }
      if ((await peer.driveWhileMoving(() => completed >= count, () => completed, stallMs)) === 'stalled') {
        throw new Error(`keep-alive stalled: ${completed} of ${count} requests answered, then none for ${stallMs} ms`);
      }
      return (performance.now() - start) / 1000;
    };
    await phase(warmup);
    const a = await rsp.snapshot();
    const seconds = await phase(requests);
    const b = await rsp.snapshot();
    let idle = emptyCounters();
    let idleSeconds = 0;
    if (idleMs > 0) {
      const t0 = performance.now();
      await sleep(idleMs);
      const c = await rsp.snapshot();
      idleSeconds = (performance.now() - t0) / 1000;
      idle = diffCounters(c, b);
    }
    await rsp.stop();
    return { seconds, requests, busy: diffCounters(b, a), idle, idleSeconds };
  });
}

/**
 * 2: many small request/response pairs over a few persistent connections.
 * `readPolicy` (edge mode): "drain" (rsp's default) or "eagain".
 */
export async function keepAlive(mode: Mode, p: LabParams, readPolicy?: 'drain' | 'eagain'): Promise<LabRow> {
  const extra: RspSettings = readPolicy !== undefined ? { readPolicy } : {};
  const settings: RspSettings = { triggerMode: mode, ...extra };
  const r = await keepAliveRun(settings, p.keepAliveConns, p.keepAliveWarmup, p.keepAliveRequests, 0, p.stallMs);
  const c = r.busy;
  const figures = {
    requests: r.requests,
    connections: p.keepAliveConns,
    seconds: r.seconds,
    requestsPerSecond: r.requests / r.seconds,
    syscallsPerRequest: c.syscalls / r.requests,
    waitsPerRequest: c.waits / r.requests,
    readsPerRequest: c.reads / r.requests,
    eagainPerRequest: c.readsEagain / r.requests,
    writesPerRequest: c.writes / r.requests,
    ctlPerRequest: ctl(c) / r.requests,
    eventsPerWait: c.events / Math.max(1, c.waits),
  };
  return withExplanation({
    experiment: 2,
    label: '2',
    title: `keep-alive, ${n0(r.requests)} × 100 B requests, ${p.keepAliveConns} connections`,
    mode,
    settings: extra,
    figures,
    result: `${n0(figures.requestsPerSecond)} req/s · ${n2(figures.syscallsPerRequest)} syscalls/req (${n2(figures.readsPerRequest)} reads, ${n2(figures.waitsPerRequest)} epoll_wait)`,
    explanation: '',
    counters: c,
  });
}

// ---------------------------------------------------------------- 3. fairness

/**
 * 3: two bulk streams through one rsp with small reads (fairReadSize, so
 * that rsp is the slowest part), measured over a window that opens once both
 * flow (or after fairStartMs if one never starts).
 */
export async function fairness(mode: Mode, readBudget: number, p: LabParams): Promise<LabRow> {
  const settings: RspSettings = { triggerMode: mode, readBufferSize: p.fairReadSize, readBudget };
  return withRsp(settings, (peer, fd) => peer.bulkSender(fd, Infinity), async (rsp, peer) => {
    const received = [0, 0];
    const firstByteMs = [-1, -1];
    const start = performance.now();
    for (const i of [0, 1]) {
      const client = peer.connect(rsp.port, {
        data: (_c, _d, length) => {
          if (received[i] === 0) firstByteMs[i] = performance.now() - start;
          received[i] += length;
        },
      });
      client.write(REQUEST, REQUEST.length);
    }
    const bothFlowing = await peer.drive(() => received[0] > 0 && received[1] > 0 && received[0] + received[1] >= p.fairWarmBytes, p.fairStartMs);
    const a = await rsp.snapshot();
    const from = [...received];
    const t0 = performance.now();
    await peer.drive(() => received[0] - from[0] + received[1] - from[1] >= p.fairWindowBytes, p.fairWindowMs);
    const seconds = (performance.now() - t0) / 1000;
    const got = [received[0] - from[0], received[1] - from[1]];
    const b = await rsp.snapshot();
    await rsp.stop();
    const c = diffCounters(b, a);
    const total = got[0] + got[1];
    const figures = {
      readBudget,
      bothFlowing: bothFlowing ? 1 : 0,
      startWaitMs: p.fairStartMs,
      /** The stream that had not had a byte when the window opened (0: both had). */
      silentAtStart: from[0] === 0 ? 1 : from[1] === 0 ? 2 : 0,
      firstByteMs1: firstByteMs[0],
      firstByteMs2: firstByteMs[1],
      windowSeconds: seconds,
      windowMB: total / MB,
      mbPerSecond: total / MB / seconds,
      share1: total > 0 ? got[0] / total : 0,
      share2: total > 0 ? got[1] / total : 0,
      smallerShare: total > 0 ? Math.min(got[0], got[1]) / total : 0,
      readSize: p.fairReadSize,
      reads: c.reads,
      bytesPerRead: c.bytesRead / Math.max(1, c.reads),
      deferred: c.deferred,
      readsPerWait: c.reads / Math.max(1, c.waits),
      peakQueue: c.peakQueue,
    };
    const rowSettings: RspSettings = mode === 'edge' ? { readBufferSize: p.fairReadSize, readBudget } : { readBufferSize: p.fairReadSize };
    return withExplanation({
      experiment: 3,
      label: '3',
      title: 'fairness: two bulk streams',
      mode,
      settings: rowSettings,
      figures,
      result: `shares ${pct(figures.share1)} / ${pct(figures.share2)} of ${n0(figures.windowMB)} MB in ${n1(seconds)} s`,
      explanation: '',
      counters: c,
    });
  });
}

// ---------------------------------------------------------------- 4. accept once

/**
 * 4: acceptPolicy "once". rsp is stopped (SIGSTOP) while `acceptConns`
 * clients connect and send a 100-byte ping, so that all of them are waiting
 * in the listen backlog when it looks; then it continues (SIGCONT). A client
 * is served when the backend's echo comes back. Whoever is not served within
 * strandTimeoutMs is stranded. Then one more client connects.
 */
export async function acceptOnce(mode: Mode, p: LabParams): Promise<LabRow> {
  const echo = (peer: Peer, fd: number): void => {
    peer.adopt(fd, { data: (c, data, length) => c.write(data, length) });
  };
  return withRsp({ triggerMode: mode, acceptPolicy: 'once' }, echo, async (rsp, peer) => {
    const served: boolean[] = [];
    let servedCount = 0;
    let connected = 0;
    const open = (index: number): void => {
      served[index] = false;
      const conn = peer.connect(rsp.port, {
        connect: () => connected++,
        data: () => {
          if (!served[index]) {
            served[index] = true;
            servedCount++;
          }
        },
      });
      conn.write(REQUEST, REQUEST.length);
    };
    await rsp.pause();
    try {
      for (let i = 0; i < p.acceptConns; i++) open(i);
      // The kernel completes the handshakes by itself; the clients' pings are sent once they are connected.
      if (!(await peer.drive(() => connected === p.acceptConns, 5000))) throw new Error(`accept: only ${connected} of ${p.acceptConns} connected`);
    } finally {
      rsp.resume();
    }
    const t0 = performance.now();
    await peer.drive(() => servedCount === p.acceptConns, p.strandTimeoutMs);
    const allServedMs = servedCount === p.acceptConns ? performance.now() - t0 : -1;
    const servedInTime = servedCount;
    let servedAfterKick = 0;
    let kickServed = 0;
    if (servedInTime < p.acceptConns) {
      // One more connection: a new arrival, so a new edge.
      open(p.acceptConns);
      await peer.drive(() => false, p.kickTimeoutMs);
      servedAfterKick = served.slice(0, p.acceptConns).filter(Boolean).length - servedInTime;
      kickServed = served[p.acceptConns] ? 1 : 0;
    }
    const c = await rsp.stop();
    const figures = {
      connections: p.acceptConns,
      served: servedInTime,
      stranded: p.acceptConns - servedInTime,
      timeoutMs: p.strandTimeoutMs,
      allServedMs,
      kicked: servedInTime < p.acceptConns ? 1 : 0,
      servedAfterKick,
      kickServed,
      accepts: c.accepts,
      acceptCalls: c.acceptCalls,
      epollWaits: c.waits,
    };
    let result = figures.stranded === 0
      ? `all ${servedInTime} served in ${n0(allServedMs)} ms, 0 stranded`
      : `${servedInTime} served, ${figures.stranded} stranded after ${n1(p.strandTimeoutMs / 1000)} s`;
    if (figures.kicked) result += `; a ${ordinal(p.acceptConns + 1)} connection freed ${servedAfterKick}`;
    return withExplanation({
      experiment: 4,
      label: '4',
      title: `accept puzzle: ${p.acceptConns} connections at once`,
      mode,
      settings: { acceptPolicy: 'once' },
      figures,
      result,
      explanation: '',
      counters: c,
    });
  });
}

function ordinal(n: number): string {
  const s = n % 100 >= 11 && n % 100 <= 13 ? 'th' : (['th', 'st', 'nd', 'rd'][n % 10] ?? 'th');
  return `${n}${s}`;
}

// ---------------------------------------------------------------- 5. read once

/**
 * 5: readPolicy "once", readBufferSize 4096: one 4 KB read per event. The
 * backend sends `readOnceBytes` in answer to a 100-byte request and then keeps the
 * connection open; the client waits for all of it, at most readOnceTimeoutMs.
 */
export async function readOnce(mode: Mode, p: LabParams): Promise<LabRow> {
  const settings = { triggerMode: mode, readPolicy: 'once', readBufferSize: 4096 };
  return withRsp(settings, (peer, fd) => peer.bulkSender(fd, p.readOnceBytes, false), async (rsp, peer) => {
    let received = 0;
    const t0 = performance.now();
    const client = peer.connect(rsp.port, { data: (_c, _d, length) => (received += length) });
    client.write(REQUEST, REQUEST.length);
    const complete = await peer.drive(() => received >= p.readOnceBytes, p.readOnceTimeoutMs);
    const ms = performance.now() - t0;
    const snap = await rsp.snapshot();
    await rsp.stop();
    const figures = {
      bytes: p.readOnceBytes,
      received,
      fraction: received / p.readOnceBytes,
      complete: complete ? 1 : 0,
      ms,
      timeoutMs: p.readOnceTimeoutMs,
      reads: snap.reads,
      epollWaits: snap.waits,
    };
    const kb = (b: number): string => `${n0(b / 1024)} KB`;
    return withExplanation({
      experiment: 5,
      label: '5',
      title: `read once per event, 4 KB reads, ${kb(p.readOnceBytes)} response`,
      mode,
      settings: { readPolicy: 'once', readBufferSize: 4096 },
      figures,
      result: complete
        ? `all ${kb(received)} in ${n0(ms)} ms (${n0(snap.reads)} reads, ${n0(snap.waits)} epoll_wait)`
        : `stalled: ${kb(received)} of ${kb(p.readOnceBytes)} after ${n1(ms / 1000)} s (${n0(snap.reads)} reads)`,
      explanation: '',
      counters: snap,
    });
  });
}

// ---------------------------------------------------------------- 6a. EPOLLRDHUP

/**
 * 6a: `shortConns` short connections, `shortConcurrency` at a time: the
 * client sends 100 bytes and shuts down its sending half at once; the
 * backend answers 100 bytes and shuts down its own; both then close. Counted
 * from a snapshot before the first to rsp's exit counters. If connections
 * stop finishing for stallMs, the row reports the stall instead of figures.
 * `readPolicy` (edge mode): rsp's default unless given.
 */
export async function rdhupCost(mode: Mode, rdhup: boolean, p: LabParams, readPolicy?: 'drain' | 'eagain'): Promise<LabRow> {
  const backend = (peer: Peer, fd: number): void => {
    let got = 0;
    let answered = false;
    peer.adopt(fd, {
      data: (c, _d, length) => {
        got += length;
        if (got >= REQUEST.length && !answered) {
          answered = true;
          c.write(RESPONSE, RESPONSE.length);
          c.end();
        }
      },
    });
  };
  const extra: RspSettings = readPolicy !== undefined ? { readPolicy } : {};
  return withRsp({ triggerMode: mode, rdhup, ...extra }, backend, async (rsp, peer) => {
    const a = await rsp.snapshot();
    let started = 0;
    let done = 0;
    let failed = 0;
    /** Bytes of the answer received, for each connection still open. */
    const open = new Map<number, { got: number }>();
    const launch = (): void => {
      const id = started++;
      const state = { got: 0 };
      open.set(id, state);
      const conn = peer.connect(rsp.port, {
        data: (_c, _d, length) => (state.got += length),
        close: (_c, cause) => {
          open.delete(id);
          done++;
          if (cause !== 'closed' || state.got !== RESPONSE.length) failed++;
          if (started < p.shortConns) launch();
        },
      });
      conn.write(REQUEST, REQUEST.length);
      conn.end();
    };
    const t0 = performance.now();
    for (let i = 0; i < Math.min(p.shortConcurrency, p.shortConns); i++) launch();
    const outcome = await peer.driveWhileMoving(() => done >= p.shortConns, () => done, p.stallMs);
    const seconds = (performance.now() - t0) / 1000;
    if (failed > 0) throw new Error(`short connections: ${failed} of ${done} did not get their answer and a clean close`);
    const stuck = [...open.values()];
    const c = diffCounters(outcome === 'done' ? await rsp.stop() : await rsp.snapshot(), a);
    const n = p.shortConns;
    const per = Math.max(1, done);
    const figures = {
      connections: n,
      concurrency: Math.min(p.shortConcurrency, n),
      finished: done,
      stalled: outcome === 'stalled' ? 1 : 0,
      stuck: stuck.length,
      stuckAnswered: stuck.filter((s) => s.got >= RESPONSE.length).length,
      stallMs: p.stallMs,
      seconds,
      connectionsPerSecond: done / seconds,
      waitsPerConn: c.waits / per,
      eventsPerConn: c.events / per,
      readsPerConn: c.reads / per,
      eagainPerConn: c.readsEagain / per,
      ctlPerConn: ctl(c) / per,
      syscallsPerConn: c.syscalls / per,
    };
    return withExplanation({
      experiment: 6,
      label: '6a',
      title: `EPOLLRDHUP, ${n0(n)} short connections`,
      mode,
      settings: { rdhup, ...extra },
      figures,
      result: outcome === 'stalled'
        ? `STALLED: ${n0(done)} of ${n0(n)} ended; ${stuck.length} never did (${figures.stuckAnswered} of them had their whole answer)`
        : `per conn: ${n2(figures.readsPerConn)} reads · ${n2(figures.waitsPerConn)} epoll_wait · ${n2(figures.eventsPerConn)} events · ${n2(figures.ctlPerConn)} epoll_ctl`,
      explanation: '',
      counters: c,
    });
  });
}

// ---------------------------------------------------------------- 6b. EPOLLOUT policy

/** 6b: keep-alive requests and then an idle pause, with EPOLLOUT registered only while queued or always. */
export async function epolloutCost(mode: Mode, policy: 'queued' | 'always', p: LabParams): Promise<LabRow> {
  const r = await keepAliveRun({ triggerMode: mode, epolloutPolicy: policy }, p.keepAliveConns, p.keepAliveWarmup, p.wakeRequests, p.idleMs, p.stallMs);
  const c = r.busy;
  const figures = {
    requests: r.requests,
    connections: p.keepAliveConns,
    requestsPerSecond: r.requests / r.seconds,
    waitsPerRequest: c.waits / r.requests,
    eventsPerRequest: c.events / r.requests,
    eventsPerWait: c.events / Math.max(1, c.waits),
    readsPerRequest: c.reads / r.requests,
    ctlPerRequest: ctl(c) / r.requests,
    syscallsPerRequest: c.syscalls / r.requests,
    idleSeconds: r.idleSeconds,
    // The second snapshot's own request wakes rsp once (its eventfd): not idle work.
    idleWaitsPerSecond: Math.max(0, r.idle.waits - 1) / Math.max(0.001, r.idleSeconds),
    idleEventsPerSecond: Math.max(0, r.idle.events - 1) / Math.max(0.001, r.idleSeconds),
    idleWaits: Math.max(0, r.idle.waits - 1),
    idleEvents: Math.max(0, r.idle.events - 1),
  };
  return withExplanation({
    experiment: 6,
    label: '6b',
    title: `EPOLLOUT policy, ${n0(r.requests)} keep-alive requests + ${n1(p.idleMs / 1000)} s idle`,
    mode,
    settings: { epolloutPolicy: policy },
    figures,
    result: `per req: ${n2(figures.waitsPerRequest)} epoll_wait · ${n2(figures.eventsPerRequest)} events · ${n2(figures.ctlPerRequest)} epoll_ctl; idle: ${n0(figures.idleWaitsPerSecond)} wake-ups/s`,
    explanation: '',
    counters: c,
  });
}

// ---------------------------------------------------------------- explanations
//
// One paragraph per row, for a reader who knows TypeScript but not epoll:
// what the figures show and why, in terms of what epoll does. Written from
// the figures of the row itself and, where a comparison says more, from its
// sibling rows (same experiment, other setting or mode) when they ran too.

function withExplanation(row: LabRow): LabRow {
  row.explanation = explain(row, []);
  return row;
}

function sibling(row: LabRow, rows: LabRow[], match: (r: LabRow) => boolean): LabRow | undefined {
  return rows.find((r) => r !== row && r.label === row.label && match(r));
}

const HIGH_WATER = 1024 * 1024; // rsp's default highWaterMark, which the lab leaves alone

/** The paragraph for `row`; `rows` are the other rows of the run (may be empty). */
export function explain(row: LabRow, rows: LabRow[]): string {
  const f = row.figures;
  const edge = row.mode === 'edge';
  switch (row.label) {
    case '1': {
      const head = `rsp copied ${n0(f.megabytes)} MB from the backend to the client at ${n0(f.mbPerSecond)} MB/s, with ${n1(f.syscallsPerMB)} system calls per MB (${n0(f.reads)} reads, ${n0(f.writes)} writes, ${n0(f.epollWaits)} epoll_wait calls in all).`;
      const lost = f.endForwarded === 0
        ? ' Note: every byte arrived, but rsp never passed on the backend\'s end of stream (its FIN): in edge mode a connection that spends its read budget continues from rsp\'s ready list without the EPOLLRDHUP it was reported with, takes the last short read as "socket empty", and the end, already there, brings no new edge. An rsp bug (fixed once already, see docs/lab.md).'
        : '';
      const tail = ` The MB/s also depend on this lab process, which plays both ends on the same machine; the system-call counts are rsp's alone.${lost}`;
      if (!edge) {
        return `${head} Level-triggered epoll reports the backend socket on every epoll_wait for as long as it holds unread bytes, so rsp reads once (up to 64 KB, its readBufferSize) per report and goes back to epoll_wait, which returns at once because the socket is still readable: ${n2(f.readsPerWait)} reads per epoll_wait here. Nothing can be missed that way, but every 64 KB costs one more trip into the kernel just to hear again what rsp already knew.${tail}`;
      }
      const level = sibling(row, rows, (r) => r.mode === 'level');
      const versus = level ? ` (level mode: ${n1(level.figures.syscallsPerMB)})` : '';
      return `${head} Edge-triggered epoll reports the backend socket only when new bytes arrive, so after each report rsp keeps reading until the socket is empty (a read returns fewer bytes than asked, or read() answers EAGAIN), but at most readBudget = 16 reads before other connections get a turn; the connection then waits on rsp's own ready list instead of in epoll (${n0(f.deferred)} times here). One epoll_wait so covered ${n1(f.readsPerWait)} reads on average, which is why edge mode needs fewer system calls per MB${versus}. The backend kept the socket full, so ${plural(f.deferred, 'turn')} ended on the budget; ${plural(f.readsEagain, 'read')} found the socket empty (EAGAIN).${tail}`;
    }
    case '2': {
      const head = `${n0(f.connections)} clients each sent a 100-byte request and waited for the 100-byte answer before sending the next: ${n0(f.requestsPerSecond)} requests per second and ${n2(f.syscallsPerRequest)} rsp system calls per request (${n2(f.readsPerRequest)} reads, ${n2(f.writesPerRequest)} writes, ${n2(f.waitsPerRequest)} epoll_wait calls).`;
      const batching = `How many epoll_wait calls that takes depends on how many connections are ready at once: each call returned ${n1(f.eventsPerWait)} events on average, so one call served several requests. (Requests per second are bounded by this lab process too, which plays all the clients and the backend.)`;
      if (!edge) {
        return `${head} Every request crosses rsp twice (the request to the backend, the answer back), each crossing one read() and one write(). Level-triggered, rsp reads once per report and relies on epoll to report the socket again if anything is left, so it never makes a read that finds nothing (${n2(f.eagainPerRequest)} EAGAIN reads per request). ${batching}`;
      }
      const strict = row.settings.readPolicy === 'eagain';
      if (f.eagainPerRequest >= 0.5) {
        const level = sibling(row, rows, (r) => r.mode === 'level');
        const versus = level ? ` (level mode: ${n2(level.figures.syscallsPerRequest)} system calls per request)` : '';
        const policy = strict
          ? 'With readPolicy = "eagain" rsp follows the strict textbook rule and reads until the kernel answers EAGAIN,'
          : 'rsp reads until the kernel answers EAGAIN,';
        return `${head} Edge-triggered epoll will not report a socket again for bytes that were already there when it reported it, so rsp must leave nothing behind. ${policy} so after every 100-byte message it reads once more and finds nothing: ${n2(f.eagainPerRequest)} of the ${n2(f.readsPerRequest)} reads per request returned EAGAIN, the extra system calls this row pays${versus}. ${batching}`;
      }
      const strictRow = sibling(row, rows, (r) => r.mode === 'edge' && r.settings.readPolicy === 'eagain');
      const versus = strictRow ? ` (with readPolicy = "eagain", which always reads on to EAGAIN: ${n2(strictRow.figures.readsPerRequest)} reads and ${n2(strictRow.figures.syscallsPerRequest)} system calls per request)` : '';
      return `${head} Edge-triggered epoll will not report a socket again for bytes that were already there when it reported it, so rsp must leave nothing behind. It stops when a read returns fewer bytes than it asked for: a stream socket that gives less than asked has nothing more to give (epoll(7) names this shortcut), and bytes that come later bring a new edge. So a 100-byte message costs one read, as in level mode, instead of a second one answering EAGAIN${versus}. ${batching}`;
    }
    case '3': {
      const budget = Number(row.settings.readBudget ?? 16);
      const s1 = pct(f.share1);
      const s2 = pct(f.share2);
      const size = f.readSize >= 1024 && f.readSize % 1024 === 0 ? `${f.readSize / 1024} KB` : `${f.readSize} B`;
      const full = f.bytesPerRead >= f.readSize * 0.99 ? `; every read got the full ${size}, so rsp never found a socket empty` : `; reads got ${n0(f.bytesPerRead)} bytes on average`;
      const head = `Two clients download as fast as they can through one rsp, which reads in ${size} pieces (readBufferSize = ${f.readSize}) so that rsp, not this lab process or TCP, is the slowest part${full}. Over ${n1(f.windowSeconds)} s${f.bothFlowing ? ' after both streams were flowing' : f.silentAtStart ? ` (opened after ${n1(f.startWaitMs / 1000)} s although stream ${f.silentAtStart} had not had a single byte yet)` : ` (opened after ${n1(f.startWaitMs / 1000)} s)`}, stream 1 got ${s1} and stream 2 ${s2} of ${n0(f.windowMB)} MB.`;
      if (!edge) {
        return `${head} Level-triggered, rsp reads once per socket per report, and every epoll_wait reports both backend sockets while they hold bytes (${n1(f.readsPerWait)} reads per epoll_wait), so the streams take turns ${size} by ${size}: fair shares with no extra machinery (readBudget only matters in edge mode).`;
      }
      if (budget > 0) {
        return `${head} Edge-triggered, rsp must read a reported socket until it is empty, and a socket the backend keeps filling never empties: left alone, the first stream could keep rsp to itself. readBudget = ${budget} stops after ${budget} reads (${n0((budget * f.readSize) / 1024)} KB), puts the socket on rsp's own ready list (${n0(f.deferred)} times in this window) and lets the other stream have its turn, so each gets about half${f.smallerShare >= 0.4 ? '' : ' (not quite here: see the figures)'}.`;
      }
      const other = sibling(row, rows, (r) => r.mode === 'edge' && Number(r.settings.readBudget ?? 16) > 0);
      const rpw = other ? ` against ${n1(other.figures.readsPerWait)} with the budget` : '';
      const late = f.firstByteMs2 >= 0 && f.firstByteMs1 >= 0 && Math.abs(f.firstByteMs2 - f.firstByteMs1) >= 5
        ? ` At the start, stream ${f.firstByteMs2 > f.firstByteMs1 ? 2 : 1} got its first byte ${n0(Math.abs(f.firstByteMs2 - f.firstByteMs1))} ms after the other.`
        : '';
      const hog = f.share1 >= f.share2 ? 1 : 2;
      const outcome = f.smallerShare < 0.1
        ? `Stream ${3 - hog} was all but starved (${pct(f.smallerShare)}).`
        : f.smallerShare < 0.4
          ? `The starvation shows, but only partly (${s1} / ${s2}).`
          : `In this run the shares still came out close to even (${s1} / ${s2}).`;
      return `${head} readBudget = 0 removes the per-turn limit, as in the C rsp: once epoll reports a backend socket, rsp reads it until it is empty, which rarely happens while the backend keeps it full (${n0(f.readsPerWait)} reads per epoll_wait${rpw}); meanwhile the other stream waits.${late} ${outcome} What lets the other stream through at all is backpressure: rsp queues what a client cannot take yet, and when that queue passes highWaterMark (${n0(HIGH_WATER / 1024)} KB; the largest queue here was ${n0(f.peakQueue / 1024)} KB) rsp stops reading that stream's backend, the read loop ends, and the other stream is served until the first resumes. So the shares measure how often backpressure interrupts the hog (it varies from run to run), not a total monopoly.`;
    }
    case '4': {
      const n = f.connections;
      const head = `${n} clients connected while rsp was stopped (SIGSTOP, standing in for a reactor busy elsewhere), so all ${n} were waiting in the listen backlog, the kernel's queue of connections not yet accept()ed, when it continued; rsp accepted one connection per event (acceptPolicy = once).`;
      if (!edge || f.stranded === 0) {
        const why = edge
          ? ' Unexpectedly for edge mode, none were stranded in this run.'
          : ' Level-triggered epoll reports the listening socket on every epoll_wait for as long as the backlog is not empty, so rsp was told again and again, once per connection,';
        return `${head}${why} and served all ${n} in ${n0(f.allServedMs)} ms (${n0(f.accepts)} accepts, ${n0(f.epollWaits)} epoll_wait calls).`;
      }
      const kick = f.kicked
        ? ` Then a ${ordinal(n + 1)} client connected. Its arrival was a new edge: rsp accepted one connection, the oldest one waiting (the backlog is first in, first out), so ${f.servedAfterKick === 1 ? 'one stranded client was' : `${f.servedAfterKick} stranded clients were`} freed and the newcomer ${f.kickServed ? 'was served too' : 'took its place in the queue'}.`
        : '';
      return `${head} Edge-triggered epoll reported the listening socket once, when connections arrived; rsp accepted ${f.served === 1 ? 'one' : f.served}, and then epoll stayed silent: nothing new happened, so there was no new edge, although ${f.stranded} connections were still in the backlog. After ${n1(f.timeoutMs / 1000)} s they were still stranded (${n0(f.epollWaits)} epoll_wait calls, ${n0(f.accepts)} accepts in the whole run).${kick} This is why an edge-triggered server must accept until accept() answers EAGAIN, as rsp does by default (acceptPolicy = drain).`;
    }
    case '5': {
      const kb = n0(f.bytes / 1024);
      const head = `The backend answered a request with ${kb} KB, and rsp read one 4 KB piece per event and then waited for epoll again (readPolicy = once, readBufferSize = 4096).`;
      if (f.complete) {
        const why = edge
          ? ' Unexpectedly for edge mode, it all arrived in this run'
          : ' Level-triggered epoll kept reporting the socket as long as bytes were left in it, so it all arrived anyway';
        return `${head}${why}: ${kb} KB in ${n0(f.ms)} ms, one 4 KB read per report (${n0(f.reads)} reads, ${n0(f.epollWaits)} epoll_wait calls).`;
      }
      const pieces = Math.round(f.received / 4096);
      return `${head} Edge-triggered epoll reports a socket when new bytes arrive, not while bytes remain. The backend sent what the connection could hold in one burst, rsp was told ${pieces === 1 ? 'once' : `${pieces} times`} and forwarded ${pieces === 1 ? 'one 4 KB piece' : `${pieces} pieces of 4 KB`}; then the backend had to wait for rsp to make room, so no new bytes arrived, no new edge came, and rsp waited for a report that never came while the rest of the answer sat unread in the kernel. After ${n1(f.timeoutMs / 1000)} s the client had ${n0(f.received / 1024)} of ${kb} KB (${pct(f.fraction)}; ${n0(f.reads)} reads in all). With edge-triggered epoll a program must read until the socket is empty, as rsp's default (readPolicy = drain) does.`;
    }
    case '6a': {
      const rdhup = row.settings.rdhup === true;
      const other = sibling(row, rows, (r) => r.mode === row.mode && r.settings.rdhup !== row.settings.rdhup && !r.figures.stalled);
      const work = `${n0(f.connections)} short connections, ${n0(f.concurrency)} at a time: the client sends 100 bytes and at once shuts down its sending side, the backend answers 100 bytes and does the same, then both close.`;
      if (f.stalled) {
        return `${work} rsp got stuck: ${plural(f.finished, 'connection')} ended, then none for ${n1(f.stallMs / 1000)} s, and ${n0(f.stuck)} were left open (${n0(f.stuckAnswered)} of them had their whole answer, but never the end). Without EPOLLRDHUP (rdhup = false), rsp can learn of the other side's end only from a read() that returns 0. But in edge mode rsp also takes a read that returns fewer bytes than asked as "socket empty, wait for the next edge", and here the end (the FIN) arrived together with the last bytes, before epoll reported them: the short read left the end unread, and no new edge will ever come for it. That is a bug in rsp (fixed once already, see docs/lab.md): in edge mode the shortcut is only safe with EPOLLRDHUP registered (rdhup = true), which tells rsp that the end is there.`;
      }
      const head = `${work} Per connection rsp made ${n2(f.readsPerConn)} reads, ${n2(f.waitsPerConn)} epoll_wait calls (${n2(f.eventsPerConn)} events) and ${n2(f.ctlPerConn)} epoll_ctl calls.`;
      const ctlWhy = edge
        ? ' The 2 epoll_ctl calls are the two registrations; edge mode never changes them.'
        : ' The epoll_ctl calls are level mode changing registrations (EPOLLOUT while connecting, EPOLLIN off once a side has ended).';
      if (rdhup) {
        const versus = other ? ` (${n2(other.figures.readsPerConn)} without it)` : '';
        return `${head} With rdhup = true rsp registers EPOLLRDHUP, a flag epoll adds to an event when the other side has finished sending. When a read returns fewer bytes than asked for and the event carried EPOLLRDHUP, the data is all in and the end has come, so rsp skips the read() that would return 0: about one read per direction${versus}.${ctlWhy}`;
      }
      const versus = other ? `: ${n2(f.readsPerConn)} reads per connection against ${n2(other.figures.readsPerConn)} with EPOLLRDHUP` : '';
      const waits = !edge && other && f.eventsPerConn > other.figures.eventsPerConn
        ? `; and since level mode reads once per event, each of those reads needs an event of its own (${n2(f.eventsPerConn)} events per connection against ${n2(other.figures.eventsPerConn)}; how many epoll_wait calls that takes depends on how many events come together)`
        : '';
      return `${head} With rdhup = false rsp learns of the end the classic way, from a read() that returns 0, one more read per direction${versus}${waits}.${ctlWhy}`;
    }
    case '6b': {
      const always = row.settings.epolloutPolicy === 'always';
      const sockets = f.connections * 2;
      const head = `${n0(f.connections)} keep-alive connections made ${n0(f.requests)} requests of 100 bytes, then stayed open and quiet for ${n1(f.idleSeconds)} s. Per request: ${n2(f.eventsPerRequest)} events in ${n2(f.waitsPerRequest)} epoll_wait calls, ${n2(f.ctlPerRequest)} epoll_ctl calls; while idle, ${n0(f.idleWaitsPerSecond)} wake-ups per second.`;
      if (!edge && always) {
        return `${head} EPOLLOUT ("room to write") stays registered for each connection's whole life. A socket's send buffer is almost always empty, so the socket is almost always writable, and level-triggered epoll reports every ready socket on every call: each epoll_wait returned about all ${sockets} sockets (${n1(f.eventsPerWait)} events per call) though only about 2 events per request meant work. epoll_wait never sleeps, even when nothing at all happens: rsp woke ${n0(f.idleWaits)} times in the idle pause, keeping a CPU core busy for nothing. This is why level mode registers EPOLLOUT only while bytes are queued (the default).`;
      }
      if (!edge) {
        return `${head} With EPOLLOUT registered only while rsp has bytes queued for a socket (epolloutPolicy = queued, the level-mode default), epoll reports a socket only when there is something to read: 2 events per request (the request, then the answer). A 100-byte answer always fits in the socket's buffer, so nothing was ever queued and no epoll_ctl was needed to switch EPOLLOUT on and off; in the idle pause rsp slept in epoll_wait (${n0(f.idleWaits)} wake-ups).`;
      }
      if (always) {
        const q = sibling(row, rows, (r) => r.mode === 'edge' && r.settings.epolloutPolicy === 'queued');
        const versus = q ? ` (${n2(f.eventsPerRequest)} events per request and ${n0(f.idleWaits)} idle wake-ups, against ${n2(q.figures.eventsPerRequest)} and ${n0(q.figures.idleWaits)} with "queued")` : '';
        return `${head} Edge-triggered with EPOLLOUT registered for good (the edge-mode default): epoll signals writability only when it changes, for instance when a full send buffer gets room again, so a socket that simply stays writable costs nothing${versus}, and no epoll_ctl is ever needed to switch EPOLLOUT on and off. That is why rsp registers each socket once in edge mode and never modifies it.`;
      }
      return `${head} Edge-triggered with EPOLLOUT registered only while something is queued: epoll reports a socket when something changes, so the idle sockets cost nothing either way. This policy costs an epoll_ctl call whenever a write has to be queued and another when the queue is empty; here every 100-byte answer fit at once, so that never happened (${n2(f.ctlPerRequest)} per request).`;
    }
    default:
      return '';
  }
}

// ---------------------------------------------------------------- the experiment list

/** One row to run: its mode and settings are known before it runs (for a row that fails). */
export interface RowPlan {
  mode: Mode;
  settings: RspSettings;
  run(): Promise<LabRow>;
}

export interface Experiment {
  n: number;
  label: string;
  title: string;
  rows(p: LabParams): RowPlan[];
}

function plan(mode: Mode, settings: RspSettings, run: () => Promise<LabRow>): RowPlan {
  return { mode, settings, run };
}

export const EXPERIMENTS: Experiment[] = [
  { n: 1, label: '1', title: 'bulk transfer', rows: (p) => MODES.map((m) => plan(m, {}, () => bulkTransfer(m, p))) },
  {
    n: 2,
    label: '2',
    title: 'keep-alive requests',
    rows: (p) => [
      ...MODES.map((m) => plan(m, {}, () => keepAlive(m, p))),
      plan('edge', { readPolicy: 'eagain' }, () => keepAlive('edge', p, 'eagain')),
    ],
  },
  {
    n: 3,
    label: '3',
    title: 'two competing bulk streams (fairness)',
    rows: (p) => [
      plan('level', { readBufferSize: p.fairReadSize }, () => fairness('level', 16, p)),
      plan('edge', { readBufferSize: p.fairReadSize, readBudget: 16 }, () => fairness('edge', 16, p)),
      plan('edge', { readBufferSize: p.fairReadSize, readBudget: 0 }, () => fairness('edge', 0, p)),
    ],
  },
  { n: 4, label: '4', title: 'the accept puzzle (acceptPolicy "once")', rows: (p) => MODES.map((m) => plan(m, { acceptPolicy: 'once' }, () => acceptOnce(m, p))) },
  {
    n: 5,
    label: '5',
    title: 'read once per event (readPolicy "once")',
    rows: (p) => MODES.map((m) => plan(m, { readPolicy: 'once', readBufferSize: 4096 }, () => readOnce(m, p))),
  },
  {
    n: 6,
    label: '6',
    title: 'wake-up costs: EPOLLRDHUP (6a) and the EPOLLOUT policy (6b)',
    rows: (p) => [
      ...MODES.flatMap((m) => [true, false].map((rdhup) => plan(m, { rdhup }, () => rdhupCost(m, rdhup, p)))),
      ...MODES.flatMap((m) => (['queued', 'always'] as const).map((policy) => plan(m, { epolloutPolicy: policy }, () => epolloutCost(m, policy, p)))),
    ],
  },
];

function settingsText(row: LabRow): string {
  const entries = Object.entries(row.settings);
  return entries.length === 0 ? 'defaults' : entries.map(([k, v]) => `${k}=${typeof v === 'string' ? v : String(v)}`).join(' ');
}

/** Run the selected experiments one after another; `progress` gets a line per row. */
export async function runLab(p: LabParams, only: number[] | null, progress: (line: string) => void): Promise<LabRow[]> {
  const rows: LabRow[] = [];
  for (const e of EXPERIMENTS) {
    if (only !== null && !only.includes(e.n)) continue;
    progress(`[lab] experiment ${e.n}: ${e.title}`);
    const mine: LabRow[] = [];
    for (const row of e.rows(p)) {
      const t0 = performance.now();
      let result: LabRow;
      try {
        result = await row.run();
      } catch (error) {
        // One row that cannot complete (an rsp bug, a loaded machine) does not stop the others.
        const message = error instanceof Error ? error.message : String(error);
        result = {
          experiment: e.n, label: e.label, title: e.title, mode: row.mode, settings: row.settings, figures: {}, failed: true,
          result: `FAILED: ${message.split('\n')[0]}`,
          explanation: `This row could not be measured: ${message.split('\n')[0]}`,
          counters: emptyCounters(),
        };
      }
      mine.push(result);
      progress(`[lab]   ${result.label} ${result.mode.padEnd(5)} ${settingsText(result)}: ${result.result} (${n1((performance.now() - t0) / 1000)} s)`);
    }
    // Now that the whole experiment has run, explanations can compare rows.
    for (const row of mine) if (!row.failed) row.explanation = explain(row, mine);
    rows.push(...mine);
  }
  return rows;
}

// ---------------------------------------------------------------- the table

function wrap(text: string, width: number, indent: string): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(indent + line);
      line = word;
    } else {
      line = line === '' ? word : `${line} ${word}`;
    }
  }
  if (line !== '') lines.push(indent + line);
  return lines.join('\n');
}

/** The results as a fixed-width table, each row followed by its explanation. */
export function formatTable(rows: LabRow[]): string {
  const head = ['#', 'experiment', 'mode', 'rsp settings (besides triggerMode)', 'result'];
  const cells = rows.map((r) => [r.label, r.title, r.mode, settingsText(r), r.result]);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const fmt = (c: string[]): string => c.map((x, i) => (i === c.length - 1 ? x : x.padEnd(widths[i]))).join('  ');
  const out = [fmt(head), widths.map((w) => '-'.repeat(w)).join('  ')];
  rows.forEach((r, i) => {
    out.push(fmt(cells[i]));
    out.push(wrap(r.explanation, 100, '      '));
    out.push('');
  });
  return out.join('\n');
}

export const PRIMER = [
  'How to read this. rsp waits for its sockets with epoll: it registers each socket once, then calls',
  'epoll_wait(), which sleeps until one or more sockets are ready and returns a list of "events" (this',
  'socket has bytes to read: EPOLLIN; this one has room to write: EPOLLOUT; the other side finished',
  'sending: EPOLLRDHUP). Level-triggered (the default) means epoll_wait reports a socket every time it',
  'is called for as long as the socket is ready, like a light that stays on. Edge-triggered means it',
  'reports a socket once when something changes (new bytes arrive), like a doorbell: the program must',
  'then read until the socket is empty (a read returns fewer bytes than asked, or the kernel answers',
  'EAGAIN, "nothing more for now"), or it will not be told again about the bytes it left behind.',
  'The figures come from rsp\'s own counters (counters: lines printed on SIGUSR2 and on exit).',
].join('\n');

// ---------------------------------------------------------------- command line

const USAGE = `Usage: npm run lab -- [--quick] [--only N,M] [--json FILE]

  --quick       shorter runs (50 MB bulk, fewer requests, 1 s timeouts): under 30 s
  --only LIST   run only these experiments (1-6, comma separated)
  --json FILE   also write the raw results to FILE
  -h, --help    show this help`;

interface Options {
  quick: boolean;
  only: number[] | null;
  json: string | null;
}

function parseOptions(argv: string[]): Options {
  const options: Options = { quick: false, only: null, json: null };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) usage(`${arg} needs a value`);
      return v;
    };
    if (arg === '--quick') options.quick = true;
    else if (arg === '--only') {
      const list = value().split(',').map((s) => s.trim()).filter(Boolean).map(Number);
      for (const n of list) if (!EXPERIMENTS.some((e) => e.n === n)) usage(`no experiment ${n} (there are 1 to ${EXPERIMENTS.length})`);
      options.only = list;
    } else if (arg === '--json') options.json = path.resolve(value());
    else if (arg === '-h' || arg === '--help') {
      process.stdout.write(USAGE + '\n');
      process.exit(0);
    } else usage(`unknown argument ${arg}`);
  }
  return options;
}

function usage(message: string): never {
  process.stderr.write(`lab: ${message}\n${USAGE}\n`);
  process.exit(2);
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const p = options.quick ? QUICK : FULL;
  const bail = (signal: NodeJS.Signals): void => {
    killAll();
    process.stderr.write(`\nlab: ${signal}: stopped, every rsp it started is killed\n`);
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.on('SIGINT', () => bail('SIGINT'));
  process.on('SIGTERM', () => bail('SIGTERM'));
  process.on('exit', killAll);

  const started = performance.now();
  const print = (line: string): void => void process.stdout.write(line + '\n');
  print(`rsp epoll lab${options.quick ? ' (--quick)' : ''}: ${os.cpus().length} cores, Linux ${os.release()}, Node ${process.version}, load average ${os.loadavg()[0].toFixed(1)} at the start`);
  print(SIDES);
  const rows = await runLab(p, options.only, print);
  const seconds = (performance.now() - started) / 1000;
  print('');
  print(PRIMER);
  print('');
  print(formatTable(rows));
  const failed = rows.filter((r) => r.failed).length;
  print(`${rows.length} rows in ${n1(seconds)} s${failed > 0 ? `; ${failed} could not be measured` : ''}.`);
  if (options.json !== null) {
    const report = {
      date: new Date().toISOString(),
      quick: options.quick,
      params: p,
      machine: { cores: os.cpus().length, cpu: os.cpus()[0]?.model ?? '', kernel: os.release(), node: process.version, loadAverage: os.loadavg() },
      sides: SIDES,
      seconds,
      rows,
    };
    fs.writeFileSync(options.json, JSON.stringify(report, null, 2) + '\n');
    print(`raw results: ${options.json}`);
  }
  if (failed > 0) process.exitCode = 1;
}

if (require.main === module) {
  main().catch((error: unknown) => {
    killAll();
    process.stderr.write(`lab: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`);
    process.exit(1);
  });
}
