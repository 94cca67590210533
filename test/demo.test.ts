// `npm start` (scripts/demo.ts) under npm, which runs it as npm → sh -c → node
// and passes on only some signals: however npm's process ends, the demo and
// the rsp it started must end with it and free their ports.
import test, { type ExecutionContext } from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import { ROOT } from './helpers';

interface Demo {
  npm: ChildProcess;
  /** The demo's own process and rsp's, as the demo reports them. */
  demoPid: number;
  rspPid: number;
  /** Their start times, so that a reused pid is not taken for them. */
  demoStart: string;
  rspStart: string;
  proxyPort: number;
  backendPort: number;
  output(): string;
}

/** A process that is still there (a zombie counts as gone: it holds no port and runs nothing). */
function running(pid: number, startTime?: string): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[0] !== 'Z' && (startTime === undefined || fields[19] === startTime);
  } catch {
    return false;
  }
}

function startTime(pid: number): string {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
}

function parentOf(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
}

/** Polls `probe` until it is true; false after `limitMs`. */
async function until(probe: () => boolean | Promise<boolean>, limitMs = 15000): Promise<boolean> {
  const deadline = Date.now() + limitMs;
  for (;;) {
    if (await probe()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
}

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.on('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.on('error', () => resolve(true));
  });
}

function getText(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/hello', agent: false, timeout: 10000 }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve(body));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('no answer in 10 s')));
    req.on('error', reject);
  });
}

const DEMO_ARGS = ['--port', '0', '--backend-port', '0'];

/**
 * `npm start -- --port 0 --backend-port 0` (or another launcher) in a process
 * group of its own; everything is killed when the test ends.
 */
async function startDemo(t: ExecutionContext, command = 'npm', args = ['start', '--silent', '--', ...DEMO_ARGS]): Promise<Demo> {
  const npm = spawn(command, args, { cwd: ROOT, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  npm.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  npm.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  const pids: [number, string][] = [];
  t.teardown(() => {
    // Whatever a failed test left: the group npm leads, and the two pids by their start time.
    try {
      process.kill(-npm.pid!, 'SIGKILL');
    } catch {
      // gone
    }
    for (const [pid, start] of pids) if (running(pid, start)) process.kill(pid, 'SIGKILL');
  });
  const ready = await until(() => /kill -USR2 \d+/.test(out) || npm.exitCode !== null);
  t.true(ready, `the demo did not start in 15 s:\n${out}`);
  const rspPid = Number(/kill -USR2 (\d+)/.exec(out)?.[1]);
  t.true(rspPid > 0, `no rsp pid printed:\n${out}`);
  const demoPid = parentOf(rspPid);
  const rspStart = startTime(rspPid);
  const demoStart = startTime(demoPid);
  pids.push([rspPid, rspStart], [demoPid, demoStart]);
  const backendPort = Number(/Demo backend listening on 127\.0\.0\.1:(\d+)/.exec(out)?.[1]);
  const proxyPort = Number(/Listening on port (\d+)\./.exec(out)?.[1]);
  t.true(backendPort > 0 && proxyPort > 0, out);
  // It serves through rsp before anything is stopped.
  t.regex(await getText(proxyPort), /^Hello from the rsp demo backend \(you asked for \/hello/);
  return { npm, demoPid, rspPid, demoStart, rspStart, proxyPort, backendPort, output: () => out };
}

async function assertAllGone(t: ExecutionContext, demo: Demo, how: string): Promise<void> {
  const { rspStart, demoStart } = demo;
  const gone = await until(() => !running(demo.rspPid, rspStart) && !running(demo.demoPid, demoStart));
  t.true(gone, `${how}: still running: ${running(demo.demoPid, demoStart) ? `demo ${demo.demoPid} ` : ''}${running(demo.rspPid, rspStart) ? `rsp ${demo.rspPid}` : ''}\n${demo.output()}`);
  // Both processes are gone, so their listening sockets are closed; on a busy
  // machine another test may already have been given the same port, so a
  // port that accepts is looked at again before it counts.
  t.true(await until(() => refused(demo.proxyPort)), `${how}: rsp's port ${demo.proxyPort} still accepts`);
  t.true(await until(() => refused(demo.backendPort)), `${how}: the demo backend's port ${demo.backendPort} still accepts`);
}

for (const signal of ['SIGTERM', 'SIGKILL', 'SIGUSR2'] as const) {
  test(`${signal} to npm's process stops the demo and rsp`, async (t) => {
    t.timeout(60000);
    const demo = await startDemo(t);
    process.kill(demo.npm.pid!, signal);
    await assertAllGone(t, demo, `kill -${signal.slice(3)} <npm>`);
  });
}

test('SIGKILL to a launcher that leaves its shell behind stops the demo and rsp (the demo watches its launcher)', async (t) => {
  t.timeout(60000);
  // launcher → sh -c → demo, where the shell outlives the launcher (it waits
  // for the demo), so the demo's parent stays alive and only watching the
  // launcher can tell.
  const script = `require('child_process').spawn('sh', ['-c', 'node dist/scripts/demo.js ${DEMO_ARGS.join(' ')}; true'], { stdio: 'inherit' }); setInterval(() => {}, 1e6);`;
  const demo = await startDemo(t, process.execPath, ['-e', script]);
  const shell = parentOf(demo.demoPid);
  t.not(shell, demo.npm.pid, 'the demo should run under a shell');
  process.kill(demo.npm.pid!, 'SIGKILL');
  await assertAllGone(t, demo, 'kill -KILL <launcher>');
});

test('SIGKILL to the demo itself stops rsp (--die-with-parent)', async (t) => {
  t.timeout(60000);
  const demo = await startDemo(t);
  process.kill(demo.demoPid, 'SIGKILL');
  await assertAllGone(t, demo, 'kill -KILL <demo>');
});

test('Ctrl-C (SIGINT to the whole process group) stops the demo and rsp, and rsp says it stopped', async (t) => {
  t.timeout(60000);
  const demo = await startDemo(t);
  const closed = new Promise<void>((resolve) => demo.npm.on('close', () => resolve()));
  process.kill(-demo.npm.pid!, 'SIGINT');
  await assertAllGone(t, demo, 'Ctrl-C');
  await closed;
  t.regex(demo.output(), /\] Stopped\.\n/);
});

test('the demo says which pid to send signals to, and that pid is rsp', async (t) => {
  t.timeout(60000);
  const demo = await startDemo(t);
  t.regex(demo.output(), new RegExp(`Send signals to rsp itself, not to npm: kill -USR2 ${demo.rspPid}`));
  const cmdline = fs.readFileSync(`/proc/${demo.rspPid}/cmdline`, 'utf8').split('\0');
  t.true(cmdline.some((a) => a.endsWith('bin/rsp')), cmdline.join(' '));
  t.true(cmdline.includes('--die-with-parent'), cmdline.join(' '));
  process.kill(demo.rspPid, 'SIGUSR2');
  t.true(await until(() => /counters: /.test(demo.output())), demo.output());
  t.true(running(demo.rspPid, demo.rspStart), 'rsp stopped on SIGUSR2');
  process.kill(-demo.npm.pid!, 'SIGTERM');
  await assertAllGone(t, demo, 'SIGTERM to the group');
});
