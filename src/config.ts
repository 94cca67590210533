// The Lua configuration file, run by fengari and validated once, here, into
// plain typed data. Workers receive that data, never Lua.
//
// The C rsp's three globals work unchanged:
//   listenPort = "8000"  backendAddress = "127.0.0.1"  backendPort = "8888"
// Every other option has a default; OPTIONS below is the one list of them
// (the README's config reference follows it, and a test keeps the two equal).
import * as fs from 'node:fs';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { lauxlib, lua, lualib, to_luastring } from 'fengari';

export type TriggerMode = 'level' | 'edge';

export interface Config {
  listenAddress: string;
  listenPort: number;
  backlog: number;
  backendAddress: string;
  backendPort: number;
  triggerMode: TriggerMode;
  maxEvents: number;
  readBufferSize: number;
  readBudget: number;
  acceptBudget: number;
  highWaterMark: number;
  lowWaterMark: number;
  connectTimeout: number;
  idleTimeout: number;
  readPolicy: 'auto' | 'drain' | 'eagain' | 'once';
  acceptPolicy: 'drain' | 'once';
  epolloutPolicy: 'auto' | 'queued' | 'always';
  rdhup: boolean;
  trace: boolean;
}

/** A config problem, reported as one line: "Error parsing config file: <message>". */
export class ConfigError extends Error {}

type Kind =
  | { type: 'port' }
  | { type: 'host' }
  | { type: 'int'; min: number; max: number }
  | { type: 'enum'; values: string[] }
  | { type: 'bool' };

interface Option {
  name: keyof Config;
  kind: Kind;
  /** undefined: required. */
  default?: string | number | boolean;
  doc: string;
}

const MiB = 1024 * 1024;

export const OPTIONS: Option[] = [
  { name: 'listenPort', kind: { type: 'port' }, doc: 'Port to accept clients on. "0" picks a free port; the start line reports it.' },
  { name: 'listenAddress', kind: { type: 'host' }, default: '0.0.0.0', doc: 'Address to listen on. "::" listens on IPv6 and IPv4; "::1" or "127.0.0.1" on loopback only.' },
  { name: 'backendAddress', kind: { type: 'host' }, doc: 'Backend host: an IPv4 or IPv6 address, or a name resolved once at start-up.' },
  { name: 'backendPort', kind: { type: 'port' }, doc: 'Backend port.' },
  { name: 'triggerMode', kind: { type: 'enum', values: ['level', 'edge'] }, default: 'level', doc: 'How epoll reports readiness: "level" (reported while ready) or "edge" (reported when it changes, so every handler drains what is there: see readPolicy).' },
  { name: 'backlog', kind: { type: 'int', min: 1, max: 65535 }, default: 4096, doc: 'listen() backlog: connections the kernel holds until accepted (capped by net.core.somaxconn).' },
  { name: 'maxEvents', kind: { type: 'int', min: 1, max: 65536 }, default: 256, doc: 'Most events taken from one epoll_wait call.' },
  { name: 'readBufferSize', kind: { type: 'int', min: 1024, max: 16 * MiB }, default: 65536, doc: 'Bytes asked for by each read(); one buffer of this size per worker.' },
  { name: 'readBudget', kind: { type: 'int', min: 0, max: 1 << 20 }, default: 16, doc: 'Edge mode: reads one connection may do per loop turn before the others get theirs; the rest waits on the ready list. 0: no limit (the C rsp: one busy connection can starve the others).' },
  { name: 'acceptBudget', kind: { type: 'int', min: 1, max: 1 << 20 }, default: 64, doc: 'Connections accepted per listener event before other handlers get a turn.' },
  { name: 'highWaterMark', kind: { type: 'int', min: 1, max: 1 << 30 }, default: MiB, doc: 'Bytes queued for one connection before rsp stops reading from its peer (backpressure).' },
  { name: 'lowWaterMark', kind: { type: 'int', min: 0, max: 1 << 30 }, default: 256 * 1024, doc: 'Queued bytes at which reading from the peer starts again. Must be below highWaterMark.' },
  { name: 'trace', kind: { type: 'bool' }, default: false, doc: 'Print every epoll_wait, event and system call as it happens (also `rsp --trace`). For watching epoll, not for production.' },
  { name: 'readPolicy', kind: { type: 'enum', values: ['auto', 'drain', 'eagain', 'once'] }, default: 'auto', doc: '"drain" reads until EAGAIN or a short read (a stream socket is empty after a short read: epoll(7); not at a TCP urgent mark, nor after EPOLLERR), within readBudget. "eagain" reads until EAGAIN, always one read more. "once" reads once per event and waits for epoll: level mode then hears again, edge mode stalls (an experiment). "auto": once for level, drain for edge.' },
  { name: 'acceptPolicy', kind: { type: 'enum', values: ['drain', 'once'] }, default: 'drain', doc: '"drain" accepts until EAGAIN (within acceptBudget). "once" accepts one connection per event: an experiment, edge mode then strands connections in the backlog.' },
  { name: 'epolloutPolicy', kind: { type: 'enum', values: ['auto', 'queued', 'always'] }, default: 'auto', doc: 'When EPOLLOUT is registered: "queued" only while bytes are queued, "always" for the connection\'s life (free in edge mode, a wake-up per turn in level mode). "auto": queued for level, always for edge.' },
  { name: 'rdhup', kind: { type: 'bool' }, default: true, doc: 'Register EPOLLRDHUP and treat a short read with it as the end of the stream, saving the read() that returns 0.' },
  { name: 'idleTimeout', kind: { type: 'int', min: 0, max: 86_400_000 }, default: 600_000, doc: 'Milliseconds a proxied connection may go without a byte in either direction before both sides are closed (as nginx stream\'s proxy_timeout); 0: never.' },
  { name: 'connectTimeout', kind: { type: 'int', min: 0, max: 3_600_000 }, default: 5000, doc: 'Milliseconds a backend connect may take before the client is closed; 0 waits forever.' },
];

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

