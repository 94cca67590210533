// SIGHUP: read the config file again and, if it is good, switch to it
// without a moment in which a listening address is closed.
//
//  1. loadConfig (the same validation as at start-up). On error: one line,
//     "Error parsing config file: ...", and rsp goes on with the old config.
//  2. Options that cannot change while running keep their old value, and the
//     line "Reloaded." says which ones need a restart.
//  3. The listening sockets: the same address keeps its socket (never closed,
//     so no client is refused); new addresses are bound now (a bind error
//     keeps the old config); the others close once no worker has them in its
//     epoll set any more (their open connections go on).
//  4. Every worker builds a generation from the new config and points its
//     listeners at it; pairings already open finish on the old one. Members
//     that are in both keep their health state.
// Reloads do not overlap: a SIGHUP during one runs after it.
import { ConfigError, configWarnings, loadConfig, type Config } from '../config';
import { log, logError } from '../log';
import { ListenSockets } from './sockets';
import type { WorkerPool } from './workers';

/** Options a running rsp cannot change: each worker, socket or file was made from them at start-up. */
export const RESTART_ONLY = ['workers', 'acceptMode', 'triggerMode', 'maxEvents', 'readBufferSize', 'trace', 'stats', 'accessLog', 'accessLogFormat', 'backlog', 'maxConnections', 'resolver'] as const;
type RestartOnly = (typeof RESTART_ONLY)[number];

export class Reloader {
  private busy = false;
  private again = false;
  stopped = false;

  constructor(
    private readonly path: string,
    /** The restart-only options as the file said them at start-up (before rsp derived workers or maxConnections). */
    private readonly written: Pick<Config, RestartOnly>,
    /** The config running now, with what rsp derived at start-up. */
    private running: Config,
    private readonly pool: WorkerPool,
    private readonly sockets: ListenSockets,
    /** The new config runs in every worker (the main thread follows its DNS names). */
    private readonly applied: (config: Config) => void,
  ) {}

  request(): void {
    if (this.stopped) {
      log('SIGHUP: draining or stopping; not reloading.');
      return;
    }
    log('SIGHUP: reloading the config.');
    if (this.busy) {
      this.again = true;
      return;
    }
    this.busy = true;
    void this.reload().finally(() => {
      this.busy = false;
      if (this.again) {
        this.again = false;
        this.request();
      }
    });
  }

  private async reload(): Promise<void> {
    let next: Config;
    try {
      next = await loadConfig(this.path);
    } catch (error) {
      logError(`Error parsing config file: ${error instanceof ConfigError ? error.message : error instanceof Error ? error.message : String(error)}`);
      return;
    }
    if (this.stopped) return;
    for (const warning of configWarnings(next)) logError(warning);
    const needRestart: string[] = [];
    const target = next as unknown as Record<string, unknown>;
    for (const name of RESTART_ONLY) {
      if (JSON.stringify(next[name]) !== JSON.stringify(this.written[name])) needRestart.push(`${name} (still ${JSON.stringify(this.running[name])})`);
      target[name] = this.running[name];
    }
    let plan;
    try {
      plan = this.sockets.plan(next.listeners);
    } catch (error) {
      logError(`Error parsing config file: ${error instanceof Error ? error.message : String(error)}; still running on the old config.`);
      return;
    }
    // The workers report back once they have let go of the old sockets.
    await new Promise<void>((resolve) => this.pool.reload(next, plan.sockets, resolve));
    this.sockets.commit(plan);
    ListenSockets.close(plan.removed);
    this.running = next;
    this.applied(next);
    const added = plan.opened.map((s) => `${s.address}:${s.port}`);
    const removed = plan.removed.length;
    const what = [added.length > 0 ? `listening on ${added.join(', ')} too` : '', removed > 0 ? `${removed} listener${removed === 1 ? '' : 's'} closed` : ''].filter((x) => x !== '');
    log(`Reloaded.${what.length > 0 ? ` (${what.join('; ')}.)` : ''}${needRestart.length > 0 ? ` Changed but needing a restart, so kept: ${needRestart.join(', ')}.` : ''}`);
  }
}
