// A chunked body (RFC 9112 §7.1), validated as it streams past: the proxy
// forwards the bytes as they are, this only finds where the message ends and
// refuses what the grammar does not allow. No byte is copied; chunk data is
// skipped in one step however it is split.
//
//   chunked-body = *chunk last-chunk trailer-section CRLF
//   chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
//   chunk-size   = 1*HEXDIG
//   chunk-ext    = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
//   chunk-ext-val = token / quoted-string
//   last-chunk   = 1*("0") [ chunk-ext ] CRLF
//   trailer-section = *( field-line CRLF )
//
// A request's trailers may not name Content-Length, Transfer-Encoding or Host
// (`framingTrailers` false): no sender may put them there (RFC 9110 §6.5.1),
// and a backend that merged them into the header section would frame or
// route the request anew. A response's pass.
import { COLON, CR, FIELD, HEX, HTAB, LF, SP, TCHAR, equalsIgnoreCase } from './chars';

export const CHUNKED_NEED_MORE = -1;
export const CHUNKED_ERROR = -2;

const enum S {
  SizeStart, Size, ExtBws, ExtNameBws, ExtName, ExtAfterName, ExtValueBws, ExtToken, ExtQuoted, ExtQuotedEscape, ExtAfterQuoted,
  SizeLF, Data, DataCR, DataLF, TrailerStart, TrailerName, TrailerValue, TrailerLF, FinalLF, Done, Failed,
}

/** Trailer names refused in a request (lower-case). */
const FRAMING = ['content-length', 'transfer-encoding', 'host'];
const NAME_MAX = 17;

export interface ChunkedLimits {
  /** Bytes of one chunk-size line with its extensions. Default 4096. */
  sizeLine: number;
  /** Bytes of the trailer section. Default 32768. */
  trailerBytes: number;
}

export class ChunkedBody {
  readonly limits: ChunkedLimits;
  /** Bytes of chunk data so far (what a body limit counts). */
  bodyBytes = 0;
  /** Why feed() returned CHUNKED_ERROR. */
  error = '';
  /** When set, gets each run of chunk data as it passes (to de-chunk a body for an HTTP/1.0 client). */
  onData: ((d: Uint8Array, start: number, end: number) => void) | null = null;
  private state = S.SizeStart;
  private remaining = 0;
  private lineBytes = 0;
  private trailerBytes = 0;
  /** The current trailer name's bytes, while it is short enough to be one of FRAMING. */
  private readonly name = new Uint8Array(NAME_MAX);
  private nameLength = 0;

  constructor(
    limits: Partial<ChunkedLimits> = {},
    /** Trailers may name framing fields (responses); false for requests. */
    private readonly framingTrailers = true,
  ) {
    this.limits = { sizeLine: 4096, trailerBytes: 32768, ...limits };
  }

  reset(): void {
    this.state = S.SizeStart;
    this.bodyBytes = this.remaining = this.lineBytes = this.trailerBytes = 0;
    this.error = '';
  }

  get done(): boolean {
    return this.state === S.Done;
  }

