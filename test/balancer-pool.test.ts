// A pool's members and their state: passive health (maxFails/failTimeout),
// backups, maxConnections, slowStart, counters and the log lines, all on an
// injected clock (no sleeps).
import test from 'ava';
import { toSockaddr } from '../ffi/sockaddr';
import { DOWN, UP, type MemberSpec } from '../src/balancer/member';
import { Pool, type PoolOptions } from '../src/balancer/pool';
import { setLogSink } from '../src/log';

function spec(name: string, extra: Partial<MemberSpec> = {}): MemberSpec {
  const i = name.lastIndexOf(':');
  return { name, sockaddr: toSockaddr(name.slice(0, i).replace(/^\[|\]$/g, ''), Number(name.slice(i + 1))), ...extra };
}

const A = '10.0.0.1:8080';
const B = '10.0.0.2:8080';
const C = '10.0.0.3:8080';
const Z = '10.0.0.9:8080';

/** A pool on a clock the test moves, and the log lines it wrote (without their timestamps). */
function setup(members: MemberSpec[], options: Partial<PoolOptions> = {}): { pool: Pool; clock: { now: number }; lines: string[] } {
  const clock = { now: 0 };
  const lines: string[] = [];
  // Tests in this file are synchronous: each one's sink is the only one while it runs.
  setLogSink((level, line) => lines.push(`${level} ${line.replace(/^\[[^\]]+\] /, '')}`));
  const pool = new Pool({ name: 'app', members, clock, ...options });
  return { pool, clock, lines };
}

/** `n` picks, each over before the next; the names. */
function names(pool: Pool, n: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const m = pool.pick();
    out.push(m === null ? 'none' : m.name);
    if (m !== null) pool.released(m);
  }
  return out;
}

function count(list: string[], name: string): number {
  return list.filter((n) => n === name).length;
}

test('a failed connect marks the member down at once (maxFails 1), with one log line naming pool, member, reason and count', (t) => {
  const { pool, lines } = setup([spec(A), spec(B), spec(C)]);
  const b = pool.members[1];
  pool.pick(); // A
  const m = pool.pick()!;
  t.is(m, b);
  pool.failed(m, 'ECONNREFUSED');
  t.is(b.state, DOWN);
  t.is(b.downReason, 'connection refused');
  t.deepEqual(lines, ['error Backend app member 10.0.0.2:8080 is down (connection refused); 2 of 3 up.']);
  t.is(pool.upCount, 2);
  t.is(count(names(pool, 30), B), 0);
});

test('a down member is tried again after failTimeout (nginx), and says so once', (t) => {
  const { pool, clock, lines } = setup([spec(A), spec(B)], { failTimeout: 5000 });
  const a = pool.members[0];
  clock.now = 1000;
  pool.failed(pool.pick()!, 'ETIMEDOUT');
  t.is(a.state, DOWN);
  clock.now = 5999;
  t.is(count(names(pool, 10), A), 0, 'still down 1 ms before failTimeout is over');
  clock.now = 6000;
  t.is(count(names(pool, 10), A), 5, 'back in the rotation');
  t.deepEqual(lines, [
    'error Backend app member 10.0.0.1:8080 is down (connect timed out); 1 of 2 up.',
    'info Backend app member 10.0.0.1:8080 is up; 2 of 2 up.',
  ]);
});

test('a member whose failTimeout is over is counted up before the next line is logged, even with no pick in between', (t) => {
  const { pool, clock, lines } = setup([spec(A), spec(B)], { failTimeout: 1000 });
  const [a, b] = pool.members;
  const m = pool.pick()!;
  t.is(m, a);
  const n = pool.pick()!;
  pool.failed(m, 'ECONNREFUSED');
  clock.now = 5000;
  pool.failed(n, 'ECONNREFUSED'); // B's connect started before, fails now
  t.is(b.state, DOWN);
  t.deepEqual(lines, [
    'error Backend app member 10.0.0.1:8080 is down (connection refused); 1 of 2 up.',
    'info Backend app member 10.0.0.1:8080 is up; 2 of 2 up.',
    'error Backend app member 10.0.0.2:8080 is down (connection refused); 1 of 2 up.',
  ]);
});

