// The benchmark: rsp (both trigger modes) against the direct path to the
// backend, a plain Node `net` pipe proxy, nginx (stream and http) and HAProxy
// (tcp and http) on loopback, every proxy with one worker process/thread.
// Writes a markdown report (BENCHMARKS.md by default).
//
// The req/s figures come from rounds that interleave the setups (every setup
// once per round, the order rotated from round to round) and are medians over
// the rounds: on a shared VM a single run of a setup can be 15–30% off, and
// interleaving spreads whatever disturbs the machine over all the setups.
// Every proxy is started once and stays up through the rounds; latency, bulk
// and idle memory are measured after them, one setup after another.
//
//   npm run build && npm run bench                # full run, about 6 minutes on 2 cores
//   node dist/scripts/bench.js --quick            # about 2 minutes, shorter and smaller
//   node dist/scripts/bench.js --only rsp-level,node --out /tmp/b.md
//
// Every process it starts runs in a process group of its own and is killed on
// the way out, on Ctrl-C and on errors too.
import { fork, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

const ROOT = path.join(__dirname, '..', '..');
const RSP_BIN = path.join(ROOT, 'bin', 'rsp');
const NODE_PROXY = path.join(__dirname, 'node-pipe-proxy.js');
const BENCH_BACKEND = path.join(__dirname, 'bench-backend.js');
const NOTES_MARKER = '<!-- notes -->';
const SMALL_BODY = 'x'.repeat(100); // the same 100 bytes bench-backend.ts serves

// ---------------------------------------------------------------- options

const SETUPS = ['direct', 'rsp-level', 'rsp-edge', 'node', 'nginx-stream', 'nginx-http', 'haproxy-tcp', 'haproxy-http'] as const;
type SetupName = (typeof SETUPS)[number];

const LABELS: Record<SetupName, string> = {
  direct: 'direct (no proxy)',
  'rsp-level': 'rsp level',
  'rsp-edge': 'rsp edge',
  node: 'Node net pipe',
  'nginx-stream': 'nginx stream',
  'nginx-http': 'nginx http',
  'haproxy-tcp': 'HAProxy tcp',
  'haproxy-http': 'HAProxy http',
};

interface Options {
  quick: boolean;
  only: SetupName[];
  out: string;
  /** Tools to treat as missing (to try the fallbacks on a machine that has them). */
  without: Set<string>;
}

interface Params {
  warmupS: number;
  keepAliveS: number;
  closeS: number;
  latencyS: number;
  /** Keep-alive and 1 req/conn runs per setup, in rounds that interleave the setups; the median is reported. */
  rounds: number;
  /** Latency run: this many connections, each waiting `latencyGapMs` between requests. */
  latencyConns: number;
  latencyGapMs: number;
  loadConns: number;
  bulkBytes: number;
  bulkRuns: number;
  idleConns: number;
  straceS: number;
  /** Pause before reading RSS (idle baseline, and once the connections are up). */
  settleMs: number;
}

const FULL: Params = {
  warmupS: 2, keepAliveS: 4, closeS: 4, rounds: 3, latencyS: 6, latencyConns: 10, latencyGapMs: 10, loadConns: 64,
  bulkBytes: 200_000_000, bulkRuns: 3, idleConns: 5000, straceS: 3, settleMs: 1000,
};
const QUICK: Params = {
  warmupS: 1, keepAliveS: 2, closeS: 2, rounds: 2, latencyS: 2, latencyConns: 10, latencyGapMs: 10, loadConns: 64,
  bulkBytes: 50_000_000, bulkRuns: 1, idleConns: 1000, straceS: 2, settleMs: 500,
};

const USAGE = `Usage: node dist/scripts/bench.js [--quick] [--only a,b,...] [--out FILE] [--without tool,...]

  --quick          about 2 minutes: 2 rounds of 2 s runs (3 of 4 s in a full run),
                   50 MB bulk file, 1,000 idle connections
  --only LIST      run only these setups (comma separated) out of:
                   ${SETUPS.join(', ')}
  --out FILE       write the report here instead of BENCHMARKS.md
  --without LIST   behave as if these tools were not installed
                   (wrk, ab, nginx, haproxy, perf, strace, curl, autocannon)`;

function parseOptions(argv: string[]): Options {
  const options: Options = { quick: false, only: [...SETUPS], out: path.join(ROOT, 'BENCHMARKS.md'), without: new Set() };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) usage(`${arg} needs a value`);
      return v;
    };
    if (arg === '--quick') options.quick = true;
    else if (arg === '--only') {
      const names = value().split(',').map((s) => s.trim()).filter(Boolean);
      for (const n of names) if (!(SETUPS as readonly string[]).includes(n)) usage(`unknown setup ${n}`);
      options.only = SETUPS.filter((s) => names.includes(s));
    } else if (arg === '--out') options.out = path.resolve(value());
    else if (arg === '--without') for (const t of value().split(',')) options.without.add(t.trim());
    else if (arg === '-h' || arg === '--help') {
      process.stdout.write(USAGE + '\n');
      process.exit(0);
    } else usage(`unknown argument ${arg}`);
  }
  return options;
}

function usage(message: string): never {
  process.stderr.write(`bench: ${message}\n${USAGE}\n`);
  process.exit(2);
}

// ---------------------------------------------------------------- processes

/** Every child still running; each leads a process group of its own. */
const children = new Set<ChildProcess>();
let tmpRoot = '';

function track(proc: ChildProcess): void {
  children.add(proc);
  proc.on('exit', () => children.delete(proc));
}

function killGroup(proc: ChildProcess, signal: NodeJS.Signals): void {
  if (proc.pid === undefined) return;
  try {
    process.kill(-proc.pid, signal);
  } catch {
    try {
      proc.kill(signal);
    } catch {
      // already gone
    }
  }
}

function killEverything(): void {
  for (const c of children) killGroup(c, 'SIGKILL');
  children.clear();
  if (tmpRoot !== '') {
    fs.rmSync(tmpRoot, { recursive: true, force: true });
    tmpRoot = '';
  }
}

function exited(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => proc.once('exit', () => resolve()));
}

/** SIGTERM to the group, SIGKILL if it is still there after `graceMs`. */
async function stopProcess(proc: ChildProcess, graceMs = 3000): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) {
    killGroup(proc, 'SIGKILL'); // nginx workers outliving their master, say
    return;
  }
  killGroup(proc, 'SIGTERM');
  const timer = setTimeout(() => killGroup(proc, 'SIGKILL'), graceMs);
  await exited(proc);
  clearTimeout(timer);
  killGroup(proc, 'SIGKILL');
}

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run a command to completion (killed after timeoutMs). */
function run(command: string, args: string[], timeoutMs: number): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const proc = spawn(command, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    track(proc);
    let stdout = '';
    let stderr = '';
    proc.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
    proc.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => killGroup(proc, 'SIGKILL'), timeoutMs);
    proc.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    proc.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A long-running child: a backend or a proxy. */
interface Service {
  proc: ChildProcess;
  port: number;
  output(): string;
}

/**
 * Start a long-running child. Ready when it prints "Listening on port N"
 * (port taken from there) or, given `port`, when that port accepts.
 */
async function startService(command: string, args: string[], opts: { port?: number; ipc?: boolean; timeoutMs?: number } = {}): Promise<Service> {
  const proc = opts.ipc
    ? fork(args[0], args.slice(1), { detached: true, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] })
    : spawn(command, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  track(proc);
  let out = '';
  proc.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  proc.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  const deadline = Date.now() + (opts.timeoutMs ?? 15000);
  const fail = async (why: string): Promise<never> => {
    await stopProcess(proc);
    throw new Error(`${path.basename(command)} ${why}${out.trim() ? `:\n${out.trim().split('\n').slice(-8).join('\n')}` : ''}`);
  };
  let spawnError: Error | null = null;
  proc.on('error', (e) => (spawnError = e));
  for (;;) {
    if (spawnError) return fail(`could not start (${(spawnError as Error).message})`);
    if (proc.exitCode !== null || proc.signalCode !== null) return fail(`exited (${proc.exitCode ?? proc.signalCode}) before it was ready`);
    if (opts.port !== undefined) {
      if (await canConnect(opts.port)) return { proc, port: opts.port, output: () => out };
    } else {
      const m = /Listening on port (\d+)/.exec(out);
      if (m) return { proc, port: Number(m[1]), output: () => out };
    }
    if (Date.now() > deadline) return fail('was not ready in time');
    await sleep(50);
  }
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.on('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

// ---------------------------------------------------------------- /proc

const CLK_TCK = (() => {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const n = Number(r.stdout?.trim());
  return n > 0 ? n : 100;
})();

/** The process and every descendant (nginx's master and its worker, say). */
function processTree(pid: number): number[] {
  const parents = new Map<number, number[]>();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = parents.get(ppid) ?? [];
      list.push(Number(entry));
      parents.set(ppid, list);
    } catch {
      // exited meanwhile
    }
  }
  const result: number[] = [];
  const walk = (p: number): void => {
    result.push(p);
    for (const c of parents.get(p) ?? []) walk(c);
  };
  walk(pid);
  return result;
}

/**
 * CPU time used by every user process that is not the benchmark or one of
 * its descendants (someone's test suite, a build): a sign that the figures were
 * disturbed. Sampled once a second; a process's reaped children count through
 * its cutime/cstime, so short-lived ones are caught too.
 */
