// HAProxy in tcp mode (a TCP proxy like rsp) and in http mode (parses HTTP and
// keeps backend connections alive across clients: `http-reuse safe`, its
// default, written out), one thread, timeouts raised
// for the idle-connection run.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { freePort, running, startService } from '../processes';
import type { Setup } from '../setup';

function haproxy(mode: 'tcp' | 'http'): Setup {
  return {
    name: `haproxy-${mode}`,
    label: `HAProxy ${mode}`,
    proxy: true,
    needs: (tools) => (tools.haproxy ? null : 'haproxy not installed'),
    async start(backendPort, dir, _tools, connections) {
      const port = await freePort();
      const file = path.join(dir, `haproxy-${mode}-${backendPort}.cfg`);
      fs.writeFileSync(file, `global
  nbthread 1
  maxconn ${connections}

defaults
  mode ${mode}
  maxconn ${connections}
  timeout connect 5s
  timeout client 600s
  timeout server 600s

frontend bench
  bind 127.0.0.1:${port}
  default_backend app

backend app
${mode === 'http' ? '  http-reuse safe\n' : ''}  server app1 127.0.0.1:${backendPort}
`);
      return running(await startService('haproxy', ['-f', file, '-db'], { port }));
    },
  };
}

export const haproxyTcp = haproxy('tcp');
export const haproxyHttp = haproxy('http');
