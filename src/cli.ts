// rsp.c's main, on the main thread: read the arguments and the config, open
// the listening sockets, start the workers that run the reactors
// (supervisor/workers.ts), print what they report, reload the config on
// SIGHUP (supervisor/reload.ts) and stop them on SIGINT/SIGTERM. The main
// thread never touches a client's or a backend's socket.
//
// Every signal rsp answers has its handler from the first line of main():
// Node's default actions are a debugger on 127.0.0.1:9229 for SIGUSR1 and a
// silent death for SIGUSR2, and a config can take a while to load.
import * as os from 'node:os';
import * as path from 'node:path';
import * as libc from '../ffi/libc';
import { ConfigError, configWarnings, itselfReason, loadConfig, type Config } from './config';
import { loadConfigAside } from './configthread';
import { DnsFollower } from './dns';
import { defaultMaxConnections, FD_HEADROOM, fdsPerConnection, raiseFdLimit } from './fdlimit';
import { log, logError } from './log';
import { Reloader, RESTART_ONLY } from './supervisor/reload';
import { ListenSockets } from './supervisor/sockets';
import { WorkerPool } from './supervisor/workers';
import { memoryLines, memoryReportOn, trimAfterStart } from './memory';

const USAGE = `Usage: rsp [options] <config.lua>

Runs the Really Simple Proxy with the Lua configuration file given.

Options:
  -t, --test       check the config (syntax, options, names resolve, addresses
                   parse, pools and listeners) without binding or starting
                   anything, say so on stderr as nginx -t does, exit 0 or 1
  --trace          print every epoll_wait, event and system call (as trace = true)
  --die-with-parent  stop when the process that started rsp exits, even by
                   SIGKILL (for test harnesses and supervisors)
  -h, --help       show this help and exit
  -v, --version    print the version and exit

Signals: SIGINT/SIGTERM drain rsp: it stops accepting, lets open connections
finish (drainTimeout) and exits 0; a second one, or SIGQUIT, stops at once;
SIGHUP reloads the config (open connections finish on the old one; on an
error rsp says so and keeps the old one); SIGUSR2 prints the reactors' counters; SIGUSR1 reopens the access log (logrotate)
and logs "Reopening log files."

Example config (the C rsp's three settings):
  listenPort = "8000"
  backendAddress = "127.0.0.1"
  backendPort = "8888"

See README.md for every option.`;

function version(): string {
  // dist/src/cli.js -> package.json two levels up
  return (require(path.join(__dirname, '..', '..', 'package.json')) as { version: string }).version;
}

interface Args {
  configPath: string;
  trace: boolean;
  dieWithParent: boolean;
  test: boolean;
}

/** Parse argv; prints and exits for --help, --version and usage errors (exit 2). */
function parseArgs(argv: string[]): Args {
  const positional: string[] = [];
  let trace = false;
  let dieWithParent = false;
  let test = false;
  for (const arg of argv) {
    if (arg === '-t' || arg === '--test') {
      test = true;
    } else if (arg === '--trace') {
      trace = true;
    } else if (arg === '--die-with-parent') {
      dieWithParent = true;
    } else if (arg === '-h' || arg === '--help') {
      process.stdout.write(USAGE + '\n');
      process.exit(0);
    } else if (arg === '-v' || arg === '--version') {
      process.stdout.write(`rsp ${version()}\n`);
      process.exit(0);
    } else if (arg.startsWith('-') && arg !== '-') {
      usageError(`unknown option ${arg}`);
    } else {
      positional.push(arg);
    }
  }
  if (positional.length !== 1) usageError(positional.length === 0 ? 'no config file given' : 'only one config file, please');
  return { configPath: positional[0], trace, dieWithParent, test };
}

function usageError(message: string): never {
  process.stderr.write(`rsp: ${message}\n${USAGE.split('\n')[0]}\nTry 'rsp --help' for more.\n`);
  process.exit(2);
}

/** What the signals act on once the worker runs. */
interface Running {
  drain(signal: string): void;
  stop(signal: string): void;
  counters(): void;
  reopen(): void;
  reload(): void;
}

let running: Running | undefined;

