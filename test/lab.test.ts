// The epoll lab (scripts/lab/), each experiment in a shortened form,
// asserting what it is meant to show, never how fast: edge-triggered
// accept-once strands connections and level-triggered does not;
// edge-triggered read-once stalls and level-triggered delivers everything;
// a read budget keeps two bulk streams fair in edge mode; EPOLLOUT left
// registered costs level mode events; EPOLLRDHUP saves reads; level mode
// reading like edge mode saves the same system calls; urgent data arrives
// whole through rsp; a dup()ed fd keeps a closed fd's registration alive;
// EPOLLONESHOT costs an epoll_ctl per event where a ready list costs none;
// splice moves a bulk transfer in fewer system calls per MB than copying.
// Then the command line itself: --quick --only --json, a wrong --only, and
// Ctrl-C killing its rsp.
//
// Waits end on what they wait for (bytes, a served client, output, a
// process gone), bounded for a loaded machine; the only durations are the
// ones that show a stall (nothing can prove "never" but a while) and the
// idle pause whose wake-ups 6b counts.
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
  // The window ends after this many bytes, not after a time (the bound is for a loaded machine).
  fairWindowBytes: 16 * 1_000_000,
  fairWindowMs: 30000,
  // Ends as soon as the new connection has freed one.
  kickTimeoutMs: 10000,
  shortConns: 200,
  wakeRequests: 400,
  idleMs: 200,
  oneshotMs: 300,
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

test.serial('bulk transfer: level mode reading like edge mode (readPolicy drain) saves the system calls edge mode saves', async (t) => {
  t.timeout(60000);
  const once = await lab.bulkTransfer('level', P);
  const drain = await lab.bulkTransfer('level', P, 'drain');
  t.log(`level once:  ${once.result}`);
  t.log(`level drain: ${drain.result}`);
  t.deepEqual(drain.settings, { readPolicy: 'drain' });
  t.true(once.figures.readsPerWait < 1.5, `level default reads once per report: ${once.figures.readsPerWait}`);
  t.true(drain.figures.readsPerWait > 2, `level drain reads several per report: ${drain.figures.readsPerWait}`);
  t.true(drain.counters.waits < once.counters.waits, `${drain.counters.waits} vs ${once.counters.waits} epoll_wait`);
  t.true(drain.figures.syscallsPerMB < once.figures.syscallsPerMB);
});

for (const mode of lab.MODES) {
  test.serial(`copy vs splice: splicing moves the bytes in fewer system calls per MB, and the trace shows a round (${mode})`, async (t) => {
    t.timeout(60000);
    const copy = await lab.copyVsSplice(mode, 'off', P);
    const splice = await lab.copyVsSplice(mode, 'on', P);
    t.log(`copy:   ${copy.result}`);
    t.log(`splice: ${splice.result}`);
    t.is(copy.counters.splices, 0);
    t.true(splice.counters.splices > 0 && splice.counters.reads < 10, `${splice.counters.reads} reads, ${splice.counters.splices} splices`);
    t.true(splice.figures.syscallsPerMB < copy.figures.syscallsPerMB, `${splice.figures.syscallsPerMB} vs ${copy.figures.syscallsPerMB}`);
    const round = splice.trace ?? [];
    t.is(round.length, 3, round.join('\n'));
    t.regex(round[1] ?? '', /^ {4}splice\(\d+ → pipe \d+\) = \d+$/);
    t.regex(round[2] ?? '', /^ {4}splice\(pipe \d+ → \d+\) = \d+$/);
  });
  test.serial(`urgent data: rsp delivers what a direct client gets, past the urgent mark (${mode})`, async (t) => {
    t.timeout(60000);
    const row = await lab.urgentData(mode, { ...P, ...WAIT_FOR_ALL });
    t.log(row.result);
    t.is(row.figures.direct, 2000, 'direct: 1000 A + 1000 B, the urgent byte out of band');
    t.is(row.figures.directClean, 1);
    t.is(row.figures.viaRsp, row.figures.direct, row.explanation);
    t.is(row.figures.viaRspClean, 1, row.result);
    t.true(row.figures.backendReads >= 2, 'rsp read on after the short read at the mark');
    t.true((row.trace ?? []).some((l) => /^read\(\d+\) = 1000$/.test(l)), (row.trace ?? []).join('\n'));
    t.true(row.counters.urgentMarks >= 1, 'rsp counted the urgent mark');
  });
}

for (const mode of lab.MODES) {
  test.serial(`dup: events for a closed fd number keep coming until the last fd of the socket is closed (${mode})`, async (t) => {
    const row = await lab.dupTrap(mode, P);
    t.log(row.result);
    t.is(row.figures.eventsCarryClosedFd, 1, (row.trace ?? []).join('\n'));
    t.is(row.figures.delClosedEbadf, 1, 'EPOLL_CTL_DEL on the closed number: EBADF');
    t.is(row.figures.delDupEnoent, 1, 'EPOLL_CTL_DEL on the dup: ENOENT');
    t.is(row.figures.eventsAfterLastClose, 0);
    t.is(row.figures.repeatsOfThree, mode === 'level' ? 3 : 0, 'level repeats while unread, edge does not');
    if (row.figures.numberReused) t.is(row.figures.eventsAfterReuseCarryA, 1, 'the stale registration now names the new socket');
  });
}

