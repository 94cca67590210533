// The config's tables - `backends` (pools of members) and `listeners` - read
// from Lua and validated, here, into plain data a worker can use:
//
//   backends = {
//     app = { "10.0.0.1:8080", { "10.0.0.2:8080", weight = 3 }, { "10.0.0.9:8080", backup = true },
//             balance = "leastconn", check = { interval = 2000, http = "/health" }, maxFails = 1 },
//     db = { "[::1]:5432" },
//   }
//   listeners = { { port = "8000", backend = "app" }, { port = "5433", backend = "db", acceptProxy = true } }
//
// and HTTP mode's tables: routes (Host -> pool), limits, trustedProxies.
//
// Lua tables are walked raw (lua_next: no metamethod runs) into LuaValue,
// then checked in TypeScript with the same one-line messages as the globals.
import type * as Fengari from 'fengari';
import { isIP } from 'node:net';
import { BALANCE_METHODS, DEFAULT_POOL, type BalanceName } from './balancer/pool';
import type { CheckOptions } from './balancer/checker';
import { checkKnownNames, ConfigError, didYouMean } from './configcheck';
import { DEFAULT_LIMITS } from './http/head';
import { formatCidr, parseCidr } from './http/trusted';

/** A Lua value as plain data. */
export type LuaValue = string | number | boolean | LuaTable | { other: string };
export interface LuaTable {
  /** t[1], t[2], ... */
  list: LuaValue[];
  /** String keys, in the order Lua's next() gave them. */
  keys: Map<string, LuaValue>;
}

export function isTable(v: LuaValue | undefined): v is LuaTable {
  return typeof v === 'object' && v !== null && 'list' in v;
}

type State = object;

/** The value on top of the stack, tables walked raw (at most `depth` deep: a table may contain itself). */
export function readLuaValue(L: State, depth = 6): LuaValue {
  // Required here, not at the top: the main thread loads this module but never runs a config (config.ts).
  const { lua } = require('fengari') as typeof Fengari;
  const type = lua.lua_type(L, -1);
  if (type === lua.LUA_TSTRING) return lua.lua_tojsstring(L, -1);
  if (type === lua.LUA_TNUMBER) return lua.lua_tonumber(L, -1);
  if (type === lua.LUA_TBOOLEAN) return lua.lua_toboolean(L, -1);
  if (type !== lua.LUA_TTABLE) return { other: type === lua.LUA_TFUNCTION ? 'function' : 'value' };
  if (depth === 0) throw new ConfigError('a table nested too deep (or containing itself)');
  const table: LuaTable = { list: [], keys: new Map() };
  const numbered = new Map<number, LuaValue>();
  lua.lua_pushnil(L);
  while (lua.lua_next(L, -2) !== 0) {
    const value = readLuaValue(L, depth - 1);
    lua.lua_pop(L, 1);
    const keyType = lua.lua_type(L, -1);
    if (keyType === lua.LUA_TSTRING) table.keys.set(lua.lua_tojsstring(L, -1), value);
    else if (keyType === lua.LUA_TNUMBER) numbered.set(lua.lua_tonumber(L, -1), value);
    else throw new ConfigError('a table key must be a name or a position');
  }
  for (let i = 1; numbered.has(i); i++) table.list.push(numbered.get(i)!);
  if (table.list.length !== numbered.size) throw new ConfigError('a list with holes or non-integer positions');
  return table;
}

export interface MemberConfig {
  /** As written, "10.0.0.2:8080" or "[::1]:5432": how logs name it. */
  name: string;
  host: string;
  port: number;
  /** The IP address `host` resolved to at start-up. */
  address: string;
  weight: number;
  backup: boolean;
  /** 0: no limit. */
  maxConnections: number;
}

export interface PoolConfig {
  name: string;
  members: MemberConfig[];
  balance: BalanceName;
  maxFails: number;
  failTimeout: number;
  slowStart: number;
  /** Connects tried on other members after a failed one, for one client. */
  retries: number;
  check: CheckOptions | null;
  /** Send a PROXY protocol header to each member before the client's bytes (null: don't). */
  sendProxy: 'v1' | 'v2' | null;
  /** HTTP mode: idle upstream connections kept per member (nginx's `keepalive`); 0: none, each request connects. */
  keepalive: number;
  /** HTTP mode: ms an idle upstream connection is kept before rsp closes it. */
  keepaliveTimeout: number;
}

