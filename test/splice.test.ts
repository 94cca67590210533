// Zero copy (zeroCopy, src/splice.ts): bytes that go through a pipe with
// splice(2) arrive exactly as copied ones do - both directions, half-closes,
// a reader too slow for the pipe, resets, TCP urgent data - in both trigger
// modes, and "auto" switches mid-stream without a seam. The counters say the
// splice path was taken (a test of zero copy that copied would prove nothing).
import test from 'ava';
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { bothModes, connectTo, countersOf, listen, once, parseCounters, patternBytes, rss, settle, sha256, startRsp, waitUntil, within, type RunningProcess } from './helpers';
import { acknowledged, connectFd, readFd, sendUrgent, takeOver, writeFd, type Received } from './sockets';

const hasPrlimit = spawnSync('prlimit', ['--version'], { timeout: 10000 }).status === 0;
const withPrlimit = hasPrlimit ? test : (title: string) => test.skip(`${title} (skipped: prlimit from util-linux is not installed)`, () => {});

/** A backend that answers the first bytes it gets with `body`, then ends. */
function sender(body: Buffer): net.Server {
  return net.createServer((s) => {
    s.on('error', () => {});
    s.once('data', () => s.end(body));
  });
}

/** Everything `s` receives until its end, and whether it ended cleanly. */
function collect(s: net.Socket, what: string, ms = 60000): Promise<Buffer> {
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  return within(new Promise<Buffer>((resolve, reject) => {
    s.once('end', () => resolve(Buffer.concat(chunks)));
    s.once('error', reject);
  }), ms, what);
}

async function stopped(rsp: RunningProcess): Promise<Record<string, number>> {
  await rsp.stop();
  return parseCounters(rsp.output());
}

bothModes('a download through the pipe arrives byte for byte (zeroCopy = "on")', async (t, mode) => {
  const body = patternBytes(24 * 1024 * 1024, 31);
  const backendPort = await listen(t, sender(body));
  const rsp = await startRsp(t, { backendAddress: '127.0.0.1', backendPort, triggerMode: mode, zeroCopy: 'on', accessLog: '-' });
  for (let run = 0; run < 2; run++) {
    const c = await connectTo(t, rsp.port);
    const got = collect(c, 'the download');
    c.write('GET');
    t.is(sha256(await got), sha256(body), `run ${run}`);
    c.end();
  }
  // The access log counts spliced bytes as it counts copied ones.
  await rsp.waitFor(new RegExp(` in=3 out=${body.length} time=`), 20000, 2);
  const counters = await stopped(rsp);
  // All but the first read of each direction went through a pipe.
  t.true(counters['bytes-spliced'] >= 2 * body.length - 2 * 65536 - 8, `bytes-spliced=${counters['bytes-spliced']}`);
  t.true(counters['bytes-read'] <= 2 * 65536 + 16, `bytes-read=${counters['bytes-read']}`);
  t.true(counters.pipes >= 2, `pipes=${counters.pipes}`);
});

bothModes('an upload through the pipe arrives byte for byte, and the backend\'s answer comes back (zeroCopy = "on")', async (t, mode) => {
  const body = patternBytes(16 * 1024 * 1024, 32);
  let received = 0;
  const backendPort = await listen(t, net.createServer((s) => {
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => {
      chunks.push(c);
      received += c.length;
    });
    s.on('end', () => s.end(sha256(Buffer.concat(chunks))));
  }));
  const rsp = await startRsp(t, { backendAddress: '127.0.0.1', backendPort, triggerMode: mode, zeroCopy: 'on' });
  const c = await connectTo(t, rsp.port, '127.0.0.1', { allowHalfOpen: true });
  const answer = collect(c, 'the backend\'s hash of the upload');
  // Reads made while the backend connect is in progress are copied, however many the
  // scheduling allows: the first byte goes through first, so the rest meets a connected pair.
  c.write(body.subarray(0, 1));
  await waitUntil(() => received > 0, 'the first byte at the backend');
  c.end(body.subarray(1)); // half-close: the backend answers once it has the end
  t.is((await answer).toString(), sha256(body));
  const counters = await stopped(rsp);
  // Copied: the first byte, and at most the one full read that makes the direction switch.
  t.true(counters['bytes-spliced'] >= body.length - 1 - 65536, `bytes-spliced=${counters['bytes-spliced']}`);
});

