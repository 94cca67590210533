// HTTP mode's configuration: mode (global and per listener), routes, route,
// limits, trustedProxies, the timeouts and the pools' upstream keep-alive.
// Values and defaults are read with parseConfig; every error goes through the
// real CLI (`rsp -t`), which must say it in one line and exit 1.
import test from 'ava';
import { parseConfig } from '../src/config';
import { toSockaddr } from '../ffi/sockaddr';
import { TrustedProxies, parseCidr } from '../src/http/trusted';
import { runCli, tempFile } from './helpers';

const TWO_POOLS = 'backends = { web = { "127.0.0.1:9001", "127.0.0.1:9002" }, api = { "127.0.0.1:9100" } }\n';
const ONE_POOL = 'backends = { web = { "127.0.0.1:9001" } }\n';

test('a TCP config gets the HTTP defaults: mode "tcp", no routes, no hook, the default limits, keep-alive 32 per member', (t) => {
  const c = parseConfig(tempFile(t, 'tcp.lua', 'listenPort = "0" backendAddress = "127.0.0.1" backendPort = "9"\n'));
  t.is(c.mode, 'tcp');
  t.is(c.listeners[0].mode, 'tcp');
  t.is(c.routes, null);
  t.false(c.routeHook);
  t.deepEqual(c.limits, { requestLine: 8192, headerBytes: 32768, headers: 100, body: 0 });
  t.deepEqual(c.trustedProxies, []);
  t.true(c.xForwarded);
  t.is(c.requestHeadTimeout, 10000);
  t.is(c.keepAliveTimeout, 60000);
  t.is(c.backendTimeout, 60000);
  t.is(c.pools[0].keepalive, 32);
  t.is(c.pools[0].keepaliveTimeout, 60000);
});

test('the issue\'s HTTP config: routes lower-cased, wildcards as suffixes longest first, the hook seen, the path absolute, all of it structured-clonable', (t) => {
  const file = tempFile(t, 'http.lua', `listenPort = "0" mode = "http"\n${TWO_POOLS}routes = {
  ["Example.COM."] = "web",
  ["*.example.com"] = "web",
  ["*.api.example.com"] = "api",
  ["10.0.0.1"] = "api",
  ["[::1]"] = "api",
  default = "web",
}
function route(req)
  if req.headers["x-canary"] then return "api" end
end
limits = { requestLine = 4096, body = 1048576 }
trustedProxies = { "10.0.0.0/8", " ::1 ", "127.0.0.1", "::ffff:192.168.0.0/112" }
xForwarded = false requestHeadTimeout = 0 keepAliveTimeout = "5000" backendTimeout = 1
`);
  const c = parseConfig(file);
  t.is(c.mode, 'http');
  t.is(c.listeners[0].mode, 'http');
  t.is(c.listeners[0].backend, 'web'); // routes' default
  t.deepEqual(c.routes, {
    exact: [['example.com', 'web'], ['10.0.0.1', 'api'], ['::1', 'api']],
    wildcard: [['.api.example.com', 'api'], ['.example.com', 'web']],
    default: 'web',
  });
  t.true(c.routeHook);
  t.is(c.configPath, file);
  t.deepEqual(c.limits, { requestLine: 4096, headerBytes: 32768, headers: 100, body: 1048576 });
  t.deepEqual(c.trustedProxies, ['10.0.0.0/8', '::1/128', '127.0.0.1/32', '::ffff:192.168.0.0/112']);
  t.false(c.xForwarded);
  t.deepEqual([c.requestHeadTimeout, c.keepAliveTimeout, c.backendTimeout], [0, 5000, 1]);
  t.deepEqual(structuredClone(c), c);
});

test('routes without default: the one pool when there is one, none (404) with several', (t) => {
  const one = parseConfig(tempFile(t, 'one.lua', `listenPort = "0" mode = "http"\n${ONE_POOL}routes = { ["a.test"] = "web" }\n`));
  t.is(one.routes?.default, 'web');
  const several = parseConfig(tempFile(t, 'several.lua', `listenPort = "0" mode = "http"\n${TWO_POOLS}routes = { ["a.test"] = "web" }\n`));
  t.is(several.routes?.default, null);
  t.is(several.listeners[0].backend, '');
});

test('mode per listener: its own, else the global one; keepalive per pool', (t) => {
  const c = parseConfig(tempFile(t, 'listeners.lua', `mode = "http"
backends = { web = { "127.0.0.1:9001", keepalive = 0, keepaliveTimeout = 1500 }, api = { "127.0.0.1:9100", keepalive = "8" } }
listeners = { { port = "0", backend = "web" }, { port = "0", backend = "api", mode = "tcp" } }
`));
  t.deepEqual(c.listeners.map((l) => [l.mode, l.backend]), [['http', 'web'], ['tcp', 'api']]);
  t.deepEqual(c.pools.map((p) => [p.name, p.keepalive, p.keepaliveTimeout]), [['api', 8, 60000], ['web', 0, 1500]]);
});

