// TCP urgent data (MSG_OOB): read() stops at the urgent mark, so there a short
// read does not mean the receive queue is empty. rsp must deliver exactly what
// a direct connection delivers (the urgent byte is out of band and dropped,
// as by any receiver that does not ask for it), in every trigger mode and
// read policy, whether the sender then closes or keeps the connection open.
import test, { type ExecutionContext } from 'ava';
import * as net from 'node:net';
import { listen, MODES, startRsp } from './helpers';
import { sendUrgent } from './sockets';

function write(socket: net.Socket, data: Buffer | string): Promise<void> {
  return new Promise((resolve, reject) => socket.write(data, (error) => (error ? reject(error) : resolve())));
}

/**
 * A backend that sends 1000 × A, one urgent byte, 1000 × B, then closes (or
 * keeps the connection open).
 */
async function urgentBackend(t: ExecutionContext, close: boolean): Promise<number> {
  return listen(t, net.createServer((s) => {
    void (async () => {
      await write(s, Buffer.alloc(1000, 'A'));
      sendUrgent(s);
      await write(s, Buffer.alloc(1000, 'B'));
      if (close) s.end();
    })();
  }));
}

/** Connect and read until `want` bytes arrived or the stream ended; fails after `ms`. */
function receive(port: number, want: number, ms = 10000): Promise<{ bytes: Buffer; ended: boolean }> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let length = 0;
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`only ${length} of ${want} bytes arrived within ${ms} ms`));
    }, ms);
    const done = (ended: boolean): void => {
      clearTimeout(timer);
      s.destroy();
      resolve({ bytes: Buffer.concat(chunks), ended });
    };
    s.on('data', (c: Buffer) => {
      chunks.push(c);
      length += c.length;
      if (length >= want && want > 0) done(false);
    });
    s.on('end', () => done(true));
    s.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

const expected = Buffer.concat([Buffer.alloc(1000, 'A'), Buffer.alloc(1000, 'B')]);

test('direct: a client receives the A and B bytes but not the urgent byte', async (t) => {
  const port = await urgentBackend(t, true);
  const { bytes, ended } = await receive(port, 0);
  t.true(ended);
  t.true(bytes.equals(expected), `${bytes.length} bytes`);
});

const policies = ['auto', 'drain', 'eagain', 'once'] as const;
for (const mode of MODES) {
  for (const readPolicy of policies) {
    // Edge mode with one read per event stalls by design (the lab shows it).
    if (mode === 'edge' && readPolicy === 'once') continue;
    for (const rdhup of [true, false]) {
      const what = `(${mode}, readPolicy ${readPolicy}, rdhup ${rdhup})`;
      test(`urgent data then a close: every byte arrives and the end is a clean end ${what}`, async (t) => {
        const backendPort = await urgentBackend(t, true);
        const rsp = await startRsp(t, { backendAddress: '127.0.0.1', backendPort, triggerMode: mode, readPolicy, rdhup });
        for (let run = 0; run < 3; run++) {
          const { bytes, ended } = await receive(rsp.port, 0);
          t.true(ended);
          t.true(bytes.equals(expected), `run ${run}: ${bytes.length} of 2000 bytes`);
        }
        // (Whether rsp saw EPOLLPRI depends on timing: a read may pass the
        // mark before epoll looks. What matters is that no byte is lost.)
      });
      test(`urgent data on a connection kept open: the bytes after the mark do not stall ${what}`, async (t) => {
        const backendPort = await urgentBackend(t, false);
        const rsp = await startRsp(t, { backendAddress: '127.0.0.1', backendPort, triggerMode: mode, readPolicy, rdhup });
        for (let run = 0; run < 3; run++) {
          const { bytes } = await receive(rsp.port, 2000);
          t.true(bytes.equals(expected), `run ${run}: ${bytes.length} of 2000 bytes`);
        }
      });
    }
  }
}

test('urgent data from the client reaches the backend without the urgent byte (edge)', async (t) => {
  const received = new Promise<Buffer>((resolve) => {
    void listen(t, net.createServer((s) => {
      const chunks: Buffer[] = [];
      s.on('data', (c: Buffer) => chunks.push(c));
      s.on('end', () => {
        resolve(Buffer.concat(chunks));
        s.end();
      });
    })).then(async (backendPort) => {
      const rsp = await startRsp(t, { backendAddress: '127.0.0.1', backendPort, triggerMode: 'edge' });
      const c = net.connect(rsp.port, '127.0.0.1');
      c.on('error', () => {});
      await new Promise((r) => c.once('connect', r));
      await write(c, Buffer.alloc(1000, 'A'));
      sendUrgent(c);
      await write(c, Buffer.alloc(1000, 'B'));
      c.end();
      c.resume();
    });
  });
  const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the backend never saw the end')), 60000).unref());
  const bytes = await Promise.race([received, timeout]);
  t.true(bytes.equals(expected), `${bytes.length} bytes`);
});
