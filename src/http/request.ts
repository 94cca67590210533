// The request head (RFC 9112 §3): request line, target forms, Host, and the
// request's framing rules (§6.1, §6.3). See head.ts for how bytes are scanned.
import { BODY_CHUNKED, BODY_LENGTH, BODY_NONE, Head, HeadLimits } from './head';
import { REQUEST_LINE, SP, TARGET, TCHAR, equalsIgnoreCase } from './chars';
import { validAuthority } from './host';
import { NameCache } from './names';

/** Hosts, lower-cased, by their bytes. */
const HOSTS = new NameCache(true, 64);

export type { HeadLimits } from './head';

/** request-target forms (RFC 9112 §3.2). */
export const ORIGIN_FORM = 1;
export const ABSOLUTE_FORM = 2;
export const AUTHORITY_FORM = 3;
export const ASTERISK_FORM = 4;

const SLASH = 0x2f;
const QUESTION = 0x3f;
const STAR = 0x2a;

/** Checks "HTTP/" DIGIT "." DIGIT at [i, e): the version (10, 11), 505 for another version, 400 for no version. */
export function httpVersion(d: Uint8Array, i: number, e: number): number {
  if (e - i !== 8 || d[i] !== 0x48 || d[i + 1] !== 0x54 || d[i + 2] !== 0x54 || d[i + 3] !== 0x50 || d[i + 4] !== SLASH || d[i + 6] !== 0x2e) return 400;
  const major = d[i + 5] - 0x30;
  const minor = d[i + 7] - 0x30;
  if (major < 0 || major > 9 || minor < 0 || minor > 9) return 400;
  if (major !== 1 || minor > 1) return 505;
  return 10 + minor;
}

function bytesAre(d: Uint8Array, s: number, e: number, word: string): boolean {
  if (e - s !== word.length) return false;
  for (let i = 0; i < word.length; i++) if (d[s + i] !== word.charCodeAt(i)) return false;
  return true;
}

/** An incremental, strict parser of one request head at a time. */
export class RequestHead extends Head {
  protected readonly skipsEmptyLines = true;
  protected readonly lineTooLong = 414;
  protected readonly fieldsTooLarge = 431;
  protected readonly lineClass = REQUEST_LINE;

  /** ORIGIN_FORM, ABSOLUTE_FORM, AUTHORITY_FORM or ASTERISK_FORM. */
  form = 0;
  /** Expect: 100-continue on an HTTP/1.1 request (RFC 9110 §10.1.1). */
  expectContinue = false;
  /** Connection: upgrade with an Upgrade field on an HTTP/1.1 request (RFC 9110 §7.8). */
  upgrade = false;
  /** The method is HEAD (its response has no body). */
  isHead = false;
  /** The method is CONNECT. */
  isConnect = false;

  // Offsets relative to the head's start.
  private methodEnd = 0;
  private targetStart = 0;
  private targetEnd = 0;
  private pathEnd = 0;
  private pathStart = 0;
  private hostStart = -1;
  private hostEnd = -1;
  // Strings made on first use, per request.
  private methodText: string | null = null;
  private targetText: string | null = null;
  private pathText: string | null = null;
  private queryText: string | null | undefined = undefined;
  private hostText: string | null = null;

  constructor(limits: Partial<HeadLimits> = {}) {
    super(limits);
    this.reset();
  }

  override reset(): void {
    super.reset();
    this.form = 0;
    this.expectContinue = this.upgrade = this.isHead = this.isConnect = false;
    this.hostStart = this.hostEnd = -1;
    this.methodText = this.targetText = this.pathText = this.hostText = null;
    this.queryText = undefined;
  }

  /**
   * A method that is itself over limits.requestLine: no request line at all
   * (400), not a target too long to parse (414, RFC 9112 §3).
   */
  protected override longLine(d: Uint8Array, s: number, e: number): number {
    const end = Math.min(e, s + this.limits.requestLine);
    for (let i = s; i < end; i++) if (d[i] === SP) return super.longLine(d, s, e);
    this.fail(400, 'method too long');
    return 400;
  }

