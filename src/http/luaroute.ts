// The config's `route(req)`, called per request in the worker's reactor turn.
//
// Lua functions cannot cross threads, so each worker runs the config file
// again in a fresh fengari state (runConfigFile: the same protections as the
// main thread's run) and keeps that state's `route`. A call must not stall the
// reactor: an instruction-count hook ends one that runs too long. The request
// is one `req` table for every call, read-only: its metatable makes a field's
// Lua string only when the route reads it, and `req.headers` looks a
// name up in the parsed head only when asked (most routes read one header or
// none), so a call costs what the route reads.
import { lauxlib, lua, to_jsstring, to_luastring } from 'fengari';
import { didYouMean, runConfigFile } from '../config';

/** What route(req) sees of a request (RequestHead has all of it but `remote`). */
export interface RouteRequest {
  method: string;
  path: string;
  query: string | null;
  host: string;
  /** The client's address, as logs show it. */
  remote: string;
  /** The first value of the field `lowerName`, or null. */
  header(lowerName: string): string | null;
  headerCount: number;
  /** Field k's name, lower-case. */
  headerKey(k: number): string;
  headerValue(k: number): string;
}

/** Lua instructions one call may run: about 1 ms of fengari once warm (scripts/bench-route.ts); a route needs tens to a few thousand. */
export const ROUTE_INSTRUCTION_LIMIT = 100_000;
/** The hook runs every STEP instructions (any thread: coroutines share the budget). */
const STEP = 1000;
/**
 * The most string.rep may make in a route: one call is one instruction to
 * the hook, whatever it builds (string.rep("x", 1e9) would hold the worker
 * for a second and a gigabyte).
 */
export const ROUTE_REP_LIMIT = 1 << 20;

type State = object;
// The parts of fengari's API used here beyond types/fengari.d.ts.
const api = lua as typeof lua & {
  LUA_MASKCOUNT: number;
  LUA_TNUMBER: number;
  lua_sethook(L: State, fn: ((L: State) => void) | null, mask: number, count: number): void;
  lua_settop(L: State, idx: number): void;
  lua_pushvalue(L: State, idx: number): void;
  lua_pushliteral(L: State, s: string): void;
  lua_pushstring(L: State, s: Uint8Array): void;
  lua_pushinteger(L: State, n: number): void;
  lua_pushcfunction(L: State, fn: (L: State) => number): void;
  lua_pushcclosure(L: State, fn: (L: State) => number, n: number): void;
  lua_upvalueindex(i: number): number;
  lua_replace(L: State, idx: number): void;
  lua_insert(L: State, idx: number): void;
  lua_tointeger(L: State, idx: number): number;
  lua_rawget(L: State, idx: number): number;
  lua_rawset(L: State, idx: number): void;
  lua_createtable(L: State, narr: number, nrec: number): void;
  lua_setmetatable(L: State, idx: number): void;
  lua_setfield(L: State, idx: number, k: Uint8Array): void;
  lua_touserdata(L: State, idx: number): unknown;
  lua_atnativeerror(L: State, fn: (L: State) => number): void;
  lua_error(L: State): never;
  lua_call(L: State, nargs: number, nresults: number): void;
  lua_tostring(L: State, idx: number): Uint8Array;
};
const aux = lauxlib as typeof lauxlib & {
  luaL_checklstring(L: State, idx: number): Uint8Array;
  luaL_checkinteger(L: State, idx: number): number;
  luaL_optlstring(L: State, idx: number, def: Uint8Array): Uint8Array;
};

// Stack slots held between calls.
const ROUTE = 1;
const REQ = 2;
const HEADERS_KEY = 3;
const HEADERS_TABLE = 4;
const TOP = 4;

/** req's fields, by their index in the FIELDS table. */
const FIELD_NAMES = ['method', 'path', 'query', 'host', 'remote', 'headers'];
const METHOD = 1;
const PATH = 2;
const QUERY = 3;
const HOST = 4;
const REMOTE = 5;
const HEADERS = 6;

