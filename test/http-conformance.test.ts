// RFC 9112 request parsing and framing through the real CLI, as a table:
// each row is the exact bytes of one request on a fresh connection, and
// either the status rsp must answer itself (then nothing of it may reach the
// backend, a body found bad in the same read included), or
// "forwarded" (then the backend got exactly one request, framed as said).
// Rows that fail because of a known rsp bug are run as test.failing, one per
// row, so that a fix flips exactly the rows it fixes.
import test, { type ExecutionContext } from 'ava';
import { waitUntil, type Mode, MODES } from './helpers';
import { field, keepAnswering, okResponse, RawClient, sharedRsp, type Message } from './httpclient';
import { connectFd, readFd, writeFd } from './sockets';

interface Row {
  name: string;
  /** The request; `{T}` is replaced by a target unique to the row (/c<row>). */
  bytes: string;
  /** The status rsp answers itself, or 'forwarded'. */
  want: number | 'forwarded';
  /** Forwarded: the framing and body the backend must see (default: no body). */
  framing?: 'none' | 'length' | 'chunked';
  body?: string;
  /** Forwarded: the request line the backend must see (default: as sent). */
  line?: string;
  /** A known rsp bug makes this row fail: run as test.failing. */
  bug?: string;
}

const H = 'Host: example.com\r\n';
const CHUNKED_POST = `POST {T} HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n`;

