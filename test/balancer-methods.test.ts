// The four balancing methods, through a Pool with an injected clock and
// random source: what each one picks, exactly where the algorithm is exact.
import test from 'ava';
import { toSockaddr } from '../ffi/sockaddr';
import { hashClient } from '../src/balancer/hash32';
import type { Member, MemberSpec } from '../src/balancer/member';
import { Pool, type BalanceName, type PoolOptions } from '../src/balancer/pool';
import { setLogSink } from '../src/log';

setLogSink(() => {}); // the pools' state lines are checked in balancer-pool.test.ts

function spec(name: string, extra: Partial<MemberSpec> = {}): MemberSpec {
  const i = name.lastIndexOf(':');
  return { name, sockaddr: toSockaddr(name.slice(0, i), Number(name.slice(i + 1))), ...extra };
}

function makePool(balance: BalanceName, members: MemberSpec[], options: Partial<PoolOptions> = {}): Pool {
  return new Pool({ name: 'app', balance, members, clock: { now: 0 }, ...options });
}

/** mulberry32: a small seeded PRNG, so "random" tests are the same on every run. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Pick `n` times, each connection over before the next (so load plays no part); the names in order. */
function picks(pool: Pool, n: number, key: (i: number) => string | null = () => null): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const m = pool.pick(key(i));
    if (m === null) throw new Error('no member picked');
    out.push(m.name);
    pool.released(m);
  }
  return out;
}

function tally(names: string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const n of names) counts[n] = (counts[n] ?? 0) + 1;
  return counts;
}

const A = '10.0.0.1:8080';
const B = '10.0.0.2:8080';
const C = '10.0.0.3:8080';

// ---- roundrobin

test('roundrobin with equal weights goes round in order: N picks over N members are exactly even', (t) => {
  const pool = makePool('roundrobin', [spec(A), spec(B), spec(C)]);
  const order = picks(pool, 30);
  t.deepEqual(order.slice(0, 6), [A, B, C, A, B, C]);
  t.deepEqual(tally(order), { [A]: 10, [B]: 10, [C]: 10 });
  for (let i = 0; i + 3 <= order.length; i += 3) t.is(new Set(order.slice(i, i + 3)).size, 3, `picks ${i}..${i + 2} cover every member`);
});

test('roundrobin with weights 3:1 gives 30:10 over 40 picks, one B in every 4 (no bursts)', (t) => {
  const pool = makePool('roundrobin', [spec(A, { weight: 3 }), spec(B, { weight: 1 })]);
  const order = picks(pool, 40);
  t.deepEqual(tally(order), { [A]: 30, [B]: 10 });
  t.deepEqual(order.slice(0, 4), [A, A, B, A], "nginx's smooth order");
  for (let i = 0; i + 4 <= order.length; i++) t.is(order.slice(i, i + 4).filter((n) => n === B).length, 1, `window ${i}`);
});

test("roundrobin with weights 5:1:1 picks in nginx's documented smooth order a a b a c a a", (t) => {
  const pool = makePool('roundrobin', [spec(A, { weight: 5 }), spec(B), spec(C)]);
  t.deepEqual(picks(pool, 14), [A, A, B, A, C, A, A, A, A, B, A, C, A, A]);
});

test('roundrobin is not swayed by load: connections still open do not change the order', (t) => {
  const pool = makePool('roundrobin', [spec(A), spec(B)]);
  const held: string[] = [];
  for (let i = 0; i < 6; i++) held.push(pool.pick()!.name);
  t.deepEqual(held, [A, B, A, B, A, B]);
});

// ---- leastconn

test('leastconn avoids a member busy with long connections, and the idle ones take turns', (t) => {
  const pool = makePool('leastconn', [spec(A), spec(B), spec(C)]);
  const b = pool.members[1];
  // Fifteen long-lived connections, five on each; then those on A and C end.
  const held: Member[] = [];
  for (let i = 0; i < 15; i++) held.push(pool.pick()!);
  for (const m of held) if (m !== b) pool.released(m);
  t.is(b.active, 5);
  const order = picks(pool, 20);
  t.false(order.includes(B), 'the busy member got nothing');
  // The idle two take turns (smooth round-robin among the tied; the turn
  // may start one off, as the tie set changed from three members to two).
  const counts = tally(order);
  t.true(Math.abs(counts[A] - counts[C]) <= 2, JSON.stringify(counts));
  for (let i = 2; i < order.length; i++) t.not(order[i], order[i - 1], `pick ${i} alternates`);
});

test('leastconn in an idle pool (every connection over before the next) is weighted round-robin: 3:1 over 40 = 30:10', (t) => {
  const pool = makePool('leastconn', [spec(A, { weight: 3 }), spec(B)]);
  const order = picks(pool, 40);
  t.deepEqual(tally(order), { [A]: 30, [B]: 10 });
  t.deepEqual(order.slice(0, 4), [A, A, B, A]);
});

