// What a request head and a response head share: an incremental scanner of
// the first line and the field lines (RFC 9112 §2.1, §5), limits, the fields
// stored as offsets, and the framing fields (Content-Length, Transfer-Encoding,
// Connection) read as they pass.
//
// Bytes are scanned where they are when a head starts: in the caller's read
// buffer. A head that completes in that read is then copied (only its own
// bytes) into the parser's buffer, so the offsets outlive the caller's buffer;
// a head that does not is copied as far as it goes and later reads are
// appended. The scanner is a byte state machine whose position survives
// between reads: no byte is looked at twice across reads.
import { COLON, CR, FIELD, HTAB, LF, LOWER, SP, TCHAR, copyBytes, equalsIgnoreCase } from './chars';
import { NameCache } from './names';

const NAMES = new NameCache(false);
const KEYS = new NameCache(true);

export interface HeadLimits {
  /** Bytes of the request line (status line), without its CRLF. Default 8192. */
  requestLine: number;
  /** Bytes of the field section: every field line with its CRLF, and the final CRLF. Default 32768. */
  headerBytes: number;
  /** Field lines. Default 100. */
  headers: number;
}

export const DEFAULT_LIMITS: Readonly<HeadLimits> = Object.freeze({ requestLine: 8192, headerBytes: 32768, headers: 100 });

/** feed(): the head is not complete; every byte given has been taken. */
export const NEED_MORE = 0;
/** feed(): the head is complete; `headEnd` is where the rest (the body) starts in the last buffer fed. */
export const DONE = 1;
// Any other result of feed() is the HTTP status to answer (400, 414, 431, 501, 505; 502 for responses).

/** No body follows the head. */
export const BODY_NONE = 0;
/** `contentLength` bytes follow. */
export const BODY_LENGTH = 1;
/** A chunked body follows (ChunkedBody finds its end). */
export const BODY_CHUNKED = 2;
/** (responses) The body runs until the backend closes the connection. */
export const BODY_UNTIL_CLOSE = 3;

const enum State { Leading, LeadingLF, FirstLine, FirstLineLF, NameStart, Name, ValueOws, Value, FieldLF, EndLF, Done, Failed }

// Field names the parser acts on or a proxy looks for, recognised by length
// and first byte before a full compare, and kept per field (Head.kindOf): the
// forwarding code then tells a hop-by-hop field from the rest with one load.
const F_HOST = 1;
const F_CONTENT_LENGTH = 2;
const F_TRANSFER_ENCODING = 3;
const F_CONNECTION = 4;
const F_EXPECT = 5;
const F_UPGRADE = 6;
/** Field kinds for forwarding (RFC 9110 §7.6.1: hop-by-hop fields; the X-Forwarded-* family). */
export const enum FieldKind {
  Other = 0,
  Host = F_HOST,
  ContentLength = F_CONTENT_LENGTH,
  TransferEncoding = F_TRANSFER_ENCODING,
  Connection = F_CONNECTION,
  Expect = F_EXPECT,
  Upgrade = F_UPGRADE,
  KeepAlive = 7,
  ProxyConnection = 8,
  TE = 9,
  Close = 10,
  XForwardedFor = 11,
  XForwardedProto = 12,
  XForwardedHost = 13,
  /** Content_Length and the like: see isShadow(). */
  Shadow = 14,
}

/**
 * Names a CGI-style backend reads as a framing or X-Forwarded-* field: it
 * turns '-' and '_' alike into '_' (HTTP_CONTENT_LENGTH), so a client's
 * Content_Length or X_Forwarded_For would stand for the real one there.
 */
const SHADOWED = ['content-length', 'transfer-encoding', 'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto'];

/** Name [s, e) is one of SHADOWED with '_' for at least one '-'. */
function isShadow(d: Uint8Array, s: number, e: number): boolean {
  for (const name of SHADOWED) {
    if (name.length !== e - s) continue;
    let underscore = false;
    let i = 0;
    for (; i < name.length; i++) {
      const c = d[s + i];
      const want = name.charCodeAt(i);
      if (c === UNDERSCORE && want === DASH) underscore = true;
      else if (LOWER[c] !== want) break;
    }
    if (i === name.length && underscore) return true;
  }
  return false;
}