function installSignalHandlers(): void {
  const stop = (signal: string, now = false): void => {
    if (running !== undefined) {
      // The first SIGTERM/SIGINT drains; a second one, or SIGQUIT, stops at once.
      if (now) running.stop(signal);
      else running.drain(signal);
      return;
    }
    // Nothing started yet: nothing to drain or count.
    log(`Stopped by ${signal} before start-up finished.`);
    process.exit(0);
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGQUIT', () => stop('SIGQUIT', true));
  // nginx reloads its config on SIGHUP (systemctl reload). Before start-up
  // has finished there is nothing to reload: the file is being read now.
  process.on('SIGHUP', () => {
    if (running !== undefined) running.reload();
    else log('SIGHUP before start-up finished: the config being loaded is the one in the file now.');
  });
  // Before the worker exists there are no counters: the signal is ignored.
  process.on('SIGUSR2', () => running?.counters());
  // A handler, so that Node does not open its inspector (anyone on this host
  // could then run code as rsp). Reopening log files is what nginx does here:
  // the worker reopens the access log it writes (logrotate's postrotate).
  process.on('SIGUSR1', () => {
    log('Reopening log files.');
    running?.reopen();
  });
}

/** Runs the proxy until a signal stops it. */
export async function main(argv: string[]): Promise<void> {
  installSignalHandlers();
  const parent = process.ppid;
  const args = parseArgs(argv);
  if (args.dieWithParent) {
    // SIGTERM takes the normal way out (counters, exit 0). If the parent
    // died before this line, we are someone else's child already.
    libc.check('prctl(PR_SET_PDEATHSIG)', libc.setParentDeathSignal(libc.SIGTERM));
    if (process.ppid !== parent) process.exit(0);
  }
  let config: Config;
  try {
    // On a thread of its own, so that fengari's heap is given back once it has
    // run (configthread.ts); -t stops once the config is checked: no need.
    config = args.test ? await loadConfig(args.configPath) : await loadConfigAside(args.configPath);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`Error parsing config file: ${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
  // A signal that came while the config ran (synchronous Lua) is still
  // waiting in the event loop: let it act before a worker exists.
  await new Promise((resolve) => setImmediate(resolve));
  for (const warning of configWarnings(config)) logError(warning);
  if (args.test) {
    // nginx -t's two lines, on stderr as nginx writes them. Nothing was bound.
    process.stderr.write(`rsp: the configuration file ${args.configPath} syntax is ok\nrsp: configuration file ${args.configPath} test is successful\n`);
    process.exit(0);
  }
  const written = Object.fromEntries(RESTART_ONLY.map((name) => [name, config[name]])) as Pick<Config, (typeof RESTART_ONLY)[number]>;
  if (args.trace) config.trace = true;
  chooseWorkers(config);
  applyFdLimit(config);
  start(config, args.configPath, written);
}

/** workers = 0: one per CPU this process may run on. A trace is one reactor's story: one worker. */
function chooseWorkers(config: Config): void {
  if (config.trace && config.workers !== 1) {
    if (config.workers > 1) log(`trace: running 1 worker instead of ${config.workers} (the trace of one reactor; several would interleave).`);
    config.workers = 1;
  }
  if (config.workers === 0) config.workers = os.availableParallelism();
}

/** Soft open-files limit up to the hard one; maxConnections = 0 becomes what it allows. */
function applyFdLimit(config: Config): void {
  const fds = raiseFdLimit();
  if (fds.problem !== null) logError(`Warning: the open-files limit stays at ${fds.soft}: ${fds.problem}`);
  // A listening socket per listener and worker (reuseport), an epoll set and an eventfd per worker, and the members' checks.
  const sockets = config.listeners.length * (config.acceptMode === 'reuseport' ? config.workers : 1);
  const reserved = sockets + 2 * (config.workers - 1) + config.pools.reduce((n, p) => n + p.members.length, 0);
  const fit = defaultMaxConnections(fds.soft, reserved, fdsPerConnection(config.zeroCopy));
  if (config.maxConnections === 0) config.maxConnections = fit;
  // Set by hand: only the sockets must fit; pipes get what is left (none: zero copy copies).
  else if (config.maxConnections > defaultMaxConnections(fds.soft, reserved)) {
    const needed = 2 * config.maxConnections + FD_HEADROOM + reserved;
    logError(`Warning: maxConnections = ${config.maxConnections} needs about ${needed} file descriptors but the open-files limit is ${fds.soft}: accepts will pause on EMFILE before maxConnections is reached (raise LimitNOFILE= or ulimit -Hn)`);
  }
}

function start(config: Config, configPath: string, written: Pick<Config, (typeof RESTART_ONLY)[number]>): void {
  const sockets = new ListenSockets(config.workers, config.acceptMode, config.backlog);
  let plan;
  try {
    plan = sockets.plan(config.listeners);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    logError(message.startsWith('Could not') ? message : `Could not listen: ${message}`);
    process.exit(1);
  }
  sockets.commit(plan);
  // Members given by name follow DNS from here, the main thread, whose event loop is free.
  let follower: DnsFollower | null = null;
  let started = false;
  const follow = (c: Config): void => {
    follower?.stop();
    follower = c.resolveInterval > 0 && c.names.length > 0
      ? new DnsFollower(c.names, c.resolveInterval, c.resolver, (change) => pool.tellAll({ type: 'members', ...change }), (p, m) => itselfReason(c, p, m))
      : null;
    if (started && !stopping) follower?.start();
  };
  let stopping = false;
  let draining = false;
  const pool: WorkerPool = new WorkerPool(config.workers, config, sockets, plan.sockets, {
    listening(ports, statsPort) {
      // The C rsp's line for one listener; all the ports for several.
      trimAfterStart();
      log(ports.length === 1 ? `Started.  Listening on port ${ports[0]}.` : `Started.  Listening on ports ${ports.join(', ')}.`);
      if (config.workers > 1) {
        const how = config.acceptMode === 'reuseport' ? 'a listening socket each (SO_REUSEPORT)' : `one shared listening socket${config.acceptMode === 'shared' ? ' (EPOLLEXCLUSIVE)' : ', every worker woken for every connection'}`;
        log(`${config.workers} workers, ${how}.`);
      }
      if (statsPort !== null) log(`Stats on port ${statsPort}: /stats, /metrics, /healthz and / (the status page).`);
      started = true;
      if (!stopping) follower?.start();
    },
    exited() {
      sockets.closeAll();
      process.exit(process.exitCode ?? 0);
    },
  });
  follow(config);
  const reloader = new Reloader(configPath, written, config, pool, sockets, follow);
  running = {
    drain(signal: string): void {
      if (draining) {
        this.stop(signal);
        return;
      }
      draining = true;
      reloader.stopped = true;
      log(`${signal}: draining (a second ${signal} stops at once).`);
      pool.drain();
    },
    stop(signal: string): void {
      if (stopping) return;
      stopping = true;
      reloader.stopped = true;
      follower?.stop();
      log(`${signal}: stopping now; open connections are reset.`);
      pool.stop();
    },
    counters: () => {
      pool.askCounters();
      if (memoryReportOn) memoryLines('main').forEach((line) => log(line)); // RSP_MEMORY_REPORT=1 (src/memory.ts)
    },
    reopen: () => pool.tellAll({ type: 'reopen' }),
    reload: () => reloader.request(),
  };
}
