// balance = "leastconn": the member with the fewest active connections for
// its weight (active / weight, compared by cross-multiplying: no division).
// Connects in progress count, so a burst of new clients spreads at once
// instead of all going to the member that was idle a moment ago. Members
// tied for fewest take turns by smooth weighted round-robin, as in nginx's
// least_conn, so an idle pool still spreads evenly.
import { available, type Member } from './member';
import type { BalanceMethod } from './method';

export class LeastConn implements BalanceMethod {
  constructor(private readonly members: readonly Member[]) {}

  pick(_key: number, exclude: readonly Member[] | null, now: number): Member | null {
    const members = this.members;
    let best: Member | null = null;
    let bestWeight = 0;
    let ties = 0;
    for (let i = 0; i < members.length; i++) {
      const m = members[i];
      if (!available(m, exclude)) continue;
      const w = m.weightAt(now);
      if (best === null || m.active * bestWeight < best.active * w) {
        best = m;
        bestWeight = w;
        ties = 1;
      } else if (m.active * bestWeight === best.active * w) {
        ties++;
      }
    }
    if (ties <= 1) return best;
    // Several share the lowest load: smooth round-robin among just those.
    const load = best!.active;
    let chosen: Member | null = null;
    let total = 0;
    for (let i = 0; i < members.length; i++) {
      const m = members[i];
      if (!available(m, exclude)) continue;
      const w = m.weightAt(now);
      if (m.active * bestWeight !== load * w) continue;
      m.current += w;
      total += w;
      if (chosen === null || m.current > chosen.current) chosen = m;
    }
    chosen!.current -= total;
    return chosen;
  }

  changed(): void {
    for (const m of this.members) m.current = 0;
  }
}
