// The Lua configuration file, run by fengari and validated once, here, into
// plain typed data. Workers receive that data, never Lua.
//
// The C rsp's three globals work unchanged:
//   listenPort = "8000"  backendAddress = "127.0.0.1"  backendPort = "8888"
// Every other option has a default; OPTIONS below is the one list of them
// (the README's config reference follows it, and a test keeps the two equal).
// A global rsp does not know is an error, never silently ignored: a typo
// must not start rsp with a default instead of what was meant.
import * as fs from 'node:fs';
import { lookup, Resolver } from 'node:dns/promises';
import { isIP, isIPv4 } from 'node:net';
import * as os from 'node:os';
import type * as Fengari from 'fengari';
import { checkKnownNames, ConfigError } from './configcheck';
import { expandNames, type NamedMember } from './dns';
import { resolve as resolvePath } from 'node:path';
import { DEFAULT_POOL, isTable, parseHostPort, parseLimits, parseListeners, parsePools, parseRoutes, parseTrustedProxies, poolFor, readLuaValue, singlePool, type HttpLimits, type ListenerConfig, type ListenerMode, type LuaValue, type MemberConfig, type PoolConfig, type RoutesConfig } from './pools';

export type TriggerMode = 'level' | 'edge';

export interface Config {
  listenAddress: string;
  listenPort: number;
  backlog: number;
  backendAddress: string;
  backendPort: number;
  resolver: string;
  resolveInterval: number;
  triggerMode: TriggerMode;
  maxEvents: number;
  readBufferSize: number;
  readBudget: number;
  acceptBudget: number;
  highWaterMark: number;
  lowWaterMark: number;
  /** Zero copy with splice(2) (src/splice.ts). */
  zeroCopy: 'auto' | 'on' | 'off';
  connectTimeout: number;
  drainTimeout: number;
  drainDelay: number;
  idleTimeout: number;
  /** 0 in the file: rsp derives it from the open-files limit at start-up (src/fdlimit.ts). */
  maxConnections: number;
  readPolicy: 'auto' | 'drain' | 'eagain' | 'once';
  acceptPolicy: 'drain' | 'once';
  epolloutPolicy: 'auto' | 'queued' | 'always';
  rdhup: boolean;
  trace: boolean;
  /** listenPort's listener takes a PROXY protocol header first (per listener in `listeners`). */
  acceptProxy: boolean;
  /** The pool listenPort's listener sends to ("" when not set). */
  backend: string;
  /** From `backends`, or the one pool of backendAddress/backendPort. */
  pools: PoolConfig[];
  /** From `listeners`, or the one of listenAddress/listenPort. */
  listeners: ListenerConfig[];
  /** Where one line per connection goes: a file, "-" for stdout, "" for nowhere. */
  accessLog: string;
  accessLogFormat: 'combined' | 'json';
  /** The stats listener (/stats, /metrics, /healthz, /), or null. */
  stats: { address: string; port: number } | null;
  /** Members given by name, each now one member per address; followed in DNS by src/dns.ts. */
  names: NamedMember[];

  // HTTP mode (docs/http.md)
  /** The listeners' mode unless one says its own (ListenerConfig.mode is the one to use). */
  mode: ListenerMode;
  /** Host -> pool for HTTP listeners, or null: each HTTP listener sends to its `backend`. */
  routes: RoutesConfig | null;
  /** The config defines `route(req)`: each worker loads it with LuaRoute.load(configPath). */
  routeHook: boolean;
  /** The config file's absolute path (a worker runs it again for `route`). */
  configPath: string;
  limits: HttpLimits;
  /** CIDRs ("10.0.0.0/8") whose X-Forwarded-For is kept and appended to; from anyone else it is replaced. */
  trustedProxies: string[];
  /** Set X-Forwarded-Proto and X-Forwarded-Host (X-Forwarded-For is always set). */
  xForwarded: boolean;
  /** ms for a client's request head to arrive whole (else 408); 0: no limit. */
  requestHeadTimeout: number;
  /** ms an idle keep-alive client connection is kept; 0: no limit. */
  keepAliveTimeout: number;
  /** ms for the backend's first response byte (else 504); 0: no limit. */
  backendTimeout: number;
  /** Reactor threads; 0 in the file: one per CPU rsp may use (os.availableParallelism(), set at start-up). */
  workers: number;
  /** How the workers share a listener's connections. */
  acceptMode: 'reuseport' | 'shared' | 'shared-herd';
}

export { ConfigError, checkKnownNames, didYouMean } from './configcheck';
export type { HttpLimits, ListenerConfig, ListenerMode, MemberConfig, PoolConfig, RoutesConfig } from './pools';

type Kind =
  | { type: 'table'; example: string }
  | { type: 'path' }
  | { type: 'name' }
  | { type: 'port'; min: 0 | 1 }
  | { type: 'host' }
  | { type: 'resolver' }
  | { type: 'int'; min: number; max: number }
  | { type: 'enum'; values: string[] }
  | { type: 'bool' };

interface Option {
  name: string;
  kind: Kind;
  /** undefined: required (unless the table named by `unless` is set). */
  default?: string | number | boolean;
  unless?: 'backends' | 'listeners';
  doc: string;
  /** A setting that costs a lot: one line at start-up says what it costs. */
  warning?: { when: (config: Config) => boolean; text: string };
}

const MiB = 1024 * 1024;