test('rsp -t accepts an HTTP config', async (t) => {
  const file = tempFile(t, 'ok.lua', `listenAddress = "127.0.0.1" listenPort = "0" mode = "http"\n${TWO_POOLS}routes = { ["*.a.test"] = "api", default = "web" }\nfunction route(req) return nil end\nlimits = { headers = 50 }\ntrustedProxies = { "10.0.0.0/8" }\n`);
  const r = await runCli(t, ['-t', file]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stderr, /test is successful/);
});

const BAD: [string, string, string | RegExp][] = [
  ['an unknown mode', 'listenPort = "0" mode = "https"\n' + ONE_POOL, 'mode must be "tcp" or "http", got "https"'],
  ['a listener\'s unknown mode', `${ONE_POOL}listeners = { { port = "0", mode = "htp" } }\n`, 'listeners[1].mode must be "tcp" or "http", got "htp"'],
  ['routes with no HTTP listener', `listenPort = "0"\n${ONE_POOL}routes = { ["a.test"] = "web" }\n`, 'routes set, but no listener is in HTTP mode: add mode = "http" (globally, or to a listener in listeners)'],
  ['route with no HTTP listener', `listenPort = "0"\n${ONE_POOL}function route(req) end\n`, 'route set, but no listener is in HTTP mode: add mode = "http" (globally, or to a listener in listeners)'],
  ['route that is not a function', `listenPort = "0" mode = "http"\n${ONE_POOL}route = "web"\n`, 'route must be a function (function route(req) ... end), got "web"'],
  ['routes naming a pool that does not exist', `listenPort = "0" mode = "http"\n${TWO_POOLS}routes = { ["a.test"] = "wbe" }\n`, 'routes["a.test"] names pool "wbe", which backends does not define (did you mean web?)'],
  ['routes.default naming no pool', `listenPort = "0" mode = "http"\n${TWO_POOLS}routes = { default = "db" }\n`, 'routes.default names pool "db", which backends does not define (pools: api, web)'],
  ['a route host that is not a host', `listenPort = "0" mode = "http"\n${ONE_POOL}routes = { ["a b.test"] = "web" }\n`, 'routes["a b.test"]: "a b.test" is not a host name, IP address or wildcard like "*.example.com"'],
  ['a wildcard in the middle', `listenPort = "0" mode = "http"\n${ONE_POOL}routes = { ["a.*.test"] = "web" }\n`, 'routes["a.*.test"]: "a.*.test" is not a host name, IP address or wildcard like "*.example.com"'],
  ['a wildcard of an address', `listenPort = "0" mode = "http"\n${ONE_POOL}routes = { ["*.10.0.0.1"] = "web" }\n`, 'routes["*.10.0.0.1"]: "*.10.0.0.1" is not a host name, IP address or wildcard like "*.example.com"'],
  ['the same host twice', `listenPort = "0" mode = "http"\n${ONE_POOL}routes = { ["a.test"] = "web", ["A.test."] = "web" }\n`, /^routes\["(a\.test|A\.test\.)"\]: the same host as routes\["(a\.test|A\.test\.)"\] \(hosts are compared without case and trailing dot\)$/],
  ['routes as a list', `listenPort = "0" mode = "http"\n${ONE_POOL}routes = { "web" }\n`, 'routes must be a table of host = pool like'],
  ['a listener backend with routes', `mode = "http"\n${ONE_POOL}listeners = { { port = "0", backend = "web" } }\nroutes = { ["a.test"] = "web" }\n`, 'listeners[1].backend and routes both set: an HTTP listener sends each request where routes say (routes.default for the other hosts)'],
  ['an unknown limit', `listenPort = "0" mode = "http"\n${ONE_POOL}limits = { headrs = 10 }\n`, 'unknown option limits.headrs (did you mean headers?)'],
  ['a limit out of range', `listenPort = "0" mode = "http"\n${ONE_POOL}limits = { requestLine = 10 }\n`, 'limits.requestLine must be a whole number from 64 to 1048576, got 10'],
  ['a negative body limit', `listenPort = "0" mode = "http"\n${ONE_POOL}limits = { body = -1 }\n`, 'limits.body must be a whole number from 0 to 1125899906842624, got -1'],
  ['a CIDR with host bits', `listenPort = "0" mode = "http"\n${ONE_POOL}trustedProxies = { "127.0.0.1", "10.1.2.3/8" }\n`, 'trustedProxies[2]: "10.1.2.3/8" has bits set past its /8 prefix (did you mean 10.0.0.0/8?)'],
  ['an IPv6 prefix too long', `listenPort = "0" mode = "http"\n${ONE_POOL}trustedProxies = { "fe80::/129" }\n`, 'trustedProxies[1]: "fe80::/129": the prefix length of an IPv6 CIDR is at most 128'],
  ['a name in trustedProxies', `listenPort = "0" mode = "http"\n${ONE_POOL}trustedProxies = { "proxy.internal" }\n`, 'trustedProxies[1]: "proxy.internal" is not an address or CIDR ("10.0.0.0/8", "::1/128", "127.0.0.1")'],
  ['trustedProxies not a list', `listenPort = "0" mode = "http"\n${ONE_POOL}trustedProxies = "10.0.0.0/8"\n`, 'trustedProxies must be a table like { "10.0.0.0/8", "::1/128", "127.0.0.1" }, got "10.0.0.0/8"'],
  ['a timeout out of range', `listenPort = "0" mode = "http"\n${ONE_POOL}requestHeadTimeout = -5\n`, 'requestHeadTimeout must be a whole number from 0 to 3600000, got -5'],
  ['xForwarded not a boolean', `listenPort = "0" mode = "http"\n${ONE_POOL}xForwarded = "yes"\n`, 'xForwarded must be true or false, got "yes"'],
  ['an unknown pool option', `listenPort = "0" mode = "http"\nbackends = { web = { "127.0.0.1:9001", keepAlive = 3 } }\n`, 'unknown option backends.web.keepAlive (did you mean keepalive?)'],
  ['a negative keepalive', `listenPort = "0" mode = "http"\nbackends = { web = { "127.0.0.1:9001", keepalive = -1 } }\n`, 'backends.web.keepalive must be a whole number from 0 to 100000, got -1'],
];

