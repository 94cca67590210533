// The command line and the config file: one clear line and the right exit code.
import test, { type ExecutionContext } from 'ava';
import * as fs from 'node:fs';
import * as net from 'node:net';
import { listen, spawnProcess, RSP, tempFile } from './helpers';

async function run(t: ExecutionContext, args: string[]): Promise<{ code: number | null; out: string }> {
  const p = spawnProcess(t, process.execPath, [RSP, ...args]);
  const code = await p.exited;
  return { code, out: p.output() };
}

function noStack(out: string): boolean {
  return !/^\s+at /m.test(out) && !out.includes('node:internal');
}

const configErrors: [string, string, RegExp][] = [
  ['a syntax error', 'listenPort = = "8000"\n', /^Error parsing config file: \S+rsp\.lua:1: .*(unexpected symbol|syntax error).*\n$/],
  ['a missing option', 'listenPort = "0"\nbackendAddress = "127.0.0.1"\n', /^Error parsing config file: backendPort must be a string\n$/],
  ['an option of the wrong type', 'listenPort = {}\nbackendAddress = "127.0.0.1"\nbackendPort = "80"\n', /^Error parsing config file: listenPort must be a string\n$/],
  ['a port that is not a number', 'listenPort = "http"\nbackendAddress = "127.0.0.1"\nbackendPort = "80"\n', /^Error parsing config file: listenPort must be a port number \(0-65535\), got "http"\n$/],
  ['an unknown trigger mode', 'listenPort = "0" backendAddress = "127.0.0.1" backendPort = "80" triggerMode = "sideways"\n', /^Error parsing config file: triggerMode must be "level" or "edge", got "sideways"\n$/],
  ['a misspelt option', 'listenport = "0" listenPort = "0" backendAddress = "127.0.0.1" backendPort = "80"\n', /^Error parsing config file: unknown option listenport \(did you mean listenPort\?\)\n$/],
  ['an error raised by the config', 'error("no config for you")\n', /^Error parsing config file: \S+rsp\.lua:1: no config for you\n$/],
  ['water marks the wrong way round', 'listenPort = "0" backendAddress = "127.0.0.1" backendPort = "80" highWaterMark = 1000 lowWaterMark = 2000\n', /^Error parsing config file: lowWaterMark \(2000\) must be below highWaterMark \(1000\)\n$/],
  ['a backend name that does not resolve', 'listenPort = "0" backendAddress = "no-such-host.invalid" backendPort = "80"\n', /^Error parsing config file: cannot resolve backendAddress "no-such-host\.invalid": \w+\n$/],
];

for (const [what, lua, expected] of configErrors) {
  test(`a config with ${what} gets one line and exit 1`, async (t) => {
    const { code, out } = await run(t, [tempFile(t, 'rsp.lua', lua)]);
    t.is(code, 1, out);
    t.regex(out, expected);
    t.true(noStack(out), out);
  });
}

test('a config file that does not exist gets the C rsp\'s message', async (t) => {
  const { code, out } = await run(t, ['/nonexistent/rsp.lua']);
  t.is(code, 1);
  t.is(out, 'Error parsing config file: cannot open /nonexistent/rsp.lua: No such file or directory\n');
});

test('the C rsp\'s three settings work on one line, with numbers too', async (t) => {
  const backend = await listen(t, net.createServer((s) => s.end('hi')));
  for (const lua of [
    `listenPort = "0" backendAddress = "127.0.0.1" backendPort = "${backend}"`,
    `listenPort = 0 backendAddress = "127.0.0.1" backendPort = ${backend}`,
  ]) {
    const p = spawnProcess(t, process.execPath, [RSP, tempFile(t, 'rsp.lua', lua)]);
    const line = await p.waitFor(/Listening/);
    t.regex(line, /^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] Started\.  Listening on port [1-9]\d*\.$/);
    t.is(await p.stop(), 0);
  }
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
  const config = tempFile(t, 'rsp.lua', `listenPort = "0" backendAddress = "127.0.0.1" backendPort = ${backend}`);
  // A parent that starts rsp, says its pid once rsp is listening, and then waits to be killed.
  const script = `
    const { spawn } = require('node:child_process');
    const rsp = spawn(process.execPath, [${JSON.stringify(RSP)}, '--die-with-parent', ${JSON.stringify(config)}], { stdio: ['ignore', 'pipe', 'inherit'] });
    rsp.stdout.on('data', (d) => { if (/Listening/.test(String(d))) console.log('rsp pid ' + rsp.pid); });
    setInterval(() => {}, 1000);`;
  const parent = spawnProcess(t, process.execPath, ['-e', script]);
  const pid = Number(/rsp pid (\d+)/.exec(await parent.waitFor(/rsp pid \d+/))![1]);
  t.teardown(() => {
    try {
      process.kill(pid, 'SIGKILL');
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
