// Out of file descriptors through the real CLI: rsp's own fd limit is lowered
// while it runs (prlimit --pid), so that accept4() or the backend's socket()
// fails with EMFILE; then raised again.
import test, { type ExecutionContext } from 'ava';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { bothModes, connectTo, countersOf, echoBackend, exchange, readBytes, startRsp, type RunningProcess } from './helpers';

const hasPrlimit = spawnSync('prlimit', ['--version'], { timeout: 10000 }).status === 0;
const declare = hasPrlimit ? bothModes : (title: string) => test.skip(`${title} (skipped: prlimit from util-linux is not installed)`, () => {});

/** The soft RLIMIT_NOFILE of `pid`, or sets it (prlimit --pid). */
function softLimit(pid: number, value?: number): number {
  const args = value === undefined ? ['--pid', String(pid), '--nofile', '--raw', '--noheadings', '--output=SOFT'] : ['--pid', String(pid), `--nofile=${value}:`];
  const r = spawnSync('prlimit', args, { encoding: 'utf8', timeout: 10000 });
  if (r.status !== 0) throw new Error(`prlimit ${args.join(' ')}: ${r.stderr}`);
  return value ?? Number(r.stdout.trim());
}

/** The `k`th lowest fd number that `pid` does not have open (k = 1: the one the next open gets). */
function freeFd(pid: number, k: number): number {
  const open = new Set(fs.readdirSync(`/proc/${pid}/fd`).map(Number));
  for (let fd = 0, seen = 0; ; fd++) if (!open.has(fd) && ++seen === k) return fd;
}

/** rsp in front of an echo backend, warmed up by one exchange; its fd limit restored when the test ends. */
async function rspWithEcho(t: ExecutionContext, mode: string): Promise<{ rsp: RunningProcess; saved: number }> {
  const backendPort = await echoBackend(t);
  const rsp = await startRsp(t, { backendAddress: '127.0.0.1', backendPort, triggerMode: mode });
  t.is((await exchange(rsp.port, 'warm', { end: true })).toString(), 'warm');
  const saved = softLimit(rsp.pid);
  return { rsp, saved };
}

declare('EMFILE on accept: rsp pauses accepts, logs once, and serves the waiting client when fds are free again', async (t, mode) => {
  const { rsp, saved } = await rspWithEcho(t, mode);
  // Not one fd left: the next accept4() fails.
  softLimit(rsp.pid, freeFd(rsp.pid, 1));
  const s = await connectTo(t, rsp.port); // the kernel completes the handshake; rsp cannot accept it
  s.write('waiting');
  await rsp.waitFor(/accept: EMFILE \(out of file descriptors\); pausing accepts/);
  softLimit(rsp.pid, saved);
  t.is((await readBytes(s, 7, 'the echo for the client that waited in the backlog', 30000)).toString(), 'waiting');
  await rsp.waitFor(/\] Accepting connections again\./, 30000);
  t.is(rsp.output().split('\n').filter((l) => /accept: EMFILE/.test(l)).length, 1, rsp.output());
  t.is((await exchange(rsp.port, 'after', { end: true })).toString(), 'after');
  const c = await countersOf(rsp);
  t.is(c.accepts, 3);
  // Each pause took the listener out of the epoll set and put it back.
  t.true(c.del >= 1, `epoll_ctl del=${c.del}`);
});

declare('EMFILE on the backend socket(): the client gets a prompt close, rsp keeps serving once fds are free', async (t, mode) => {
  const { rsp, saved } = await rspWithEcho(t, mode);
  // One fd left: accept4() gets it, the backend's socket() fails.
  softLimit(rsp.pid, freeFd(rsp.pid, 2));
  const reply = await exchange(rsp.port, 'no backend for me').catch((e: NodeJS.ErrnoException) => e.code);
  t.true(reply === 'ECONNRESET' || (Buffer.isBuffer(reply) && reply.length === 0), String(reply));
  t.regex(await rsp.waitFor(/Could not connect to backend/), /Could not connect to backend 127\.0\.0\.1:\d+ for client 127\.0\.0\.1:\d+: EMFILE$/);
  softLimit(rsp.pid, saved);
  t.is((await exchange(rsp.port, 'served again', { end: true })).toString(), 'served again');
  const c = await countersOf(rsp);
  t.is(c.accepts, 3);
  t.is(c.connects, 2);
  t.is(c['no-backend-(EMFILE)'], 1);
});
