// The stats listener: a small HTTP/1.x responder on rsp's own reactor and
// connections. One request per connection (Connection: close): read the
// request head (at most 8 KB, within 10 s), answer, close after the flush.
//
//   /stats    JSON (snapshot.ts)       /metrics  Prometheus text (prometheus.ts)
//   /healthz  "ok" (200)               /         the HTML page (page.ts)
import { Connection, type ConnectionOwner, type ConnectionSettings } from '../connection';
import { Listener } from '../listener';
import type { Reactor, Timer } from '../reactor';
import { statusPage } from './page';
import { prometheus } from './prometheus';
import { snapshot, type StatsSnapshot, type StatsSources, type WorkerReport } from './snapshot';

const MAX_HEAD = 8192;
const HEAD_TIMEOUT_MS = 10_000;

const REASONS: Record<number, string> = { 200: 'OK', 503: 'Service Unavailable', 400: 'Bad Request', 404: 'Not Found', 405: 'Method Not Allowed', 408: 'Request Timeout', 431: 'Request Header Fields Too Large' };

class StatsRequest implements ConnectionOwner {
  private readonly conn: Connection;
  private head = '';
  private done = false;
  private closed = false;
  private readonly timer: Timer;

  constructor(reactor: Reactor, fd: number, settings: ConnectionSettings, private readonly server: StatsServer) {
    this.conn = new Connection(reactor, fd, this, settings);
    this.conn.label = 'stats client';
    this.timer = reactor.after(HEAD_TIMEOUT_MS, () => this.answer(408, 'text/plain', 'request head too slow\n', false));
  }

  onConnect(): void {}
  onDrain(): void {}

  onData(_conn: Connection, data: Buffer, length: number): void {
    if (this.done) return;
    this.head += data.toString('latin1', 0, length);
    const end = this.head.indexOf('\r\n\r\n');
    if (end < 0) {
      if (this.head.length > MAX_HEAD) this.answer(431, 'text/plain', 'request head too large\n', false);
      return;
    }
    const m = /^([A-Z]+) (\/[^ ]*) HTTP\/1\.[01]\r\n/.exec(this.head);
    if (m === null) {
      this.answer(400, 'text/plain', 'bad request\n', false);
      return;
    }
    const [, method, target] = m;
    const path = target.split('?')[0];
    const head = method === 'HEAD';
    if (method !== 'GET' && !head) {
      this.answer(405, 'text/plain', 'only GET and HEAD\n', false, 'Allow: GET, HEAD\r\n');
      return;
    }
    if (path === '/healthz') {
      const draining = this.server.sources.health === 'draining';
      this.answer(draining ? 503 : 200, 'text/plain', draining ? 'draining\n' : 'ok\n', head);
      return;
    }
    const render: ((s: StatsSnapshot) => [string, string]) | null =
      path === '/stats' ? (s) => ['application/json', JSON.stringify(s, null, 2) + '\n']
      : path === '/metrics' ? (s) => ['text/plain; version=0.0.4; charset=utf-8', prometheus(s)]
      : path === '/' ? (s) => ['text/html; charset=utf-8', statusPage(s)]
      : null;
    if (render === null) {
      this.answer(404, 'text/plain', 'not found: try /, /stats, /metrics or /healthz\n', head);
      return;
    }
    this.done = true; // no more bytes are looked at while the other workers are asked
    const sources = this.server.sources;
    const reply = (others: WorkerReport[]): void => {
      if (this.closed) return;
      const [type, body] = render(snapshot(sources, Date.now(), others));
      this.answer(200, type, body, head);
    };
    if (sources.gather === undefined) reply([]);
    else sources.gather(reply);
  }

  onEnd(): void {
    if (!this.done) this.conn.close();
  }

  onClose(): void {
    this.closed = true;
    this.timer.cancel();
  }

  private answer(status: number, type: string, body: string, headOnly: boolean, extra = ''): void {
    this.done = true;
    this.timer.cancel();
    const payload = Buffer.from(body);
    const head = Buffer.from(
      `HTTP/1.1 ${status} ${REASONS[status]}\r\nDate: ${new Date().toUTCString()}\r\nContent-Type: ${type}\r\nContent-Length: ${payload.length}\r\nCache-Control: no-store\r\n${extra}Connection: close\r\n\r\n`,
    );
    this.conn.write(head, head.length);
    if (!headOnly) this.conn.write(payload, payload.length);
    this.conn.close();
  }
}

export class StatsServer {
  readonly listener: Listener;

  constructor(
    reactor: Reactor,
    address: string,
    port: number,
    settings: ConnectionSettings,
    readonly sources: StatsSources,
  ) {
    this.listener = new Listener(reactor, { address, port, backlog: 128, acceptBudget: 16, acceptOnce: false }, (fd) => {
      new StatsRequest(reactor, fd, settings, this);
    });
  }

  close(): void {
    this.listener.close();
  }
}