class ForeignCpu {
  private last = new Map<number, number>();
  private totalTicks = 0;
  private timer: NodeJS.Timeout | null = null;

  start(): void {
    this.sample(true);
    this.timer = setInterval(() => this.sample(false), 1000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** CPU seconds used by other processes so far. */
  seconds(): number {
    this.sample(false);
    return this.totalTicks / CLK_TCK;
  }

  private sample(first: boolean): void {
    const procs = new Map<number, { ppid: number; ticks: number }>();
    for (const entry of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
        const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        procs.set(Number(entry), { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]) });
      } catch {
        // exited meanwhile
      }
    }
    const mine = (pid: number): boolean => {
      for (let p = pid, hops = 0; p > 1 && hops < 64; hops++) {
        if (p === process.pid) return true;
        p = procs.get(p)?.ppid ?? 0;
      }
      return false;
    };
    const next = new Map<number, number>();
    for (const [pid, { ticks }] of procs) {
      // Kernel threads (ksoftirqd and the like) mostly carry the benchmark's own loopback traffic.
      if (pid === 2 || procs.get(pid)!.ppid === 2 || mine(pid)) continue;
      const before = this.last.get(pid);
      if (!first) this.totalTicks += Math.max(0, ticks - (before ?? 0));
      next.set(pid, ticks);
    }
    this.last = next;
  }
}

const foreign = new ForeignCpu();

/** utime + stime of these processes (all their threads), in microseconds. */
function cpuMicros(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]); // fields 14 and 15 of stat(5)
    } catch {
      // exited
    }
  }
  return (ticks * 1e6) / CLK_TCK;
}

/** Sum of VmRSS over these processes, in bytes. */
function rssBytes(pids: number[]): number {
  let total = 0;
  for (const pid of pids) {
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (m) total += Number(m[1]) * 1024;
    } catch {
      // exited
    }
  }
  return total;
}

function hardNofile(): number {
  const r = spawnSync('sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' });
  const text = (r.stdout ?? '').trim();
  return text === 'unlimited' ? 1 << 20 : Number(text) || 4096;
}

// ---------------------------------------------------------------- tools

interface Tools {
  wrk: boolean;
  ab: boolean;
  nginx: boolean;
  /** load_module line for the stream module, '' if built in, null if unavailable. */
  nginxStream: string | null;
  /** nginx http modules that exist and want a temp path of their own. */
  nginxTempModules: string[];
  nginxStubStatus: boolean;
  haproxy: boolean;
  perf: boolean;
  perfNote: string;
  strace: boolean;
  curl: boolean;
  autocannon: AutocannonFn | null;
  versions: string[];
}

type AutocannonFn = (opts: { url: string; connections: number; duration: number; headers?: Record<string, string> }) => Promise<{
  requests: { total: number; average: number };
  latency: { p50: number; p99: number };
  duration: number;
  errors: number;
  non2xx: number;
}>;

function installed(name: string, options: Options): boolean {
  if (options.without.has(name)) return false;
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;
}

function firstLine(command: string, args: string[]): string {
  const r = spawnSync(command, args, { encoding: 'utf8', timeout: 5000 });
  return `${r.stdout ?? ''}\n${r.stderr ?? ''}`.split('\n').map((l) => l.trim()).find((l) => l !== '') ?? '?';
}

function detectTools(options: Options): Tools {
  const tools: Tools = {
    wrk: installed('wrk', options),
    ab: installed('ab', options),
    nginx: installed('nginx', options),
    nginxStream: null,
    nginxTempModules: [],
    nginxStubStatus: false,
    haproxy: installed('haproxy', options),
    perf: false,
    perfNote: 'perf not installed',
    strace: installed('strace', options),
    curl: installed('curl', options),
    autocannon: null,
    versions: [],
  };
  if (tools.nginx) {
    const v = spawnSync('nginx', ['-V'], { encoding: 'utf8' });
    const text = `${v.stdout}${v.stderr}`;
    const modulesPath = /--modules-path=(\S+)/.exec(text)?.[1] ?? '/usr/lib/nginx/modules';
    const so = path.join(modulesPath, 'ngx_stream_module.so');
    if (/--with-stream(\s|$)/.test(text)) tools.nginxStream = '';
    else if (fs.existsSync(so)) tools.nginxStream = `load_module ${so};`;
    else if (fs.existsSync('/usr/lib/nginx/modules/ngx_stream_module.so')) tools.nginxStream = 'load_module /usr/lib/nginx/modules/ngx_stream_module.so;';
    for (const m of ['fastcgi', 'uwsgi', 'scgi']) if (!text.includes(`--without-http_${m}_module`)) tools.nginxTempModules.push(m);
    tools.nginxStubStatus = text.includes('--with-http_stub_status_module');
    tools.versions.push(firstLine('nginx', ['-v']) + (tools.nginxStream === null ? ' (no stream module)' : ' (stream module available)'));
  }
  if (installed('perf', options)) {
    const r = spawnSync('perf', ['stat', '-x', ',', '-e', 'raw_syscalls:sys_enter', 'true'], { encoding: 'utf8', timeout: 10000 });
    const paranoid = (() => {
      try {
        return fs.readFileSync('/proc/sys/kernel/perf_event_paranoid', 'utf8').trim();
      } catch {
        return '?';
      }
    })();
    tools.perf = r.status === 0 && /^\d+,/m.test(r.stderr ?? '');
    tools.perfNote = tools.perf ? '' : `perf stat -e raw_syscalls:sys_enter does not work here (perf_event_paranoid=${paranoid}): ${(r.stderr ?? '').trim().split('\n')[0]}`;
    tools.versions.push(firstLine('perf', ['--version']));
  }
  if (!options.without.has('autocannon')) {
    try {
      tools.autocannon = require('autocannon') as AutocannonFn;
    } catch {
      tools.autocannon = null;
    }
  }
  if (tools.wrk) tools.versions.push(firstLine('wrk', ['-v']).replace(/ Copyright.*/, ''));
  if (tools.ab) tools.versions.push(firstLine('ab', ['-V']).replace(/^This is /, ''));
  if (tools.haproxy) tools.versions.push(firstLine('haproxy', ['-v']).replace(/ - https?:.*/, ''));
  if (tools.strace) tools.versions.push(firstLine('strace', ['-V']));
  if (tools.curl) tools.versions.push(firstLine('curl', ['--version']).split(' ').slice(0, 2).join(' '));
  if (tools.autocannon) tools.versions.push('autocannon (node module)');
  return tools;
}

// ---------------------------------------------------------------- load generators

interface Throughput {
  requests: number;
  seconds: number;
  rps: number;
  problems: string;
}

function wrkSeconds(value: string, unit: string): number {
  const n = Number(value);
  return unit === 'us' ? n / 1e6 : unit === 'ms' ? n / 1e3 : unit === 'm' ? n * 60 : unit === 'h' ? n * 3600 : n;
}

function parseWrk(text: string): Throughput & { p50?: number; p99?: number } {
  const total = /(\d+) requests in ([\d.]+)(us|ms|s|m|h)/.exec(text);
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(text);
  if (!total || !rps) throw new Error(`could not read wrk's output:\n${text}`);
  const problems: string[] = [];
  const errors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  if (errors && errors.slice(1).some((n) => n !== '0')) problems.push(`socket errors: connect ${errors[1]}, read ${errors[2]}, write ${errors[3]}, timeout ${errors[4]}`);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(text);
  if (non2xx) problems.push(`${non2xx[1]} non-2xx responses`);
  const pct = (p: string): number | undefined => {
    const m = new RegExp(`^\\s*${p}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm').exec(text);
    return m ? wrkSeconds(m[1], m[2]) * 1000 : undefined;
  };
  return {
    requests: Number(total[1]),
    seconds: wrkSeconds(total[2], total[3]),
    rps: Number(rps[1]),
    problems: problems.join('; '),
    p50: pct('50'),
    p99: pct('99'),
  };
}

async function runWrk(url: string, args: string[], durationS: number): Promise<ReturnType<typeof parseWrk>> {
  const r = await run('wrk', ['-t1', `-d${durationS}s`, '--timeout', '5s', ...args, url], (durationS + 30) * 1000);
  if (r.code !== 0) throw new Error(`wrk failed (${r.code}): ${r.stderr.trim() || r.stdout.trim()}`);
  return parseWrk(r.stdout);
}

async function runAb(url: string, conns: number, durationS: number): Promise<Throughput> {
  // -t first, then -n: otherwise -t caps the run at 50,000 requests.
  const r = await run('ab', ['-q', '-r', '-c', String(conns), '-t', String(durationS), '-n', '100000000', '-s', '5', url], (durationS + 30) * 1000);
  const complete = /Complete requests:\s+(\d+)/.exec(r.stdout);
  const rps = /Requests per second:\s+([\d.]+)/.exec(r.stdout);
  const taken = /Time taken for tests:\s+([\d.]+) seconds/.exec(r.stdout);
  if (!complete || !rps || !taken) throw new Error(`ab failed (${r.code}): ${r.stderr.trim() || r.stdout.trim()}`);
  const failed = /Failed requests:\s+(\d+)/.exec(r.stdout);
  return {
    requests: Number(complete[1]),
    seconds: Number(taken[1]),
    rps: Number(rps[1]),
    problems: failed && failed[1] !== '0' ? `${failed[1]} failed requests` : '',
  };
}

/** Reads one HTTP/1.1 response at a time off a socket (Content-Length or chunked). */
class ResponseReader {
  private buffer: Buffer = Buffer.alloc(0);
  private waiting: ((ok: boolean) => void) | null = null;

  constructor(private readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
      this.check();
    });
    socket.on('close', () => this.waiting?.(false));
    socket.on('error', () => {});
  }

  next(): Promise<boolean> {
    return new Promise((resolve) => {
      this.waiting = resolve;
      this.check();
    });
  }

  private check(): void {
    if (this.waiting === null) return;
    const end = this.buffer.indexOf('\r\n\r\n');
    if (end < 0) return;
    const head = this.buffer.subarray(0, end).toString('latin1');
    let total: number;
    const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    if (length) total = end + 4 + Number(length[1]);
    else if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) {
      const last = this.buffer.indexOf('\r\n0\r\n\r\n', end + 2);
      if (last < 0) return;
      total = last + 7;
    } else total = end + 4;
    if (this.buffer.length < total) return;
    this.buffer = this.buffer.subarray(total);
    const done = this.waiting;
    this.waiting = null;
    done(true);
  }
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    s.setNoDelay(true);
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

/** The fallback latency client: `conns` keep-alive connections, each waiting `gapMs` between requests. */
async function pacedLatency(port: number, p: Params): Promise<{ p50: number; p99: number; count: number }> {
  const samples: number[] = [];
  const deadline = Date.now() + p.latencyS * 1000;
  const request = Buffer.from(`GET /small HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
  const one = async (): Promise<void> => {
    const socket = await connect(port);
    const reader = new ResponseReader(socket);
    try {
      while (Date.now() < deadline) {
        const t0 = process.hrtime.bigint();
        socket.write(request);
        if (!(await reader.next())) throw new Error('connection closed mid-run');
        samples.push(Number(process.hrtime.bigint() - t0) / 1e6);
        await sleep(p.latencyGapMs);
      }
    } finally {
      socket.destroy();
    }
  };
  await Promise.all(Array.from({ length: p.latencyConns }, one));
  samples.sort((a, b) => a - b);
  const at = (q: number): number => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))];
  return { p50: at(0.5), p99: at(0.99), count: samples.length };
}

