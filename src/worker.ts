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
import type { Config } from './config';
import { LimitedLog, setLogSink, logError } from './log';
import { Pairings } from './pairings';
import { Listener } from './listener';
import { HealthChecker } from './balancer/checker';
import { Pool } from './balancer/pool';
import { Proxy, type ProxyContext } from './proxy';
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
  | { type: 'listening'; ports: number[] }
  | { type: 'fatal'; message: string }
  | { type: 'counters'; counters: Counters }
  | { type: 'stopped'; counters: Counters };

/** Messages the main thread sends to a worker. */
export type ControlMessage = { type: 'stop' } | { type: 'counters' };

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
  ) {}

  handle(_events: number): void {
    const n = libc.read(this.fd, eventfdValue, 8); // reset the counter; EAGAIN just means already read
    this.reactor.counters.otherCalls++;
    if (trace.on) trace.line(2, `read(${this.fd}) = ${result(n)} (a message from the main thread)`);
    for (let m = receiveMessageOnPort(this.port); m !== undefined; m = receiveMessageOnPort(this.port)) {
      const message = m.message as ControlMessage;
      if (message.type === 'stop') this.reactor.stop();
      else if (message.type === 'counters') post({ type: 'counters', counters: this.reactor.counters });
    }
  }

  abort(error: unknown): void {
    logError(`control: ${error instanceof Error ? error.message : String(error)}`);
  }
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
  const ctx: ProxyContext = {
    reactor,
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
      members: p.members.map((m) => ({ name: m.name, sockaddr: toSockaddr(m.address, m.port), weight: m.weight, backup: m.backup, maxConnections: m.maxConnections })),
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
  for (const l of config.listeners) {
    const pool = pools.get(l.backend)!;
    const proxyOptions = { acceptProxy: l.acceptProxy, sendProxy: config.pools.find((p) => p.name === l.backend)!.sendProxy };
    try {
      listeners.push(new Listener(
        reactor,
        {
          address: l.address,
          port: l.port,
          backlog: config.backlog,
          acceptBudget: config.acceptBudget,
          acceptOnce: config.acceptPolicy === 'once',
        },
        (fd, peer) => new Proxy(ctx, fd, pool, peer, proxyOptions).start(),
      ));
    } catch (error) {
      const message = error instanceof libc.SysError && error.syscall === 'bind'
        ? `Could not listen on ${formatHostPort(l.address, l.port)}: ${error.code}`
        : `Could not listen: ${error instanceof Error ? error.message : String(error)}`;
      for (const opened of listeners) opened.close();
      post({ type: 'fatal', message });
      return;
    }
  }
  reactor.add(new Control(wakeFd, port, reactor), libc.EPOLLIN);
  for (const checker of checkers) checker.start();

  post({ type: 'listening', ports: listeners.map((l) => l.port) });
  reactor.run();
  for (const checker of checkers) checker.stop();
  // Until draining exists, what is still open when rsp stops is cut: with a
  // reset, so no peer mistakes it for a complete stream.
  ctx.pairings.resetAll('stopped');
  if (trace.on) trace.flush();

  for (const listener of listeners) listener.close();
  post({ type: 'stopped', counters: reactor.counters });
}

main();
