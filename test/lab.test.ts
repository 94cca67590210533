// The epoll lab (scripts/lab.ts), each experiment in a shortened form,
// asserting what it is meant to show, never how fast: edge-triggered
// accept-once strands connections and level-triggered does not;
// edge-triggered read-once stalls and level-triggered delivers everything;
// a read budget keeps two bulk streams fair in edge mode; EPOLLOUT left
// registered costs level mode events; EPOLLRDHUP saves reads. Then the
// command line itself: --quick --only --json, and Ctrl-C killing its rsp.
//
// The experiments run in this process (the lab's client and backend are a
// Reactor driven from here), one at a time: test.serial throughout.
import test from 'ava';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as lab from '../scripts/lab';

const ROOT = path.join(__dirname, '..', '..');
const LAB = path.join(ROOT, 'dist', 'scripts', 'lab', 'cli.js');

/**
 * Shorter than --quick. Timeouts that end a wait early when the expected
 * thing happens (everything served, everything delivered) are generous, for
 * a loaded machine; the ones that detect a stall can be short, because a
 * stalled edge-triggered connection never recovers by itself.
 */
const P: lab.LabParams = {
  ...lab.QUICK,
  bulkBytes: 20 * 1_000_000,
  keepAliveWarmup: 200,
  keepAliveRequests: 1000,
  fairWarmBytes: 4 * 1_000_000,
  fairStartMs: 3000,
  fairWindowBytes: 400 * 1_000_000,
  fairWindowMs: 600,
  kickTimeoutMs: 500,
  shortConns: 200,
  wakeRequests: 400,
  idleMs: 200,
  // Only a real stall goes this long without progress, even on a loaded machine.
  stallMs: 5000,
};
const WAIT_FOR_ALL = { strandTimeoutMs: 10000, readOnceTimeoutMs: 10000 };
const WAIT_FOR_STALL = { strandTimeoutMs: 1000, readOnceTimeoutMs: 1000 };

test.after.always(() => lab.killAll());

test.serial('accept once: level-triggered serves every connection in the backlog', async (t) => {
  t.timeout(60000);
  const row = await lab.acceptOnce('level', { ...P, ...WAIT_FOR_ALL });
  t.log(row.result);
  t.is(row.figures.served, row.figures.connections);
  t.is(row.figures.stranded, 0);
  t.is(row.counters.accepts, row.figures.connections);
});

test.serial('accept once: edge-triggered strands connections in the backlog until a new one arrives', async (t) => {
  t.timeout(60000);
  const row = await lab.acceptOnce('edge', { ...P, ...WAIT_FOR_STALL });
  t.log(row.result);
  t.true(row.figures.stranded > 0, row.result);
  t.true(row.figures.served < row.figures.connections, row.result);
  t.is(row.figures.kicked, 1);
  t.true(row.figures.servedAfterKick >= 1, `a new connection (a new edge) freed ${row.figures.servedAfterKick}`);
  t.regex(row.explanation, /no new edge/);
});

test.serial('read once: level-triggered delivers the whole response', async (t) => {
  t.timeout(60000);
  const row = await lab.readOnce('level', { ...P, ...WAIT_FOR_ALL });
  t.log(row.result);
  t.is(row.figures.complete, 1);
  t.is(row.figures.received, row.figures.bytes);
});

test.serial('read once: edge-triggered stalls (shown by a timeout, not a hang)', async (t) => {
  t.timeout(60000);
  const row = await lab.readOnce('edge', { ...P, ...WAIT_FOR_STALL });
  t.log(row.result);
  t.is(row.figures.complete, 0);
  t.true(row.figures.received < row.figures.bytes, row.result);
  t.regex(row.result, /^stalled/);
});

test.serial('fairness: edge-triggered with readBudget 16 gives each of two bulk streams at least 0.4', async (t) => {
  t.timeout(60000);
  const row = await lab.fairness('edge', 16, P);
  t.log(row.result);
  t.is(row.figures.bothFlowing, 1);
  t.true(row.figures.windowMB > 0);
  t.true(row.figures.smallerShare >= 0.4, row.result);
});

