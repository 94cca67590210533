// The config is run on a short-lived thread of its own, not on the main
// thread: fengari and all that running Lua allocates live in an isolate that
// is thrown away, whole, once the config has been read, instead of staying in
// the main thread's heap for the life of the process (about 4 MB of RSS:
// BENCHMARKS.md, "Where the memory goes"). The main thread gets the same
// validated plain data loadConfig() returns, or the same ConfigError.
//
// This file is both sides: loadConfigAside() on the main thread starts a
// Worker on this very file, which, seeing its workerData, runs loadConfig().
import * as fs from 'node:fs';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import type { Config } from './config';
import { ConfigError } from './configcheck';

interface Request {
  configThread: true;
  path: string;
}

type Answer = { ok: true; config: Config } | { ok: false; configError: boolean; message: string; stack: string };

/**
 * loadConfig(path), run on a thread of its own. Resolves as soon as the
 * thread has answered, and ends the thread (it has nothing left to do; ended
 * rather than left to end by itself, in case something the config loading
 * uses ever keeps its event loop alive) while the caller goes on starting rsp.
 */
export function loadConfigAside(path: string): Promise<Config> {
  return new Promise((resolve, reject) => {
    const request: Request = { configThread: true, path };
    const thread = new Worker(__filename, { workerData: request });
    let settled = false;
    const settle = (run: () => void): void => {
      if (settled) return;
      settled = true;
      run();
    };
    thread.on('message', (answer: Answer) => {
      void thread.terminate();
      settle(() => {
        if (answer.ok) resolve(answer.config);
        else if (answer.configError) reject(new ConfigError(answer.message));
        else reject(Object.assign(new Error(answer.message), { stack: answer.stack }));
      });
    });
    thread.on('error', (error) => settle(() => reject(error)));
    thread.on('exit', (code) => settle(() => reject(new Error(`the config thread ended (exit code ${code}) without a config`))));
  });
}

/**
 * What Lua's print and io.write send to process.stdout/stderr goes straight
 * to fd 1/2, as it does on the main thread (which writes pipes and files
 * synchronously). A worker's own stdout passes each chunk to the main thread
 * and takes the next only once its event loop turns: a config that prints,
 * then blocks (reading a FIFO, say), would not be seen to have printed.
 */
function writeThrough(stream: NodeJS.WriteStream, fd: number): void {
  const queued = stream.write.bind(stream);
  stream.write = ((chunk: string | Uint8Array, ...rest: unknown[]): boolean => {
    const done = rest.find((r) => typeof r === 'function') as ((error?: Error | null) => void) | undefined;
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    let written = 0;
    try {
      while (written < bytes.length) written += fs.writeSync(fd, bytes, written);
    } catch {
      return queued(bytes.subarray(written), ...(rest as [])); // EAGAIN (a non-blocking pipe that is full): the worker's way
    }
    if (done !== undefined) process.nextTick(done);
    return true;
  }) as typeof stream.write;
}

function serve(request: Request): void {
  writeThrough(process.stdout, 1);
  writeThrough(process.stderr, 2);
  // Required here, so that the main thread, which only starts this thread, never loads config.ts's Lua side.
  const { loadConfig } = require('./config') as typeof import('./config');
  loadConfig(request.path).then(
    (config) => parentPort!.postMessage({ ok: true, config } satisfies Answer),
    (error: unknown) => {
      const e = error instanceof Error ? error : new Error(String(error));
      parentPort!.postMessage({ ok: false, configError: e instanceof ConfigError, message: e.message, stack: e.stack ?? e.message } satisfies Answer);
    },
  );
}

if (!isMainThread && (workerData as Partial<Request> | null)?.configThread === true) serve(workerData as Request);
