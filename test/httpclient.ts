// Raw HTTP/1.1 for the HTTP-mode tests: a client that sends exact bytes and
// parses what comes back strictly (no library between the test and the wire),
// and a scripted backend that reads requests the same way and answers with
// exact bytes. Both keep every byte they received, so a test can say exactly
// what crossed rsp.
import test, { type ExecutionContext } from 'ava';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as libc from '../ffi/libc';
import { createAndBind } from '../src/listener';
import { localAddress } from '../src/netutils';
import { listen, MODES, once, refusingPort, within, type Mode, type RunningProcess } from './helpers';
import { startRspLua } from './lua';

/**
 * bothModes for a test that fails because of a known rsp bug (named in
 * `bug`): it stays in the suite as test.failing, so the suite is green and
 * ava says when the fix makes it pass (then make it a plain test).
 */
export function bothModesFailing(bug: string, title: string, fn: (t: ExecutionContext, mode: Mode) => Promise<void>): void {
  for (const mode of MODES) test.failing(`${title} (${mode}) [known bug: ${bug}]`, (t) => fn(t, mode));
}

export interface Message {
  /** The start line without its CRLF. */
  line: string;
  /** Responses: the status code; requests: 0. */
  status: number;
  /** Requests: method and target. */
  method: string;
  target: string;
  version: string;
  /** Field lines in order, names as sent. */
  fields: [string, string][];
  /** The head as it came, start line to the empty line. */
  head: Buffer;
  /** The body as it came on the wire (chunked: with its framing). */
  raw: Buffer;
  /** The body (chunked: decoded). */
  body: Buffer;
  framing: 'none' | 'length' | 'chunked' | 'close';
}

/** The first value of a field (case-insensitive name), or undefined. */
export function field(m: Message, name: string): string | undefined {
  const n = name.toLowerCase();
  return m.fields.find(([k]) => k.toLowerCase() === n)?.[1];
}

/** Every value of a field, in order. */
export function fieldAll(m: Message, name: string): string[] {
  const n = name.toLowerCase();
  return m.fields.filter(([k]) => k.toLowerCase() === n).map(([, v]) => v);
}

export class ParseError extends Error {}

/**
 * One message from the front of `buf`: null when more bytes are needed.
 * Strict: CRLF line ends, `name: value` fields. `ended`: the stream is over
 * (a body until close ends there). `noBody`: the response to a HEAD request.
 */
