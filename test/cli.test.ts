// The command line and the config file: one clear line and the right exit code.
import test, { type ExecutionContext } from 'ava';
import { dnsServer as testDnsServer, type DnsServer } from './dnsserver';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { exchange, listen, runCli, spawnProcess, RSP, tempFile } from './helpers';

const run = runCli;

function noStack(out: string): boolean {
  return !/^\s+at /m.test(out) && !out.includes('node:internal') && !out.includes('PANIC');
}

/** The three required options, on loopback; a case adds to it or overrides it (a later global wins). */
const BASE = 'listenAddress = "127.0.0.1" listenPort = "0" backendAddress = "127.0.0.1" backendPort = "80"\n';

const configErrors: [string, string, RegExp][] = [
  ['a syntax error', 'listenPort = = "8000"\n', /^Error parsing config file: \S+rsp\.lua:1: .*(unexpected symbol|syntax error).*\n$/],
  ['a missing option', 'listenAddress = "127.0.0.1" listenPort = "0"\nbackendAddress = "127.0.0.1"\n', /^Error parsing config file: backendPort is required: a port \(a string or a number\)\n$/],
  ['an option of the wrong type', BASE + 'listenPort = {}\n', /^Error parsing config file: listenPort must be a port \(a string or a number\), got a table\n$/],
  ['a port that is not a number', BASE + 'listenPort = "http"\n', /^Error parsing config file: listenPort must be a port number \(0-65535\), got "http"\n$/],
  ['a port out of range', BASE + 'listenPort = 70000\n', /^Error parsing config file: listenPort must be a port number \(0-65535\), got 70000\n$/],
  ['backend port 0', BASE + 'backendPort = "0"\n', /^Error parsing config file: backendPort must be a port number \(1-65535\), got "0"\n$/],
  ['an unknown trigger mode', BASE + 'triggerMode = "sideways"\n', /^Error parsing config file: triggerMode must be "level" or "edge", got "sideways"\n$/],
  ['an unknown read policy', BASE + 'readPolicy = "greedy"\n', /^Error parsing config file: readPolicy must be "auto" or "drain" or "eagain" or "once", got "greedy"\n$/],
  ['a whole number out of range', BASE + 'maxEvents = 0\n', /^Error parsing config file: maxEvents must be a whole number from 1 to 65536, got 0\n$/],
  ['a fraction where a whole number goes', BASE + 'readBudget = 1.5\n', /^Error parsing config file: readBudget must be a whole number from 0 to 1048576, got 1\.5\n$/],
  ['a string where true or false goes', BASE + 'rdhup = "yes"\n', /^Error parsing config file: rdhup must be true or false, got "yes"\n$/],
  ['a resolver that is not an address', BASE + 'resolver = "dns.example:53"\n', /^Error parsing config file: resolver must be a DNS server address \(a string: "address" or "address:port"\), got "dns\.example:53"\n$/],
  ['a misspelt option in another case', 'listenport = "0" listenPort = "0" backendAddress = "127.0.0.1" backendPort = "80"\n', /^Error parsing config file: unknown option listenport \(did you mean listenPort\?\)\n$/],
  // Unknown names come before the required options: this file has no listenPort at all.
  ['only a misspelt required option', 'listenport = "8000" backendAddress = "127.0.0.1" backendPort = "80"\n', /^Error parsing config file: unknown option listenport \(did you mean listenPort\?\)\n$/],
  ['a misspelt option', BASE + 'backendAdress = "10.0.0.5"\n', /^Error parsing config file: unknown option backendAdress \(did you mean backendAddress\?\)\n$/],
  ['three misspelt options, in file order', BASE + 'readBudgett = 4\nidle_timeout = 5000\nconectTimeout = 1\n', /^Error parsing config file: unknown options readBudgett \(did you mean readBudget\?\), idle_timeout \(did you mean idleTimeout\?\), conectTimeout \(did you mean connectTimeout\?\)\n$/],
  ['an unknown option like no option', BASE + 'frobnicate = true\n', /^Error parsing config file: unknown option frobnicate; helper values in the config must be local\n$/],
  ['a helper value that is not local', 'host = "127.0.0.1"\nlistenAddress = host listenPort = "0" backendAddress = host backendPort = "80"\n', /^Error parsing config file: unknown option host; helper values in the config must be local\n$/],
  ['a typo and a helper', BASE + 'helper = 1\nrdhupp = false\n', /^Error parsing config file: unknown options helper, rdhupp \(did you mean rdhup\?\); helper values in the config must be local\n$/],
  ['an error raised by the config', 'error("no config for you")\n', /^Error parsing config file: \S+rsp\.lua:1: no config for you\n$/],
  ['an error raised by a metamethod', 'setmetatable(_G, {__newindex = function() error("boom") end})\n' + BASE, /^Error parsing config file: \S+rsp\.lua:1: boom\n$/],
  ['an option whose metamethods raise', BASE + 'listenPort = setmetatable({}, {__index = function() error("boom") end, __tostring = function() error("boom") end})\n', /^Error parsing config file: listenPort must be a port \(a string or a number\), got a table\n$/],
  // Options are read raw: a metatable on _G neither supplies nor breaks them.
  ['a _G whose __index raises', 'setmetatable(_G, {__index = function() error("boom") end})\nlistenAddress = "127.0.0.1" backendAddress = "127.0.0.1" backendPort = "80"\n', /^Error parsing config file: listenPort is required: a port \(a string or a number\)\n$/],
  ['os.exit', BASE + 'os.exit(0)\n', /^Error parsing config file: \S+rsp\.lua:2: os\.exit is not allowed in a config\n$/],
  ['water marks the wrong way round', BASE + 'highWaterMark = 1000 lowWaterMark = 2000\n', /^Error parsing config file: lowWaterMark \(2000\) must be below highWaterMark \(1000\)\n$/],
  ['a low-water mark above the default high-water mark', BASE + 'lowWaterMark = 2000000\n', /^Error parsing config file: lowWaterMark \(2000000\) must be below highWaterMark \(1048576\) \(the default: set highWaterMark above lowWaterMark\)\n$/],
  ['a backend that is the listener', 'listenAddress = "127.0.0.1" listenPort = 9 backendAddress = "127.0.0.1" backendPort = "9"\n', /^Error parsing config file: backendAddress 127\.0\.0\.1 port 9 is rsp's own listener \(listenAddress 127\.0\.0\.1, listenPort 9\): rsp would proxy to itself\n$/],
  ['a local backend on the port of a wildcard listener', 'listenAddress = "0.0.0.0" listenPort = 9 backendAddress = "127.0.0.2" backendPort = 9\n', /^Error parsing config file: backendAddress 127\.0\.0\.2 port 9 is rsp's own listener \(listenAddress 0\.0\.0\.0, listenPort 9\): rsp would proxy to itself\n$/],
  ['an IPv6 backend that is the dual-stack listener', 'listenAddress = "::" listenPort = 9 backendAddress = "[0:0::1]" backendPort = 9\n', /^Error parsing config file: backendAddress ::1 port 9 is rsp's own listener \(listenAddress ::, listenPort 9\): rsp would proxy to itself\n$/],
];

for (const [what, lua, expected] of configErrors) {
  test(`a config with ${what} gets one line and exit 1`, async (t) => {
    const { code, out } = await run(t, [tempFile(t, 'rsp.lua', lua)]);
    t.is(code, 1, out);
    t.regex(out, expected);
    t.true(noStack(out), out);
  });
}

test('a config that never finishes is stopped with one line', async (t) => {
  for (const lua of ['while true do end\n', 'while true do pcall(function() while true do end end) end\n']) {
    const file = tempFile(t, 'endless.lua', lua);
    const { code, out } = await run(t, [file]);
    t.is(code, 1, out);
    t.is(out, `Error parsing config file: ${file} did not finish (an endless loop?)\n`);
  }
});

test('a config file that does not exist gets the C rsp\'s message', async (t) => {
  const { code, out } = await run(t, ['/nonexistent/rsp.lua']);
  t.is(code, 1);
  t.is(out, 'Error parsing config file: cannot open /nonexistent/rsp.lua: No such file or directory\n');
});

/** Start the CLI on a config and wait for its start line; returns the process and its port. */
async function startWith(t: ExecutionContext, lua: string): Promise<ReturnType<typeof spawnProcess> & { port: number }> {
  const p = spawnProcess(t, process.execPath, [RSP, '--die-with-parent', tempFile(t, 'rsp.lua', lua)]);
  const line = await p.waitFor(/Listening on port \d+/);
  return { ...p, port: Number(/Listening on port (\d+)/.exec(line)![1]) };
}

test('the C rsp\'s three settings work on one line, with numbers too', async (t) => {
  const backend = await listen(t, net.createServer((s) => s.end('hi')));
  for (const lua of [
    `listenPort = "0" backendAddress = "127.0.0.1" backendPort = "${backend}" listenAddress = "127.0.0.1"`,
    `listenPort = 0 backendAddress = "127.0.0.1" backendPort = ${backend} listenAddress = "127.0.0.1"`,
  ]) {
    const p = spawnProcess(t, process.execPath, [RSP, '--die-with-parent', tempFile(t, 'rsp.lua', lua)]);
    const line = await p.waitFor(/Listening/);
    t.regex(line, /^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] Started\.  Listening on port [1-9]\d*\.$/);
    t.is(await p.stop(), 0);
  }
});

test('accepted without a word: a UTF-8 byte order mark, local helpers, a _G metatable that raises', async (t) => {
  const backend = await listen(t, net.createServer((s) => s.end('hi')));
  const lua = '\uFEFF-- saved by an editor that writes a BOM\n'
    + `local host = "127.0.0.1"\nlistenAddress = host listenPort = "0" backendAddress = host backendPort = ${backend}\n`
    + 'setmetatable(_G, {__index = function() error("boom") end})\n';
  const rsp = await startWith(t, lua);
  t.deepEqual(await exchange(rsp.port, ''), Buffer.from('hi'));
  t.is(await rsp.stop(), 0);
  t.regex(rsp.output(), /^\[[^\]]+\] Started\.  Listening on port \d+\.\n/, 'nothing before the start line');
});

test('highWaterMark alone below the default low-water mark lowers it: rsp starts', async (t) => {
  const backend = await listen(t, net.createServer((s) => s.end('hi')));
  const rsp = await startWith(t, `listenAddress = "127.0.0.1" listenPort = 0 backendAddress = "127.0.0.1" backendPort = ${backend} highWaterMark = 4096`);
  t.deepEqual(await exchange(rsp.port, ''), Buffer.from('hi'));
  t.is(await rsp.stop(), 0);
});

const WARNINGS: [string, RegExp][] = [
  ['epolloutPolicy = "always"', /Warning: epolloutPolicy = "always" in level mode wakes rsp on every loop turn for every connection .*; for experiments only$/],
  ['triggerMode = "edge" readBudget = 0', /Warning: readBudget = 0 lets one busy connection read without limit .*; for experiments only$/],
  ['readPolicy = "drain" readBudget = 0', /Warning: readBudget = 0 lets one busy connection read without limit .*; for experiments only$/],
  ['triggerMode = "edge" acceptPolicy = "once"', /Warning: acceptPolicy = "once" in edge mode accepts one connection per edge .*; for experiments only$/],
  ['triggerMode = "edge" readPolicy = "once"', /Warning: readPolicy = "once" in edge mode reads once per edge, .*; for experiments only$/],
];

for (const [settings, warning] of WARNINGS) {
  test(`${settings} prints one warning at start-up`, async (t) => {
    const rsp = await startWith(t, BASE + settings);
    t.is(await rsp.stop(), 0);
    const lines = rsp.output().split('\n').filter((l) => l.includes('Warning'));
    t.is(lines.length, 1, rsp.output());
    t.regex(lines[0], /^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] Warning: /);
    t.regex(lines[0], warning);
  });
}