/** Reads more than once per event: edge mode's "auto", or "drain"/"eagain" in either mode. */
function readsUntilEmpty(config: Config): boolean {
  return config.readPolicy === 'drain' || config.readPolicy === 'eagain' || (config.readPolicy === 'auto' && config.triggerMode === 'edge');
}

export const OPTIONS: Option[] = [
  { name: 'listenPort', kind: { type: 'port', min: 0 }, unless: 'listeners', doc: 'Port to accept clients on. "0" picks a free port; the start line reports it. Not with `listeners`.' },
  { name: 'listenAddress', kind: { type: 'host' }, default: '0.0.0.0', doc: 'Address to listen on. "::" listens on IPv6 and IPv4; "::1" or "127.0.0.1" on loopback only.' },
  { name: 'backendAddress', kind: { type: 'host' }, unless: 'backends', doc: 'Backend host: an IPv4 or IPv6 address, or a name (one member per address it has, followed in DNS: see resolveInterval). Must not be rsp\'s own listener. With backendPort, a pool of one member (named "default"); not with `backends`.' },
  { name: 'backendPort', kind: { type: 'port', min: 1 }, unless: 'backends', doc: 'Backend port (1-65535).' },
  { name: 'backends', kind: { type: 'table', example: '{ app = { "10.0.0.1:8080", { "10.0.0.2:8080", weight = 3 }, balance = "leastconn" } }' }, doc: 'Pools of backends by name. Each is a list of members - "host:port" ("[::1]:5432" for IPv6; a name becomes one member per address, followed in DNS: see resolveInterval) or { "host:port", weight = 1, backup = false, maxConnections = 0 } - and options: balance = "roundrobin", "leastconn", "random" or "hash" (by client address), maxFails = 1 and failTimeout = 10000 (that many failed connects within failTimeout ms take a member out for failTimeout ms), retries = 2 (other members tried after a failed connect), slowStart = 0 (ms to ramp a member up to its weight), check = { interval = 2000, timeout = 1000, rise = 2, fall = 3, http = "/health" } (active checks; without http a TCP connect), sendProxy = "v1" or "v2" (a PROXY protocol header to each member before the client\'s bytes), and in HTTP mode keepalive = 32 (idle connections kept per member for the next requests; 0: none) and keepaliveTimeout = 60000 (ms an idle one is kept). See docs/balancing.md.' },
  { name: 'backend', kind: { type: 'name' }, default: '', doc: 'The pool listenPort\'s listener sends to; needed only when `backends` has several.' },
  { name: 'listeners', kind: { type: 'table', example: '{ { port = "8000", address = "0.0.0.0", backend = "app" } }' }, doc: 'Several listeners instead of listenPort/listenAddress: a list of { port = "8000", address = "0.0.0.0", backend = "app", maxConnections = 0 } (address defaults to "0.0.0.0"; backend may be left out when there is one pool; maxConnections: the most clients of this listener at once, 0 for only the global maxConnections; acceptProxy = true: see acceptProxy; mode = "http": see mode).' },
  { name: 'acceptProxy', kind: { type: 'bool' }, default: false, doc: 'Every connection to listenPort must start with a PROXY protocol header (v1 or v2, as HAProxy\'s send-proxy and nginx\'s proxy_protocol send it); the client address in it is the one rsp logs and hashes on. A connection without a valid one is reset. With `listeners`, say it per listener: { port = "8000", acceptProxy = true }.' },
  { name: 'resolver', kind: { type: 'resolver' }, default: '', doc: 'DNS server that resolves the names in listenAddress (at start-up), backendAddress and backends (at start-up and every resolveInterval), as "address" or "address:port" ("[::1]:53" for IPv6; port 53 if not given); then /etc/hosts is not read. "": the system resolver (getaddrinfo).' },
  { name: 'resolveInterval', kind: { type: 'int', min: 0, max: 86_400_000 }, default: 5000, doc: 'Milliseconds between lookups of the backend members given by name: each becomes one member per A/AAAA record, new addresses join the pool and vanished ones leave it once their connections end; a failing lookup keeps the last good answer (one line per episode). Members given as IP addresses are never resolved. 0: resolve once, at start-up.' },
  { name: 'triggerMode', kind: { type: 'enum', values: ['level', 'edge'] }, default: 'level', doc: 'How epoll reports readiness: "level" (reported while ready) or "edge" (reported when it changes, so every handler drains what is there: see readPolicy).' },
  { name: 'backlog', kind: { type: 'int', min: 1, max: 65535 }, default: 4096, doc: 'listen() backlog: connections the kernel holds until accepted (capped by net.core.somaxconn).' },
  { name: 'maxEvents', kind: { type: 'int', min: 1, max: 65536 }, default: 256, doc: 'Most events taken from one epoll_wait call.' },
  { name: 'readBufferSize', kind: { type: 'int', min: 1024, max: 16 * MiB }, default: 65536, doc: 'Bytes asked for by each read(); one buffer of this size per worker.' },
  {
    name: 'readBudget', kind: { type: 'int', min: 0, max: 1 << 20 }, default: 16,
    doc: 'Most reads per event for one connection when the read policy reads until empty ("drain", "eagain", or edge mode\'s "auto"); the rest waits, on the ready list (edge) or for the next epoll_wait (level), while the other connections get their turn. 0: no limit (the C rsp: one busy connection can starve the others).',
    warning: {
      when: (c) => c.readBudget === 0 && readsUntilEmpty(c),
      text: 'Warning: readBudget = 0 lets one busy connection read without limit while every other connection waits (the starvation of the C rsp); for experiments only',
    },
  },
  { name: 'acceptBudget', kind: { type: 'int', min: 1, max: 1 << 20 }, default: 64, doc: 'Connections accepted per listener event before other handlers get a turn.' },
  { name: 'highWaterMark', kind: { type: 'int', min: 1, max: 1 << 30 }, default: MiB, doc: 'Bytes queued for one connection before rsp stops reading from its peer (backpressure).' },
  { name: 'lowWaterMark', kind: { type: 'int', min: 0, max: 1 << 30 }, default: 256 * 1024, doc: 'Queued bytes at which reading from the peer starts again. Must be below highWaterMark; if only highWaterMark is set, at or below this default, lowWaterMark becomes a quarter of it.' },
  { name: 'zeroCopy', kind: { type: 'enum', values: ['auto', 'on', 'off'] }, default: 'auto', doc: 'How bytes cross rsp: "off" copies them (read() into rsp, write() out of it); "on" moves each direction through a pipe of its own with splice(2), without copying them into rsp, from the second read of that direction on; "auto" does so once one read of a direction brings a full 64 KB (readBufferSize, if smaller): a bulk transfer; request/response exchanges are cheaper to copy. A pipe costs two file descriptors: the default maxConnections leaves room for them, and a connection that cannot have one is copied. See docs/lab.md, "copy vs splice".' },
  { name: 'trace', kind: { type: 'bool' }, default: false, doc: 'Print every epoll_wait, event and system call as it happens (also `rsp --trace`). For watching epoll, not for production.' },
  {
    name: 'readPolicy', kind: { type: 'enum', values: ['auto', 'drain', 'eagain', 'once'] }, default: 'auto',
    doc: 'How much one readiness event reads, in either trigger mode. "drain" reads until EAGAIN or a short read (a stream socket is empty after a short read: epoll(7); not at a TCP urgent mark, nor after EPOLLERR), within readBudget. "eagain" reads until EAGAIN, always one read more. "once" reads once and waits for epoll to report the socket again: in edge mode an experiment that stalls connections. "auto": "once" in level mode, "drain" in edge mode.',
    warning: {
      when: (c) => c.readPolicy === 'once' && c.triggerMode === 'edge',
      text: 'Warning: readPolicy = "once" in edge mode reads once per edge, so a connection with more bytes waiting stalls until its peer sends again; for experiments only',
    },
  },
  {
    name: 'acceptPolicy', kind: { type: 'enum', values: ['drain', 'once'] }, default: 'drain',
    doc: '"drain" accepts until EAGAIN (within acceptBudget). "once" accepts one connection per event: an experiment, edge mode then strands connections in the backlog.',
    warning: {
      when: (c) => c.acceptPolicy === 'once' && c.triggerMode === 'edge',
      text: 'Warning: acceptPolicy = "once" in edge mode accepts one connection per edge and leaves the rest in the backlog until another client connects; for experiments only',
    },
  },
  {
    name: 'epolloutPolicy', kind: { type: 'enum', values: ['auto', 'queued', 'always'] }, default: 'auto',
    doc: 'When EPOLLOUT is registered: "queued" only while bytes are queued, "always" for the connection\'s life (free in edge mode, a wake-up per turn in level mode). "auto": queued for level, always for edge.',
    warning: {
      when: (c) => c.epolloutPolicy === 'always' && c.triggerMode === 'level',
      text: 'Warning: epolloutPolicy = "always" in level mode wakes rsp on every loop turn for every connection (a full core with one idle connection); for experiments only',
    },
  },
  { name: 'rdhup', kind: { type: 'bool' }, default: true, doc: 'Register EPOLLRDHUP and treat a short read with it as the end of the stream, saving the read() that returns 0.' },
  { name: 'idleTimeout', kind: { type: 'int', min: 0, max: 86_400_000 }, default: 600_000, doc: 'Milliseconds a proxied connection may go without a byte in either direction before both sides are closed (as nginx stream\'s proxy_timeout); 0: never.' },
  { name: 'connectTimeout', kind: { type: 'int', min: 0, max: 3_600_000 }, default: 5000, doc: 'Milliseconds a backend connect may take before the client is closed; 0 waits forever.' },
  { name: 'drainTimeout', kind: { type: 'int', min: 0, max: 86_400_000 }, default: 30000, doc: 'On SIGTERM or SIGINT rsp drains: it stops accepting and lets open connections finish; those still open after this many milliseconds are reset (never closed with a FIN that would make a cut stream look complete). 0: no drain, reset them at once. A second SIGTERM/SIGINT, or SIGQUIT, stops at once.' },
  { name: 'drainDelay', kind: { type: 'int', min: 0, max: 3_600_000 }, default: 0, doc: 'Milliseconds rsp keeps accepting after SIGTERM before it closes its listeners, while /healthz already answers 503, so a load balancer or Kubernetes stops sending first.' },
  { name: 'accessLog', kind: { type: 'path' }, default: '', doc: 'One line per connection (client, pool, member, bytes each way, duration, how it ended) appended to this file; "-" for stdout; "": none. SIGUSR1 reopens it (for logrotate).' },
  { name: 'accessLogFormat', kind: { type: 'enum', values: ['combined', 'json'] }, default: 'combined', doc: '"combined": one text line in the spirit of nginx\'s log formats; "json": one JSON object per line (for Loki, Elasticsearch).' },
  { name: 'stats', kind: { type: 'table', example: '{ listen = "127.0.0.1:8404" }' }, doc: 'A listener that serves rsp\'s state over HTTP: /stats (JSON), /metrics (Prometheus text format), /healthz (200 while serving) and / (an HTML status page). Keep it on loopback or a private address.' },
  { name: 'maxConnections', kind: { type: 'int', min: 0, max: 10_000_000 }, default: 0, doc: 'Most clients connected at once, counted from accept to the last close of the client and its backend. At the limit rsp stops accepting (the listeners leave the epoll set) and new clients wait in the listen backlog until one leaves; one line is logged when it is reached and one when accepting again. 0: derived from the open-files limit, which rsp raises to the hard limit at start-up: (soft limit - 64 - listening sockets - pool members) / 2, as every client costs a backend socket too; / 3 with zeroCopy = "auto" (the default: room for a pipe for every second client) and / 6 with "on" (two pipes each). A listener can have its own limit too: `listeners = { { port = "8000", maxConnections = 100 } }`. With several workers both are limits for the whole process, each worker holding an equal share (at least 1): see "Workers on every core". See "Running rsp on a server".' },
  { name: 'workers', kind: { type: 'int', min: 0, max: 1024 }, default: 0, doc: 'Reactor threads, each with its own epoll set, its own share of the connections and its own copy of the pools. 0: one per CPU rsp may use (os.availableParallelism()). With `trace` rsp runs one worker (one trace to read). Needs a restart to change. See "Workers on every core".' },
  {
    name: 'acceptMode', kind: { type: 'enum', values: ['reuseport', 'shared', 'shared-herd'] }, default: 'reuseport',
    doc: 'How the workers share each listener. "reuseport": one listening socket per worker, bound with SO_REUSEPORT, and the kernel spreads new connections over them. "shared": one listening socket in every worker\'s epoll set with EPOLLEXCLUSIVE, so a new connection wakes one worker (or a few), not all. "shared-herd": the same without EPOLLEXCLUSIVE, every worker woken for every connection (the thundering herd: for the lab only). Needs a restart to change.',
    warning: {
      when: (c) => c.acceptMode === 'shared-herd' && c.workers !== 1,
      text: 'Warning: acceptMode = "shared-herd" wakes every worker for every new connection (the thundering herd); for experiments only',
    },
  },
  { name: 'mode', kind: { type: 'enum', values: ['tcp', 'http'] }, default: 'tcp', doc: '"tcp": the bytes of each client go to one backend connection, unread. "http": rsp reads each HTTP/1.1 request, routes it (routes, route), and forwards it over a kept-alive backend connection. Per listener too: listeners = { { port = "80", mode = "http" } }. See docs/http.md.' },
  { name: 'routes', kind: { type: 'table', example: '{ ["example.com"] = "web", ["*.api.example.com"] = "api", default = "web" }' }, doc: 'HTTP mode: the pool of each request by its host (Host, or the authority of an absolute URI; port, case and a trailing dot ignored). An exact host first, then the longest matching wildcard ("*.example.com" matches a.example.com and a.b.example.com, not example.com), then default; without default, the only pool when backends has one, else a host no route names is answered 404. Without routes, an HTTP listener sends every request to its backend.' },
  { name: 'limits', kind: { type: 'table', example: '{ requestLine = 8192, headerBytes = 32768, headers = 100, body = 0 }' }, doc: 'HTTP mode: the most bytes of a request line (else 414), of the header fields (else 431), the most header fields (else 431), and the most bytes of a request body (else 413; 0: no limit). Each may be left out: these are the defaults.' },
  { name: 'trustedProxies', kind: { type: 'table', example: '{ "10.0.0.0/8", "::1/128", "127.0.0.1" }' }, doc: 'HTTP mode: the clients (CIDRs, IPv4 or IPv6; an address alone is one host) whose X-Forwarded-For rsp keeps and appends the client address to; from any other client it is replaced, so nobody can forge an address into the backend\'s logs. None by default.' },
  { name: 'xForwarded', kind: { type: 'bool' }, default: true, doc: 'HTTP mode: set X-Forwarded-Proto and X-Forwarded-Host on each request (X-Forwarded-For is always set: see trustedProxies).' },
  { name: 'requestHeadTimeout', kind: { type: 'int', min: 0, max: 3_600_000 }, default: 10_000, doc: 'HTTP mode: milliseconds a client has to send a whole request head, from its first byte (else 408 and the connection is closed; nginx\'s client_header_timeout). 0: no limit.' },
  { name: 'keepAliveTimeout', kind: { type: 'int', min: 0, max: 86_400_000 }, default: 60_000, doc: 'HTTP mode: milliseconds an idle keep-alive client connection (between requests) is kept open. 0: no limit (idleTimeout still applies).' },
  { name: 'backendTimeout', kind: { type: 'int', min: 0, max: 86_400_000 }, default: 60_000, doc: 'HTTP mode: milliseconds from a request sent to the backend to its first response byte (else 504; nginx\'s proxy_read_timeout). 0: no limit.' },
];