export function parseMessage(buf: Buffer, kind: 'request' | 'response', opts: { ended?: boolean; noBody?: boolean } = {}): { msg: Message; used: number } | null {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) {
    if (buf.includes('\n') && /[^\r]\n/.test(buf.toString('latin1'))) {
      // Not fatal by itself (the head may just be incomplete) unless a bare LF shows.
      const text = buf.toString('latin1');
      for (let i = 0; i < text.length; i++) if (text[i] === '\n' && text[i - 1] !== '\r') throw new ParseError(`bare LF in head: ${JSON.stringify(text.slice(0, 200))}`);
    }
    if (opts.ended && buf.length > 0) throw new ParseError(`stream ended inside a head: ${JSON.stringify(buf.toString('latin1').slice(0, 200))}`);
    return null;
  }
  const head = buf.subarray(0, end + 4);
  const lines = buf.toString('latin1', 0, end).split('\r\n');
  for (const l of lines) if (l.includes('\n') || l.includes('\r')) throw new ParseError(`bare CR or LF in head line ${JSON.stringify(l)}`);
  const line = lines[0];
  const fields: [string, string][] = [];
  for (const l of lines.slice(1)) {
    const m = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*(.*?)[ \t]*$/.exec(l);
    if (m === null) throw new ParseError(`bad field line ${JSON.stringify(l)}`);
    fields.push([m[1], m[2]]);
  }
  const msg: Message = { line, status: 0, method: '', target: '', version: '', fields, head, raw: Buffer.alloc(0), body: Buffer.alloc(0), framing: 'none' };
  if (kind === 'response') {
    const m = /^(HTTP\/\d\.\d) (\d{3}) (.*)$/.exec(line);
    if (m === null) throw new ParseError(`bad status line ${JSON.stringify(line)}`);
    msg.version = m[1];
    msg.status = Number(m[2]);
  } else {
    const m = /^([^ ]+) ([^ ]+) (HTTP\/\d\.\d)$/.exec(line);
    if (m === null) throw new ParseError(`bad request line ${JSON.stringify(line)}`);
    [, msg.method, msg.target, msg.version] = m;
  }
  const te = fieldAll(msg, 'transfer-encoding');
  const cl = fieldAll(msg, 'content-length');
  if (te.length > 0 && cl.length > 0) throw new ParseError(`both Transfer-Encoding and Content-Length: ${line}`);
  if (cl.length > 1 && new Set(cl).size > 1) throw new ParseError(`conflicting Content-Length ${cl.join(' / ')}`);
  let at = end + 4;
  const noBody = kind === 'response' && (opts.noBody || (msg.status >= 100 && msg.status < 200) || msg.status === 204 || msg.status === 304);
  if (noBody) return { msg, used: at };
  if (te.length > 0) {
    if (!/(^|,)\s*chunked\s*$/i.test(te.join(','))) {
      if (kind === 'request') throw new ParseError(`request Transfer-Encoding not ending in chunked: ${te.join(',')}`);
      msg.framing = 'close';
    } else {
      msg.framing = 'chunked';
      const parts: Buffer[] = [];
      for (;;) {
        const lineEnd = buf.indexOf('\r\n', at);
        if (lineEnd < 0) return need(opts, 'a chunk size line');
        const sizeLine = buf.toString('latin1', at, lineEnd);
        const sm = /^([0-9a-fA-F]+)([ \t]*;.*)?$/.exec(sizeLine);
        if (sm === null) throw new ParseError(`bad chunk size line ${JSON.stringify(sizeLine)}`);
        const size = parseInt(sm[1], 16);
        at = lineEnd + 2;
        if (size === 0) {
          // Trailers, then the empty line.
          for (;;) {
            const te2 = buf.indexOf('\r\n', at);
            if (te2 < 0) return need(opts, 'the end of the trailers');
            const empty = te2 === at;
            at = te2 + 2;
            if (empty) break;
          }
          break;
        }
        if (buf.length < at + size + 2) return need(opts, 'chunk data');
        parts.push(buf.subarray(at, at + size));
        if (buf[at + size] !== 13 || buf[at + size + 1] !== 10) throw new ParseError('chunk data not followed by CRLF');
        at += size + 2;
      }
      msg.raw = Buffer.from(buf.subarray(end + 4, at));
      msg.body = Buffer.concat(parts);
      return { msg, used: at };
    }
  } else if (cl.length > 0) {
    if (!/^\d+$/.test(cl[0])) throw new ParseError(`bad Content-Length ${cl[0]}`);
    const n = Number(cl[0]);
    msg.framing = 'length';
    if (buf.length < at + n) return need(opts, `${n} body bytes`);
    msg.raw = Buffer.from(buf.subarray(at, at + n));
    msg.body = msg.raw;
    return { msg, used: at + n };
  } else if (kind === 'response') {
    msg.framing = 'close';
  } else {
    return { msg, used: at };
  }
  // Until close.
  if (!opts.ended) return null;
  msg.raw = Buffer.from(buf.subarray(at));
  msg.body = msg.raw;
  return { msg, used: buf.length };
}

function need(opts: { ended?: boolean }, what: string): null {
  if (opts.ended) throw new ParseError(`stream ended before ${what}`);
  return null;
}

/** How a stream ended: the peer's FIN, a reset, or still open. */
export type Ending = 'end' | 'reset' | 'open';

/**
 * A client on a plain socket: `send` exact bytes, `response()` the next
 * response (strictly parsed), `ending()` how the stream ends.
 */
export class RawClient {
  private buf = Buffer.alloc(0);
  private ended: Ending = 'open';
  private error: Error | null = null;
  private wake: (() => void) | null = null;
  /** Every byte received, ever. */
  readonly received: Buffer[] = [];

