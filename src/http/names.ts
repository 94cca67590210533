// Field names come back on every request (the same few dozen), so their
// strings are kept: a name is looked up by its bytes in a small cache and
// made only on a miss. A hit costs a hash of a few bytes and a compare of
// the name's bytes with the cached copy (typed-array loads, cheaper than
// charCodeAt) instead of a string allocation through C++.
//
// The cache is set-associative, four ways per set: names that hash alike (a
// site's few dozen names in 256 sets) all stay; a fifth replaces the ways in
// turn.
import { LOWER } from './chars';

const SETS = 256;
const WAYS = 4;

/**
 * A cache of strings by their latin1 bytes; `lower`: the strings are the
 * ASCII lower-case of the bytes. Field names use it, and so do hosts (a
 * server sees the same few, and routing by Host then makes no string).
 */
export class NameCache {
  // Way w of set s is entry WAYS * s + w: its string and its bytes (lower-cased when `lower`).
  private readonly strings: string[] = new Array<string>(SETS * WAYS).fill('');
  private readonly bytes: Uint8Array;
  /** Per set: the way the next miss replaces. */
  private readonly victim = new Uint8Array(SETS);

  constructor(
    private readonly lower: boolean,
    /** Longer ones are made each time (rare, and not worth a slot). */
    private readonly maxLength = 40,
  ) {
    this.bytes = new Uint8Array(SETS * WAYS * maxLength);
  }

  get(d: Buffer, s: number, e: number): string {
    const n = e - s;
    if (n === 0) return '';
    if (n > this.maxLength) return this.make(d, s, e);
    const low = LOWER;
    const set = (n * 7 + low[d[s]] * 31 + low[d[s + 1 < e ? s + 1 : s]] * 3 + low[d[e - 1]] * 5 + low[d[s + (n >> 1)]]) & (SETS - 1);
    for (let way = 0; way < WAYS; way++) {
      const entry = set * WAYS + way;
      const cached = this.strings[entry];
      if (cached.length === n && this.same(d, s, n, entry * this.maxLength)) return cached;
    }
    const way = this.victim[set];
    this.victim[set] = (way + 1) & (WAYS - 1);
    const entry = set * WAYS + way;
    const made = this.make(d, s, e);
    this.strings[entry] = made;
    const at = entry * this.maxLength;
    for (let i = 0; i < n; i++) this.bytes[at + i] = this.lower ? low[d[s + i]] : d[s + i];
    return made;
  }

  private same(d: Buffer, s: number, n: number, at: number): boolean {
    const b = this.bytes;
    if (this.lower) {
      const low = LOWER;
      for (let i = 0; i < n; i++) if (low[d[s + i]] !== b[at + i]) return false;
    } else {
      for (let i = 0; i < n; i++) if (d[s + i] !== b[at + i]) return false;
    }
    return true;
  }

  private make(d: Buffer, s: number, e: number): string {
    const text = (d as Buffer & { latin1Slice(s: number, e: number): string }).latin1Slice(s, e);
    return this.lower ? text.toLowerCase() : text;
  }
}
