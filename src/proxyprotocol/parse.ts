// The PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1 and 2)
// that an L4 balancer puts in front of a connection's first byte to say who
// the client really is. Parsed incrementally: a header may arrive split
// across reads at any byte, and a prefix that can no longer become a valid
// header fails at once (a stray "GET /" is rejected at its first byte, not
// after a timeout).
//
//   v1: "PROXY TCP4 192.0.2.1 192.0.2.2 56324 443\r\n" (TCP6 likewise,
//       "PROXY UNKNOWN ...\r\n" for an unknown origin): at most 107 bytes,
//       single spaces, no leading zeros, ports 0-65535.
//   v2: a 12-byte signature, version/command, family/transport, a 16-bit
//       length, the addresses, then TLVs (skipped). LOCAL (a balancer's own
//       health check) and unknown families carry no client address: the
//       connection's own one applies.
import { isIPv4 } from 'node:net';
import { dotted, formatHostPort, isV4Mapped, sockaddrFromBytes, toSockaddr } from '../../ffi/sockaddr';

export const V1_MAX_LENGTH = 107;
export const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
/** Signature, version/command, family/transport, length. */
export const V2_FIXED_LENGTH = 16;
/**
 * The longest v2 header accepted (fixed part + addresses + TLVs). The spec
 * allows 64 KiB; real balancers send a few hundred bytes (AWS and GCP add
 * a TLV or two). A bound keeps a client from making rsp buffer much.
 */
export const V2_MAX_LENGTH = 4096;

const V1_PREFIX = Buffer.from('PROXY ');

/** More bytes are needed before the header can be judged. */
export const NEED_MORE = 'need more' as const;

export interface ProxyAddress {
  family: 4 | 6;
  address: string;
  port: number;
  /** sockaddr_in / sockaddr_in6, as accept() would have given it. */
  sockaddr: Buffer;
  /** "192.0.2.1:56324", "[2001:db8::1]:443" */
  text: string;
}

export interface ProxyHeader {
  version: 1 | 2;
  /** "proxy": addresses given; "local": the sender's own connection (v2 LOCAL); "unknown": v1 UNKNOWN or a v2 family rsp does not map (AF_UNIX, AF_UNSPEC). */
  command: 'proxy' | 'local' | 'unknown';
  /** The client; null unless command is "proxy". */
  source: ProxyAddress | null;
  /** The address the client connected to; null unless command is "proxy". */
  destination: ProxyAddress | null;
  /** Bytes the header took: what follows is the client's data. */
  length: number;
}

export interface ProxyHeaderError {
  error: string;
}

export type ParseResult = typeof NEED_MORE | ProxyHeader | ProxyHeaderError;

export function isHeaderError(r: ParseResult): r is ProxyHeaderError {
  return typeof r === 'object' && 'error' in r;
}

/** Parse a header from the start of `buf` (all bytes received so far). */
export function parseProxyHeader(buf: Buffer): ParseResult {
  if (buf.length === 0) return NEED_MORE;
  if (buf[0] === 0x50) return parseV1(buf);
  if (buf[0] === 0x0d) return parseV2(buf);
  return { error: `not a PROXY protocol header (starts with ${describeByte(buf[0])})` };
}

function describeByte(b: number): string {
  return b >= 0x20 && b < 0x7f ? JSON.stringify(String.fromCharCode(b)) : `byte 0x${b.toString(16).padStart(2, '0')}`;
}

// ---- v1 ---------------------------------------------------------------------