bothModes('half-close each way through pipes: the end follows the last byte, the other direction carries on', async (t, mode) => {
  const up = patternBytes(6 * 1024 * 1024, 33);
  const down = patternBytes(6 * 1024 * 1024, 34);
  // The backend reads the whole upload to its end, then sends its own 6 MB and ends.
  const backendPort = await listen(t, net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => {});
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => {
      s.write(sha256(Buffer.concat(chunks)));
      s.end(down);
    });
  }));
  const rsp = await startRsp(t, { backendAddress: '127.0.0.1', backendPort, triggerMode: mode, zeroCopy: 'on' });
  const c = await connectTo(t, rsp.port, '127.0.0.1', { allowHalfOpen: true });
  const got = collect(c, 'the hash and the download');
  c.end(up);
  const all = await got;
  t.is(all.subarray(0, 64).toString(), sha256(up), 'the backend saw the whole upload, then its end');
  t.is(sha256(all.subarray(64)), sha256(down), 'then the client got the whole download, then its end');
  const counters = await stopped(rsp);
  t.true(counters.pipes >= 2 && counters['bytes-spliced'] > 8 * 1024 * 1024, `pipes=${counters.pipes} bytes-spliced=${counters['bytes-spliced']}`);
});

bothModes('the backend half-closes first: its download ends cleanly while the client\'s upload goes on through its pipe', async (t, mode) => {
  const down = patternBytes(4 * 1024 * 1024, 35);
  const up = patternBytes(4 * 1024 * 1024, 36);
  let upload!: Promise<Buffer>;
  const backendPort = await listen(t, net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => {});
    upload = collect(s, 'the upload at the backend');
    s.end(down); // sends and half-closes at once; reads on
  }));
  const rsp = await startRsp(t, { backendAddress: '127.0.0.1', backendPort, triggerMode: mode, zeroCopy: 'on' });
  const c = await connectTo(t, rsp.port, '127.0.0.1', { allowHalfOpen: true });
  const got = collect(c, 'the download');
  t.is(sha256(await got), sha256(down));
  // Only now, after the download's end, does the client send.
  c.end(up);
  t.is(sha256(await upload), sha256(up));
  const counters = await stopped(rsp);
  t.true(counters['bytes-spliced'] > 4 * 1024 * 1024, `bytes-spliced=${counters['bytes-spliced']}`);
});

bothModes('a client too slow for the pipe: the backend is held back, rsp\'s memory stays flat, then every byte arrives', async (t, mode) => {
  const total = 200 * 1024 * 1024;
  const piece = patternBytes(1024 * 1024, 37);
  let offered = 0;
  const backendPort = await listen(t, net.createServer((s) => {
    s.on('error', () => {});
    s.once('data', () => {
      const pump = (): void => {
        while (offered < total && !s.destroyed) {
          offered += piece.length;
          if (!s.write(piece)) return void s.once('drain', pump);
        }
        s.end();
      };
      pump();
    });
  }));
  const rsp = await startRsp(t, { backendAddress: '127.0.0.1', backendPort, triggerMode: mode, zeroCopy: 'on' });
  const baseline = rss(rsp.pid);
  const c = await connectTo(t, rsp.port);
  c.pause(); // reads nothing: the client's socket fills, then the pipe, then rsp stops reading the backend
  c.write('GET');
  const stalledAt = await settle(() => offered, 8, 100);
  const grown = rss(rsp.pid) - baseline;
  t.log(`backend stalled after ${(stalledAt / 1048576).toFixed(1)} MB; rsp RSS grew ${(grown / 1048576).toFixed(1)} MB`);
  t.true(stalledAt < 64 * 1024 * 1024, `the backend was held back, far short of 200 MB (${stalledAt})`);
  t.true(grown < 16 * 1024 * 1024, `RSS grew by ${grown} bytes`);
  const mid = await countersOf(rsp);
  t.true(mid.pipes >= 1 && mid['bytes-spliced'] > 0, `pipes=${mid.pipes} bytes-spliced=${mid['bytes-spliced']}`);
  t.true(mid['peak-queue'] < 1024 * 1024, `nothing piled up in rsp's own queue: peak-queue=${mid['peak-queue']}`);
  // Now read it all: byte for byte, in order.
  const hash = crypto.createHash('sha256');
  let received = 0;
  c.on('data', (d: Buffer) => {
    hash.update(d);
    received += d.length;
  });
  c.resume();
  await once(c, 'end', 'the end of the 200 MB download', 120000);
  t.is(received, total);
  const expected = crypto.createHash('sha256');
  for (let i = 0; i < total / piece.length; i++) expected.update(piece);
  t.is(hash.digest('hex'), expected.digest('hex'));
});

