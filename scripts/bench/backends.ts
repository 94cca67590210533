// The backends every setup is pointed at: nginx serving /small and a /bulk
// file (or backend-server.ts's Node http server when nginx is missing), and the
// hold-everything backend for the idle-connection memory figure. Each listens
// on BACKEND_PORTS ports, one process behind all of them: the single-backend
// setups use the first, the pool setup one member per port, so the pool's
// members are distinct sockets while the backend's capacity stays the same
// for every setup (three backend processes would change it on 2 cores).
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { BACKEND_PORTS, SMALL_BODY } from './constants';
import type { Params } from './options';
import { canConnect, freePort, startService, type Service } from './processes';
import { nginxConf, nginxTempPaths, startNginx } from './setups/nginx';
import type { Tools } from './tools';

export const BENCH_BACKEND = path.join(__dirname, 'backend-server.js');

export interface Backend {
  kind: 'nginx' | 'node';
  service: Service;
  /** Every port it serves on, service.port first. */
  ports: number[];
  /** Connections the backend has accepted so far, or null if it cannot tell. */
  accepted(): Promise<number | null>;
}

export async function startBackend(tools: Tools, dir: string, p: Params): Promise<Backend> {
  if (tools.nginx) {
    const root = path.join(dir, 'www');
    fs.mkdirSync(root, { recursive: true });
    fs.chmodSync(dir, 0o755); // nginx's worker may run as nobody
    fs.chmodSync(root, 0o755);
    await writeBulkFile(path.join(root, 'bulk'), p.bulkBytes);
    const ports: number[] = [];
    while (ports.length < BACKEND_PORTS) {
      const p = await freePort();
      if (!ports.includes(p)) ports.push(p);
    }
    const port = ports[0];
    const conf = nginxConf(tools, dir, 'backend', `
http {
  access_log off;
  default_type application/octet-stream;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  keepalive_timeout 600s;
${nginxTempPaths(tools, dir, 'backend')}
  server {
${ports.map((p) => `    listen 127.0.0.1:${p} backlog=4096;`).join('\n')}
    root ${root};
    location = /small { default_type text/plain; return 200 "${SMALL_BODY}"; }
    location = /bulk { }
${tools.nginxStubStatus ? '    location = /status { stub_status; }' : ''}
  }
}`, 4096);
    const service = await startNginx(conf, dir, 'backend', port);
    for (const other of ports.slice(1)) {
      if (!(await canConnect(other))) throw new Error(`the nginx backend does not accept on its port ${other}`);
    }
    return { kind: 'nginx', service, ports, accepted: () => (tools.nginxStubStatus ? statusAccepts(port) : Promise.resolve(null)) };
  }
  const service = await startService(process.execPath, [BENCH_BACKEND, 'http', String(p.bulkBytes), String(BACKEND_PORTS)]);
  return { kind: 'node', service, ports: allPorts(service), accepted: () => statusAccepts(service.port) };
}

/** backend-server.ts's ports: "Listening on port N." and, with several, "Also listening on ports N2, N3.". */
function allPorts(service: Service): number[] {
  const also = /Also listening on ports ([\d, ]+)\./.exec(service.output());
  const ports = [service.port, ...(also ? also[1].split(',').map((t) => Number(t.trim())) : [])];
  if (ports.length !== BACKEND_PORTS) throw new Error(`backend-server listens on ${ports.length} ports, not ${BACKEND_PORTS}: ${service.output().trim()}`);
  return ports;
}

async function writeBulkFile(file: string, bytes: number): Promise<void> {
  const chunk = Buffer.alloc(1 << 20, 'b');
  const fd = fs.openSync(file, 'w', 0o644);
  try {
    for (let left = bytes; left > 0; left -= chunk.length) fs.writeSync(fd, chunk, 0, Math.min(left, chunk.length));
  } finally {
    fs.closeSync(fd);
  }
  fs.chmodSync(file, 0o644);
}

function statusAccepts(port: number): Promise<number | null> {
  return new Promise((resolve) => {
    http.get(`http://127.0.0.1:${port}/status`, { agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => {
        const m = /server accepts handled requests\s+(\d+)/.exec(body);
        resolve(m ? Number(m[1]) : null);
      });
    }).on('error', () => resolve(null));
  });
}

/** The hold-everything backend for the idle-connection memory figure. */
export interface HoldBackend {
  service: Service;
  /** Every port it holds connections on, service.port first. */
  ports: number[];
  count(): Promise<number>;
}

export async function startHoldBackend(): Promise<HoldBackend> {
  const service = await startService(process.execPath, [BENCH_BACKEND, 'hold', String(BACKEND_PORTS)], { ipc: true });
  const proc = service.proc;
  return {
    service,
    ports: allPorts(service),
    count: () =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('hold backend did not answer')), 5000);
        const onMessage = (m: { type: string; count: number }): void => {
          if (m.type !== 'count') return;
          clearTimeout(timer);
          proc.off('message', onMessage);
          resolve(m.count);
        };
        proc.on('message', onMessage);
        proc.send({ type: 'count' });
      }),
  };
}
