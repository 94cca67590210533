// The blocking beginning: blog part 1's one-shot proxy, on the same ffi/
// bindings as rsp, with no epoll at all.
//
//   node dist/examples/oneshot.js <listen_port> <backend_addr> <backend_port>
//   npm run oneshot -- 8000 127.0.0.1 8888
//
// Every socket here is blocking: each read(), write(), accept() and connect()
// puts this thread to sleep until the kernel can finish it. For one client
// that is the simplest program there is. For two it is a queue: while the
// loop below sits in read() waiting for client A's backend, client B has
// already connected (the kernel finished B's handshake and keeps it in the
// listen backlog) and nobody calls accept() for it until A is done. That wait
// is the problem epoll solves: rsp's reactor (src/reactor.ts) asks the
// kernel "which of these sockets can I use without waiting?" and only ever
// makes calls that return at once. docs/epoll.md compares the two.
//
// What it does per client, like the C version: copy ONE read() of the
// request to the backend, then copy the backend's response until the backend
// closes (so the backend must close: HTTP/1.0, or `Connection: close`).
// Unlike the C part-1 program, which exited after one client, it then goes
// back to accept() the next one.
//
// The Node event loop never turns once the loop below starts: nothing
// asynchronous happens after start-up (logs are written with writeSync, and
// SIGINT/SIGTERM simply end the process).
import * as fs from 'node:fs';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import * as libc from '../ffi/libc';
import { familyOf, formatAddress, fromSockaddr, SOCKADDR_MAX, toSockaddr } from '../ffi/sockaddr';
import { timestamp } from '../src/log';

const BUFFER_SIZE = 64 * 1024;
const BACKLOG = 128;

function log(message: string): void {
  fs.writeSync(1, `${timestamp()} ${message}\n`);
}

function logError(message: string): void {
  fs.writeSync(2, `${timestamp()} ${message}\n`);
}

/** A failed system call, e.g. "connect: ECONNREFUSED". Read errno straight after the -1. */
function failure(syscall: string): string {
  return `${syscall}: ${libc.errnoName(libc.errno())}`;
}

/** create_and_bind + listen, with a blocking socket (no SOCK_NONBLOCK). Returns the fd and the port it got. */
function createServerSocket(port: number): { fd: number; port: number } {
  const fd = libc.check('socket', libc.socket(libc.AF_INET, libc.SOCK_STREAM | libc.SOCK_CLOEXEC, 0));
  const one = Buffer.alloc(4);
  one.writeInt32LE(1, 0);
  libc.check('setsockopt(SO_REUSEADDR)', libc.setsockopt(fd, libc.SOL_SOCKET, libc.SO_REUSEADDR, one, 4));
  const address = toSockaddr('0.0.0.0', port);
  libc.check('bind', libc.bind(fd, address, address.length), `0.0.0.0 port ${port}`);
  libc.check('listen', libc.listen(fd, BACKLOG));
  // Port 0 asked the kernel to pick one: ask it which.
  const bound = Buffer.alloc(SOCKADDR_MAX);
  const length = Buffer.alloc(4);
  length.writeUInt32LE(SOCKADDR_MAX, 0);
  libc.check('getsockname', libc.getsockname(fd, bound, length));
  return { fd, port: fromSockaddr(bound).port };
}

/** connect_to_backend: a blocking connect. Returns the fd, or -1 (logged) if it failed. */
function connectToBackend(backend: Buffer, name: string): number {
  const fd = libc.socket(familyOf(backend), libc.SOCK_STREAM | libc.SOCK_CLOEXEC, 0);
  if (fd < 0) {
    logError(`Could not connect to backend ${name}: ${failure('socket')}`);
    return -1;
  }
  // BLOCKS until the handshake with the backend is done (or fails).
  if (libc.connect(fd, backend, backend.length) < 0) {
    logError(`Could not connect to backend ${name}: ${failure('connect')}`);
    libc.close(fd);
    return -1;
  }
  return fd;
}

/**
 * write() all `length` bytes. A blocking write() sleeps until the kernel has
 * room, so it is rarely short; but it can be (a signal), so loop. Returns
 * false (logged) if the peer is gone.
 */
