// rsp itself, with its defaults, in either trigger mode: bin/rsp with a config
// that sets only the addresses, triggerMode and the number of workers. One
// process; its reactors are worker threads, so its pid's CPU and syscalls
// cover every thread.
//
// rsp-level, rsp-edge and rsp-pool3 run one worker (workers = 1), the rows
// this benchmark has always had; rsp-w2 is rsp-level with two workers (each
// its own listening socket, SO_REUSEPORT), for the scaling figures.
//
// rsp-level-copy and rsp-edge-copy (not in a default run: `--only` names
// them) are the same with zeroCopy = "off": every byte copied through rsp, for
// a comparison with the default "auto", which splices bulk transfers
// (src/splice.ts); rsp-level-splice splices every connection ("on").
//
// rsp-pool3 is rsp level with a pool of three members instead of the one
// backend (`backends = { app = { three members, balance = "roundrobin" } }`):
// the same backend process on three of its ports, so the two rows differ only
// by the balancing. Its start-up checks that three clients really reached
// three different member sockets.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { ROOT } from '../constants';
import { connect } from '../load';
import { running, sleep, startService } from '../processes';
import { connectionsByRemotePort } from '../procfs';
import type { Running, Setup } from '../setup';

export const RSP_BIN = path.join(ROOT, 'bin', 'rsp');

function rsp(mode: 'level' | 'edge', zeroCopy?: 'off' | 'on', workers = 1): Setup {
  const variant = zeroCopy === undefined ? '' : zeroCopy === 'off' ? '-copy' : '-splice';
  const name = workers === 1 ? `rsp-${mode}${variant}` : `rsp-w${workers}`;
  return {
    name,
    label: workers === 1 ? `rsp ${mode}${zeroCopy === undefined ? '' : zeroCopy === 'off' ? ', copying' : ', splice always'}` : `rsp ${mode}, ${workers} workers`,
    proxy: true,
    extra: zeroCopy !== undefined,
    needs: () => null,
    async start(backendPort, dir) {
      const file = path.join(dir, `${name}-${backendPort}.lua`);
      const setting = zeroCopy === undefined ? '' : `zeroCopy = "${zeroCopy}"\n`;
      fs.writeFileSync(file, `listenPort = "0"\nlistenAddress = "127.0.0.1"\nbackendAddress = "127.0.0.1"\nbackendPort = "${backendPort}"\ntriggerMode = "${mode}"\nworkers = ${workers}\n${setting}`);
      return running(await startService(process.execPath, [RSP_BIN, '--die-with-parent', file]));
    },
  };
}

export const rspLevel = rsp('level');
export const rspEdge = rsp('edge');
export const rspWorkers2 = rsp('level', undefined, 2);
export const rspLevelCopy = rsp('level', 'off');
export const rspEdgeCopy = rsp('edge', 'off');
export const rspLevelSplice = rsp('level', 'on');

/** Members in the pool setup. */
const POOL_MEMBERS = 3;

export const rspPool3: Setup = {
  name: 'rsp-pool3',
  label: 'rsp level, pool of 3',
  proxy: true,
  needs: () => null,
  async start(backendPort, dir, _tools, _connections, backendPorts) {
    const ports = backendPorts.slice(0, POOL_MEMBERS);
    if (ports.length < POOL_MEMBERS || new Set(ports).size < POOL_MEMBERS) {
      throw new Error(`needs a backend on ${POOL_MEMBERS} ports, got ${ports.join(', ')}`);
    }
    const file = path.join(dir, `rsp-pool3-${backendPort}.lua`);
    const members = ports.map((p) => `"127.0.0.1:${p}"`).join(', ');
    fs.writeFileSync(file, `listenPort = "0"\nlistenAddress = "127.0.0.1"\nbackends = { app = { ${members}, balance = "roundrobin" } }\ntriggerMode = "level"\nworkers = 1\n`);
    const proxy = running(await startService(process.execPath, [RSP_BIN, '--die-with-parent', file]));
    try {
      return { ...proxy, detail: await checkSpread(proxy, ports) };
    } catch (error) {
      await proxy.stop();
      throw error;
    }
  },
};

/**
 * Opens one client per member and checks, in /proc, that rsp holds one
 * backend connection to each member's port (round-robin over equal weights:
 * exactly one each); then closes them and waits until rsp has let go of the
 * backend side too, so that nothing of the check is left for the runs.
 */
async function checkSpread(proxy: Running, ports: number[]): Promise<string> {
  const count = (): number[] => {
    const byPort = connectionsByRemotePort(proxy.pids());
    return ports.map((p) => byPort.get(p) ?? 0);
  };
  const before = count();
  if (before.some((n) => n !== 0)) throw new Error(`rsp is connected to its members before any client: ${before.join(', ')}`);
  const clients: net.Socket[] = [];
  try {
    for (let i = 0; i < ports.length; i++) {
      const socket = await connect(proxy.port);
      socket.on('error', () => {});
      clients.push(socket);
    }
    let seen = count();
    for (const deadline = Date.now() + 5000; seen.reduce((a, b) => a + b, 0) < ports.length && Date.now() < deadline; seen = count()) await sleep(20);
    if (seen.some((n) => n !== 1)) {
      throw new Error(`${ports.length} clients should reach each member once; backend connections per member port (${ports.join(', ')}): ${seen.join(', ')}`);
    }
  } finally {
    for (const socket of clients) socket.destroy();
  }
  let left = count();
  for (const deadline = Date.now() + 5000; left.some((n) => n !== 0) && Date.now() < deadline; left = count()) await sleep(20);
  if (left.some((n) => n !== 0)) throw new Error(`rsp still holds backend connections after the check's clients left: ${left.join(', ')}`);
  return `members 127.0.0.1:${ports.join(', :')}: ${ports.length} clients reached one member socket each`;
}
