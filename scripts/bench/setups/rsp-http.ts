// rsp in HTTP mode (issue 9), level trigger mode, in three configs that differ
// by one thing each, so that the rows compare:
//
//   rsp-http-bare   mode = "http" and one pool, no routes: every request goes
//                   to the listener's pool (the baseline of the other two)
//   rsp-http        the same with a `routes` table of a few hosts (an exact
//                   one that matches wrk's Host, wildcards, default): the
//                   routes lookup's cost is rsp-http against rsp-http-bare
//   rsp-http-lua    rsp-http plus a Lua `route(req)` that reads one header
//                   and returns nil (falls through to routes): the cost of
//                   calling Lua per request is rsp-http-lua against rsp-http
//
// The pool keeps 32 idle connections per member (rsp's default `keepalive`),
// as nginx-http's `keepalive 32`. Before the rounds, `check` sends one request
// through each (the proxy answers 200 with the backend's body) and checks that
// rsp-http-lua's route() really runs (it answers 299 to a marked request).
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { SMALL_BODY } from '../constants';
import { running, startService } from '../processes';
import type { Setup } from '../setup';
import { RSP_BIN } from './rsp';

type Variant = 'bare' | 'routes' | 'lua';

/** Hosts that do not match wrk's Host, so the table is not a single entry: the lookup still has to pick the exact one. */
const ROUTES = `routes = {
  ["example.com"] = "app",
  ["www.example.com"] = "app",
  ["*.api.example.com"] = "app",
  ["*.example.org"] = "app",
  ["127.0.0.1"] = "app",
  default = "app",
}
`;

/** Reads one header and returns nil (the common case of a hook that routes a few requests and lets the table do the rest). */
const ROUTE_FN = `function route(req)
  if req.headers["x-bench-check"] then return 299 end
  return nil
end
`;

export function rspHttpConfig(variant: Variant, backendPort: number): string {
  return `listenPort = "0"
listenAddress = "127.0.0.1"
triggerMode = "level"
workers = 1
mode = "http"
backends = { app = { "127.0.0.1:${backendPort}" } }
${variant === 'bare' ? '' : ROUTES}${variant === 'lua' ? ROUTE_FN : ''}`;
}

function rspHttp(variant: Variant): Setup {
  const name = variant === 'bare' ? 'rsp-http-bare' : variant === 'routes' ? 'rsp-http' : 'rsp-http-lua';
  const label = variant === 'bare' ? 'rsp http, no routes' : variant === 'routes' ? 'rsp http, routes' : 'rsp http, routes + route()';
  return {
    name,
    label,
    proxy: true,
    needs: () => null,
    async start(backendPort, dir) {
      const file = path.join(dir, `${name}-${backendPort}.lua`);
      fs.writeFileSync(file, rspHttpConfig(variant, backendPort));
      return running(await startService(process.execPath, [RSP_BIN, '--die-with-parent', file]));
    },
    check: (port) => checkHttp(port, variant),
  };
}

export const rspHttpBare = rspHttp('bare');
export const rspHttpRoutes = rspHttp('routes');
export const rspHttpLua = rspHttp('lua');

/** One request on a connection of its own; resolves with the whole response (the proxy closes after it). */
export function oneRequest(port: number, head: string, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no complete answer within ${timeoutMs} ms to ${JSON.stringify(head.split('\r\n')[0])}; got ${JSON.stringify(Buffer.concat(chunks).toString('latin1').slice(0, 200))}`));
    }, timeoutMs);
    socket.on('connect', () => socket.write(head));
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('latin1'));
    });
  });
}

/** The proxy forwards /small (200 and the backend's body); rsp-http-lua's route() answers a marked request itself. */
async function checkHttp(port: number, variant: Variant): Promise<string> {
  const host = `127.0.0.1:${port}`;
  const answer = await oneRequest(port, `GET /small HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
  if (!answer.startsWith('HTTP/1.1 200 ') || !answer.endsWith(`\r\n\r\n${SMALL_BODY}`)) {
    throw new Error(`GET /small through it did not answer 200 with the backend's ${SMALL_BODY.length}-byte body: ${JSON.stringify(answer.slice(0, 300))}`);
  }
  if (variant !== 'lua') return 'GET /small answered 200 with the backend\'s body';
  const hooked = await oneRequest(port, `GET /small HTTP/1.1\r\nHost: ${host}\r\nX-Bench-Check: 1\r\nConnection: close\r\n\r\n`);
  if (!hooked.startsWith('HTTP/1.1 299')) throw new Error(`route() did not answer the marked request with 299: ${JSON.stringify(hooked.slice(0, 200))}`);
  return 'GET /small answered 200 with the backend\'s body; route() ran (299 for a marked request)';
}