const COMMA = 0x2c;
const DASH = 0x2d;
const UNDERSCORE = 0x5f;
const SEMI = 0x3b;
const EQUALS = 0x3d;
const DQUOTE = 0x22;
const BACKSLASH = 0x5c;

function isOws(c: number): boolean {
  return c === SP || c === HTAB;
}

/** Index after the quoted-string that starts at i (d[i] is '"'), or -1 (RFC 9110 §5.6.4). */
export function skipQuoted(d: Uint8Array, i: number, e: number): number {
  for (i++; i < e; i++) {
    const c = d[i];
    if (c === DQUOTE) return i + 1;
    if (c === BACKSLASH) {
      i++;
      if (i >= e || !FIELD[d[i]]) return -1;
    } else if (!FIELD[c]) return -1;
  }
  return -1;
}

export abstract class Head {
  readonly limits: HeadLimits;
  /** feed()'s last result: NEED_MORE, DONE or an error status. */
  result = NEED_MORE;
  /** Why feed() failed, in a few words (a constant string). */
  error = '';
  /** After DONE: index in the last buffer fed where the head's bytes end (the body starts). */
  headEnd = 0;
  /** After DONE: bytes of the head (after any skipped empty lines), CRLFCRLF included. */
  headLength = 0;
  /** 10 or 11. */
  version = 0;
  /** BODY_NONE, BODY_LENGTH, BODY_CHUNKED or BODY_UNTIL_CLOSE. */
  bodyKind = BODY_NONE;
  /** The Content-Length value, or -1. */
  contentLength = -1;
  /** One Content-Length line, its value without leading zeros: passed on as it is (else rewritten). */
  contentLengthPlain = true;
  /** The connection may carry another message after this one (version and Connection). */
  keepAlive = false;

  protected d: Uint8Array = Buffer.alloc(0);
  protected base = 0;
  protected len = 0;
  protected state = State.Leading;
  /** Positions below are relative to `base`. */
  protected pos = 0;
  protected lineStart = 0;
  protected lineEnd = 0;
  protected fieldsStart = 0;
  private nameEnd = 0;
  private valueStart = 0;
  private valueEnd = 0;
  private leading = 0;
  private buffered = false;
  private own: Buffer | null = null;
  private readonly maxHead: number;
  private headText: string | null = null;
  /** 4 per field line: name start, name end, value start, value end (OWS trimmed). Grows up to the limit. */
  protected fields: Int32Array;
  /** The FieldKind of each field line. */
  private kinds: Uint8Array;
  protected count = 0;

  protected hostCount = 0;
  protected hostField = -1;
  protected expectField = -1;
  protected upgradeField = -1;
  protected teCodings = 0;
  protected teChunked = 0;
  protected teLastChunked = false;
  protected teChunkedParams = false;
  protected teFields = 0;
  protected clFields = 0;
  protected connClose = false;
  protected connKeepAlive = false;
  protected connUpgrade = false;
  /** A Connection field lists an option other than close, keep-alive and upgrade. */
  protected connOthers = false;

  /** Empty lines before the first line are skipped (requests, RFC 9112 §2.2). */
  protected abstract readonly skipsEmptyLines: boolean;
  protected abstract readonly lineTooLong: number;
  protected abstract readonly fieldsTooLarge: number;
  /** Checks the first line [s, e) (absolute, CR excluded); returns 0 or an error status (after setting `error`). */
  protected abstract firstLine(d: Uint8Array, s: number, e: number): number;
  /** Called at the empty line; returns 0 or an error status (after setting `error`). */
  protected abstract complete(): number;

  constructor(limits: Partial<HeadLimits> = {}) {
    this.limits = { ...DEFAULT_LIMITS, ...limits };
    this.maxHead = this.limits.requestLine + this.limits.headerBytes + 3;
    this.fields = new Int32Array(Math.min(this.limits.headers, 16) * 4);
    this.kinds = new Uint8Array(this.fields.length / 4);
  }