export interface ListenerConfig {
  address: string;
  port: number;
  /** The pool it sends to. An HTTP listener with `routes` goes by the routes instead: then this is routes' default, or "" when there is none. */
  backend: string;
  /** Most connections open at once through this listener; 0: only the global maxConnections. */
  maxConnections: number;
  /** Every connection starts with a PROXY protocol header naming the real client. */
  acceptProxy: boolean;
  /** "tcp": bytes paired with a backend; "http": each request parsed and routed (its own, else the global `mode`). */
  mode: ListenerMode;
}

export type ListenerMode = 'tcp' | 'http';
export const LISTENER_MODES: readonly ListenerMode[] = ['tcp', 'http'];

export { DEFAULT_POOL } from './balancer/pool';

const POOL_KEYS = ['balance', 'check', 'maxFails', 'failTimeout', 'slowStart', 'retries', 'sendProxy', 'keepalive', 'keepaliveTimeout'];
const MEMBER_KEYS = ['weight', 'backup', 'maxConnections'];
const CHECK_KEYS = ['interval', 'timeout', 'rise', 'fall', 'http'];
const LISTENER_KEYS = ['port', 'address', 'backend', 'maxConnections', 'acceptProxy', 'mode'];

/** A pool's upstream keep-alive when it does not say (nginx's `keepalive 32`, HAProxy's idle pool). */
export const DEFAULT_KEEPALIVE = 32;
export const DEFAULT_KEEPALIVE_TIMEOUT = 60_000;

function describe(v: LuaValue | undefined): string {
  if (v === undefined) return 'nothing';
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return isTable(v) ? 'a table' : `a ${v.other}`;
}

function integer(where: string, v: LuaValue | undefined, min: number, max: number, fallback: number): number {
  if (v === undefined) return fallback;
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\s*\d+\s*$/.test(v) ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < min || n > max) throw new ConfigError(`${where} must be a whole number from ${min} to ${max}, got ${describe(v)}`);
  return n;
}

function port(where: string, v: LuaValue | undefined): number {
  const text = typeof v === 'string' || typeof v === 'number' ? String(v).trim() : '';
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!(n >= 0 && n <= 65535)) throw new ConfigError(`${where} must be a port (a string or a number), got ${describe(v)}`);
  return n;
}

/** "10.0.0.1:8080", "[::1]:5432" or "app.internal:8080" into host and port. */
export function parseHostPort(where: string, text: string, minPort = 1): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:[\]\s]+):(\d+)$/.exec(text);
  if (m === null || (text.startsWith('[') && isIP(m[1]) !== 6)) {
    throw new ConfigError(`${where} must be "host:port" (an IPv6 address in brackets: "[::1]:5432"), got ${JSON.stringify(text)}`);
  }
  const n = Number(m[2]);
  if (!(n >= minPort && n <= 65535)) throw new ConfigError(`${where}: port must be ${minPort}-65535, got ${m[2]}`);
  return { host: m[1], port: n };
}

function member(where: string, v: LuaValue): MemberConfig {
  let address: LuaValue | undefined = v;
  let options = new Map<string, LuaValue>();
  if (isTable(v)) {
    if (v.list.length !== 1) throw new ConfigError(`${where} must be "host:port" or { "host:port", weight = N, backup = true, maxConnections = N }`);
    address = v.list[0];
    options = v.keys;
    checkKnownNames([...options.keys()], MEMBER_KEYS, { prefix: `${where}.` });
  }
  if (typeof address !== 'string') throw new ConfigError(`${where} must be "host:port", got ${describe(address)}`);
  const { host, port: p } = parseHostPort(where, address.trim());
  const backup = options.get('backup');
  if (backup !== undefined && typeof backup !== 'boolean') throw new ConfigError(`${where}.backup must be true or false, got ${describe(backup)}`);
  return {
    name: address.trim(),
    host,
    port: p,
    address: host,
    weight: integer(`${where}.weight`, options.get('weight'), 1, 1000, 1),
    backup: backup === true,
    maxConnections: integer(`${where}.maxConnections`, options.get('maxConnections'), 0, 1_000_000, 0),
  };
}

