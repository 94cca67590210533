// `rsp -t config.lua` (nginx -t): the config is checked - syntax, options,
// names resolved, addresses parsed, pools and listeners - and nothing is bound
// and no worker starts. The names are asked of a DNS server on 127.0.0.1.
import test, { type ExecutionContext } from 'ava';
import { dnsServer as testDnsServer, type DnsServer } from './dnsserver';
import * as net from 'node:net';
import { listen, runCli, tempFile } from './helpers';

const run = runCli;

/** The tests' DNS server on 127.0.0.1 (test/dnsserver.ts): one A record for each of `names`, NXDOMAIN for any other name. */
async function dnsServer(t: ExecutionContext, names: Record<string, string>): Promise<DnsServer> {
  const dns = await testDnsServer(t);
  for (const [name, address] of Object.entries(names)) dns.a[name] = [address];
  return dns;
}

const ok = (file: string): string => `rsp: the configuration file ${file} syntax is ok\nrsp: configuration file ${file} test is successful\n`;

/** A port nothing listens on now (bound and released by the test). */
async function freePort(t: ExecutionContext): Promise<number> {
  const server = net.createServer();
  const port = await listen(t, server);
  await new Promise((resolve) => server.close(resolve));
  return port;
}

for (const flag of ['-t', '--test']) {
  test(`${flag}: a good config is "syntax is ok" and "test is successful" on stderr, exit 0, with a name resolved by the DNS server it names`, async (t) => {
    const dns = await dnsServer(t, { 'backend.rsp.test': '127.0.0.1' });
    const file = tempFile(t, 'good.lua', `listenAddress = "127.0.0.1" listenPort = "${await freePort(t)}"\nresolver = "127.0.0.1:${dns.port}"\nbackendAddress = "backend.rsp.test" backendPort = "9"\n`);
    const r = await run(t, [flag, file]);
    t.is(r.code, 0, r.stderr);
    t.is(r.stderr, ok(file));
    t.is(r.stdout, '');
    t.true(dns.asked.includes('backend.rsp.test'), dns.asked.join(' '));
  });
}

test('-t binds nothing: it succeeds while the test itself listens on the config\'s port, and starts no worker', async (t) => {
  const holder = net.createServer();
  const port = await listen(t, holder);
  const pools = 'backends = { app = { "127.0.0.1:9", "127.0.0.2:9" }, web = { "127.0.0.1:10" } }\n';
  const file = tempFile(t, 'held.lua', `${pools}listeners = { { port = "${port}", address = "127.0.0.1", backend = "app", maxConnections = 5 }, { port = "0", address = "127.0.0.1", backend = "web" } }\n`);
  const r = await run(t, ['-t', file]);
  t.is(r.code, 0, r.stderr);
  t.is(r.stderr, ok(file));
  t.notRegex(r.stdout + r.stderr, /Started|Listening/);
});

test('-t with a port free: afterwards the port can still be bound (by the test)', async (t) => {
  const port = await freePort(t);
  const file = tempFile(t, 'free.lua', `listenAddress = "127.0.0.1" listenPort = "${port}" backendAddress = "127.0.0.1" backendPort = "9"\n`);
  const r = await run(t, ['-t', file]);
  t.is(r.code, 0, r.stderr);
  const server = net.createServer();
  t.teardown(() => server.close());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  t.is((server.address() as net.AddressInfo).port, port);
});

const BAD: [string, string, RegExp][] = [
  ['a syntax error', 'listenPort = "8000"\nbackendAddress = \n', /^Error parsing config file: .*bad\.lua:3: unexpected symbol near <eof>\n$/],
  ['a type error', 'listenPort = "8000" backendAddress = "127.0.0.1" backendPort = true\n', /^Error parsing config file: backendPort must be a port \(a string or a number\), got true\n$/],
  ['an unknown option', 'listenPort = "8000" backendAddress = "127.0.0.1" backendPort = "9" maxConections = 3\n', /^Error parsing config file: unknown option maxConections \(did you mean maxConnections\?\)\n$/],
  ['an address that does not parse', 'listenPort = "8000" backendAddress = "127.0.0.1" backendPort = "9" resolver = "not an address"\n', /^Error parsing config file: resolver must be a DNS server address/],
  ['a listener naming a pool that does not exist', 'backends = { app = { "127.0.0.1:9" } }\nlisteners = { { port = "8000", backend = "ap" } }\n', /^Error parsing config file: listeners\[1\] names pool "ap", which backends does not define \(pools: app\)\n$/],
  ['a bad listener maxConnections', 'backends = { app = { "127.0.0.1:9" } }\nlisteners = { { port = "8000", maxConnections = -1 } }\n', /^Error parsing config file: listeners\[1\]\.maxConnections must be a whole number from 0 to 10000000, got -1\n$/],
];

for (const [what, lua, expected] of BAD) {
  test(`-t with ${what}: the one-line error, exit 1`, async (t) => {
    const file = tempFile(t, 'bad.lua', lua);
    const r = await run(t, ['-t', file]);
    t.is(r.code, 1, r.stderr);
    t.regex(r.stderr, expected);
    t.is(r.stdout, '');
  });
}

test('-t with a name the DNS server does not know: the one-line error, exit 1', async (t) => {
  const dns = await dnsServer(t, {});
  const file = tempFile(t, 'nxdomain.lua', `listenPort = "8000" resolver = "127.0.0.1:${dns.port}" backendAddress = "no-such-host.invalid" backendPort = "9"\n`);
  const r = await run(t, ['-t', file]);
  t.is(r.code, 1, r.stderr);
  t.is(r.stderr, 'Error parsing config file: cannot resolve backendAddress "no-such-host.invalid": ENOTFOUND\n');
  t.true(dns.asked.includes('no-such-host.invalid'), dns.asked.join(' '));
});
