// /metrics: the snapshot in Prometheus' text format 0.0.4 - `# HELP` and
// `# TYPE` once per metric, names with an `rsp_` prefix, labels rather than
// name variants, counters ending in _total.
import type { StatsSnapshot } from './snapshot';

type Labels = Record<string, string | number>;

/** Label values escaped as the format says: backslash, double quote, newline. */
function escape(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

class Metrics {
  private readonly lines: string[] = [];

  metric(name: string, type: 'counter' | 'gauge', help: string, samples: [Labels, number][]): void {
    this.lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of samples) {
      const entries = Object.entries(labels);
      const text = entries.length === 0 ? '' : `{${entries.map(([k, v]) => `${k}="${escape(String(v))}"`).join(',')}}`;
      this.lines.push(`${name}${text} ${Number.isFinite(value) ? value : 0}`);
    }
  }

  text(): string {
    return this.lines.join('\n') + '\n';
  }
}

export function prometheus(s: StatsSnapshot): string {
  const m = new Metrics();
  m.metric('rsp_up', 'gauge', '1 while rsp is serving.', [[{ version: s.version }, 1]]);
  m.metric('rsp_uptime_seconds', 'gauge', 'Seconds since rsp started.', [[{}, s.uptimeSeconds]]);
  m.metric('rsp_connections_total', 'counter', 'Client connections accepted.', s.listeners.map((l) => [{ listener: l.name }, l.connectionsTotal]));
  m.metric('rsp_connections_active', 'gauge', 'Client connections open now.', s.listeners.map((l) => [{ listener: l.name }, l.connectionsActive]));
  m.metric('rsp_bytes_total', 'counter', 'Bytes from clients (in) and to clients (out).', s.listeners.flatMap((l) => [
    [{ listener: l.name, direction: 'in' }, l.bytesIn] as [Labels, number],
    [{ listener: l.name, direction: 'out' }, l.bytesOut] as [Labels, number],
  ]));
  m.metric('rsp_http_requests_total', 'counter', 'HTTP mode: requests read.', s.listeners.map((l) => [{ listener: l.name }, l.requests]));
  m.metric('rsp_http_responses_total', 'counter', 'HTTP mode: responses by class, rsp\'s own answers (4xx, 5xx) included.', s.listeners.flatMap((l) =>
    Object.entries(l.responses).map(([code, n]) => [{ listener: l.name, code }, n] as [Labels, number])));
  const members = s.pools.flatMap((p) => p.members.map((mb) => ({ pool: p.name, mb })));
  m.metric('rsp_backend_up', 'gauge', '1 while a pool member takes traffic, 0 while it is down.', members.map(({ pool, mb }) => [{ pool, member: mb.name }, mb.state === 'up' ? 1 : 0]));
  m.metric('rsp_backend_connections_total', 'counter', 'Connections established with a pool member.', members.map(({ pool, mb }) => [{ pool, member: mb.name }, mb.total]));
  m.metric('rsp_backend_connections_active', 'gauge', 'Connections open (or connecting) with a pool member now.', members.map(({ pool, mb }) => [{ pool, member: mb.name }, mb.active]));
  m.metric('rsp_backend_failures_total', 'counter', 'Connects to a pool member that failed.', members.map(({ pool, mb }) => [{ pool, member: mb.name }, mb.failures]));
  m.metric('rsp_backend_bytes_total', 'counter', 'Bytes to a pool member (out) and from it (in).', members.flatMap(({ pool, mb }) => [
    [{ pool, member: mb.name, direction: 'in' }, mb.bytesIn] as [Labels, number],
    [{ pool, member: mb.name, direction: 'out' }, mb.bytesOut] as [Labels, number],
  ]));
  m.metric('rsp_pool_members_up', 'gauge', 'Members of a pool that take traffic.', s.pools.map((p) => [{ pool: p.name }, p.up]));
  m.metric('rsp_closes_total', 'counter', 'Connections closed, by cause.', Object.entries(s.closes).map(([cause, n]) => [{ cause }, n]));
  const perWorker = (help: string, name: string, pick: (c: StatsSnapshot['totals']) => number): void =>
    m.metric(name, 'counter', help, s.workers.map((w) => [{ worker: w.worker }, pick(w.counters)]));
  perWorker('epoll_wait calls.', 'rsp_epoll_wait_calls_total', (c) => c.waits);
  perWorker('Events epoll_wait reported.', 'rsp_epoll_events_total', (c) => c.events);
  perWorker('Events for a handler closed earlier in the same batch, skipped.', 'rsp_epoll_stale_events_total', (c) => c.staleEvents);
  perWorker('read() calls.', 'rsp_reads_total', (c) => c.reads);
  perWorker('write() calls.', 'rsp_writes_total', (c) => c.writes);
  perWorker('splice() calls (zero copy).', 'rsp_splices_total', (c) => c.splices);
  perWorker('Bytes moved from sockets into pipes by splice() (zero copy).', 'rsp_spliced_bytes_total', (c) => c.bytesSpliced);
  perWorker('Every system call the reactor made.', 'rsp_syscalls_total', (c) => c.syscalls);
  perWorker('Connections accepted.', 'rsp_accepts_total', (c) => c.accepts);
  return m.text();
}
