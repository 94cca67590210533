// Authority syntax: uri-host [":" port] (RFC 9110 §7.2 Host, RFC 3986 §3.2.2),
// checked on bytes without making strings.
import { COLON, HEX, REG_NAME } from './chars';

const DOT = 0x2e;
const PERCENT = 0x25;
const OPEN = 0x5b;
const CLOSE = 0x5d;

/** dec-octet "." dec-octet "." dec-octet "." dec-octet, no leading zeros. */
function validIPv4(d: Uint8Array, s: number, e: number): boolean {
  let parts = 0;
  let i = s;
  while (parts < 4) {
    const start = i;
    let value = 0;
    while (i < e && i - start < 3 && d[i] >= 0x30 && d[i] <= 0x39) value = value * 10 + d[i++] - 0x30;
    const n = i - start;
    if (n === 0 || value > 255 || (n > 1 && d[start] === 0x30)) return false;
    parts++;
    if (parts < 4) {
      if (i >= e || d[i] !== DOT) return false;
      i++;
    }
  }
  return i === e;
}

/** IPv6address (RFC 3986 §3.2.2): eight h16 groups, one "::" standing for one or more, an IPv4 tail. */
function validIPv6(d: Uint8Array, s: number, e: number): boolean {
  let groups = 0;
  let compressed = false;
  let i = s;
  if (e - s < 2) return false;
  if (d[i] === COLON) {
    if (d[i + 1] !== COLON) return false;
    compressed = true;
    i += 2;
    if (i === e) return true;
  }
  while (i < e) {
    let j = i;
    while (j < e && j - i < 5 && HEX[d[j]] >= 0) j++;
    if (j < e && d[j] === DOT) {
      if (!validIPv4(d, i, e)) return false;
      groups += 2;
      break;
    }
    const n = j - i;
    if (n === 0 || n > 4) return false;
    groups++;
    i = j;
    if (i === e) break;
    if (d[i] !== COLON) return false;
    i++;
    if (i < e && d[i] === COLON) {
      if (compressed) return false;
      compressed = true;
      i++;
    } else if (i === e) return false;
  }
  return compressed ? groups <= 7 : groups === 8;
}

/** IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" ). */
function validIPvFuture(d: Uint8Array, s: number, e: number): boolean {
  if (d[s] !== 0x76 && d[s] !== 0x56) return false;
  let i = s + 1;
  while (i < e && HEX[d[i]] >= 0) i++;
  if (i === s + 1 || i >= e || d[i] !== DOT) return false;
  i++;
  if (i === e) return false;
  for (; i < e; i++) if (!REG_NAME[d[i]] && d[i] !== COLON) return false;
  return true;
}

/** reg-name = *( unreserved / pct-encoded / sub-delims ). */
function validRegName(d: Uint8Array, s: number, e: number): boolean {
  for (let i = s; i < e; i++) {
    const c = d[i];
    if (REG_NAME[c]) continue;
    if (c !== PERCENT || i + 2 >= e) return false;
    if (HEX[d[i + 1]] < 0 || HEX[d[i + 2]] < 0) return false;
    i += 2;
  }
  return true;
}

/**
 * Checks uri-host [":" port] in bytes [s, e). Returns the index where the host
 * ends (the ':' or e), or -1 when invalid. An empty host is refused unless
 * `allowEmpty` (a Host header may be empty, RFC 9110 §7.2; an http URI's may not,
 * §4.2.1); `requirePort` for CONNECT's authority-form (RFC 9110 §9.3.6). A port
 * is digits up to 65535. Userinfo ("@") is refused: it is not a uri-host byte.
 */
export function validAuthority(d: Uint8Array, s: number, e: number, allowEmpty: boolean, requirePort: boolean): number {
  let hostEnd: number;
  if (s < e && d[s] === OPEN) {
    let close = s + 1;
    while (close < e && d[close] !== CLOSE) close++;
    if (close >= e) return -1;
    if (!validIPv6(d, s + 1, close) && !validIPvFuture(d, s + 1, close)) return -1;
    hostEnd = close + 1;
    if (hostEnd < e && d[hostEnd] !== COLON) return -1;
  } else {
    hostEnd = s;
    while (hostEnd < e && d[hostEnd] !== COLON) hostEnd++;
    if (!validRegName(d, s, hostEnd)) return -1;
    if (hostEnd === s && (!allowEmpty || hostEnd < e)) return -1;
  }
  if (hostEnd === e) return requirePort ? -1 : hostEnd;
  let port = 0;
  const digits = e - hostEnd - 1;
  if (digits > 5 || (digits === 0 && requirePort)) return -1;
  for (let i = hostEnd + 1; i < e; i++) {
    const c = d[i];
    if (c < 0x30 || c > 0x39) return -1;
    port = port * 10 + c - 0x30;
  }
  return port > 65535 ? -1 : hostEnd;
}
