// Pairings on its own: the set of live pairings a worker keeps for its idle
// sweep and its stop; and what a pairing that has left must not be: kept
// alive by the set's storage until a full collection.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { type Pairing, Pairings } from '../src/pairings';
import { Reactor } from '../src/reactor';

function pairing(): Pairing & { holds: Buffer } {
  return { slot: -1, acceptedBy: null, holds: Buffer.alloc(64), lastActive: () => 0, sendQueuesMoved: () => false, resetBoth: () => {} };
}

test('pairings that come and go, 64 at a time, after the set has lived long: none is promoted to the old generation by the set', (t) => {
  // The way it went wrong with a Set: long keep-alive connections let its
  // hash table age into the old generation; from then on every table it
  // outgrew was made there too, and each one left behind kept the pairings it
  // held until a full collection, so every short connection was promoted (15
  // MB in this script; 16 MB/s at 20,000 connections a second). Measured
  // with V8's own GC trace, in a process of its own.
  const script = `
    const { Pairings } = require(${JSON.stringify(path.join(__dirname, '..', 'src', 'pairings.js'))});
    const { Reactor } = require(${JSON.stringify(path.join(__dirname, '..', 'src', 'reactor.js'))});
    const pairing = () => ({ slot: -1, acceptedBy: null, holds: new Array(64).fill(0), lastActive: () => 0, sendQueuesMoved: () => false, resetBoth: () => {} });
    const reactor = new Reactor({ triggerMode: 'level', maxEvents: 16 });
    const pairings = new Pairings(reactor, 0);
    const longLived = Array.from({ length: 64 }, pairing);
    for (const p of longLived) pairings.add(p);
    for (let i = 0; i < 300000; i++) new Array(32).fill(i); // young collections while they live
    for (const p of longLived) pairings.delete(p);
    console.log('--- churn');
    const window = [];
    for (let i = 0; i < 200000; i++) {
      const p = pairing();
      pairings.add(p);
      window.push(p);
      if (window.length > 64) pairings.delete(window.shift());
    }
    reactor.close();
  `;
  const run = spawnSync(process.execPath, ['--trace-gc-nvp', '-e', script], { encoding: 'utf8', timeout: 60_000 });
  t.is(run.status, 0, run.stderr);
  const churn = run.stdout.slice(run.stdout.indexOf('--- churn'));
  const scavenges = churn.split('\n').filter((l) => l.includes(' gc=s '));
  const promoted = scavenges.reduce((sum, l) => sum + Number(/ promoted=(\d+)/.exec(l)?.[1] ?? 0), 0);
  t.true(scavenges.length > 0, 'young collections during the churn');
  t.true(promoted < 2_000_000, `${(promoted / 1e6).toFixed(1)} MB promoted over ${scavenges.length} young collections`);
});

test('add, delete (twice, or one never added), size, and a reset of all that empties the set', (t) => {
  const reactor = new Reactor({ triggerMode: 'level', maxEvents: 16 });
  t.teardown(() => reactor.close());
  const pairings = new Pairings(reactor, 0);
  const [a, b, c] = [pairing(), pairing(), pairing()];
  const removed: Pairing[] = [];
  pairings.onRemoved = (p) => removed.push(p);
  for (const p of [a, b, c]) pairings.add(p);
  t.is(pairings.size, 3);
  pairings.delete(a);
  pairings.delete(a);
  pairings.delete(pairing());
  t.deepEqual(removed, [a]);
  t.is(pairings.size, 2);
  const reset: Pairing[] = [];
  b.resetBoth = () => reset.push(b);
  c.resetBoth = () => {
    reset.push(c);
    pairings.delete(c); // a reset pairing leaves as it closes
  };
  pairings.resetAll('stopped');
  t.deepEqual(reset.sort((x, y) => (x === b ? -1 : y === b ? 1 : 0)), [b, c]);
  t.is(pairings.size, 0);
  t.deepEqual(removed, [a], 'stopping counts nothing');
});