/** A message as one line. */
function oneLine(text: string): string {
  return text.replace(/\s*[\r\n]+\s*/g, ' ').trim();
}

function isUpper(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x41 && c <= 0x5a) return true;
  }
  return false;
}

export class LuaRoute {
  private current: RouteRequest | null = null;
  /** The last name looked up in req.headers: its Lua bytes and its lower-case text. */
  private lastKeyBytes: Uint8Array | null = null;
  private lastKey = '';
  private used = 0;
  private expired = false;
  private readonly hook: (L: State) => void;

  private constructor(private readonly L: State, private readonly pools: readonly string[] | null) {
    this.hook = (L2: State): void => {
      if (!this.expired) {
        this.used += STEP;
        if (this.used < ROUTE_INSTRUCTION_LIMIT) return;
        this.expired = true;
      }
      // From now on at every instruction of this thread, so a pcall in the
      // route cannot catch the error and carry on.
      api.lua_sethook(L2, this.hook, api.LUA_MASKCOUNT, 1);
      api.lua_pushliteral(L2, 'route() ran too long');
      api.lua_error(L2);
    };
  }

  /**
   * Run the config file again and keep its `route`. `pools`, when given, are
   * the pool names a returned name must be one of. Throws an Error with a
   * one-line message when the file fails now or has no function `route`.
   */
  static load(configPath: string, pools?: readonly string[]): LuaRoute {
    let L: State;
    try {
      L = runConfigFile(configPath).L;
    } catch (error) {
      throw new Error(oneLine((error as Error).message));
    }
    const self = new LuaRoute(L, pools ?? null);
    self.setUp(configPath);
    return self;
  }

  private setUp(configPath: string): void {
    const L = this.L;
    api.lua_settop(L, 0);
    // A JS exception inside a call (a bug, or JS's own stack overflow) becomes a Lua error, not a broken state.
    api.lua_atnativeerror(L, (L2) => {
      const e = api.lua_touserdata(L2, 1);
      api.lua_pushliteral(L2, e instanceof Error ? `${e.name}: ${e.message}` : String(e));
      return 1;
    });
    lua.lua_rawgeti(L, lua.LUA_REGISTRYINDEX, lua.LUA_RIDX_GLOBALS);
    api.lua_pushstring(L, to_luastring('route'));
    const type = api.lua_rawget(L, -2);
    if (type !== lua.LUA_TFUNCTION) throw new Error(`${configPath} defines no function route when run again in a worker`);
    api.lua_replace(L, ROUTE); // the globals table goes
    const readOnly = (what: string) => (L2: State): number => {
      api.lua_pushliteral(L2, `${what} is read-only`);
      return api.lua_error(L2);
    };
    api.lua_createtable(L, 0, 1); // REQ: only `headers` in it (set per call), the rest through its metatable
    api.lua_createtable(L, 0, 3);
    // __index's upvalues: FIELDS (name -> index: one hashed lookup, no string made) and req.headers.
    api.lua_createtable(L, 0, FIELD_NAMES.length);
    FIELD_NAMES.forEach((name, i) => {
      api.lua_pushinteger(L, i + 1);
      api.lua_setfield(L, -2, to_luastring(name));
    });
    api.lua_createtable(L, 0, 0); // req.headers: always empty too
    api.lua_createtable(L, 0, 3);
    api.lua_pushcfunction(L, (L2) => this.headerIndex(L2));
    api.lua_setfield(L, -2, to_luastring('__index'));
    api.lua_pushcfunction(L, readOnly('req.headers'));
    api.lua_setfield(L, -2, to_luastring('__newindex'));
    api.lua_pushcfunction(L, (L2) => this.headerPairs(L2));
    api.lua_setfield(L, -2, to_luastring('__pairs'));
    api.lua_setmetatable(L, -2);
    api.lua_pushvalue(L, -1);
    api.lua_insert(L, 2); // req.headers, kept at HEADERS_TABLE (after REQ and the key)
    api.lua_pushcclosure(L, (L2) => this.reqIndex(L2), 2);
    api.lua_setfield(L, -2, to_luastring('__index'));
    api.lua_pushcfunction(L, readOnly('req'));
    api.lua_setfield(L, -2, to_luastring('__newindex'));
    api.lua_setmetatable(L, 3); // REQ, below the headers table for now
    api.lua_insert(L, 2); // REQ at 2, the headers table at 3
    api.lua_pushliteral(L, 'headers');
    api.lua_insert(L, HEADERS_KEY);
    if (lua.lua_gettop(L) !== TOP) throw new Error('LuaRoute: unexpected stack');
    boundStringRep(L);
  }