test.serial('EPOLLOUT always registered: level-triggered epoll reports idle writable sockets, queued does not', async (t) => {
  t.timeout(60000);
  const queued = await lab.epolloutCost('level', 'queued', P);
  const always = await lab.epolloutCost('level', 'always', P);
  t.log(`queued: ${queued.result}`);
  t.log(`always: ${always.result}`);
  t.true(always.counters.events > queued.counters.events, `${always.counters.events} vs ${queued.counters.events} events`);
  t.true(always.figures.eventsPerRequest > queued.figures.eventsPerRequest);
  t.true(always.figures.idleWaits > queued.figures.idleWaits, `idle wake-ups: ${always.figures.idleWaits} vs ${queued.figures.idleWaits}`);
});

// With rsp's defaults. rdhupCost reports a stall (connections that never see
// their end) instead of hanging, as rsp did here before 663d205.
for (const mode of lab.MODES) {
  test.serial(`EPOLLRDHUP: rdhup=true makes fewer reads than rdhup=false for the same work (${mode})`, async (t) => {
    t.timeout(60000);
    const withRdhup = await lab.rdhupCost(mode, true, P);
    const without = await lab.rdhupCost(mode, false, P);
    t.log(`rdhup=true:  ${withRdhup.result}`);
    t.log(`rdhup=false: ${without.result}`);
    t.is(withRdhup.figures.stalled, 0, withRdhup.explanation);
    t.is(without.figures.stalled, 0, without.explanation);
    t.is(withRdhup.figures.finished, without.figures.finished);
    t.true(withRdhup.counters.reads < without.counters.reads, `${withRdhup.counters.reads} vs ${without.counters.reads} reads`);
  });
}

for (const mode of lab.MODES) {
  test.serial(`bulk transfer and keep-alive produce positive figures (${mode})`, async (t) => {
    t.timeout(60000);
    const bulk = await lab.bulkTransfer(mode, P);
    t.log(bulk.result);
    for (const key of ['mbPerSecond', 'syscallsPerMB', 'epollWaits', 'reads', 'writes']) {
      t.true(bulk.figures[key] > 0 && Number.isFinite(bulk.figures[key]), `${key} = ${bulk.figures[key]}`);
    }
    t.true(bulk.counters.bytesRead >= P.bulkBytes, 'rsp read at least every byte that went through it');
    const keepAlive = await lab.keepAlive(mode, P);
    t.log(keepAlive.result);
    for (const key of ['requestsPerSecond', 'syscallsPerRequest', 'readsPerRequest', 'writesPerRequest']) {
      t.true(keepAlive.figures[key] > 0 && Number.isFinite(keepAlive.figures[key]), `${key} = ${keepAlive.figures[key]}`);
    }
    t.true(keepAlive.explanation.length > 100);
  });
}