function parseV1(buf: Buffer): ParseResult {
  const prefix = Math.min(buf.length, V1_PREFIX.length);
  if (buf.compare(V1_PREFIX, 0, prefix, 0, prefix) !== 0) return { error: 'not a PROXY protocol header (v1 must start with "PROXY ")' };
  // The CRLF must end by byte 107: the CR at index 105 at the latest.
  const limit = Math.min(buf.length, V1_MAX_LENGTH - 1);
  let end = -1;
  for (let i = 0; i < limit; i++) {
    const c = buf[i];
    if (c === 0x0a) return { error: 'PROXY v1 header: a line feed without a carriage return before it' };
    if (c === 0x0d) {
      end = i;
      break;
    }
    if (c < 0x20 || c > 0x7e) return { error: `PROXY v1 header: ${describeByte(c)} is not allowed` };
  }
  if (end === -1) return buf.length >= V1_MAX_LENGTH - 1 ? { error: `PROXY v1 header longer than ${V1_MAX_LENGTH} bytes` } : NEED_MORE;
  if (end + 1 >= buf.length) return NEED_MORE;
  if (buf[end + 1] !== 0x0a) return { error: 'PROXY v1 header: a carriage return not followed by a line feed' };
  const length = end + 2;
  const line = buf.toString('latin1', V1_PREFIX.length, end);
  const fields = line.split(' ');
  if (fields[0] === 'UNKNOWN') {
    // The spec: whatever follows UNKNOWN up to the CRLF is ignored.
    return { version: 1, command: 'unknown', source: null, destination: null, length };
  }
  if (fields[0] !== 'TCP4' && fields[0] !== 'TCP6') return { error: `PROXY v1 header: protocol ${JSON.stringify(fields[0])} is not TCP4, TCP6 or UNKNOWN` };
  if (fields.length !== 5) return { error: `PROXY v1 header: ${JSON.stringify(line)} does not have 4 fields after the protocol, separated by single spaces` };
  const family = fields[0] === 'TCP4' ? 4 : 6;
  const sourcePort = v1Port(fields[3]);
  const destinationPort = v1Port(fields[4]);
  if (sourcePort < 0 || destinationPort < 0) return { error: `PROXY v1 header: bad port in ${JSON.stringify(line)}` };
  const source = v1Address(family, fields[1], sourcePort);
  const destination = v1Address(family, fields[2], destinationPort);
  if (source === null || destination === null) return { error: `PROXY v1 header: bad ${fields[0]} address in ${JSON.stringify(line)}` };
  return { version: 1, command: 'proxy', source, destination, length };
}

/** A decimal port 0-65535 without leading zeros, or -1. */
function v1Port(text: string): number {
  if (!/^(0|[1-9]\d{0,4})$/.test(text)) return -1;
  const n = Number(text);
  return n <= 65535 ? n : -1;
}

function v1Address(family: 4 | 6, text: string, port: number): ProxyAddress | null {
  // isIPv4 rejects leading zeros and out-of-range parts.
  if (family === 4) return isIPv4(text) ? address(Buffer.from(text.split('.').map(Number)), port) : null;
  // inet_pton (in toSockaddr) is the judge for v6, after refusing what it
  // would otherwise take (brackets, zone ids).
  if (!/^[0-9A-Fa-f:.]+$/.test(text) || !text.includes(':')) return null;
  try {
    return address(toSockaddr(text, port).subarray(8, 24), port);
  } catch {
    return null;
  }
}

// ---- v2 ---------------------------------------------------------------------

