// What each thread carries (src/memory.ts, BENCHMARKS.md "Where the memory
// goes"): the config runs on a thread of its own, so neither the main thread
// nor the worker holds fengari once rsp has started; the worker's young
// generation is capped; and the report behind those figures
// (RSP_MEMORY_REPORT=1, then SIGUSR2) says so, for both threads.
import test, { type ExecutionContext } from 'ava';
import * as net from 'node:net';
import { exchange, listen, luaConfig, RSP, spawnProcess, tempFile } from './helpers';

async function startReporting(t: ExecutionContext, config: string): Promise<{ rsp: ReturnType<typeof spawnProcess>; port: number }> {
  const file = tempFile(t, 'rsp.lua', config);
  const rsp = spawnProcess(t, process.execPath, [RSP, '--die-with-parent', file], { RSP_MEMORY_REPORT: '1' });
  const line = await rsp.waitFor(/Listening on port \d+/);
  return { rsp, port: Number(/port (\d+)/.exec(line)![1]) };
}

test('after start-up neither thread has fengari loaded; the worker\'s young generation is capped; rsp serves', async (t) => {
  const backend = await listen(t, net.createServer((s) => s.end('hi')));
  const { rsp, port } = await startReporting(t, luaConfig({ listenPort: '0', listenAddress: '127.0.0.1', backendAddress: '127.0.0.1', backendPort: backend }));
  t.deepEqual(await exchange(port, ''), Buffer.from('hi'));
  rsp.proc.kill('SIGUSR2');
  const main = await rsp.waitFor(/memory main modules \(\d+\): /);
  const worker = await rsp.waitFor(/memory worker 0 modules \(\d+\): /);
  // The report is real: each list names what that thread did load.
  t.regex(main, / src\/cli\.js /);
  t.regex(worker, / src\/proxy\.js /);
  t.regex(worker, / koffi\//);
  t.notRegex(main, /fengari/, 'the main thread ran the config on a thread of its own');
  t.notRegex(worker, /fengari/, 'a worker gets plain data, never Lua');
  const spaces = await rsp.waitFor(/memory worker 0 spaces .*new_space=/);
  const newSpace = Number(/new_space=[\d.]+\/([\d.]+)/.exec(spaces)![1]);
  // maxYoungGenerationSizeMb = 3: two 1 MB semi-spaces (V8's default lets them grow to 8 MB each).
  t.true(newSpace <= 2.2, `worker new space ${newSpace} MB: ${spaces}`);
  t.is(await rsp.stop(), 0);
});

test('a config\'s print, run on the config thread, still comes out on stdout before the start line', async (t) => {
  const backend = await listen(t, net.createServer((s) => s.end('hi')));
  const { rsp } = await startReporting(t, `print("from the config")\n${luaConfig({ listenPort: '0', listenAddress: '127.0.0.1', backendAddress: '127.0.0.1', backendPort: backend })}`);
  t.regex(rsp.output(), /^from the config\n\[[^\]]+\] Started\./);
  t.is(await rsp.stop(), 0);
});

test('a config error on the config thread is the same one line and exit 1', async (t) => {
  const file = tempFile(t, 'rsp.lua', 'listenPort = "0"\nbackendAddress = "127.0.0.1"\nbackendPort = "9"\nmaxEvents = 0\n');
  const rsp = spawnProcess(t, process.execPath, [RSP, '--die-with-parent', file]);
  t.is(await rsp.exited, 1);
  t.is(rsp.output(), 'Error parsing config file: maxEvents must be a whole number from 1 to 65536, got 0\n');
});
