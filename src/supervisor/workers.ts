// The worker threads, seen from the main thread: starting them, telling them
// things (a message on each one's port, then a write to its eventfd to wake
// its epoll_wait), and turning their N answers into one: one start line, one
// set of counters (summed, then per worker), one "Draining" line, one
// "Stopped.". Worker 0 decides the pools' health (supervisor/health.ts): its
// changes are relayed to the others, their failed connects to it.
import * as path from 'node:path';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import * as libc from '../../ffi/libc';
import type { Config } from '../config';
import { describeCounters, describeWorkers, sumCounters, type Counters } from '../counters';
import { LimitedLog, log, logError } from '../log';
import type { WorkerReport } from '../stats/snapshot';
import type { ControlMessage, WorkerData, WorkerMessage } from '../worker';
import { LineEchoes } from './echo';
import { ListenSockets, type ListenSocket } from './sockets';
import { WORKER_RESOURCE_LIMITS } from '../memory';

/** How long worker 0's stats listener waits for the others' reports before answering with what it has. */
const GATHER_LIMIT_MS = 1000;

interface Thread {
  worker: Worker;
  wakeFd: number;
  port: MessagePort;
  exited: boolean;
}

export interface WorkerPoolEvents {
  /** Every worker listens: `ports` of the listeners, the stats port or null. */
  listening(ports: number[], statsPort: number | null): void;
  /** Every worker has stopped (or died): the process may exit. */
  exited(): void;
}

const one = Buffer.alloc(8);
one.writeBigUInt64LE(1n);

export class WorkerPool {
  private readonly threads: Thread[] = [];
  private listening = 0;
  private firstPorts: number[] = [];
  private statsPort: number | null = null;
  /** Answers being collected: counters (SIGUSR2), stopped, draining, reloaded, reports. */
  private counters: (Counters | undefined)[] = [];
  private countersWanted = 0;
  private stopped: (Counters | undefined)[] = [];
  private draining: (number | undefined)[] = [];
  private reloaded = 0;
  private onReloaded: (() => void) | null = null;
  private reports: WorkerReport[] | null = null;
  private reportsTimer: NodeJS.Timeout | null = null;
  private exitedCount = 0;
  private stopping = false;
  private drainingAll = false;
  private readonly fatal = new Set<string>();
  /** The same line from several workers at once is printed once. */
  private readonly echoes = new LineEchoes();
  /** The workers' flood-prone error lines, limited here for all of them together. */
  private readonly errors = new LimitedLog((ms, run) => void setTimeout(run, ms).unref());

  constructor(
    readonly count: number,
    config: Config,
    readonly sockets: ListenSockets,
    initial: ListenSocket[],
    private readonly events: WorkerPoolEvents,
  ) {
    for (let i = 0; i < count; i++) {
      const wakeFd = libc.check('eventfd', libc.eventfd(0, libc.EFD_NONBLOCK | libc.EFD_CLOEXEC));
      const channel = new MessageChannel();
      const data: WorkerData = {
        config,
        worker: i,
        workers: count,
        listenFds: sockets.fdsFor(i, initial),
        exclusive: config.acceptMode === 'shared',
        wakeFd,
        port: channel.port2,
      };
      const worker = new Worker(path.join(__dirname, '..', 'worker.js'), { workerData: data, transferList: [channel.port2], resourceLimits: WORKER_RESOURCE_LIMITS });
      const thread: Thread = { worker, wakeFd, port: channel.port1, exited: false };
      this.threads.push(thread);
      worker.on('message', (message: WorkerMessage) => this.message(i, message));
      worker.on('error', (error) => {
        logError(`worker ${i} failed: ${error.message}`);
        process.exitCode = 1;
        this.stop();
      });
      worker.on('exit', () => {
        thread.exited = true;
        channel.port1.close();
        libc.close(wakeFd);
        this.exitedCount++;
        // One that died on its own takes the others with it: rsp with a worker
        // missing would serve a share of the clients nobody accepts.
        // (Draining, each stops when its own connections are done: that is no failure.)
        if (!this.stopping && !this.drainingAll) this.stop();
        if (this.exitedCount === this.count) this.events.exited();
      });
    }
  }