  /** req.method, req.path, ...: the field's value as a Lua string, made now. */
  private reqIndex(L: State): number {
    const req = this.current;
    api.lua_pushvalue(L, 2);
    const field = api.lua_rawget(L, api.lua_upvalueindex(1)) === api.LUA_TNUMBER ? api.lua_tointeger(L, -1) : 0;
    if (req === null || field === 0) lua.lua_pushnil(L);
    else if (field === METHOD) api.lua_pushliteral(L, req.method);
    else if (field === PATH) api.lua_pushliteral(L, req.path);
    else if (field === QUERY) {
      const query = req.query;
      if (query === null) lua.lua_pushnil(L);
      else api.lua_pushliteral(L, query);
    } else if (field === HOST) api.lua_pushliteral(L, req.host);
    else if (field === REMOTE) api.lua_pushliteral(L, req.remote);
    else if (field === HEADERS) api.lua_pushvalue(L, api.lua_upvalueindex(2));
    return 1;
  }

  /** headers[name]: the first value of that field (any case), or nil. */
  private headerIndex(L: State): number {
    const req = this.current;
    if (req === null || lua.lua_type(L, 2) !== lua.LUA_TSTRING) {
      lua.lua_pushnil(L);
      return 1;
    }
    // A route reads the same few names on every call, and Lua keeps one copy
    // of each short string: the same bytes object comes back, decoded once.
    const bytes = api.lua_tostring(L, 2);
    if (bytes !== this.lastKeyBytes) {
      const name = to_jsstring(bytes);
      this.lastKeyBytes = bytes;
      this.lastKey = isUpper(name) ? name.toLowerCase() : name;
    }
    const value = req.header(this.lastKey);
    if (value === null) lua.lua_pushnil(L);
    else api.lua_pushliteral(L, value);
    return 1;
  }

  /** pairs(headers): each field line's (lower-case name, value), in order. */
  private headerPairs(L: State): number {
    api.lua_pushinteger(L, 0);
    api.lua_pushcclosure(L, (L2) => {
      const req = this.current;
      const k = api.lua_tointeger(L2, api.lua_upvalueindex(1));
      if (req === null || k >= req.headerCount) return 0;
      api.lua_pushinteger(L2, k + 1);
      api.lua_replace(L2, api.lua_upvalueindex(1));
      api.lua_pushliteral(L2, req.headerKey(k));
      api.lua_pushliteral(L2, req.headerValue(k));
      return 2;
    }, 1);
    api.lua_pushvalue(L, 1);
    lua.lua_pushnil(L);
    return 3;
  }