  constructor(readonly socket: net.Socket) {
    socket.on('data', (c: Buffer) => {
      this.received.push(c);
      this.buf = Buffer.concat([this.buf, c]);
      this.wake?.();
    });
    socket.on('end', () => {
      if (this.ended === 'open') this.ended = 'end';
      this.wake?.();
    });
    socket.on('error', (e: NodeJS.ErrnoException) => {
      this.ended = e.code === 'ECONNRESET' || e.code === 'EPIPE' ? 'reset' : 'reset';
      this.error = e;
      this.wake?.();
    });
    socket.on('close', () => {
      if (this.ended === 'open') this.ended = 'end';
      this.wake?.();
    });
  }

  static async connect(t: ExecutionContext, port: number, host = '127.0.0.1'): Promise<RawClient> {
    const s = net.connect({ port, host, allowHalfOpen: true });
    t.teardown(() => s.destroy());
    await within(new Promise<void>((resolve, reject) => {
      s.once('connect', () => resolve());
      s.once('error', reject);
    }), 20000, `a connection to port ${port}`);
    return new RawClient(s);
  }

  send(bytes: Buffer | string): void {
    this.socket.write(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes);
  }

  /** Shut down the sending half (FIN). */
  end(): void {
    this.socket.end();
  }

  /** Bytes received and not yet taken by response(). */
  get unread(): Buffer {
    return this.buf;
  }

  private async until(cond: () => boolean, ms: number, what: string): Promise<void> {
    await within(new Promise<void>((resolve, reject) => {
      const check = (): void => {
        let met: boolean;
        try {
          met = cond();
        } catch (error) {
          this.wake = null;
          reject(error as Error);
          return;
        }
        if (met || this.ended !== 'open') {
          this.wake = null;
          resolve();
        } else {
          this.wake = check;
        }
      };
      check();
    }), ms, what).finally(() => (this.wake = null));
  }

  /** The next response; `noBody` for the answer to HEAD. Throws a ParseError on anything malformed or cut. */
  async response(opts: { noBody?: boolean; ms?: number } = {}): Promise<Message> {
    let got: { msg: Message; used: number } | null = null;
    await this.until(() => (got = parseMessage(this.buf, 'response', { noBody: opts.noBody })) !== null, opts.ms ?? 20000, 'a response');
    if (got === null) got = parseMessage(this.buf, 'response', { noBody: opts.noBody, ended: true });
    if (got === null) throw new ParseError(`no response (stream ${this.ended}${this.error ? `: ${this.error.message}` : ''}), got ${JSON.stringify(this.buf.toString('latin1').slice(0, 300))}`);
    const { msg, used } = got as { msg: Message; used: number };
    this.buf = this.buf.subarray(used);
    return msg;
  }

  /** Waits for the stream to end (FIN or reset); the bytes not taken by response() are `rest`. */
  async ending(ms = 20000): Promise<{ how: Ending; rest: Buffer }> {
    await this.until(() => false, ms, 'the end of the stream');
    return { how: this.ended, rest: this.buf };
  }

  /** True when the stream is still open after `ms` ms (never a timing assertion: a wait for nothing). */
  get state(): Ending {
    return this.ended;
  }
}

/** One exchange on a fresh connection: send `bytes`, parse one response, then how the stream ends. */
export async function oneShot(t: ExecutionContext, port: number, bytes: Buffer | string, opts: { noBody?: boolean; end?: boolean } = {}): Promise<{ res: Message; how: Ending; rest: Buffer }> {
  const c = await RawClient.connect(t, port);
  c.send(bytes);
  if (opts.end) c.end();
  const res = await c.response({ noBody: opts.noBody });
  const { how, rest } = await c.ending();
  c.end();
  return { res, how, rest };
}

/** A connection as the scripted backend sees it. */
export class BackendConn {
  private buf = Buffer.alloc(0);
  ended = false;
  /** Every byte received on this connection. */
  readonly received: Buffer[] = [];
  readonly requests: Message[] = [];
  private wake: (() => void) | null = null;