function parseV2(buf: Buffer): ParseResult {
  const prefix = Math.min(buf.length, V2_SIGNATURE.length);
  if (buf.compare(V2_SIGNATURE, 0, prefix, 0, prefix) !== 0) return { error: 'not a PROXY protocol header (bad v2 signature)' };
  if (buf.length < 13) return NEED_MORE;
  const versionCommand = buf[12];
  if (versionCommand >> 4 !== 2) return { error: `PROXY v2 header: version ${versionCommand >> 4}, not 2` };
  const command = versionCommand & 0x0f;
  if (command > 1) return { error: `PROXY v2 header: unknown command ${command}` };
  if (buf.length < V2_FIXED_LENGTH) return NEED_MORE;
  const familyTransport = buf[13];
  const family = familyTransport >> 4;
  const transport = familyTransport & 0x0f;
  if (family > 3) return { error: `PROXY v2 header: unknown address family ${family}` };
  if (transport > 2) return { error: `PROXY v2 header: unknown transport ${transport}` };
  const length = V2_FIXED_LENGTH + buf.readUInt16BE(14);
  if (length > V2_MAX_LENGTH) return { error: `PROXY v2 header of ${length} bytes: more than the ${V2_MAX_LENGTH} rsp accepts` };
  const needed = command === 0 ? 0 : family === 1 ? 12 : family === 2 ? 36 : family === 3 ? 216 : 0;
  if (length - V2_FIXED_LENGTH < needed) return { error: `PROXY v2 header: ${length - V2_FIXED_LENGTH} bytes of addresses, family ${family} needs ${needed}` };
  if (buf.length < length) return NEED_MORE;
  // LOCAL: the sender speaks for itself (a health check); the block is ignored.
  if (command === 0) return { version: 2, command: 'local', source: null, destination: null, length };
  if (transport === 2) return { error: 'PROXY v2 header: a datagram (UDP) origin on a stream connection' };
  if (family === 1 && transport === 1) {
    const source = address(buf.subarray(16, 20), buf.readUInt16BE(24));
    const destination = address(buf.subarray(20, 24), buf.readUInt16BE(26));
    return { version: 2, command: 'proxy', source, destination, length };
  }
  if (family === 2 && transport === 1) {
    const source = address(buf.subarray(16, 32), buf.readUInt16BE(48));
    const destination = address(buf.subarray(32, 48), buf.readUInt16BE(50));
    return { version: 2, command: 'proxy', source, destination, length };
  }
  // AF_UNSPEC or AF_UNIX: nothing an IP proxy can use; the connection's own address applies.
  return { version: 2, command: 'unknown', source: null, destination: null, length };
}

/**
 * An address from its bytes (4 or 16), named as fromSockaddr names what
 * accept() gives: a v4-mapped v6 address (::ffff:a.b.c.d) by its v4 form.
 * Built in JS, without libc: a header costs no system call.
 */
function address(bytes: Buffer, port: number): ProxyAddress {
  const sockaddr = sockaddrFromBytes(bytes, port);
  let family: 4 | 6 = 4;
  let text: string;
  if (bytes.length === 4) text = dotted(bytes, 0);
  else if (isV4Mapped(bytes, 0)) text = dotted(bytes, 12);
  else {
    family = 6;
    text = formatV6(bytes);
  }
  return { family, address: text, port, sockaddr, text: formatHostPort(text, port) };
}

/** RFC 5952's form, as glibc's inet_ntop writes it: lower case, the longest run of two or more zero groups (the first of equals) as "::". */
export function formatV6(b: Buffer): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i));
  let bestAt = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestAt = i;
      bestLength = j - i;
    }
    i = j;
  }
  // glibc's rule: an IPv4-compatible (::a.b.c.d) or v4-mapped (::ffff:a.b.c.d) address ends in dotted form.
  if (bestAt === 0 && (bestLength === 6 || (bestLength === 5 && groups[5] === 0xffff))) return `::${bestLength === 5 ? 'ffff:' : ''}${dotted(b, 12)}`;
  const hex = (from: number, to: number): string => groups.slice(from, to).map((g) => g.toString(16)).join(':');
  if (bestAt === -1) return hex(0, 8);
  return `${hex(0, bestAt)}::${hex(bestAt + bestLength, 8)}`;
}

// ---- incremental --------------------------------------------------------------

/**
 * Feed it a connection's reads until it says the header is complete (or
 * wrong). It keeps a copy of what it was given (readers hand out a shared
 * buffer), at most V2_MAX_LENGTH bytes.
 */
export class ProxyHeaderParser {
  private received: Buffer = Buffer.alloc(0);
  /** Where, in the last chunk fed, the client's own data starts (valid once a header was returned). */
  restOffset = 0;

  /** Bytes received and not judged yet. */
  get pending(): number {
    return this.received.length;
  }

  feed(data: Buffer, length: number): ParseResult {
    const before = this.received.length;
    // Never more than the longest header: the rest is the client's data.
    const take = Math.min(length, V2_MAX_LENGTH - before);
    this.received = Buffer.concat([this.received, data.subarray(0, take)]);
    const r = parseProxyHeader(this.received);
    if (r === NEED_MORE && take < length) return { error: 'PROXY header too long' };
    if (typeof r === 'object' && 'length' in r) {
      this.restOffset = r.length - before;
      this.received = Buffer.alloc(0);
    }
    return r;
  }
}
