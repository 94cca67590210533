// Two builds of rsp (or one build run two ways), side by side on keep-alive
// load: is B as fast as A? On a shared machine one run can be 15-30% off, so
// the runs interleave, A then B in odd rounds and B then A in even ones, and
// the medians are compared.
//
//   node dist/scripts/bench/ab.js --a /tmp/base/bin/rsp [--b bin/rsp] [--rounds 6] [--seconds 5]
//        [--a-env NAME=VALUE,...] [--b-env ...] [--a-node "--flag ..."] [--b-node ...]
//
// Both are pointed at the same nginx backend (/small, 100 bytes), as
// `npm run bench` does; wrk -c64 -t1. Each side is warmed up first. Prints
// each round's req/s and CPU µs per request, then the medians and B/A.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startBackend } from './backends';
import { fmt1, fmtInt, median } from './format';
import { runWrk } from './load';
import { FULL } from './options';
import { killEverything, makeTempRoot, startService, stopProcess, type Service } from './processes';
import { cpuMicros } from './procfs';
import { RSP_BIN } from './setups/rsp';
import { detectTools } from './tools';

interface Side {
  name: 'A' | 'B';
  bin: string;
  env: Record<string, string>;
  node: string[];
  rps: number[];
  cpu: number[];
  service?: Service;
}

function parse(argv: string[]): { a: Side; b: Side; rounds: number; seconds: number } {
  const side = (name: 'A' | 'B'): Side => ({ name, bin: RSP_BIN, env: {}, node: [], rps: [], cpu: [] });
  const a = side('A');
  const b = side('B');
  let rounds = 6;
  let seconds = 5;
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    const s = flag.startsWith('--a') ? a : b;
    if (flag === '--a' || flag === '--b') s.bin = path.resolve(value);
    else if (flag === '--a-env' || flag === '--b-env') for (const kv of value.split(',')) s.env[kv.slice(0, kv.indexOf('='))] = kv.slice(kv.indexOf('=') + 1);
    else if (flag === '--a-node' || flag === '--b-node') s.node = value.split(' ').filter(Boolean);
    else if (flag === '--rounds') rounds = Number(value);
    else if (flag === '--seconds') seconds = Number(value);
    else throw new Error(`unknown option ${flag} (see the top of scripts/bench/ab.ts)`);
  }
  return { a, b, rounds, seconds };
}

function describe(s: Side): string {
  const env = Object.entries(s.env).map(([k, v]) => `${k}=${v} `).join('');
  return `${env}node ${[...s.node, path.relative(process.cwd(), s.bin) || s.bin].join(' ')}`;
}

async function main(): Promise<void> {
  const { a, b, rounds, seconds } = parse(process.argv.slice(2));
  const dir = makeTempRoot();
  const tools = detectTools({ quick: false, only: [], out: '', without: new Set(), rounds: null });
  if (!tools.wrk) throw new Error('needs wrk');
  const backend = await startBackend(tools, dir, { ...FULL, bulkBytes: 1000 });
  try {
    for (const s of [a, b]) {
      const file = path.join(dir, `rsp-${s.name}.lua`);
      fs.writeFileSync(file, `listenPort = "0"\nlistenAddress = "127.0.0.1"\nbackendAddress = "127.0.0.1"\nbackendPort = "${backend.service.port}"\n`);
      const saved = { ...process.env };
      Object.assign(process.env, s.env);
      try {
        s.service = await startService(process.execPath, [...s.node, s.bin, '--die-with-parent', file]);
      } finally {
        process.env = saved;
      }
      await runWrk(`http://127.0.0.1:${s.service.port}/small`, ['-c64'], FULL.warmupS);
      process.stdout.write(`${s.name}: ${describe(s)} (pid ${s.service.proc.pid})\n`);
    }
    for (let r = 0; r < rounds; r++) {
      const order = r % 2 === 0 ? [a, b] : [b, a];
      const line: string[] = [];
      for (const s of order) {
        const pid = s.service!.proc.pid!;
        const cpu0 = cpuMicros([pid]);
        const w = await runWrk(`http://127.0.0.1:${s.service!.port}/small`, ['-c64'], seconds);
        const cpu = (cpuMicros([pid]) - cpu0) / w.requests;
        s.rps.push(w.rps);
        s.cpu.push(cpu);
        line.push(`${s.name} ${fmtInt(w.rps)} req/s ${fmt1(cpu)} µs/req${w.problems ? ` (${w.problems})` : ''}`);
      }
      process.stdout.write(`round ${r + 1}: ${line.join(', ')}\n`);
    }
    const ra = median(a.rps);
    const rb = median(b.rps);
    process.stdout.write(`median: A ${fmtInt(ra)} req/s ${fmt1(median(a.cpu))} µs/req, B ${fmtInt(rb)} req/s ${fmt1(median(b.cpu))} µs/req; B/A ${(rb / ra).toFixed(3)} req/s, ${(median(b.cpu) / median(a.cpu)).toFixed(3)} CPU/req\n`);
  } finally {
    for (const s of [a, b]) if (s.service) await stopProcess(s.service.proc);
    await stopProcess(backend.service.proc);
    killEverything();
  }
}

main().catch((error) => {
  killEverything();
  process.stderr.write(`ab: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