test('leastconn fills members by weight: held connections split 2:1 for weights 2:1', (t) => {
  const pool = makePool('leastconn', [spec(A, { weight: 2 }), spec(B)]);
  for (let i = 0; i < 30; i++) pool.pick();
  t.is(pool.members[0].active, 20);
  t.is(pool.members[1].active, 10);
});

test('leastconn sends the next client to the member whose connection just ended', (t) => {
  const pool = makePool('leastconn', [spec(A), spec(B), spec(C)]);
  const held = [pool.pick()!, pool.pick()!, pool.pick()!];
  t.deepEqual(held.map((m) => m.name), [A, B, C]);
  pool.released(held[1]);
  t.is(pool.pick()!.name, B);
});

// ---- random (power of two choices)

/** A random source that returns these values in turn. */
function scripted(values: number[]): () => number {
  let i = 0;
  return () => {
    if (i >= values.length) throw new Error('script ran out');
    return values[i++];
  };
}

test('random draws two distinct members and takes the less busy one', (t) => {
  // Equal weights: a first draw of r*3 in [0,1) is A, [1,2) B, [2,3) C; the
  // second draw is among the two others, r*2.
  const draws = [0.5, 0.9, /* B, then C of {A, C} */ 0.9, 0.1, /* C, then A of {A, B} */ 0.1, 0.9 /* A, then C of {B, C} */];
  const pool = makePool('random', [spec(A), spec(B), spec(C)], { random: scripted(draws) });
  const [a, b, c] = pool.members;
  a.active = 0;
  b.active = 3;
  c.active = 1;
  t.is(pool.pick(), c, 'B (3) against C (1): C');
  c.active = 1;
  t.is(pool.pick(), a, 'C (1) against A (0): A');
  a.active = 0;
  t.is(pool.pick(), a, 'A (0) against C (1): A');
});

test('random never picks the busier of the two it drew (1000 picks, seeded)', (t) => {
  const pool = makePool('random', [spec(A), spec(B), spec(C), spec('10.0.0.4:8080')], { random: seeded(42) });
  const loads = [0, 4, 2, 7];
  let checked = 0;
  for (let i = 0; i < 1000; i++) {
    pool.members.forEach((m, j) => (m.active = loads[j]));
    const m = pool.pick()!;
    // The busiest member of four loses to whichever other was drawn with it.
    t.not(m.name, '10.0.0.4:8080');
    checked++;
  }
  t.is(checked, 1000);
  // With two members the other is always drawn too: the busy one never wins.
  const two = makePool('random', [spec(A), spec(B)], { random: seeded(7) });
  two.members[0].active = 1;
  t.deepEqual(tally(picks(two, 200)), { [B]: 200 });
});

test('random respects weights: idle members 3:1 get about 3:1 (seeded)', (t) => {
  const pool = makePool('random', [spec(A, { weight: 3 }), spec(B)], { random: seeded(1) });
  const counts = tally(picks(pool, 4000));
  // With both idle the first drawn wins, and it is drawn by weight: B's share is 1/4.
  t.true(Math.abs(counts[B] / 4000 - 0.25) < 0.03, JSON.stringify(counts));
});

// ---- hash

function keys(n: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
  return out;
}

function mapping(pool: Pool, clients: string[]): string[] {
  return clients.map((k) => {
    const m = pool.pick(k)!;
    pool.released(m);
    return m.name;
  });
}

const FIVE = [A, B, C, '10.0.0.4:8080', '10.0.0.5:8080'];

test('hash sends a client to the same member every time, whatever its port', (t) => {
  const pool = makePool('hash', FIVE.map((n) => spec(n)));
  const first = pool.pick('192.0.2.7')!;
  pool.released(first);
  for (let i = 0; i < 50; i++) t.is(pool.pick('192.0.2.7'), first);
  // The sockaddr form hashes the address, never the port (every connection has a new one).
  const bySockaddr = pool.pick(toSockaddr('192.0.2.8', 40000));
  for (let port = 40001; port < 40050; port++) t.is(pool.pick(toSockaddr('192.0.2.8', port)), bySockaddr);
  t.is(hashClient(toSockaddr('::ffff:192.0.2.8', 1)), hashClient(toSockaddr('192.0.2.8', 2)), 'a v4 client on a dual-stack listener hashes like a v4 one');
  t.not(hashClient(toSockaddr('2001:db8::1', 1)), hashClient(toSockaddr('2001:db8::2', 1)));
});