/** One download of /bulk, discarded; bytes per second. */
async function download(port: number, expected: number, tools: Tools): Promise<number> {
  const url = `http://127.0.0.1:${port}/bulk`;
  if (tools.curl) {
    const r = await run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code} %{size_download} %{speed_download}', url], 300_000);
    const [code, size, speed] = r.stdout.trim().split(' ');
    if (code !== '200' || Number(size) !== expected) throw new Error(`curl got HTTP ${code}, ${size} of ${expected} bytes (exit ${r.code})`);
    return Number(speed);
  }
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    http.get(url, { agent: false }, (res) => {
      let got = 0;
      res.on('data', (c: Buffer) => (got += c.length));
      res.on('end', () => {
        const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
        if (res.statusCode !== 200 || got !== expected) reject(new Error(`got HTTP ${res.statusCode}, ${got} of ${expected} bytes`));
        else resolve(got / seconds);
      });
      res.on('error', reject);
    }).on('error', reject);
  });
}

// ---------------------------------------------------------------- syscall counting

interface SyscallCounter {
  stop(): Promise<number | null>;
}

async function startPerf(pids: number[], dir: string): Promise<SyscallCounter> {
  const file = path.join(dir, `perf-${Date.now()}.txt`);
  const proc = spawn('perf', ['stat', '-x', ',', '-e', 'raw_syscalls:sys_enter', '-o', file, '-p', pids.join(',')], { detached: true, stdio: 'ignore' });
  track(proc);
  await sleep(400); // let it attach
  return {
    async stop(): Promise<number | null> {
      if (proc.exitCode !== null) return null;
      proc.kill('SIGINT');
      const timer = setTimeout(() => killGroup(proc, 'SIGKILL'), 5000);
      await exited(proc);
      clearTimeout(timer);
      const m = /^(\d+),[^\n]*raw_syscalls:sys_enter/m.exec(fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '');
      return m ? Number(m[1]) : null;
    },
  };
}

async function startStrace(pids: number[], dir: string): Promise<SyscallCounter> {
  const file = path.join(dir, `strace-${Date.now()}.txt`);
  const args = ['-c', '-f', '-o', file];
  for (const pid of pids) args.push('-p', String(pid));
  const proc = spawn('strace', args, { detached: true, stdio: 'ignore' });
  track(proc);
  await sleep(700);
  return {
    async stop(): Promise<number | null> {
      if (proc.exitCode !== null) return null;
      proc.kill('SIGINT');
      const timer = setTimeout(() => killGroup(proc, 'SIGKILL'), 10000);
      await exited(proc);
      clearTimeout(timer);
      const text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
      const line = text.split('\n').find((l) => /\stotal\s*$/.test(l));
      const calls = line ? Number(line.trim().split(/\s+/)[3]) : NaN;
      return Number.isFinite(calls) ? calls : null;
    },
  };
}

// ---------------------------------------------------------------- backends and proxies

interface Backend {
  kind: 'nginx' | 'node';
  service: Service;
  /** Connections the backend has accepted so far, or null if it cannot tell. */
  accepted(): Promise<number | null>;
}

async function startBackend(tools: Tools, dir: string, p: Params): Promise<Backend> {
  if (tools.nginx) {
    const root = path.join(dir, 'www');
    fs.mkdirSync(root, { recursive: true });
    fs.chmodSync(dir, 0o755); // nginx's worker may run as nobody
    fs.chmodSync(root, 0o755);
    await writeBulkFile(path.join(root, 'bulk'), p.bulkBytes);
    const port = await freePort();
    const conf = nginxConf(tools, dir, 'backend', `
http {
  access_log off;
  default_type application/octet-stream;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  keepalive_timeout 600s;
${nginxTempPaths(tools, dir, 'backend')}
  server {
    listen 127.0.0.1:${port} backlog=4096;
    root ${root};
    location = /small { default_type text/plain; return 200 "${SMALL_BODY}"; }
    location = /bulk { }
${tools.nginxStubStatus ? '    location = /status { stub_status; }' : ''}
  }
}`, 4096);
    const service = await startNginx(conf, dir, 'backend', port);
    return { kind: 'nginx', service, accepted: () => (tools.nginxStubStatus ? statusAccepts(port) : Promise.resolve(null)) };
  }
  const service = await startService(process.execPath, [BENCH_BACKEND, 'http', String(p.bulkBytes)]);
  return { kind: 'node', service, accepted: () => statusAccepts(service.port) };
}

async function writeBulkFile(file: string, bytes: number): Promise<void> {
  const chunk = Buffer.alloc(1 << 20, 'b');
  const fd = fs.openSync(file, 'w', 0o644);
  try {
    for (let left = bytes; left > 0; left -= chunk.length) fs.writeSync(fd, chunk, 0, Math.min(left, chunk.length));
  } finally {
    fs.closeSync(fd);
  }
  fs.chmodSync(file, 0o644);
}

function statusAccepts(port: number): Promise<number | null> {
  return new Promise((resolve) => {
    http.get(`http://127.0.0.1:${port}/status`, { agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => {
        const m = /server accepts handled requests\s+(\d+)/.exec(body);
        resolve(m ? Number(m[1]) : null);
      });
    }).on('error', () => resolve(null));
  });
}

/** The hold-everything backend for the idle-connection memory figure. */
interface HoldBackend {
  service: Service;
  count(): Promise<number>;
}

async function startHoldBackend(): Promise<HoldBackend> {
  const service = await startService(process.execPath, [BENCH_BACKEND, 'hold'], { ipc: true });
  const proc = service.proc;
  return {
    service,
    count: () =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('hold backend did not answer')), 5000);
        const onMessage = (m: { type: string; count: number }): void => {
          if (m.type !== 'count') return;
          clearTimeout(timer);
          proc.off('message', onMessage);
          resolve(m.count);
        };
        proc.on('message', onMessage);
        proc.send({ type: 'count' });
      }),
  };
}

function nginxConf(tools: Tools, dir: string, name: string, body: string, connections: number): string {
  const nofile = Math.min(hardNofile(), 1 << 20);
  return `${tools.nginxStream !== null && body.includes('stream {') ? tools.nginxStream : ''}
worker_processes 1;
worker_rlimit_nofile ${nofile};
pid ${path.join(dir, `${name}.pid`)};
error_log ${path.join(dir, `${name}-error.log`)} error;
events {
  worker_connections ${connections};
}
${body}
`;
}

function nginxTempPaths(tools: Tools, dir: string, name: string): string {
  const lines = ['client_body', 'proxy', ...tools.nginxTempModules].map((m) => `  ${m}_temp_path ${path.join(dir, `${name}-${m}-temp`)};`);
  return lines.join('\n');
}

async function startNginx(conf: string, dir: string, name: string, port: number): Promise<Service> {
  const file = path.join(dir, `${name}.conf`);
  fs.writeFileSync(file, conf);
  return startService('nginx', ['-p', dir, '-c', file, '-e', path.join(dir, `${name}-error.log`), '-g', 'daemon off;'], { port });
}

/** How each setup starts, pointed at a backend port. `connections` sizes nginx's and HAProxy's limits. */
interface SetupDef {
  needs: (tools: Tools) => string | null;
  start: (backendPort: number, dir: string, tools: Tools, connections: number) => Promise<Service>;
}