function check(where: string, v: LuaValue | undefined): CheckOptions | null {
  if (v === undefined || v === false) return null;
  if (!isTable(v) || v.list.length > 0) throw new ConfigError(`${where} must be a table like { interval = 2000, timeout = 1000, rise = 2, fall = 3 }, got ${describe(v)}`);
  checkKnownNames([...v.keys.keys()], CHECK_KEYS, { prefix: `${where}.` });
  const interval = integer(`${where}.interval`, v.keys.get('interval'), 10, 3_600_000, 2000);
  const timeout = integer(`${where}.timeout`, v.keys.get('timeout'), 1, 3_600_000, Math.min(1000, interval));
  if (timeout > interval) throw new ConfigError(`${where}.timeout (${timeout}) must not be above ${where}.interval (${interval})`);
  const http = v.keys.get('http');
  if (http !== undefined && (typeof http !== 'string' || !http.startsWith('/') || /[\s\x00-\x1f\x7f]/.test(http))) {
    throw new ConfigError(`${where}.http must be a path starting with "/", without spaces, got ${describe(http)}`);
  }
  return {
    interval,
    timeout,
    rise: integer(`${where}.rise`, v.keys.get('rise'), 1, 100, 2),
    fall: integer(`${where}.fall`, v.keys.get('fall'), 1, 100, 3),
    ...(http === undefined ? {} : { http }),
  };
}

function sendProxy(where: string, v: LuaValue | undefined): 'v1' | 'v2' | null {
  if (v === undefined || v === false) return null;
  if (v !== 'v1' && v !== 'v2') throw new ConfigError(`${where} must be "v1" or "v2" (or false), got ${describe(v)}`);
  return v;
}

function pool(name: string, v: LuaValue): PoolConfig {
  const where = `backends.${name}`;
  if (!/^[A-Za-z0-9_.-]+$/.test(name)) throw new ConfigError(`backends: a pool name is letters, digits, "_", "-" or ".", got ${JSON.stringify(name)}`);
  if (!isTable(v)) throw new ConfigError(`${where} must be a list of members like { "10.0.0.1:8080", "10.0.0.2:8080" }, got ${describe(v)}`);
  checkKnownNames([...v.keys.keys()], POOL_KEYS, { prefix: `${where}.` });
  if (v.list.length === 0) throw new ConfigError(`${where} has no members`);
  const members = v.list.map((m, i) => member(`${where}[${i + 1}]`, m));
  const seen = new Set<string>();
  for (const m of members) {
    if (seen.has(m.name)) throw new ConfigError(`${where} lists ${m.name} twice`);
    seen.add(m.name);
  }
  const balance = v.keys.get('balance') ?? 'roundrobin';
  if (typeof balance !== 'string' || !(BALANCE_METHODS as readonly string[]).includes(balance)) {
    throw new ConfigError(`${where}.balance must be ${BALANCE_METHODS.map((b) => JSON.stringify(b)).join(' or ')}, got ${describe(balance)}`);
  }
  return {
    name,
    members,
    balance: balance as BalanceName,
    maxFails: integer(`${where}.maxFails`, v.keys.get('maxFails'), 0, 1000, 1),
    failTimeout: integer(`${where}.failTimeout`, v.keys.get('failTimeout'), 1, 86_400_000, 10_000),
    slowStart: integer(`${where}.slowStart`, v.keys.get('slowStart'), 0, 3_600_000, 0),
    retries: integer(`${where}.retries`, v.keys.get('retries'), 0, 100, 2),
    check: check(`${where}.check`, v.keys.get('check')),
    sendProxy: sendProxy(`${where}.sendProxy`, v.keys.get('sendProxy')),
    keepalive: integer(`${where}.keepalive`, v.keys.get('keepalive'), 0, 100_000, DEFAULT_KEEPALIVE),
    keepaliveTimeout: integer(`${where}.keepaliveTimeout`, v.keys.get('keepaliveTimeout'), 1, 86_400_000, DEFAULT_KEEPALIVE_TIMEOUT),
  };
}

/** `backends = { name = { members..., options } }` into pools, in name order. */
export function parsePools(v: LuaValue): PoolConfig[] {
  if (!isTable(v) || v.list.length > 0 || v.keys.size === 0) {
    throw new ConfigError(`backends must be a table of named pools like { app = { "10.0.0.1:8080" } }, got ${isTable(v) ? 'a list' : describe(v)}`);
  }
  return [...v.keys.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([name, p]) => pool(name, p));
}

/** One pool from the C rsp's backendAddress and backendPort. */
export function singlePool(host: string, backendPort: number): PoolConfig {
  const name = host.includes(':') ? `[${host}]:${backendPort}` : `${host}:${backendPort}`;
  return {
    name: DEFAULT_POOL,
    members: [{ name, host, port: backendPort, address: host, weight: 1, backup: false, maxConnections: 0 }],
    balance: 'roundrobin',
    maxFails: 1,
    failTimeout: 10_000,
    slowStart: 0,
    retries: 2,
    check: null,
    sendProxy: null,
    keepalive: DEFAULT_KEEPALIVE,
    keepaliveTimeout: DEFAULT_KEEPALIVE_TIMEOUT,
  };
}

