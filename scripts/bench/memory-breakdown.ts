// Where rsp's memory goes: the figures behind BENCHMARKS.md's "Where the
// memory goes" section.
//
//   node dist/scripts/bench/memory-breakdown.js [--rsp PATH/bin/rsp] [--idle 5000]
//        [--load 60] [--every 10] [--parts modules,start,idle,load]
//
// modules  what Node and each heavy module costs, each loaded alone in a fresh
//          node (one isolate, after a full GC): RSS split into anonymous
//          memory and file-backed pages (the node binary, koffi.node), and
//          the V8 heap; deltas are against node with nothing loaded.
// start    rsp at start (its defaults, one backend): RSS, and each isolate's
//          V8 heap, asked for with SIGUSR2 under RSP_MEMORY_REPORT=1
//          (src/memory.ts).
// idle     the same once --idle client connections are proxied to a backend
//          that holds them without answering (as the benchmark's idle memory).
// load     keep-alive load (wrk -c64 on a 100-byte response from nginx) for
//          --load seconds, RSS and the heaps every --every seconds, then the
//          same 5 s after the load stopped: does RSS settle or grow?
//
// --rsp compares another build (a checkout of an older commit, say).
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { startBackend, startHoldBackend } from './backends';
import { ROOT } from './constants';
import { fmtInt } from './format';
import { connect, runWrk } from './load';
import { FULL } from './options';
import { killEverything, makeTempRoot, sleep, startService, stopProcess, type Service } from './processes';
import { RSP_BIN } from './setups/rsp';
import { detectTools } from './tools';

interface Args {
  rsp: string;
  idle: number;
  load: number;
  every: number;
  parts: Set<string>;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { rsp: RSP_BIN, idle: 5000, load: 60, every: 10, parts: new Set(['modules', 'start', 'idle', 'load']) };
  for (let i = 0; i < argv.length; i++) {
    const value = argv[++i];
    if (value === undefined) throw new Error(`${argv[i - 1]} needs a value`);
    if (argv[i - 1] === '--rsp') args.rsp = path.resolve(value);
    else if (argv[i - 1] === '--idle') args.idle = Number(value);
    else if (argv[i - 1] === '--load') args.load = Number(value);
    else if (argv[i - 1] === '--every') args.every = Number(value);
    else if (argv[i - 1] === '--parts') args.parts = new Set(value.split(','));
    else throw new Error(`unknown option ${argv[i - 1]} (see the top of scripts/bench/memory-breakdown.ts)`);
  }
  return args;
}

const MB = (bytes: number): string => (bytes / 1e6).toFixed(1);

