// Backends for the benchmark, each in a process of its own so they never share
// an event loop with the load generator:
//
//   node dist/scripts/bench/backend-server.js http <bulkBytes>
//     HTTP/1.1 on 127.0.0.1: /small is 100 bytes, /bulk is <bulkBytes> bytes,
//     /status counts accepted connections the way nginx's stub_status does.
//     Used only when nginx is not installed (it is slower than nginx).
//   node dist/scripts/bench/backend-server.js hold
//     TCP on 127.0.0.1 that accepts connections and holds them idle, never
//     answering; for the idle-connection memory measurement. When started
//     with an IPC channel (fork), answers {type:'count'} with the number of
//     connections it holds.
//
// Each prints "Listening on port N." when ready.
import * as http from 'node:http';
import * as net from 'node:net';
import { SMALL_BODY } from './constants';

function ready(server: net.Server): void {
  process.stdout.write(`Listening on port ${(server.address() as net.AddressInfo).port}.\n`);
}

function httpBackend(bulkBytes: number): void {
  const chunk = Buffer.alloc(1024 * 1024, 'b');
  let accepted = 0;
  const server = http.createServer((req, res) => {
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
  });
  server.on('connection', () => accepted++);
  server.keepAliveTimeout = 600_000;
  server.headersTimeout = 600_000;
  server.requestTimeout = 0;
  server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, () => ready(server));
}

function holdBackend(): void {
  const held = new Set<net.Socket>();
  const server = net.createServer((s) => {
    held.add(s);
    s.on('data', () => {}); // read and drop; never answer
    s.on('error', () => s.destroy());
    s.on('close', () => held.delete(s));
  });
  server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, () => ready(server));
  process.on('message', (m: { type: string }) => {
    if (m.type === 'count') process.send?.({ type: 'count', count: held.size });
  });
  process.on('disconnect', () => process.exit(0));
}

const [mode, arg] = process.argv.slice(2);
if (mode === 'http') httpBackend(Number(arg ?? 200 * 1000 * 1000));
else if (mode === 'hold') holdBackend();
else {
  process.stderr.write('usage: backend-server http <bulkBytes> | hold\n');
  process.exit(2);
}
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
