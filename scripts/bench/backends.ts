// The backends every setup is pointed at: nginx serving /small and a /bulk
// file (or backend-server.ts's Node http server when nginx is missing), and the
// hold-everything backend for the idle-connection memory figure.
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { SMALL_BODY } from './constants';
import type { Params } from './options';
import { freePort, startService, type Service } from './processes';
import { nginxConf, nginxTempPaths, startNginx } from './setups/nginx';
import type { Tools } from './tools';

export const BENCH_BACKEND = path.join(__dirname, 'backend-server.js');

export interface Backend {
  kind: 'nginx' | 'node';
  service: Service;
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
    const port = await freePort();
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
    listen 127.0.0.1:${port} backlog=4096;
    root ${root};
    location = /small { default_type text/plain; return 200 "${SMALL_BODY}"; }
    location = /bulk { }
${tools.nginxStubStatus ? '    location = /status { stub_status; }' : ''}
  }
}`, 4096);
    const service = await startNginx(conf, dir, 'backend', port);
    return { kind: 'nginx', service, accepted: () => (tools.nginxStubStatus ? statusAccepts(port) : Promise.resolve(null)) };
  }
  const service = await startService(process.execPath, [BENCH_BACKEND, 'http', String(p.bulkBytes)]);
  return { kind: 'node', service, accepted: () => statusAccepts(service.port) };
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
  count(): Promise<number>;
}

export async function startHoldBackend(): Promise<HoldBackend> {
  const service = await startService(process.execPath, [BENCH_BACKEND, 'hold'], { ipc: true });
  const proc = service.proc;
  return {
    service,
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