/** Globals that are not options: the HTTP routing function route(req) (src/http/luaroute.ts). */
export const RESERVED_GLOBALS = ['route'];

/** How long a config may run: a config that never finishes must not hang start-up. */
export const CONFIG_TIME_LIMIT_MS = 1000;

const HELPER_HINT = 'helper values in the config must be local';

/** The warning lines a config's expensive experiment settings print at start-up. */
export function configWarnings(config: Config): string[] {
  return OPTIONS.flatMap((o) => (o.warning !== undefined && o.warning.when(config) ? [o.warning.text] : []));
}

// ---- values --------------------------------------------------------------

type Raw =
  | { type: 'nil' }
  | { type: 'string'; value: string }
  | { type: 'number'; value: number; integer: boolean }
  | { type: 'boolean'; value: boolean }
  | { type: 'other'; name: string };

function describe(raw: Raw): string {
  if (raw.type === 'nil') return 'nothing (not set)';
  if (raw.type === 'string') return JSON.stringify(raw.value);
  if (raw.type === 'number' || raw.type === 'boolean') return String(raw.value);
  return `a ${raw.name}`;
}

/** What a kind accepts, in the words of the messages. */
function expected(kind: Kind): string {
  switch (kind.type) {
    case 'table': return `a table like ${kind.example}`;
    case 'path': return 'a file path, "-" or "" (a string)';
    case 'name': return 'a pool name (a string)';
    case 'port': return 'a port (a string or a number)';
    case 'host': return 'an address or host name (a string)';
    case 'resolver': return 'a DNS server address (a string: "address" or "address:port")';
    case 'int': return `a whole number from ${kind.min} to ${kind.max}`;
    case 'enum': return kind.values.map((v) => JSON.stringify(v)).join(' or ');
    case 'bool': return 'true or false';
  }
}

