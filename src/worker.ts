// The worker thread: builds a reactor, a listener and the proxy from the
// validated config, then blocks in the reactor loop.
//
// The main thread talks to it through an eventfd registered in the same epoll
// set (to wake epoll_wait) and a MessagePort (to say what it wants), read
// synchronously with receiveMessageOnPort because this thread's own event loop
// never turns while the reactor runs.
import { parentPort, receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads';
import * as libc from '../ffi/libc';
import { formatHostPort, toSockaddr } from '../ffi/sockaddr';
import type { Config, MemberConfig } from './config';
import type { MemberChange } from './dns';
import { LimitedLog, log, setLogSink, logError } from './log';
import { memoryLines, memoryReportOn } from './memory';
import { Pairings, type Pairing } from './pairings';
import { ConnectionLimit, Listener } from './listener';
import { HealthChecker } from './balancer/checker';
import { Pool } from './balancer/pool';
import type { MemberSpec } from './balancer/member';
import { AccessLog } from './accesslog';
import { ListenerStats, Proxy, type ProxyContext } from './proxy';
import { StatsServer } from './stats/server';
import type { StatsSources } from './stats/snapshot';
import { Reactor, type Handler, type Counters } from './reactor';
import { result, trace } from './trace';

export interface WorkerData {
  config: Config;
  /** eventfd the main thread writes to after posting on `port`. */
  wakeFd: number;
  port: MessagePort;
}

/** Messages a worker sends to the main thread. */
export type WorkerMessage =
  | { type: 'log'; level: 'info' | 'error'; line: string }
  | { type: 'listening'; ports: number[]; statsPort: number | null }
  | { type: 'fatal'; message: string }
  | { type: 'counters'; counters: Counters }
  | { type: 'stopped'; counters: Counters };

/** Messages the main thread sends to a worker. */
export type ControlMessage = { type: 'stop' } | { type: 'drain' } | { type: 'counters' } | { type: 'reopen' } | ({ type: 'members' } & MemberChange);

const eventfdValue = Buffer.alloc(8);

/** The eventfd: wakes epoll_wait when the main thread has posted a message. */
class Control implements Handler {
  generation = 0;
  readyEvents = 0;
  readonly label = 'control eventfd';
  constructor(
    readonly fd: number,
    private readonly port: MessagePort,
    private readonly reactor: Reactor,
    /** SIGUSR1 in the main thread: reopen the log files this worker writes. */
    private readonly onReopen: () => void,
    /** SIGTERM/SIGINT in the main thread: stop accepting, let open connections finish. */
    private readonly onDrain: () => void,
    private readonly pools: Map<string, Pool>,
  ) {}

  handle(_events: number): void {
    const n = libc.read(this.fd, eventfdValue, 8); // reset the counter; EAGAIN just means already read
    this.reactor.counters.otherCalls++;
    if (trace.on) trace.line(2, `read(${this.fd}) = ${result(n)} (a message from the main thread)`);
    for (let m = receiveMessageOnPort(this.port); m !== undefined; m = receiveMessageOnPort(this.port)) {
      const message = m.message as ControlMessage;
      if (message.type === 'stop') this.reactor.stop();
      else if (message.type === 'drain') this.onDrain();
      else if (message.type === 'counters') {
        post({ type: 'counters', counters: this.reactor.counters });
        if (memoryReportOn) for (const line of memoryLines('worker')) log(line); // RSP_MEMORY_REPORT=1 (src/memory.ts)
      }
      else if (message.type === 'reopen') this.onReopen();
      else if (message.type === 'members') changeMembers(this.pools, message);
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

function main(): void {
  const { config, wakeFd, port } = workerData as WorkerData;
  setLogSink((level, line) => post({ type: 'log', level, line }));

  if (config.trace) trace.start(1);
  const reactor = new Reactor({ triggerMode: config.triggerMode, maxEvents: config.maxEvents });
  // "auto": level-triggered epoll reports again whatever is left, so one
  // read per event is enough; edge-triggered handlers drain.
  const readPolicy = config.readPolicy === 'auto' ? (config.triggerMode === 'edge' ? 'drain' : 'once') : config.readPolicy;
  let accessLog: AccessLog | null = null;
  if (config.accessLog !== '') {
    try {
      accessLog = new AccessLog(reactor, config.accessLog, config.accessLogFormat);
    } catch (error) {
      post({ type: 'fatal', message: `Could not open the access log: ${error instanceof Error ? error.message : String(error)}` });
      return;
    }
  }
  const ctx: ProxyContext = {
    reactor,
    listener: new ListenerStats(''),
    accessLog,
    pairings: new Pairings(reactor, config.idleTimeout),
    errors: new LimitedLog((ms, run) => reactor.after(ms, run)),
    connectTimeout: config.connectTimeout,
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
  // One Pool per `backends` entry, its state kept here, in the reactor thread.
  const pools = new Map<string, Pool>();
  const checkers: HealthChecker[] = [];
  for (const p of config.pools) {
    const pool = new Pool({
      name: p.name,
      members: p.members.map(memberSpec),
      balance: p.balance,
      maxFails: p.maxFails,
      failTimeout: p.failTimeout,
      slowStart: p.slowStart,
      retries: p.retries,
      clock: reactor,
    });
    pools.set(p.name, pool);
    if (p.check !== null) checkers.push(new HealthChecker(reactor, pool, p.check));
  }

  const listeners: Listener[] = [];
  const listenerStats: { stats: ListenerStats; pool: string }[] = [];
  // maxConnections: each pairing counts against the listener that accepted it until its last close.
  const limit = new ConnectionLimit(reactor, config.maxConnections > 0 ? config.maxConnections : Infinity);
  const acceptedBy = new Map<Pairing, Listener>();
  ctx.pairings.onRemoved = (pairing) => {
    const listener = acceptedBy.get(pairing);
    if (listener === undefined) return;
    acceptedBy.delete(pairing);
    listener.released();
  };
  for (const l of config.listeners) {
    const pool = pools.get(l.backend)!;
    // Each listener's pairings count in its own ListenerStats.
    const stats = new ListenerStats(formatHostPort(l.address, l.port));
    const listenerCtx: ProxyContext = { ...ctx, listener: stats };
    const proxyOptions = { acceptProxy: l.acceptProxy, sendProxy: config.pools.find((p) => p.name === l.backend)!.sendProxy };
    try {
      const listener: Listener = new Listener(
        reactor,
        {
          address: l.address,
          port: l.port,
          backlog: config.backlog,
          acceptBudget: config.acceptBudget,
          acceptOnce: config.acceptPolicy === 'once',
          maxConnections: l.maxConnections,
          limit,
        },
        (fd, peer) => {
          let proxy: Proxy;
          try {
            proxy = new Proxy(listenerCtx, fd, pool, peer, proxyOptions);
          } catch (error) {
            listener.released(); // never became a pairing: it must not hold a place under the limit
            throw error;
          }
          acceptedBy.set(proxy, listener);
          proxy.start();
        },
      );
      listeners.push(listener);
      stats.name = formatHostPort(l.address, listener.port);
      listenerStats.push({ stats, pool: pool.name });
    } catch (error) {
      const message = error instanceof libc.SysError && error.syscall === 'bind'
        ? `Could not listen on ${formatHostPort(l.address, l.port)}: ${error.code}`
        : `Could not listen: ${error instanceof Error ? error.message : String(error)}`;
      for (const opened of listeners) opened.close();
      post({ type: 'fatal', message });
      return;
    }
  }
  let stats: StatsServer | null = null;
  if (config.stats !== null) {
    const sources: StatsSources = { version: VERSION, health: 'ok', startedAt: Date.now(), counters: reactor.counters, listeners: listenerStats, pools: [...pools.values()] };
    try {
      stats = new StatsServer(reactor, config.stats.address, config.stats.port, ctx.settings, sources);
    } catch (error) {
      const message = error instanceof libc.SysError && error.syscall === 'bind'
        ? `Could not listen on ${formatHostPort(config.stats.address, config.stats.port)} (stats): ${error.code}`
        : `Could not start the stats listener: ${error instanceof Error ? error.message : String(error)}`;
      for (const opened of listeners) opened.close();
      post({ type: 'fatal', message });
      return;
    }
  }
  // Draining: /healthz says 503 at once; the listeners close after drainDelay;
  // rsp stops when the last pairing is gone, or after drainTimeout (the rest are reset).
  let draining = false;
  const drain = (): void => {
    if (draining) return;
    draining = true;
    if (stats !== null) stats.sources.health = 'draining';
    // drainTimeout = 0: no drain, what is open is reset now.
    if (config.drainTimeout === 0) {
      reactor.stop();
      return;
    }
    const closeListeners = (): void => {
      for (const listener of listeners) listener.close();
      listeners.length = 0;
      log(`Draining: not accepting any more; ${ctx.pairings.size} connection${ctx.pairings.size === 1 ? '' : 's'} still open.`);
      if (ctx.pairings.size === 0) reactor.stop();
      else ctx.pairings.onEmpty = () => reactor.stop();
    };
    if (config.drainDelay > 0) reactor.after(config.drainDelay, closeListeners);
    else closeListeners();
    reactor.after(config.drainDelay + config.drainTimeout, () => {
      if (ctx.pairings.size > 0) log(`Drain timeout: resetting the ${ctx.pairings.size} connection${ctx.pairings.size === 1 ? '' : 's'} still open.`);
      reactor.stop();
    });
  };
  reactor.add(new Control(wakeFd, port, reactor, () => accessLog?.reopen(), drain, pools), libc.EPOLLIN);
  for (const checker of checkers) checker.start();

  post({ type: 'listening', ports: listeners.map((l) => l.port), statsPort: stats?.listener.port ?? null });
  reactor.run();
  for (const checker of checkers) checker.stop();
  // What is still open when rsp stops (a drain timed out, a second signal,
  // SIGQUIT) is cut: with a reset, so no peer mistakes it for a complete stream.
  ctx.pairings.resetAll('stopped');
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

  for (const listener of listeners) listener.close();
  stats?.close();
  accessLog?.close();
  post({ type: 'stopped', counters: reactor.counters });
}

main();