  constructor(readonly socket: net.Socket, readonly index: number) {
    socket.on('data', (c: Buffer) => {
      this.received.push(c);
      this.buf = Buffer.concat([this.buf, c]);
      this.wake?.();
    });
    socket.on('end', () => {
      this.ended = true;
      this.wake?.();
    });
    socket.on('close', () => {
      this.ended = true;
      this.wake?.();
    });
  }

  get all(): Buffer {
    return Buffer.concat(this.received);
  }

  /** The next request on this connection, or null when the connection ends first. */
  async request(ms = 20000): Promise<Message | null> {
    let got: { msg: Message; used: number } | null = null;
    await within(new Promise<void>((resolve, reject) => {
      const check = (): void => {
        try {
          got = parseMessage(this.buf, 'request');
        } catch (e) {
          this.wake = null;
          reject(e as Error);
          return;
        }
        if (got !== null || this.ended) {
          this.wake = null;
          resolve();
        } else {
          this.wake = check;
        }
      };
      check();
    }), ms, 'a request at the backend');
    if (got === null) return null;
    const { msg, used } = got as { msg: Message; used: number };
    this.buf = this.buf.subarray(used);
    this.requests.push(msg);
    return msg;
  }

  send(bytes: Buffer | string): void {
    if (!this.socket.destroyed) this.socket.write(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes);
  }
}

export interface ScriptedBackend {
  port: number;
  /** Connections accepted so far, in order. */
  conns: BackendConn[];
  /** Every request received, in order, across connections. */
  requests: Message[];
}

/**
 * A backend that calls `serve(conn)` per accepted connection; `serve` reads
 * requests with conn.request() and answers with conn.send(). The default
 * answers every request with `200` and the body "ok" (kept alive).
 */
export async function scriptedBackend(t: ExecutionContext, serve: (c: BackendConn, b: ScriptedBackend) => Promise<void> = keepAnswering(() => okResponse('ok'))): Promise<ScriptedBackend> {
  const b: ScriptedBackend = { port: 0, conns: [], requests: [] };
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    const c = new BackendConn(s, b.conns.length);
    b.conns.push(c);
    const push = c.requests.push.bind(c.requests);
    c.requests.push = (...m: Message[]): number => {
      b.requests.push(...m);
      return push(...m);
    };
    serve(c, b).catch(() => s.destroy());
  });
  b.port = await listen(t, server);
  return b;
}

/** A serve function: every request on the connection answered by `answer(request)`; the end ends it. */
export function keepAnswering(answer: (req: Message, c: BackendConn) => Buffer | string | null): (c: BackendConn) => Promise<void> {
  return async (c) => {
    for (;;) {
      const req = await c.request(60000);
      if (req === null) {
        c.socket.end();
        return;
      }
      const bytes = answer(req, c);
      if (bytes !== null) c.send(bytes);
    }
  };
}

export function okResponse(body: string | Buffer, extra = ''): string | Buffer {
  const b = typeof body === 'string' ? Buffer.from(body, 'latin1') : body;
  const head = `HTTP/1.1 200 OK\r\nContent-Length: ${b.length}\r\n${extra}\r\n`;
  return typeof body === 'string' ? head + body : Buffer.concat([Buffer.from(head, 'latin1'), b]);
}

/** A minimal GET. */
export function getRequest(path = '/', host = 'example.com', extra = ''): string {
  return `GET ${path} HTTP/1.1\r\nHost: ${host}\r\n${extra}\r\n`;
}

/** An HTTP-mode config for startRspLua: one pool `web` at `port` plus whatever `extra` says. */
export function httpConfig(mode: string, port: number, extra = ''): string {
  return `listenPort = "0"\nlistenAddress = "127.0.0.1"\nmode = "http"\ntriggerMode = "${mode}"\nbackends = { web = { "127.0.0.1:${port}" } }\n${extra}\n`;
}

/** What a shared fixture holds for one trigger mode: rsp and the backends by pool name. */
export interface Fixture {
  rsp: RunningProcess;
  b: Record<string, ScriptedBackend>;
  /** A temporary directory that lives as long as the fixture (for access logs). */
  dir: string;
  /** Stands for a test context whose teardowns run after the file's last test. */
  owner: ExecutionContext;
}