/** "1.2.3.4", "1.2.3.4:53", "::1", "[::1]:53", or "" (the system resolver). */
function isResolverAddress(text: string): boolean {
  if (text === '' || isIP(text)) return true;
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(text);
  if (m === null || Number(m[3]) < 1 || Number(m[3]) > 65535) return false;
  return m[1] !== undefined ? isIP(m[1]) === 6 : isIPv4(m[2]);
}

function checkOption(option: Option, raw: Raw): string | number | boolean {
  const { name, kind } = option;
  if (raw.type === 'nil') {
    if (option.default !== undefined) return option.default;
    throw new ConfigError(`${name} is required: ${expected(kind)}`);
  }
  const wrong = (): ConfigError => new ConfigError(`${name} must be ${expected(kind)}, got ${describe(raw)}`);
  switch (kind.type) {
    case 'table':
      throw wrong(); // a table is read by readTableGlobal; anything else lands here
    case 'path':
    case 'name':
      if (raw.type !== 'string') throw wrong();
      return raw.value.trim(); // "": not set
    case 'port': {
      if (raw.type !== 'string' && raw.type !== 'number') throw wrong();
      const text = String(raw.value).trim();
      const port = /^\d+$/.test(text) ? Number(text) : NaN;
      if (!(port >= kind.min && port <= 65535)) throw new ConfigError(`${name} must be a port number (${kind.min}-65535), got ${describe(raw)}`);
      return port;
    }
    case 'host':
      if (raw.type !== 'string' || raw.value.trim() === '') throw wrong();
      return raw.value.trim();
    case 'resolver':
      if (raw.type !== 'string' || !isResolverAddress(raw.value.trim())) throw wrong();
      return raw.value.trim();
    case 'enum':
      if (raw.type !== 'string' || !kind.values.includes(raw.value)) throw wrong();
      return raw.value;
    case 'bool':
      if (raw.type !== 'boolean') throw wrong();
      return raw.value;
    case 'int': {
      const n = raw.type === 'number' ? raw.value : raw.type === 'string' && /^\s*\d+\s*$/.test(raw.value) ? Number(raw.value) : NaN;
      if (!Number.isInteger(n) || n < kind.min || n > kind.max) throw wrong();
      return n;
    }
  }
}

