// The small part of fengari's API that config.ts uses (fengari ships no types).
declare module 'fengari' {
  type State = object;
  export function to_luastring(s: string): Uint8Array;
  export function to_jsstring(s: Uint8Array): string;
  export const lua: {
    LUA_OK: number;
    LUA_TNIL: number;
    LUA_TBOOLEAN: number;
    LUA_TNUMBER: number;
    LUA_TSTRING: number;
    LUA_TTABLE: number;
    LUA_TFUNCTION: number;
    LUA_RIDX_GLOBALS: number;
    LUA_REGISTRYINDEX: number;
    lua_getglobal(L: State, name: Uint8Array): number;
    lua_type(L: State, idx: number): number;
    lua_typename(L: State, t: number): Uint8Array;
    lua_tojsstring(L: State, idx: number): string;
    lua_tonumber(L: State, idx: number): number;
    lua_toboolean(L: State, idx: number): boolean;
    lua_isinteger(L: State, idx: number): boolean;
    lua_pop(L: State, n: number): void;
    lua_pushnil(L: State): void;
    lua_next(L: State, idx: number): number;
    lua_pcall(L: State, nargs: number, nresults: number, msgh: number): number;
    lua_rawgeti(L: State, idx: number, n: number): number;
    lua_gettop(L: State): number;
    lua_rawlen(L: State, idx: number): number;
    lua_getfield(L: State, idx: number, k: Uint8Array): number;
  };
  export const lauxlib: {
    luaL_newstate(): State;
    luaL_loadbuffer(L: State, buf: Uint8Array, size: number | null, name: Uint8Array): number;
  };
  export const lualib: {
    luaL_openlibs(L: State): void;
  };
}
