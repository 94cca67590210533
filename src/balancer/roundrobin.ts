// balance = "roundrobin": nginx's smooth weighted round-robin.
//
// Every member has a current weight. On each pick, every available member's
// current weight grows by its (effective) weight; the largest wins and gives
// back the total of the weights handed out. Over any run of picks each member
// gets its share, and the heavy one's picks are spread among the others'
// instead of coming in a burst: weights 5:1:1 give a a b a c a a, not
// a a a a a b c. With equal weights it is plain rotation, exactly even.
import { available, type Member } from './member';
import type { BalanceMethod } from './method';

export class RoundRobin implements BalanceMethod {
  constructor(private readonly members: readonly Member[]) {}

  pick(_key: number, exclude: readonly Member[] | null, now: number): Member | null {
    const members = this.members;
    let best: Member | null = null;
    let total = 0;
    for (let i = 0; i < members.length; i++) {
      const m = members[i];
      if (!available(m, exclude)) continue;
      const w = m.weightAt(now);
      m.current += w;
      total += w;
      if (best === null || m.current > best.current) best = m;
    }
    if (best !== null) best.current -= total;
    return best;
  }

  changed(): void {
    for (const m of this.members) m.current = 0;
  }
}
