// LuaRoute: the config's route(req) run in a state of its own, as a worker does.
import test, { type ExecutionContext } from 'ava';
import * as fs from 'node:fs';
import { LuaRoute, ROUTE_INSTRUCTION_LIMIT, ROUTE_REP_LIMIT, type RouteRequest } from '../src/http/luaroute';
import { tempFile } from './helpers';

const HEAD = 'listenPort = "0" mode = "http"\nbackends = { web = { "127.0.0.1:9001" }, api = { "127.0.0.1:9100" } }\nbackend = "web"\n';

function load(t: ExecutionContext, routeBody: string, pools?: string[]): LuaRoute {
  return LuaRoute.load(tempFile(t, 'rsp.lua', `${HEAD}function route(req)\n${routeBody}\nend\n`), pools);
}

/** A request as the lead's adapter gives it, counting header() calls. */
function request(path: string, headers: [string, string][] = [], extra: Partial<RouteRequest> = {}): RouteRequest & { asked: string[] } {
  const asked: string[] = [];
  return {
    method: 'GET', path, query: null, host: 'example.com', remote: '192.0.2.7:5555',
    header(name: string) {
      asked.push(name);
      return headers.find(([k]) => k === name)?.[1] ?? null;
    },
    headerCount: headers.length,
    headerKey: (k: number) => headers[k][0],
    headerValue: (k: number) => headers[k][1],
    asked,
    ...extra,
  };
}

test('a pool name, a status, or nil', (t) => {
  const r = load(t, 'if req.path == "/api" then return "api" end if req.path == "/admin" then return 403 end return nil');
  t.is(r.call(request('/api')), 'api');
  t.is(r.call(request('/admin')), 403);
  t.is(r.call(request('/')), null);
  const none = load(t, '');
  t.is(none.call(request('/')), null); // no return at all: nil
});

test('req has method, path, query, host and remote', (t) => {
  const r = load(t, 'return table.concat({ req.method, req.path, tostring(req.query), req.host, req.remote }, "|")');
  t.is(r.call(request('/a', [], { method: 'POST', query: 'x=1' })), 'POST|/a|x=1|example.com|192.0.2.7:5555');
  t.is(r.call(request('/b')), 'GET|/b|nil|example.com|192.0.2.7:5555'); // no query: nil, not the last one's
});

test('req.headers looks a name up only when asked, in any case, nil when absent', (t) => {
  const r = load(t, 'if req.path == "/none" then return nil end local v = req.headers["X-Canary"] if v == "1" then return "api" end if v == nil and req.headers.accept == nil then return 404 end');
  const none = request('/none', [['x-canary', '1']]);
  t.is(r.call(none), null);
  t.deepEqual(none.asked, []); // a route that reads no header costs no lookup
  const canary = request('/', [['x-canary', '1']]);
  t.is(r.call(canary), 'api');
  t.deepEqual(canary.asked, ['x-canary']);
  t.is(r.call(request('/', [['accept', '*/*']])), null);
  t.is(r.call(request('/')), 404);
});

test('req.headers by several names in turn, in any case, and names made at run time: each gets its own field', (t) => {
  const r = load(t, 'local h = req.headers return table.concat({ h["x-a"] or "-", h["X-B"] or "-", h["x-a"] or "-", h["X-A"] or "-", h["x-" .. "b"] or "-", h[string.upper("x-c")] or "-" }, ",")');
  t.is(r.call(request('/', [['x-a', '1'], ['x-b', '2']])), '1,2,1,1,2,-');
  t.is(r.call(request('/', [['x-b', '3'], ['x-c', '4']])), '-,3,-,-,3,4');
});

test('pairs(req.headers) gives every field line in order; the table is read-only', (t) => {
  const r = load(t, 'if req.path == "/set" then req.headers["x-a"] = "b" end local out = {} for k, v in pairs(req.headers) do out[#out + 1] = k .. "=" .. v end return table.concat(out, ",")');
  t.is(r.call(request('/', [['host', 'a.test'], ['accept', '*/*'], ['x-a', '1']])), 'host=a.test,accept=*/*,x-a=1');
  t.is(r.call(request('/', [])), '');
  t.throws(() => r.call(request('/set')), { message: /req\.headers is read-only/ });
  t.is(r.call(request('/', [['x-b', '2']])), 'x-b=2'); // nothing the failed write did stays
});

test('req is read-only; a route that replaces req.headers does not break the next call', (t) => {
  const r = load(t, 'if req.path == "/set" then req.path = "/other" end if req.path == "/drop" then req.headers = nil return 204 end if req.headers["x-a"] then return "api" end');
  t.throws(() => r.call(request('/set')), { message: /req is read-only/ });
  t.is(r.call(request('/drop', [['x-a', '1']])), 204);
  t.is(r.call(request('/', [['x-a', '1']])), 'api');
  t.is(r.call(request('/')), null);
});

test('a Lua error: an Error with the Lua message in one line; the next call works', (t) => {
  const r = load(t, 'if req.path == "/boom" then error("no backend for\\nthis path") end if req.path == "/table" then error({}) end if req.path == "/nil" then local x = nil; return x.y end return "web"');
  const e = t.throws(() => r.call(request('/boom')));
  t.regex(e.message, /^.*rsp\.lua:5: no backend for this path$/);
  t.throws(() => r.call(request('/table')), { message: 'route() raised a table (error() with a non-string)' });
  t.throws(() => r.call(request('/nil')), { message: /rsp\.lua:5: attempt to index a nil value \(local 'x'\)/ });
  t.is(r.call(request('/')), 'web');
});

