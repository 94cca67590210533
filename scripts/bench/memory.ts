// Memory with idle proxied connections: a fresh proxy in front of the backend
// that holds every connection without answering; RSS before the connections
// and once the backend counts them all.
import type * as net from 'node:net';
import { fmt1, fmtInt, fmtMB } from './format';
import { connect } from './load';
import { sleep } from './processes';
import { rssBytes } from './procfs';
import type { Context, SetupState } from './state';

/** Fills in the row's `rss`; returns the progress line. */
export async function idleMemory(ctx: Context, s: SetupState): Promise<string> {
  const { params: p, tools } = ctx;
  const row = s.row;
  const proxy = await s.setup.start(ctx.hold.service.port, ctx.dir, tools, p.idleConns + 1000, ctx.hold.ports);
  const sockets: net.Socket[] = [];
  try {
    await sleep(p.settleMs);
    const baseline = rssBytes(proxy.pids());
    // One small request each, so that the HTTP proxies open their backend connection too.
    const request = Buffer.from('GET /idle HTTP/1.1\r\nHost: bench\r\n\r\n');
    for (let i = 0; i < p.idleConns; i += 200) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(200, p.idleConns - i) }, () =>
          connect(proxy.port).then(
            (socket) => {
              socket.on('error', () => {});
              socket.write(request);
              return socket;
            },
            () => null,
          ),
        ),
      );
      for (const socket of batch) if (socket) sockets.push(socket);
    }
    let established = 0;
    const deadline = Date.now() + 30_000;
    while ((established = await ctx.hold.count()) < p.idleConns && Date.now() < deadline) await sleep(200);
    await sleep(p.settleMs);
    const loaded = rssBytes(proxy.pids());
    row.rss = { baseline, loaded, conns: p.idleConns, established };
    if (established < p.idleConns) row.notes.push(`idle memory: only ${established} of ${p.idleConns} connections reached the backend`);
    return `${fmtMB(loaded)} with ${fmtInt(established)}/${fmtInt(p.idleConns)} connections established at the backend (idle ${fmtMB(baseline)}, +${fmt1((loaded - baseline) / 1000 / p.idleConns)} KB/conn)`;
  } finally {
    for (const socket of sockets) socket.destroy();
    await proxy.stop();
    const deadline = Date.now() + 10_000;
    while ((await ctx.hold.count()) > 0 && Date.now() < deadline) await sleep(100);
  }
}