  /** Ready for the next head; keeps the buffer. */
  reset(): void {
    this.result = NEED_MORE;
    this.error = '';
    this.headEnd = 0;
    this.headLength = 0;
    this.version = 0;
    this.bodyKind = BODY_NONE;
    this.contentLength = -1;
    this.contentLengthPlain = true;
    this.keepAlive = false;
    this.headText = null;
    this.state = this.skipsEmptyLines ? State.Leading : State.FirstLine;
    this.pos = this.lineStart = this.lineEnd = this.fieldsStart = 0;
    this.leading = 0;
    this.buffered = false;
    this.count = 0;
    this.hostCount = 0;
    this.hostField = this.expectField = this.upgradeField = -1;
    this.teCodings = this.teChunked = this.teFields = this.clFields = 0;
    this.teLastChunked = this.teChunkedParams = false;
    this.connClose = this.connKeepAlive = this.connUpgrade = this.connOthers = false;
  }

  /** Drops the buffer (an idle connection keeps no head bytes); the next head allocates again. */
  release(): void {
    this.reset();
    this.own = null;
    this.d = Buffer.alloc(0);
  }

  /** True while part of a head has been received but not all of it. */
  get inProgress(): boolean {
    return this.result === NEED_MORE && (this.buffered || this.state === State.LeadingLF || this.leading > 0);
  }

  /**
   * Takes bytes [start, end) of `buf`. Returns NEED_MORE, DONE (see `headEnd`), or
   * an error status (see `error`). After DONE or an error, reset() before the next head.
   */
  feed(buf: Buffer, start = 0, end = buf.length): number {
    if (this.result !== NEED_MORE) return this.result;
    let from = start;
    if (this.state <= State.LeadingLF) {
      from = this.skipLeading(buf, start, end);
      if (from < 0) return this.result;
      if (from === end) return NEED_MORE;
    }
    if (!this.buffered) {
      this.d = buf;
      this.base = from;
      this.len = end;
      const r = this.run();
      if (r === DONE) {
        this.headEnd = from + this.headLength;
        this.keep(this.headLength);
      } else if (r === NEED_MORE) {
        this.keep(end - from);
        this.buffered = true;
      }
      return r;
    }
    // Bounded: past maxHead the limits have failed the head already.
    const n = Math.min(end - from, this.maxHead - this.len);
    const at = this.len;
    this.ensure(at + n);
    buf.copy(this.own!, at, from, from + n);
    this.d = this.own!;
    this.len = at + n;
    const r = this.run();
    if (r === DONE) this.headEnd = from + (this.headLength - at);
    return r;
  }

  private ensure(size: number): void {
    if (this.own !== null && this.own.length >= size) return;
    let cap = this.own === null ? 1024 : this.own.length * 2;
    while (cap < size) cap *= 2;
    const next = Buffer.allocUnsafe(Math.min(Math.max(cap, size), Math.max(this.maxHead, size)));
    if (this.own !== null && this.buffered) this.own.copy(next, 0, 0, this.len);
    this.own = next;
  }

  /** Moves `n` bytes from `base` in the caller's buffer to the parser's own buffer (offsets are relative: unchanged). */
  private keep(n: number): void {
    const src = this.d;
    const base = this.base;
    this.ensure(n);
    const own = this.own!;
    copyBytes(src, base, base + n, own, 0);
    this.d = own;
    this.base = 0;
    this.len = n;
  }

  private skipLeading(buf: Buffer, start: number, end: number): number {
    let i = start;
    while (i < end) {
      const c = buf[i];
      if (this.state === State.LeadingLF) {
        if (c !== LF) return this.fail(400, 'bare CR');
        i++;
        this.state = State.Leading;
        this.leading += 2;
        if (this.leading > this.limits.requestLine) return this.fail(400, 'too many empty lines');
      } else if (c === CR) {
        this.state = State.LeadingLF;
        i++;
      } else if (c === LF) {
        return this.fail(400, 'bare LF');
      } else {
        this.state = State.FirstLine;
        break;
      }
    }
    return i;
  }

  protected fail(status: number, why: string): number {
    this.result = status;
    this.error = why;
    this.state = State.Failed;
    return -1;
  }

  private failed(status: number, why: string): number {
    this.fail(status, why);
    return this.result;
  }

  /** The first line [s, e) so far is over limits.requestLine. */
  protected longLine(_d: Uint8Array, _s: number, _e: number): number {
    return this.failed(this.lineTooLong, 'first line too long');
  }

