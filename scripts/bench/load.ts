// The load generators: wrk (or ab, or autocannon) for requests/s and latency,
// a paced Node client when wrk is missing, curl (or Node) for the bulk download.
import * as http from 'node:http';
import * as net from 'node:net';
import type { Params } from './options';
import { run, sleep } from './processes';
import type { Tools } from './tools';

export interface Throughput {
  requests: number;
  seconds: number;
  rps: number;
  problems: string;
}

function wrkSeconds(value: string, unit: string): number {
  const n = Number(value);
  return unit === 'us' ? n / 1e6 : unit === 'ms' ? n / 1e3 : unit === 'm' ? n * 60 : unit === 'h' ? n * 3600 : n;
}

export function parseWrk(text: string): Throughput & { p50?: number; p99?: number } {
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

export async function runWrk(url: string, args: string[], durationS: number): Promise<ReturnType<typeof parseWrk>> {
  const r = await run('wrk', ['-t1', `-d${durationS}s`, '--timeout', '5s', ...args, url], (durationS + 30) * 1000);
  if (r.code !== 0) throw new Error(`wrk failed (${r.code}): ${r.stderr.trim() || r.stdout.trim()}`);
  return parseWrk(r.stdout);
}

export async function runAb(url: string, conns: number, durationS: number): Promise<Throughput> {
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

export function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    s.setNoDelay(true);
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

/** The fallback latency client: `conns` keep-alive connections, each waiting `gapMs` between requests. */
export async function pacedLatency(port: number, p: Params): Promise<{ p50: number; p99: number; count: number }> {
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
export async function download(port: number, expected: number, tools: Tools): Promise<number> {
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
