// After the rounds, one setup after another: syscalls under strace (when perf
// cannot count them), latency at a moderate rate, bulk download; then the
// proxy is stopped, idle memory is measured on a fresh one, and the CPU other
// processes used over the setup's runs is judged.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fmt0, fmt2, fmtInt, fmtMs } from './format';
import { download, pacedLatency, runWrk } from './load';
import { idleMemory } from './memory';
import { cpuMicros } from './procfs';
import { alive, ownRun, pidsOf, progress, type Context, type SetupState } from './state';
import { startStrace } from './syscalls';

/**
 * Bulk downloads, interleaved as the rounds are: every setup once per run,
 * the order rotated from run to run, so that what disturbs the machine lands
 * on all of them (bulk MB/s swing most of all on a shared VM: a ratio to
 * direct means something only when both come from the same stretch of time).
 * Each setup's figure is the median of its runs; the proxies' CPU per MB too.
 */
export async function bulkRounds(ctx: Context, states: SetupState[]): Promise<void> {
  const { params: p, tools } = ctx;
  const speeds = new Map<SetupState, number[]>();
  const cpuPerMB = new Map<SetupState, number[]>();
  for (let run = 0; run < p.bulkRuns; run++) {
    const live = states.filter((s) => !s.row.skipped && alive(s));
    if (live.length === 0) return;
    const shift = Math.round((run * live.length) / p.bulkRuns) % live.length;
    for (const s of [...live.slice(shift), ...live.slice(0, shift)]) {
      await ownRun(s, `bulk ${run + 1}/${p.bulkRuns}`, async () => {
        const cpu0 = s.setup.proxy ? cpuMicros(pidsOf(s)) : 0;
        const speed = await download(s.port, p.bulkBytes, tools);
        (speeds.get(s) ?? speeds.set(s, []).get(s)!).push(speed);
        let cpuText = '';
        if (s.setup.proxy) {
          const perMB = (cpuMicros(pidsOf(s)) - cpu0) / 1000 / (p.bulkBytes / 1e6);
          (cpuPerMB.get(s) ?? cpuPerMB.set(s, []).get(s)!).push(perMB);
          cpuText = `, ${fmt2(perMB)} ms CPU/MB`;
        }
        return `${fmt0(speed / 1e6)} MB/s${cpuText}`;
      });
    }
  }
  const median = (v: number[]): number => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
  for (const [s, v] of speeds) {
    s.row.bulk = median(v) / 1e6;
    s.row.bulkRuns = v.map((x) => x / 1e6);
    const cpu = cpuPerMB.get(s);
    if (cpu !== undefined) s.row.bulkCpu = median(cpu);
    progress(s.setup.name, 'bulk', `${fmt0(s.row.bulk)} MB/s (median of ${v.map((x) => fmt0(x / 1e6)).join(', ')})${cpu ? `, ${fmt2(s.row.bulkCpu!)} ms CPU/MB` : ''}`);
  }
}

/** After the rounds and the bulk runs: latency, then the proxy is stopped; idle memory on a fresh one; the disturbance check. */
export async function finishSetup(ctx: Context, s: SetupState): Promise<void> {
  const row = s.row;
  if (row.skipped) return;
  const { params: p, tools } = ctx;
  const isProxy = s.setup.proxy;
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

    // (Bulk downloads ran before, interleaved with the other setups': bulkRounds.)
  } finally {
    if (s.service) await s.service.stop();
    s.out = true;
  }

  // Memory with idle proxied connections, on a fresh proxy pointed at the hold backend.
  if (s.setup.proxy) await ownRun(s, 'idle memory', () => idleMemory(ctx, s));

  // Other processes' CPU over all of this setup's runs (every round, and the above).
  const share = s.foreignWall > 0 ? s.foreignCpu / s.foreignWall : 0;
  row.foreignShare = share;
  const worst = s.worstRun.share > 0.1 ? `; the worst was its ${s.worstRun.what} run, ${(s.worstRun.share * 100).toFixed(0)}%` : '';
  progress(s.setup.name, 'other processes', `${s.foreignCpu.toFixed(1)} CPU-s over its ${s.foreignWall.toFixed(0)} s of runs (${(share * 100).toFixed(0)}% of one core${worst})${share > 0.1 ? ': these figures were disturbed' : ''}`);
  if (share > 0.1) row.notes.push(`other processes used ${(share * 100).toFixed(0)}% of one core over this setup's runs${worst}: its figures are disturbed`);
}