  /**
   * Looks at bytes [start, end). Returns the index just after the body's last
   * byte when it ends in them (the next message starts there), CHUNKED_NEED_MORE
   * when all of them belong to the body and it goes on, or CHUNKED_ERROR.
   */
  feed(d: Uint8Array, start = 0, end = d.length): number {
    let state = this.state;
    if (state === S.Failed) return CHUNKED_ERROR;
    if (state === S.Done) return start;
    // Module tables in locals: an import is a property load on every use otherwise.
    const hex = HEX;
    const tchar = TCHAR;
    const field = FIELD;
    let i = start;
    while (i < end) {
      if (state === S.Data) {
        const n = Math.min(this.remaining, end - i);
        if (this.onData !== null && n > 0) this.onData(d, i, i + n);
        i += n;
        this.remaining -= n;
        this.bodyBytes += n;
        if (this.remaining === 0) state = S.DataCR;
        continue;
      }
      const c = d[i++];
      if (state >= S.SizeStart && state <= S.SizeLF && ++this.lineBytes > this.limits.sizeLine) return this.fail('chunk-size line too long');
      if (state >= S.TrailerStart && state <= S.FinalLF && ++this.trailerBytes > this.limits.trailerBytes) return this.fail('trailer section too large');
      switch (state) {
        case S.SizeStart: {
          const h = hex[c];
          if (h < 0) return this.fail('invalid chunk size');
          this.remaining = h;
          state = S.Size;
          break;
        }
        case S.Size: {
          const h = hex[c];
          if (h >= 0) {
            this.remaining = this.remaining * 16 + h;
            if (this.remaining > Number.MAX_SAFE_INTEGER) return this.fail('chunk size too large');
          } else if (c === CR) state = S.SizeLF;
          else if (c === 0x3b) state = S.ExtNameBws;
          else if (c === SP || c === HTAB) state = S.ExtBws;
          else return this.fail('invalid chunk size');
          break;
        }
        case S.ExtBws: // BWS before ";"
          if (c === 0x3b) state = S.ExtNameBws;
          else if (c !== SP && c !== HTAB) return this.fail('invalid chunk extension');
          break;
        case S.ExtNameBws:
          if (tchar[c] === 1) state = S.ExtName;
          else if (c !== SP && c !== HTAB) return this.fail('invalid chunk extension');
          break;
        case S.ExtName:
          if (tchar[c] === 1) break;
          if (c === CR) state = S.SizeLF;
          else if (c === 0x3b) state = S.ExtNameBws;
          else if (c === 0x3d) state = S.ExtValueBws;
          else if (c === SP || c === HTAB) state = S.ExtAfterName;
          else return this.fail('invalid chunk extension');
          break;
        case S.ExtAfterName: // BWS, then "=" or the next ";"
          if (c === 0x3d) state = S.ExtValueBws;
          else if (c === 0x3b) state = S.ExtNameBws;
          else if (c !== SP && c !== HTAB) return this.fail('invalid chunk extension');
          break;
        case S.ExtValueBws:
          if (c === 0x22) state = S.ExtQuoted;
          else if (tchar[c] === 1) state = S.ExtToken;
          else if (c !== SP && c !== HTAB) return this.fail('invalid chunk extension');
          break;
        case S.ExtToken:
          if (tchar[c] === 1) break;
          if (c === CR) state = S.SizeLF;
          else if (c === 0x3b) state = S.ExtNameBws;
          else if (c === SP || c === HTAB) state = S.ExtBws;
          else return this.fail('invalid chunk extension');
          break;
        case S.ExtQuoted: // qdtext: HTAB, SP, %x21, %x23-5B, %x5D-7E, obs-text
          if (c === 0x22) state = S.ExtAfterQuoted;
          else if (c === 0x5c) state = S.ExtQuotedEscape;
          else if (field[c] !== 1) return this.fail('invalid chunk extension');
          break;
        case S.ExtQuotedEscape:
          if (field[c] !== 1) return this.fail('invalid chunk extension');
          state = S.ExtQuoted;
          break;
        case S.ExtAfterQuoted:
          if (c === CR) state = S.SizeLF;
          else if (c === 0x3b) state = S.ExtNameBws;
          else if (c === SP || c === HTAB) state = S.ExtBws;
          else return this.fail('invalid chunk extension');
          break;
        case S.SizeLF:
          if (c !== LF) return this.fail('bare CR');
          this.lineBytes = 0;
          state = this.remaining === 0 ? S.TrailerStart : S.Data;
          break;
        case S.DataCR:
          if (c !== CR) return this.fail('chunk data longer than its size');
          state = S.DataLF;
          break;
        case S.DataLF:
          if (c !== LF) return this.fail('bare CR');
          state = S.SizeStart;
          break;
        case S.TrailerStart:
          if (c === CR) state = S.FinalLF;
          else if (tchar[c] === 1) {
            state = S.TrailerName;
            this.name[0] = c;
            this.nameLength = 1;
          } else return this.fail(c === SP || c === HTAB ? 'obs-fold in trailer' : 'invalid trailer field');
          break;
        case S.TrailerName:
          if (c === COLON) {
            state = S.TrailerValue;
            if (!this.framingTrailers && this.namesFraming()) return this.fail('a framing field in the trailers');
          } else if (tchar[c] !== 1) return this.fail('invalid trailer field');
          else if (this.nameLength < NAME_MAX) this.name[this.nameLength++] = c;
          else this.nameLength = NAME_MAX + 1;
          break;
        case S.TrailerValue:
          if (c === CR) state = S.TrailerLF;
          else if (field[c] !== 1) return this.fail('invalid trailer field');
          break;
        case S.TrailerLF:
          if (c !== LF) return this.fail('bare CR');
          state = S.TrailerStart;
          break;
        case S.FinalLF:
          if (c !== LF) return this.fail('bare CR');
          this.state = S.Done;
          return i;
        default:
          return this.fail('internal state');
      }
    }
    this.state = state;
    return CHUNKED_NEED_MORE;
  }

  private namesFraming(): boolean {
    return FRAMING.some((f) => equalsIgnoreCase(this.name, 0, this.nameLength, f));
  }

  private fail(why: string): number {
    this.state = S.Failed;
    this.error = why;
    return CHUNKED_ERROR;
  }
}