/** `listeners = { { port = "8000", address = "0.0.0.0", backend = "app" }, ... }` */
export function parseListeners(v: LuaValue, defaultAddress: string): { address: string; port: number; backend: string | null; maxConnections: number; acceptProxy: boolean; mode: ListenerMode | null }[] {
  if (!isTable(v) || v.keys.size > 0 || v.list.length === 0) {
    throw new ConfigError(`listeners must be a list like { { port = "8000", backend = "app" } }, got ${describe(v)}`);
  }
  return v.list.map((l, i) => {
    const where = `listeners[${i + 1}]`;
    if (!isTable(l) || l.list.length > 0) throw new ConfigError(`${where} must be a table like { port = "8000", backend = "app" }, got ${describe(l)}`);
    checkKnownNames([...l.keys.keys()], LISTENER_KEYS, { prefix: `${where}.` });
    if (!l.keys.has('port')) throw new ConfigError(`${where}.port is required: a port (a string or a number)`);
    const address = l.keys.get('address') ?? defaultAddress;
    if (typeof address !== 'string' || address.trim() === '') throw new ConfigError(`${where}.address must be an address, got ${describe(address)}`);
    const backend = l.keys.get('backend');
    if (backend !== undefined && typeof backend !== 'string') throw new ConfigError(`${where}.backend must be a pool name, got ${describe(backend)}`);
    const maxConnections = integer(`${where}.maxConnections`, l.keys.get('maxConnections'), 0, 10_000_000, 0);
    const acceptProxy = l.keys.get('acceptProxy') ?? false;
    if (typeof acceptProxy !== 'boolean') throw new ConfigError(`${where}.acceptProxy must be true or false, got ${describe(acceptProxy)}`);
    const mode = l.keys.get('mode');
    if (mode !== undefined && !LISTENER_MODES.includes(mode as ListenerMode)) throw new ConfigError(`${where}.mode must be "tcp" or "http", got ${describe(mode)}`);
    return { address: address.trim(), port: port(`${where}.port`, l.keys.get('port')), backend: backend ?? null, maxConnections, acceptProxy, mode: (mode as ListenerMode | undefined) ?? null };
  });
}

/** Which pool a listener sends to: the one it names, or the only one. */
export function poolFor(where: string, named: string | null, pools: PoolConfig[]): string {
  if (named !== null) {
    if (!pools.some((p) => p.name === named)) {
      const names = pools.map((p) => p.name);
      throw new ConfigError(`${where} names pool ${JSON.stringify(named)}, which backends does not define (pools: ${names.join(', ')})`);
    }
    return named;
  }
  if (pools.length === 1) return pools[0].name;
  throw new ConfigError(`${where}: say which pool it sends to (backend = "${pools[0].name}"): backends defines ${pools.length}`);
}

// ---- HTTP mode's tables ----------------------------------------------------

/** `routes`: Host to pool. Hosts lower-case without a trailing dot; a wildcard as its suffix with the dot (".api.example.com"). */
export interface RoutesConfig {
  exact: [string, string][];
  wildcard: [string, string][];
  /** The pool of a host no route names; null: such a request is answered 404. */
  default: string | null;
}

/** HTTP mode's limits on a request (limits = { ... }). */
export interface HttpLimits {
  /** Bytes of the request line, without its CRLF (else 414). */
  requestLine: number;
  /** Bytes of the header field section (else 431). */
  headerBytes: number;
  /** Header field lines (else 431). */
  headers: number;
  /** Bytes of a request body (else 413); 0: no limit. */
  body: number;
}

export const DEFAULT_HTTP_LIMITS: Readonly<HttpLimits> = Object.freeze({ ...DEFAULT_LIMITS, body: 0 });

const LIMIT_RANGES: Record<keyof HttpLimits, [number, number]> = {
  requestLine: [64, 1 << 20],
  headerBytes: [256, 1 << 20],
  headers: [1, 10_000],
  body: [0, 2 ** 50],
};

/** A DNS name: labels of letters, digits, "-" and "_" (internal names have them), at most 63 bytes each, 253 in all. */
const HOST_NAME = /^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*$/;

/** A route's host as the router compares it: lower-case, no trailing dot, an IPv6 address without brackets; null if it is not a host. */
function routeHost(text: string): string | null {
  let host = text.trim().toLowerCase();
  if (host.startsWith('[') && host.endsWith(']')) return isIP(host.slice(1, -1)) === 6 ? host.slice(1, -1) : null;
  if (isIP(host) !== 0) return host;
  if (host.endsWith('.')) host = host.slice(0, -1);
  return HOST_NAME.test(host) ? host : null;
}

