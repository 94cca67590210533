// A setup's state through the run and its row of figures; how one of its
// measurements is run and reported (progress line, failure noted, the CPU
// other processes used meanwhile).
import type { Backend, HoldBackend } from './backends';
import type { Options, Params } from './options';
import { cpuMicros, foreign } from './procfs';
import type { Running, Setup } from './setup';
import type { Tools } from './tools';

export interface KeepAliveRun {
  round: number;
  rps: number;
  cpu?: number;
  syscalls?: number;
}

export interface Row {
  /** The setup's name and its label in the report. */
  setup: string;
  label: string;
  /** False for direct: the proxy-only columns are "—". */
  proxy: boolean;
  skipped?: string;
  /** Median over the rounds. */
  keepAlive?: number;
  close?: number;
  /** Each round's req/s, in round order (rounds that failed are left out). */
  keepAliveRuns: number[];
  closeRuns: number[];
  /** The proxy's CPU µs per request in each of those runs (proxies only; runs where it was not measured are left out). */
  keepAliveCpuRuns: number[];
  closeCpuRuns: number[];
  /** Connections the backend accepted per request in each of those runs (proxies; when the backend counts them): how well an HTTP proxy reuses its backend connections. */
  keepAliveBackendConns?: number[];
  closeBackendConns?: number[];
  /** Whether other processes used over 10% of a core during each of those runs. */
  keepAliveDisturbed: boolean[];
  closeDisturbed: boolean[];
  p50?: number;
  p99?: number;
  bulk?: number;
  /** Each bulk run's MB/s, and the proxy's median CPU ms per MB over them. */
  bulkRuns?: number[];
  bulkCpu?: number;
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

export function progress(setup: string, what: string, text: string): void {
  process.stdout.write(`  ${setup.padEnd(13)} ${what.padEnd(20)} ${text}\n`);
}

/** A measurement that cannot run here (a tool is missing): reported as skipped, not as a failure. */
export class Skip extends Error {}

export function errorText(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split('\n')[0];
}

export interface Context {
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
export interface SetupState {
  setup: Setup;
  row: Row;
  /** null until it has started (and when it was skipped). */
  service: Running | null;
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

export function pidsOf(s: SetupState): number[] {
  return s.service ? s.service.pids() : [];
}

export function alive(s: SetupState): boolean {
  if (s.out) return false;
  const status = s.service?.exitStatus() ?? null;
  if (status !== null) {
    s.out = true;
    const why = `the proxy exited (${status}); no further runs on it`;
    s.row.notes.push(why);
    progress(s.setup.name, 'exited', `${why}${s.service!.output().trim() ? `: ${s.service!.output().trim().split('\n').slice(-3).join(' / ')}` : ''}`);
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
export async function ownRun(s: SetupState, what: string, fn: () => Promise<string>): Promise<boolean> {
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
  if (failure === null) progress(s.setup.name, what, text + mark);
  else if (failure instanceof Skip) progress(s.setup.name, what, `skipped: ${failure.message}`);
  else {
    s.row.notes.push(`${what}: ${errorText(failure)}`);
    progress(s.setup.name, what, `failed: ${errorText(failure)}${mark}`);
  }
  return share > 0.1;
}

export async function startSetup(ctx: Context, setup: Setup): Promise<SetupState> {
  const s: SetupState = {
    setup,
    row: { setup: setup.name, label: setup.label, proxy: setup.proxy, keepAliveRuns: [], closeRuns: [], keepAliveCpuRuns: [], closeCpuRuns: [], keepAliveDisturbed: [], closeDisturbed: [], notes: [] },
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
  const missing = setup.needs(ctx.tools);
  if (missing !== null) {
    s.row.skipped = missing;
    s.out = true;
    progress(setup.name, 'skipped', missing);
    return s;
  }
  try {
    s.service = await setup.start(ctx.backend.service.port, ctx.dir, ctx.tools, 1000, ctx.backend.ports);
    if (setup.check) {
      const seen = await setup.check(s.service.port).catch(async (error: unknown) => {
        await s.service!.stop();
        throw error;
      });
      s.service = { ...s.service, detail: [s.service.detail, seen].filter(Boolean).join('; ') };
    }
  } catch (error) {
    s.row.skipped = `failed to start: ${errorText(error)}`;
    s.out = true;
    progress(setup.name, 'skipped', s.row.skipped);
    return s;
  }
  s.port = s.service.port;
  if (setup.proxy) progress(setup.name, 'started', `port ${s.port}, pid ${pidsOf(s).join(', ')}${s.service.detail ? `; ${s.service.detail}` : ''}`);
  else progress(setup.name, 'ready', `the backend itself, port ${s.port}`);
  s.cpuMark = cpuMicros(pidsOf(s));
  s.wallMark = Date.now();
  return s;
}