test('the defaults and the cheap settings print no warning', async (t) => {
  // Level mode reads once per event anyway; edge mode with "once" is the one that stalls.
  for (const settings of ['', 'readPolicy = "once"', 'triggerMode = "edge" epolloutPolicy = "always"', 'acceptPolicy = "once"', 'readBudget = 0']) {
    const rsp = await startWith(t, BASE + settings);
    t.is(await rsp.stop(), 0);
    t.notRegex(rsp.output(), /Warning/, settings);
  }
});

/** The tests' DNS server on 127.0.0.1 (test/dnsserver.ts): one A record for each of `names`, NXDOMAIN for any other name. */
async function dnsServer(t: ExecutionContext, names: Record<string, string>): Promise<DnsServer> {
  const dns = await testDnsServer(t);
  for (const [name, address] of Object.entries(names)) dns.a[name] = [address];
  return dns;
}

test('a backend name that does not resolve is one line and exit 1 (asked of a DNS server on loopback)', async (t) => {
  const dns = await dnsServer(t, {});
  const lua = BASE + `resolver = "127.0.0.1:${dns.port}" backendAddress = "no-such-host.invalid"\n`;
  const { code, out } = await run(t, [tempFile(t, 'rsp.lua', lua)]);
  t.is(code, 1, out);
  t.is(out, 'Error parsing config file: cannot resolve backendAddress "no-such-host.invalid": ENOTFOUND\n');
  t.true(noStack(out), out);
  t.true(dns.asked.includes('no-such-host.invalid'), dns.asked.join(' '));
});