// ---- running the file ----------------------------------------------------

// The parts of fengari's API used only here (types/fengari.d.ts has the rest).
type State = object;
type LuaApi = typeof Fengari.lua & {
  LUA_MASKCOUNT: number;
  lua_rawget(L: State, idx: number): number;
  lua_pushstring(L: State, s: Uint8Array): void;
  lua_pushcfunction(L: State, fn: (L: State) => number): void;
  lua_setfield(L: State, idx: number, k: Uint8Array): void;
  lua_concat(L: State, n: number): void;
  lua_error(L: State): never;
  lua_sethook(L: State, fn: ((L: State) => void) | null, mask: number, count: number): void;
};
type AuxApi = typeof Fengari.lauxlib & { luaL_where(L: State, level: number): void };

// fengari is required when a config runs (parseConfig), not when this module
// loads: the main thread uses this module's checks (itselfReason) but runs the
// config on a thread of its own (configthread.ts), and a worker uses its
// types only; neither should carry fengari's heap (BENCHMARKS.md, "Where the
// memory goes").
let lua: typeof Fengari.lua;
let lauxlib: typeof Fengari.lauxlib;
let lualib: typeof Fengari.lualib;
let to_luastring: typeof Fengari.to_luastring;
let luaApi: LuaApi;
let auxApi: AuxApi;

const systemMessages: Record<string, string> = {
  ENOENT: 'No such file or directory',
  EACCES: 'Permission denied',
  EISDIR: 'Is a directory',
  ENOTDIR: 'Not a directory',
};

let standardGlobals: Set<string> | undefined;

/** The globals a fresh state has (print, string, os, ...): those the config did not set. */
function globalsOfAFreshState(): Set<string> {
  if (standardGlobals === undefined) {
    const L = lauxlib.luaL_newstate();
    lualib.luaL_openlibs(L);
    standardGlobals = new Set(globalNames(L));
  }
  return standardGlobals;
}

