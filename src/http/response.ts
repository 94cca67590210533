// The response head from a backend (RFC 9112 §4) and how its body is framed
// (§6.3). Anything wrong is one error, 502: the proxy answers 502 and never
// forwards the response nor reuses the connection.
import { BODY_CHUNKED, BODY_LENGTH, BODY_NONE, BODY_UNTIL_CLOSE, Head, HeadLimits } from './head';
import { SP, STATUS_LINE } from './chars';
import { httpVersion } from './request';

/** An incremental, strict parser of one response head at a time. */
export class ResponseHead extends Head {
  protected readonly skipsEmptyLines = false;
  protected readonly lineTooLong = 502;
  protected readonly fieldsTooLarge = 502;
  protected readonly lineClass = STATUS_LINE;

  /** The status code. */
  status = 0;
  /** A 1xx other than 101: pass it on, reset() and parse the next head (RFC 9110 §15.2). */
  interim = false;
  /** 101 Switching Protocols: after this head the connection is no longer HTTP. */
  upgrade = false;
  private requestIsHead = false;
  private reasonStart = 0;
  private reasonEnd = 0;

  constructor(limits: Partial<HeadLimits> = {}) {
    super(limits);
    this.reset();
  }

  /** Ready for the next head; `head`: it answers a HEAD request (so it has no body). */
  override reset(head = this.requestIsHead): void {
    super.reset();
    this.requestIsHead = head;
    this.status = 0;
    this.interim = this.upgrade = false;
    this.reasonStart = this.reasonEnd = 0;
  }

  protected override fail(_status: number, why: string): number {
    return super.fail(502, why);
  }

  /** status-line = HTTP-version SP status-code SP [ reason-phrase ]; a missing last SP is tolerated. */
  protected firstLine(d: Uint8Array, s: number, e: number): number {
    if (e - s < 12) return this.bad('invalid status line');
    const version = httpVersion(d, s, s + 8);
    if (version === 400 || version === 505) return this.bad('invalid HTTP version');
    if (d[s + 8] !== SP) return this.bad('invalid status line');
    let status = 0;
    for (let i = s + 9; i < s + 12; i++) {
      const c = d[i];
      if (c < 0x30 || c > 0x39) return this.bad('invalid status code');
      status = status * 10 + c - 0x30;
    }
    if (status < 100 || status > 599) return this.bad('invalid status code');
    if (e > s + 12 && d[s + 12] !== SP) return this.bad('invalid status line');
    this.version = version;
    this.status = status;
    this.reasonStart = Math.min(s + 13, e) - this.base;
    this.reasonEnd = e - this.base;
    return 0;
  }

  protected complete(): number {
    // A message with both is a smuggling attempt or a broken backend (RFC 9112 §6.3 item 3): refused.
    if (this.teFields > 0 && this.clFields > 0) return this.bad('both Content-Length and Transfer-Encoding');
    if (this.teFields > 0 && this.version === 10) return this.bad('Transfer-Encoding in HTTP/1.0');
    if (this.teFields > 0 && this.teCodings === 0) return this.bad('empty Transfer-Encoding');
    if (this.teChunked > 1) return this.bad('chunked applied more than once');
    if (this.teChunkedParams) return this.bad('parameters on chunked');
    const status = this.status;
    this.keepAlive = this.version === 11 ? !this.connClose : this.connKeepAlive && !this.connClose;
    if (status < 200) {
      this.interim = status !== 101;
      this.upgrade = status === 101;
      this.bodyKind = BODY_NONE;
      return 0;
    }
    if (this.requestIsHead || status === 204 || status === 304) {
      this.bodyKind = BODY_NONE;
    } else if (this.teFields > 0) {
      // Other codings before chunked are the backend's business: the bytes pass as they are.
      this.bodyKind = this.teLastChunked ? BODY_CHUNKED : BODY_UNTIL_CLOSE;
    } else if (this.clFields > 0) {
      this.bodyKind = this.contentLength > 0 ? BODY_LENGTH : BODY_NONE;
    } else {
      this.bodyKind = BODY_UNTIL_CLOSE;
    }
    if (this.bodyKind === BODY_UNTIL_CLOSE) this.keepAlive = false;
    return 0;
  }

  /** The reason phrase as sent ("" when none). */
  get reason(): string {
    return this.text(this.reasonStart, this.reasonEnd);
  }
}
