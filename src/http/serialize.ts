// Rebuilding a head from its parsed form: for tests (parse, serialise, parse
// again) and for forwarding a head with fields changed.
import type { RequestHead } from './request';
import type { ResponseHead } from './response';

/** A request head as text: request line, the fields in order ("Name: value"), the empty line. */
export function serializeRequest(r: RequestHead): string {
  let out = `${r.method} ${r.target} HTTP/1.${r.version - 10}\r\n`;
  for (let k = 0; k < r.headerCount; k++) out += `${r.headerName(k)}: ${r.headerValue(k)}\r\n`;
  return out + '\r\n';
}

/** A response head as text. */
export function serializeResponse(r: ResponseHead): string {
  let out = `HTTP/1.${r.version - 10} ${r.status} ${r.reason}\r\n`;
  for (let k = 0; k < r.headerCount; k++) out += `${r.headerName(k)}: ${r.headerValue(k)}\r\n`;
  return out + '\r\n';
}

/** The same text as bytes (latin1: obs-text bytes come back as they were). */
export function headBytes(text: string): Buffer {
  return Buffer.from(text, 'latin1');
}
