// Backends for the benchmark, each in a process of its own so they never share
// an event loop with the load generator:
//
//   node dist/scripts/bench/backend-server.js http <bulkBytes> [ports]
//     HTTP/1.1 on 127.0.0.1: /small is 100 bytes, /bulk is <bulkBytes> bytes,
//     /status counts accepted connections the way nginx's stub_status does.
//     Used only when nginx is not installed (it is slower than nginx).
//   node dist/scripts/bench/backend-server.js hold [ports]
//     TCP on 127.0.0.1 that accepts connections and holds them idle, never
//     answering; for the idle-connection memory measurement. When started
//     with an IPC channel (fork), answers {type:'count'} with the number of
//     connections it holds.
//
// Either listens on `ports` ephemeral ports (default 1), the same server
// behind each: the pool setup's members are these sockets. Once every one
// listens it prints "Listening on port N." (the first), then, with several,
// "Also listening on ports N2, N3.".
import * as http from 'node:http';
import * as net from 'node:net';
import { SMALL_BODY } from './constants';

/** Listen on `count` ephemeral ports of 127.0.0.1 (one net.Server each, the same handler), then say which. */
function listenAll(count: number, make: () => net.Server): void {
  const ports: number[] = [];
  for (let i = 0; i < count; i++) {
    const server = make();
    server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, () => {
      ports[i] = (server.address() as net.AddressInfo).port;
      if (ports.filter((p) => p !== undefined).length < count) return;
      // "Also ..." first: whoever waits for "Listening on port" then has both lines.
      if (count > 1) process.stdout.write(`Also listening on ports ${ports.slice(1).join(', ')}.\n`);
      process.stdout.write(`Listening on port ${ports[0]}.\n`);
    });
  }
}

function httpBackend(bulkBytes: number, ports: number): void {
  const chunk = Buffer.alloc(1024 * 1024, 'b');
  let accepted = 0;
  const handler: http.RequestListener = (req, res) => {
    if (req.url === '/small') {
      res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': SMALL_BODY.length });
      res.end(SMALL_BODY);
    } else if (req.url === '/bulk') {
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': bulkBytes });
      let left = bulkBytes;
      const more = (): void => {
        while (left > 0) {
          const n = Math.min(left, chunk.length);
          left -= n;
          if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) {
            res.once('drain', more);
            return;
          }
        }
        res.end();
      };
      more();
    } else if (req.url === '/status') {
      res.end(`Active connections: 0\nserver accepts handled requests\n ${accepted} ${accepted} 0\n`);
    } else {
      res.writeHead(404);
      res.end();
    }
  };
  listenAll(ports, () => {
    const server = http.createServer(handler);
    server.on('connection', () => accepted++);
    server.keepAliveTimeout = 600_000;
    server.headersTimeout = 600_000;
    server.requestTimeout = 0;
    return server;
  });
}

function holdBackend(ports: number): void {
  const held = new Set<net.Socket>();
  const hold = (s: net.Socket): void => {
    held.add(s);
    s.on('data', () => {}); // read and drop; never answer
    s.on('error', () => s.destroy());
    s.on('close', () => held.delete(s));
  };
  listenAll(ports, () => net.createServer(hold));
  process.on('message', (m: { type: string }) => {
    if (m.type === 'count') process.send?.({ type: 'count', count: held.size });
  });
  process.on('disconnect', () => process.exit(0));
}

const [mode, ...args] = process.argv.slice(2);
const portCount = (text: string | undefined): number => {
  const n = Number(text ?? 1);
  if (!Number.isInteger(n) || n < 1 || n > 16) {
    process.stderr.write(`backend-server: ports must be 1 to 16, got ${text}\n`);
    process.exit(2);
  }
  return n;
};
if (mode === 'http') httpBackend(Number(args[0] ?? 200 * 1000 * 1000), portCount(args[1]));
else if (mode === 'hold') holdBackend(portCount(args[0]));
else {
  process.stderr.write('usage: backend-server http <bulkBytes> [ports] | hold [ports]\n');
  process.exit(2);
}
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