bothModes('a backend that resets mid-stream: the client gets every byte spliced before it, then a reset', async (t, mode) => {
  const body = patternBytes(3 * 1024 * 1024, 38);
  const backendPort = await listen(t, net.createServer((s) => {
    s.on('error', () => {});
    s.once('data', () => {
      s.write(body);
      void acknowledged(s).then(() => s.resetAndDestroy());
    });
  }));
  const rsp = await startRsp(t, { backendAddress: '127.0.0.1', backendPort, triggerMode: mode, zeroCopy: 'on' });
  for (let run = 0; run < 2; run++) {
    const fd = connectFd(rsp.port);
    await writeFd(fd, Buffer.from('GET'));
    // Read with read(2): Node's own sockets report some resets as an orderly end.
    const got = await readFd(fd, { limitMs: 30000 });
    t.is(got.how, 'ECONNRESET', `run ${run}`);
    t.true(got.bytes.equals(body), `run ${run}: ${got.bytes.length} of ${body.length} bytes`);
  }
  const counters = await stopped(rsp);
  t.true(counters['bytes-spliced'] > 4 * 1024 * 1024, `bytes-spliced=${counters['bytes-spliced']}`);
});

bothModes('a client that resets mid-upload: the backend gets every byte spliced before it, then a reset', async (t, mode) => {
  const body = patternBytes(3 * 1024 * 1024, 39);
  const received: Promise<Received>[] = [];
  const backendPort = await listen(t, net.createServer({ pauseOnConnect: true }, (s) => received.push(readFd(takeOver(s), { limitMs: 30000 }))));
  const rsp = await startRsp(t, { backendAddress: '127.0.0.1', backendPort, triggerMode: mode, zeroCopy: 'on' });
  const c = await connectTo(t, rsp.port);
  c.on('error', () => {});
  c.write(body);
  await acknowledged(c, 30000);
  c.resetAndDestroy();
  while (received.length === 0) await new Promise((r) => setTimeout(r, 5));
  const got = await received[0];
  t.is(got.how, 'ECONNRESET');
  t.true(got.bytes.equals(body), `${got.bytes.length} of ${body.length} bytes`);
  const counters = await stopped(rsp);
  t.true(counters['bytes-spliced'] > 2 * 1024 * 1024, `bytes-spliced=${counters['bytes-spliced']}`);
});

bothModes('"auto" copies small exchanges and switches a long download to the pipe mid-stream, without a seam', async (t, mode) => {
  const small = patternBytes(1000, 40);
  const big = patternBytes(12 * 1024 * 1024 + 12345, 41);
  const backendPort = await listen(t, net.createServer((s) => {
    s.on('error', () => {});
    s.once('data', (d: Buffer) => s.end(d.toString() === 'small' ? small : big));
  }));
  const rsp = await startRsp(t, { backendAddress: '127.0.0.1', backendPort, triggerMode: mode, zeroCopy: 'auto' });
  for (let i = 0; i < 3; i++) {
    const c = await connectTo(t, rsp.port);
    const got = collect(c, 'a small answer');
    c.write('small');
    t.true((await got).equals(small));
    c.end();
  }
  t.is((await countersOf(rsp)).pipes, 0, 'no pipe for small exchanges');
  const c = await connectTo(t, rsp.port);
  const got = collect(c, 'the long download');
  c.write('big');
  t.is(sha256(await got), sha256(big));
  const counters = await stopped(rsp);
  t.is(counters.pipes, 1, 'one pipe: the download\'s direction');
  t.true(counters['bytes-read'] >= 64 * 1024, `copied first: bytes-read=${counters['bytes-read']}`);
  t.true(counters['bytes-spliced'] >= big.length - 2 * 1024 * 1024, `then spliced: bytes-spliced=${counters['bytes-spliced']}`);
});

bothModes('an urgent byte in a spliced stream: the bytes after the mark arrive, the urgent byte does not, nothing stalls', async (t, mode) => {
  const before = patternBytes(2 * 1024 * 1024, 42);
  const after = patternBytes(2 * 1024 * 1024, 43);
  const backendPort = await listen(t, net.createServer((s) => {
    s.on('error', () => {});
    s.once('data', () => {
      s.write(before, () => {
        // On the socket itself, after Node has handed `before` to the kernel.
        sendUrgent(s, '!');
        s.end(after);
      });
    });
  }));
  const rsp = await startRsp(t, { backendAddress: '127.0.0.1', backendPort, triggerMode: mode, zeroCopy: 'on' });
  for (let run = 0; run < 3; run++) {
    const fd = connectFd(rsp.port);
    await writeFd(fd, Buffer.from('GET'));
    const got = await readFd(fd, { limitMs: 30000 });
    t.is(got.how, 'end', `run ${run}`);
    t.is(sha256(got.bytes), sha256(Buffer.concat([before, after])), `run ${run}: ${got.bytes.length} bytes`);
  }
  const counters = await stopped(rsp);
  t.true(counters['bytes-spliced'] > 4 * 1024 * 1024, `bytes-spliced=${counters['bytes-spliced']}`);
});

