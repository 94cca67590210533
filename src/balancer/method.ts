// What the four balancing methods have in common. A method chooses among
// the members of one group (the primaries, or the backups) of a pool; the
// pool decides which group, and keeps the members' state.
import type { Member } from './member';

export interface BalanceMethod {
  /**
   * The member for the next connection, among those available() (up, below
   * maxConnections, not in `exclude`), or null when none is. `key` is the
   * client's hash (hashClient), used only by the hash method; `now` is the
   * clock for slow-start weights. Allocates nothing.
   */
  pick(key: number, exclude: readonly Member[] | null, now: number): Member | null;
  /** Members were added or removed: rebuild whatever depends on the set. */
  changed(): void;
}