  private run(): number {
    const d = this.d;
    const len = this.len;
    const base = this.base;
    let i = base + this.pos;
    let state = this.state;
    // Module tables in locals: an import is a property load on every use otherwise.
    const tchar = TCHAR;
    const field = FIELD;
    while (i < len) {
      switch (state) {
        case State.FirstLine: {
          const cls = this.lineClass;
          while (i < len && cls[d[i]] === 1) i++;
          if (i === len) break;
          if (d[i] !== CR) return this.failed(400, d[i] === LF ? 'bare LF' : 'invalid byte in the first line');
          if (i - base - this.lineStart > this.limits.requestLine) return this.longLine(d, base + this.lineStart, i);
          this.lineEnd = i - base;
          i++;
          state = State.FirstLineLF;
          break;
        }
        case State.FirstLineLF: {
          if (d[i] !== LF) return this.failed(400, 'bare CR');
          i++;
          const r = this.firstLine(d, base + this.lineStart, base + this.lineEnd);
          if (r !== 0) return this.failed(r, this.error);
          this.fieldsStart = i - base;
          state = State.NameStart;
          break;
        }
        case State.NameStart: {
          const c = d[i];
          if (c === CR) {
            i++;
            state = State.EndLF;
            break;
          }
          if (tchar[c] !== 1) return this.failed(400, isOws(c) ? 'obs-fold' : c === LF ? 'bare LF' : 'invalid field name');
          this.lineStart = i - base;
          i++;
          state = State.Name;
          break;
        }
        case State.Name:
          while (i < len && tchar[d[i]] === 1) i++;
          if (i === len) break;
          if (d[i] !== COLON) return this.failed(400, isOws(d[i]) ? 'whitespace before colon' : 'invalid field name');
          this.nameEnd = i - base;
          i++;
          state = State.ValueOws;
          break;
        case State.ValueOws:
          while (i < len && isOws(d[i])) i++;
          if (i === len) break;
          this.valueStart = i - base;
          state = State.Value;
          break;
        case State.Value: {
          while (i < len && field[d[i]] === 1) i++;
          if (i === len) break;
          if (d[i] !== CR) return this.failed(400, d[i] === LF ? 'bare LF' : 'invalid byte in field value');
          let e = i;
          const vs = base + this.valueStart;
          while (e > vs && isOws(d[e - 1])) e--;
          this.valueEnd = e - base;
          i++;
          state = State.FieldLF;
          break;
        }
        case State.FieldLF: {
          if (d[i] !== LF) return this.failed(400, 'bare CR');
          i++;
          if (i - base - this.fieldsStart > this.limits.headerBytes) return this.failed(this.fieldsTooLarge, 'header section too large');
          if (this.count === this.limits.headers) return this.failed(this.fieldsTooLarge, 'too many header fields');
          const k = this.count++ * 4;
          if (k === this.fields.length) this.growFields();
          const f = this.fields;
          f[k] = this.lineStart;
          f[k + 1] = this.nameEnd;
          f[k + 2] = this.valueStart;
          f[k + 3] = this.valueEnd;
          const r = this.field(d, base, k >> 2);
          if (r !== 0) return this.failed(r, this.error);
          state = State.NameStart;
          break;
        }
        case State.EndLF: {
          if (d[i] !== LF) return this.failed(400, 'bare CR');
          i++;
          if (i - base - this.fieldsStart > this.limits.headerBytes) return this.failed(this.fieldsTooLarge, 'header section too large');
          this.state = State.Done;
          this.pos = this.headLength = i - base;
          const r = this.complete();
          if (r !== 0) return this.failed(r, this.error);
          this.result = DONE;
          return DONE;
        }
        default:
          return this.failed(400, 'internal state');
      }
    }
    this.pos = i - base;
    this.state = state;
    if (state <= State.FirstLine) {
      if (len - base - this.lineStart > this.limits.requestLine) return this.longLine(d, base + this.lineStart, len);
    } else if (state >= State.NameStart && len - base - this.fieldsStart > this.limits.headerBytes) {
      return this.failed(this.fieldsTooLarge, 'header section too large');
    }
    return NEED_MORE;
  }

  /** More room for field offsets (a parser starts with room for 16 fields: its idle size stays small). */
  private growFields(): void {
    const next = new Int32Array(Math.min(this.fields.length * 2, this.limits.headers * 4));
    next.set(this.fields);
    this.fields = next;
    const kinds = new Uint8Array(next.length / 4);
    kinds.set(this.kinds);
    this.kinds = kinds;
  }

  /** Bytes allowed in the first line before its CR. */
  protected abstract readonly lineClass: Uint8Array;