test.serial('EPOLLONESHOT: one epoll_ctl per event in both modes; a ready list needs none; both share two streams', async (t) => {
  t.timeout(60000);
  const rows = [
    await lab.oneshotLoop('level', 'oneshot', P),
    await lab.oneshotLoop('edge', 'oneshot', P),
    await lab.oneshotLoop('edge', 'ready list', P),
  ];
  for (const row of rows) {
    t.log(`${row.mode} ${row.settings.strategy}: ${row.result}`);
    t.true(row.figures.windowMB > 0);
    t.true(row.figures.smallerShare >= 0.3, row.result);
  }
  for (const row of rows.slice(0, 2)) t.is(row.figures.epollCtl, row.figures.events, 'one MOD per event handled');
  t.is(rows[2].figures.epollCtl, 0, 'registered once, never modified');
});

test.serial('balancing with one slow member: round-robin gives it a third, leastconn much less', async (t) => {
  t.timeout(60000);
  // A slow member far slower than a busy machine's scheduling noise, so the two methods are told apart even under load.
  const params = { ...P, balanceSlowMs: 200 };
  const rr = await lab.balanceRun(params, 'roundrobin');
  const lc = await lab.balanceRun(params, 'leastconn');
  t.log(`roundrobin: ${rr.result}`);
  t.log(`leastconn: ${lc.result}`);
  t.is(rr.figures.failed + lc.figures.failed, 0);
  // One client at a time per member turn: exactly a third each.
  t.deepEqual([rr.figures.fastA, rr.figures.fastB, rr.figures.slow], [P.balanceRequests / 3, P.balanceRequests / 3, P.balanceRequests / 3]);
  // Far fewer (about 1/25 on a quiet machine; under heavy load the fast members slow down too).
  t.true(lc.figures.slow < rr.figures.slow * 0.75, lc.result);
});

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

interface LabRun {
  /** Its exit code, once it has exited and all its output is read ('close', not 'exit'). */
  done: Promise<number | null>;
  output: () => string;
  pid: number;
  kill: (s: NodeJS.Signals) => void;
  /** Resolves when `check()` is true, checked on each piece of output and every 50 ms; rejects after `ms`. */
  until: (check: () => boolean, ms: number, what: string) => Promise<void>;
}

function runLab(args: string[]): LabRun {
  const proc = spawn(process.execPath, [LAB, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const listeners = new Set<() => void>();
  const onData = (c: Buffer): void => {
    out += c.toString();
    for (const l of listeners) l();
  };
  proc.stdout.on('data', onData);
  proc.stderr.on('data', onData);
  let exited = false;
  const done = new Promise<number | null>((resolve) => proc.on('close', (code) => {
    exited = true;
    resolve(code);
  }));
  const until = (check: () => boolean, ms: number, what: string): Promise<void> => new Promise((resolve, reject) => {
    const finish = (error?: Error): void => {
      listeners.delete(test);
      clearInterval(timer);
      clearTimeout(deadline);
      if (error) reject(error);
      else resolve();
    };
    const test = (): void => {
      if (check()) finish();
      else if (exited) finish(new Error(`the lab exited before ${what}:\n${out}`));
    };
    listeners.add(test);
    const timer = setInterval(test, 50);
    const deadline = setTimeout(() => finish(new Error(`no ${what} within ${ms} ms:\n${out}`)), ms);
    test();
  });
  return { done, output: () => out, pid: proc.pid!, kill: (s) => proc.kill(s), until };
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

test.serial('--only with a wrong name says which experiments there are', async (t) => {
  t.timeout(30000);
  const run = runLab(['--only', 'x']);
  t.teardown(() => run.kill('SIGKILL'));
  t.is(await run.done, 2);
  t.regex(run.output(), /no experiment "x": choose from 1, 2, 3, 4, 5, 6, 7, 8, 9/);
  t.notRegex(run.output(), /NaN/);
});

test.serial('Ctrl-C stops the lab and kills the rsp it started', async (t) => {
  t.timeout(60000);
  const run = runLab(['--quick', '--only', '3']);
  t.teardown(() => run.kill('SIGKILL'));
  // Until it has an rsp running.
  let rsp: number[] = [];
  await run.until(() => /\[lab\] experiment 3/.test(run.output()) && (rsp = children(run.pid)).length > 0, 20000, 'rsp child');
  t.true(rsp.length > 0);
  run.kill('SIGINT');
  t.is(await run.done, 130, run.output());
  // It has exited; its rsp children were SIGKILLed on the way out.
  await new Promise<void>((resolve, reject) => {
    const deadline = Date.now() + 5000;
    const check = (): void => {
      if (!rsp.some(alive)) resolve();
      else if (Date.now() > deadline) reject(new Error(`still alive: ${rsp.filter(alive).join(', ')}`));
      else setTimeout(check, 20);
    };
    check();
  });
  t.deepEqual(rsp.filter(alive), [], 'every rsp child is gone');
});
