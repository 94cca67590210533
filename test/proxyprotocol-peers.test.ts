// PROXY protocol against real peers, when they are installed (skipped
// visibly otherwise): HAProxy's send-proxy / send-proxy-v2 in front of rsp
// (acceptProxy), HAProxy's accept-proxy behind rsp (sendProxy), and nginx
// stream's `proxy_protocol on` in front and `listen ... proxy_protocol`
// behind. No port is guessed: HAProxy gets its listening socket from the
// test (fd 3, bound on an ephemeral loopback port; connections wait in the
// backlog until it is ready); nginx binds, with reuseport, a port the test
// holds bound with SO_REUSEPORT (not listening, so it takes no connection).
import test, { type ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import * as libc from '../ffi/libc';
import { createAndBind } from '../src/listener';
import { localAddress } from '../src/netutils';
import { isHeaderError, NEED_MORE, ProxyHeaderParser } from '../src/proxyprotocol/parse';
import { toSockaddr } from '../ffi/sockaddr';
import { listen, running, tempFile, waitUntil, within } from './helpers';
import { startRspLua } from './lua';

const HAPROXY = '/usr/sbin/haproxy';
const NGINX = '/usr/sbin/nginx';
const NGINX_STREAM = '/usr/lib/nginx/modules/ngx_stream_module.so';
const haveHaproxy = fs.existsSync(HAPROXY);
const haveNginx = fs.existsSync(NGINX) && fs.existsSync(NGINX_STREAM);

/** A listening socket on 127.0.0.1 for a peer to inherit as fd 3. */
function listeningSocket(t: ExecutionContext): { fd: number; port: number } {
  const fd = createAndBind('127.0.0.1', 0, 64);
  t.teardown(() => libc.close(fd));
  return { fd, port: localAddress(fd)!.port };
}

/** A loopback port held bound (SO_REUSEPORT, not listening) for a peer to listen on with reuseport. */
function reservedPort(t: ExecutionContext): number {
  const fd = libc.check('socket', libc.socket(libc.AF_INET, libc.SOCK_STREAM | libc.SOCK_CLOEXEC, 0));
  t.teardown(() => libc.close(fd));
  const one = Buffer.alloc(4);
  one.writeInt32LE(1, 0);
  libc.check('setsockopt(SO_REUSEPORT)', libc.setsockopt(fd, libc.SOL_SOCKET, libc.SO_REUSEPORT, one, 4));
  const sa = toSockaddr('127.0.0.1', 0);
  libc.check('bind', libc.bind(fd, sa, sa.length));
  return localAddress(fd)!.port;
}

/** Resolves once something accepts connections on `port` (ECONNREFUSED until then). */
async function listening(port: number, what: () => string, limitMs = 20000): Promise<void> {
  const start = Date.now();
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() - start > limitMs) throw new Error(`nothing listens on port ${port} after ${limitMs} ms: ${what()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Run a peer with `fd` as its fd 3; killed when the test ends. */
function startPeer(t: ExecutionContext, command: string, args: string[], fd: number | 'ignore'): { output(): string } {
  const proc = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe', fd] });
  let out = '';
  proc.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  proc.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  proc.on('error', (e) => (out += `[spawn error: ${e.message}]`));
  const closed = new Promise((r) => proc.on('close', r));
  t.teardown(async () => {
    if (running(proc)) proc.kill('SIGKILL');
    await Promise.race([closed, new Promise((r) => setTimeout(r, 5000).unref())]);
  });
  return { output: () => out };
}

/** Connect from 127.0.0.2, send `send`, (optionally) end, read to the end. */
function converse(port: number, send: string, end: boolean): Promise<{ answer: string; localPort: number }> {
  const s = net.connect({ port, host: '127.0.0.1', localAddress: '127.0.0.2' });
  return within(new Promise<{ answer: string; localPort: number }>((resolve, reject) => {
    let answer = '';
    s.on('connect', () => {
      if (send !== '') s.write(send);
      if (end) s.end();
    });
    s.on('data', (c: Buffer) => (answer += c.toString('latin1')));
    s.on('end', () => resolve({ answer, localPort: s.localPort! }));
    s.on('error', reject);
  }), 20000, `an answer through port ${port}`).finally(() => s.destroy());
}

/**
 * A backend that parses the PROXY header with rsp's parser and answers
 * "vN source destination data"; `headers` gets "vN source" of each header
 * as soon as it is parsed.
 */
function headerBackend(t: ExecutionContext, headers: string[] = []): Promise<number> {
  return listen(t, net.createServer((s) => {
    const parser = new ProxyHeaderParser();
    let answer = '';
    let done = false;
    s.on('data', (chunk: Buffer) => {
      if (done) {
        answer += chunk.toString('latin1');
        return;
      }
      const r = parser.feed(chunk, chunk.length);
      if (r === NEED_MORE) return;
      done = true;
      if (isHeaderError(r)) answer = `error: ${r.error}`;
      else answer = `v${r.version} ${r.source?.text} ${r.destination?.text} ${chunk.subarray(parser.restOffset).toString('latin1')}`;
      headers.push(answer.split(' ').slice(0, 2).join(' '));
    });
    s.on('end', () => s.end(answer));
  }));
}

function haproxyConfig(body: string): string {
  return `global
  maxconn 200
defaults
  timeout connect 5s
  timeout client 30s
  timeout server 30s
${body}`;
}

function nginxConfig(dir: string, stream: string): string {
  return `load_module ${NGINX_STREAM};
daemon off;
master_process off;
pid ${dir}/nginx.pid;
error_log stderr info;
events { worker_connections 64; }
stream {
${stream}
}
`;
}

async function startNginx(t: ExecutionContext, port: number, server: string): Promise<{ output(): string }> {
  const file = tempFile(t, 'nginx.conf', '');
  const dir = path.dirname(file);
  fs.writeFileSync(file, nginxConfig(dir, server));
  const nginx = startPeer(t, NGINX, ['-p', dir, '-e', 'stderr', '-c', file], 'ignore');
  await listening(port, () => nginx.output());
  return nginx;
}

// ---------------------------------------------------------------- HAProxy

for (const [option, version] of [['send-proxy', 1], ['send-proxy-v2', 2]] as const) {
  (haveHaproxy ? test : test.skip)(`HAProxy ${option} in front of rsp (acceptProxy): the client HAProxy saw is the one rsp passes on`, async (t) => {
    const headers: string[] = [];
    const backendPort = await headerBackend(t, headers);
    const rsp = await startRspLua(t, `
listenPort = "0"
listenAddress = "127.0.0.1"
acceptProxy = true
backends = { app = { "127.0.0.1:${backendPort}", sendProxy = "v1" } }
`);
    const front = listeningSocket(t);
    // HAProxy's health checks with check-send-proxy: a v2 LOCAL header (v1: TCP4 with the check's own addresses).
    const haproxy = startPeer(t, HAPROXY, ['-db', '-f', tempFile(t, 'haproxy.cfg', haproxyConfig(`
frontend in
  mode tcp
  bind fd@3
  default_backend rsp
backend rsp
  mode tcp
  server rsp 127.0.0.1:${rsp.port} ${option} check check-send-proxy inter 100
`))], front.fd);
    for (const data of ['hello', 'again']) {
      const { answer, localPort } = await converse(front.port, data, true).catch((e: Error) => {
        throw new Error(`${e.message}\nHAProxy:\n${haproxy.output()}\nrsp:\n${rsp.output()}`);
      });
      t.is(answer, `v1 127.0.0.2:${localPort} 127.0.0.1:${front.port} ${data}`, `(HAProxy sent v${version})`);
    }
    // A check reaches the backend named by its real address (HAProxy's, 127.0.0.1), and nothing is refused.
    await waitUntil(() => headers.some((h) => /^v1 127\.0\.0\.1:\d+$/.test(h)), 'a health check through rsp, named by HAProxy\'s own address');
    t.notRegex(rsp.output(), /Bad PROXY/);
  });
}

for (const version of ['v1', 'v2'] as const) {
  (haveHaproxy ? test : test.skip)(`rsp sendProxy = "${version}" in front of HAProxy accept-proxy: HAProxy's src is rsp's client`, async (t) => {
    const back = listeningSocket(t);
    const haproxy = startPeer(t, HAPROXY, ['-db', '-f', tempFile(t, 'haproxy.cfg', haproxyConfig(`
frontend in
  mode http
  bind fd@3 accept-proxy
  http-request return status 200 content-type text/plain lf-string "%[src]:%[src_port] %[dst]:%[dst_port]"
`))], back.fd);
    const rsp = await startRspLua(t, `
listenPort = "0"
listenAddress = "127.0.0.1"
backends = { app = { "127.0.0.1:${back.port}", sendProxy = "${version}" } }
`);
    const { answer, localPort } = await converse(rsp.port, 'GET / HTTP/1.0\r\nHost: rsp\r\n\r\n', false).catch((e: Error) => {
      throw new Error(`${e.message}\nHAProxy:\n${haproxy.output()}\nrsp:\n${rsp.output()}`);
    });
    t.regex(answer, /^HTTP\/1\.[01] 200/);
    t.is(answer.split('\r\n\r\n')[1], `127.0.0.2:${localPort} 127.0.0.1:${rsp.port}`, answer);
  });
}

// ---------------------------------------------------------------- nginx

(haveNginx ? test : test.skip)('nginx stream proxy_protocol on in front of rsp (acceptProxy): the client nginx saw is the one rsp passes on', async (t) => {
  const backendPort = await headerBackend(t);
  const rsp = await startRspLua(t, `
listenPort = "0"
listenAddress = "127.0.0.1"
acceptProxy = true
backends = { app = { "127.0.0.1:${backendPort}", sendProxy = "v2" } }
`);
  const front = { port: reservedPort(t) };
  const nginx = await startNginx(t, front.port, `  server { listen 127.0.0.1:${front.port} reuseport; proxy_pass 127.0.0.1:${rsp.port}; proxy_protocol on; proxy_half_close on; }`);
  const { answer, localPort } = await converse(front.port, 'hello', true).catch((e: Error) => {
    throw new Error(`${e.message}\nnginx:\n${nginx.output()}\nrsp:\n${rsp.output()}`);
  });
  t.is(answer, `v2 127.0.0.2:${localPort} 127.0.0.1:${front.port} hello`, nginx.output());
});

for (const version of ['v1', 'v2'] as const) {
  (haveNginx ? test : test.skip)(`rsp sendProxy = "${version}" in front of nginx stream listen proxy_protocol: nginx's $proxy_protocol_addr is rsp's client`, async (t) => {
    const back = { port: reservedPort(t) };
    const nginx = await startNginx(t, back.port, `  server {
    listen 127.0.0.1:${back.port} reuseport proxy_protocol;
    return "$proxy_protocol_addr:$proxy_protocol_port $proxy_protocol_server_addr:$proxy_protocol_server_port";
  }`);
    const rsp = await startRspLua(t, `
listenPort = "0"
listenAddress = "127.0.0.1"
backends = { app = { "127.0.0.1:${back.port}", sendProxy = "${version}" } }
`);
    const { answer, localPort } = await converse(rsp.port, '', false).catch((e: Error) => {
      throw new Error(`${e.message}\nnginx:\n${nginx.output()}\nrsp:\n${rsp.output()}`);
    });
    t.is(answer, `127.0.0.2:${localPort} 127.0.0.1:${rsp.port}`, nginx.output());
  });
}