function rspDef(mode: 'level' | 'edge'): SetupDef {
  return {
    needs: () => null,
    async start(backendPort, dir) {
      const file = path.join(dir, `rsp-${mode}-${backendPort}.lua`);
      fs.writeFileSync(file, `listenPort = "0"\nlistenAddress = "127.0.0.1"\nbackendAddress = "127.0.0.1"\nbackendPort = "${backendPort}"\ntriggerMode = "${mode}"\n`);
      return startService(process.execPath, [RSP_BIN, '--die-with-parent', file]);
    },
  };
}

function haproxyDef(mode: 'tcp' | 'http'): SetupDef {
  return {
    needs: (tools) => (tools.haproxy ? null : 'haproxy not installed'),
    async start(backendPort, dir, _tools, connections) {
      const port = await freePort();
      const file = path.join(dir, `haproxy-${mode}-${backendPort}.cfg`);
      fs.writeFileSync(file, `global
  nbthread 1
  maxconn ${connections}

defaults
  mode ${mode}
  maxconn ${connections}
  timeout connect 5s
  timeout client 600s
  timeout server 600s

frontend bench
  bind 127.0.0.1:${port}
  default_backend app

backend app
  server app1 127.0.0.1:${backendPort}
`);
      return startService('haproxy', ['-f', file, '-db'], { port });
    },
  };
}

const DEFS: Record<Exclude<SetupName, 'direct'>, SetupDef> = {
  'rsp-level': rspDef('level'),
  'rsp-edge': rspDef('edge'),
  node: {
    needs: () => null,
    start: (backendPort) => startService(process.execPath, [NODE_PROXY, '0', '127.0.0.1', String(backendPort)]),
  },
  'nginx-stream': {
    needs: (tools) => (!tools.nginx ? 'nginx not installed' : tools.nginxStream === null ? 'nginx stream module not found' : null),
    async start(backendPort, dir, tools, connections) {
      const port = await freePort();
      const conf = nginxConf(tools, dir, `stream-${backendPort}`, `
stream {
  upstream app { server 127.0.0.1:${backendPort}; }
  server {
    listen 127.0.0.1:${port} backlog=4096;
    proxy_pass app;
    proxy_timeout 600s;
  }
}`, connections * 2 + 1000);
      return startNginx(conf, dir, `stream-${backendPort}`, port);
    },
  },
  'nginx-http': {
    needs: (tools) => (tools.nginx ? null : 'nginx not installed'),
    async start(backendPort, dir, tools, connections) {
      const port = await freePort();
      const name = `http-${backendPort}`;
      const conf = nginxConf(tools, dir, name, `
http {
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 600s;
  client_header_timeout 600s;
${nginxTempPaths(tools, dir, name)}
  upstream app {
    server 127.0.0.1:${backendPort};
    keepalive 64;
    keepalive_requests 1000000;
    keepalive_timeout 600s;
  }
  server {
    listen 127.0.0.1:${port} backlog=4096;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_max_temp_file_size 0;
      proxy_read_timeout 600s;
      proxy_send_timeout 600s;
    }
  }
}`, connections * 2 + 1000);
      return startNginx(conf, dir, name, port);
    },
  },
  'haproxy-tcp': haproxyDef('tcp'),
  'haproxy-http': haproxyDef('http'),
};

// ---------------------------------------------------------------- measuring

/** One keep-alive run: its rate and, for a proxy, its CPU time and syscalls per request. */
interface KeepAliveRun {
  round: number;
  rps: number;
  cpu?: number;
  syscalls?: number;
}

interface Row {
  setup: SetupName;
  skipped?: string;
  /** Median over the rounds. */
  keepAlive?: number;
  close?: number;
  /** Each round's req/s, in round order (rounds that failed are left out). */
  keepAliveRuns: number[];
  closeRuns: number[];
  /** Whether other processes used over 10% of a core during each of those runs. */
  keepAliveDisturbed: boolean[];
  closeDisturbed: boolean[];
  p50?: number;
  p99?: number;
  bulk?: number;
  /** From the keep-alive round at the median (`figuresRound`, 0-based). */
  cpu?: number;
  syscalls?: number;
  figuresRound?: number;
  /** Syscalls/req came from a strace run of its own, not from that round. */
  syscallsApart?: boolean;
  rss?: { baseline: number; loaded: number; conns: number; established: number };
  /** CPU used by unrelated processes while this setup ran, as a share of one core. */
  foreignShare?: number;
  notes: string[];
}

function progress(setup: SetupName, what: string, text: string): void {
  process.stdout.write(`  ${setup.padEnd(13)} ${what.padEnd(20)} ${text}\n`);
}

/** A measurement that cannot run here (a tool is missing): reported as skipped, not as a failure. */
class Skip extends Error {}

function errorText(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split('\n')[0];
}

/** The median; with an even count, the mean of the two middle values. */
function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** min–max of a setup's rounds, e.g. "34,120–38,011". */
function rangeText(values: number[]): string {
  return `${fmtInt(Math.min(...values))}–${fmtInt(Math.max(...values))}`;
}

interface Context {
  options: Options;
  params: Params;
  tools: Tools;
  dir: string;
  backend: Backend;
  hold: HoldBackend;
  latencyMethod: string;
  closeMethod: string;
  throughputMethod: string;
  syscallMethod: string;
}

/**
 * A setup through the whole run: its proxy is started once, stays up through
 * every round (idle while the other setups are measured), then gets its
 * latency and bulk runs and is stopped; the idle-memory figure uses a fresh one.
 */
interface SetupState {
  setup: SetupName;
  row: Row;
  def: SetupDef | null;
  service: Service | null;
  port: number;
  /** No more runs on this proxy: it did not start, or it exited. */
  out: boolean;
  warmed: boolean;
  keepAliveRuns: KeepAliveRun[];
  /** Other processes' CPU seconds, and the wall seconds, over this setup's own runs. */
  foreignCpu: number;
  foreignWall: number;
  /** The most disturbed of its runs, for the note. */
  worstRun: { share: number; what: string };
  /** The proxy's own CPU (µs) outside its runs during the rounds (it should be idle then), and the wall time that covers. */
  idleCpu: number;
  idleWall: number;
  cpuMark: number;
  wallMark: number;
}

function pidsOf(s: SetupState): number[] {
  return s.service ? processTree(s.service.proc.pid!) : [];
}

function alive(s: SetupState): boolean {
  if (s.out) return false;
  const proc = s.service?.proc;
  if (proc && (proc.exitCode !== null || proc.signalCode !== null)) {
    s.out = true;
    const why = `the proxy exited (${proc.exitCode ?? proc.signalCode}); no further runs on it`;
    s.row.notes.push(why);
    progress(s.setup, 'exited', `${why}${s.service!.output().trim() ? `: ${s.service!.output().trim().split('\n').slice(-3).join(' / ')}` : ''}`);
    return false;
  }
  return true;
}

/** Other processes' CPU is sampled once a second, and a reaped child's CPU lands all at once: too coarse to judge a shorter run on its own. */
const MIN_JUDGED_RUN_S = 2;

/**
 * One of the setup's own measurements: prints its progress line (a failure is
 * noted, not thrown) and counts the CPU other processes used meanwhile.
 * Returns whether they used over 10% of a core during it.
 */
async function ownRun(s: SetupState, what: string, fn: () => Promise<string>): Promise<boolean> {
  const foreign0 = foreign.seconds();
  const wall0 = Date.now();
  let text = '';
  let failure: unknown = null;
  try {
    text = await fn();
  } catch (error) {
    failure = error;
  }
  const cpu = foreign.seconds() - foreign0;
  const wall = (Date.now() - wall0) / 1000;
  s.foreignCpu += cpu;
  s.foreignWall += wall;
  const share = wall >= MIN_JUDGED_RUN_S ? cpu / wall : 0;
  if (share > s.worstRun.share) s.worstRun = { share, what };
  const mark = share > 0.1 ? ` [other processes: ${(share * 100).toFixed(0)}% of a core]` : '';
  if (failure === null) progress(s.setup, what, text + mark);
  else if (failure instanceof Skip) progress(s.setup, what, `skipped: ${failure.message}`);
  else {
    s.row.notes.push(`${what}: ${errorText(failure)}`);
    progress(s.setup, what, `failed: ${errorText(failure)}${mark}`);
  }
  return share > 0.1;
}

async function startSetup(ctx: Context, setup: SetupName): Promise<SetupState> {
  const s: SetupState = {
    setup,
    row: { setup, keepAliveRuns: [], closeRuns: [], keepAliveDisturbed: [], closeDisturbed: [], notes: [] },
    def: setup === 'direct' ? null : DEFS[setup],
    service: null,
    port: ctx.backend.service.port,
    out: false,
    warmed: false,
    keepAliveRuns: [],
    foreignCpu: 0,
    foreignWall: 0,
    worstRun: { share: 0, what: '' },
    idleCpu: 0,
    idleWall: 0,
    cpuMark: 0,
    wallMark: Date.now(),
  };
  const missing = s.def?.needs(ctx.tools) ?? null;
  if (missing !== null) {
    s.row.skipped = missing;
    s.out = true;
    progress(setup, 'skipped', missing);
    return s;
  }
  if (s.def) {
    try {
      s.service = await s.def.start(ctx.backend.service.port, ctx.dir, ctx.tools, 1000);
    } catch (error) {
      s.row.skipped = `failed to start: ${errorText(error)}`;
      s.out = true;
      progress(setup, 'skipped', s.row.skipped);
      return s;
    }
    s.port = s.service.port;
    progress(setup, 'started', `port ${s.port}, pid ${pidsOf(s).join(', ')}`);
  } else progress(setup, 'ready', `the backend itself, port ${s.port}`);
  s.cpuMark = cpuMicros(pidsOf(s));
  s.wallMark = Date.now();
  return s;
}