test('hash spreads clients over members by weight', (t) => {
  const clients = keys(20000);
  const even = tally(mapping(makePool('hash', FIVE.map((n) => spec(n))), clients));
  for (const n of FIVE) t.true(Math.abs(even[n] / 20000 - 0.2) < 0.05, `${n}: ${even[n]} of 20000`);
  const weighted = tally(mapping(makePool('hash', [spec(A, { weight: 3 }), spec(B)]), clients));
  t.true(Math.abs(weighted[A] / 20000 - 0.75) < 0.05, JSON.stringify(weighted));
});

test('hash: a member joining takes about 1/N of the clients, and only takes (nobody else moves)', (t) => {
  const clients = keys(20000);
  const pool = makePool('hash', FIVE.map((n) => spec(n)));
  const before = mapping(pool, clients);
  const added = pool.add(spec('10.0.0.6:8080'));
  const after = mapping(pool, clients);
  let moved = 0;
  for (let i = 0; i < clients.length; i++) {
    if (before[i] === after[i]) continue;
    moved++;
    if (after[i] !== added.name) t.fail(`${clients[i]} moved from ${before[i]} to ${after[i]}, not to the new member`);
  }
  // The new member's share is that of its arcs: with 160 points each, a
  // member's share is within about 8% (one standard deviation, 1/sqrt(160))
  // of the even 1/6; 20000 clients add sampling noise of about 0.003. So
  // 0.05 is some 3.5 standard deviations; a hash that remapped everyone
  // (modulo N) would move 5/6. The ring is deterministic: this is 0.181 on
  // every run.
  const fraction = moved / clients.length;
  t.true(Math.abs(fraction - 1 / 6) < 0.05, `moved ${fraction.toFixed(3)}, expected about ${(1 / 6).toFixed(3)}`);
});

test('hash: a member leaving hands over only its own clients (about 1/N)', (t) => {
  const clients = keys(20000);
  const pool = makePool('hash', FIVE.map((n) => spec(n)));
  const before = mapping(pool, clients);
  const leaving = pool.members[2];
  pool.remove(leaving);
  const after = mapping(pool, clients);
  let moved = 0;
  for (let i = 0; i < clients.length; i++) {
    if (before[i] === after[i]) continue;
    moved++;
    if (before[i] !== leaving.name) t.fail(`${clients[i]} moved from ${before[i]}, which did not leave`);
  }
  t.true(Math.abs(moved / clients.length - 1 / 5) < 0.05, `moved ${(moved / clients.length).toFixed(3)}, expected about 0.2`);
});

test('hash walks the ring past a member that is down, full or tried, and its clients come back when it is up', (t) => {
  const clients = keys(5000);
  const clock = { now: 0 };
  const pool = makePool('hash', FIVE.map((n) => spec(n)), { clock, failTimeout: 1000 });
  const before = mapping(pool, clients);
  const down = pool.members[0];
  const m = pool.pick(clients[before.indexOf(down.name)])!;
  t.is(m, down);
  pool.failed(m, 'ECONNREFUSED');
  const during = mapping(pool, clients);
  for (let i = 0; i < clients.length; i++) {
    if (before[i] === down.name) t.not(during[i], down.name);
    else if (during[i] !== before[i]) t.fail(`${clients[i]} moved although its member is up`);
  }
  // Its clients spread over the others, not all onto one neighbour.
  const spread = new Set(during.filter((_, i) => before[i] === down.name));
  t.true(spread.size >= 3, `went to ${[...spread].join(', ')}`);
  clock.now = 1000;
  t.deepEqual(mapping(pool, clients), before);
  // A retry for a client skips the member already tried, and is itself sticky.
  const k = clients[0];
  const first = pool.pick(k)!;
  const retry = pool.pick(k, [first])!;
  t.not(retry, first);
  t.is(pool.pick(k, [first]), retry);
});

test('hash without a client key still picks (the ring position of 0)', (t) => {
  const pool = makePool('hash', FIVE.map((n) => spec(n)));
  const m = pool.pick(null);
  t.not(m, null);
  t.is(pool.pick(null), m);
});

// ---- common to all

for (const balance of ['roundrobin', 'leastconn', 'random', 'hash'] as const) {
  test(`${balance}: never picks a member that is excluded, down or at maxConnections`, (t) => {
    const pool = makePool(balance, [spec(A), spec(B, { maxConnections: 1 }), spec(C)], { random: seeded(3) });
    const [a, b, c] = pool.members;
    const held: Member[] = [];
    for (let i = 0; i < 50; i++) {
      const m = pool.pick(`192.0.2.${i}`, [a])!;
      t.not(m, a);
      held.push(m);
    }
    t.is(b.active, 1, 'B took one connection and no more');
    t.is(c.active, 49);
    t.is(pool.pick('192.0.2.1', [a, c]), null, 'A tried, B full, C tried: nobody');
    for (const m of held) pool.released(m);
    pool.markDown(c, 'test');
    for (let i = 0; i < 20; i++) t.not(pool.pick(`192.0.2.${i}`, null), c);
  });
}
