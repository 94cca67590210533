// A fast 32-bit hash for the consistent-hash ring and client keys: FNV-1a over
// the bytes, then murmur3's finalizer (fmix32). FNV-1a alone spreads short,
// similar inputs ("10.0.0.1:8080#17", "10.0.0.1:8080#18") poorly over the high
// bits that decide a ring position; the finalizer makes every input bit reach
// every output bit. No crypto: a client cannot gain anything by steering its
// address to a member, and a pick must cost no more than a few multiplies.
import { AF_INET, AF_INET6 } from '../../ffi/libc';

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Hash of bytes [start, end) of `buf`, as an unsigned 32-bit number. */
export function hashBytes(buf: Buffer, start: number, end: number): number {
  let h = FNV_OFFSET;
  for (let i = start; i < end; i++) h = Math.imul(h ^ buf[i], FNV_PRIME);
  return fmix32(h);
}

/** Hash of a string's UTF-16 code units (one byte for the ASCII of addresses, two otherwise). */
export function hashString(s: string): number {
  let h = FNV_OFFSET;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0xff) h = Math.imul(h ^ (c >>> 8), FNV_PRIME);
    h = Math.imul(h ^ (c & 0xff), FNV_PRIME);
  }
  return fmix32(h);
}

/**
 * The hash of a client for `balance = "hash"`: of its address only, never
 * its port (a client's every connection has a new port, and must still reach
 * the same member). `key` is either the address as text ("192.0.2.7",
 * "2001:db8::1") or the client's sockaddr as accept() filled it in; a v4
 * client seen on a dual-stack listener (::ffff:192.0.2.7) hashes like the
 * plain v4 sockaddr. A caller should use one form throughout: the text and
 * the sockaddr of one address hash differently.
 */
export function hashClient(key: string | Buffer): number {
  if (typeof key === 'string') return hashString(key);
  if (key.length >= 16) {
    const family = key.readUInt16LE(0);
    if (family === AF_INET) return hashBytes(key, 4, 8);
    if (family === AF_INET6 && key.length >= 24) {
      if (isV4Mapped(key)) return hashBytes(key, 20, 24);
      return hashBytes(key, 8, 24);
    }
  }
  return hashBytes(key, 0, key.length);
}

/** sin6_addr is ::ffff:a.b.c.d: ten zero bytes, then 0xffff. */
function isV4Mapped(sa: Buffer): boolean {
  for (let i = 8; i < 18; i++) if (sa[i] !== 0) return false;
  return sa[18] === 0xff && sa[19] === 0xff;
}