test('counter lines parse into sets, and two sets subtract', (t) => {
  const out = [
    '[2026-11-27 13:25:05] counters: epoll_wait calls=10 events=20 events-per-wait=2.00 max-events-per-wait=4 stale-events=0 deferred=1',
    '[2026-11-27 13:25:05] counters: epoll_ctl add=2 mod=3 del=0',
    '[2026-11-27 13:25:05] counters: io reads=5 reads-eagain=1 writes=4 short-writes=0 bytes-read=500 bytes-written=400 bytes-queued=0 peak-queue=0',
    '[2026-11-27 13:25:05] counters: connections accepts=1 accept-calls=2 connects=1 other-calls=6 syscalls=32',
    '[2026-11-27 13:25:05] counters: closes none',
    '[2026-11-27 13:25:06] counters: epoll_wait calls=15 events=26 events-per-wait=1.73 max-events-per-wait=5 stale-events=0 deferred=1',
    '[2026-11-27 13:25:06] counters: epoll_ctl add=4 mod=3 del=0',
    '[2026-11-27 13:25:06] counters: io reads=9 reads-eagain=1 writes=8 short-writes=0 bytes-read=900 bytes-written=800 bytes-queued=0 peak-queue=0',
    '[2026-11-27 13:25:06] counters: connections accepts=2 accept-calls=4 connects=2 other-calls=12 syscalls=54',
    '[2026-11-27 13:25:06] counters: closes closed=2 client-gone=1',
  ].join('\n');
  const sets = lab.parseCounterSets(out);
  t.is(sets.length, 2);
  t.is(sets[0].waits, 10);
  t.is(sets[0].readsEagain, 1);
  t.is(sets[1].syscalls, 54);
  t.deepEqual(sets[1].closes, { closed: 2, 'client-gone': 1 });
  const d = lab.diffCounters(sets[1], sets[0]);
  t.is(d.waits, 5);
  t.is(d.reads, 4);
  t.is(d.syscalls, 22);
  t.is(d.maxBatch, 5);
  t.deepEqual(d.closes, { closed: 2, 'client-gone': 1 });
});

/** pids of the live (not zombie) children of `pid`. */
function children(pid: number): number[] {
  const found: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === pid && fields[0] !== 'Z') found.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

function runLab(args: string[]): { done: Promise<number | null>; output: () => string; pid: number; kill: (s: NodeJS.Signals) => void } {
  const proc = spawn(process.execPath, [LAB, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (c: Buffer) => (out += c.toString()));
  proc.stderr.on('data', (c: Buffer) => (out += c.toString()));
  const done = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  return { done, output: () => out, pid: proc.pid!, kill: (s) => proc.kill(s) };
}

test.serial('npm run lab -- --quick --only 4 --json FILE: progress lines, the table with explanations, raw results', async (t) => {
  t.timeout(60000);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rsp-lab-test-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'lab.json');
  const run = runLab(['--quick', '--only', '4', '--json', file]);
  t.teardown(() => run.kill('SIGKILL'));
  t.is(await run.done, 0, run.output());
  const out = run.output();
  t.regex(out, /^\[lab\] experiment 4: /m);
  t.regex(out, /^\[lab\] {3}4 level /m);
  t.regex(out, /^\[lab\] {3}4 edge /m);
  t.regex(out, /^#\s+experiment\s+mode\s+rsp settings/m);
  t.regex(out, /client and backend: this lab process/);
  const report = JSON.parse(fs.readFileSync(file, 'utf8')) as { quick: boolean; rows: lab.LabRow[] };
  t.true(report.quick);
  t.deepEqual(report.rows.map((r) => `${r.label} ${r.mode}`), ['4 level', '4 edge']);
  for (const row of report.rows) {
    t.true(row.explanation.length > 200, row.explanation);
    t.true(out.includes(row.result), `table row for ${row.label} ${row.mode}`);
  }
  t.is(report.rows[0].figures.stranded, 0);
  t.true(report.rows[1].figures.stranded > 0);
});

test.serial('Ctrl-C stops the lab and kills the rsp it started', async (t) => {
  t.timeout(60000);
  const run = runLab(['--quick', '--only', '3']);
  t.teardown(() => run.kill('SIGKILL'));
  // Wait until it has an rsp running.
  let rsp: number[] = [];
  const deadline = Date.now() + 20000;
  while (rsp.length === 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    if (/\[lab\] experiment 3/.test(run.output())) rsp = children(run.pid);
  }
  t.true(rsp.length > 0, `no rsp child seen:\n${run.output()}`);
  run.kill('SIGINT');
  t.is(await run.done, 130, run.output());
  const gone = Date.now() + 5000;
  while (rsp.some(alive) && Date.now() < gone) await new Promise((r) => setTimeout(r, 20));
  t.deepEqual(rsp.filter(alive), [], 'every rsp child is gone');
});
