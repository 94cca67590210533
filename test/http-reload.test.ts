// SIGHUP in HTTP mode: the new routes take every new request, also those of
// clients kept alive from before the reload (their connection is closed
// after its current response, with Connection: close, or at once when idle),
// and not one request fails on the way. Through the real CLI with 2 workers.
import test, { type ExecutionContext } from 'ava';
import * as fs from 'node:fs';
import * as http from 'node:http';
import { httpBackend, RSP, spawnProcess, tempFile } from './helpers';

function named(t: ExecutionContext, name: string): Promise<number> {
  return httpBackend(t, (req, res) => {
    req.resume();
    req.on('end', () => res.end(name));
  });
}

/** One GET: "A", "B", or "ERR ..." (anything but a complete 200). */
function get(port: number, agent: http.Agent | false): Promise<string> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', agent, timeout: 20000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve(res.statusCode === 200 ? body : `ERR status ${res.statusCode}`));
      res.on('error', (e) => resolve(`ERR ${e.message}`));
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 20 s')));
    req.on('error', (e: NodeJS.ErrnoException) => resolve(`ERR ${e.code ?? e.message}`));
  });
}

test('HTTP mode: a reload moves new requests, kept-alive clients too, to the new routes without a failed request', async (t) => {
  const a = await named(t, 'A');
  const b = await named(t, 'B');
  const config = (port: number, pool: string): string =>
    `listenPort = "0"\nlistenAddress = "127.0.0.1"\nmode = "http"\nworkers = 2\nbackends = { ${pool} = { "127.0.0.1:${port}" } }\nroutes = { ["site.test"] = "${pool}", default = "${pool}" }\n`;
  const file = tempFile(t, 'rsp.lua', config(a, 'a'));
  const rsp = spawnProcess(t, process.execPath, [RSP, '--die-with-parent', file]);
  const port = Number(/Listening on ports? (\d+)/.exec(await rsp.waitFor(/Listening on ports? \d+/))![1]);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  t.teardown(() => agent.destroy());
  const results: string[] = [];
  let hupSent = false;
  let seenB = { kept: false, fresh: false };
  // Two clients, one kept alive and one connecting anew per request, until both have met the new config.
  const loop = async (kept: boolean): Promise<void> => {
    for (let i = 0; i < 20000 && !(seenB.kept && seenB.fresh); i++) {
      const r = await get(port, kept ? agent : false);
      results.push(r);
      if (r === 'B') {
        if (!hupSent) t.fail('B answered before the reload');
        seenB = { ...seenB, [kept ? 'kept' : 'fresh']: true };
      }
    }
  };
  const clients = [loop(true), loop(false)];
  while (results.length < 50) await new Promise((r) => setTimeout(r, 20));
  fs.writeFileSync(file, config(b, 'b'));
  hupSent = true;
  rsp.proc.kill('SIGHUP');
  await rsp.waitFor(/Reloaded\./);
  await Promise.all(clients);
  t.true(seenB.kept, 'the kept-alive client met the new config');
  t.true(seenB.fresh, 'a new connection met the new config');
  t.deepEqual(results.filter((r) => r !== 'A' && r !== 'B'), [], 'every request got a complete 200');
  t.true(results.includes('A'));
});