/** One round for one setup: a keep-alive run, then a one-request-per-connection run. */
async function throughputRound(ctx: Context, s: SetupState, round: number): Promise<void> {
  if (!alive(s)) return;
  const { params: p, tools } = ctx;
  const isProxy = s.service !== null;
  const row = s.row;
  const pids = (): number[] => pidsOf(s);
  const small = `http://127.0.0.1:${s.port}/small`;
  const tag = `${round + 1}/${p.rounds}`;

  // What the proxy used while it waited for its turn (it should be idle).
  const cpuNow = cpuMicros(pids());
  s.idleCpu += cpuNow - s.cpuMark;
  s.idleWall += (Date.now() - s.wallMark) / 1000;

  // Keep-alive requests/s, with the proxy's CPU time and syscalls over the same run.
  const kaCount = row.keepAliveRuns.length;
  const kaDisturbed = await ownRun(s, `keep-alive ${tag}`, async () => {
    let result: string;
    if (tools.wrk) {
      if (!s.warmed) {
        await runWrk(small, [`-c${p.loadConns}`], p.warmupS); // warm-up (JIT, caches, upstream pools)
        s.warmed = true;
      }
      const counter = isProxy && tools.perf ? await startPerf(pids(), ctx.dir) : null;
      const cpu0 = cpuMicros(pids());
      const r = await runWrk(small, [`-c${p.loadConns}`], p.keepAliveS);
      const cpu1 = cpuMicros(pids());
      const calls = counter ? await counter.stop() : null;
      const run: KeepAliveRun = { round, rps: r.rps };
      if (isProxy) {
        run.cpu = (cpu1 - cpu0) / r.requests;
        if (calls !== null) run.syscalls = calls / r.requests;
      }
      s.keepAliveRuns.push(run);
      row.keepAliveRuns.push(r.rps);
      if (r.problems) row.notes.push(`keep-alive round ${round + 1}: ${r.problems}`);
      result = `${fmtInt(r.rps)} req/s` + (isProxy ? `, ${fmt1(run.cpu)} µs CPU/req, ${run.syscalls !== undefined ? fmt2(run.syscalls) : 'n/a'} syscalls/req` : '') + (r.problems ? ` (${r.problems})` : '');
    } else if (tools.autocannon) {
      if (!s.warmed) {
        await tools.autocannon({ url: small, connections: p.loadConns, duration: p.warmupS });
        s.warmed = true;
      }
      const cpu0 = cpuMicros(pids());
      const r = await tools.autocannon({ url: small, connections: p.loadConns, duration: p.keepAliveS });
      const cpu1 = cpuMicros(pids());
      const run: KeepAliveRun = { round, rps: r.requests.total / r.duration };
      if (isProxy) run.cpu = (cpu1 - cpu0) / r.requests.total;
      s.keepAliveRuns.push(run);
      row.keepAliveRuns.push(run.rps);
      result = `${fmtInt(run.rps)} req/s (autocannon, in this process; syscalls not counted)`;
    } else throw new Skip('neither wrk nor autocannon is installed');
    return result;
  });
  if (row.keepAliveRuns.length > kaCount) row.keepAliveDisturbed.push(kaDisturbed);

  // One request per connection.
  if (alive(s)) {
    const count = row.closeRuns.length;
    const disturbed = await ownRun(s, `conn-per-request ${tag}`, async () => {
      const before = s.setup === 'direct' ? await ctx.backend.accepted() : null;
      let r: Throughput;
      if (tools.wrk) r = await runWrk(small, [`-c${p.loadConns}`, '-H', 'Connection: close'], p.closeS);
      else if (tools.ab) r = await runAb(small, p.loadConns, p.closeS);
      else throw new Skip('neither wrk nor ab is installed');
      row.closeRuns.push(r.rps);
      let check = '';
      if (before !== null) {
        const after = await ctx.backend.accepted();
        if (after !== null) check = `, ${((after - before - 1) / r.requests).toFixed(2)} connections/request at the backend`;
      }
      if (r.problems) row.notes.push(`conn-per-request round ${round + 1}: ${r.problems}`);
      return `${fmtInt(r.rps)} req/s${check}${r.problems ? ` (${r.problems})` : ''}`;
    });
    if (row.closeRuns.length > count) row.closeDisturbed.push(disturbed);
  }

  s.cpuMark = cpuMicros(pids());
  s.wallMark = Date.now();
}

/** After the rounds: the medians, and CPU/syscalls from the keep-alive round at the median. */
function summarizeRounds(s: SetupState, p: Params): void {
  const row = s.row;
  if (row.skipped) return;
  // Close the idle-time account (the proxy waits through its last round's successors).
  if (alive(s)) {
    s.idleCpu += cpuMicros(pidsOf(s)) - s.cpuMark;
    s.idleWall += (Date.now() - s.wallMark) / 1000;
  }
  const of = (n: number): string => (n === p.rounds ? `${n} rounds` : `${n} of ${p.rounds} rounds`);
  if (s.keepAliveRuns.length > 0) {
    row.keepAlive = median(row.keepAliveRuns);
    // The run at the median (with an even count, the lower of the two middle ones).
    const byRate = [...s.keepAliveRuns].sort((a, b) => a.rps - b.rps);
    const mid = byRate[Math.floor((byRate.length - 1) / 2)];
    row.cpu = mid.cpu;
    row.syscalls = mid.syscalls;
    row.figuresRound = mid.round;
    const figures = !s.service ? '' : mid.syscalls !== undefined ? `; CPU and syscalls from round ${mid.round + 1}: ${fmt1(mid.cpu)} µs/req, ${fmt2(mid.syscalls)} syscalls/req` : `; CPU from round ${mid.round + 1}: ${fmt1(mid.cpu)} µs/req`;
    progress(s.setup, 'keep-alive', `median ${fmtInt(row.keepAlive)} req/s over ${of(row.keepAliveRuns.length)} (${rangeText(row.keepAliveRuns)})${figures}`);
  }
  if (row.closeRuns.length > 0) {
    row.close = median(row.closeRuns);
    progress(s.setup, 'conn-per-request', `median ${fmtInt(row.close)} req/s over ${of(row.closeRuns.length)} (${rangeText(row.closeRuns)})`);
  }
  if (s.service && s.idleWall > 0) {
    const share = s.idleCpu / 1e6 / s.idleWall;
    progress(s.setup, 'between its runs', `${fmt1(s.idleCpu / 1000)} ms CPU over ${fmt1(s.idleWall)} s of waiting (${(share * 100).toFixed(1)}% of a core)`);
    if (share > 0.01) row.notes.push(`the proxy used ${(share * 100).toFixed(1)}% of a core while it waited between its rounds (when other setups were measured)`);
  }
}

