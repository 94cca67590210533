// The baseline the benchmark compares rsp with: the plain Node `net` pipe
// proxy that anyone would write first. One process, Node's own event loop.
//
//   node dist/scripts/bench/node-pipe-proxy.js <listenPort> <backendHost> <backendPort> [listenHost]
//
// Prints "Listening on port N." once it accepts (listenPort 0 picks a free
// port), and stops on SIGINT/SIGTERM.
import * as net from 'node:net';

function main(argv: string[]): void {
  if (argv.length < 3 || argv.length > 4) {
    process.stderr.write('usage: node-pipe-proxy <listenPort> <backendHost> <backendPort> [listenHost]\n');
    process.exit(2);
  }
  const [listenPort, backendHost, backendPort, listenHost = '127.0.0.1'] = argv;

  const server = net.createServer((client) => {
    const backend = net.connect(Number(backendPort), backendHost);
    client.pipe(backend);
    backend.pipe(client);
    // Either side failing takes the other down with it; a clean end is
    // already passed on by pipe() (end() on the other side).
    const drop = (): void => {
      client.destroy();
      backend.destroy();
    };
    client.on('error', drop);
    backend.on('error', drop);
    client.on('close', () => backend.destroy());
    backend.on('close', () => {
      if (client.writableLength === 0) client.destroy();
      else client.end();
    });
  });
  server.on('error', (error) => {
    process.stderr.write(`node-pipe-proxy: ${error.message}\n`);
    process.exit(1);
  });
  server.listen({ port: Number(listenPort), host: listenHost, backlog: 4096 }, () => {
    process.stdout.write(`Listening on port ${(server.address() as net.AddressInfo).port}.\n`);
  });
  const stop = (): void => {
    server.close();
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

main(process.argv.slice(2));
