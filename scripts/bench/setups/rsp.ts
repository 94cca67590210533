// rsp itself, with its defaults, in either trigger mode: bin/rsp with a config
// that sets only the addresses and triggerMode. One process; its reactor is a
// worker thread, so its pid's CPU and syscalls cover both threads.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ROOT } from '../constants';
import { running, startService } from '../processes';
import type { Setup } from '../setup';

export const RSP_BIN = path.join(ROOT, 'bin', 'rsp');

function rsp(mode: 'level' | 'edge'): Setup {
  return {
    name: `rsp-${mode}`,
    label: `rsp ${mode}`,
    proxy: true,
    needs: () => null,
    async start(backendPort, dir) {
      const file = path.join(dir, `rsp-${mode}-${backendPort}.lua`);
      fs.writeFileSync(file, `listenPort = "0"\nlistenAddress = "127.0.0.1"\nbackendAddress = "127.0.0.1"\nbackendPort = "${backendPort}"\ntriggerMode = "${mode}"\n`);
      return running(await startService(process.execPath, [RSP_BIN, '--die-with-parent', file]));
    },
  };
}

export const rspLevel = rsp('level');
export const rspEdge = rsp('edge');