/** The string keys of the globals table, read raw (no metamethod runs). */
function globalNames(L: State): string[] {
  const names: string[] = [];
  lua.lua_rawgeti(L, lua.LUA_REGISTRYINDEX, lua.LUA_RIDX_GLOBALS);
  lua.lua_pushnil(L);
  while (lua.lua_next(L, -2) !== 0) {
    lua.lua_pop(L, 1); // the value; keep the key for lua_next
    if (lua.lua_type(L, -1) === lua.LUA_TSTRING) names.push(lua.lua_tojsstring(L, -1));
  }
  lua.lua_pop(L, 1);
  return names;
}

/** One global, read raw: a metatable on _G can neither supply it nor raise (outside a pcall that would be a PANIC). */
function readGlobal(L: State, name: string): Raw {
  lua.lua_rawgeti(L, lua.LUA_REGISTRYINDEX, lua.LUA_RIDX_GLOBALS);
  luaApi.lua_pushstring(L, to_luastring(name));
  const type = luaApi.lua_rawget(L, -2);
  let raw: Raw;
  if (type === lua.LUA_TNIL) raw = { type: 'nil' };
  else if (type === lua.LUA_TSTRING) raw = { type: 'string', value: lua.lua_tojsstring(L, -1) };
  else if (type === lua.LUA_TNUMBER) raw = { type: 'number', value: lua.lua_tonumber(L, -1), integer: lua.lua_isinteger(L, -1) };
  else if (type === lua.LUA_TBOOLEAN) raw = { type: 'boolean', value: lua.lua_toboolean(L, -1) };
  else raw = { type: 'other', name: typeName(type) };
  lua.lua_pop(L, 2);
  return raw;
}

function typeName(type: number): string {
  const names: Record<number, string> = {
    [lua.LUA_TBOOLEAN]: 'boolean',
    [lua.LUA_TTABLE]: 'table',
    [lua.LUA_TFUNCTION]: 'function',
  };
  return names[type] ?? 'value';
}

/** os.exit would end rsp silently with whatever status the config chose. */
function forbidOsExit(L: State): void {
  lua.lua_getglobal(L, to_luastring('os'));
  luaApi.lua_pushcfunction(L, (L2) => {
    auxApi.luaL_where(L2, 1); // "config.lua:LINE: " of the caller
    luaApi.lua_pushstring(L2, to_luastring('os.exit is not allowed in a config'));
    luaApi.lua_concat(L2, 2);
    return luaApi.lua_error(L2);
  });
  luaApi.lua_setfield(L, -2, to_luastring('exit'));
  lua.lua_pop(L, 1);
}

/** Run the chunk on the stack; false if it ran past the time limit. */
function runBounded(L: State): { status: number; finished: boolean } {
  const deadline = Date.now() + CONFIG_TIME_LIMIT_MS;
  let finished = true;
  const hook = (L2: State): void => {
    if (Date.now() < deadline) return;
    finished = false;
    // From now on at every instruction, so a pcall in the config cannot
    // catch the error and carry on.
    luaApi.lua_sethook(L2, hook, luaApi.LUA_MASKCOUNT, 1);
    luaApi.lua_pushstring(L2, to_luastring('did not finish'));
    luaApi.lua_error(L2);
  };
  luaApi.lua_sethook(L, hook, luaApi.LUA_MASKCOUNT, 10_000);
  const status = lua.lua_pcall(L, 0, 0, 0);
  luaApi.lua_sethook(L, null, 0, 0);
  return { status, finished };
}

/**
 * Run a config file in a fresh Lua state with the protections every run gets
 * (no os.exit, a time limit, a byte order mark skipped) and return the state.
 * parseConfig reads its globals; each worker runs the file again for `route`.
 */