test('maxFails counts failures within failTimeout: slower ones and a success in between reset it', (t) => {
  // Two members (the only member of a pool is never taken out); every pick here is A's.
  const { pool, clock, lines } = setup([spec(A), spec(B, { maxConnections: 1 })], { maxFails: 3, failTimeout: 1000 });
  const [a, b] = pool.members;
  b.active = 1; // full: not picked
  const fail = (at: number): void => {
    clock.now = at;
    pool.failed(pool.pick()!, 'ECONNREFUSED');
  };
  fail(0);
  fail(500);
  fail(1000); // the window of the first failure is over: this one starts a new one
  t.is(a.state, UP);
  fail(1100);
  const m = pool.pick()!;
  pool.connected(m); // a success clears the count
  pool.released(m);
  fail(1200);
  fail(1300);
  t.is(a.state, UP);
  fail(1400);
  t.is(a.state, DOWN);
  t.is(a.failures, 7);
  t.is(a.total, 1);
  t.deepEqual(lines, ['error Backend app member 10.0.0.1:8080 is down (connection refused; 3 failures within 1000 ms); 1 of 2 up.']);
  t.is(pool.pick(), null, 'nobody to send to');
});

test('maxFails 0 never marks a member down', (t) => {
  const { pool, lines } = setup([spec(A)], { maxFails: 0 });
  for (let i = 0; i < 10; i++) pool.failed(pool.pick()!, 'ECONNREFUSED');
  t.is(pool.members[0].state, UP);
  t.is(pool.members[0].failures, 10);
  t.deepEqual(lines, []);
});

test('with active checks on, a passive failure marks down and only a check brings it back (HAProxy observe)', (t) => {
  const { pool, clock, lines } = setup([spec(A), spec(B)], { failTimeout: 1000 });
  pool.activeChecks = true;
  const a = pool.members[0];
  pool.failed(pool.pick()!, 'ECONNRESET');
  clock.now = 100000;
  t.is(count(names(pool, 10), A), 0, 'failTimeout does not bring it back');
  pool.markUp(a); // what the checker does after `rise` passed checks
  t.is(count(names(pool, 10), A), 5);
  t.deepEqual(lines, [
    'error Backend app member 10.0.0.1:8080 is down (connection reset); 1 of 2 up.',
    'info Backend app member 10.0.0.1:8080 is up; 2 of 2 up.',
  ]);
});

test('backup members take traffic only while no primary can: none up, all full, or all tried', (t) => {
  const { pool, clock, lines } = setup([spec(A, { maxConnections: 2 }), spec(B), spec(Z, { backup: true })], { failTimeout: 1000 });
  const [a, b, z] = pool.members;
  t.is(count(names(pool, 100), Z), 0, 'primaries up: the backup gets nothing');
  t.is(pool.pick(null, [a, b]), z, 'both primaries already tried for this client: the backup');
  pool.released(z);
  // B down, A full: the backup.
  pool.markDown(b, 'test');
  const held = [pool.pick()!, pool.pick()!];
  t.deepEqual(held, [a, a]);
  t.is(pool.pick(), z);
  pool.released(z);
  for (const m of held) pool.released(m);
  // Every primary down: the backup, and the log says so.
  pool.failed(pool.pick()!, 'ECONNREFUSED');
  t.deepEqual(names(pool, 5), [Z, Z, Z, Z, Z]);
  t.deepEqual(lines.slice(-1), ['error Backend app member 10.0.0.1:8080 is down (connection refused); 1 of 3 up: backups only.']);
  clock.now = 1000;
  t.deepEqual(names(pool, 4), [A, A, A, A], 'A is back: the backup is idle again');
});