test('resolver: names are resolved by the DNS server the config names', async (t) => {
  const backend = await listen(t, net.createServer((s) => s.end('hi')));
  const dns = await dnsServer(t, { 'backend.rsp.test': '127.0.0.1' });
  const rsp = await startWith(t, BASE + `resolver = "127.0.0.1:${dns.port}" backendAddress = "backend.rsp.test" backendPort = ${backend}\n`);
  t.deepEqual(await exchange(rsp.port, ''), Buffer.from('hi'));
  t.is(await rsp.stop(), 0);
  t.true(dns.asked.includes('backend.rsp.test'), dns.asked.join(' '));
  // Only this server was asked (a resolv.conf search list may add suffixes to the name).
  t.true(dns.asked.every((name) => name.startsWith('backend.rsp.test')), dns.asked.join(' '));
});

test('a port already in use is one line and exit 1', async (t) => {
  const taken = await listen(t, net.createServer());
  const { code, out } = await run(t, [tempFile(t, 'rsp.lua', `listenAddress = "127.0.0.1" listenPort = ${taken} backendAddress = "127.0.0.1" backendPort = 9`)]);
  t.is(code, 1, out);
  t.regex(out, new RegExp(`^\\[[^\\]]+\\] Could not listen on 127\\.0\\.0\\.1:${taken}: EADDRINUSE\\n$`));
});