export function runConfigFile(path: string): { L: State; source: Buffer } {
  // fengari is loaded only when a config runs (src/configthread.ts runs it on a thread of its own).
  ({ lua, lauxlib, lualib, to_luastring } = require('fengari') as typeof Fengari);
  luaApi = lua as LuaApi;
  auxApi = lauxlib as AuxApi;
  let source: Buffer;
  try {
    source = fs.readFileSync(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? '';
    throw new ConfigError(`cannot open ${path}: ${systemMessages[code] ?? code}`);
  }
  // A UTF-8 byte order mark (some Windows editors write one) is not Lua.
  if (source[0] === 0xef && source[1] === 0xbb && source[2] === 0xbf) source = source.subarray(3);
  const L = lauxlib.luaL_newstate();
  lualib.luaL_openlibs(L);
  forbidOsExit(L);
  // The chunk name "@path" makes Lua's messages read "path:LINE: ...".
  if (lauxlib.luaL_loadbuffer(L, source, source.length, to_luastring(`@${path}`)) !== lua.LUA_OK) {
    throw new ConfigError(lua.lua_tojsstring(L, -1));
  }
  const { status, finished } = runBounded(L);
  if (!finished) throw new ConfigError(`${path} did not finish (an endless loop?)`);
  if (status !== lua.LUA_OK) {
    const type = lua.lua_type(L, -1);
    throw new ConfigError(type === lua.LUA_TSTRING || type === lua.LUA_TNUMBER ? lua.lua_tojsstring(L, -1) : 'the config raised an error');
  }
  return { L, source };
}

/** Run the Lua file and return every option it set, validated, with defaults filled in. */
export function parseConfig(path: string): Config {
  const { L, source } = runConfigFile(path);

  // Unknown names first: `listenport = "8000"` is a typo, not a missing listenPort.
  const standard = globalsOfAFreshState();
  const text = source.toString('utf8');
  const firstUse = (name: string): number => {
    const at = text.search(new RegExp(`\\b${name.replace(/[^\w]/g, '\\$&')}\\b`));
    return at === -1 ? Infinity : at;
  };
  const set = globalNames(L).filter((n) => !standard.has(n)).sort((a, b) => firstUse(a) - firstUse(b));
  checkKnownNames(set, [...OPTIONS.map((o) => o.name), ...RESERVED_GLOBALS], { hint: HELPER_HINT });

  const config: Record<string, unknown> = {};
  const given = new Set<string>();
  const tables = new Map<string, LuaValue>();
  for (const option of OPTIONS) {
    if (option.kind.type === 'table') {
      const value = readTableGlobal(L, option.name);
      if (value !== undefined) {
        given.add(option.name);
        tables.set(option.name, value);
      }
    }
  }
  for (const option of OPTIONS) {
    if (option.kind.type === 'table') continue;
    const raw = readGlobal(L, option.name);
    if (raw.type !== 'nil') given.add(option.name);
    if (raw.type === 'nil' && option.unless !== undefined && tables.has(option.unless)) continue;
    config[option.name] = checkOption(option, raw);
  }

  const result = config as unknown as Config;
  result.configPath = resolvePath(path);
  const route = readGlobal(L, 'route');
  if (route.type !== 'nil' && !(route.type === 'other' && route.name === 'function')) {
    throw new ConfigError(`route must be a function (function route(req) ... end), got ${describe(route)}`);
  }
  result.routeHook = route.type !== 'nil';
  topology(result, given, tables);
  http(result, tables);
  if (result.lowWaterMark >= result.highWaterMark && !given.has('lowWaterMark')) {
    // Only highWaterMark was set, at or below the default low-water mark.
    result.lowWaterMark = Math.floor(result.highWaterMark / 4);
  }
  if (result.lowWaterMark >= result.highWaterMark) {
    const which = given.has('highWaterMark') ? '' : ' (the default: set highWaterMark above lowWaterMark)';
    throw new ConfigError(`lowWaterMark (${result.lowWaterMark}) must be below highWaterMark (${result.highWaterMark})${which}`);
  }
  return result;
}

/** A table global as plain data (undefined when not set; a non-table is an error). */
function readTableGlobal(L: State, name: string): LuaValue | undefined {
  lua.lua_rawgeti(L, lua.LUA_REGISTRYINDEX, lua.LUA_RIDX_GLOBALS);
  luaApi.lua_pushstring(L, to_luastring(name));
  const type = luaApi.lua_rawget(L, -2);
  try {
    if (type === lua.LUA_TNIL) return undefined;
    if (type !== lua.LUA_TTABLE) {
      const option = OPTIONS.find((o) => o.name === name)!;
      throw new ConfigError(`${name} must be ${expected(option.kind)}, got ${describe(readGlobal(L, name))}`);
    }
    try {
      return readLuaValue(L);
    } catch (error) {
      if (error instanceof ConfigError) throw new ConfigError(`${name}: ${error.message}`);
      throw error;
    }
  } finally {
    lua.lua_pop(L, 2);
  }
}

/** `stats = { listen = "127.0.0.1:8404" }` */
function statsListener(v: LuaValue | undefined): { address: string; port: number } | null {
  if (v === undefined) return null;
  if (!isTable(v) || v.list.length > 0) throw new ConfigError('stats must be a table like { listen = "127.0.0.1:8404" }');
  checkKnownNames([...v.keys.keys()], ['listen'], { prefix: 'stats.' });
  const listen = v.keys.get('listen');
  if (typeof listen !== 'string') throw new ConfigError('stats.listen is required: "address:port", e.g. "127.0.0.1:8404"');
  const { host, port } = parseHostPort('stats.listen', listen.trim(), 0); // 0: a free port, reported at start-up
  return { address: host, port };
}

/** Pools and listeners: from the tables, or from the C rsp's globals. */
function topology(config: Config, given: Set<string>, tables: Map<string, LuaValue>): void {
  config.stats = statsListener(tables.get('stats'));
  const backends = tables.get('backends');
  if (backends !== undefined) {
    const both = ['backendAddress', 'backendPort'].filter((n) => given.has(n));
    if (both.length > 0) throw new ConfigError(`${both.join(' and ')} and backends both set: the members go in backends`);
    config.pools = parsePools(backends);
  } else {
    config.pools = [singlePool(config.backendAddress, config.backendPort)];
  }
  const listeners = tables.get('listeners');
  if (listeners !== undefined) {
    const both = ['listenPort', 'listenAddress', 'backend', 'acceptProxy'].filter((n) => given.has(n));
    if (both.length > 0) throw new ConfigError(`${both.join(' and ')} and listeners both set: with listeners, each one says its port, address and backend`);
  }
  const parsed = listeners !== undefined
    ? parseListeners(listeners, '0.0.0.0').map((l, i) => ({ ...l, mode: l.mode ?? config.mode, where: `listeners[${i + 1}]` }))
    : [{ address: config.listenAddress, port: config.listenPort, backend: config.backend || null, maxConnections: 0, acceptProxy: config.acceptProxy, mode: config.mode, where: 'backend' }];
  if (!parsed.some((l) => l.mode === 'http')) {
    const set = [config.routeHook ? 'route' : '', tables.has('routes') ? 'routes' : ''].filter((n) => n !== '');
    if (set.length > 0) throw new ConfigError(`${set.join(' and ')} set, but no listener is in HTTP mode: add mode = "http" (globally, or to a listener in listeners)`);
  }
  // An HTTP listener with routes goes by the routes: its backend is their default ("" for none: 404).
  const routes = tables.has('routes') ? parseRoutes(tables.get('routes')!, config.pools) : null;
  config.routes = routes;
  config.listeners = parsed.map(({ where, ...l }) => {
    if (l.mode !== 'http' || routes === null) return { ...l, backend: poolFor(where, l.backend, config.pools) };
    if (l.backend !== null) {
      throw new ConfigError(`${where === 'backend' ? where : `${where}.backend`} and routes both set: an HTTP listener sends each request where routes say (routes.default for the other hosts)`);
    }
    return { ...l, backend: routes.default ?? '' };
  });
  config.names = []; // filled by loadConfig
}

/** HTTP mode's other tables. */
function http(config: Config, tables: Map<string, LuaValue>): void {
  config.limits = parseLimits(tables.get('limits'));
  config.trustedProxies = parseTrustedProxies(tables.get('trustedProxies'));
}

// ---- start-up resolution -------------------------------------------------

/** The DNS server a config names, or undefined for the system resolver. */
function makeResolver(server: string): Resolver | undefined {
  if (server === '') return undefined;
  // Bounded: 2 tries of 2 s each, then ETIMEOUT.
  const resolver = new Resolver({ timeout: 2000, tries: 2 });
  resolver.setServers([server]);
  return resolver;
}

async function ask(resolver: Resolver, name: string): Promise<string> {
  try {
    return (await resolver.resolve4(name))[0];
  } catch (error) {
    // No A record (ENODATA): the name may have only an IPv6 address.
    if ((error as NodeJS.ErrnoException).code !== 'ENODATA') throw error;
  }
  return (await resolver.resolve6(name))[0];
}

/**
 * Names become addresses once, here, at start-up: the reactor thread never
 * blocks in getaddrinfo.
 */
export async function resolveAddress(name: string, option: string, resolver?: Resolver): Promise<string> {
  const bare = name.startsWith('[') && name.endsWith(']') ? name.slice(1, -1) : name;
  if (isIP(bare)) return bare;
  try {
    return resolver === undefined ? (await lookup(bare)).address : await ask(resolver, bare);
  } catch (error) {
    throw new ConfigError(`cannot resolve ${option} ${JSON.stringify(name)}: ${(error as NodeJS.ErrnoException).code ?? error}`);
  }
}

/** One spelling per address: "::ffff:127.0.0.1" is 127.0.0.1, "0:0::1" is "::1". */
function canonical(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped !== null) return mapped[1];
  return isIP(address) === 6 ? new URL(`http://[${address}]/`).hostname.slice(1, -1) : address;
}

