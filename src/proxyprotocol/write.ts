// The PROXY protocol header rsp sends a backend before the client's first
// byte (sendProxy = "v1" | "v2"), as HAProxy's send-proxy / send-proxy-v2 and
// nginx's `proxy_protocol on` do: the client's address and the address it
// connected to.
import type { SocketAddress } from '../../ffi/sockaddr';
import { toSockaddr } from '../../ffi/sockaddr';
import { V2_SIGNATURE } from './parse';

export type ProxyVersion = 'v1' | 'v2';

/** A v4 address as the v6 one that maps it (when the two ends are of different families, as HAProxy does). */
function asV6(a: SocketAddress): SocketAddress {
  return a.family === 6 ? a : { family: 6, address: `::ffff:${a.address}`, port: a.port };
}

/**
 * The header for a client `source` that connected to `destination`; null
 * for either (the origin is not known) gives v1 "UNKNOWN" / v2 AF_UNSPEC.
 */
export function proxyHeader(version: ProxyVersion, source: SocketAddress | null, destination: SocketAddress | null): Buffer {
  if (source !== null && destination !== null && source.family !== destination.family) {
    source = asV6(source);
    destination = asV6(destination);
  }
  return version === 'v1' ? v1(source, destination) : v2(source, destination);
}

function v1(source: SocketAddress | null, destination: SocketAddress | null): Buffer {
  if (source === null || destination === null) return Buffer.from('PROXY UNKNOWN\r\n', 'latin1');
  const protocol = source.family === 4 ? 'TCP4' : 'TCP6';
  return Buffer.from(`PROXY ${protocol} ${source.address} ${destination.address} ${source.port} ${destination.port}\r\n`, 'latin1');
}

function v2(source: SocketAddress | null, destination: SocketAddress | null): Buffer {
  const known = source !== null && destination !== null;
  const v4 = known && source.family === 4;
  const addressLength = !known ? 0 : v4 ? 12 : 36;
  const header = Buffer.alloc(16 + addressLength);
  V2_SIGNATURE.copy(header, 0);
  header[12] = 0x21; // version 2, PROXY
  header[13] = !known ? 0x00 : v4 ? 0x11 : 0x21; // AF_UNSPEC, or AF_INET / AF_INET6 over STREAM
  header.writeUInt16BE(addressLength, 14);
  if (!known) return header;
  // The address bytes straight out of the sockaddrs: sin_addr at 4, sin6_addr at 8.
  const s = toSockaddr(source.address, source.port);
  const d = toSockaddr(destination.address, destination.port);
  if (v4) {
    s.copy(header, 16, 4, 8);
    d.copy(header, 20, 4, 8);
    header.writeUInt16BE(source.port, 24);
    header.writeUInt16BE(destination.port, 26);
  } else {
    s.copy(header, 16, 8, 24);
    d.copy(header, 32, 8, 24);
    header.writeUInt16BE(source.port, 48);
    header.writeUInt16BE(destination.port, 50);
  }
  return header;
}
