// The interleaved rounds: per setup and round, a keep-alive run (with the
// proxy's CPU and, under perf, its syscalls over the same run) and a
// one-request-per-connection run (with the proxy's CPU: there every request
// is an accept, a backend connect and, for a pool, a pick); then the medians
// over the rounds.
import { fmt1, fmt2, fmtInt, median, rangeText } from './format';
import { runAb, runWrk, type Throughput } from './load';
import type { Params } from './options';
import { cpuMicros } from './procfs';
import { alive, ownRun, pidsOf, progress, Skip, type Context, type KeepAliveRun, type SetupState } from './state';
import { startPerf } from './syscalls';

/** One round for one setup: a keep-alive run, then a one-request-per-connection run. */
export async function throughputRound(ctx: Context, s: SetupState, round: number): Promise<void> {
  if (!alive(s)) return;
  const { params: p, tools } = ctx;
  const isProxy = s.setup.proxy;
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
      const accepted0 = isProxy ? await ctx.backend.accepted() : null;
      const counter = isProxy && tools.perf ? await startPerf(pids(), ctx.dir) : null;
      const cpu0 = cpuMicros(pids());
      const r = await runWrk(small, [`-c${p.loadConns}`], p.keepAliveS);
      const cpu1 = cpuMicros(pids());
      const calls = counter ? await counter.stop() : null;
      const conns = backendConns(accepted0, accepted0 === null ? null : await ctx.backend.accepted(), r.requests);
      if (conns !== null) (row.keepAliveBackendConns ??= []).push(conns);
      const run: KeepAliveRun = { round, rps: r.rps };
      if (isProxy) {
        run.cpu = (cpu1 - cpu0) / r.requests;
        row.keepAliveCpuRuns.push(run.cpu);
        if (calls !== null) run.syscalls = calls / r.requests;
      }
      s.keepAliveRuns.push(run);
      row.keepAliveRuns.push(r.rps);
      if (r.problems) row.notes.push(`keep-alive round ${round + 1}: ${r.problems}`);
      result = `${fmtInt(r.rps)} req/s` + (isProxy ? `, ${fmt1(run.cpu)} µs CPU/req, ${run.syscalls !== undefined ? fmt2(run.syscalls) : 'n/a'} syscalls/req` : '') + (conns !== null ? `, ${fmt2(conns)} backend connections/req` : '') + (r.problems ? ` (${r.problems})` : '');
    } else if (tools.autocannon) {
      if (!s.warmed) {
        await tools.autocannon({ url: small, connections: p.loadConns, duration: p.warmupS });
        s.warmed = true;
      }
      const cpu0 = cpuMicros(pids());
      const r = await tools.autocannon({ url: small, connections: p.loadConns, duration: p.keepAliveS });
      const cpu1 = cpuMicros(pids());
      const run: KeepAliveRun = { round, rps: r.requests.total / r.duration };
      if (isProxy) {
        run.cpu = (cpu1 - cpu0) / r.requests.total;
        row.keepAliveCpuRuns.push(run.cpu);
      }
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
      const before = await ctx.backend.accepted();
      let r: Throughput;
      const cpu0 = cpuMicros(pids());
      if (tools.wrk) r = await runWrk(small, [`-c${p.loadConns}`, '-H', 'Connection: close'], p.closeS);
      else if (tools.ab) r = await runAb(small, p.loadConns, p.closeS);
      else throw new Skip('neither wrk nor ab is installed');
      const cpu = isProxy && r.requests > 0 ? (cpuMicros(pids()) - cpu0) / r.requests : undefined;
      row.closeRuns.push(r.rps);
      if (cpu !== undefined) row.closeCpuRuns.push(cpu);
      let check = '';
      if (before !== null) {
        const conns = backendConns(before, await ctx.backend.accepted(), r.requests);
        if (conns !== null) check = `, ${fmt2(conns)} connections/request at the backend`;
        if (conns !== null && isProxy) (row.closeBackendConns ??= []).push(conns);
      }
      if (r.problems) row.notes.push(`conn-per-request round ${round + 1}: ${r.problems}`);
      return `${fmtInt(r.rps)} req/s${cpu !== undefined ? `, ${fmt1(cpu)} µs CPU/req` : ''}${check}${r.problems ? ` (${r.problems})` : ''}`;
    });
    if (row.closeRuns.length > count) row.closeDisturbed.push(disturbed);
  }

  s.cpuMark = cpuMicros(pids());
  s.wallMark = Date.now();
}

/** Connections the backend accepted per request between two counts (the second count's own connection left out); null when it cannot tell. */
function backendConns(before: number | null, after: number | null, requests: number): number | null {
  return before === null || after === null || requests <= 0 ? null : (after - before - 1) / requests;
}

/** After the rounds: the medians, and CPU/syscalls from the keep-alive round at the median. */
export function summarizeRounds(s: SetupState, p: Params): void {
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
    const figures = !s.setup.proxy ? '' : mid.syscalls !== undefined ? `; CPU and syscalls from round ${mid.round + 1}: ${fmt1(mid.cpu)} µs/req, ${fmt2(mid.syscalls)} syscalls/req` : `; CPU from round ${mid.round + 1}: ${fmt1(mid.cpu)} µs/req`;
    progress(s.setup.name, 'keep-alive', `median ${fmtInt(row.keepAlive)} req/s over ${of(row.keepAliveRuns.length)} (${rangeText(row.keepAliveRuns)})${figures}`);
  }
  if (row.closeRuns.length > 0) {
    row.close = median(row.closeRuns);
    progress(s.setup.name, 'conn-per-request', `median ${fmtInt(row.close)} req/s over ${of(row.closeRuns.length)} (${rangeText(row.closeRuns)})`);
  }
  if (row.keepAliveCpuRuns.length > 1 || row.closeCpuRuns.length > 1) {
    const cpu = (runs: number[]): string => (runs.length === 0 ? 'n/a' : `${fmt1(median(runs))} (${runs.map((v) => fmt1(v)).join(' / ')})`);
    progress(s.setup.name, 'CPU µs/req', `medians over the rounds: keep-alive ${cpu(row.keepAliveCpuRuns)}, 1 req/conn ${cpu(row.closeCpuRuns)}`);
  }
  if (s.setup.proxy && s.idleWall > 0) {
    const share = s.idleCpu / 1e6 / s.idleWall;
    progress(s.setup.name, 'between its runs', `${fmt1(s.idleCpu / 1000)} ms CPU over ${fmt1(s.idleWall)} s of waiting (${(share * 100).toFixed(1)}% of a core)`);
    if (share > 0.01) row.notes.push(`the proxy used ${(share * 100).toFixed(1)}% of a core while it waited between its rounds (when other setups were measured)`);
  }
}

