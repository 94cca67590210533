// What the stats listener shows, gathered from where the hot path keeps it:
// the reactor's counters, each listener's ListenerStats, each pool's members
// (plain number fields all). Building it reads those fields once; nothing on
// the hot path waits for it.
import type { Member } from '../balancer/member';
import { DOWN } from '../balancer/member';
import type { Pool } from '../balancer/pool';
import { syscalls, type Counters } from '../counters';
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
  listeners: { name: string; pool: string; connectionsTotal: number; connectionsActive: number; bytesIn: number; bytesOut: number }[];
  pools: { name: string; balance: string; up: number; members: MemberSnapshot[] }[];
  /** Connections closed, by cause (closed, ECONNRESET, idle timeout, no backend (...)...). */
  closes: Record<string, number>;
  /** Per worker thread, then summed (one worker today). */
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
}

function member(m: Member): MemberSnapshot {
  return {
    name: m.name, state: m.state === DOWN ? 'down' : 'up', backup: m.backup, weight: m.weight,
    active: m.active, total: m.total, failures: m.failures, bytesIn: m.bytesIn, bytesOut: m.bytesOut,
    lastCheck: m.lastCheck, downReason: m.downReason,
  };
}

export function snapshot(src: StatsSources, now = Date.now()): StatsSnapshot {
  const { closes, ...rest } = src.counters;
  const counters = { ...rest, syscalls: syscalls(src.counters) };
  return {
    version: src.version,
    pid: process.pid,
    uptimeSeconds: Math.round((now - src.startedAt) / 1000),
    health: src.health,
    listeners: src.listeners.map(({ stats, pool }) => ({
      name: stats.name, pool, connectionsTotal: stats.total, connectionsActive: stats.active, bytesIn: stats.bytesIn, bytesOut: stats.bytesOut,
    })),
    pools: src.pools.map((p) => ({ name: p.name, balance: p.balance, up: p.upCount, members: p.members.map(member) })),
    closes: { ...closes },
    workers: [{ worker: 0, counters }],
    totals: counters,
  };
}