function writeAll(fd: number, buf: Buffer, length: number, who: string): boolean {
  let done = 0;
  while (done < length) {
    // BLOCKS while the peer's receive window and our send buffer are full,
    // i.e. for as long as the peer does not read.
    const n = libc.write(fd, done === 0 ? buf : buf.subarray(done), length - done);
    if (n < 0) {
      if (libc.errno() === libc.EINTR) continue;
      logError(`${failure('write')} to ${who}`); // EPIPE, ECONNRESET: Node ignores SIGPIPE, so this is a result, not a crash
      return false;
    }
    done += n;
  }
  return true;
}

/** read() that retries when a signal interrupted it. */
function readRetrying(fd: number, buf: Buffer): number {
  for (;;) {
    const n = libc.read(fd, buf, buf.length);
    if (n >= 0 || libc.errno() !== libc.EINTR) return n;
  }
}

/** One client, start to finish. Everything the client needs happens inside this call. */
function handleClient(clientFd: number, backend: Buffer, backendName: string, buffer: Buffer): void {
  const backendFd = connectToBackend(backend, backendName);
  if (backendFd < 0) return; // the caller closes the client: it goes on to the next one

  // BLOCKS until the client sends something. A client that connects and
  // says nothing holds up every client behind it, for ever.
  const requestLength = readRetrying(clientFd, buffer);
  if (requestLength < 0) logError(`${failure('read')} from client`);
  // One read only, as in the C version: a request longer than one read()
  // returns would be cut short. rsp forwards everything, as it arrives.
  if (requestLength > 0 && writeAll(backendFd, buffer, requestLength, 'backend')) {
    // Copy the response until the backend closes its end (read() == 0).
    for (;;) {
      // BLOCKS until the backend sends more: a slow backend for this
      // client is a slow proxy for everyone.
      const n = readRetrying(backendFd, buffer);
      if (n === 0) break;
      if (n < 0) {
        logError(`${failure('read')} from backend`);
        break;
      }
      if (!writeAll(clientFd, buffer, n, 'client')) break;
    }
  }
  if (libc.close(backendFd) < 0) logError(failure('close'));
}

async function main(argv: string[]): Promise<void> {
  if (argv.length !== 3) {
    process.stderr.write('Usage: oneshot <listen_port> <backend_addr> <backend_port>\n');
    process.exit(2);
  }
  const [listenText, backendAddress, backendText] = argv;
  const listenPort = /^\d+$/.test(listenText) ? Number(listenText) : NaN;
  const backendPort = /^\d+$/.test(backendText) ? Number(backendText) : NaN;
  if (!(listenPort <= 65535) || !(backendPort >= 1 && backendPort <= 65535)) {
    process.stderr.write('oneshot: ports must be numbers from 0 to 65535 (backend port from 1)\n');
    process.exit(2);
  }

  // Names are resolved once, here, before the loop (the C version called
  // getaddrinfo for every client).
  let address = backendAddress;
  if (!isIP(address)) {
    try {
      address = (await lookup(backendAddress)).address;
    } catch (error) {
      process.stderr.write(`oneshot: cannot resolve ${backendAddress}: ${(error as NodeJS.ErrnoException).code ?? error}\n`);
      process.exit(1);
    }
  }
  const backend = toSockaddr(address, backendPort);
  const backendName = formatAddress({ family: isIP(address) === 6 ? 6 : 4, address, port: backendPort });

  let server: { fd: number; port: number };
  try {
    server = createServerSocket(listenPort);
  } catch (error) {
    process.stderr.write(`oneshot: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  }
  log(`Started.  Listening on port ${server.port}.`);

  const buffer = Buffer.allocUnsafe(BUFFER_SIZE);
  for (;;) {
    // BLOCKS until a client has connected. While handleClient() runs for
    // one client, the next ones wait in the kernel's listen backlog: they are
    // connected, their requests may even have arrived, but nobody is here to
    // accept() them.
    const clientFd = libc.accept4(server.fd, null, null, libc.SOCK_CLOEXEC);
    if (clientFd < 0) {
      const err = libc.errno();
      // EINTR: a signal; ECONNABORTED: that client gave up. EMFILE and the
      // like cannot last here, since at most three fds are ever open.
      if (err !== libc.EINTR && err !== libc.ECONNABORTED) logError(failure('accept'));
      continue;
    }
    handleClient(clientFd, backend, backendName, buffer);
    if (libc.close(clientFd) < 0) logError(failure('close'));
  }
}

main(process.argv.slice(2)).catch((error) => {
  process.stderr.write(`oneshot: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