  /**
   * route(req): a pool name, a status (100-599) to answer, or null (go by
   * routes). Throws an Error with the Lua message in one line when the route
   * raises, runs too long, or returns anything else.
   */
  call(req: RouteRequest): string | number | null {
    const L = this.L;
    // req.headers is a plain field (one metamethod less per header read), set again in case a route assigned it.
    api.lua_pushvalue(L, HEADERS_KEY);
    api.lua_pushvalue(L, HEADERS_TABLE);
    api.lua_rawset(L, REQ);
    api.lua_pushvalue(L, ROUTE);
    api.lua_pushvalue(L, REQ);
    this.current = req;
    this.used = 0;
    this.expired = false;
    api.lua_sethook(L, this.hook, api.LUA_MASKCOUNT, STEP);
    let status: number;
    try {
      status = lua.lua_pcall(L, 1, 1, 0);
    } finally {
      api.lua_sethook(L, null, 0, 0);
      this.current = null;
    }
    try {
      if (status !== lua.LUA_OK) throw new Error(this.expired ? `route() ran too long (over ${ROUTE_INSTRUCTION_LIMIT} Lua instructions)` : this.errorMessage());
      return this.result();
    } finally {
      api.lua_settop(L, TOP);
    }
  }

  private errorMessage(): string {
    const L = this.L;
    const type = lua.lua_type(L, -1);
    if (type === lua.LUA_TSTRING || type === api.LUA_TNUMBER) return oneLine(lua.lua_tojsstring(L, -1));
    return `route() raised ${type === lua.LUA_TNIL ? 'nil' : `a ${typeNames[type] ?? 'value'}`} (error() with a non-string)`;
  }

  private result(): string | number | null {
    const L = this.L;
    const type = lua.lua_type(L, -1);
    if (type === lua.LUA_TNIL) return null;
    if (type === lua.LUA_TSTRING) {
      const name = lua.lua_tojsstring(L, -1);
      const pools = this.pools;
      if (pools !== null && !pools.includes(name)) {
        const suggestion = didYouMean(name, pools);
        const hint = suggestion === undefined ? `pools: ${pools.join(', ')}` : `did you mean ${suggestion}?`;
        throw new Error(`route() returned pool ${JSON.stringify(name)}, which backends does not define (${hint})`);
      }
      return name;
    }
    if (type === api.LUA_TNUMBER) {
      const n = lua.lua_tonumber(L, -1);
      if (Number.isInteger(n) && n >= 100 && n <= 599) return n;
      throw new Error(`route() returned ${n}: a status must be a whole number from 100 to 599`);
    }
    throw new Error(`route() returned ${type === lua.LUA_TBOOLEAN ? String(lua.lua_toboolean(L, -1)) : `a ${typeNames[type] ?? 'value'}`}: it must return a pool name, a status (100-599) or nil`);
  }
}

/** string.rep (and ("x"):rep, the same function) refuses a result over ROUTE_REP_LIMIT bytes with a Lua error. */
function boundStringRep(L: State): void {
  if (lua.lua_getglobal(L, to_luastring('string')) === lua.LUA_TTABLE && lua.lua_getfield(L, -1, to_luastring('rep')) === lua.LUA_TFUNCTION) {
    api.lua_pushcclosure(L, (L2) => {
      const bytes = aux.luaL_checklstring(L2, 1).length;
      const n = aux.luaL_checkinteger(L2, 2);
      const sep = aux.luaL_optlstring(L2, 3, new Uint8Array(0)).length;
      const total = n <= 0 ? 0 : bytes * n + sep * (n - 1);
      if (total > ROUTE_REP_LIMIT) {
        api.lua_pushliteral(L2, `string.rep: a result of ${total} bytes, over the ${ROUTE_REP_LIMIT} a route() may make`);
        return api.lua_error(L2);
      }
      api.lua_pushvalue(L2, api.lua_upvalueindex(1));
      api.lua_insert(L2, 1);
      api.lua_call(L2, lua.lua_gettop(L2) - 1, 1);
      return 1;
    }, 1);
    api.lua_setfield(L, -2, to_luastring('rep'));
  }
  api.lua_settop(L, TOP);
}

const typeNames: Record<number, string> = {
  [lua.LUA_TBOOLEAN]: 'boolean',
  [lua.LUA_TTABLE]: 'table',
  [lua.LUA_TFUNCTION]: 'function',
};