/** An address that reaches this host: loopback, a wildcard, or an address of one of its interfaces. */
function isLocal(address: string): boolean {
  if (/^127\./.test(address) || address === '::1' || address === '0.0.0.0' || address === '::') return true;
  return Object.values(os.networkInterfaces()).some((list) => (list ?? []).some((i) => canonical(i.address) === address));
}

/** Why member `m` of `pool` is rsp's own listener (rsp would connect to itself until it runs out of fds), or null. */
export function itselfReason(config: Config, pool: string, m: MemberConfig): string | null {
  for (const l of config.listeners) {
    if (l.port === 0 || m.port !== l.port) continue;
    const listen = canonical(l.address);
    // "::" is dual-stack (the listener clears IPV6_V6ONLY); "0.0.0.0" is IPv4 only.
    const backend = canonical(m.address);
    const wildcard = listen === '::' || (listen === '0.0.0.0' && isIP(backend) === 4);
    if (backend !== listen && !(wildcard && isLocal(backend))) continue;
    const what = pool === DEFAULT_POOL && config.backendAddress !== undefined
      ? `backendAddress ${backend} port ${m.port}`
      : `backends.${pool} member ${m.name}`;
    return `${what} is rsp's own listener (listenAddress ${listen}, listenPort ${l.port}): rsp would proxy to itself`;
  }
  return null;
}

function checkNotItself(config: Config): void {
  for (const pool of config.pools) {
    for (const m of pool.members) {
      const why = itselfReason(config, pool.name, m);
      if (why !== null) throw new ConfigError(why);
    }
  }
}

/** parseConfig, then resolve host names and check no backend is rsp itself. */
export async function loadConfig(path: string): Promise<Config> {
  const config = parseConfig(path);
  const resolver = makeResolver(config.resolver);
  for (const l of config.listeners) l.address = await resolveAddress(l.address, config.listeners.length > 1 ? 'listeners address' : 'listenAddress', resolver);
  config.names = await expandNames(config.pools, config.resolver, (pool) => (pool.name === DEFAULT_POOL && config.backendAddress !== undefined ? 'backendAddress' : `backends.${pool.name} member`));
  if (config.stats !== null) config.stats.address = await resolveAddress(config.stats.address, 'stats.listen', resolver);
  if (config.listenAddress !== undefined && config.listeners.length === 1) config.listenAddress = config.listeners[0].address;
  if (config.backendAddress !== undefined) config.backendAddress = config.pools[0].members[0].address;
  checkNotItself(config);
  return config;
}
