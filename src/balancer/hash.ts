// balance = "hash": consistent hashing of the client's address on a ring
// (ketama, as nginx's "hash ... consistent" and HAProxy's "hash-type
// consistent").
//
// Every member owns POINTS_PER_WEIGHT x weight points on a 32-bit ring, at
// the hashes of "<its address>#0", "#1", ... A client goes to the owner of
// the first point at or after the hash of its address. The points depend only
// on the member's own address, so adding a member takes over only the arcs
// its new points cut (about 1/N of the clients), and removing one hands only
// its own clients to the next points along the ring; everyone else stays
// where they were. A member that is down, full or already tried is skipped by
// walking on along the ring: its clients spread over the others, and come
// back to it when it is up again.
//
// Weights here are the configured ones: slow start would move clients
// between members every moment of the ramp, which defeats the point.
import { hashString } from './hash32';
import { available, type Member } from './member';
import type { BalanceMethod } from './method';

/** Points per unit of weight: ketama's 160 keeps each member's share within a few percent of its weight. */
export const POINTS_PER_WEIGHT = 160;

export class ConsistentHash implements BalanceMethod {
  /** Ring positions, ascending. */
  private points = new Uint32Array(0);
  /** owners[i] owns points[i]. */
  private owners: Member[] = [];

  constructor(private readonly members: readonly Member[]) {
    this.changed();
  }

  pick(key: number, exclude: readonly Member[] | null, _now: number): Member | null {
    const points = this.points;
    const n = points.length;
    if (n === 0) return null;
    // The first point >= key; past the last one, the ring wraps to 0.
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (points[mid] < key) lo = mid + 1;
      else hi = mid;
    }
    for (let step = 0; step < n; step++) {
      let i = lo + step;
      if (i >= n) i -= n;
      const m = this.owners[i];
      if (available(m, exclude)) return m;
    }
    return null;
  }

  changed(): void {
    const entries: { point: number; owner: Member }[] = [];
    for (const m of this.members) {
      const count = Math.max(1, Math.round(POINTS_PER_WEIGHT * m.weight));
      for (let i = 0; i < count; i++) entries.push({ point: hashString(`${m.name}#${i}`), owner: m });
    }
    // On the rare equal hash, the order must not depend on the order of the
    // members in the config: the name decides.
    entries.sort((a, b) => a.point - b.point || (a.owner.name < b.owner.name ? -1 : a.owner.name > b.owner.name ? 1 : 0));
    this.points = Uint32Array.from(entries, (e) => e.point);
    this.owners = entries.map((e) => e.owner);
  }
}
