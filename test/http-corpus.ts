// Realistic request heads for the parser's tests and its benchmark:
// browser-like, curl, API clients, 1 to 40 header fields.

const chrome = [
  'GET /static/js/app.3f2a1c.js HTTP/1.1',
  'Host: www.example.com',
  'Connection: keep-alive',
  'sec-ch-ua: "Chromium";v="124", "Google Chrome";v="124", "Not-A.Brand";v="99"',
  'sec-ch-ua-mobile: ?0',
  'User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36',
  'sec-ch-ua-platform: "Linux"',
  'Accept: */*',
  'Sec-Fetch-Site: same-origin',
  'Sec-Fetch-Mode: no-cors',
  'Sec-Fetch-Dest: script',
  'Referer: https://www.example.com/products?id=42&ref=home',
  'Accept-Encoding: gzip, deflate, br, zstd',
  'Accept-Language: en-GB,en-US;q=0.9,en;q=0.8',
  'Cookie: session=9f8e7d6c5b4a39281706f5e4d3c2b1a0; theme=dark; _ga=GA1.2.1234567890.1700000000',
];

const firefox = [
  'GET /search?q=http%2F1.1+parser&lang=en HTTP/1.1',
  'Host: search.example.org',
  'User-Agent: Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0',
  'Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8',
  'Accept-Language: en-US,en;q=0.5',
  'Accept-Encoding: gzip, deflate, br',
  'DNT: 1',
  'Connection: keep-alive',
  'Upgrade-Insecure-Requests: 1',
  'Sec-Fetch-Dest: document',
  'Sec-Fetch-Mode: navigate',
  'Sec-Fetch-Site: none',
  'Sec-Fetch-User: ?1',
  'Priority: u=1',
];

const curl = ['GET /health HTTP/1.1', 'Host: 127.0.0.1:8080', 'User-Agent: curl/8.5.0', 'Accept: */*'];

const api = [
  'POST /api/v2/orders HTTP/1.1',
  'Host: api.example.com',
  'Authorization: Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U',
  'Content-Type: application/json',
  'Content-Length: 348',
  'Accept: application/json',
  'User-Agent: okhttp/4.12.0',
  'X-Request-Id: 7d0f3a52-9c1e-4b7a-a2d4-8e6f0b1c2d3e',
  'Accept-Encoding: gzip',
];

const apiChunked = [
  'PUT /v1/objects/bucket/key.bin HTTP/1.1',
  'Host: storage.internal:9000',
  'User-Agent: aws-sdk-go/1.44.0 (go1.21; linux; amd64)',
  'Transfer-Encoding: chunked',
  'Content-Type: application/octet-stream',
  'X-Amz-Date: 20261129T060000Z',
  'X-Amz-Content-Sha256: STREAMING-AWS4-HMAC-SHA256-PAYLOAD',
  'Expect: 100-continue',
];

const websocket = [
  'GET /chat HTTP/1.1',
  'Host: ws.example.com',
  'Upgrade: websocket',
  'Connection: Upgrade',
  'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
  'Origin: https://example.com',
  'Sec-WebSocket-Protocol: chat, superchat',
  'Sec-WebSocket-Version: 13',
];

const tiny = ['GET / HTTP/1.1', 'Host: a'];
const http10 = ['GET /index.html HTTP/1.0', 'User-Agent: ab/2.3', 'Accept: */*'];

function many(n: number): string[] {
  const lines = ['GET /dashboard/reports/2026/11?page=3&sort=-date HTTP/1.1', 'Host: app.example.net'];
  const names = ['Accept', 'Accept-Language', 'Cache-Control', 'X-Forwarded-For', 'X-Trace', 'Cookie', 'If-None-Match', 'X-Feature'];
  for (let i = lines.length - 1; i < n; i++) {
    const name = names[i % names.length] + (i >= names.length ? `-${i}` : '');
    lines.push(`${name}: value-${i}-${'abcdefghij'.slice(0, 1 + (i % 10))}; q=0.${i % 10}`);
  }
  return lines;
}

function head(lines: string[]): string {
  return lines.join('\r\n') + '\r\n\r\n';
}

/** The corpus: each head once; heads with 1 to 40 fields. */
export const CORPUS: string[] = [chrome, firefox, curl, api, apiChunked, websocket, tiny, http10, many(20), many(40)].map(head);

/** The small heads (curl-like), for heads/s against llhttp's figure for small heads. */
export const SMALL: string[] = [curl, tiny, ['GET /api/items/17 HTTP/1.1', 'Host: api.example.com', 'Accept: application/json']].map(head);
