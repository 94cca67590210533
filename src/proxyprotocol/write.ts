// The PROXY protocol header rsp sends a backend before the client's first
// byte (sendProxy = "v1" | "v2"), as HAProxy's send-proxy / send-proxy-v2 and
// nginx's `proxy_protocol on` do: the client's address and the address it
// connected to, taken from their sockaddrs without a libc call.
import { AF_INET, AF_INET6 } from '../../ffi/libc';
import { V2_SIGNATURE, formatV6 } from './parse';

export type ProxyVersion = 'v1' | 'v2';

/** The address bytes (4 or 16) and port of a sockaddr; a v4-mapped v6 address as its v4 bytes. */
function endpoint(sa: Buffer): { bytes: Buffer; port: number } | null {
  const family = sa.readUInt16LE(0);
  const port = sa.readUInt16BE(2);
  if (family === AF_INET) return { bytes: sa.subarray(4, 8), port };
  if (family !== AF_INET6) return null;
  const bytes = sa.subarray(8, 24);
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return { bytes, port };
  return bytes[10] === 0xff && bytes[11] === 0xff ? { bytes: bytes.subarray(12), port } : { bytes, port };
}

/** ::ffff:a.b.c.d for a v4 address, when the other end is v6 (as HAProxy does). */
function mapped(bytes: Buffer): Buffer {
  if (bytes.length === 16) return bytes;
  const v6 = Buffer.alloc(16);
  v6[10] = 0xff;
  v6[11] = 0xff;
  bytes.copy(v6, 12);
  return v6;
}

function text(bytes: Buffer): string {
  return bytes.length === 4 ? `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}` : formatV6(bytes);
}

/**
 * The header for a client at sockaddr `source` that connected to sockaddr
 * `destination`; null for either (or a family that is not IP) gives v1
 * "UNKNOWN" / v2 PROXY with AF_UNSPEC.
 */
export function proxyHeader(version: ProxyVersion, source: Buffer | null, destination: Buffer | null): Buffer {
  let s = source === null ? null : endpoint(source);
  let d = destination === null ? null : endpoint(destination);
  if (s === null || d === null) {
    s = null;
    d = null;
  } else if (s.bytes.length !== d.bytes.length) {
    s = { bytes: mapped(s.bytes), port: s.port };
    d = { bytes: mapped(d.bytes), port: d.port };
  }
  if (version === 'v1') {
    if (s === null || d === null) return Buffer.from('PROXY UNKNOWN\r\n', 'latin1');
    const protocol = s.bytes.length === 4 ? 'TCP4' : 'TCP6';
    return Buffer.from(`PROXY ${protocol} ${text(s.bytes)} ${text(d.bytes)} ${s.port} ${d.port}\r\n`, 'latin1');
  }
  const n = s === null ? 0 : s.bytes.length;
  const blockLength = n === 0 ? 0 : 2 * n + 4; // two addresses, two ports: 12 or 36 bytes
  const header = Buffer.alloc(16 + blockLength);
  V2_SIGNATURE.copy(header, 0);
  header[12] = 0x21; // version 2, PROXY
  header[13] = n === 0 ? 0x00 : n === 4 ? 0x11 : 0x21; // AF_UNSPEC, or AF_INET / AF_INET6 over STREAM
  header.writeUInt16BE(blockLength, 14);
  if (s === null || d === null) return header;
  s.bytes.copy(header, 16);
  d.bytes.copy(header, 16 + n);
  header.writeUInt16BE(s.port, 16 + 2 * n);
  header.writeUInt16BE(d.port, 18 + 2 * n);
  return header;
}
