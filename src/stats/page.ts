// `/`: a self-contained HTML status page in the spirit of HAProxy's stats
// page - one table per pool with its members - refreshing itself every 5 s.
// No external assets: it must work on a server with no way out.
import type { StatsSnapshot } from './snapshot';

function esc(text: string | number): string {
  return String(text).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 * 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 / 1024 / 1024).toFixed(2)} GiB`;
}

function table(head: string[], rows: string[][], rowClass: (i: number) => string = () => ''): string {
  return `<table><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows
    .map((r, i) => `<tr class="${rowClass(i)}">${r.map((c) => `<td>${c}</td>`).join('')}</tr>`)
    .join('')}</tbody></table>`;
}

export function statusPage(s: StatsSnapshot): string {
  const t = s.totals;
  const pools = s.pools.map((p) => {
    const rows = p.members.map((m) => [
      esc(m.name),
      `<span class="state ${m.state}">${m.state}${m.backup ? ' (backup)' : ''}</span>`,
      esc(m.weight), esc(m.active), esc(m.total), esc(m.failures), esc(bytes(m.bytesOut)), esc(bytes(m.bytesIn)),
      esc(m.state === 'down' ? m.downReason : m.lastCheck || '-'),
    ]);
    return `<h2>Pool ${esc(p.name)} <small>${esc(p.balance)}, ${p.up} of ${p.members.length} up</small></h2>${table(
      ['member', 'state', 'weight', 'active', 'total', 'failures', 'bytes to it', 'bytes from it', 'last check / why down'],
      rows,
      (i) => p.members[i].state,
    )}`;
  }).join('\n');
  const listeners = table(
    ['listener', 'pool', 'active', 'total', 'bytes in', 'bytes out'],
    s.listeners.map((l) => [esc(l.name), esc(l.pool), esc(l.connectionsActive), esc(l.connectionsTotal), esc(bytes(l.bytesIn)), esc(bytes(l.bytesOut))]),
  );
  const closes = table(['closed because', 'connections'], Object.entries(s.closes).sort((a, b) => b[1] - a[1]).map(([c, n]) => [esc(c), esc(n)]));
  const reactor = table(
    ['epoll_wait', 'events', 'events per wait', 'stale events', 'reads', 'writes', 'system calls'],
    [[esc(t.waits), esc(t.events), esc(t.waits > 0 ? (t.events / t.waits).toFixed(2) : '0'), esc(t.staleEvents), esc(t.reads), esc(t.writes), esc(t.syscalls)]],
  );
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="5">
<title>rsp status</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.4em 0 .4em}small{color:#666;font-weight:normal}
table{border-collapse:collapse;margin-bottom:.5em}th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#eee}td:first-child,th:first-child{text-align:left}
tr.down td{background:#fdd}tr.up td{background:#efe}.state.down{color:#a00;font-weight:bold}.state.up{color:#070}
</style></head><body>
<h1>rsp ${esc(s.version)}</h1>
<p>pid ${esc(s.pid)} · up ${esc(s.uptimeSeconds)} s · health: ${esc(s.health)} · refreshes every 5 s · <a href="/stats">JSON</a> · <a href="/metrics">metrics</a></p>
<h2>Listeners</h2>
${listeners}
${pools}
<h2>Connections closed</h2>
${closes}
<h2>Reactor</h2>
${reactor}
</body></html>
`;
}