/** After the rounds: latency, bulk, then the proxy is stopped; idle memory on a fresh one; the disturbance check. */
async function finishSetup(ctx: Context, s: SetupState): Promise<void> {
  const row = s.row;
  if (row.skipped) return;
  const { params: p, tools } = ctx;
  const isProxy = s.service !== null;
  const pids = (): number[] => pidsOf(s);
  const small = `http://127.0.0.1:${s.port}/small`;
  try {
    // strace slows everything down: count syscalls in a run of their own.
    if (isProxy && !tools.perf && tools.strace && tools.wrk && alive(s)) {
      await ownRun(s, 'syscalls (strace)', async () => {
        const counter = await startStrace(pids(), ctx.dir);
        const r = await runWrk(small, [`-c${p.loadConns}`], p.straceS);
        const calls = await counter.stop();
        if (calls === null) throw new Error('strace -c gave no total');
        row.syscalls = calls / r.requests;
        row.syscallsApart = true;
        return `${fmt2(row.syscalls)} syscalls/req over ${fmtInt(r.requests)} requests`;
      });
    }

    // Latency at a moderate fixed rate.
    if (alive(s)) {
      await ownRun(s, 'latency', async () => {
        if (tools.wrk) {
          const script = path.join(ctx.dir, 'delay.lua');
          fs.writeFileSync(script, `function delay()\n  return ${p.latencyGapMs}\nend\n`);
          const r = await runWrk(small, [`-c${p.latencyConns}`, '--latency', '-s', script], p.latencyS);
          if (r.p50 === undefined || r.p99 === undefined) throw new Error('wrk printed no latency distribution');
          row.p50 = r.p50;
          row.p99 = r.p99;
          return `p50 ${fmtMs(r.p50)}, p99 ${fmtMs(r.p99)} at ${fmtInt(r.rps)} req/s`;
        }
        const r = await pacedLatency(s.port, p);
        row.p50 = r.p50;
        row.p99 = r.p99;
        return `p50 ${fmtMs(r.p50)}, p99 ${fmtMs(r.p99)} over ${fmtInt(r.count)} requests (Node client)`;
      });
    }

    // Bulk download.
    if (alive(s)) {
      await ownRun(s, 'bulk', async () => {
        const speeds: number[] = [];
        for (let i = 0; i < p.bulkRuns; i++) speeds.push(await download(s.port, p.bulkBytes, tools));
        speeds.sort((a, b) => a - b);
        row.bulk = speeds[Math.floor(speeds.length / 2)] / 1e6;
        return `${fmt0(row.bulk)} MB/s (median of ${speeds.map((v) => fmt0(v / 1e6)).join(', ')})`;
      });
    }
  } finally {
    if (s.service) await stopProcess(s.service.proc);
    s.out = true;
  }

  // Memory with idle proxied connections, on a fresh proxy pointed at the hold backend.
  const def = s.def;
  if (def) {
    await ownRun(s, 'idle memory', async () => {
      const proxy = await def.start(ctx.hold.service.port, ctx.dir, tools, p.idleConns + 1000);
      const sockets: net.Socket[] = [];
      try {
        const proxyPids = (): number[] => processTree(proxy.proc.pid!);
        await sleep(p.settleMs);
        const baseline = rssBytes(proxyPids());
        const request = Buffer.from('GET /idle HTTP/1.1\r\nHost: bench\r\n\r\n');
        for (let i = 0; i < p.idleConns; i += 200) {
          const batch = await Promise.all(
            Array.from({ length: Math.min(200, p.idleConns - i) }, () =>
              connect(proxy.port).then(
                (socket) => {
                  socket.on('error', () => {});
                  socket.write(request);
                  return socket;
                },
                () => null,
              ),
            ),
          );
          for (const socket of batch) if (socket) sockets.push(socket);
        }
        let established = 0;
        const deadline = Date.now() + 30_000;
        while ((established = await ctx.hold.count()) < p.idleConns && Date.now() < deadline) await sleep(200);
        await sleep(p.settleMs);
        const loaded = rssBytes(proxyPids());
        row.rss = { baseline, loaded, conns: p.idleConns, established };
        if (established < p.idleConns) row.notes.push(`idle memory: only ${established} of ${p.idleConns} connections reached the backend`);
        return `${fmtMB(loaded)} with ${fmtInt(established)}/${fmtInt(p.idleConns)} connections established at the backend (idle ${fmtMB(baseline)}, +${fmt1((loaded - baseline) / 1000 / p.idleConns)} KB/conn)`;
      } finally {
        for (const socket of sockets) socket.destroy();
        await stopProcess(proxy.proc);
        const deadline = Date.now() + 10_000;
        while ((await ctx.hold.count()) > 0 && Date.now() < deadline) await sleep(100);
      }
    });
  }

  // Other processes' CPU over all of this setup's runs (every round, and the above).
  const share = s.foreignWall > 0 ? s.foreignCpu / s.foreignWall : 0;
  row.foreignShare = share;
  const worst = s.worstRun.share > 0.1 ? `; the worst was its ${s.worstRun.what} run, ${(s.worstRun.share * 100).toFixed(0)}%` : '';
  progress(s.setup, 'other processes', `${s.foreignCpu.toFixed(1)} CPU-s over its ${s.foreignWall.toFixed(0)} s of runs (${(share * 100).toFixed(0)}% of one core${worst})${share > 0.1 ? ': these figures were disturbed' : ''}`);
  if (share > 0.1) row.notes.push(`other processes used ${(share * 100).toFixed(0)}% of one core over this setup's runs${worst}: its figures are disturbed`);
}

// ---------------------------------------------------------------- formatting

const fmtInt = (n: number): string => Math.round(n).toLocaleString('en-US');
const fmt0 = (n: number): string => Math.round(n).toLocaleString('en-US');
const fmt1 = (n: number | undefined): string => (n === undefined ? 'n/a' : n.toFixed(1));
const fmt2 = (n: number): string => n.toFixed(2);
const fmtMs = (ms: number): string => (ms < 1 ? `${ms.toFixed(3)} ms` : `${ms.toFixed(2)} ms`);
const fmtMB = (bytes: number): string => `${(bytes / 1e6).toFixed(1)} MB`;

interface Column {
  title: string;
  value: (row: Row) => number | undefined;
  format: (value: number, row: Row) => string;
  proxyOnly: boolean;
  /** The figures of the rounds the value is the median of. */
  runs?: (row: Row) => number[];
}

function columns(p: Params): Column[] {
  return [
    { title: 'Keep-alive req/s', value: (r) => r.keepAlive, format: fmtInt, proxyOnly: false, runs: (r) => r.keepAliveRuns },
    { title: '1 req/conn req/s', value: (r) => r.close, format: fmtInt, proxyOnly: false, runs: (r) => r.closeRuns },
    { title: 'p50 latency', value: (r) => r.p50, format: fmtMs, proxyOnly: false },
    { title: 'p99 latency', value: (r) => r.p99, format: fmtMs, proxyOnly: false },
    { title: `Bulk MB/s (${p.bulkBytes / 1e6} MB)`, value: (r) => r.bulk, format: fmt0, proxyOnly: false },
    { title: 'CPU µs/req', value: (r) => r.cpu, format: (v) => v.toFixed(1), proxyOnly: true },
    { title: 'Syscalls/req', value: (r) => r.syscalls, format: fmt2, proxyOnly: true },
    {
      title: `RSS, ${fmtInt(p.idleConns)} idle conns`,
      value: (r) => r.rss?.loaded,
      format: (v, r) => `${fmtMB(v)}, +${((v - r.rss!.baseline) / 1000 / r.rss!.conns).toFixed(1)} KB/conn`,
      proxyOnly: true,
    },
  ];
}

function cell(col: Column, row: Row, rows: Row[]): string {
  if (row.skipped) return '—';
  if (col.proxyOnly && row.setup === 'direct') return '—';
  const v = col.value(row);
  if (v === undefined || !Number.isFinite(v)) return 'n/a';
  const ratios: string[] = [];
  for (const ref of ['node', 'direct'] as const) {
    if (ref === row.setup) continue;
    const other = rows.find((r) => r.setup === ref);
    const rv = other && !other.skipped ? col.value(other) : undefined;
    if (rv !== undefined && rv > 0 && Number.isFinite(rv)) ratios.push(`${(v / rv).toFixed(2)}× ${ref}`);
  }
  return col.format(v, row) + spread(col.runs?.(row), v) + (ratios.length ? ` (${ratios.join(', ')})` : '');
}

/** " ±4%": half the min–max range of the rounds, relative to their median ('' for a single figure). */
function spread(runs: number[] | undefined, mid: number): string {
  if (!runs || runs.length < 2 || !(mid > 0)) return '';
  return ` ±${(((Math.max(...runs) - Math.min(...runs)) / 2 / mid) * 100).toFixed(0)}%`;
}

/** The req/s of every round, per setup, for the note under the table. */
function roundsList(rows: Row[], p: Params): string {
  const lines: string[] = [];
  for (const row of rows) {
    if (row.skipped) continue;
    const part = (title: string, runs: number[], disturbed: boolean[]): string =>
      runs.length === 0 ? `${title} n/a` : `${title} ${runs.map((v, i) => fmtInt(v) + (disturbed[i] ? '\\*' : '')).join(' / ')}${runs.length > 1 ? ` (${rangeText(runs)})` : ''}`;
    const short = (n: number): boolean => n > 0 && n < p.rounds;
    const missing = short(row.keepAliveRuns.length) || short(row.closeRuns.length) ? ' (a round failed: see the notes)' : '';
    const from = row.figuresRound !== undefined && row.setup !== 'direct' && p.rounds > 1 ? `; CPU${row.syscallsApart ? '' : ' and syscalls'} from keep-alive round ${row.figuresRound + 1}` : '';
    lines.push(`- ${LABELS[row.setup]}: ${part('keep-alive', row.keepAliveRuns, row.keepAliveDisturbed)}; ${part('1 req/conn', row.closeRuns, row.closeDisturbed)}${from}${missing}`);
  }
  return lines.join('\n');
}

function table(rows: Row[], p: Params): string {
  const cols = columns(p);
  const lines = [`| Setup | ${cols.map((c) => c.title).join(' | ')} |`, `|${' --- |'.repeat(cols.length + 1)}`];
  for (const row of rows) {
    const label = LABELS[row.setup] + (row.skipped ? ` (skipped: ${row.skipped.replace(/\|/g, '/')})` : '');
    lines.push(`| ${label} | ${cols.map((c) => cell(c, row, rows)).join(' | ')} |`);
  }
  return lines.join('\n');
}

