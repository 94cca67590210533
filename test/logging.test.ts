// Error lines that come in floods are limited to one a second per kind, and
// a burst never ends without its tally.
import test from 'ava';
import { refusingPort, startRsp } from './helpers';
import { connectFd, readFd } from './sockets';

test('a burst of failed connects is logged once, then the tally of the rest when the second is over, with no more traffic', async (t) => {
  const dead = refusingPort(t);
  const rsp = await startRsp(t, { listenAddress: '127.0.0.1', backendAddress: '127.0.0.1', backendPort: dead.port });
  const clients = 10;
  const results = await Promise.all(Array.from({ length: clients }, () => readFd(connectFd(rsp.port))));
  t.true(results.every((r) => r.how === 'ECONNRESET'), results.map((r) => r.how).join(','));
  // The first client's line at once; the others counted, told in one line once the second is over.
  const tally = await rsp.waitFor(/more like it since the last one/);
  const first = rsp.output().split('\n').filter((l) => /Could not connect/.test(l));
  const told = Number(/and (\d+) more like it/.exec(tally)![1]);
  // Each line stands for itself plus its count: together, every client.
  const counted = first.reduce((n, l) => n + 1 + Number(/and (\d+) more/.exec(l)?.[1] ?? 0), 0);
  t.true(told >= 1);
  t.is(counted, clients, first.join('\n'));
});
