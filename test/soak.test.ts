// A short soak: 200 concurrent clients for 15 s (RSP_SOAK_SECONDS=300 for a
// long run) through a pool of two backends, with normal downloads, slow
// readers, clients that close early or reset, and backends that reset
// mid-stream. Every complete stream is compared byte for byte; a cut one must
// be a prefix of what was sent (never corrupted). Afterwards rsp holds no
// more file descriptors than before, and still serves.
import test from 'ava';
import * as net from 'node:net';
import { fdCount, listen, patternBytes, rss } from './helpers';
import { startRspLua } from './lua';

const SECONDS = Number(process.env.RSP_SOAK_SECONDS ?? 15);
const CLIENTS = Number(process.env.RSP_SOAK_CLIENTS ?? 200);

/** A backend: reads "size seed how\n", answers `size` pattern bytes, then closes ("end") or resets halfway ("reset"). */
function backend(): net.Server {
  return net.createServer((s) => {
    let head = '';
    s.on('error', () => {});
    s.on('data', (d) => {
      if (head.includes('\n')) return;
      head += d.toString('latin1');
      const nl = head.indexOf('\n');
      if (nl < 0) return;
      const [size, seed, how] = head.slice(0, nl).split(' ');
      const data = patternBytes(Number(size), Number(seed));
      if (how === 'reset') {
        s.write(data.subarray(0, data.length >> 1), () => setImmediate(() => s.resetAndDestroy()));
      } else {
        s.end(data);
      }
    });
  });
}

type Kind = 'normal' | 'slow' | 'early-close' | 'client-reset' | 'backend-reset';
const KINDS: Kind[] = ['normal', 'normal', 'normal', 'slow', 'early-close', 'client-reset', 'backend-reset'];

interface Tally {
  exchanges: number;
  complete: number;
  corrupt: string[];
}

/** One exchange of `kind`; records corruption (never a timing failure). */
function exchange(port: number, kind: Kind, seed: number, tally: Tally): Promise<void> {
  const size = 1024 + ((seed * 7919) % (kind === 'slow' ? 300_000 : 1_500_000));
  const expected = patternBytes(size, seed);
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let received = 0;
    let finished = false;
    const finish = (how: string): void => {
      if (finished) return;
      finished = true;
      clearTimeout(guard);
      tally.exchanges++;
      const got = Buffer.concat(chunks);
      if (!expected.subarray(0, got.length).equals(got)) tally.corrupt.push(`${kind} seed ${seed}: ${got.length} bytes differ from what the backend sent`);
      else if (how === 'end' && (kind === 'normal' || kind === 'slow')) {
        if (got.length === size) tally.complete++;
        else tally.corrupt.push(`${kind} seed ${seed}: a clean end after ${got.length} of ${size} bytes`);
      }
      s.destroy();
      resolve();
    };
    // Not a timing assertion: an exchange that never ends is reported as such.
    const guard = setTimeout(() => {
      tally.corrupt.push(`${kind} seed ${seed}: no end after 60 s (${received} bytes)`);
      finished = true;
      s.destroy();
      resolve();
    }, 60_000);
    s.on('connect', () => s.write(`${size} ${seed} ${kind === 'backend-reset' ? 'reset' : 'end'}\n`));
    s.on('data', (c: Buffer) => {
      chunks.push(c);
      received += c.length;
      if (kind === 'early-close' && received > size / 3) finish('closed early');
      else if (kind === 'client-reset' && received > size / 3) {
        s.resetAndDestroy();
        finish('reset by us');
      } else if (kind === 'slow') {
        s.pause();
        setTimeout(() => s.resume(), 2);
      }
    });
    s.on('end', () => finish('end'));
    s.on('error', (e: NodeJS.ErrnoException) => finish(e.code ?? 'error'));
  });
}

test(`soak: ${CLIENTS} clients for ${SECONDS} s, with resets, early closes and slow readers: no corrupt byte, no fd leak`, async (t) => {
  t.timeout((SECONDS + 90) * 1000);
  const ports = await Promise.all([listen(t, backend()), listen(t, backend())]);
  const rsp = await startRspLua(t, `listenPort = 0 listenAddress = "127.0.0.1"
backends = { app = { "127.0.0.1:${ports[0]}", "127.0.0.1:${ports[1]}", balance = "leastconn" } }`);
  const before = fdCount(rsp.pid);
  const tally: Tally = { exchanges: 0, complete: 0, corrupt: [] };
  const deadline = Date.now() + SECONDS * 1000;
  // RSP_MEMORY_REPORT=1 (inherited by rsp, src/memory.ts): RSS and both
  // isolates' heaps every 10 s, logged at the end: does RSS grow, or settle?
  const memory = process.env.RSP_MEMORY_REPORT === '1' ? memorySampler(rsp.pid, rsp.output) : null;
  let seed = 1;
  await Promise.all(Array.from({ length: CLIENTS }, async (_, client) => {
    while (Date.now() < deadline) {
      const s = seed++;
      await exchange(rsp.port, KINDS[(client + s) % KINDS.length], s, tally);
    }
  }));
  memory?.stop();
  t.deepEqual(tally.corrupt, []);
  t.true(tally.complete > CLIENTS, `${tally.complete} complete streams of ${tally.exchanges}`);
  // Every pairing closed: back to the fds rsp had before (listener, epoll, eventfd, ...).
  const settleLimit = Date.now() + 30_000;
  while (fdCount(rsp.pid) > before && Date.now() < settleLimit) await new Promise((r) => setTimeout(r, 50));
  if (memory !== null) for (const line of memory.lines()) t.log(line);
  t.is(fdCount(rsp.pid), before, 'file descriptors after the soak');
  t.log(`${tally.exchanges} exchanges, ${tally.complete} complete and compared byte for byte`);
  t.is(await rsp.stop(), 0);
});

/** Every 10 s: RSS now, and SIGUSR2 for the heap lines; lines() pairs them up (RSS, main heap, worker heap and new space, in MB). */
function memorySampler(pid: number, output: () => string): { stop(): void; lines(): string[] } {
  const started = Date.now();
  const taken: string[] = [];
  const timer = setInterval(() => {
    taken.push(`t=${Math.round((Date.now() - started) / 1000)} s RSS ${(rss(pid) / 1e6).toFixed(1)} MB`);
    process.kill(pid, 'SIGUSR2');
  }, 10_000);
  return {
    stop: () => clearInterval(timer),
    lines: () => {
      const heap = (who: string): string[] => [...output().matchAll(new RegExp(`memory ${who}: .*heap-used=([\\d.]+) heap-total=([\\d.]+)`, 'g'))].map((m) => `${m[1]}/${m[2]}`);
      const spaces = [...output().matchAll(/memory worker spaces .*new_space=([\d./]+)/g)].map((m) => m[1]);
      const main = heap('main');
      const worker = heap('worker');
      return taken.map((t, i) => `${t}, main heap used/total ${main[i] ?? '?'} MB, worker heap ${worker[i] ?? '?'} MB, worker new space ${spaces[i] ?? '?'} MB`);
    },
  };
}