  /** Acts on the framing fields as they are stored (field k; `d`/`base` are where the bytes are now). */
  private field(d: Uint8Array, base: number, k: number): number {
    const f = this.fields;
    const ns = base + f[k * 4];
    const ne = base + f[k * 4 + 1];
    const vs = base + f[k * 4 + 2];
    const ve = base + f[k * 4 + 3];
    let id = 0;
    const first = LOWER[d[ns]];
    switch (ne - ns) {
      case 2: if (first === 0x74 && equalsIgnoreCase(d, ns, ne, 'te')) id = FieldKind.TE; break;
      case 4: if (first === 0x68 && equalsIgnoreCase(d, ns, ne, 'host')) id = F_HOST; break;
      case 5: if (first === 0x63 && equalsIgnoreCase(d, ns, ne, 'close')) id = FieldKind.Close; break;
      case 6: if (first === 0x65 && equalsIgnoreCase(d, ns, ne, 'expect')) id = F_EXPECT; break;
      case 7: if (first === 0x75 && equalsIgnoreCase(d, ns, ne, 'upgrade')) id = F_UPGRADE; break;
      case 10:
        if (first === 0x63) { if (equalsIgnoreCase(d, ns, ne, 'connection')) id = F_CONNECTION; }
        else if (first === 0x6b && equalsIgnoreCase(d, ns, ne, 'keep-alive')) id = FieldKind.KeepAlive;
        break;
      case 14: if (first === 0x63 && equalsIgnoreCase(d, ns, ne, 'content-length')) id = F_CONTENT_LENGTH; break;
      case 15: if (first === 0x78 && equalsIgnoreCase(d, ns, ne, 'x-forwarded-for')) id = FieldKind.XForwardedFor; break;
      case 16:
        if (first === 0x70) { if (equalsIgnoreCase(d, ns, ne, 'proxy-connection')) id = FieldKind.ProxyConnection; }
        else if (first === 0x78 && equalsIgnoreCase(d, ns, ne, 'x-forwarded-host')) id = FieldKind.XForwardedHost;
        break;
      case 17:
        if (first === 0x74) { if (equalsIgnoreCase(d, ns, ne, 'transfer-encoding')) id = F_TRANSFER_ENCODING; }
        else if (first === 0x78 && equalsIgnoreCase(d, ns, ne, 'x-forwarded-proto')) id = FieldKind.XForwardedProto;
        break;
    }
    if (id === 0 && ne - ns >= 14 && ne - ns <= 17 && isShadow(d, ns, ne)) id = FieldKind.Shadow;
    this.kinds[k] = id;
    switch (id) {
      case 0:
      case FieldKind.Shadow:
      case FieldKind.TE:
      case FieldKind.Close:
      case FieldKind.KeepAlive:
      case FieldKind.ProxyConnection:
      case FieldKind.XForwardedFor:
      case FieldKind.XForwardedProto:
      case FieldKind.XForwardedHost:
        return 0;
      case F_HOST:
        if (this.hostCount++ === 0) this.hostField = k;
        return 0;
      case F_EXPECT:
        if (this.expectField < 0) this.expectField = k;
        return 0;
      case F_UPGRADE:
        if (this.upgradeField < 0) this.upgradeField = k;
        return 0;
      case F_CONNECTION:
        return this.connection(d, vs, ve);
      case F_CONTENT_LENGTH:
        return this.length(d, vs, ve);
      default:
        this.teFields++;
        return this.codings(d, vs, ve);
    }
  }

  /** Content-Length = 1*DIGIT (RFC 9110 §8.6); identical repeated lines are folded, different ones refused. */
  private length(d: Uint8Array, s: number, e: number): number {
    if (s === e) return this.bad('empty Content-Length');
    let n = 0;
    for (let i = s; i < e; i++) {
      const c = d[i];
      if (c < 0x30 || c > 0x39) return this.bad(c === COMMA ? 'Content-Length list' : 'invalid Content-Length');
      n = n * 10 + (c - 0x30);
      if (n > Number.MAX_SAFE_INTEGER) return this.bad('Content-Length too large');
    }
    if (this.clFields++ > 0 && n !== this.contentLength) return this.bad('conflicting Content-Length');
    this.contentLength = n;
    this.contentLengthPlain = this.clFields === 1 && (e - s === 1 || d[s] !== 0x30);
    return 0;
  }