test('anything else returned is an error that says what came back', (t) => {
  const r = load(t, 'if req.path == "/t" then return {} end if req.path == "/b" then return true end if req.path == "/42" then return 42 end if req.path == "/f" then return 200.5 end return 200.0');
  t.throws(() => r.call(request('/t')), { message: 'route() returned a table: it must return a pool name, a status (100-599) or nil' });
  t.throws(() => r.call(request('/b')), { message: 'route() returned true: it must return a pool name, a status (100-599) or nil' });
  t.throws(() => r.call(request('/42')), { message: 'route() returned 42: a status must be a whole number from 100 to 599' });
  t.throws(() => r.call(request('/f')), { message: 'route() returned 200.5: a status must be a whole number from 100 to 599' });
  t.is(r.call(request('/')), 200);
});

test('with the pool names given, a name backends does not define is an error with a did-you-mean', (t) => {
  const r = load(t, 'return req.path:sub(2)', ['api', 'web']);
  t.is(r.call(request('/api')), 'api');
  t.throws(() => r.call(request('/wbe')), { message: 'route() returned pool "wbe", which backends does not define (did you mean web?)' });
  t.throws(() => r.call(request('/zzz')), { message: 'route() returned pool "zzz", which backends does not define (pools: api, web)' });
});

for (const [what, body] of [
  ['an endless loop', 'while true do end'],
  ['an endless loop that catches its errors', 'while true do pcall(function() while true do end end) end'],
  ['a loop of endless coroutines', 'while true do coroutine.resume(coroutine.create(function() while true do end end)) end'],
  ['endless recursion', 'local function f(n) return f(n + 1) + 1 end return f(1)'],
]) {
  test(`${what} is stopped: "route() ran too long", and the next call works`, (t) => {
    const r = load(t, `if req.path == "/ok" then return "web" end ${body}`);
    const e = t.throws(() => r.call(request('/')));
    t.is(e.message, `route() ran too long (over ${ROUTE_INSTRUCTION_LIMIT} Lua instructions)`);
    t.is(r.call(request('/ok')), 'web');
  });
}

test('string.rep in a route makes at most ROUTE_REP_LIMIT bytes: over it, an error at once (one instruction could otherwise build a gigabyte)', (t) => {
  const r = load(t, `if req.path == "/big" then return string.rep("x", 1e9) end if req.path == "/method" then return ("ab"):rep(1e8) end if req.path == "/sep" then return ("a"):rep(${ROUTE_REP_LIMIT}, ",") end return #string.rep("ab", 3, "-") == 8 and #("x"):rep(${ROUTE_REP_LIMIT}) == ${ROUTE_REP_LIMIT} and "web" or 500`);
  t.throws(() => r.call(request('/big')), { message: `string.rep: a result of 1000000000 bytes, over the ${ROUTE_REP_LIMIT} a route() may make` });
  t.throws(() => r.call(request('/method')), { message: /^string\.rep: a result of 200000000 bytes/ });
  t.throws(() => r.call(request('/sep')), { message: new RegExp(`^string\\.rep: a result of ${2 * ROUTE_REP_LIMIT - 1} bytes`) });
  t.is(r.call(request('/')), 'web');
});

test('a route that runs many instructions, below the limit, finishes', (t) => {
  const r = load(t, `local n = 0 for i = 1, ${Math.floor(ROUTE_INSTRUCTION_LIMIT / 10)} do n = n + i end return n > 0 and 200 or 500`);
  t.is(r.call(request('/')), 200);
  t.is(r.call(request('/')), 200); // the budget is per call
});

test('the config runs again with the same protections: os.exit refused, a file that errors now fails load in one line', (t) => {
  const exits = tempFile(t, 'exit.lua', `${HEAD}function route(req) os.exit(3) end\n`);
  t.throws(() => LuaRoute.load(exits).call(request('/')), { message: /os\.exit is not allowed in a config/ });
  // Fine when rsp started (the main thread ran it), failing when a worker runs it again.
  const variable = `RSP_TEST_LUAROUTE_${process.pid}`;
  process.env[variable] = '1';
  t.teardown(() => delete process.env[variable]);
  const flaky = tempFile(t, 'flaky.lua', `${HEAD}if os.getenv("${variable}") == nil then error("the variable\\nis gone") end\nfunction route(req) end\n`);
  t.truthy(LuaRoute.load(flaky));
  delete process.env[variable];
  t.throws(() => LuaRoute.load(flaky), { message: /flaky\.lua:4: the variable is gone$/ });
  t.throws(() => LuaRoute.load(`${flaky}.none`), { message: /^cannot open .*\.none: No such file or directory$/ });
  const noRoute = tempFile(t, 'noroute.lua', `${HEAD}if false then function route(req) end end\n`);
  t.throws(() => LuaRoute.load(noRoute), { message: /defines no function route when run again in a worker$/ });
});

test('state the route keeps in locals survives between calls (one state per worker)', (t) => {
  const file = tempFile(t, 'count.lua', `${HEAD}local n = 0\nfunction route(req) n = n + 1 return 200 + n end\n`);
  const r = LuaRoute.load(file);
  t.is(r.call(request('/')), 201);
  t.is(r.call(request('/')), 202);
  t.is(LuaRoute.load(file).call(request('/')), 201); // another worker: its own state
});
