// rsp.c's main, on the main thread: read the arguments and the config, start
// the worker that runs the reactor, print what it reports, and stop it on
// SIGINT/SIGTERM. The main thread never touches a worker's sockets.
//
// Every signal rsp answers has its handler from the first line of main():
// Node's default actions are a debugger on 127.0.0.1:9229 for SIGUSR1 and a
// silent death for SIGUSR2, and a config can take a while to load.
import * as path from 'node:path';
import { MessageChannel, Worker } from 'node:worker_threads';
import * as libc from '../ffi/libc';
import { ConfigError, configWarnings, itselfReason, loadConfig, type Config } from './config';
import { loadConfigAside } from './configthread';
import { describeCounters } from './counters';
import { DnsFollower } from './dns';
import { defaultMaxConnections, FD_HEADROOM, raiseFdLimit } from './fdlimit';
import { log, logError } from './log';
import { dropStartupPages, memoryLines, memoryReportOn, WORKER_RESOURCE_LIMITS } from './memory';
import type { ControlMessage, WorkerData, WorkerMessage } from './worker';

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
SIGUSR2 prints the reactor's counters; SIGUSR1 reopens the access log (logrotate)
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
  // nginx reloads its config on SIGHUP (systemctl reload). rsp cannot yet:
  // say so and keep serving, rather than die of Node's default action.
  process.on('SIGHUP', () => log('SIGHUP: reloading the config is not supported yet; still running on the config loaded at start-up (restart to apply a new one).'));
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
  if (args.trace) config.trace = true;
  applyFdLimit(config);
  start(config);
}

/** Soft open-files limit up to the hard one; maxConnections = 0 becomes what it allows. */
function applyFdLimit(config: Config): void {
  const fds = raiseFdLimit();
  if (fds.problem !== null) logError(`Warning: the open-files limit stays at ${fds.soft}: ${fds.problem}`);
  const reserved = config.listeners.length + config.pools.reduce((n, p) => n + p.members.length, 0);
  const fit = defaultMaxConnections(fds.soft, reserved);
  if (config.maxConnections === 0) config.maxConnections = fit;
  else if (config.maxConnections > fit) {
    const needed = 2 * config.maxConnections + FD_HEADROOM + reserved;
    logError(`Warning: maxConnections = ${config.maxConnections} needs about ${needed} file descriptors but the open-files limit is ${fds.soft}: accepts will pause on EMFILE before maxConnections is reached (raise LimitNOFILE= or ulimit -Hn)`);
  }
}

function start(config: Config): void {
  const wakeFd = libc.check('eventfd', libc.eventfd(0, libc.EFD_NONBLOCK | libc.EFD_CLOEXEC));
  const channel = new MessageChannel();
  const data: WorkerData = { config, wakeFd, port: channel.port2 };
  const worker = new Worker(path.join(__dirname, 'worker.js'), { workerData: data, transferList: [channel.port2], resourceLimits: WORKER_RESOURCE_LIMITS });
  const one = Buffer.alloc(8);
  one.writeBigUInt64LE(1n);

  const tell = (message: ControlMessage): void => {
    channel.port1.postMessage(message);
    libc.write(wakeFd, one, 8); // wakes the worker's epoll_wait
  };
  // Members given by name follow DNS from here, the main thread, whose event loop is free.
  const follower = config.resolveInterval > 0 && config.names.length > 0
    ? new DnsFollower(config.names, config.resolveInterval, config.resolver, (change) => tell({ type: 'members', ...change }), (pool, m) => itselfReason(config, pool, m))
    : null;
  let stopping = false;
  let draining = false;
  running = {
    drain(signal: string): void {
      if (draining) {
        this.stop(signal);
        return;
      }
      draining = true;
      log(`${signal}: draining (a second ${signal} stops at once).`);
      tell({ type: 'drain' });
    },
    stop(signal: string): void {
      if (stopping) return;
      stopping = true;
      follower?.stop();
      log(`${signal}: stopping now; open connections are reset.`);
      tell({ type: 'stop' });
    },
    counters: () => {
      tell({ type: 'counters' });
      if (memoryReportOn) memoryLines('main').forEach((line) => log(line)); // RSP_MEMORY_REPORT=1 (src/memory.ts)
    },
    reopen: () => tell({ type: 'reopen' }),
  };

  worker.on('message', (message: WorkerMessage) => {
    switch (message.type) {
      case 'log':
        (message.level === 'error' ? process.stderr : process.stdout).write(message.line + '\n');
        break;
      case 'listening':
        // Before the start line, so that whoever waits for it finds the process as it will stay (src/memory.ts).
        dropStartupPages();
        // The C rsp's line for one listener; all the ports for several.
        log(message.ports.length === 1 ? `Started.  Listening on port ${message.ports[0]}.` : `Started.  Listening on ports ${message.ports.join(', ')}.`);
        if (message.statsPort !== null) log(`Stats on port ${message.statsPort}: /stats, /metrics, /healthz and / (the status page).`);
        if (!stopping) follower?.start();
        break;
      case 'fatal':
        logError(message.message);
        process.exitCode = 1;
        break;
      case 'counters':
        describeCounters(message.counters).forEach((line) => log(line));
        break;
      case 'stopped':
        describeCounters(message.counters).forEach((line) => log(line));
        log('Stopped.');
        break;
    }
  });
  worker.on('error', (error) => {
    logError(`worker failed: ${error.message}`);
    process.exitCode = 1;
  });
  worker.on('exit', () => {
    channel.port1.close();
    libc.close(wakeFd);
    process.exit(process.exitCode ?? 0);
  });
}
