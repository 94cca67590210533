// The processes the benchmark starts: each in a process group of its own,
// tracked, and killed on the way out (on Ctrl-C and on errors too).
import { fork, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { processTree } from './procfs';
import type { Running } from './setup';

/** Every child still running; each leads a process group of its own. */
const children = new Set<ChildProcess>();
let tmpRoot = '';

export function track(proc: ChildProcess): void {
  children.add(proc);
  proc.on('exit', () => children.delete(proc));
}

export function killGroup(proc: ChildProcess, signal: NodeJS.Signals): void {
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

/** The run's scratch directory (configs, the bulk file, perf output); removed with everything else. */
export function makeTempRoot(): string {
  tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'rsp-bench-'));
  return tmpRoot;
}

export function killEverything(): void {
  for (const c of children) killGroup(c, 'SIGKILL');
  children.clear();
  if (tmpRoot !== '') {
    fs.rmSync(tmpRoot, { recursive: true, force: true });
    tmpRoot = '';
  }
}

export function exited(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => proc.once('exit', () => resolve()));
}

/** SIGTERM to the group, SIGKILL if it is still there after `graceMs`. */
export async function stopProcess(proc: ChildProcess, graceMs = 3000): Promise<void> {
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

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run a command to completion (killed after timeoutMs). */
export function run(command: string, args: string[], timeoutMs: number): Promise<RunResult> {
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

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A long-running child: a backend or a proxy. */
export interface Service {
  proc: ChildProcess;
  port: number;
  output(): string;
}

/**
 * Start a long-running child. Ready when it prints "Listening on port N"
 * (port taken from there) or, given `port`, when that port accepts.
 */
export async function startService(command: string, args: string[], opts: { port?: number; ipc?: boolean; timeoutMs?: number } = {}): Promise<Service> {
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

export function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.on('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** A started service as a setup: its process tree is its own, stopping it stops the group. */
export function running(service: Service): Running {
  return {
    port: service.port,
    pids: () => processTree(service.proc.pid!),
    exitStatus: () => {
      const { exitCode, signalCode } = service.proc;
      return exitCode !== null ? String(exitCode) : signalCode;
    },
    output: service.output,
    stop: () => stopProcess(service.proc),
  };
}