bothModes('counters count every splice and pipe call the trace shows', async (t, mode) => {
  const body = patternBytes(3 * 1024 * 1024, 44);
  const backendPort = await listen(t, sender(body));
  const rsp = await startRsp(t, { backendAddress: '127.0.0.1', backendPort, triggerMode: mode, zeroCopy: 'on' }, ['--trace']);
  const c = await connectTo(t, rsp.port);
  const got = collect(c, 'the download');
  c.write('GET');
  t.is(sha256(await got), sha256(body));
  c.end();
  await rsp.waitFor(/close\(\d+\) = 0 \(closed\)/, 20000, 2);
  await rsp.waitFor(/close\(\d+\) = 0 \(pipe \d+, write end\)/, 20000, 2);
  t.is(await rsp.stop(), 0);
  const out = rsp.output();
  const counters = parseCounters(out);
  const spliceLines = out.split('\n').filter((l) => /^ {4}splice\((\d+ → pipe \d+|pipe \d+ → \d+)\) = /.test(l));
  t.is(counters.splices, spliceLines.length);
  t.is(counters.pipes, (out.match(/^ {4}pipe2\(O_NONBLOCK\|O_CLOEXEC\) = 0: /gm) ?? []).length);
  // One round as docs/lab.md shows it: into the pipe, then out of it, the same count.
  const round = /^ {4}splice\((\d+) → pipe (\d+)\) = (\d+)\n {4}splice\(pipe \2 → (\d+)\) = \3$/m.exec(out);
  t.truthy(round, 'a splice in followed by a splice out of the same bytes');
  const calls = out.split('\n').filter((l) => /^(epoll_wait\(| {4})/.test(l)).flatMap((l) => [...l.matchAll(/\b([a-z_0-9]+)\([^()]*\) = /g)].map((m) => m[1]));
  t.is(counters.syscalls, calls.length, 'every system call is counted once');
});

test('a pipe that cannot be had means copying: one log line, every byte still arrives', async (t) => {
  const body = patternBytes(4 * 1024 * 1024, 45);
  const backendPort = await listen(t, sender(body));
  // maxConnections set this high leaves no fds for pipes beside it.
  const rsp = await startRsp(t, { backendAddress: '127.0.0.1', backendPort, zeroCopy: 'on', maxConnections: 10_000_000 });
  for (let run = 0; run < 3; run++) {
    const c = await connectTo(t, rsp.port);
    const got = collect(c, 'the download');
    c.write('GET');
    t.is(sha256(await got), sha256(body), `run ${run}`);
    c.end();
  }
  await rsp.waitFor(/Zero copy: the open-files limit leaves no fds for pipes beside maxConnections; copying for client 127\.0\.0\.1:\d+/);
  const counters = await stopped(rsp);
  t.is(counters.pipes, 0);
  t.is(counters['bytes-read'], 3 * (body.length + 3));
});

withPrlimit('pipe2 failing with EMFILE means copying for that connection, not a crash', async (t) => {
  const body = patternBytes(4 * 1024 * 1024, 46);
  const backendPort = await listen(t, sender(body));
  const rsp = await startRsp(t, { backendAddress: '127.0.0.1', backendPort, zeroCopy: 'on' });
  const fds = (): number => fs.readdirSync(`/proc/${rsp.pid}/fd`).length;
  const before = fds();
  const c = await connectTo(t, rsp.port);
  const got = collect(c, 'the download');
  await waitUntil(() => fds() >= before + 2, 'rsp to hold the client\'s and the backend\'s sockets');
  // Exactly one free fd number below the limit (the limit is on numbers, and there may be gaps): a pipe needs two.
  const used = new Set(fs.readdirSync(`/proc/${rsp.pid}/fd`).map(Number));
  let limit = 0;
  for (let free = 0; used.has(limit) || free++ < 1; ) limit++;
  const r = spawnSync('prlimit', [`--pid=${rsp.pid}`, `--nofile=${limit}:${limit}`], { timeout: 10000 });
  t.is(r.status, 0, `prlimit --pid: ${r.stderr?.toString()}`);
  c.write('GET');
  t.is(sha256(await got), sha256(body));
  c.end();
  await rsp.waitFor(/Zero copy: pipe2: (EMFILE|ENFILE); copying for client 127\.0\.0\.1:\d+/);
  const counters = await stopped(rsp);
  t.is(counters.pipes, 0);
});