function checkOption(option: Option, raw: Raw): string | number | boolean {
  const { name, kind } = option;
  if (raw.type === 'nil') {
    if (option.default !== undefined) return option.default;
    throw new ConfigError(`${name} must be a string`);
  }
  switch (kind.type) {
    case 'port': {
      if (raw.type !== 'string' && raw.type !== 'number') throw new ConfigError(`${name} must be a string`);
      const text = String(raw.value).trim();
      const port = /^\d+$/.test(text) ? Number(text) : NaN;
      if (!(port >= 0 && port <= 65535)) throw new ConfigError(`${name} must be a port number (0-65535), got ${describe(raw)}`);
      return port;
    }
    case 'host':
      if (raw.type !== 'string' || raw.value.trim() === '') throw new ConfigError(`${name} must be a string`);
      return raw.value.trim();
    case 'enum':
      if (raw.type !== 'string' || !kind.values.includes(raw.value)) {
        throw new ConfigError(`${name} must be ${kind.values.map((v) => JSON.stringify(v)).join(' or ')}, got ${describe(raw)}`);
      }
      return raw.value;
    case 'bool':
      if (raw.type !== 'boolean') throw new ConfigError(`${name} must be true or false, got ${describe(raw)}`);
      return raw.value;
    case 'int': {
      const n = raw.type === 'number' ? raw.value : raw.type === 'string' && /^\s*\d+\s*$/.test(raw.value) ? Number(raw.value) : NaN;
      if (!Number.isInteger(n) || n < kind.min || n > kind.max) {
        throw new ConfigError(`${name} must be a whole number from ${kind.min} to ${kind.max}, got ${describe(raw)}`);
      }
      return n;
    }
  }
}

const systemMessages: Record<string, string> = {
  ENOENT: 'No such file or directory',
  EACCES: 'Permission denied',
  EISDIR: 'Is a directory',
  ENOTDIR: 'Not a directory',
};