function targets(rows: Row[], p: Params, quick: boolean): string {
  const get = (s: SetupName): Row | undefined => rows.find((r) => r.setup === s && !r.skipped);
  type Check = (r: Row) => string;
  const atLeast = (what: (r: Row) => number | undefined, refName: SetupName, factor: number, unit: string, runsOf?: (r: Row) => number[]): Check => (r) => {
    const v = what(r);
    const ref = get(refName);
    const rv = ref ? what(ref) : undefined;
    if (v === undefined) return 'n/a (not measured)';
    if (rv === undefined) return `n/a (${LABELS[refName]} not measured)`;
    const need = rv * factor;
    // Do the two setups' rounds overlap (the reference's scaled by the factor)?
    const mine = runsOf?.(r) ?? [];
    const theirs = ref && runsOf ? runsOf(ref).map((x) => x * factor) : [];
    const overlap = mine.length > 1 && theirs.length > 1 && Math.min(...mine) <= Math.max(...theirs) && Math.max(...mine) >= Math.min(...theirs);
    return `${v >= need ? '**PASS**' : '**MISS**'}: ${fmtInt(v)} vs ${fmtInt(need)} ${unit} needed (${(v / rv).toFixed(2)}×${overlap ? '; rounds overlap' : ''})`;
  };
  const atMost = (what: (r: Row) => number | undefined, limit: number, format: (n: number) => string, note = ''): Check => (r) => {
    const v = what(r);
    if (v === undefined) return 'n/a (not measured)';
    return `${v <= limit ? '**PASS**' : '**MISS**'}: ${format(v)}${note}`;
  };
  const checks: [string, Check][] = [
    ['Keep-alive req/s ≥ 1.1× Node net proxy', atLeast((r) => r.keepAlive, 'node', 1.1, 'req/s', (r) => r.keepAliveRuns)],
    ['Keep-alive req/s ≥ HAProxy tcp', atLeast((r) => r.keepAlive, 'haproxy-tcp', 1, 'req/s', (r) => r.keepAliveRuns)],
    ['Keep-alive syscalls/request ≤ 4.5', atMost((r) => r.syscalls, 4.5, fmt2)],
    ['1 req/conn req/s ≥ 1.5× Node net proxy', atLeast((r) => r.close, 'node', 1.5, 'req/s', (r) => r.closeRuns)],
    ['1 req/conn req/s ≥ nginx stream', atLeast((r) => r.close, 'nginx-stream', 1, 'req/s', (r) => r.closeRuns)],
    ['Bulk MB/s ≥ nginx stream', atLeast((r) => r.bulk, 'nginx-stream', 1, 'MB/s')],
    [
      'RSS with 5,000 idle proxied connections < 90 MB',
      (r) => {
        if (!r.rss) return 'n/a (not measured)';
        const note = r.rss.established < r.rss.conns ? ` (only ${fmtInt(r.rss.established)} established)` : '';
        if (quick || r.rss.conns !== 5000) {
          return `n/a: measured with ${fmtInt(r.rss.conns)} connections, not 5,000 (${fmtMB(r.rss.loaded)})${note}`;
        }
        return `${r.rss.loaded < 90e6 ? '**PASS**' : '**MISS**'}: ${fmtMB(r.rss.loaded)}${note}`;
      },
    ],
  ];
  const subjects = (['rsp-level', 'rsp-edge'] as const).filter((s) => rows.some((r) => r.setup === s));
  if (subjects.length === 0) return '_No rsp setup was run, so no target was checked._';
  const lines = [`| Target | ${subjects.map((s) => LABELS[s]).join(' | ')} |`, `|${' --- |'.repeat(subjects.length + 1)}`];
  for (const [title, check] of checks) {
    lines.push(`| ${title} | ${subjects.map((s) => {
      const r = get(s);
      return r ? check(r) : 'n/a (did not run)';
    }).join(' | ')} |`);
  }
  return lines.join('\n');
}

function loadAverage(): string {
  try {
    return fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  } catch {
    return os.loadavg().map((n) => n.toFixed(2)).join(' ');
  }
}

const loadAtStart = loadAverage();

function machine(ctx: Context, command: string, startedAt: Date, seconds: number): string {
  const cpuinfo = (() => {
    try {
      return fs.readFileSync('/proc/cpuinfo', 'utf8');
    } catch {
      return '';
    }
  })();
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? os.cpus()[0]?.model ?? 'unknown';
  const git = spawnSync('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' });
  const dirty = spawnSync('git', ['-C', ROOT, 'status', '--porcelain', '--', 'src', 'ffi', 'bin'], { encoding: 'utf8' });
  const commit = git.status === 0 ? git.stdout.trim() + (dirty.stdout?.trim() ? ' (with uncommitted changes in src/ffi/bin)' : '') : 'unknown';
  return [
    `- CPU: ${model}, ${os.cpus().length} cores`,
    `- Memory: ${(os.totalmem() / 1e9).toFixed(1)} GB`,
    `- Kernel: ${os.type()} ${os.release()}`,
    `- Node: ${process.version}`,
    `- Tools: ${ctx.tools.versions.length ? ctx.tools.versions.join('; ') : 'none found'}`,
    `- rsp commit: ${commit}`,
    `- Date: ${startedAt.toISOString()} (run took ${Math.round(seconds)} s)`,
    `- Load average (1/5/15 min): ${loadAtStart} at the start, ${loadAverage()} at the end; other processes used ${foreign.seconds().toFixed(1)} CPU-seconds during the run (anything else running skews the figures; setups where it exceeded 10% of a core over their own runs are flagged in the notes)`,
    `- Command: \`${command}\``,
  ].join('\n');
}

function method(ctx: Context): string {
  const p = ctx.params;
  const backend = ctx.backend.kind === 'nginx'
    ? 'nginx (1 worker process) serving a 100-byte `return 200` response at /small and a static file with sendfile at /bulk'
    : 'a Node http server of the benchmark\'s own (scripts/bench-backend.ts; nginx is not installed), which is slower than nginx, so the direct row and every proxy are capped lower than they would be with nginx';
  const later = p.rounds === 2 ? 'round 2 starts halfway down the list (the order rotated)' : `each later round starts 1/${p.rounds} of the way further down the list (the order rotated)`;
  return [
    `Everything ran on loopback (127.0.0.1), with every proxy given one worker process/thread for fairness: rsp (one reactor thread), the Node \`net\` pipe proxy (scripts/node-pipe-proxy.ts, one event loop), nginx \`worker_processes 1\`, HAProxy \`nbthread 1\`. The load generator and the backend share the same ${os.cpus().length} cores.`,
    '',
    `- Rounds: the keep-alive and 1 req/conn figures come from ${p.rounds} rounds that interleave the setups, because on this kind of shared VM one run of a setup can be 15–30% off (CPU steal), and interleaving spreads whatever disturbs the machine over every setup instead of landing on one. A round runs every setup once (a keep-alive run, then a 1 req/conn run); round 1 goes in table order and ${later}, so each setup is measured at different points of a round. Every proxy is started once before round 1 and stays up, idle in its event loop, while the others are measured (the CPU it uses meanwhile is checked, and noted above 1% of a core). Each req/s cell is the median over the rounds${p.rounds === 2 ? ' (with two rounds, their mean)' : ''}, followed by ± half the min–max range as a share of the median; the figures of every round are listed under the table. Latency, bulk and idle memory are measured after the rounds, one setup after another.`,
    `- Backend: ${backend}.`,
    `- Keep-alive req/s: ${ctx.throughputMethod}`,
    `- 1 req/conn req/s: ${ctx.closeMethod}`,
    `- p50/p99 latency: ${ctx.latencyMethod}`,
    `- Bulk: ${ctx.tools.curl ? '`curl -o /dev/null`' : 'a Node http client that discards the body'} downloading a ${p.bulkBytes / 1e6} MB file, median of ${p.bulkRuns} run(s); MB = 10^6 bytes.`,
    `- CPU µs/req: utime+stime of the proxy's processes (all threads; nginx master and worker summed) from /proc/<pid>/stat, before and after a keep-alive run, divided by the requests it completed; taken from the setup's keep-alive round at the median${p.rounds % 2 === 0 ? ' (with an even number of rounds, the lower of the two middle ones)' : ''}.`,
    `- Syscalls/req: ${ctx.syscallMethod}`,
    `- RSS: a fresh proxy pointed at a Node server that accepts connections and holds them without answering; ${fmtInt(p.idleConns)} client connections are opened through the proxy and each sends one small HTTP request (so the HTTP proxies open their backend connection too), and RSS (VmRSS, summed over nginx's processes) is read once the backend counts them all. "+KB/conn" is (RSS − RSS of the same fresh proxy before the connections) / connections. MB = 10^6 bytes, KB = 10^3 bytes.`,
    '- rsp runs with its defaults (bin/rsp with a config that sets only listenPort, listenAddress, backendAddress, backendPort and triggerMode).',
    '- TCP proxies (rsp, Node, nginx stream, HAProxy tcp) open one backend connection per client connection; the HTTP proxies (nginx http, HAProxy http) keep backend connections alive across client connections, which matters most in the 1 req/conn column.',
    '- Proxy settings are the defaults except: nginx http has upstream `keepalive 64`, `proxy_http_version 1.1` and `proxy_max_temp_file_size 0` (no disk buffering); nginx/HAProxy timeouts are raised to 600 s for the idle-connection run; nginx `worker_rlimit_nofile`/`worker_connections` and HAProxy `maxconn` are raised to fit the connections.',
    '- Ratios are plain quotients of the figures (for latency, CPU, syscalls and RSS, lower is better).',
    '- Cells: "n/a" means not measured (tool missing or the measurement failed, see the notes); "—" means not applicable (direct has no proxy) or the setup was skipped.',
  ].join('\n');
}

