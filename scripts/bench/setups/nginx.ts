// nginx as a peer: the stream module (a TCP proxy like rsp) and the http
// proxy (parses HTTP, keeps backend connections alive across clients), one
// worker process. The helpers also start the nginx backend (backends.ts).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { hardNofile } from '../procfs';
import { freePort, running, startService, type Service } from '../processes';
import type { Setup } from '../setup';
import type { Tools } from '../tools';

export function nginxConf(tools: Tools, dir: string, name: string, body: string, connections: number): string {
  const nofile = Math.min(hardNofile(), 1 << 20);
  return `${tools.nginxStream !== null && body.includes('stream {') ? tools.nginxStream : ''}
worker_processes 1;
worker_rlimit_nofile ${nofile};
pid ${path.join(dir, `${name}.pid`)};
error_log ${path.join(dir, `${name}-error.log`)} error;
events {
  worker_connections ${connections};
}
${body}
`;
}

export function nginxTempPaths(tools: Tools, dir: string, name: string): string {
  const lines = ['client_body', 'proxy', ...tools.nginxTempModules].map((m) => `  ${m}_temp_path ${path.join(dir, `${name}-${m}-temp`)};`);
  return lines.join('\n');
}

export async function startNginx(conf: string, dir: string, name: string, port: number): Promise<Service> {
  const file = path.join(dir, `${name}.conf`);
  fs.writeFileSync(file, conf);
  return startService('nginx', ['-p', dir, '-c', file, '-e', path.join(dir, `${name}-error.log`), '-g', 'daemon off;'], { port });
}

export const nginxStream: Setup = {
  name: 'nginx-stream',
  label: 'nginx stream',
  proxy: true,
  needs: (tools) => (!tools.nginx ? 'nginx not installed' : tools.nginxStream === null ? 'nginx stream module not found' : null),
  async start(backendPort, dir, tools, connections) {
    const port = await freePort();
    const conf = nginxConf(tools, dir, `stream-${backendPort}`, `
stream {
  upstream app { server 127.0.0.1:${backendPort}; }
  server {
    listen 127.0.0.1:${port} backlog=4096;
    proxy_pass app;
    proxy_timeout 600s;
  }
}`, connections * 2 + 1000);
    return running(await startNginx(conf, dir, `stream-${backendPort}`, port));
  },
};

export const nginxHttp: Setup = {
  name: 'nginx-http',
  label: 'nginx http',
  proxy: true,
  needs: (tools) => (tools.nginx ? null : 'nginx not installed'),
  async start(backendPort, dir, tools, connections) {
    const port = await freePort();
    const name = `http-${backendPort}`;
    const conf = nginxConf(tools, dir, name, `
http {
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 600s;
  client_header_timeout 600s;
${nginxTempPaths(tools, dir, name)}
  upstream app {
    server 127.0.0.1:${backendPort};
    keepalive 32; # as rsp's HTTP mode keeps per member by default
    keepalive_requests 1000000;
    keepalive_timeout 600s;
  }
  server {
    listen 127.0.0.1:${port} backlog=4096;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_max_temp_file_size 0;
      proxy_read_timeout 600s;
      proxy_send_timeout 600s;
    }
  }
}`, connections * 2 + 1000);
    return running(await startNginx(conf, dir, name, port));
  },
};
