// `npm start`: a small demo backend on 127.0.0.1:8888 and rsp in front of it
// on port 8000, from examples/demo.lua. Ctrl-C stops both.
import { spawn } from 'node:child_process';
import * as http from 'node:http';
import * as path from 'node:path';

const ROOT = path.join(__dirname, '..', '..');
const CONFIG = path.join(ROOT, 'examples', 'demo.lua');
const BACKEND_PORT = 8888;
const PROXY_PORT = 8000;

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
  console.error(`demo backend: cannot listen on 127.0.0.1:${BACKEND_PORT}: ${error.code ?? error.message}`);
  process.exit(1);
});

backend.listen(BACKEND_PORT, '127.0.0.1', () => {
  console.log(`Demo backend listening on 127.0.0.1:${BACKEND_PORT}`);
  const rsp = spawn(process.execPath, [path.join(ROOT, 'bin', 'rsp'), CONFIG], { stdio: ['ignore', 'pipe', 'inherit'] });
  rsp.stdout.on('data', (chunk: Buffer) => {
    process.stdout.write(chunk);
    if (chunk.toString().includes('Listening on port')) {
      console.log(`\nrsp is proxying port ${PROXY_PORT} to the demo backend. Try:\n`);
      console.log(`  curl http://127.0.0.1:${PROXY_PORT}/`);
      console.log(`  curl -o /dev/null http://127.0.0.1:${PROXY_PORT}/big\n`);
      console.log('Press Ctrl-C to stop.');
    }
  });
  rsp.on('exit', (code) => {
    backend.close();
    process.exit(code ?? 0);
  });
  const stop = (): void => {
    rsp.kill('SIGTERM');
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
});