  protected firstLine(d: Uint8Array, s: number, e: number): number {
    const base = this.base;
    let i = s;
    while (i < e && TCHAR[d[i]] === 1) i++;
    if (i === s || i === e || d[i] !== SP) return this.bad('invalid method');
    const methodEnd = i;
    i++;
    const ts = i;
    while (i < e && TARGET[d[i]] === 1) i++;
    if (i === ts || i === e || d[i] !== SP) return this.bad('invalid request-target');
    const te = i;
    const version = httpVersion(d, i + 1, e);
    if (version === 400) return this.bad('invalid HTTP version');
    if (version === 505) {
      this.error = 'HTTP version not supported';
      return 505;
    }
    this.version = version;
    this.methodEnd = methodEnd - base;
    this.targetStart = ts - base;
    this.targetEnd = te - base;
    // Methods are case-sensitive (RFC 9110 §9.1): only "CONNECT" and "OPTIONS" take their special forms.
    this.isHead = bytesAre(d, s, methodEnd, 'HEAD');
    this.isConnect = bytesAre(d, s, methodEnd, 'CONNECT');
    const isOptions = bytesAre(d, s, methodEnd, 'OPTIONS');

    if (this.isConnect) {
      // authority-form, and only for CONNECT (§3.2.3).
      const he = validAuthority(d, ts, te, false, true);
      if (he < 0) return this.bad('CONNECT needs host:port');
      this.form = AUTHORITY_FORM;
      this.hostStart = ts - base;
      this.hostEnd = he - base;
      this.pathStart = this.pathEnd = te - base;
      return 0;
    }
    const c = d[ts];
    if (c === SLASH) {
      this.form = ORIGIN_FORM;
      this.pathStart = ts - base;
    } else if (c === STAR && te - ts === 1) {
      if (!isOptions) return this.bad('asterisk-form is for OPTIONS only');
      this.form = ASTERISK_FORM;
      this.pathStart = ts - base;
      this.pathEnd = te - base;
      return 0;
    } else {
      // absolute-form (§3.2.2): an http or https URI with a host, no userinfo (RFC 9110 §4.2).
      let a: number;
      if (te - ts > 7 && equalsIgnoreCase(d, ts, ts + 7, 'http://')) a = ts + 7;
      else if (te - ts > 8 && equalsIgnoreCase(d, ts, ts + 8, 'https://')) a = ts + 8;
      else return this.bad('invalid request-target');
      let ae = a;
      while (ae < te && d[ae] !== SLASH && d[ae] !== QUESTION) ae++;
      const he = validAuthority(d, a, ae, false, false);
      if (he < 0) return this.bad('invalid authority in request-target');
      this.form = ABSOLUTE_FORM;
      this.hostStart = a - base;
      this.hostEnd = he - base;
      this.pathStart = ae - base;
    }
    let q = this.pathStart + base;
    while (q < te && d[q] !== QUESTION) q++;
    this.pathEnd = q - base;
    return 0;
  }