const ROWS: Row[] = [
  // --- accepted and forwarded
  { name: 'plain GET', bytes: `GET {T} HTTP/1.1\r\n${H}\r\n`, want: 'forwarded' },
  { name: 'one empty line before the request line', bytes: `\r\nGET {T} HTTP/1.1\r\n${H}\r\n`, want: 'forwarded' },
  { name: 'two empty lines before the request line', bytes: `\r\n\r\nGET {T} HTTP/1.1\r\n${H}\r\n`, want: 'forwarded' },
  { name: 'Content-Length body', bytes: `POST {T} HTTP/1.1\r\n${H}Content-Length: 5\r\n\r\nhello`, want: 'forwarded', framing: 'length', body: 'hello' },
  { name: 'Content-Length: 0', bytes: `POST {T} HTTP/1.1\r\n${H}Content-Length: 0\r\n\r\n`, want: 'forwarded', framing: 'length', body: '' },
  { name: 'identical Content-Length lines', bytes: `POST {T} HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello`, want: 'forwarded', framing: 'length', body: 'hello' },
  { name: 'Content-Length with leading zeros', bytes: `POST {T} HTTP/1.1\r\n${H}Content-Length: 005\r\n\r\nhello`, want: 'forwarded', framing: 'length', body: 'hello' },
  { name: 'chunked', bytes: `${CHUNKED_POST}5\r\nhello\r\n0\r\n\r\n`, want: 'forwarded', framing: 'chunked', body: 'hello' },
  { name: 'Transfer-Encoding: CHUNKED (case-insensitive)', bytes: `POST {T} HTTP/1.1\r\n${H}Transfer-Encoding: CHUNKED\r\n\r\n5\r\nhello\r\n0\r\n\r\n`, want: 'forwarded', framing: 'chunked', body: 'hello' },
  { name: 'Transfer-Encoding with empty list elements', bytes: `POST {T} HTTP/1.1\r\n${H}Transfer-Encoding: , chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`, want: 'forwarded', framing: 'chunked', body: 'hello' },
  { name: 'chunk extensions (token and quoted)', bytes: `${CHUNKED_POST}5;a=b;c="d e"\r\nhello\r\n3 ; x = y\r\nabc\r\n0;z\r\n\r\n`, want: 'forwarded', framing: 'chunked', body: 'helloabc' },
  { name: 'upper-case hex chunk size', bytes: `${CHUNKED_POST}A\r\n0123456789\r\n0\r\n\r\n`, want: 'forwarded', framing: 'chunked', body: '0123456789' },
  { name: 'chunk size with leading zeros', bytes: `${CHUNKED_POST}0005\r\nhello\r\n000\r\n\r\n`, want: 'forwarded', framing: 'chunked', body: 'hello' },
  { name: 'chunked with trailers', bytes: `${CHUNKED_POST}5\r\nhello\r\n0\r\nX-Sum: 1\r\nX-Other: 2\r\n\r\n`, want: 'forwarded', framing: 'chunked', body: 'hello' },
  { name: 'OPTIONS *', bytes: `OPTIONS * HTTP/1.1\r\n${H}\r\n`, want: 'forwarded' },
  { name: 'absolute-form', bytes: 'GET http://example.com/abs{T}?q=1 HTTP/1.1\r\nHost: other.example\r\n\r\n', want: 'forwarded' },
  { name: 'absolute-form https with port', bytes: 'GET https://example.com:8443{T} HTTP/1.1\r\nHost: example.com:8443\r\n\r\n', want: 'forwarded' },
  { name: 'extension method', bytes: `PURGE {T} HTTP/1.1\r\n${H}\r\n`, want: 'forwarded' },
  { name: 'lower-case method is another method (a token)', bytes: `get {T} HTTP/1.1\r\n${H}\r\n`, want: 'forwarded' },
  { name: 'every tchar in a field name', bytes: `GET {T} HTTP/1.1\r\n${H}!#$%&'*+-.^_\`|~09azAZ: v\r\n\r\n`, want: 'forwarded' },
  { name: 'obs-text (0x80-0xFF) in a field value', bytes: `GET {T} HTTP/1.1\r\n${H}X-Latin: caf\xe9 \xff\r\n\r\n`, want: 'forwarded' },
  { name: 'HTAB and SP inside a value, OWS around it', bytes: `GET {T} HTTP/1.1\r\n${H}X-A:\t a \t b\t \r\n\r\n`, want: 'forwarded' },
  { name: 'empty field value', bytes: `GET {T} HTTP/1.1\r\n${H}X-Empty:\r\n\r\n`, want: 'forwarded' },
  { name: 'percent-encoding and sub-delims in the target', bytes: `GET {T}/a%20b/c;p=1?x=%2F&y=!$'()*+,;=:@/? HTTP/1.1\r\n${H}\r\n`, want: 'forwarded' },
  { name: 'HTTP/1.0 without Host', bytes: 'GET {T} HTTP/1.0\r\n\r\n', want: 'forwarded' },
  { name: 'empty Host in absolute-form (the target names the host)', bytes: 'GET http://example.com{T} HTTP/1.1\r\nHost:\r\n\r\n', want: 'forwarded' },
  { name: 'IPv6 literal Host with port', bytes: 'GET {T} HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n', want: 'forwarded' },
  { name: 'GET with a Content-Length body', bytes: `GET {T} HTTP/1.1\r\n${H}Content-Length: 3\r\n\r\nabc`, want: 'forwarded', framing: 'length', body: 'abc' },
  { name: 'OWS (HTAB) around Content-Length', bytes: `POST {T} HTTP/1.1\r\n${H}Content-Length:\t5\t\r\n\r\nhello`, want: 'forwarded', framing: 'length', body: 'hello' },
  { name: 'absolute-form with an IPv6 host', bytes: 'GET http://[::1]:8080{T} HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n', want: 'forwarded' },
  { name: 'a chunk split over many lines of data', bytes: `${CHUNKED_POST}1\r\na\r\n1\r\nb\r\n2\r\ncd\r\n0\r\n\r\n`, want: 'forwarded', framing: 'chunked', body: 'abcd' },
  { name: 'IPv4 Host', bytes: 'GET {T} HTTP/1.1\r\nHost: 192.0.2.1\r\n\r\n', want: 'forwarded' },

  // --- refused: the request line
  { name: 'bare LF line ends', bytes: 'GET {T} HTTP/1.1\nHost: example.com\n\n', want: 400 },
  { name: 'bare LF after the request line only', bytes: `GET {T} HTTP/1.1\n${H}\r\n`, want: 400 },
  { name: 'bare LF before the request line', bytes: `\nGET {T} HTTP/1.1\r\n${H}\r\n`, want: 400 },
  { name: 'bare CR in the request line', bytes: `GET {T}\rx HTTP/1.1\r\n${H}\r\n`, want: 400 },
  { name: 'two spaces in the request line', bytes: `GET  {T} HTTP/1.1\r\n${H}\r\n`, want: 400 },
  { name: 'HTAB as separator', bytes: `GET\t{T}\tHTTP/1.1\r\n${H}\r\n`, want: 400 },
  { name: 'space after the version', bytes: `GET {T} HTTP/1.1 \r\n${H}\r\n`, want: 400 },
  { name: 'lower-case version', bytes: `GET {T} http/1.1\r\n${H}\r\n`, want: 400 },
  { name: 'version without dot', bytes: `GET {T} HTTP/11\r\n${H}\r\n`, want: 400 },
  { name: 'version with two digits', bytes: `GET {T} HTTP/1.10\r\n${H}\r\n`, want: 400 },
  { name: 'HTTP/0.9', bytes: `GET {T} HTTP/0.9\r\n${H}\r\n`, want: 505 },
  { name: 'HTTP/2.0', bytes: `GET {T} HTTP/2.0\r\n${H}\r\n`, want: 505 },
  { name: 'HTTP/1.2', bytes: `GET {T} HTTP/1.2\r\n${H}\r\n`, want: 505 },
  { name: 'no version (HTTP/0.9 style)', bytes: 'GET {T}\r\n\r\n', want: 400 },
  { name: 'a non-token method', bytes: `GE(T {T} HTTP/1.1\r\n${H}\r\n`, want: 400 },
  { name: 'raw UTF-8 in the path', bytes: `GET {T}/caf\xc3\xa9 HTTP/1.1\r\n${H}\r\n`, want: 400 },
  { name: 'a high byte in the query', bytes: `GET {T}?q=\xff HTTP/1.1\r\n${H}\r\n`, want: 400 },
  { name: 'NUL in the target', bytes: `GET {T}\x00 HTTP/1.1\r\n${H}\r\n`, want: 400 },
  { name: 'a control byte in the target', bytes: `GET {T}\x01 HTTP/1.1\r\n${H}\r\n`, want: 400 },
  { name: 'DEL in the target', bytes: `GET {T}\x7f HTTP/1.1\r\n${H}\r\n`, want: 400 },
  { name: 'a fragment in the target', bytes: `GET {T}#frag HTTP/1.1\r\n${H}\r\n`, want: 400 },
  { name: 'a target that is not a path', bytes: `GET example{T} HTTP/1.1\r\n${H}\r\n`, want: 400 },
  { name: 'asterisk-form with GET', bytes: `GET * HTTP/1.1\r\n${H}\r\n`, want: 400 },
  { name: 'absolute-form with userinfo', bytes: 'GET http://user@example.com{T} HTTP/1.1\r\nHost: example.com\r\n\r\n', want: 400 },
  { name: 'absolute-form without host', bytes: 'GET http:///x HTTP/1.1\r\nHost: example.com\r\n\r\n', want: 400 },
  { name: 'CONNECT authority-form (not proxied)', bytes: 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n', want: 405 },
  { name: 'CONNECT with a path', bytes: `CONNECT {T} HTTP/1.1\r\n${H}\r\n`, want: 400 },
  { name: 'CONNECT without a port', bytes: 'CONNECT example.com HTTP/1.1\r\nHost: example.com\r\n\r\n', want: 400 },
  { name: 'request line over limits.requestLine', bytes: `GET {T}/${'a'.repeat(9000)} HTTP/1.1\r\n${H}\r\n`, want: 414 },
  { name: 'a method over limits.requestLine: no request line at all', bytes: `${'A'.repeat(9000)} {T} HTTP/1.1\r\n${H}\r\n`, want: 400 },
  { name: 'empty Host (an http target URI without a host, RFC 9110 §4.2.1)', bytes: 'GET {T} HTTP/1.1\r\nHost:\r\n\r\n', want: 400 },
  { name: 'empty Host with OWS', bytes: 'GET {T} HTTP/1.1\r\nHost:  \r\n\r\n', want: 400 },
  { name: 'empty Host on HTTP/1.0', bytes: 'GET {T} HTTP/1.0\r\nHost:\r\n\r\n', want: 400 },

  // --- refused: fields
  { name: 'whitespace before the colon', bytes: 'GET {T} HTTP/1.1\r\nHost : example.com\r\n\r\n', want: 400 },
  { name: 'HTAB before the colon', bytes: `GET {T} HTTP/1.1\r\n${H}X-A\t: 1\r\n\r\n`, want: 400 },
  { name: 'obs-fold', bytes: `GET {T} HTTP/1.1\r\n${H}X-A: a\r\n  folded\r\n\r\n`, want: 400 },
  { name: 'obs-fold with HTAB', bytes: `GET {T} HTTP/1.1\r\n${H}X-A: a\r\n\tfolded\r\n\r\n`, want: 400 },
  { name: 'a field line starting with SP before the first field', bytes: `GET {T} HTTP/1.1\r\n ${H}\r\n`, want: 400 },
  { name: 'bare LF ending a field line', bytes: `GET {T} HTTP/1.1\r\n${H}X-A: 1\n\r\n`, want: 400 },
  { name: 'bare CR in a value', bytes: `GET {T} HTTP/1.1\r\n${H}X-A: a\rb\r\n\r\n`, want: 400 },
  { name: 'NUL in a value', bytes: `GET {T} HTTP/1.1\r\n${H}X-A: a\x00b\r\n\r\n`, want: 400 },
  { name: 'a control byte in a value', bytes: `GET {T} HTTP/1.1\r\n${H}X-A: a\x01b\r\n\r\n`, want: 400 },
  { name: 'DEL in a value', bytes: `GET {T} HTTP/1.1\r\n${H}X-A: a\x7fb\r\n\r\n`, want: 400 },
  { name: 'ESC in a value', bytes: `GET {T} HTTP/1.1\r\n${H}X-A: a\x1bb\r\n\r\n`, want: 400 },
  { name: 'a non-token field name (@)', bytes: `GET {T} HTTP/1.1\r\n${H}Fo@: x\r\n\r\n`, want: 400 },
  { name: 'a field name with a space', bytes: `GET {T} HTTP/1.1\r\n${H}Fo o: x\r\n\r\n`, want: 400 },
  { name: 'a field name with a high byte', bytes: `GET {T} HTTP/1.1\r\n${H}F\xe9: x\r\n\r\n`, want: 400 },
  { name: 'an empty field name', bytes: `GET {T} HTTP/1.1\r\n${H}: x\r\n\r\n`, want: 400 },
  { name: 'a field line without a colon', bytes: `GET {T} HTTP/1.1\r\n${H}NoColon\r\n\r\n`, want: 400 },
  { name: 'HTTP/1.1 without Host', bytes: 'GET {T} HTTP/1.1\r\n\r\n', want: 400 },
  { name: 'two Host fields', bytes: `GET {T} HTTP/1.1\r\n${H}${H}\r\n`, want: 400 },
  { name: 'Host with a space', bytes: 'GET {T} HTTP/1.1\r\nHost: exa mple.com\r\n\r\n', want: 400 },
  { name: 'Host with userinfo', bytes: 'GET {T} HTTP/1.1\r\nHost: user@example.com\r\n\r\n', want: 400 },
  { name: 'Host with a path', bytes: 'GET {T} HTTP/1.1\r\nHost: example.com/x\r\n\r\n', want: 400 },
  { name: 'Host as a list', bytes: 'GET {T} HTTP/1.1\r\nHost: a.example, b.example\r\n\r\n', want: 400 },
  { name: 'Host with a port over 65535', bytes: 'GET {T} HTTP/1.1\r\nHost: example.com:99999\r\n\r\n', want: 400 },
  { name: 'Host with a non-numeric port', bytes: 'GET {T} HTTP/1.1\r\nHost: example.com:http\r\n\r\n', want: 400 },
  { name: 'Host with an unclosed IPv6 bracket', bytes: 'GET {T} HTTP/1.1\r\nHost: [::1\r\n\r\n', want: 400 },
  { name: 'headers over limits.headerBytes', bytes: `GET {T} HTTP/1.1\r\n${H}X-Big: ${'b'.repeat(40000)}\r\n\r\n`, want: 431 },
  { name: 'more fields than limits.headers', bytes: `GET {T} HTTP/1.1\r\n${H}${'X-A: 1\r\n'.repeat(101)}\r\n`, want: 431 },

  // --- refused: framing (RFC 9112 §6)
  { name: 'Content-Length and Transfer-Encoding', bytes: `POST {T} HTTP/1.1\r\n${H}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, want: 400 },
  { name: 'Transfer-Encoding and Content-Length (other order)', bytes: `POST {T} HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n`, want: 400 },
  { name: 'differing Content-Length lines', bytes: `POST {T} HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!`, want: 400 },
  { name: 'Content-Length list', bytes: `POST {T} HTTP/1.1\r\n${H}Content-Length: 5, 5\r\n\r\nhello`, want: 400 },
  { name: 'Content-Length with a sign', bytes: `POST {T} HTTP/1.1\r\n${H}Content-Length: +5\r\n\r\nhello`, want: 400 },
  { name: 'negative Content-Length', bytes: `POST {T} HTTP/1.1\r\n${H}Content-Length: -5\r\n\r\nhello`, want: 400 },
  { name: 'Content-Length in hex', bytes: `POST {T} HTTP/1.1\r\n${H}Content-Length: 0x5\r\n\r\nhello`, want: 400 },
  { name: 'Content-Length with a space inside', bytes: `POST {T} HTTP/1.1\r\n${H}Content-Length: 1 0\r\n\r\nhello`, want: 400 },
  { name: 'empty Content-Length', bytes: `POST {T} HTTP/1.1\r\n${H}Content-Length:\r\n\r\n`, want: 400 },
  { name: 'Content-Length over 2^53', bytes: `POST {T} HTTP/1.1\r\n${H}Content-Length: 99999999999999999999\r\n\r\n`, want: 400 },
  { name: 'Transfer-Encoding in HTTP/1.0', bytes: `POST {T} HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, want: 400 },
  { name: 'Transfer-Encoding: gzip (not chunked last)', bytes: `POST {T} HTTP/1.1\r\n${H}Transfer-Encoding: gzip\r\n\r\n`, want: 400 },
  { name: 'Transfer-Encoding: chunked, gzip', bytes: `POST {T} HTTP/1.1\r\n${H}Transfer-Encoding: chunked, gzip\r\n\r\n`, want: 400 },
  { name: 'Transfer-Encoding: identity', bytes: `POST {T} HTTP/1.1\r\n${H}Transfer-Encoding: identity\r\n\r\n`, want: 400 },
  { name: 'chunked twice', bytes: `POST {T} HTTP/1.1\r\n${H}Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n`, want: 400 },
  { name: 'chunked twice on two lines', bytes: `POST {T} HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, want: 400 },
  { name: 'chunked with a parameter', bytes: `POST {T} HTTP/1.1\r\n${H}Transfer-Encoding: chunked;q=1\r\n\r\n0\r\n\r\n`, want: 400 },
  { name: 'empty Transfer-Encoding', bytes: `POST {T} HTTP/1.1\r\n${H}Transfer-Encoding:\r\n\r\n`, want: 400 },
  { name: 'Transfer-Encoding: xchunked', bytes: `POST {T} HTTP/1.1\r\n${H}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n`, want: 400 },
  { name: 'Transfer-Encoding: "chunked" quoted', bytes: `POST {T} HTTP/1.1\r\n${H}Transfer-Encoding: "chunked"\r\n\r\n0\r\n\r\n`, want: 400 },
  { name: 'gzip, chunked (gzip not implemented)', bytes: `POST {T} HTTP/1.1\r\n${H}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n`, want: 501 },
  { name: 'gzip and chunked on two lines', bytes: `POST {T} HTTP/1.1\r\n${H}Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, want: 501 },

  // --- refused: chunked bodies (the head may have gone ahead; never a whole request)
  { name: 'chunk size not hex', bytes: `${CHUNKED_POST}g\r\nhello\r\n0\r\n\r\n`, want: 400 },
  { name: 'chunk size overflow', bytes: `${CHUNKED_POST}FFFFFFFFFFFFFFFFFFFFFFFF\r\nhello\r\n0\r\n\r\n`, want: 400 },
  { name: 'chunk size just over 2^53', bytes: `${CHUNKED_POST}20000000000001\r\nhello\r\n0\r\n\r\n`, want: 400 },
  { name: 'negative chunk size', bytes: `${CHUNKED_POST}-5\r\nhello\r\n0\r\n\r\n`, want: 400 },
  { name: 'chunk size 0x-prefixed', bytes: `${CHUNKED_POST}0x5\r\nhello\r\n0\r\n\r\n`, want: 400 },
  { name: 'empty chunk size', bytes: `${CHUNKED_POST}\r\nhello\r\n0\r\n\r\n`, want: 400 },
  { name: 'chunk data longer than its size', bytes: `${CHUNKED_POST}5\r\nhelloXX\r\n0\r\n\r\n`, want: 400 },
  { name: 'bare LF after a chunk size', bytes: `${CHUNKED_POST}5\nhello\r\n0\r\n\r\n`, want: 400 },
  { name: 'bare LF after chunk data', bytes: `${CHUNKED_POST}5\r\nhello\n0\r\n\r\n`, want: 400 },
  { name: 'empty chunk extension name', bytes: `${CHUNKED_POST}5;\r\nhello\r\n0\r\n\r\n`, want: 400 },
  { name: 'chunk extension without a value after =', bytes: `${CHUNKED_POST}5;a=\r\nhello\r\n0\r\n\r\n`, want: 400 },
  { name: 'a control byte in a chunk extension', bytes: `${CHUNKED_POST}5;a=\x01\r\nhello\r\n0\r\n\r\n`, want: 400 },
  { name: 'an unclosed quoted chunk extension', bytes: `${CHUNKED_POST}5;a="b\r\nhello\r\n0\r\n\r\n`, want: 400 },
  { name: 'a smuggled request inside an overflowing chunk size', bytes: `${CHUNKED_POST}10000000000000000000005\r\nhello\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n${H}\r\n`, want: 400 },
  { name: 'absolute-form without Host on HTTP/1.1', bytes: 'GET http://example.com{T} HTTP/1.1\r\n\r\n', want: 400 },
  { name: 'two Host fields differing in case', bytes: `GET {T} HTTP/1.1\r\n${H}host: example.com\r\n\r\n`, want: 400 },
  { name: 'a space in the query', bytes: `GET {T}?a b HTTP/1.1\r\n${H}\r\n`, want: 400 },
  { name: 'Transfer-Encoding with whitespace before the colon', bytes: `POST {T} HTTP/1.1\r\n${H}Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n`, want: 400 },
  { name: 'Content-Length with a bare CR', bytes: `POST {T} HTTP/1.1\r\n${H}Content-Length: 5\r\r\n\r\nhello`, want: 400 },
  { name: 'a bad trailer field', bytes: `${CHUNKED_POST}5\r\nhello\r\n0\r\nBad Trailer: x\r\n\r\n`, want: 400 },
  { name: 'Content-Length in the trailers (RFC 9110 §6.5.1)', bytes: `${CHUNKED_POST}5\r\nhello\r\n0\r\nContent-Length: 50\r\n\r\n`, want: 400 },
  { name: 'Transfer-Encoding in the trailers', bytes: `${CHUNKED_POST}5\r\nhello\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n`, want: 400 },
  { name: 'Host in the trailers', bytes: `${CHUNKED_POST}5\r\nhello\r\n0\r\nHost: evil.example\r\n\r\n`, want: 400 },
];

// One rsp per mode; every row goes to the pool `sink` (the default) and nothing else does.
const fixture = sharedRsp({ pools: { sink: keepAnswering(() => okResponse('ok')) } });

function rowTarget(i: number): string {
  return `/c${i}`;
}

/** What is wrong with rsp's handling of `row` (empty: all well). */
async function checkRow(t: ExecutionContext, mode: Mode, row: Row, i: number): Promise<string[]> {
  const problems: string[] = [];
  const expect = (ok: boolean, what: string): void => {
    if (!ok) problems.push(`${row.name}: ${what}`);
  };
  const { rsp, b } = await fixture(mode);
  const sink = b.sink;
  const target = rowTarget(i);
  const bytes = row.bytes.replaceAll('{T}', target);
  const requestsBefore = sink.requests.length;
  const c = await RawClient.connect(t, rsp.port);
  c.send(Buffer.from(bytes, 'latin1'));
  let res: Message;
  try {
    res = await c.response({ ms: 5000 });
  } catch (error) {
    return [`${row.name}: ${(error as Error).message}`];
  }
  if (row.want === 'forwarded') {
    expect(res.status === 200, `answered "${res.line}", not forwarded`);
    if (res.status !== 200) return problems;
    const options = row.name === 'OPTIONS *';
    const mine = sink.requests.filter((r) => r.target.includes(target) || (options && r.method === 'OPTIONS'));
    if (!options) expect(mine.length === 1, `reached the backend ${mine.length} times`);
    const req = mine.at(-1);
    if (req === undefined) return problems;
    const sentLine = bytes.replace(/^(\r\n)+/, '').split('\r\n')[0];
    expect(req.line === (row.line ?? sentLine), `backend got the line ${JSON.stringify(req.line)}`);
    expect(req.framing === (row.framing ?? 'none'), `backend got framing ${req.framing}`);
    expect(req.body.toString('latin1') === (row.body ?? ''), `backend got body ${JSON.stringify(req.body.toString('latin1'))}`);
    c.end();
    return problems;
  }
  expect(res.status === row.want, `answered "${res.line}", want ${row.want}`);
  expect(field(res, 'connection') === 'close', `Connection: ${field(res, 'connection')}`);
  const how = (await c.ending(5000).catch(() => ({ how: 'no end within 5 s' }))).how;
  expect(how === 'end', `the stream: ${how}`);
  c.end();
  // Nothing of a refused request reaches the backend: its head waits until
  // the body bytes read with it have been checked.
  expect(!sink.conns.some((k) => k.all.includes(target)), 'bytes of it reached the backend');
  expect(!sink.requests.slice(requestsBefore).some((r) => r.target.includes(target) || r.target === '/smuggled'), 'a complete request reached the backend');
  return problems;
}

// Rows run one after another (a fresh connection each) within one test per mode; every wrong row is listed.
for (const mode of MODES) {
  test(`RFC 9112 request table: ${ROWS.filter((r) => r.bug === undefined).length} rows (${mode})`, async (t) => {
    const problems: string[] = [];
    for (const [i, row] of ROWS.entries()) if (row.bug === undefined) problems.push(...(await checkRow(t, mode, row, i)));
    t.deepEqual(problems, []);
  });
  for (const [i, row] of ROWS.entries()) {
    if (row.bug !== undefined) {
      test.failing(`RFC 9112 row "${row.name}" (${mode}) [known bug: ${row.bug}]`, async (t) => {
        t.deepEqual(await checkRow(t, mode, row, i), []);
      });
    }
  }
}

// --- Responses: what the backend answers (exact bytes), and what the client must get.
interface ResponseRow {
  name: string;
  /** The backend's bytes; it closes the connection after them when `close`. */
  bytes: string;
  close?: boolean;
  /** The request is HEAD. */
  head?: boolean;
  /** 'forwarded' (with the status, framing and wire body the client must see), 502, or 'cut' (a reset after the head, or a 502 when the error came with the head). */
  want: 'forwarded' | 502 | 'cut';
  status?: number;
  framing?: 'none' | 'length' | 'chunked' | 'close';
  raw?: string;
  /** Interim responses the client must see first. */
  interim?: number[];
  bug?: string;
}

const RESPONSES: ResponseRow[] = [
  { name: 'Content-Length', bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello', want: 'forwarded', status: 200, framing: 'length', raw: 'hello' },
  { name: 'chunked, byte-exact with extensions and trailers', bytes: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nT: 1\r\n\r\n', want: 'forwarded', status: 200, framing: 'chunked', raw: '5;x=y\r\nhello\r\n0\r\nT: 1\r\n\r\n' },
  { name: 'neither: until close', bytes: 'HTTP/1.1 200 OK\r\n\r\nuntil the end', close: true, want: 'forwarded', status: 200, framing: 'close', raw: 'until the end' },
  { name: 'HTTP/1.0 without Content-Length: until close', bytes: 'HTTP/1.0 200 OK\r\n\r\nold style', close: true, want: 'forwarded', status: 200, framing: 'close', raw: 'old style' },
  { name: 'gzip, chunked: chunked framing, gzip passed on', bytes: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n', want: 'forwarded', status: 200, framing: 'chunked', raw: '3\r\nabc\r\n0\r\n\r\n' },
  { name: 'Transfer-Encoding not ending in chunked: until close', bytes: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzipped', close: true, want: 'forwarded', status: 200, framing: 'close', raw: 'zipped' },
  { name: '204 with no body', bytes: 'HTTP/1.1 204 No Content\r\n\r\n', want: 'forwarded', status: 204, framing: 'none', raw: '' },
  { name: '304 with a Content-Length and no body', bytes: 'HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n', want: 'forwarded', status: 304, framing: 'none', raw: '' },
  { name: 'HEAD: Content-Length and no body', head: true, bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n', want: 'forwarded', status: 200, framing: 'none', raw: '' },
  { name: 'HEAD: a body the backend sends anyway is not passed on', head: true, bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello', want: 'forwarded', status: 200, framing: 'none', raw: '' },
  { name: 'HEAD: chunked and no body', head: true, bytes: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n', want: 'forwarded', status: 200, framing: 'none', raw: '' },
  { name: '103 Early Hints before the response', bytes: 'HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok', want: 'forwarded', interim: [103], status: 200, framing: 'length', raw: 'ok' },
  { name: 'two 100 Continue', bytes: 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok', want: 'forwarded', interim: [100, 100], status: 200, framing: 'length', raw: 'ok' },
  { name: 'status line without a reason', bytes: 'HTTP/1.1 200 \r\nContent-Length: 2\r\n\r\nok', want: 'forwarded', status: 200, framing: 'length', raw: 'ok' },
  { name: 'status line without the space after the code', bytes: 'HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok', want: 'forwarded', status: 200, framing: 'length', raw: 'ok' },
  { name: 'a status rsp has no name for', bytes: 'HTTP/1.1 299 Whatever\r\nContent-Length: 2\r\n\r\nok', want: 'forwarded', status: 299, framing: 'length', raw: 'ok' },
  { name: 'identical Content-Length lines', bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok', want: 'forwarded', status: 200, framing: 'length', raw: 'ok' },

  { name: 'bare LF', bytes: 'HTTP/1.1 200 OK\nContent-Length: 2\n\nok', want: 502 },
  { name: 'obs-fold', bytes: 'HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 2\r\n\r\nok', want: 502 },
  { name: 'whitespace before a colon', bytes: 'HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok', want: 502 },
  { name: 'NUL in a value', bytes: 'HTTP/1.1 200 OK\r\nX: a\x00b\r\nContent-Length: 2\r\n\r\nok', want: 502 },
  { name: 'Content-Length and Transfer-Encoding', bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n', want: 502 },
  { name: 'Content-Length and Transfer-Encoding on a 304', bytes: 'HTTP/1.1 304 Not Modified\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n', want: 502 },
  { name: 'differing Content-Length', bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 20\r\n\r\nok', want: 502 },
  { name: 'Content-Length list', bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 2,2\r\n\r\nok', want: 502 },
  { name: 'Content-Length not a number', bytes: 'HTTP/1.1 200 OK\r\nContent-Length: two\r\n\r\nok', want: 502 },
  { name: 'chunked twice', bytes: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n', want: 502 },
  { name: 'Transfer-Encoding in an HTTP/1.0 response', bytes: 'HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', want: 502 },
  { name: 'status 600', bytes: 'HTTP/1.1 600 Odd\r\nContent-Length: 0\r\n\r\n', want: 502 },
  { name: 'status 099', bytes: 'HTTP/1.1 099 Odd\r\nContent-Length: 0\r\n\r\n', want: 502 },
  { name: 'HTTP/2.0 status line', bytes: 'HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n', want: 502 },
  { name: 'an empty line before the status line', bytes: '\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n', want: 502 },
  { name: 'not HTTP at all', bytes: 'SSH-2.0-OpenSSH_9.6\r\n', close: true, want: 502 },

  { name: 'a bad chunk size after the head went out', bytes: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n', want: 'cut' },
  { name: 'a chunk size overflow after the head went out', bytes: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFFFFFF\r\n', want: 'cut' },
  { name: 'a chunked body ended by close before its last chunk', bytes: 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n', close: true, want: 'cut' },
  { name: 'a Content-Length body ended by close', bytes: 'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello', close: true, want: 'cut' },
];

const responder = sharedRsp({
  pools: {
    resp: async (c) => {
      for (;;) {
        const req = await c.request(60000);
        if (req === null) return;
        const row = RESPONSES[Number(/^\/r(\d+)$/.exec(req.target)?.[1] ?? -1)];
        if (row === undefined) {
          c.socket.destroy();
          return;
        }
        c.send(row.bytes);
        if (row.close) {
          c.socket.end();
          return;
        }
      }
    },
  },
});

async function checkResponse(t: ExecutionContext, mode: Mode, row: ResponseRow, i: number): Promise<string[]> {
  const problems: string[] = [];
  const expect = (ok: boolean, what: string): void => {
    if (!ok) problems.push(`${row.name}: ${what}`);
  };
  const { rsp } = await responder(mode);
  const request = `${row.head ? 'HEAD' : 'GET'} /r${i} HTTP/1.1\r\nHost: resp.test\r\n\r\n`;
  if (row.want === 'cut') {
    const fd = connectFd(rsp.port);
    await writeFd(fd, Buffer.from(request));
    const got = await readFd(fd, { limitMs: 5000 }).catch((e: Error) => ({ how: e.message, bytes: Buffer.alloc(0) }));
    // The error may come in the same read as the head: then rsp has sent nothing yet and answers 502.
    const answered = /^HTTP\/1\.1 502 /.test(got.bytes.toString('latin1')) && got.how !== 'ECONNRESET';
    expect(got.how === 'ECONNRESET' || answered, `the client saw ${got.how} after ${got.bytes.length} bytes, neither a reset nor a 502`);
    return problems;
  }
  const c = await RawClient.connect(t, rsp.port);
  c.send(request);
  try {
    for (const status of row.interim ?? []) {
      const interim = await c.response({ ms: 5000 });
      expect(interim.status === status, `interim ${interim.line}, want ${status}`);
    }
    const res = await c.response({ ms: 5000, noBody: row.head });
    if (row.want === 502) {
      expect(res.line === 'HTTP/1.1 502 Bad Gateway', `answered "${res.line}", want 502`);
      expect(field(res, 'connection') === 'close', `Connection: ${field(res, 'connection')}`);
      expect(!res.head.includes('Content-Length: 2\r\n') && !res.body.includes('ok'), 'a part of the bad response reached the client');
    } else {
      expect(res.status === row.status, `status ${res.status}, want ${row.status}`);
      expect(res.framing === row.framing, `framing ${res.framing}, want ${row.framing}`);
      expect(res.raw.toString('latin1') === row.raw, `body ${JSON.stringify(res.raw.toString('latin1'))}`);
      if (row.framing === 'close') expect(field(res, 'connection') === 'close', 'no Connection: close on a body until close');
      expect(c.unread.length === 0, `stray bytes after the response: ${JSON.stringify(c.unread.toString('latin1'))}`);
    }
  } catch (error) {
    problems.push(`${row.name}: ${(error as Error).message}`);
  }
  c.end();
  return problems;
}

for (const mode of MODES) {
  test(`RFC 9112 response table: ${RESPONSES.filter((r) => r.bug === undefined).length} rows (${mode})`, async (t) => {
    const problems: string[] = [];
    for (const [i, row] of RESPONSES.entries()) if (row.bug === undefined) problems.push(...(await checkResponse(t, mode, row, i)));
    t.deepEqual(problems, []);
  });
  for (const [i, row] of RESPONSES.entries()) {
    if (row.bug !== undefined) {
      test.failing(`RFC 9112 response row "${row.name}" (${mode}) [known bug: ${row.bug}]`, async (t) => {
        t.deepEqual(await checkResponse(t, mode, row, i), []);
      });
    }
  }
}
