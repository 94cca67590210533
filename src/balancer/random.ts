// balance = "random": the power of two random choices. Draw two distinct
// members at random, each with a chance proportional to its weight, and take
// the one with fewer active connections for its weight (the first drawn on a
// tie). Almost as even as leastconn, but without looking at every member,
// and without the herd that follows a single global "least loaded" member
// when many balancers share the same backends (nginx's random two least_conn,
// HAProxy's balance random(2)).
import { available, type Member } from './member';
import type { BalanceMethod } from './method';

export class PowerOfTwo implements BalanceMethod {
  constructor(
    private readonly members: readonly Member[],
    /** Uniform in [0, 1): Math.random, or a seeded source in tests. */
    private readonly random: () => number,
  ) {}

  pick(_key: number, exclude: readonly Member[] | null, now: number): Member | null {
    const members = this.members;
    let total = 0;
    let count = 0;
    for (let i = 0; i < members.length; i++) {
      const m = members[i];
      if (!available(m, exclude)) continue;
      total += m.weightAt(now);
      count++;
    }
    if (count === 0) return null;
    const a = this.draw(total, null, exclude, now);
    if (count === 1) return a;
    const wa = a.weightAt(now);
    const b = this.draw(total - wa, a, exclude, now);
    return b.active * wa < a.active * b.weightAt(now) ? b : a;
  }

  changed(): void {}

  /** One available member other than `skip`, by weight; `total` is the sum of their weights. */
  private draw(total: number, skip: Member | null, exclude: readonly Member[] | null, now: number): Member {
    const members = this.members;
    let r = this.random() * total;
    let last: Member | null = null;
    for (let i = 0; i < members.length; i++) {
      const m = members[i];
      if (m === skip || !available(m, exclude)) continue;
      last = m;
      r -= m.weightAt(now);
      if (r < 0) return m;
    }
    return last!; // r was within rounding of total
  }
}