/** Run the Lua file and return every option it set, validated, with defaults filled in. */
export function parseConfig(path: string): Config {
  let source: Buffer;
  try {
    source = fs.readFileSync(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? '';
    throw new ConfigError(`cannot open ${path}: ${systemMessages[code] ?? code}`);
  }
  const L = lauxlib.luaL_newstate();
  lualib.luaL_openlibs(L);
  // The chunk name "@path" makes Lua's messages read "path:LINE: ...".
  if (lauxlib.luaL_loadbuffer(L, source, source.length, to_luastring(`@${path}`)) !== lua.LUA_OK) {
    throw new ConfigError(lua.lua_tojsstring(L, -1));
  }
  if (lua.lua_pcall(L, 0, 0, 0) !== lua.LUA_OK) {
    const type = lua.lua_type(L, -1);
    throw new ConfigError(type === lua.LUA_TSTRING || type === lua.LUA_TNUMBER ? lua.lua_tojsstring(L, -1) : 'the config raised an error');
  }

  const read = (name: string): Raw => {
    const type = lua.lua_getglobal(L, to_luastring(name));
    let raw: Raw;
    if (type === lua.LUA_TNIL) raw = { type: 'nil' };
    else if (type === lua.LUA_TSTRING) raw = { type: 'string', value: lua.lua_tojsstring(L, -1) };
    else if (type === lua.LUA_TNUMBER) raw = { type: 'number', value: lua.lua_tonumber(L, -1), integer: lua.lua_isinteger(L, -1) };
    else if (type === lua.LUA_TBOOLEAN) raw = { type: 'boolean', value: lua.lua_toboolean(L, -1) };
    else raw = { type: 'other', name: typeName(type) };
    lua.lua_pop(L, 1);
    return raw;
  };

  const config: Record<string, string | number | boolean> = {};
  for (const option of OPTIONS) config[option.name] = checkOption(option, read(option.name));
  checkForTypos(L);

  const result = config as unknown as Config;
  if (result.lowWaterMark >= result.highWaterMark) {
    throw new ConfigError(`lowWaterMark (${result.lowWaterMark}) must be below highWaterMark (${result.highWaterMark})`);
  }
  return result;
}

function typeName(type: number): string {
  const names: Record<number, string> = {
    [lua.LUA_TBOOLEAN]: 'boolean',
    [lua.LUA_TTABLE]: 'table',
    [lua.LUA_TFUNCTION]: 'function',
  };
  return names[type] ?? 'value';
}

/** A global that differs from an option only in case is a typo: say so instead of ignoring it. */
function checkForTypos(L: object): void {
  const known = new Map(OPTIONS.map((o) => [o.name.toLowerCase(), o.name as string]));
  lua.lua_rawgeti(L, lua.LUA_REGISTRYINDEX, lua.LUA_RIDX_GLOBALS);
  lua.lua_pushnil(L);
  while (lua.lua_next(L, -2) !== 0) {
    lua.lua_pop(L, 1); // the value; keep the key for lua_next
    if (lua.lua_type(L, -1) !== lua.LUA_TSTRING) continue;
    const name = lua.lua_tojsstring(L, -1);
    const option = known.get(name.toLowerCase());
    if (option !== undefined && option !== name) {
      throw new ConfigError(`unknown option ${name} (did you mean ${option}?)`);
    }
  }
  lua.lua_pop(L, 1);
}

/**
 * Names become addresses once, here, at start-up: the reactor thread never
 * blocks in getaddrinfo.
 */
export async function resolveAddress(name: string, option: string): Promise<string> {
  const bare = name.startsWith('[') && name.endsWith(']') ? name.slice(1, -1) : name;
  if (isIP(bare)) return bare;
  try {
    const { address } = await lookup(bare);
    return address;
  } catch (error) {
    throw new ConfigError(`cannot resolve ${option} ${JSON.stringify(name)}: ${(error as NodeJS.ErrnoException).code ?? error}`);
  }
}

/** parseConfig, then resolve host names. */
export async function loadConfig(path: string): Promise<Config> {
  const config = parseConfig(path);
  config.listenAddress = await resolveAddress(config.listenAddress, 'listenAddress');
  config.backendAddress = await resolveAddress(config.backendAddress, 'backendAddress');
  return config;
}
