// What a proxy changes in a head it passes on (RFC 9110 §7.6): hop-by-hop
// fields belong to one connection, so Connection, the names it lists,
// Keep-Alive, Proxy-Connection, TE and Upgrade (unless this is an upgrade)
// are left out, and the proxy says for itself whether its own connection
// stays open. Requests also get X-Forwarded-For (appended to the incoming
// one only when the client is a trusted proxy, otherwise replacing it: a
// client must not be able to write an address of its choosing into the
// backend's logs) and, unless turned off, X-Forwarded-Proto and
// X-Forwarded-Host. Three more things a request's head does not keep, for
// the backend's sake: a Content-Length with leading zeros or on two lines
// goes on as one plain number (a backend that read 0200 as octal would take
// the rest of the body for the next request on a shared connection); names
// like Content_Length or X_Forwarded_For are left out (a CGI-style backend
// reads them as the real ones); and an absolute-form target's authority is
// the Host the backend gets (RFC 9112 §3.2.2: Host must equal it; the client's
// Host may name another site, which rsp did not route to). Everything else is
// copied byte for byte, in order.
//
// The heads are written into one scratch buffer per worker thread (the
// connection copies what the kernel does not take at once): no allocation
// per request. Field lines that pass go over as they came, a run of
// neighbouring lines in one copy.
import { copyBytes } from './chars';
import type { RequestHead } from './request';
import type { ResponseHead } from './response';
import { FieldKind, type Head } from './head';

let scratch = Buffer.allocUnsafe(16 * 1024);

/** The buffer the last requestHead()/responseHead() wrote into (valid until the next call). */
export function headBuffer(): Buffer {
  return scratch;
}

/** Room for `n` bytes; what is written so far moves with the buffer. */
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
  return copyBytes(data, s, e, scratch, at);
}

/**
 * Fields that never cross a proxy (Upgrade is decided by the caller): those
 * RFC 9110 §7.6.1 names, known by their kind from the parse, and any the
 * Connection field lists (close and keep-alive by kind; other names by a
 * look through the Connection field, only when it lists one).
 */
function hopByHop(h: Head, k: number, kind: FieldKind): boolean {
  switch (kind) {
    case FieldKind.Connection:
    case FieldKind.KeepAlive:
    case FieldKind.ProxyConnection:
    case FieldKind.TE:
      return true;
    case FieldKind.Close:
      return h.connectionClose;
    default:
      return h.connectionListsOthers && h.listedInConnection(k);
  }
}

/**
 * Field lines kept, in order: consecutive ones are gathered into one run of
 * the head's bytes and copied when a line is left out, or at the end.
 */
class Runs {
  private start = 0;
  private end = 0;

  /** Line k passes. */
  keep(h: Head, k: number, at: number): number {
    const s = h.fieldStart(k);
    if (s !== this.end) {
      at = this.flush(h, at);
      this.start = s;
    }
    this.end = h.lineEndOf(k);
    return at;
  }

  /** Copies the run gathered so far to `at`; returns where it ends. */
  flush(h: Head, at: number): number {
    at = copyBytes(h.bytes, this.start, this.end, scratch, at);
    this.start = this.end = 0;
    return at;
  }
}
const runs = new Runs();

const bytes = (s: string): Buffer => Buffer.from(s, 'latin1');
const CRLF = bytes('\r\n');
const HTTP11 = bytes('HTTP/1.1');
const XFF = bytes('X-Forwarded-For: ');
const COMMA = bytes(', ');
const XF_PROTO = bytes('X-Forwarded-Proto: http\r\n');
const XF_HOST = bytes('X-Forwarded-Host: ');
const HOST = bytes('Host: ');
const CONTENT_LENGTH = bytes('Content-Length: ');
const CONNECTION_UPGRADE = bytes('Connection: upgrade\r\n');
const CONNECTION_KEEP_ALIVE = bytes('Connection: keep-alive\r\n');
const CONNECTION_CLOSE = bytes('Connection: close\r\n');

function put(b: Uint8Array, at: number): number {
  return copyBytes(b, 0, b.length, scratch, at);
}

