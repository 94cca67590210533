// rsp as the lab runs it: the real CLI (bin/rsp) as a child process with a
// Lua config written for one row, and the counters it prints (on SIGUSR2
// and on exit, src/counters.ts) parsed into numbers.
//
// Every rsp started here is in `running` until it has exited, so that
// killAll() can end them all on an error, on Ctrl-C or on SIGTERM.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { HOST } from './params';

const ROOT = path.join(__dirname, '..', '..', '..');
const RSP_BIN = path.join(ROOT, 'bin', 'rsp');

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
  /** EPOLLPRI: urgent marks met (the urgent byte itself is dropped). */
  urgentMarks: number;
  /** Zero copy: splice() calls, bytes spliced from sockets into pipes, pipes opened. */
  splices: number;
  bytesSpliced: number;
  pipes: number;
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
    'bytes-written': 'bytesWritten', 'bytes-queued': 'bytesQueued', 'peak-queue': 'peakQueue', 'urgent-marks': 'urgentMarks',
    splices: 'splices', 'bytes-spliced': 'bytesSpliced', pipes: 'pipes',
  },
  connections: { accepts: 'accepts', 'accept-calls': 'acceptCalls', connects: 'connects', 'other-calls': 'otherCalls', syscalls: 'syscalls' },
};

export function emptyCounters(): RspCounters {
  return {
    waits: 0, events: 0, maxBatch: 0, staleEvents: 0, deferred: 0, ctlAdd: 0, ctlMod: 0, ctlDel: 0, reads: 0, readsEagain: 0,
    writes: 0, shortWrites: 0, bytesRead: 0, bytesWritten: 0, bytesQueued: 0, peakQueue: 0, urgentMarks: 0, splices: 0, bytesSpliced: 0, pipes: 0, accepts: 0, acceptCalls: 0,
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

/** Children still running (rsp, with the temporary directory of its config; others with ''), for killAll(). */
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
    if (dir !== '') fs.rmSync(dir, { recursive: true, force: true });
  }
  running.clear();
}

/** Another child of the lab (not rsp) for killAll() to end; it leaves the list when it has gone. */
export function track(proc: ChildProcess): void {
  running.set(proc, '');
  proc.once('close', () => running.delete(proc));
}

/** A setting written into the config as Lua, as it is (a table: `backends = { ... }`). */
export class Lua {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

export type RspSettings = Record<string, string | number | boolean | Lua>;

function luaConfig(settings: RspSettings): string {
  return Object.entries(settings)
    .map(([k, v]) => `${k} = ${typeof v === 'string' ? JSON.stringify(v) : String(v)}`)
    .join('\n') + '\n';
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export class RspProcess {
  private constructor(
    readonly proc: ChildProcess,
    readonly port: number,
    /** Resolves on 'close': it has exited and everything it printed has been read. */
    private readonly exited: Promise<void>,
    /** Everything it printed so far, stdout and stderr interleaved. */
    readonly output: () => string,
    readonly isClosed: () => boolean,
  ) {}

  /** Write the config, start `bin/rsp config.lua`, wait for "Listening on port N". */
  static async start(settings: RspSettings): Promise<RspProcess> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rsp-lab-'));
    const config = path.join(dir, 'rsp.lua');
    // A pool (backends = ...) replaces backendAddress/backendPort.
    const backend: RspSettings = 'backends' in settings ? {} : { backendAddress: HOST };
    // drainTimeout = 0: SIGTERM stops at once (the lab's connections are its own).
    // workers = 1: the experiments watch one reactor (the thundering herd sets its own);
    // zeroCopy = "off": they watch read() and write() (the copy vs splice experiment says otherwise).
    fs.writeFileSync(config, luaConfig({ listenPort: '0', listenAddress: HOST, drainTimeout: 0, workers: 1, zeroCopy: 'off', ...backend, ...settings }));
    const proc = spawn(process.execPath, [RSP_BIN, '--die-with-parent', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    running.set(proc, dir);
    let closed = false;
    // 'close', not 'exit': 'exit' can come before the last of its output is read.
    const exited = new Promise<void>((resolve) => proc.once('close', () => {
      closed = true;
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
    return new RspProcess(proc, port, exited, () => out, () => closed);
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
      if (this.isClosed()) throw new Error(`rsp exited before printing ${what}:\n${this.output()}`);
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
    if (!this.isClosed() && this.proc.exitCode === null && this.proc.signalCode === null) {
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