test('backups among themselves use the pool\'s method', (t) => {
  const { pool } = setup([spec(A), spec(Z, { backup: true }), spec('10.0.0.10:8080', { backup: true, weight: 3 })]);
  pool.markDown(pool.members[0], 'test');
  const order = names(pool, 8);
  t.is(count(order, Z), 2);
  t.is(count(order, '10.0.0.10:8080'), 6);
});

test('all members down: pick() is null, and the last one down says there is nobody left', (t) => {
  const { pool, lines } = setup([spec(A), spec(Z, { backup: true })]);
  pool.markDown(pool.members[0], 'health check: connection refused, 3 in a row');
  pool.markDown(pool.members[1], 'health check: status 503, 3 in a row');
  t.is(pool.pick(), null);
  t.deepEqual(lines, [
    'error Backend app member 10.0.0.1:8080 is down (health check: connection refused, 3 in a row); 1 of 2 up: backups only.',
    'error Backend app member 10.0.0.9:8080 is down (health check: status 503, 3 in a row); 0 of 2 up: no member to send to.',
  ]);
  pool.markDown(pool.members[1], 'again');
  t.is(lines.length, 2, 'no line when nothing changes');
});

test('maxConnections: a member at its limit is not picked until one of its connections ends', (t) => {
  const { pool } = setup([spec(A, { maxConnections: 2 }), spec(B)]);
  const [a, b] = pool.members;
  const held = [];
  for (let i = 0; i < 8; i++) held.push(pool.pick()!);
  t.deepEqual(held.map((m) => m.name), [A, B, A, B, B, B, B, B]);
  t.is(a.active, 2);
  t.is(b.active, 6);
  pool.released(held[0]);
  const next = [pool.pick()!, pool.pick()!];
  t.true(next.includes(a), 'A takes a connection again within its round-robin turn');
  t.is(a.active, 2);
  // A failed connect ends the pick too.
  const c = setup([spec(A, { maxConnections: 1 })], { maxFails: 0 }).pool;
  c.failed(c.pick()!, 'ECONNREFUSED');
  t.is(c.pick(), c.members[0]);
  t.is(c.pick(), null, 'full, and no other member');
});

test('slowStart: a member that comes back ramps from near zero to its full weight over slowStart ms', (t) => {
  const { pool, clock } = setup([spec(A), spec(B)], { slowStart: 10000, failTimeout: 1000 });
  const [a, b] = pool.members;
  t.is(count(names(pool, 100), B), 50, 'members there from the start are not ramped');
  pool.markDown(b, 'test');
  pool.markUp(b); // at 0 ms
  t.true(b.weightAt(0) > 0 && b.weightAt(0) <= 0.01, `near zero, never zero: ${b.weightAt(0)}`);
  let onB = count(names(pool, 1000), B);
  t.true(onB >= 5 && onB <= 15, `at the start: ${onB} of 1000`);
  clock.now = 5000; // half way: weight 0.5 against 1
  onB = count(names(pool, 300), B);
  t.true(onB >= 99 && onB <= 101, `half way: ${onB} of 300`);
  clock.now = 10000;
  t.is(b.weightAt(clock.now), 1);
  t.is(a.weightAt(clock.now), 1);
  onB = count(names(pool, 100), B);
  t.true(onB >= 49 && onB <= 51, `at full weight: ${onB} of 100`);
});

test('slowStart: a member that joins ramps up too, and its failTimeout return as well', (t) => {
  const { pool, clock, lines } = setup([spec(A, { weight: 2 })], { slowStart: 1000, failTimeout: 500, balance: 'leastconn' });
  clock.now = 100;
  const c = pool.add(spec(C, { weight: 2 }));
  t.is(c.weightAt(600), 1, 'half of 2, half way');
  t.is(c.weightAt(1100), 2);
  t.deepEqual(lines, ['info Backend app member 10.0.0.3:8080 joins; 2 of 2 up.']);
  clock.now = 2000;
  pool.markDown(c, 'test', clock.now + 500);
  clock.now = 2500;
  pool.pick(); // the failTimeout return happens on the next pick
  t.is(c.state, UP);
  t.is(c.weightAt(3000), 1);
});

