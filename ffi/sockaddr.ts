// struct sockaddr_in (16 bytes) and struct sockaddr_in6 (28 bytes), built and
// parsed by hand: family in host order, port in network order (big-endian),
// then the address bytes. Text <-> bytes goes through libc's inet_pton/ntop,
// except IPv4 to text, which is four numbers and dots.
import { AF_INET, AF_INET6, inet_ntop, inet_pton } from './libc';

export const SOCKADDR_IN_SIZE = 16;
export const SOCKADDR_IN6_SIZE = 28;
/** Large enough for any address rsp deals with (sizeof(struct sockaddr_storage)). */
export const SOCKADDR_MAX = 128;

export interface SocketAddress {
  family: 4 | 6;
  address: string;
  port: number;
}

/** Build the sockaddr for an IP literal and port; throws on anything that is not an IP literal. */
export function toSockaddr(address: string, port: number): Buffer {
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`invalid port ${port}`);
  const v4 = Buffer.alloc(4);
  if (inet_pton(AF_INET, address, v4) === 1) {
    const sa = Buffer.alloc(SOCKADDR_IN_SIZE);
    sa.writeUInt16LE(AF_INET, 0);
    sa.writeUInt16BE(port, 2);
    v4.copy(sa, 4);
    return sa;
  }
  const v6 = Buffer.alloc(16);
  const bare = address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address;
  if (inet_pton(AF_INET6, bare, v6) === 1) {
    const sa = Buffer.alloc(SOCKADDR_IN6_SIZE);
    sa.writeUInt16LE(AF_INET6, 0);
    sa.writeUInt16BE(port, 2);
    sa.writeUInt32LE(0, 4); // sin6_flowinfo
    v6.copy(sa, 8);
    sa.writeUInt32LE(0, 24); // sin6_scope_id
    return sa;
  }
  throw new Error(`not an IP address: ${address}`);
}

/** Parse a sockaddr filled in by the kernel (accept, getsockname, getpeername). */
export function fromSockaddr(sa: Buffer): SocketAddress {
  const address = addressText(sa);
  if (address === null) throw new Error(`unknown address family ${sa.readUInt16LE(0)}`);
  return { family: address.includes(':') ? 6 : 4, address, port: sa.readUInt16BE(2) };
}

/**
 * The IP address of a sockaddr as text ("192.0.2.7", "2001:db8::1"), or null
 * when it is not IP. A v4 client on a dual-stack listener shows up as
 * ::ffff:a.b.c.d, and is given as a.b.c.d.
 */
export function addressText(sa: Buffer): string | null {
  const family = sa.readUInt16LE(0);
  if (family === AF_INET) return dotted(sa, 4);
  if (family === AF_INET6) return isV4Mapped(sa, 8) ? dotted(sa, 20) : inet_ntop(AF_INET6, sa.subarray(8, 24), ntopText) ?? '?';
  return null;
}

const ntopText = Buffer.alloc(64);

/** a.b.c.d from the 4 bytes at `at`: made here, as every accepted IPv4 client needs it (no libc call, no sprintf). */
export function dotted(b: Buffer, at: number): string {
  return `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
}

/** The 16-byte IPv6 address at `at` is in ::ffff:0:0/96 (10 zero bytes, then 0xff 0xff): an IPv4 one, mapped. */
export function isV4Mapped(b: Buffer, at: number): boolean {
  for (let i = at; i < at + 10; i++) if (b[i] !== 0) return false;
  return b[at + 10] === 0xff && b[at + 11] === 0xff;
}

/** A copy of the sockaddr accept() filled in (the listener reads the next one into the same buffer). */
export function copySockaddr(peer: Buffer): Buffer {
  const sa = Buffer.allocUnsafe(SOCKADDR_IN6_SIZE);
  for (let i = 0; i < SOCKADDR_IN6_SIZE; i++) sa[i] = peer[i];
  return sa;
}

export function familyOf(sa: Buffer): number {
  return sa.readUInt16LE(0);
}

/** "127.0.0.1:8000" or "[::1]:8000" */
export function formatHostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

export function formatAddress(a: SocketAddress): string {
  return formatHostPort(a.address, a.port);
}

/** The sockaddr for raw address bytes (4: IPv4, 16: IPv6; network order) and a port, without a libc call. */
export function sockaddrFromBytes(bytes: Buffer, port: number): Buffer {
  const v4 = bytes.length === 4;
  const sa = Buffer.alloc(v4 ? SOCKADDR_IN_SIZE : SOCKADDR_IN6_SIZE);
  sa.writeUInt16LE(v4 ? AF_INET : AF_INET6, 0);
  sa.writeUInt16BE(port, 2);
  bytes.copy(sa, v4 ? 4 : 8);
  return sa;
}
