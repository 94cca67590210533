// What the stats listener shows, gathered from where the hot path keeps it:
// the reactor's counters, each listener's ListenerStats, each pool's members
// (plain number fields all). Building it reads those fields once; nothing on
// the hot path waits for it.
import type { Member } from '../balancer/member';
import { DOWN } from '../balancer/member';
import type { Pool } from '../balancer/pool';
import { sumCounters, syscalls, type Counters } from '../counters';
import type { ListenerStats } from '../proxy';

export interface MemberSnapshot {
  name: string;
  state: 'up' | 'down';
  backup: boolean;
  weight: number;
  /** Connections open now (and connects in progress), and established in all. */
  active: number;
  total: number;
  failures: number;
  bytesIn: number;
  bytesOut: number;
  /** '' before the first active check, 'ok', or why it failed. */
  lastCheck: string;
  /** Why it is down ('' while up). */
  downReason: string;
}

export interface StatsSnapshot {
  version: string;
  pid: number;
  uptimeSeconds: number;
  /** "ok" while serving; "draining" from SIGTERM on (/healthz then answers 503). */
  health: 'ok' | 'draining';
  listeners: ({ name: string; pool: string } & ListenerFigures)[];
  pools: { name: string; balance: string; up: number; members: MemberSnapshot[] }[];
  /** Connections closed, by cause (closed, ECONNRESET, idle timeout, no backend (...)...). */
  closes: Record<string, number>;
  /** Per worker thread, then summed. */
  workers: { worker: number; counters: Omit<Counters, 'closes'> & { syscalls: number } }[];
  totals: Omit<Counters, 'closes'> & { syscalls: number };
}

export interface StatsSources {
  version: string;
  health: 'ok' | 'draining';
  startedAt: number;
  counters: Counters;
  listeners: { stats: ListenerStats; pool: string }[];
  pools: Pool[];
  /**
   * With several workers: ask the others for their reports (through the main
   * thread) and call `done` with them; absent with one worker. The stats
   * listener lives in worker 0, the others' figures come from here.
   */
  gather?: (done: (reports: WorkerReport[]) => void) => void;
}

/** A listener's figures (in a worker, or summed over them). */
export interface ListenerFigures {
  connectionsTotal: number;
  connectionsActive: number;
  bytesIn: number;
  bytesOut: number;
  /** HTTP mode: requests read, and responses by class ("2xx": n; rsp's own answers included). */
  requests: number;
  responses: Record<string, number>;
}

const CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'];

function figures(stats: ListenerStats): ListenerFigures {
  const responses: Record<string, number> = {};
  CLASSES.forEach((c, i) => (responses[c] = stats.responses[i + 1]));
  return { connectionsTotal: stats.total, connectionsActive: stats.active, bytesIn: stats.bytesIn, bytesOut: stats.bytesOut, requests: stats.requests, responses };
}

/** What one worker tells worker 0's stats listener: its counters and its share of the listeners' and members' figures. */
export interface WorkerReport {
  worker: number;
  counters: Counters;
  listeners: ({ name: string } & ListenerFigures)[];
  members: { pool: string; name: string; active: number; total: number; failures: number; bytesIn: number; bytesOut: number }[];
}

/** This worker's report, from the same sources the snapshot reads. */
export function workerReport(worker: number, src: StatsSources): WorkerReport {
  return {
    worker,
    counters: src.counters,
    listeners: src.listeners.map(({ stats }) => ({ name: stats.name, ...figures(stats) })),
    members: src.pools.flatMap((p) => p.members.map((m) => ({ pool: p.name, name: m.name, active: m.active, total: m.total, failures: m.failures, bytesIn: m.bytesIn, bytesOut: m.bytesOut }))),
  };
}

function member(m: Member): MemberSnapshot {
  return {
    name: m.name, state: m.state === DOWN ? 'down' : 'up', backup: m.backup, weight: m.weight,
    active: m.active, total: m.total, failures: m.failures, bytesIn: m.bytesIn, bytesOut: m.bytesOut,
    lastCheck: m.lastCheck, downReason: m.downReason,
  };
}

/**
 * The snapshot of worker 0's sources, with the other workers' reports added
 * in: counters per worker and summed, listeners and members summed by name.
 * Members' states are worker 0's, the one that decides them (supervisor/health.ts).
 */
export function snapshot(src: StatsSources, now = Date.now(), others: WorkerReport[] = []): StatsSnapshot {
  const perWorker = (worker: number, c: Counters) => {
    const { closes: _closes, ...rest } = c;
    return { worker, counters: { ...rest, syscalls: syscalls(c) } };
  };
  const all = [src.counters, ...others.map((r) => r.counters)];
  const summed = sumCounters(all);
  const { closes, ...rest } = summed;
  const totals = { ...rest, syscalls: syscalls(summed) };
  const shot: StatsSnapshot = {
    version: src.version,
    pid: process.pid,
    uptimeSeconds: Math.round((now - src.startedAt) / 1000),
    health: src.health,
    listeners: src.listeners.map(({ stats, pool }) => ({ name: stats.name, pool, ...figures(stats) })),
    pools: src.pools.map((p) => ({ name: p.name, balance: p.balance, up: p.upCount, members: p.members.map(member) })),
    closes: { ...closes },
    workers: [perWorker(0, src.counters), ...others.map((r) => perWorker(r.worker, r.counters))],
    totals,
  };
  for (const r of others) {
    for (const l of r.listeners) {
      const mine = shot.listeners.find((x) => x.name === l.name);
      if (mine === undefined) continue;
      mine.connectionsTotal += l.connectionsTotal;
      mine.connectionsActive += l.connectionsActive;
      mine.bytesIn += l.bytesIn;
      mine.bytesOut += l.bytesOut;
      mine.requests += l.requests;
      for (const c of CLASSES) mine.responses[c] += l.responses[c] ?? 0;
    }
    for (const m of r.members) {
      const mine = shot.pools.find((p) => p.name === m.pool)?.members.find((x) => x.name === m.name);
      if (mine === undefined) continue;
      mine.active += m.active;
      mine.total += m.total;
      mine.failures += m.failures;
      mine.bytesIn += m.bytesIn;
      mine.bytesOut += m.bytesOut;
    }
  }
  return shot;
}
