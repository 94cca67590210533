// The answers rsp gives itself: a status line, a small plain-text body and
// `Connection: close` (after an error the connection's state is not to be
// trusted, so it ends with this answer).

const REASONS: Record<number, string> = {
  400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed',
  408: 'Request Timeout', 410: 'Gone', 413: 'Content Too Large', 414: 'URI Too Long', 421: 'Misdirected Request',
  429: 'Too Many Requests', 431: 'Request Header Fields Too Large', 451: 'Unavailable For Legal Reasons',
  500: 'Internal Server Error', 501: 'Not Implemented', 502: 'Bad Gateway', 503: 'Service Unavailable',
  504: 'Gateway Timeout', 505: 'HTTP Version Not Supported',
};

/** The reason phrase for `status` ("" for one rsp has no name for: the status line allows an empty reason). */
export function reasonPhrase(status: number): string {
  return REASONS[status] ?? '';
}

/**
 * The whole response for `status`, closing the connection, with a Date (RFC
 * 9110 §6.6.1: an origin with a clock dates its 4xx). `head`: the request was
 * HEAD, so the body is announced but not sent (RFC 9110 §9.3.2). Made on each
 * call: an error is no hot path.
 */
export function errorResponse(status: number, head = false): Buffer {
  const reason = reasonPhrase(status);
  const body = status >= 200 && status !== 204 && status !== 304 ? `${status} ${reason}\n` : '';
  return Buffer.from(
    `HTTP/1.1 ${status} ${reason}\r\nServer: rsp\r\nDate: ${new Date().toUTCString()}\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${head ? '' : body}`,
    'latin1',
  );
}
