// `npm start`: a small demo backend on 127.0.0.1:8888 and rsp in front of it
// on port 8000, from examples/demo.lua. Ctrl-C stops both.
//
//   node dist/scripts/demo.js [--port N] [--backend-port N]     (0: any free port)
//
// npm runs this as npm → sh -c → node, and passes on only some signals: a
// SIGTERM or SIGKILL to npm's pid can leave this process and rsp behind, holding
// the ports. So everything here goes when its launcher goes: rsp runs with
// --die-with-parent (it goes when this process goes, even by SIGKILL), this
// process asks the kernel for SIGTERM when its parent dies (PR_SET_PDEATHSIG),
// and watches the process that launched the shell (npm) as well.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as libc from '../ffi/libc';

const ROOT = path.join(__dirname, '..', '..');
const CONFIG = path.join(ROOT, 'examples', 'demo.lua');
const USAGE = 'usage: node dist/scripts/demo.js [--port N] [--backend-port N]   (defaults 8000 and 8888; 0 picks a free port)';

function parsePorts(argv: string[]): { proxyPort: number; backendPort: number } {
  const ports = { proxyPort: 8000, backendPort: 8888 };
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i] === '--port' ? 'proxyPort' : argv[i] === '--backend-port' ? 'backendPort' : null;
    const value = Number(argv[i + 1]);
    if (key === null || !Number.isInteger(value) || value < 0 || value > 65535) {
      process.stderr.write(`demo: ${key === null ? `unknown argument ${argv[i]}` : `${argv[i]} needs a port number`}\n${USAGE}\n`);
      process.exit(2);
    }
    ports[key] = value;
    i++;
  }
  return ports;
}

/** A process's start time (field 22 of /proc/PID/stat), so a reused pid is not taken for the one we watch; null once it is gone. */
function startTime(pid: number): string | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[0] === 'Z' ? null : fields[19];
  } catch {
    return null;
  }
}

/** The process that launched us: the parent, or the parent's parent when the parent is the `sh -c` that npm runs scripts in. */
function launcher(): number {
  const parent = process.ppid;
  try {
    const comm = fs.readFileSync(`/proc/${parent}/comm`, 'utf8').trim();
    if (['sh', 'dash', 'bash'].includes(comm)) {
      const stat = fs.readFileSync(`/proc/${parent}/stat`, 'utf8');
      const grandparent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (grandparent > 1) return grandparent;
    }
  } catch {
    // no /proc entry: watch the parent only
  }
  return parent;
}

const { proxyPort, backendPort } = parsePorts(process.argv.slice(2));
const parentAtStart = process.ppid;
let stopping = false;
let rsp: ReturnType<typeof spawn> | null = null;
let tmpConfig: string | null = null;

/** Stops rsp (it logs its counters and exits), then this process. */
function stop(why: string): void {
  if (stopping) return;
  stopping = true;
  if (why !== '') console.log(`\nDemo: ${why}; stopping rsp.`);
  if (rsp && rsp.exitCode === null && rsp.signalCode === null) {
    rsp.kill('SIGTERM');
    // rsp normally exits at once; never linger holding the ports.
    setTimeout(() => rsp?.kill('SIGKILL'), 3000).unref();
  } else finish(0);
}

function finish(code: number): never {
  if (tmpConfig !== null) fs.rmSync(path.dirname(tmpConfig), { recursive: true, force: true });
  process.exit(code);
}

// Our parent dying (npm's shell, or whatever ran us) sends us SIGTERM.
if (libc.setParentDeathSignal(libc.SIGTERM) !== 0) console.error('demo: prctl(PR_SET_PDEATHSIG) failed; watching the parent pid only');
if (process.ppid !== parentAtStart) stop('the process that started the demo is gone');
const watched = launcher();
const watchedStart = startTime(watched);
setInterval(() => {
  if (process.ppid !== parentAtStart || startTime(watched) !== watchedStart) stop('the process that started the demo is gone');
}, 250).unref();
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => stop(signal));

const backend = http.createServer((req, res) => {
  if (req.url?.startsWith('/big')) {
    // 10 MB, to watch a larger transfer go through.
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': 10 * 1024 * 1024 });
    res.end(Buffer.alloc(10 * 1024 * 1024, 'r'));
    return;
  }
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end(`Hello from the rsp demo backend (you asked for ${req.url}, via ${req.socket.remoteAddress}:${req.socket.remotePort})\n`);
});

backend.on('error', (error: NodeJS.ErrnoException) => {
  console.error(`demo backend: cannot listen on 127.0.0.1:${backendPort}: ${error.code ?? error.message}`);
  finish(1);
});

backend.listen(backendPort, '127.0.0.1', () => {
  const actualBackend = (backend.address() as net.AddressInfo).port;
  console.log(`Demo backend listening on 127.0.0.1:${actualBackend}`);
  let config = CONFIG;
  if (proxyPort !== 8000 || actualBackend !== 8888) {
    // examples/demo.lua with the ports changed.
    tmpConfig = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'rsp-demo-')), 'demo.lua');
    const text = fs.readFileSync(CONFIG, 'utf8')
      .replace(/^listenPort = .*$/m, `listenPort = "${proxyPort}"`)
      .replace(/^backendPort = .*$/m, `backendPort = "${actualBackend}"`);
    fs.writeFileSync(tmpConfig, text);
    config = tmpConfig;
  }
  const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'rsp'), '--die-with-parent', config], { stdio: ['ignore', 'pipe', 'inherit'] });
  rsp = child;
  let told = false;
  child.stdout!.on('data', (chunk: Buffer) => {
    process.stdout.write(chunk);
    const m = /Listening on port (\d+)/.exec(chunk.toString());
    if (m && !told) {
      told = true;
      console.log(`\nrsp (pid ${child.pid}) is proxying port ${m[1]} to the demo backend. Try:\n`);
      console.log(`  curl http://127.0.0.1:${m[1]}/`);
      console.log(`  curl -o /dev/null http://127.0.0.1:${m[1]}/big\n`);
      console.log(`Send signals to rsp itself, not to npm: kill -USR2 ${child.pid} prints its counters.`);
      console.log('Press Ctrl-C to stop.');
    }
  });
  child.on('error', (error) => {
    console.error(`demo: cannot start rsp: ${error.message}`);
    finish(1);
  });
  child.on('exit', (code, signal) => {
    backend.close();
    // Stopped by us (or by Ctrl-C, which reaches rsp too): a normal end.
    finish(stopping || signal !== null ? 0 : (code ?? 0));
  });
});
