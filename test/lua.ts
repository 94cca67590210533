// Start the real CLI on a config written verbatim in Lua: for configs with
// tables (backends, listeners), which helpers.ts's key = value form cannot say.
import type { ExecutionContext } from 'ava';
import { RSP, spawnProcess, tempFile, type RunningProcess } from './helpers';

/**
 * Run rsp on `config` and wait for its start line; `port` is the first port it reports.
 * One worker unless the config sets `workers` (as startRsp in helpers.ts, and why).
 */
export async function startRspLua(t: ExecutionContext, config: string, extraArgs: string[] = []): Promise<RunningProcess> {
  const file = tempFile(t, 'rsp.lua', /\bworkers\s*=/.test(config) ? config : `workers = 1\n${config}`);
  const p = spawnProcess(t, process.execPath, [RSP, '--die-with-parent', ...extraArgs, file]);
  const line = await p.waitFor(/Listening on ports? [\d, ]+\./);
  const port = Number(/Listening on ports? (\d+)/.exec(line)![1]);
  return { ...p, port };
}