function commandLine(argv: string[]): string {
  const args = argv.map((a) => (/^[\w./,:=-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
  if (process.env.npm_lifecycle_event === 'bench') return `npm run bench${args ? ` -- ${args}` : ''}`;
  return `node dist/scripts/bench.js${args ? ` ${args}` : ''}`;
}

function report(ctx: Context, rows: Row[], command: string, startedAt: Date, seconds: number, previousNotes: string): string {
  const p = ctx.params;
  const kind = ctx.options.quick
    ? `**Quick run (\`--quick\`)**: ${p.rounds} rounds of ${p.keepAliveS} s load runs, ${p.bulkBytes / 1e6} MB bulk file, ${fmtInt(p.idleConns)} idle connections; the figures are rougher than a full run's.`
    : `Full run: ${p.rounds} rounds of ${p.keepAliveS} s keep-alive and ${p.closeS} s one-request-per-connection runs per setup, ${p.latencyS} s latency run, ${p.bulkBytes / 1e6} MB bulk file, ${fmtInt(p.idleConns)} idle connections.`;
  const notes = rows.flatMap((r) => r.notes.map((n) => `- ${LABELS[r.setup]}: ${n}`));
  const skipped = rows.filter((r) => r.skipped).map((r) => `- ${LABELS[r.setup]} skipped: ${r.skipped}`);
  const toolNotes: string[] = [];
  if (!ctx.tools.wrk) toolNotes.push(`- wrk not installed. Keep-alive req/s: ${ctx.throughputMethod} 1 req/conn: ${ctx.closeMethod}`);
  if (!ctx.tools.perf) toolNotes.push(`- ${ctx.tools.perfNote}. Syscalls/req: ${ctx.syscallMethod}`);
  return `# Benchmarks

Generated by \`npm run bench\` (scripts/bench.ts). Everything above the \`${NOTES_MARKER}\` line is rewritten by each run; notes below it are kept.

## Results

${kind} One worker process/thread per proxy. Each cell: the figure, then its ratio to the Node \`net\` pipe proxy and to direct. The req/s figures are medians over the rounds, ± half their min–max range (as a share of the median).

${table(rows, p)}

Req/s round by round (in the order the rounds ran, then min–max${rows.some((r) => [...r.keepAliveDisturbed, ...r.closeDisturbed].includes(true)) ? '; \\* = other processes used over 10% of a core during that run' : ''}):

${roundsList(rows, p)}
${[...skipped, ...toolNotes, ...notes].length ? `\nNotes from this run:\n\n${[...skipped, ...toolNotes, ...notes].join('\n')}\n` : ''}
## Targets

For rsp level and rsp edge, checked against the figures above (for req/s, the medians over the rounds). "rounds overlap": the two setups' round-by-round figures overlap (the other setup's scaled by the target's factor), so that verdict is within this machine's run-to-run spread and could flip on another run.

${targets(rows, p, ctx.options.quick)}

## Machine

${machine(ctx, command, startedAt, seconds)}

## Method

${method(ctx)}

${NOTES_MARKER}
${previousNotes}`;
}

function readPreviousNotes(file: string): string {
  try {
    // The marker on a line of its own (the intro mentions it inline too); the
    // last such line, so that a file where an older version of this script
    // nested old reports into the notes comes out clean.
    const text = fs.readFileSync(file, 'utf8');
    const markers = [...text.matchAll(new RegExp(`^${NOTES_MARKER}[ \\t]*\\r?$`, 'gm'))];
    if (markers.length === 0) return '';
    const at = markers[markers.length - 1].index! + markers[markers.length - 1][0].length;
    return text.slice(at).replace(/^\n/, '');
  } catch {
    return '';
  }
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const options = parseOptions(argv);
  const params = options.quick ? QUICK : FULL;
  const startedAt = new Date();
  const started = Date.now();
  for (const file of [RSP_BIN, NODE_PROXY, BENCH_BACKEND, path.join(ROOT, 'dist', 'src', 'cli.js')]) {
    if (!fs.existsSync(file)) throw new Error(`${file} is missing: run "npm run build" first`);
  }

  foreign.start();
  const tools = detectTools(options);
  const say = (line: string): void => void process.stdout.write(line + '\n');
  say(`rsp benchmark (${options.quick ? 'quick' : 'full'}): ${options.only.join(', ')}`);
  say(`one worker process/thread per proxy; ${os.cpus().length} cores; loopback only`);
  for (const [tool, present] of [['wrk', tools.wrk], ['ab', tools.ab], ['nginx', tools.nginx], ['haproxy', tools.haproxy], ['strace', tools.strace], ['curl', tools.curl]] as const) {
    if (!present) say(`  ${tool} not found: skipping what needs it`);
  }
  if (!tools.perf) say(`  ${tools.perfNote}${tools.strace ? '; counting syscalls with strace -c instead' : ''}`);
  if (tools.nginx && tools.nginxStream === null) say('  nginx stream module not found: skipping nginx stream');

  tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'rsp-bench-'));
  const dir = tmpRoot;
  if (!tools.nginx) say(`  backend: a Node http server (nginx not installed; slower, so every figure is capped lower)`);
  else say(`  backend: nginx, 1 worker (writing the ${params.bulkBytes / 1e6} MB bulk file)`);
  const backend = await startBackend(tools, dir, params);
  const hold = await startHoldBackend();

  const ctx: Context = {
    options,
    params,
    tools,
    dir,
    backend,
    hold,
    throughputMethod: tools.wrk
      ? `\`wrk -t1 -c${params.loadConns} -d${params.keepAliveS}s\` to /small, once per round; a setup's first run follows a ${params.warmupS} s warm-up run (its proxy then stays up, so later rounds need none).`
      : tools.autocannon
        ? `autocannon (${params.loadConns} connections, ${params.keepAliveS} s, running inside the benchmark process), once per round; a setup's first run follows a warm-up run.`
        : 'not measured: neither wrk nor autocannon is installed (CPU/request and syscalls/request need it too).',
    closeMethod: tools.wrk
      ? `\`wrk -t1 -c${params.loadConns} -d${params.closeS}s -H 'Connection: close'\`, once per round, right after the setup's keep-alive run: the server closes after each response and wrk reconnects (the direct row's progress lines show connections/request counted at the backend).`
      : tools.ab
        ? `\`ab -c ${params.loadConns} -t ${params.closeS}\` without -k (a new connection per request), once per round.`
        : 'not measured: neither wrk nor ab is installed.',
    latencyMethod: tools.wrk
      ? `\`wrk -t1 -c${params.latencyConns} --latency\` for ${params.latencyS} s with a Lua \`delay()\` of ${params.latencyGapMs} ms between a connection's requests, so about ${fmtInt((params.latencyConns * 1000) / params.latencyGapMs)} req/s (wrk2 is not available, so this is closed-loop pacing, not a constant-rate open loop); time from sending a request to its complete response.`
      : `a paced Node client in the benchmark process: ${params.latencyConns} keep-alive connections, each waiting ${params.latencyGapMs} ms between requests (about ${fmtInt((params.latencyConns * 1000) / params.latencyGapMs)} req/s) for ${params.latencyS} s; time from write() to the complete response, so Node's own event-loop overhead is included.`,
    syscallMethod: tools.perf
      ? '`perf stat -e raw_syscalls:sys_enter -p <pids>` attached during every keep-alive run (it adds a small cost to each of the proxy\'s syscalls, the same for every proxy and every round), divided by its requests; from the same run as CPU µs/req.'
      : tools.strace && tools.wrk
        ? `\`strace -c -f -p <pids>\` during a separate ${params.straceS} s keep-alive run (strace slows the proxy a lot, so that run's throughput is not reported), divided by its requests.`
        : 'not measured (n/a): perf does not work here and strace is not installed, or there is no wrk.',
  };

  // Every proxy up first; it stays up through the rounds.
  say('Starting the proxies:');
  const states: SetupState[] = [];
  for (const setup of options.only) states.push(await startSetup(ctx, setup));

  // Keep-alive and 1 req/conn, in rounds that interleave the setups; each
  // round rotates the order by 1/rounds of the list.
  const active = states.filter((s) => !s.row.skipped);
  for (let round = 0; round < params.rounds && active.length > 0; round++) {
    const shift = Math.round((round * active.length) / params.rounds) % active.length;
    const order = [...active.slice(shift), ...active.slice(0, shift)];
    say(`Round ${round + 1} of ${params.rounds} (${order.map((s) => s.setup).join(', ')}):`);
    for (const s of order) await throughputRound(ctx, s, round);
  }
  say('Medians over the rounds:');
  for (const s of active) summarizeRounds(s, params);

  // The rest, one setup after another; each proxy is stopped after its turn.
  for (const s of active) {
    say(`${LABELS[s.setup]}:`);
    await finishSetup(ctx, s);
  }
  const rows = states.map((s) => s.row);

  await stopProcess(hold.service.proc);
  await stopProcess(backend.service.proc);

  const text = report(ctx, rows, commandLine(argv), startedAt, (Date.now() - started) / 1000, readPreviousNotes(options.out));
  fs.writeFileSync(options.out, text);
  say('');
  say(table(rows, params));
  say('');
  say(targets(rows, params, options.quick));
  say('');
  say(`Wrote ${options.out} (${Math.round((Date.now() - started) / 1000)} s).`);
}

process.on('exit', killEverything);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    process.stderr.write(`\nbench: ${signal}, stopping everything it started\n`);
    killEverything();
    process.exit(130);
  });
}
// Started by something that died without stopping us (a killed test runner):
// stop too, and take everything with us.
const parentPid = process.ppid;
setInterval(() => {
  if (process.ppid !== parentPid) {
    killEverything();
    process.exit(1);
  }
}, 1000).unref();
process.on('unhandledRejection', (error) => {
  process.stderr.write(`bench: ${error instanceof Error ? error.stack : String(error)}\n`);
  killEverything();
  process.exit(1);
});

main().then(
  () => {
    killEverything();
    process.exit(0);
  },
  (error: unknown) => {
    process.stderr.write(`bench: ${error instanceof Error ? error.message : String(error)}\n`);
    killEverything();
    process.exit(1);
  },
);
