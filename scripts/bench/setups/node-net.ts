// The baseline every ratio is taken against: the plain Node `net` pipe proxy
// anyone would write first (node-pipe-proxy.ts), one process, one event loop.
import * as path from 'node:path';
import { running, startService } from '../processes';
import type { Setup } from '../setup';

export const NODE_PROXY = path.join(__dirname, '..', 'node-pipe-proxy.js');

export const nodeNet: Setup = {
  name: 'node',
  label: 'Node net pipe',
  proxy: true,
  needs: () => null,
  async start(backendPort) {
    return running(await startService(process.execPath, [NODE_PROXY, '0', '127.0.0.1', String(backendPort)]));
  },
};
