// A tiny DNS server on 127.0.0.1 for the tests: rsp's name lookups never
// leave the machine. It answers A and AAAA questions from tables the test
// changes (TTL 1 s), NXDOMAIN for names it does not know, and can go silent
// or answer with an error code.
import type { ExecutionContext } from 'ava';
import * as dgram from 'node:dgram';

/** A DNS server on 127.0.0.1 answering A and AAAA questions from tables the test changes. */
export interface DnsServer {
  port: number;
  a: Record<string, string[]>;
  aaaa: Record<string, string[]>;
  /** True: every query is dropped, as by a server that stopped answering. */
  silent: boolean;
  /** Not 0: every query gets this response code and no record (2 SERVFAIL, 3 NXDOMAIN). */
  rcode: number;
  /** Queries received (answered or not). */
  queries: number;
  /** The names asked, in order. */
  asked: string[];
}

function ipv6Bytes(address: string): Buffer {
  const [head, tail] = address.includes('::') ? address.split('::') : [address, ''];
  const h = head === '' ? [] : head.split(':');
  const tl = tail === '' ? [] : tail.split(':');
  const groups = [...h, ...Array<string>(8 - h.length - tl.length).fill('0'), ...tl];
  const b = Buffer.alloc(16);
  groups.forEach((g, i) => b.writeUInt16BE(parseInt(g, 16), i * 2));
  return b;
}

export async function dnsServer(t: ExecutionContext): Promise<DnsServer> {
  const socket = dgram.createSocket('udp4');
  t.teardown(() => socket.close());
  const server: DnsServer = { port: 0, a: {}, aaaa: {}, silent: false, rcode: 0, queries: 0, asked: [] };
  socket.on('message', (query, peer) => {
    server.queries++;
    if (server.silent || query.length < 12) return;
    let at = 12;
    const labels: string[] = [];
    while (at < query.length && query[at] !== 0) {
      labels.push(query.subarray(at + 1, at + 1 + query[at]).toString());
      at += 1 + query[at];
    }
    const questionEnd = at + 5; // the 0 label, QTYPE, QCLASS
    if (questionEnd > query.length) return;
    const name = labels.join('.').toLowerCase();
    server.asked.push(name);
    const type = query.readUInt16BE(at + 1);
    const known = name in server.a || name in server.aaaa;
    const addresses = server.rcode !== 0 ? [] : type === 1 ? server.a[name] ?? [] : type === 28 ? server.aaaa[name] ?? [] : [];
    const header = Buffer.from(query.subarray(0, 12));
    header[2] = 0x84 | (query[2] & 0x01); // a response, authoritative; RD copied
    header[3] = 0x80 | (server.rcode !== 0 ? server.rcode : known ? 0 : 3); // RA; no error (maybe no record of this type) or NXDOMAIN
    header.writeUInt16BE(1, 4); // one question
    header.writeUInt16BE(addresses.length, 6);
    header.writeUInt32BE(0, 8); // no authority or additional records
    // Each answer: a pointer to the question's name, the type, class IN, TTL 1 s, the address.
    const answers = addresses.map((address) => {
      const data = type === 1 ? Buffer.from(address.split('.').map(Number)) : ipv6Bytes(address);
      const rr = Buffer.from([0xc0, 0x0c, 0, type, 0, 1, 0, 0, 0, 1, 0, data.length]);
      return Buffer.concat([rr, data]);
    });
    socket.send(Buffer.concat([header, query.subarray(12, questionEnd), ...answers]), peer.port, peer.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  server.port = socket.address().port;
  return server;
}