test('--help and --version exit 0; usage errors exit 2', async (t) => {
  const help = await run(t, ['--help']);
  t.is(help.code, 0);
  t.regex(help.out, /^Usage: rsp \[options\] <config\.lua>/);
  const version = await run(t, ['--version']);
  t.is(version.code, 0);
  t.regex(version.out, /^rsp \d+\.\d+\.\d+\n$/);
  for (const args of [[], ['--frobnicate', 'x.lua'], ['a.lua', 'b.lua']]) {
    const r = await run(t, args);
    t.is(r.code, 2, `${args.join(' ')}: ${r.out}`);
    t.regex(r.out, /^rsp: .+\nUsage: rsp/);
  }
});

test('--die-with-parent: rsp stops when the process that started it is killed', async (t) => {
  const backend = await listen(t, net.createServer((s) => s.end()));
  const config = tempFile(t, 'rsp.lua', `listenAddress = "127.0.0.1" listenPort = "0" backendAddress = "127.0.0.1" backendPort = ${backend}`);
  // A parent that starts rsp, says its pid once rsp is listening, and then waits to be killed.
  const script = `
    const { spawn } = require('node:child_process');
    const rsp = spawn(process.execPath, [${JSON.stringify(RSP)}, '--die-with-parent', ${JSON.stringify(config)}], { stdio: ['ignore', 'pipe', 'inherit'] });
    rsp.stdout.on('data', (d) => { if (/Listening/.test(String(d))) console.log('rsp pid ' + rsp.pid); });
    setInterval(() => {}, 1000);`;
  const parent = spawnProcess(t, process.execPath, ['-e', script]);
  const pid = Number(/rsp pid (\d+)/.exec(await parent.waitFor(/rsp pid \d+/))![1]);
  t.teardown(() => {
    // Only if that pid is still our rsp, not a process that got the number since.
    try {
      if (fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(config)) process.kill(pid, 'SIGKILL');
    } catch {
      // already gone, as it should be
    }
  });
  parent.proc.kill('SIGKILL');
  // Gone, or a zombie waiting for whoever inherited it to reap it.
  const alive = (): boolean => {
    try {
      return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
    } catch {
      return false;
    }
  };
  for (let waited = 0; alive() && waited < 10000; waited += 20) await new Promise((r) => setTimeout(r, 20));
  t.false(alive(), 'rsp outlived its parent');
});