  /** Connection = #connection-option (tokens, RFC 9110 §7.6.1). */
  private connection(d: Uint8Array, s: number, e: number): number {
    let i = s;
    for (;;) {
      while (i < e && (isOws(d[i]) || d[i] === COMMA)) i++;
      if (i === e) return 0;
      const ts = i;
      while (i < e && TCHAR[d[i]] === 1) i++;
      if (i === ts) return this.bad('invalid Connection');
      const n = i - ts;
      if (n === 5 && equalsIgnoreCase(d, ts, i, 'close')) this.connClose = true;
      else if (n === 10 && equalsIgnoreCase(d, ts, i, 'keep-alive')) this.connKeepAlive = true;
      else if (n === 7 && equalsIgnoreCase(d, ts, i, 'upgrade')) this.connUpgrade = true;
      else this.connOthers = true;
      while (i < e && isOws(d[i])) i++;
      if (i < e && d[i] !== COMMA) return this.bad('invalid Connection');
    }
  }

  /**
   * Transfer-Encoding = #transfer-coding; transfer-coding = token *( OWS ";" OWS
   * token BWS "=" BWS ( token / quoted-string ) ) (RFC 9112 §6.1, RFC 9110 §10.1.4).
   * Counts the codings; which ones are acceptable is decided at the end of the head.
   */
  private codings(d: Uint8Array, s: number, e: number): number {
    let i = s;
    for (;;) {
      while (i < e && (isOws(d[i]) || d[i] === COMMA)) i++;
      if (i === e) return 0;
      const ts = i;
      while (i < e && TCHAR[d[i]] === 1) i++;
      if (i === ts) return this.bad('invalid Transfer-Encoding');
      const chunked = equalsIgnoreCase(d, ts, i, 'chunked');
      this.teCodings++;
      if (chunked) this.teChunked++;
      this.teLastChunked = chunked;
      for (;;) {
        let j = i;
        while (j < e && isOws(d[j])) j++;
        if (j === e || d[j] !== SEMI) {
          i = j;
          break;
        }
        if (chunked) this.teChunkedParams = true;
        j++;
        while (j < e && isOws(d[j])) j++;
        const ps = j;
        while (j < e && TCHAR[d[j]] === 1) j++;
        if (j === ps) return this.bad('invalid transfer-coding parameter');
        while (j < e && isOws(d[j])) j++;
        if (j === e || d[j] !== EQUALS) return this.bad('invalid transfer-coding parameter');
        j++;
        while (j < e && isOws(d[j])) j++;
        if (j < e && d[j] === DQUOTE) {
          j = skipQuoted(d, j, e);
          if (j < 0) return this.bad('invalid transfer-coding parameter');
        } else {
          const vs = j;
          while (j < e && TCHAR[d[j]] === 1) j++;
          if (j === vs) return this.bad('invalid transfer-coding parameter');
        }
        i = j;
      }
      if (i < e && d[i] !== COMMA) return this.bad('invalid Transfer-Encoding');
    }
  }

  protected bad(why: string): number {
    this.error = why;
    return 400;
  }

  // ------------------------------------------------------------ reading the head

  /** The head's bytes (after DONE): the parser's buffer, valid until the next feed() after reset(). */
  get bytes(): Buffer {
    return this.d as Buffer;
  }

  /** The head as received (a view, not a copy). */
  raw(): Buffer {
    return (this.d as Buffer).subarray(0, this.headLength);
  }

  get headerCount(): number {
    return this.count;
  }

  /** Field k's name as received. */
  headerName(k: number): string {
    return NAMES.get(this.d as Buffer, this.fields[k * 4], this.fields[k * 4 + 1]);
  }

  /** Field k's name in lower case (what Lua's req.headers is keyed by). */
  headerKey(k: number): string {
    return KEYS.get(this.d as Buffer, this.fields[k * 4], this.fields[k * 4 + 1]);
  }

  /** Field k's value, OWS trimmed. */
  headerValue(k: number): string {
    return this.text(this.fields[k * 4 + 2], this.fields[k * 4 + 3]);
  }

  /** Where field k's line starts in `bytes` (its name). */
  fieldStart(k: number): number {
    return this.fields[k * 4];
  }

