// A worker thread: one reactor (its own epoll set), the listeners it accepts
// on and the proxy, built from the validated config; then it blocks in the
// reactor loop. There are `workers` of them (src/supervisor/workers.ts).
//
// The main thread talks to it through an eventfd registered in the same epoll
// set (to wake epoll_wait) and a MessagePort (to say what it wants), read
// synchronously with receiveMessageOnPort because this thread's own event loop
// never turns while the reactor runs.
//
// A config lives in a Generation: its pools, its listeners' contexts, its
// pairings. A reload (SIGHUP) builds a new generation and points the
// listening sockets at it; the pairings of the old one finish on the old
// pools and settings, and the old generation is dropped when they are gone.
// The listening sockets belong to the main thread (src/supervisor/sockets.ts):
// a worker only takes them in and out of its epoll set.
import { parentPort, receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads';
import * as libc from '../ffi/libc';
import { formatHostPort, toSockaddr } from '../ffi/sockaddr';
import type { Config, ListenerConfig, MemberConfig } from './config';
import type { MemberChange } from './dns';
import { LimitedLog, log, setLogSink, logError } from './log';
import { memoryLines, memoryReportOn } from './memory';
import { Pairings, type Pairing } from './pairings';
import { ConnectionLimit, Listener } from './listener';
import { HealthChecker } from './balancer/checker';
import type { Pool, PoolOptions } from './balancer/pool';
import type { MemberSpec } from './balancer/member';
import { AccessLog } from './accesslog';
import { ListenerStats, Proxy, type ProxyContext, type ProxyOptions } from './proxy';
import { HttpSession, type HttpContext } from './http/session';
import { HttpSetup } from './http/setup';
import { StatsServer } from './stats/server';
import { workerReport, type StatsSources, type WorkerReport } from './stats/snapshot';
import { carryHealth, FollowerPool, LeaderPool, type MemberStateChange } from './supervisor/health';
import { Reactor, type Handler, type Counters } from './reactor';
import { result, trace } from './trace';
import { ZeroCopy } from './splice';
import { pipeBudget, softFdLimit } from './fdlimit';

export interface WorkerData {
  config: Config;
  /** This worker's number, 0 to workers - 1. Worker 0 runs the health checks and the stats listener. */
  worker: number;
  workers: number;
  /** The listening socket of each of config.listeners this worker accepts on (opened by the main thread). */
  listenFds: number[];
  /** Register them with EPOLLEXCLUSIVE (acceptMode "shared"). */
  exclusive: boolean;
  /** eventfd the main thread writes to after posting on `port`. */
  wakeFd: number;
  port: MessagePort;
}

/** Messages a worker sends to the main thread. */
export type WorkerMessage =
  | { type: 'log'; level: 'info' | 'error'; line: string }
  | { type: 'listening'; worker: number; ports: number[]; statsPort: number | null }
  | { type: 'fatal'; worker: number; message: string }
  | { type: 'counters'; worker: number; counters: Counters }
  | { type: 'stopped'; worker: number; counters: Counters }
  /** Draining: this worker has taken its listeners out of its epoll set; `open` pairings are left. */
  | { type: 'draining'; worker: number; open: number }
  | { type: 'reloaded'; worker: number }
  /** Worker 0 changed a member's state: for the other workers. */
  | { type: 'health'; change: MemberStateChange }
  /** A connect failed in worker 1, 2...: for worker 0, which decides. */
  | { type: 'failed'; pool: string; member: string; reason: string }
  /** Worker 0's stats listener wants the others' reports. */
  | { type: 'gather' }
  /** A line for the main thread's LimitedLog (several workers: one limit for all). */
  | { type: 'limited'; kind: string; message: string }
  | { type: 'report'; report: WorkerReport };

/** Messages the main thread sends to a worker. */
export type ControlMessage =
  | { type: 'stop' }
  | { type: 'drain' }
  | { type: 'counters' }
  | { type: 'reopen' }
  | ({ type: 'members' } & MemberChange)
  | { type: 'reload'; config: Config; listenFds: number[] }
  | { type: 'health'; change: MemberStateChange }
  | { type: 'failed'; pool: string; member: string; reason: string }
  | { type: 'report' }
  | { type: 'gathered'; reports: WorkerReport[] };

const eventfdValue = Buffer.alloc(8);

/** The eventfd: wakes epoll_wait when the main thread has posted a message. */
class Control implements Handler {
  generation = 0;
  readyEvents = 0;
  readonly label = 'control eventfd';
  constructor(
    readonly fd: number,
    private readonly port: MessagePort,
    private readonly worker: WorkerState,
  ) {}

  handle(_events: number): void {
    const n = libc.read(this.fd, eventfdValue, 8); // reset the counter; EAGAIN just means already read
    const w = this.worker;
    w.reactor.counters.otherCalls++;
    if (trace.on) trace.line(2, `read(${this.fd}) = ${result(n)} (a message from the main thread)`);
    for (let m = receiveMessageOnPort(this.port); m !== undefined; m = receiveMessageOnPort(this.port)) {
      const message = m.message as ControlMessage;
      switch (message.type) {
        case 'stop': w.reactor.stop(); break;
        case 'drain': w.drain(); break;
        case 'counters':
          post({ type: 'counters', worker: w.index, counters: w.reactor.counters });
          if (memoryReportOn) for (const line of memoryLines(`worker ${w.index}`)) log(line); // RSP_MEMORY_REPORT=1 (src/memory.ts)
          break;
        case 'reopen': w.accessLog?.reopen(); break;
        case 'members': changeMembers(w.current.pools, message); break;
        case 'reload': w.reload(message.config, message.listenFds); break;
        case 'health': (w.current.pools.get(message.change.pool) as FollowerPool | undefined)?.apply(message.change); break;
        case 'failed': (w.current.pools.get(message.pool) as LeaderPool | undefined)?.failedElsewhere(message.member, message.reason); break;
        case 'report': post({ type: 'report', report: workerReport(w.index, w.statsSources()) }); break;
        case 'gathered': w.gathered(message.reports); break;
      }
    }
  }

  abort(error: unknown): void {
    logError(`control: ${error instanceof Error ? error.message : String(error)}`);
  }
}

const VERSION = (require('../../package.json') as { version: string }).version;

/** DNS said so (src/dns.ts): members join a pool first, then others leave it, so it is never empty in between. */
function changeMembers(pools: Map<string, Pool>, change: MemberChange): void {
  const pool = pools.get(change.pool);
  if (pool === undefined) return;
  for (const m of change.add) if (!pool.members.some((x) => x.name === m.name)) pool.add(memberSpec(m));
  for (const name of change.remove) {
    const m = pool.members.find((x) => x.name === name);
    if (m !== undefined) pool.remove(m); // its pairings go on; it is released when they end
  }
}

function memberSpec(m: MemberConfig): MemberSpec {
  return { name: m.name, sockaddr: toSockaddr(m.address, m.port), weight: m.weight, backup: m.backup, maxConnections: m.maxConnections };
}

function post(message: WorkerMessage): void {
  parentPort!.postMessage(message);
}

/** One listener of a generation: its socket's handler, and what its connections get. */
interface ListenerEntry {
  /** Its `listeners` entry (or listenPort's) as the config says it. */
  config: ListenerConfig;
  listener: Listener;
  ctx: ProxyContext;
  /** null: an HTTP listener that goes by routes alone. */
  pool: Pool | null;
  proxyOptions: ProxyOptions;
  stats: ListenerStats;
  /** HTTP mode: what its sessions need; null for a TCP listener. */
  http: HttpContext | null;
}

/** One config's pools, listeners and pairings. */
class Generation {
  readonly pools = new Map<string, Pool>();
  readonly checkers: HealthChecker[] = [];
  readonly entries: ListenerEntry[] = [];
  readonly pairings: Pairings;
  readonly ctx: ProxyContext;
  /** What this generation's HTTP listeners share; null when all are TCP. */
  readonly http: HttpSetup | null;

  constructor(readonly config: Config, readonly w: WorkerState) {
    const reactor = w.reactor;
    // "auto": level-triggered epoll reports again whatever is left, so one
    // read per event is enough; edge-triggered handlers drain.
    const readPolicy = config.readPolicy === 'auto' ? (config.triggerMode === 'edge' ? 'drain' : 'once') : config.readPolicy;
    this.pairings = new Pairings(reactor, config.idleTimeout, HttpSetup.shortestTimeout(config));
    this.ctx = {
      reactor,
      listener: new ListenerStats(''),
      accessLog: w.accessLog,
      pairings: this.pairings,
      errors: w.errors,
      connectTimeout: config.connectTimeout,
      zeroCopy: w.zeroCopy(config),
      tracing: config.trace,
      settings: {
        highWater: config.highWaterMark,
        lowWater: config.lowWaterMark,
        readBudget: config.readBudget,
        readSize: config.readBufferSize,
        readOnce: readPolicy === 'once',
        readToEagain: readPolicy === 'eagain',
        outAlways: config.epolloutPolicy === 'always' || (config.epolloutPolicy === 'auto' && config.triggerMode === 'edge'),
        rdhup: config.rdhup,
      },
    };
    // maxConnections: each pairing counts against the listener that accepted it until its last close.
    this.pairings.onRemoved = (pairing) => w.releasedPairing(pairing);
    this.pairings.onEmpty = () => w.generationEmpty(this);
    // One Pool per `backends` entry, its state kept here, in the reactor thread.
    for (const p of config.pools) {
      const options: PoolOptions = {
        name: p.name,
        members: p.members.map(memberSpec),
        balance: p.balance,
        maxFails: p.maxFails,
        failTimeout: p.failTimeout,
        slowStart: p.slowStart,
        retries: p.retries,
        clock: reactor,
      };
      this.pools.set(p.name, w.index === 0 ? new LeaderPool(options, (ms, fire) => reactor.after(ms, fire)) : new FollowerPool(options));
    }
    // Throws on a route() that cannot be loaded: start-up reports it, a reload keeps the old config.
    this.http = config.listeners.some((l) => l.mode === 'http') ? new HttpSetup(config, reactor, this.pools) : null;
  }

  /** Health state of members that are still there, from the generation before; then this one's checks and links. */
  takeHealth(previous: Generation | null): void {
    const w = this.w;
    for (const [name, pool] of this.pools) {
      const old = previous?.pools.get(name);
      if (old !== undefined) carryHealth(old, pool);
      if (pool instanceof LeaderPool) {
        if (w.workers > 1) {
          pool.onChange = (change) => post({ type: 'health', change });
          pool.scheduleRevivals();
        }
        const check = this.config.pools.find((p) => p.name === name)!.check;
        if (check !== null) this.checkers.push(new HealthChecker(w.reactor, pool, check));
      } else if (pool instanceof FollowerPool) {
        pool.onFailed = (p, member, reason) => post({ type: 'failed', pool: p, member, reason });
      }
    }
  }

  /** Register the listeners on their sockets (the old generation has let go of them). */
  listen(fds: number[]): void {
    const w = this.w;
    const config = this.config;
    config.listeners.forEach((l, i) => {
      const entry = { config: l } as ListenerEntry;
      entry.pool = this.pools.get(l.backend) ?? null;
      entry.proxyOptions = { acceptProxy: l.acceptProxy, sendProxy: config.pools.find((p) => p.name === l.backend)?.sendProxy ?? null };
      entry.listener = new Listener(
        w.reactor,
        {
          address: l.address,
          port: l.port,
          backlog: config.backlog,
          acceptBudget: config.acceptBudget,
          acceptOnce: config.acceptPolicy === 'once',
          maxConnections: w.share(l.maxConnections),
          limit: w.limit,
          fd: fds[i],
          exclusive: w.exclusive,
        },
        (fd, peer) => w.accept(entry, fd, peer),
      );
      // Each listener's pairings count in its own ListenerStats, kept across reloads while its address stays.
      const statsName = formatHostPort(l.address, entry.listener.port);
      entry.stats = w.listenerStats.get(statsName) ?? new ListenerStats(statsName);
      w.listenerStats.set(statsName, entry.stats);
      entry.ctx = { ...this.ctx, listener: entry.stats };
      entry.http = l.mode === 'http' ? this.http!.context(entry.ctx, entry.pool) : null;
      this.entries.push(entry);
    });
    for (const checker of this.checkers) checker.start();
  }

  /**
   * Stop accepting for this generation: its listeners leave the epoll set (the
   * sockets stay open), its checks stop. HTTP: its connections end after their
   * current response (Connection: close); `draining`: idle keep-alive clients
   * go at once (on a reload they may send one more request, served here, as
   * the open connections of a TCP listener finish on the old config).
   */
  retire(draining: boolean): void {
    for (const e of this.entries) e.listener.close();
    this.http?.retire();
    this.pairings.drainAll(draining);
    for (const checker of this.checkers) checker.stop();
    // Its pools still serve its open connections, but no longer speak for the members:
    // the current generation's pools do (a down decided here would never be undone there).
    for (const pool of this.pools.values()) if (pool instanceof LeaderPool) pool.onChange = null;
  }
}

/** Everything of this worker that outlives a generation. */
class WorkerState {
  readonly reactor: Reactor;
  readonly errors: LimitedLog;
  readonly limit: ConnectionLimit;
  readonly listenerStats = new Map<string, ListenerStats>();
  /** The current generation, then older ones whose pairings are still open. */
  current!: Generation;
  private readonly older: Generation[] = [];
  accessLog: AccessLog | null = null;
  stats: StatsServer | null = null;
  private draining = false;
  private readonly waitingForReports: ((reports: WorkerReport[]) => void)[] = [];

  constructor(
    readonly index: number,
    readonly workers: number,
    readonly exclusive: boolean,
    config: Config,
  ) {
    this.reactor = new Reactor({ triggerMode: config.triggerMode, maxEvents: config.maxEvents });
    this.errors = new LimitedLog((ms, run) => this.reactor.after(ms, run), workers > 1 ? (kind, message) => post({ type: 'limited', kind, message }) : null);
    const max = config.maxConnections;
    this.limit = new ConnectionLimit(this.reactor, max > 0 ? this.share(max) : Infinity, workers > 1 ? `: worker ${index}'s share of ${max}` : '');
  }

  private pipes: ZeroCopy | null = null;

  /** The zero-copy pipes of this worker (zeroCopy = "auto" or "on"): one budget for every generation, its share of what the fd limit leaves. */
  zeroCopy(config: Config): ZeroCopy | null {
    if (config.zeroCopy === 'off') return null;
    if (this.pipes === null || this.pipes.mode !== config.zeroCopy) {
      const reserved = config.listeners.length * this.workers + config.pools.reduce((n, p) => n + p.members.length, 0);
      const budget = Math.floor(pipeBudget(softFdLimit(), reserved, config.maxConnections) / this.workers);
      this.pipes = new ZeroCopy(this.reactor, config.zeroCopy, budget, this.errors, config.readBufferSize);
    }
    return this.pipes;
  }

  /**
   * This worker's part of a limit for the whole process (maxConnections, global
   * or a listener's): split evenly, the remainder to the first workers, at
   * least 1 each (so the parts add up to the limit unless it is below the
   * number of workers). 0 stays 0: no limit.
   */
  share(limit: number): number {
    if (limit === 0) return 0;
    return Math.max(1, Math.floor(limit / this.workers) + (this.index < limit % this.workers ? 1 : 0));
  }

  /**
   * What to do with an accepted fd: the one place that decides, by the
   * listener's entry, what kind of session a new client gets.
   */
  accept(entry: ListenerEntry, fd: number, peer: Buffer): void {
    let pairing: Proxy | HttpSession;
    try {
      pairing = entry.http !== null
        ? new HttpSession(entry.http, fd, entry.pool, peer, entry.proxyOptions.acceptProxy)
        : new Proxy(entry.ctx, fd, entry.pool!, peer, entry.proxyOptions);
    } catch (error) {
      entry.listener.released(); // never became a pairing: it must not hold a place under the limit
      throw error;
    }
    pairing.acceptedBy = entry.listener;
    if (pairing instanceof Proxy) pairing.start();
  }

  releasedPairing(pairing: Pairing): void {
    const listener = pairing.acceptedBy;
    pairing.acceptedBy = null;
    listener?.released();
  }


  get open(): number {
    let n = this.current.pairings.size;
    for (const g of this.older) n += g.pairings.size;
    return n;
  }

  /** A generation's last pairing has gone: an old one is dropped; draining ends when none is left anywhere. */
  generationEmpty(g: Generation): void {
    if (g !== this.current) {
      const i = this.older.indexOf(g);
      if (i >= 0) this.older.splice(i, 1);
    }
    if (this.draining && this.listenersClosed && this.open === 0) this.reactor.stop();
  }

  /** SIGHUP: the new config takes the listening sockets; open pairings finish on the old one. */
  reload(config: Config, fds: number[]): void {
    const previous = this.current;
    if (this.draining) return; // draining: nothing new is accepted anyway
    let next: Generation;
    try {
      next = new Generation(config, this);
      next.takeHealth(previous);
    } catch (error) {
      // The config was validated in the main thread: this is a bug, not a bad file. Keep the old one.
      logError(`Reload: worker ${this.index} keeps the old config: ${error instanceof Error ? error.message : String(error)}`);
      post({ type: 'reloaded', worker: this.index });
      return;
    }
    // Out of the epoll set first (a kept socket cannot be in it twice), in again at once:
    // a connection that arrives in between waits in the backlog.
    previous.retire(false);
    next.listen(fds);
    this.current = next;
    if (previous.pairings.size > 0) this.older.push(previous);
    if (this.stats !== null) {
      this.stats.sources.listeners = this.listenerSources();
      this.stats.sources.pools = [...next.pools.values()];
    }
    post({ type: 'reloaded', worker: this.index });
  }

  listenerSources(): { stats: ListenerStats; pool: string }[] {
    return this.current.entries.map((e) => ({ stats: e.stats, pool: e.pool?.name ?? 'routes' }));
  }

  statsSources(): StatsSources {
    return this.stats?.sources ?? { version: VERSION, health: 'ok', startedAt: 0, counters: this.reactor.counters, listeners: this.listenerSources(), pools: [...this.current.pools.values()] };
  }

  gather(done: (reports: WorkerReport[]) => void): void {
    this.waitingForReports.push(done);
    if (this.waitingForReports.length === 1) post({ type: 'gather' });
  }

  gathered(reports: WorkerReport[]): void {
    const waiting = this.waitingForReports.splice(0);
    for (const done of waiting) done(reports);
  }

  private listenersClosed = false;

  // Draining: /healthz says 503 at once; the listeners close after drainDelay;
  // the worker stops when its last pairing is gone, or after drainTimeout (the rest are reset).
  drain(): void {
    if (this.draining) return;
    this.draining = true;
    const config = this.current.config;
    if (this.stats !== null) this.stats.sources.health = 'draining';
    // drainTimeout = 0: no drain, what is open is reset now.
    if (config.drainTimeout === 0) {
      this.reactor.stop();
      return;
    }
    const closeListeners = (): void => {
      this.current.retire(true);
      for (const g of this.older) g.pairings.drainAll(true);
      this.listenersClosed = true;
      // The main thread closes the sockets once every worker has let go, and logs the line once.
      post({ type: 'draining', worker: this.index, open: this.open });
      if (this.open === 0) this.reactor.stop();
    };
    if (config.drainDelay > 0) this.reactor.after(config.drainDelay, closeListeners);
    else closeListeners();
    this.reactor.after(config.drainDelay + config.drainTimeout, () => {
      if (this.open > 0) log(`Drain timeout: resetting the ${this.open} connection${this.open === 1 ? '' : 's'} still open.`);
      this.reactor.stop();
    });
  }

  /** The reactor has stopped: reset what is still open, close what this worker opened. */
  finish(): void {
    this.current.retire(true);
    // What is still open when rsp stops (a drain timed out, a second signal,
    // SIGQUIT) is cut: with a reset, so no peer mistakes it for a complete stream.
    for (const g of [this.current, ...this.older]) g.pairings.resetAll('stopped');
    this.stats?.close();
    this.accessLog?.close();
  }
}

function main(): void {
  const { config, worker, workers, listenFds, exclusive, wakeFd, port } = workerData as WorkerData;
  setLogSink((level, line) => post({ type: 'log', level, line }));
  // "rsp-worker-0": top -H and /proc/PID/task/*/comm tell the reactor threads apart (the lab counts their wake-ups).
  libc.setThreadName(`rsp-worker-${worker}`);

  if (config.trace) trace.start(1);
  const w = new WorkerState(worker, workers, exclusive, config);
  const reactor = w.reactor;
  if (config.accessLog !== '') {
    try {
      w.accessLog = new AccessLog(reactor, config.accessLog, config.accessLogFormat);
    } catch (error) {
      post({ type: 'fatal', worker, message: `Could not open the access log: ${error instanceof Error ? error.message : String(error)}` });
      return;
    }
  }
  let first: Generation;
  try {
    first = new Generation(config, w);
  } catch (error) {
    post({ type: 'fatal', worker, message: `Error parsing config file: ${error instanceof Error ? error.message : String(error)}` });
    return;
  }
  first.takeHealth(null);
  first.listen(listenFds);
  w.current = first;
  // The stats listener: one, in worker 0; it asks the others for their figures.
  if (config.stats !== null && worker === 0) {
    const sources: StatsSources = { version: VERSION, health: 'ok', startedAt: Date.now(), counters: reactor.counters, listeners: w.listenerSources(), pools: [...first.pools.values()] };
    if (workers > 1) sources.gather = (done) => w.gather(done);
    try {
      w.stats = new StatsServer(reactor, config.stats.address, config.stats.port, first.ctx.settings, sources);
    } catch (error) {
      const message = error instanceof libc.SysError && error.syscall === 'bind'
        ? `Could not listen on ${formatHostPort(config.stats.address, config.stats.port)} (stats): ${error.code}`
        : `Could not start the stats listener: ${error instanceof Error ? error.message : String(error)}`;
      first.retire(true);
      post({ type: 'fatal', worker, message });
      return;
    }
  }
  reactor.add(new Control(wakeFd, port, w), libc.EPOLLIN);

  post({ type: 'listening', worker, ports: first.entries.map((e) => e.listener.port), statsPort: w.stats?.listener.port ?? null });
  reactor.run();
  w.finish();
  if (trace.on) {
    // On the way out the trace is written whole: a pipe that is full for the
    // moment is waited on (10 ms at a time, a second at most), not dropped.
    const nap = new Int32Array(new SharedArrayBuffer(4));
    trace.flush();
    for (let i = 0; trace.backlogged && i < 100; i++) {
      Atomics.wait(nap, 0, 0, 10);
      trace.flush();
    }
  }
  post({ type: 'stopped', worker, counters: reactor.counters });
}

main();
