// What a proxy changes in a head it passes on (RFC 9110 §7.6): hop-by-hop
// fields belong to one connection, so Connection, the names it lists,
// Keep-Alive, Proxy-Connection, TE and Upgrade (unless this is an upgrade)
// are left out, and the proxy says for itself whether its own connection
// stays open. Requests also get X-Forwarded-For (appended to the incoming
// one only when the client is a trusted proxy, otherwise replacing it: a
// client must not be able to write an address of its choosing into the
// backend's logs) and, unless turned off, X-Forwarded-Proto and
// X-Forwarded-Host. Everything else is copied byte for byte, in order.
//
// The heads are written into one scratch buffer per worker thread (the
// connection copies what the kernel does not take at once): no allocation
// per request.
import type { RequestHead } from './request';
import type { ResponseHead } from './response';
import type { Head } from './head';

let scratch = Buffer.allocUnsafe(16 * 1024);

/** The buffer the last requestHead()/responseHead() wrote into (valid until the next call). */
export function headBuffer(): Buffer {
  return scratch;
}

/** Room for `n` bytes; what is written so far moves with the buffer (a head may grow it halfway). */
function ensure(n: number): void {
  if (scratch.length >= n) return;
  const bigger = Buffer.allocUnsafe(Math.max(n, scratch.length * 2));
  scratch.copy(bigger, 0, 0, scratch.length);
  scratch = bigger;
}

/** Small bodies ride with their head: one write() instead of two (and one packet). */
export const COALESCE_MAX = 16 * 1024;

/** Append bytes [s, e) of `data` after the head of length `at` in headBuffer(); returns the new length. */
export function appendToHead(data: Buffer, s: number, e: number, at: number): number {
  ensure(at + (e - s));
  return at + data.copy(scratch, at, s, e);
}

/** Fields that never cross a proxy (Upgrade is decided by the caller). */
function hopByHop(h: Head, k: number, hasConnection: boolean): boolean {
  return h.nameIs(k, 'connection') || h.nameIs(k, 'keep-alive') || h.nameIs(k, 'proxy-connection') || h.nameIs(k, 'te') || (hasConnection && h.listedInConnection(k));
}

function copyField(h: Head, k: number, at: number): number {
  const s = h.fieldStart(k);
  const e = h.fieldEnd(k);
  at += h.bytes.copy(scratch, at, s, e);
  scratch[at++] = 13;
  scratch[at++] = 10;
  return at;
}

function text(s: string, at: number): number {
  return at + scratch.write(s, at, 'latin1');
}

export interface ClientFacts {
  /** The client's IP address as text ("192.0.2.7", "2001:db8::1"). */
  ip: string;
  /** The client is one of trustedProxies: its X-Forwarded-* fields are kept. */
  trusted: boolean;
  /** Set X-Forwarded-Proto and X-Forwarded-Host. */
  xForwarded: boolean;
}

/** The request head for the backend, in headBuffer(); returns its length. */
export function requestHead(req: RequestHead, client: ClientFacts): number {
  const d = req.bytes;
  ensure(req.headLength + 256 + client.ip.length * 2 + 64);
  const lineEnd = req.firstLineEnd;
  let at = d.copy(scratch, 0, 0, lineEnd + 2);
  let forwardedFor = -1;
  let keepProto = false;
  let keepHost = false;
  // Names a Connection field lists are hop-by-hop too: looked for only when there is one.
  const hasConnection = req.indexOf('connection') >= 0;
  for (let k = 0; k < req.headerCount; k++) {
    if (req.nameIs(k, 'upgrade')) {
      if (!req.upgrade) continue;
    } else if (hopByHop(req, k, hasConnection)) {
      continue;
    }
    if (req.nameIs(k, 'x-forwarded-for')) {
      if (client.trusted && forwardedFor < 0) forwardedFor = k;
      continue;
    }
    if (client.xForwarded && req.nameIs(k, 'x-forwarded-proto')) {
      if (!client.trusted) continue;
      keepProto = true;
    } else if (client.xForwarded && req.nameIs(k, 'x-forwarded-host')) {
      if (!client.trusted) continue;
      keepHost = true;
    }
    ensure(at + (req.fieldEnd(k) - req.fieldStart(k)) + 512);
    at = copyField(req, k, at);
  }
  // One X-Forwarded-For line: the trusted proxies' list, then this client.
  ensure(at + 1024 + req.headLength);
  at = text('X-Forwarded-For: ', at);
  if (forwardedFor >= 0) {
    for (let k = forwardedFor; k >= 0; k = req.indexOf('x-forwarded-for', k + 1)) {
      at += d.copy(scratch, at, req.valueOffset(k), req.fieldEnd(k));
      at = text(', ', at);
    }
  }
  at = text(client.ip, at);
  at = text('\r\n', at);
  if (client.xForwarded) {
    if (!keepProto) at = text('X-Forwarded-Proto: http\r\n', at);
    const host = req.indexOf('host');
    if (!keepHost && host >= 0) {
      at = text('X-Forwarded-Host: ', at);
      at += d.copy(scratch, at, req.valueOffset(host), req.fieldEnd(host));
      at = text('\r\n', at);
    }
  }
  // HTTP/1.1 is persistent by default; a 1.0 request asks for it, so that the
  // backend connection can be kept whatever the client does.
  if (req.upgrade) at = text('Connection: upgrade\r\n', at);
  else if (req.version === 10) at = text('Connection: keep-alive\r\n', at);
  scratch[at++] = 13;
  scratch[at++] = 10;
  return at;
}

/**
 * The response head for the client, in headBuffer(); returns its length.
 * The status line says HTTP/1.1, rsp's own version (RFC 9110 §6.2).
 * `close`: the client connection ends after this response. `dechunk`: the
 * body goes out without its chunked framing (Transfer-Encoding left out). 
 */
export function responseHead(res: ResponseHead, close: boolean, clientVersion: number, dechunk = false): number {
  const d = res.bytes;
  ensure(res.headLength + 64);
  // " 200", then SP and the reason: the SP is required even when the reason is empty (RFC 9112 §4).
  const lineEnd = res.firstLineEnd;
  let at = text('HTTP/1.1', 0);
  at += d.copy(scratch, at, 8, 12);
  scratch[at++] = 0x20;
  if (lineEnd > 13) at += d.copy(scratch, at, 13, lineEnd);
  scratch[at++] = 13;
  scratch[at++] = 10;
  const hasConnection = res.indexOf('connection') >= 0;
  for (let k = 0; k < res.headerCount; k++) {
    if (hopByHop(res, k, hasConnection) || res.nameIs(k, 'upgrade')) continue;
    if (dechunk && res.nameIs(k, 'transfer-encoding')) continue;
    ensure(at + (res.fieldEnd(k) - res.fieldStart(k)) + 64);
    at = copyField(res, k, at);
  }
  if (close) at = text('Connection: close\r\n', at);
  else if (clientVersion === 10) at = text('Connection: keep-alive\r\n', at);
  scratch[at++] = 13;
  scratch[at++] = 10;
  return at;
}