  /** Where field k's value ends in `bytes` (trailing whitespace left out). */
  fieldEnd(k: number): number {
    return this.fields[k * 4 + 3];
  }

  /**
   * Where field k's line ends in `bytes`, after its CRLF. Lines lie end to
   * end (no obs-fold, no bare LF is accepted), so this is where line k + 1
   * starts, or the final empty line after the last one.
   */
  lineEndOf(k: number): number {
    return k + 1 < this.count ? this.fields[(k + 1) * 4] : this.headLength - 2;
  }

  /** What field k is, for forwarding (FieldKind.Other for most). */
  kindOf(k: number): FieldKind {
    return this.kinds[k];
  }

  /** Index of the first field of `kind` from `from`; -1 when none. */
  firstOfKind(kind: FieldKind, from = 0): number {
    const kinds = this.kinds;
    for (let k = from; k < this.count; k++) if (kinds[k] === kind) return k;
    return -1;
  }

  /** Where field k's value starts in `bytes`. */
  valueOffset(k: number): number {
    return this.fields[k * 4 + 2];
  }

  /** Where the first line ends in `bytes` (at its CR). */
  get firstLineEnd(): number {
    const d = this.d;
    let i = 0;
    while (d[i] !== CR) i++;
    return i;
  }

  /**
   * A Connection field lists names besides close, keep-alive and upgrade:
   * fields of those names are hop-by-hop too (listedInConnection). The
   * three usual options are dealt with by name: Keep-Alive and Upgrade are
   * always hop-by-hop, and a field named Close only with `Connection: close`.
   */
  get connectionListsOthers(): boolean {
    return this.connOthers;
  }

  /** `Connection: close` (or a list with close in it). */
  get connectionClose(): boolean {
    return this.connClose;
  }

  /** A Connection field lists field k's name (RFC 9110 §7.6.1: then it is hop-by-hop too). Allocates nothing. */
  listedInConnection(k: number): boolean {
    const d = this.d;
    const f = this.fields;
    const ns = f[k * 4];
    const ne = f[k * 4 + 1];
    for (let c = this.indexOf('connection'); c >= 0; c = this.indexOf('connection', c + 1)) {
      let i = f[c * 4 + 2];
      const e = f[c * 4 + 3];
      while (i < e) {
        while (i < e && (d[i] === 0x2c || d[i] === SP || d[i] === HTAB)) i++;
        const ts = i;
        while (i < e && d[i] !== 0x2c && d[i] !== SP && d[i] !== HTAB) i++;
        if (i - ts === ne - ns) {
          let same = true;
          for (let j = 0; j < i - ts && same; j++) same = LOWER[d[ts + j]] === LOWER[d[ns + j]];
          if (same) return true;
        }
      }
    }
    return false;
  }

  /** Index of the first field named `lowerName` (lower-case), from `from`; -1 when none. */
  indexOf(lowerName: string, from = 0): number {
    const d = this.d;
    const f = this.fields;
    for (let k = from; k < this.count; k++) if (equalsIgnoreCase(d, f[k * 4], f[k * 4 + 1], lowerName)) return k;
    return -1;
  }

  /** The first value of the field named `name` (any case), or null. */
  header(name: string): string | null {
    const k = this.indexOf(name.toLowerCase());
    return k < 0 ? null : this.headerValue(k);
  }

  /** All values of the field named `name` (any case), in order. */
  headerValues(name: string): string[] {
    const lower = name.toLowerCase();
    const out: string[] = [];
    for (let k = this.indexOf(lower); k >= 0; k = this.indexOf(lower, k + 1)) out.push(this.headerValue(k));
    return out;
  }

  /** [name, value] pairs in order, names as received. */
  headers(): [string, string][] {
    const out: [string, string][] = [];
    for (let k = 0; k < this.count; k++) out.push([this.headerName(k), this.headerValue(k)]);
    return out;
  }

  /**
   * The text of bytes [s, e) of the head. The whole head becomes one string on
   * the first call (one trip into C++), and each part is a substring of it
   * (V8 shares the characters of a longer substring instead of copying them).
   */
  protected text(s: number, e: number): string {
    if (this.headText === null) this.headText = (this.d as LatinBuffer).latin1Slice(0, this.headLength);
    return this.headText.substring(s, e);
  }
}

interface LatinBuffer extends Buffer {
  latin1Slice(start: number, end: number): string;
}