test('counters: active, total, failures, bytes', (t) => {
  const { pool } = setup([spec(A)], { maxFails: 0 });
  const a = pool.members[0];
  const m1 = pool.pick()!;
  const m2 = pool.pick()!;
  t.is(a.active, 2);
  pool.connected(m1);
  pool.failed(m2, 'ECONNREFUSED');
  t.is(a.active, 1);
  m1.bytesIn += 100; // the proxy bumps these
  m1.bytesOut += 20;
  pool.released(m1);
  t.like(a, { active: 0, total: 1, failures: 1, bytesIn: 100, bytesOut: 20, state: UP });
});

test('an IPv6 member is named as [addr]:port in the log', (t) => {
  const { pool, lines } = setup([spec('[::1]:5432'), spec('[::1]:5433')], { name: 'db' } as Partial<PoolOptions>);
  pool.failed(pool.pick()!, 'ECONNREFUSED');
  t.deepEqual(lines, ['error Backend db member [::1]:5432 is down (connection refused); 1 of 2 up.']);
});

test('the only member of a pool is never taken out by failed connects (as nginx)', (t) => {
  const { pool, lines } = setup([spec(A)], { maxFails: 1 });
  for (let i = 0; i < 5; i++) pool.failed(pool.pick()!, 'ECONNREFUSED');
  t.is(pool.members[0].state, UP);
  t.is(pool.members[0].failures, 5);
  t.deepEqual(lines, []);
});

test('bad pool settings are one clear error', (t) => {
  setLogSink(() => {});
  const clock = { now: 0 };
  t.throws(() => new Pool({ name: 'app', members: [], clock }), { message: 'pool app: no members' });
  t.throws(() => new Pool({ name: 'app', members: [spec(A, { weight: 0 })], clock }), { message: 'member 10.0.0.1:8080: weight must be a positive number, not 0' });
  t.throws(() => new Pool({ name: 'app', members: [spec(A, { maxConnections: -1 })], clock }), { message: /maxConnections must be a whole number/ });
  t.throws(() => new Pool({ name: 'app', members: [spec(A)], clock, balance: 'fastest' as 'hash' }), { message: /unknown balance "fastest"/ });
  t.throws(() => new Pool({ name: 'app', members: [spec(A)], clock, failTimeout: -5 }), { message: /failTimeout must be/ });
  t.throws(() => new Pool({ name: 'app', members: [spec(A), spec(B), spec(A)], clock }), { message: 'pool app: member 10.0.0.1:8080 is listed twice' });
  const pool = new Pool({ name: 'app', members: [spec(A)], clock });
  t.throws(() => pool.add(spec(A)), { message: 'pool app: member 10.0.0.1:8080 is already in it' });
});

test('a member that left (DNS) is no longer picked; a connect to it that fails afterwards, or a check, changes nothing', (t) => {
  const { pool, lines } = setup([spec(A), spec(B), spec(C)]);
  const b = pool.members[1];
  const picks = [pool.pick()!, pool.pick()!]; // A, then B: a connect to B is in progress
  t.is(picks[1], b);
  pool.remove(b);
  t.false(b.inPool);
  t.deepEqual(lines, ['info Backend app member 10.0.0.2:8080 leaves; 2 of 2 up.']);
  pool.failed(b, 'ECONNREFUSED'); // the connect that was in progress
  pool.markDown(b, 'health check: connection refused'); // a check already under way
  pool.markUp(b);
  t.is(b.active, 0, 'the failed pick is ended');
  t.is(pool.upCount, 2, 'up count unchanged by the member that left');
  t.is(lines.length, 1, lines.join('\n'));
  t.deepEqual(names(pool, 4).sort(), [A, A, C, C]);
  pool.released(picks[0]);
});