/** VmRSS, RssAnon and RssFile of a process, in bytes. */
function rssOf(pid: number): { rss: number; anon: number; file: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (name: string): number => Number(new RegExp(`${name}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN) * 1024;
  return { rss: kb('VmRSS'), anon: kb('RssAnon'), file: kb('RssFile') + kb('RssShmem') };
}

// ---- modules: each alone in a fresh node ---------------------------------

const NM = path.join(ROOT, 'node_modules');
const DIST = path.join(ROOT, 'dist');

/** [label, code run before the measurement] */
const PROBES: [string, string][] = [
  ['node, nothing loaded', ''],
  ['an empty worker_threads Worker (a second isolate)', `new (require('node:worker_threads').Worker)('setInterval(() => {}, 1e6)', { eval: true }); await new Promise((r) => setTimeout(r, 500));`],
  ['koffi', `require(${JSON.stringify(path.join(NM, 'koffi'))});`],
  ['ffi/libc.js (koffi and rsp\'s libc bindings)', `require(${JSON.stringify(path.join(DIST, 'ffi', 'libc.js'))});`],
  ['fengari', `require(${JSON.stringify(path.join(NM, 'fengari'))});`],
  ['src/config.js, run on a 4-line config (what the main thread carried before)', `require(${JSON.stringify(path.join(DIST, 'src', 'config.js'))}).parseConfig(process.env.PROBE_CONFIG);`],
  ['the worker\'s modules (proxy, listener, reactor, balancer, stats, accesslog; koffi)', ['proxy', 'listener', 'reactor', 'balancer/checker', 'balancer/pool', 'stats/server', 'accesslog', 'pairings'].map((m) => `require(${JSON.stringify(path.join(DIST, 'src', `${m}.js`))});`).join(' ')],
];

interface Probe {
  rss: number;
  anon: number;
  file: number;
  heapUsed: number;
  heapTotal: number;
}

function probe(code: string, config: string): Probe {
  const script = `(async () => { ${code}
    const v8 = require('node:v8'); v8.setFlagsFromString('--expose-gc'); require('node:vm').runInNewContext('gc')();
    await new Promise((r) => setTimeout(r, 300));
    const s = require('node:fs').readFileSync('/proc/self/status', 'utf8');
    const kb = (n) => Number(new RegExp(n + ':\\\\s+(\\\\d+) kB').exec(s)[1]) * 1024;
    const h = v8.getHeapStatistics();
    console.log(JSON.stringify({ rss: kb('VmRSS'), anon: kb('RssAnon'), file: kb('RssFile'), heapUsed: h.used_heap_size, heapTotal: h.total_heap_size }));
    process.exit(0);
  })();`;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', env: { ...process.env, PROBE_CONFIG: config }, timeout: 30_000 });
  if (r.status !== 0) throw new Error(`probe failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as Probe;
}

function medianProbe(code: string, config: string, runs = 3): Probe {
  const all = Array.from({ length: runs }, () => probe(code, config)).sort((a, b) => a.rss - b.rss);
  return all[runs >> 1];
}

function modules(dir: string): string[] {
  const config = path.join(dir, 'probe.lua');
  fs.writeFileSync(config, 'listenPort = "8000"\nlistenAddress = "127.0.0.1"\nbackendAddress = "127.0.0.1"\nbackendPort = "8888"\n');
  const base = medianProbe('', config);
  const lines = [
    '| Loaded alone in a fresh node | RSS | anonymous | file-backed | V8 heap used / total |',
    '|---|---:|---:|---:|---:|',
  ];
  for (const [label, code] of PROBES) {
    const p = code === '' ? base : medianProbe(code, config);
    const d = (x: number, b: number): string => (code === '' ? MB(x) : `+${MB(x - b)}`);
    lines.push(`| ${label} | ${d(p.rss, base.rss)} | ${d(p.anon, base.anon)} | ${d(p.file, base.file)} | ${d(p.heapUsed, base.heapUsed)} / ${d(p.heapTotal, base.heapTotal)} |`);
    process.stderr.write(`modules: ${label}: ${MB(p.rss)} MB\n`);
  }
  return lines;
}

// ---- rsp: its report lines -----------------------------------------------

interface Isolate {
  used: number;
  total: number;
  code: number;
  newSpace: string;
}

interface Sample {
  when: string;
  rss: { rss: number; anon: number; file: number };
  main: Isolate | null;
  worker: Isolate | null;
}

async function startRsp(bin: string, dir: string, backendPort: number): Promise<Service> {
  const file = path.join(dir, `rsp-${backendPort}.lua`);
  fs.writeFileSync(file, `listenPort = "0"\nlistenAddress = "127.0.0.1"\nbackendAddress = "127.0.0.1"\nbackendPort = "${backendPort}"\n`);
  process.env.RSP_MEMORY_REPORT = '1';
  try {
    return await startService(process.execPath, [bin, '--die-with-parent', file]);
  } finally {
    delete process.env.RSP_MEMORY_REPORT;
  }
}

/** RSS now, then SIGUSR2 and the heap lines of both threads it brings (null for a build without src/memory.ts). */
async function sample(rsp: Service, when: string): Promise<Sample> {
  const rss = rssOf(rsp.proc.pid!);
  const before = rsp.output().length;
  process.kill(rsp.proc.pid!, 'SIGUSR2');
  const deadline = Date.now() + 5000;
  let text = '';
  while (!/memory worker spaces[^\n]*\n/.test((text = rsp.output().slice(before))) && Date.now() < deadline) await sleep(20);
  const isolate = (who: string): Isolate | null => {
    const line = new RegExp(`memory ${who}: ([^\\n]*)`).exec(text)?.[1];
    const spaces = new RegExp(`memory ${who} spaces[^:]*: ([^\\n]*)`).exec(text)?.[1] ?? '';
    if (line === undefined) return null;
    const n = (key: string): number => Number(new RegExp(`${key}=([\\d.]+)`).exec(line)?.[1] ?? NaN) * 1e6;
    return { used: n('heap-used'), total: n('heap-total'), code: n('code'), newSpace: /new_space=([\d./]+)/.exec(spaces)?.[1] ?? '?' };
  };
  return { when, rss, main: isolate('main'), worker: isolate('worker') };
}

function sampleTable(samples: Sample[]): string[] {
  return [
    '| When | RSS | anonymous | file-backed | main heap used / total | worker heap used / total | worker new space used/size | code (main + worker) |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
    ...samples.map((s) => {
      const heap = (i: Isolate | null): string => (i === null ? 'n/a' : `${MB(i.used)} / ${MB(i.total)}`);
      const code = s.main !== null && s.worker !== null ? MB(s.main.code + s.worker.code) : 'n/a';
      return `| ${s.when} | ${MB(s.rss.rss)} | ${MB(s.rss.anon)} | ${MB(s.rss.file)} | ${heap(s.main)} | ${heap(s.worker)} | ${s.worker?.newSpace ?? 'n/a'} | ${code} |`;
    }),
  ];
}

async function idle(args: Args, dir: string): Promise<Sample[]> {
  const hold = await startHoldBackend();
  const rsp = await startRsp(args.rsp, dir, hold.ports[0]);
  const sockets: net.Socket[] = [];
  try {
    await sleep(FULL.settleMs);
    const samples = [await sample(rsp, 'at start (1 s after the start line)')];
    if (!args.parts.has('idle')) return samples;
    const request = Buffer.from('GET /idle HTTP/1.1\r\nHost: bench\r\n\r\n');
    for (let i = 0; i < args.idle; i += 200) {
      const batch = await Promise.all(Array.from({ length: Math.min(200, args.idle - i) }, () => connect(rsp.port).then((s) => (s.on('error', () => {}), s.write(request), s), () => null)));
      for (const s of batch) if (s) sockets.push(s);
    }
    const deadline = Date.now() + 30_000;
    let held = 0;
    while ((held = await hold.count()) < args.idle && Date.now() < deadline) await sleep(200);
    await sleep(FULL.settleMs);
    samples.push(await sample(rsp, `with ${fmtInt(held)} idle proxied connections`));
    return samples;
  } finally {
    for (const s of sockets) s.destroy();
    await stopProcess(rsp.proc);
    await stopProcess(hold.service.proc);
  }
}

async function load(args: Args, dir: string): Promise<Sample[]> {
  const tools = detectTools({ quick: false, only: [], out: '', without: new Set(), rounds: null });
  if (!tools.wrk) throw new Error('the load part needs wrk');
  const backend = await startBackend(tools, dir, { ...FULL, bulkBytes: 1000 });
  const rsp = await startRsp(args.rsp, dir, backend.service.port);
  try {
    await sleep(FULL.settleMs);
    const samples = [await sample(rsp, 'before the load')];
    let rps = 0;
    for (let t = 0; t < args.load; t += args.every) {
      const r = await runWrk(`http://127.0.0.1:${rsp.port}/small`, ['-c64'], Math.min(args.every, args.load - t));
      rps = r.rps;
      samples.push(await sample(rsp, `after ${Math.min(t + args.every, args.load)} s of load (${fmtInt(rps)} req/s)`));
      process.stderr.write(`load: ${samples.at(-1)!.when}: ${MB(samples.at(-1)!.rss.rss)} MB\n`);
    }
    await sleep(5000);
    samples.push(await sample(rsp, '5 s after the load'));
    return samples;
  } finally {
    await stopProcess(rsp.proc);
    await stopProcess(backend.service.proc);
  }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const dir = makeTempRoot();
  const out: string[] = [`Measured ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC on ${os.cpus().length} CPUs, Node ${process.version}, rsp from ${path.relative(process.cwd(), args.rsp) || args.rsp}. MB = 10^6 bytes.`, ''];
  try {
    if (args.parts.has('modules')) out.push(...modules(dir), '');
    if (args.parts.has('start') || args.parts.has('idle')) out.push(...sampleTable(await idle(args, dir)), '');
    if (args.parts.has('load')) out.push(...sampleTable(await load(args, dir)), '');
  } finally {
    killEverything();
  }
  process.stdout.write(out.join('\n'));
}

main().catch((error) => {
  killEverything();
  process.stderr.write(`memory-breakdown: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
