// Counting a proxy's system calls over a run: perf stat on the syscall
// tracepoint (cheap), or strace -c (slow, so in a run of its own).
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { exited, killGroup, sleep, track } from './processes';

export interface SyscallCounter {
  stop(): Promise<number | null>;
}

export async function startPerf(pids: number[], dir: string): Promise<SyscallCounter> {
  const file = path.join(dir, `perf-${Date.now()}.txt`);
  const proc = spawn('perf', ['stat', '-x', ',', '-e', 'raw_syscalls:sys_enter', '-o', file, '-p', pids.join(',')], { detached: true, stdio: 'ignore' });
  track(proc);
  await sleep(400); // let it attach
  return {
    async stop(): Promise<number | null> {
      if (proc.exitCode !== null) return null;
      proc.kill('SIGINT');
      const timer = setTimeout(() => killGroup(proc, 'SIGKILL'), 5000);
      await exited(proc);
      clearTimeout(timer);
      const m = /^(\d+),[^\n]*raw_syscalls:sys_enter/m.exec(fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '');
      return m ? Number(m[1]) : null;
    },
  };
}

export async function startStrace(pids: number[], dir: string): Promise<SyscallCounter> {
  const file = path.join(dir, `strace-${Date.now()}.txt`);
  const args = ['-c', '-f', '-o', file];
  for (const pid of pids) args.push('-p', String(pid));
  const proc = spawn('strace', args, { detached: true, stdio: 'ignore' });
  track(proc);
  await sleep(700);
  return {
    async stop(): Promise<number | null> {
      if (proc.exitCode !== null) return null;
      proc.kill('SIGINT');
      const timer = setTimeout(() => killGroup(proc, 'SIGKILL'), 10000);
      await exited(proc);
      clearTimeout(timer);
      const text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
      const line = text.split('\n').find((l) => /\stotal\s*$/.test(l));
      const calls = line ? Number(line.trim().split(/\s+/)[3]) : NaN;
      return Number.isFinite(calls) ? calls : null;
    },
  };
}
