// Byte classes of the HTTP/1.1 grammar (RFC 9110 §5.6, RFC 9112, RFC 3986),
// as 256-entry tables: one indexed load per byte on the hot path.

function table(accept: (c: number) => boolean): Uint8Array {
  const t = new Uint8Array(256);
  for (let c = 0; c < 256; c++) t[c] = accept(c) ? 1 : 0;
  return t;
}

const isAlpha = (c: number) => (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
const isDigit = (c: number) => c >= 0x30 && c <= 0x39;
const isVchar = (c: number) => c >= 0x21 && c <= 0x7e;

export const CR = 13;
export const LF = 10;
export const SP = 32;
export const HTAB = 9;
export const COLON = 58;

/** tchar (RFC 9110 §5.6.2): what a method, a field name, a coding name is made of. */
export const TCHAR = table((c) => isAlpha(c) || isDigit(c) || "!#$%&'*+-.^_`|~".includes(String.fromCharCode(c)));

/** field-vchar / SP / HTAB (RFC 9110 §5.5): a field value's bytes. obs-text (0x80-0xFF) is allowed; CTLs are not. */
export const FIELD = table((c) => isVchar(c) || c >= 0x80 || c === SP || c === HTAB);

/** A request line's bytes before its CR: VCHAR and SP only (no HTAB, no raw UTF-8, no control). */
export const REQUEST_LINE = table((c) => isVchar(c) || c === SP);

/** A status line's bytes before its CR: the reason phrase may hold HTAB and obs-text (RFC 9112 §4). */
export const STATUS_LINE = FIELD;

/** request-target bytes: visible ASCII, no '#' (a fragment is never part of a request-target, RFC 9112 §3.2). */
export const TARGET = table((c) => isVchar(c) && c !== 0x23);

/** unreserved / sub-delims (RFC 3986 §2): a reg-name's bytes besides pct-encoded. */
export const REG_NAME = table((c) => isAlpha(c) || isDigit(c) || "-._~!$&'()*+,;=".includes(String.fromCharCode(c)));

/** Hex digit value, or -1. */
export const HEX = new Int8Array(256).fill(-1);
for (let c = 0; c < 256; c++) {
  if (isDigit(c)) HEX[c] = c - 0x30;
  else if (c >= 0x41 && c <= 0x46) HEX[c] = c - 0x41 + 10;
  else if (c >= 0x61 && c <= 0x66) HEX[c] = c - 0x61 + 10;
}

/** ASCII lower-case of a byte (other bytes unchanged). */
export const LOWER = new Uint8Array(256);
for (let c = 0; c < 256; c++) LOWER[c] = c >= 0x41 && c <= 0x5a ? c + 32 : c;

/** True when bytes [s, e) equal `lower` (ASCII lower-case), ignoring case. */
export function equalsIgnoreCase(d: Uint8Array, s: number, e: number, lower: string): boolean {
  if (e - s !== lower.length) return false;
  for (let i = 0; i < lower.length; i++) if (LOWER[d[s + i]] !== lower.charCodeAt(i)) return false;
  return true;
}

/**
 * Copies bytes [s, e) of `src` into `dst` at `at`; returns where the copy
 * ends in `dst`. Short runs go byte by byte: Buffer#copy from an offset
 * makes a view object on each call (Node 20), which costs more than a loop
 * over a few dozen bytes and gives the young generation work.
 */
export function copyBytes(src: Uint8Array, s: number, e: number, dst: Uint8Array, at: number): number {
  if (e - s <= 48) {
    for (let i = s; i < e; i++) dst[at++] = src[i];
    return at;
  }
  return at + (src as Buffer).copy(dst, at, s, e);
}