/** The pool a route names, which must be one of `backends`. */
function routePool(where: string, v: LuaValue | undefined, pools: PoolConfig[]): string {
  const names = pools.map((p) => p.name);
  if (typeof v !== 'string') throw new ConfigError(`${where} must be a pool name (a string), got ${describe(v)}`);
  if (names.includes(v)) return v;
  const suggestion = didYouMean(v, names);
  const hint = suggestion === undefined ? `pools: ${names.join(', ')}` : `did you mean ${suggestion}?`;
  throw new ConfigError(`${where} names pool ${JSON.stringify(v)}, which backends does not define (${hint})`);
}

/**
 * `routes = { ["example.com"] = "web", ["*.api.example.com"] = "api", default = "web" }`.
 * Without `default`, the one pool when there is only one, else none (404).
 */
export function parseRoutes(v: LuaValue, pools: PoolConfig[]): RoutesConfig {
  const example = '{ ["example.com"] = "web", ["*.api.example.com"] = "api", default = "web" }';
  if (!isTable(v) || v.list.length > 0) throw new ConfigError(`routes must be a table of host = pool like ${example}, got ${isTable(v) ? 'a list' : describe(v)}`);
  const exact: [string, string][] = [];
  const wildcard: [string, string][] = [];
  const seen = new Map<string, string>();
  for (const [key, value] of v.keys) {
    if (key === 'default') continue;
    const where = `routes[${JSON.stringify(key)}]`;
    const isWildcard = key.trim().startsWith('*.');
    const host = routeHost(isWildcard ? key.trim().slice(2) : key);
    if (host === null || (isWildcard && isIP(host) !== 0)) {
      throw new ConfigError(`${where}: ${JSON.stringify(key)} is not a host name, IP address or wildcard like "*.example.com"`);
    }
    const normal = isWildcard ? `*.${host}` : host;
    const earlier = seen.get(normal);
    if (earlier !== undefined) throw new ConfigError(`${where}: the same host as routes[${JSON.stringify(earlier)}] (hosts are compared without case and trailing dot)`);
    seen.set(normal, key);
    const pool = routePool(where, value, pools);
    if (isWildcard) wildcard.push([`.${host}`, pool]);
    else exact.push([host, pool]);
  }
  const named = v.keys.get('default');
  const fallback = named !== undefined ? routePool('routes.default', named, pools) : pools.length === 1 ? pools[0].name : null;
  // Longest suffix first: the router takes the first that matches.
  wildcard.sort((a, b) => b[0].length - a[0].length || (a[0] < b[0] ? -1 : 1));
  return { exact, wildcard, default: fallback };
}

/** `limits = { requestLine = 8192, headerBytes = 32768, headers = 100, body = 0 }`: each optional. */
export function parseLimits(v: LuaValue | undefined): HttpLimits {
  if (v === undefined) return { ...DEFAULT_HTTP_LIMITS };
  if (!isTable(v) || v.list.length > 0) throw new ConfigError(`limits must be a table like { requestLine = 8192, headerBytes = 32768, headers = 100, body = 0 }, got ${isTable(v) ? 'a list' : describe(v)}`);
  const names = Object.keys(LIMIT_RANGES) as (keyof HttpLimits)[];
  checkKnownNames([...v.keys.keys()], names, { prefix: 'limits.' });
  const out = { ...DEFAULT_HTTP_LIMITS };
  for (const name of names) out[name] = integer(`limits.${name}`, v.keys.get(name), LIMIT_RANGES[name][0], LIMIT_RANGES[name][1], DEFAULT_HTTP_LIMITS[name]);
  return out;
}

/** `trustedProxies = { "10.0.0.0/8", "::1/128", "127.0.0.1" }` into CIDRs in one spelling. */
export function parseTrustedProxies(v: LuaValue | undefined): string[] {
  if (v === undefined) return [];
  if (!isTable(v) || v.keys.size > 0) throw new ConfigError(`trustedProxies must be a list like { "10.0.0.0/8", "::1" }, got ${describe(v)}`);
  return v.list.map((item, i) => {
    const where = `trustedProxies[${i + 1}]`;
    if (typeof item !== 'string') throw new ConfigError(`${where} must be an address or CIDR (a string), got ${describe(item)}`);
    const cidr = parseCidr(item.trim());
    if (typeof cidr === 'string') throw new ConfigError(`${where}: ${cidr}`);
    return formatCidr(cidr);
  });
}