/** An address's ASCII characters, one by one: shorter than a trip into C++ to encode them. */
function putAscii(s: string, at: number): number {
  for (let i = 0; i < s.length; i++) scratch[at++] = s.charCodeAt(i);
  return at;
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
  // At most: the head, the X-Forwarded-For values and Host once more, and rsp's own lines.
  ensure(3 * req.headLength + 256 + client.ip.length);
  let at = copyBytes(d, 0, req.firstLineEnd + 2, scratch, 0);
  let forwardedFor = -1;
  let keepProto = false;
  let keepHost = false;
  // The Host: the target's authority in absolute-form, else the field.
  let hostStart = req.authorityStart;
  let hostEnd = req.authorityEnd;
  for (let k = 0; k < req.headerCount; k++) {
    const kind = req.kindOf(k);
    let pass: boolean;
    if (kind === FieldKind.Upgrade) {
      pass = req.upgrade;
    } else if (kind === FieldKind.Host && hostStart >= 0) {
      pass = false; // rewritten from the target, below
    } else if (kind === FieldKind.ContentLength && !req.contentLengthPlain) {
      pass = false;
      if (k === req.firstOfKind(FieldKind.ContentLength)) {
        at = runs.flush(req, at);
        at = put(CONTENT_LENGTH, at);
        at = putAscii(String(req.contentLength), at);
        at = put(CRLF, at);
      }
    } else if (kind === FieldKind.Shadow) {
      pass = false;
    } else if (hopByHop(req, k, kind)) {
      pass = false;
    } else if (kind === FieldKind.XForwardedFor) {
      if (client.trusted && forwardedFor < 0) forwardedFor = k;
      pass = false; // rewritten below, as one line
    } else if (client.xForwarded && kind === FieldKind.XForwardedProto) {
      pass = keepProto = client.trusted;
    } else if (client.xForwarded && kind === FieldKind.XForwardedHost) {
      pass = keepHost = client.trusted;
    } else {
      pass = true;
    }
    if (pass) at = runs.keep(req, k, at);
  }
  at = runs.flush(req, at);
  // One X-Forwarded-For line: the trusted proxies' list, then this client.
  at = put(XFF, at);
  if (forwardedFor >= 0) {
    for (let k = forwardedFor; k >= 0; k = req.firstOfKind(FieldKind.XForwardedFor, k + 1)) {
      at = copyBytes(d, req.valueOffset(k), req.fieldEnd(k), scratch, at);
      at = put(COMMA, at);
    }
  }
  at = putAscii(client.ip, at);
  at = put(CRLF, at);
  if (hostStart >= 0) {
    at = put(HOST, at);
    at = copyBytes(d, hostStart, hostEnd, scratch, at);
    at = put(CRLF, at);
  } else {
    const host = req.firstOfKind(FieldKind.Host);
    if (host >= 0) {
      hostStart = req.valueOffset(host);
      hostEnd = req.fieldEnd(host);
    }
  }
  if (client.xForwarded) {
    if (!keepProto) at = put(XF_PROTO, at);
    if (!keepHost && hostStart >= 0) {
      at = put(XF_HOST, at);
      at = copyBytes(d, hostStart, hostEnd, scratch, at);
      at = put(CRLF, at);
    }
  }
  // HTTP/1.1 is persistent by default; a 1.0 request asks for it, so that the
  // backend connection can be kept whatever the client does.
  if (req.upgrade) at = put(CONNECTION_UPGRADE, at);
  else if (req.version === 10) at = put(CONNECTION_KEEP_ALIVE, at);
  return put(CRLF, at);
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
  let at = put(HTTP11, 0);
  at = copyBytes(d, 8, 12, scratch, at);
  scratch[at++] = 0x20;
  if (lineEnd > 13) at = copyBytes(d, 13, lineEnd, scratch, at);
  at = put(CRLF, at);
  for (let k = 0; k < res.headerCount; k++) {
    const kind = res.kindOf(k);
    if (kind === FieldKind.Upgrade || hopByHop(res, k, kind)) continue;
    if (dechunk && kind === FieldKind.TransferEncoding) continue;
    at = runs.keep(res, k, at);
  }
  at = runs.flush(res, at);
  if (close) at = put(CONNECTION_CLOSE, at);
  else if (clientVersion === 10) at = put(CONNECTION_KEEP_ALIVE, at);
  return put(CRLF, at);
}