  protected complete(): number {
    const d = this.d;
    const base = this.base;
    const f = this.fields;
    // Host (RFC 9112 §3.2): exactly one on HTTP/1.1, at most one on 1.0, and valid.
    if (this.hostCount > 1) return this.bad('more than one Host');
    if (this.hostCount === 0) {
      if (this.version === 11) return this.bad('no Host');
    } else {
      const k = this.hostField * 4;
      const vs = base + f[k + 2];
      const ve = base + f[k + 3];
      // Empty, it leaves an http target URI without a host (RFC 9112 §3.3,
      // RFC 9110 §4.2.1): refused as nginx does, unless the target names one.
      const targetHost = this.form === ABSOLUTE_FORM || this.form === AUTHORITY_FORM;
      const he = validAuthority(d, vs, ve, targetHost, false);
      if (he < 0) return this.bad(vs === ve ? 'empty Host' : 'invalid Host');
      if (!targetHost) {
        this.hostStart = vs - base;
        this.hostEnd = he - base;
      }
    }
    // Framing (RFC 9112 §6.1, §6.3).
    if (this.teFields > 0) {
      if (this.version === 10) return this.bad('Transfer-Encoding in HTTP/1.0');
      if (this.clFields > 0) return this.bad('both Content-Length and Transfer-Encoding');
      if (this.teCodings === 0) return this.bad('empty Transfer-Encoding');
      if (!this.teLastChunked) return this.bad('Transfer-Encoding does not end in chunked');
      if (this.teChunked > 1) return this.bad('chunked applied more than once');
      if (this.teChunkedParams) return this.bad('parameters on chunked');
      if (this.teCodings > 1) {
        this.error = 'transfer coding not implemented';
        return 501;
      }
      this.bodyKind = BODY_CHUNKED;
    } else if (this.clFields > 0) {
      this.bodyKind = this.contentLength > 0 ? BODY_LENGTH : BODY_NONE;
    } else {
      this.bodyKind = BODY_NONE;
    }
    this.keepAlive = this.version === 11 ? !this.connClose : this.connKeepAlive && !this.connClose;
    if (this.version === 11) {
      if (this.expectField >= 0) {
        const k = this.expectField * 4;
        this.expectContinue = equalsIgnoreCase(d, base + f[k + 2], base + f[k + 3], '100-continue');
      }
      this.upgrade = this.connUpgrade && this.upgradeField >= 0;
    }
    return 0;
  }

  /** HEAD, as far as the bytes show: also for a head refused before its request line was complete (its answer has no body). */
  get mayBeHead(): boolean {
    if (this.isHead) return true;
    const d = this.d;
    const b = this.base;
    return this.len - b >= 5 && d[b] === 0x48 && d[b + 1] === 0x45 && d[b + 2] === 0x41 && d[b + 3] === 0x44 && d[b + 4] === 0x20;
  }

  /** The method, as sent (methods are case-sensitive). */
  get method(): string {
    return (this.methodText ??= this.text(0, this.methodEnd));
  }

  /** True when the method is `name` exactly; allocates nothing. */
  isMethod(name: string): boolean {
    if (this.methodEnd !== name.length) return false;
    const d = this.d;
    for (let i = 0; i < name.length; i++) if (d[i] !== name.charCodeAt(i)) return false;
    return true;
  }

  /** The request-target as sent. */
  get target(): string {
    return (this.targetText ??= this.text(this.targetStart, this.targetEnd));
  }

  /** The path part of the target ("/" for an absolute-form target with an empty path; "*" for asterisk-form; "" for CONNECT). */
  get path(): string {
    return (this.pathText ??= this.form === ABSOLUTE_FORM && this.pathEnd === this.pathStart ? '/' : this.text(this.pathStart, this.pathEnd));
  }

  /** The query after '?', without it; null when the target has none. */
  get query(): string | null {
    if (this.queryText === undefined) this.queryText = this.pathEnd < this.targetEnd && this.form !== AUTHORITY_FORM ? this.text(this.pathEnd + 1, this.targetEnd) : null;
    return this.queryText;
  }

  /**
   * The host the request is for, lower-case, without the port: from the target
   * in absolute- and authority-form (RFC 9112 §3.2.2), else from Host. "" when
   * there is none (an HTTP/1.0 request without Host).
   */
  get host(): string {
    return (this.hostText ??= this.hostStart < 0 ? '' : HOSTS.get(this.d as Buffer, this.hostStart, this.hostEnd));
  }

  /** absolute-form: where its authority (host and port) is in `bytes`; -1 otherwise. */
  get authorityStart(): number {
    return this.form === ABSOLUTE_FORM ? this.hostStart : -1;
  }
  get authorityEnd(): number {
    return this.form === ABSOLUTE_FORM ? this.pathStart : -1;
  }

  /** Offsets of the target in `bytes`. */
  get targetOffsets(): [number, number] {
    return [this.targetStart, this.targetEnd];
  }
}
