// Field names come back on every request (the same few dozen), so their
// strings are kept: a name is looked up by its bytes in a small direct-mapped
// table and made only on a miss. A hit costs a compare of a few bytes instead
// of a string allocation through C++.
import { LOWER } from './chars';

const SLOTS = 512;

/** A direct-mapped cache of strings by their latin1 bytes; `lower`: the strings are the ASCII lower-case of the bytes. */
export class NameCache {
  private readonly strings: string[] = new Array<string>(SLOTS).fill('');
  constructor(private readonly lower: boolean) {}

  get(d: Buffer, s: number, e: number): string {
    const n = e - s;
    if (n === 0) return '';
    if (n > 40) return this.make(d, s, e);
    const low = LOWER;
    const slot = (n * 31 + low[d[s]] * 7 + low[d[e - 1]] * 3 + low[d[s + (n >> 1)]]) & (SLOTS - 1);
    const cached = this.strings[slot];
    if (cached.length === n) {
      let i = 0;
      if (this.lower) while (i < n && low[d[s + i]] === cached.charCodeAt(i)) i++;
      else while (i < n && d[s + i] === cached.charCodeAt(i)) i++;
      if (i === n) return cached;
    }
    const made = this.make(d, s, e);
    this.strings[slot] = made;
    return made;
  }

  private make(d: Buffer, s: number, e: number): string {
    const text = (d as Buffer & { latin1Slice(s: number, e: number): string }).latin1Slice(s, e);
    return this.lower ? text.toLowerCase() : text;
  }
}
