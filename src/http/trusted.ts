// trustedProxies: the clients whose X-Forwarded-For rsp keeps (appending the
// client's address) instead of replacing it. A list of CIDRs, tested against
// the sockaddr accept4() filled in, per request, without making a string.
//
//   sockaddr_in:  family (u16, host order) | port (u16 BE) | address (4 bytes)
//   sockaddr_in6: family | port | flowinfo (4) | address (16 bytes at 8) | scope id
const AF_INET = 2;
const AF_INET6 = 10;

/** A CIDR as address bytes (4 or 16) and a prefix length. */
export interface Cidr {
  bytes: Uint8Array;
  prefix: number;
}

/** "10.0.0.1" into 4 bytes, or null. Dotted decimal only, no leading zeros (as inet_pton). */
function ipv4Bytes(text: string): Uint8Array | null {
  const parts = text.split('.');
  if (parts.length !== 4) return null;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i];
    if (!/^\d{1,3}$/.test(p) || (p.length > 1 && p[0] === '0') || Number(p) > 255) return null;
    out[i] = Number(p);
  }
  return out;
}

/** "2001:db8::1" or "::ffff:10.0.0.1" into 16 bytes, or null. */
function ipv6Bytes(text: string): Uint8Array | null {
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const groups = (s: string): number[] | null => {
    if (s === '') return [];
    const out: number[] = [];
    const parts = s.split(':');
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i];
      if (i === parts.length - 1 && p.includes('.')) {
        const v4 = ipv4Bytes(p);
        if (v4 === null) return null;
        out.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(p)) return null;
        out.push(parseInt(p, 16));
      }
    }
    return out;
  };
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  if (head === null || tail === null) return null;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return null;
  const all = [...head, ...Array<number>(missing).fill(0), ...tail];
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    out[2 * i] = all[i] >> 8;
    out[2 * i + 1] = all[i] & 0xff;
  }
  return out;
}

/** The bytes with every bit past `prefix` cleared. */
function masked(bytes: Uint8Array, prefix: number): Uint8Array {
  const out = Uint8Array.from(bytes);
  for (let i = 0; i < out.length; i++) {
    const keep = Math.max(0, Math.min(8, prefix - 8 * i));
    out[i] &= (0xff00 >> keep) & 0xff;
  }
  return out;
}

function formatBytes(bytes: Uint8Array): string {
  if (bytes.length === 4) return bytes.join('.');
  if (bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) return `::ffff:${bytes.subarray(12).join('.')}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] << 8) | bytes[i + 1]).toString(16));
  // The longest run of two or more zero groups becomes "::".
  let best = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; i++) {
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLength) [best, bestLength] = [i, j - i];
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLength).join(':')}`;
}

/**
 * "10.0.0.0/8", "::1/128", or a bare address (/32 or /128) into a Cidr; a
 * string saying what is wrong when it is not one. An address with bits set
 * past its prefix ("10.0.0.1/8") is refused with the network it probably means.
 */
export function parseCidr(text: string): Cidr | string {
  const m = /^([^/\s]+)(?:\/(\d{1,3}))?$/.exec(text);
  const bytes = m === null ? null : m[1].includes(':') ? ipv6Bytes(m[1]) : ipv4Bytes(m[1]);
  if (m === null || bytes === null) return `${JSON.stringify(text)} is not an address or CIDR ("10.0.0.0/8", "::1/128", "127.0.0.1")`;
  const max = bytes.length * 8;
  const prefix = m[2] === undefined ? max : Number(m[2]);
  if (prefix > max) return `${JSON.stringify(text)}: the prefix length of an IPv${bytes.length === 4 ? 4 : 6} CIDR is at most ${max}`;
  const network = masked(bytes, prefix);
  if (network.some((b, i) => b !== bytes[i])) {
    return `${JSON.stringify(text)} has bits set past its /${prefix} prefix (did you mean ${formatBytes(network)}/${prefix}?)`;
  }
  return { bytes: network, prefix };
}

/** A CIDR in its one spelling: "10.0.0.0/8", "::1/128". */
export function formatCidr(cidr: Cidr): string {
  return `${formatBytes(cidr.bytes)}/${cidr.prefix}`;
}

/** Whether 16 IPv6 bytes are an IPv4-mapped address (::ffff:a.b.c.d) up to `prefix` bits of a CIDR. */
function isMappedPrefix(cidr: Cidr): boolean {
  if (cidr.bytes.length !== 16 || cidr.prefix < 96) return false;
  for (let i = 0; i < 10; i++) if (cidr.bytes[i] !== 0) return false;
  return cidr.bytes[10] === 0xff && cidr.bytes[11] === 0xff;
}

/** The CIDRs of trustedProxies, as masks and networks in 32-bit words, tested against sockaddrs. */
export class TrustedProxies {
  /** Pairs (network, mask) of the IPv4 CIDRs (and of IPv4-mapped IPv6 ones). */
  private readonly v4: Uint32Array;
  /** Eight words per IPv6 CIDR: four of network, four of mask. */
  private readonly v6: Uint32Array;
  readonly size: number;

  /** `cidrs` as trustedProxies gives them (validated by the config: an invalid one throws). */
  constructor(cidrs: readonly string[]) {
    const v4: number[] = [];
    const v6: number[] = [];
    for (const text of cidrs) {
      const cidr = parseCidr(text);
      if (typeof cidr === 'string') throw new Error(cidr);
      const word = (b: Uint8Array, at: number): number => ((b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]) >>> 0;
      const maskWord = (bits: number): number => (bits <= 0 ? 0 : bits >= 32 ? 0xffffffff : (0xffffffff << (32 - bits)) >>> 0);
      if (cidr.bytes.length === 4) v4.push(word(cidr.bytes, 0), maskWord(cidr.prefix));
      else if (isMappedPrefix(cidr)) v4.push(word(cidr.bytes, 12), maskWord(cidr.prefix - 96));
      else {
        for (let i = 0; i < 4; i++) v6.push(word(cidr.bytes, 4 * i));
        for (let i = 0; i < 4; i++) v6.push(maskWord(cidr.prefix - 32 * i));
      }
    }
    this.v4 = Uint32Array.from(v4);
    this.v6 = Uint32Array.from(v6);
    this.size = cidrs.length;
  }

  /** Whether the address of a sockaddr_in or sockaddr_in6 is in one of the CIDRs (an IPv4-mapped IPv6 address as its IPv4 one). */
  has(sockaddr: Buffer): boolean {
    const family = sockaddr.readUInt16LE(0);
    if (family === AF_INET) return this.hasV4(sockaddr.readUInt32BE(4));
    if (family !== AF_INET6) return false;
    const w0 = sockaddr.readUInt32BE(8);
    const w1 = sockaddr.readUInt32BE(12);
    const w2 = sockaddr.readUInt32BE(16);
    const w3 = sockaddr.readUInt32BE(20);
    if (w0 === 0 && w1 === 0 && w2 === 0xffff) return this.hasV4(w3);
    const v6 = this.v6;
    for (let i = 0; i < v6.length; i += 8) {
      if (((w0 & v6[i + 4]) >>> 0) === v6[i] && ((w1 & v6[i + 5]) >>> 0) === v6[i + 1]
        && ((w2 & v6[i + 6]) >>> 0) === v6[i + 2] && ((w3 & v6[i + 7]) >>> 0) === v6[i + 3]) return true;
    }
    return false;
  }

  private hasV4(address: number): boolean {
    const v4 = this.v4;
    for (let i = 0; i < v4.length; i += 2) if (((address & v4[i + 1]) >>> 0) === v4[i]) return true;
    return false;
  }
}
