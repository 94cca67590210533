// No proxy: the load generator talks to the backend itself. The ceiling the
// proxies are compared with; the backend is started once by backends.ts.
import type { Setup } from '../setup';

export const direct: Setup = {
  name: 'direct',
  label: 'direct (no proxy)',
  proxy: false,
  needs: () => null,
  async start(backendPort) {
    return { port: backendPort, pids: () => [], exitStatus: () => null, output: () => '', stop: async () => {} };
  },
};