  /** Post to one worker and wake its epoll_wait. */
  tell(i: number, message: ControlMessage): void {
    const t = this.threads[i];
    if (t.exited) return;
    t.port.postMessage(message);
    libc.write(t.wakeFd, one, 8);
  }

  tellAll(message: ControlMessage): void {
    for (let i = 0; i < this.count; i++) this.tell(i, message);
  }

  /** SIGUSR2: every worker's counters, printed once all have answered. */
  askCounters(): void {
    this.counters = [];
    this.countersWanted = this.count;
    this.tellAll({ type: 'counters' });
  }

  stop(): void {
    this.stopping = true;
    this.tellAll({ type: 'stop' });
  }

  drain(): void {
    this.drainingAll = true;
    this.tellAll({ type: 'drain' });
  }

  /** Hand every worker the new config; `done` once all have switched to it. */
  reload(config: Config, sockets: ListenSocket[], done: () => void): void {
    this.reloaded = 0;
    this.onReloaded = done;
    for (let i = 0; i < this.count; i++) this.tell(i, { type: 'reload', config, listenFds: this.sockets.fdsFor(i, sockets) });
  }

  private message(i: number, message: WorkerMessage): void {
    switch (message.type) {
      case 'log':
        if (this.count > 1 && this.echoes.isEcho(i, message.line)) break;
        (message.level === 'error' ? process.stderr : process.stdout).write(message.line + '\n');
        break;
      case 'listening':
        if (i === 0) {
          this.firstPorts = message.ports;
          this.statsPort = message.statsPort;
        }
        if (++this.listening === this.count && !this.stopping) this.events.listening(this.firstPorts, this.statsPort);
        break;
      case 'fatal':
        // Every worker meets the same start-up error (an access log it cannot open): one line.
        if (!this.fatal.has(message.message)) logError(message.message);
        this.fatal.add(message.message);
        process.exitCode = 1;
        this.stop();
        break;
      case 'counters':
        this.counters[i] = message.counters;
        if (--this.countersWanted === 0) printCounters(this.counters as Counters[]);
        break;
      case 'stopped':
        this.stopped[i] = message.counters;
        if (this.stopped.filter((c) => c !== undefined).length === this.count) {
          printCounters(this.stopped as Counters[]);
          log('Stopped.');
        }
        break;
      case 'draining':
        this.draining[i] = message.open;
        if (this.draining.filter((c) => c !== undefined).length === this.count) {
          // No worker has them in its epoll set any more: new connections are refused from here.
          this.sockets.closeAll();
          const open = (this.draining as number[]).reduce((a, b) => a + b, 0);
          log(`Draining: not accepting any more; ${open} connection${open === 1 ? '' : 's'} still open.`);
        }
        break;
      case 'reloaded':
        if (++this.reloaded === this.count && this.onReloaded !== null) {
          const done = this.onReloaded;
          this.onReloaded = null;
          done();
        }
        break;
      case 'health':
        for (let w = 1; w < this.count; w++) this.tell(w, message);
        break;
      case 'failed':
        this.tell(0, message);
        break;
      case 'limited':
        this.errors.error(message.kind, message.message);
        break;
      case 'gather':
        this.gather();
        break;
      case 'report':
        if (this.reports !== null) {
          this.reports.push(message.report);
          if (this.reports.length === this.count - 1) this.answerGather();
        }
        break;
    }
  }

  private gather(): void {
    if (this.reports !== null) return; // one gathering at a time; worker 0 queues its askers
    this.reports = [];
    for (let w = 1; w < this.count; w++) this.tell(w, { type: 'report' });
    this.reportsTimer = setTimeout(() => this.answerGather(), GATHER_LIMIT_MS);
  }

  private answerGather(): void {
    if (this.reports === null) return;
    if (this.reportsTimer !== null) clearTimeout(this.reportsTimer);
    const reports = this.reports.sort((a, b) => a.worker - b.worker);
    this.reports = null;
    this.reportsTimer = null;
    this.tell(0, { type: 'gathered', reports });
  }
}

function printCounters(all: Counters[]): void {
  describeCounters(sumCounters(all)).forEach((line) => log(line));
  describeWorkers(all).forEach((line) => log(line));
}