export interface FixtureSpec {
  /** Pool name -> how its one backend serves each connection; each pool is routed by the host "<name>.test". */
  pools: Record<string, (c: BackendConn, b: ScriptedBackend) => Promise<void>>;
  /** Pools without a scripted backend, by name: a function giving its members as Lua list entries ('"127.0.0.1:PORT"'). */
  addresses?: Record<string, (owner: ExecutionContext) => Promise<string>>;
  /** Options written into a pool's table (`maxFails = 1, retries = 0`), by pool name. */
  poolOptions?: Record<string, string>;
  /** More routes (Lua table entries), before the generated ones. */
  routes?: string;
  /** routes.default (a pool name). */
  fallback?: string;
  /** More Lua (options, route()); `$DIR` is replaced by the fixture's directory. */
  extra?: string;
}

/**
 * One rsp per trigger mode for a whole test file, in front of one scripted
 * backend per pool, each pool routed by its own host: starting rsp once per
 * mode instead of once per test keeps the file fast on a 2-core machine.
 * Everything is stopped after the file's last test (test.after.always).
 */
export function sharedRsp(spec: FixtureSpec): (mode: Mode) => Promise<Fixture> {
  const cleanups: (() => void | Promise<void>)[] = [];
  const owner = { teardown: (fn: () => void | Promise<void>) => cleanups.push(fn) } as unknown as ExecutionContext;
  const started = new Map<Mode, Promise<Fixture>>();
  test.after.always(async () => {
    for (const fn of cleanups.reverse()) await fn();
  });
  return (mode) => {
    let f = started.get(mode);
    if (f === undefined) {
      f = (async () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rsp-http-'));
        cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
        const b: Record<string, ScriptedBackend> = {};
        for (const [name, serve] of Object.entries(spec.pools)) b[name] = await scriptedBackend(owner, serve);
        const at: Record<string, string> = {};
        for (const [name, be] of Object.entries(b)) at[name] = `"127.0.0.1:${be.port}"`;
        for (const [name, address] of Object.entries(spec.addresses ?? {})) at[name] = await address(owner);
        const pools = Object.entries(at).map(([name, a]) => `  ${name} = { ${a}, ${spec.poolOptions?.[name] ?? ''} },`).join('\n');
        const routes = Object.keys(at).map((name) => `  ["${name}.test"] = "${name}",`).join('\n');
        const config = `listenPort = "0"\nlistenAddress = "127.0.0.1"\nmode = "http"\ntriggerMode = "${mode}"
backends = {\n${pools}\n}
routes = {\n${spec.routes ?? ''}\n${routes}\n  default = "${spec.fallback ?? Object.keys(b)[0]}",\n}
${(spec.extra ?? '').replaceAll('$DIR', dir)}\n`;
        const rsp = await startRspLua(owner, config);
        return { rsp, b, dir, owner };
      })();
      started.set(mode, f);
    }
    return f;
  };
}

/** "127.0.0.1:PORT" where connections are refused (a bound socket that does not listen). */
export async function refusedAddress(owner: ExecutionContext): Promise<string> {
  return `"127.0.0.1:${refusingPort(owner).port}"`;
}

/** Two members, both refusing connections. */
export async function twoRefused(owner: ExecutionContext): Promise<string> {
  return `${await refusedAddress(owner)}, ${await refusedAddress(owner)}`;
}

/**
 * "127.0.0.1:PORT" where a connect hangs: a listener whose accept queue is
 * full (never accepted), so the kernel drops new SYNs.
 */
export async function hangingAddress(owner: ExecutionContext): Promise<string> {
  const fd = createAndBind('127.0.0.1', 0, 1);
  owner.teardown(() => {
    libc.close(fd);
  });
  const port = localAddress(fd)!.port;
  for (let i = 0; i < 2; i++) {
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => {});
    owner.teardown(() => {
      s.destroy();
    });
    await once(s, 'connect', 'a filler of the accept queue to connect');
  }
  return `"127.0.0.1:${port}"`;
}