for (const [what, lua, message] of BAD) {
  test(`rsp -t with ${what}: one line, exit 1`, async (t) => {
    const r = await runCli(t, ['-t', tempFile(t, 'bad.lua', lua)]);
    t.is(r.code, 1, r.stderr);
    const line = r.stderr.replace(/^Error parsing config file: /, '').replace(/\n$/, '');
    if (typeof message === 'string') t.true(line.startsWith(message), r.stderr);
    else t.regex(line, message);
    t.true(r.stderr.startsWith('Error parsing config file: '), r.stderr);
    t.is(r.stderr.split('\n').length, 2, r.stderr); // one line and its newline
    t.is(r.stdout, '');
  });
}

// ---- TrustedProxies -----------------------------------------------------

test('parseCidr: addresses alone are one host; both families; what is wrong is said', (t) => {
  t.deepEqual(parseCidr('10.0.0.0/8'), { bytes: Uint8Array.of(10, 0, 0, 0), prefix: 8 });
  t.is((parseCidr('127.0.0.1') as { prefix: number }).prefix, 32);
  t.is((parseCidr('::1') as { prefix: number }).prefix, 128);
  t.is((parseCidr('0.0.0.0/0') as { prefix: number }).prefix, 0);
  for (const bad of ['10.0.0/8', '256.0.0.1', '01.2.3.4', '1.2.3.4/33', '::1::2', '1:2:3:4:5:6:7:8:9', 'a.b', '10.0.0.0/', '']) {
    t.is(typeof parseCidr(bad), 'string', bad);
  }
});

test('TrustedProxies.has: sockaddr_in and sockaddr_in6 against IPv4 and IPv6 CIDRs, IPv4-mapped addresses as IPv4', (t) => {
  const trusted = new TrustedProxies(['10.0.0.0/8', '192.168.1.7', '2001:db8::/32', '::1', '::ffff:172.16.0.0/108']);
  const has = (address: string): boolean => trusted.has(toSockaddr(address, 12345));
  t.true(has('10.0.0.1'));
  t.true(has('10.255.255.255'));
  t.false(has('11.0.0.1'));
  t.true(has('192.168.1.7'));
  t.false(has('192.168.1.8'));
  t.true(has('::ffff:10.1.2.3')); // a v4 client on a dual-stack listener
  t.false(has('::ffff:11.1.2.3'));
  t.true(has('2001:db8:1::5'));
  t.false(has('2001:db9::5'));
  t.true(has('::1'));
  t.false(has('::2'));
  t.true(has('172.16.3.4')); // an IPv4-mapped CIDR matches IPv4 clients
  t.false(has('172.32.0.1'));
  t.false(new TrustedProxies([]).has(toSockaddr('127.0.0.1', 1)));
  t.true(new TrustedProxies(['0.0.0.0/0']).has(toSockaddr('203.0.113.9', 1)));
  t.false(new TrustedProxies(['0.0.0.0/0']).has(toSockaddr('2001:db8::1', 1)));
  t.true(new TrustedProxies(['::/0']).has(toSockaddr('2001:db8::1', 1)));
  t.throws(() => new TrustedProxies(['10.0.0.1/8']), { message: /did you mean 10\.0\.0\.0\/8/ });
});
