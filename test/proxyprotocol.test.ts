// The PROXY protocol parser and writer (src/proxyprotocol/), v1 and v2:
// every family, UNKNOWN/LOCAL, headers split at every byte, malformed and
// oversized headers, and writer -> parser round trips.
import test from 'ava';
import { fromSockaddr, toSockaddr } from '../ffi/sockaddr';
import {
  formatV6, isHeaderError, NEED_MORE, parseProxyHeader, ProxyHeaderParser, V2_MAX_LENGTH, V2_SIGNATURE,
  type ParseResult, type ProxyHeader,
} from '../src/proxyprotocol/parse';
import { proxyHeader } from '../src/proxyprotocol/write';

function header(r: ParseResult): ProxyHeader {
  if (r === NEED_MORE || isHeaderError(r)) throw new Error(`expected a header, got ${JSON.stringify(r)}`);
  return r;
}

function errorOf(r: ParseResult): string {
  if (r === NEED_MORE || !isHeaderError(r)) throw new Error(`expected an error, got ${JSON.stringify(r)}`);
  return r.error;
}

/** A v2 header: command, family/transport byte, address block, TLV bytes. */
function v2(command: number, familyTransport: number, block: Buffer, version = 2): Buffer {
  const fixed = Buffer.alloc(16);
  V2_SIGNATURE.copy(fixed);
  fixed[12] = (version << 4) | command;
  fixed[13] = familyTransport;
  fixed.writeUInt16BE(block.length, 14);
  return Buffer.concat([fixed, block]);
}

function v4Block(src: number[], dst: number[], sport: number, dport: number): Buffer {
  const b = Buffer.alloc(12);
  Buffer.from(src).copy(b, 0);
  Buffer.from(dst).copy(b, 4);
  b.writeUInt16BE(sport, 8);
  b.writeUInt16BE(dport, 10);
  return b;
}

const V6_SRC = Buffer.from('20010db8000000000000000000000001', 'hex');
const V6_DST = Buffer.from('20010db80000000000000000000000ff', 'hex');
function v6Block(sport: number, dport: number): Buffer {
  const b = Buffer.alloc(36);
  V6_SRC.copy(b, 0);
  V6_DST.copy(b, 16);
  b.writeUInt16BE(sport, 32);
  b.writeUInt16BE(dport, 34);
  return b;
}

// ---------------------------------------------------------------- v1

test('v1 TCP4: addresses, ports, sockaddrs and length', (t) => {
  const text = 'PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\n';
  const h = header(parseProxyHeader(Buffer.from(text + 'GET / HTTP/1.1\r\n')));
  t.is(h.version, 1);
  t.is(h.command, 'proxy');
  t.is(h.length, text.length);
  t.like(h.source, { family: 4, address: '192.0.2.7', port: 56324, text: '192.0.2.7:56324' });
  t.like(h.destination, { family: 4, address: '198.51.100.1', port: 443, text: '198.51.100.1:443' });
  t.deepEqual(fromSockaddr(h.source!.sockaddr), { family: 4, address: '192.0.2.7', port: 56324 });
  t.is(h.source!.sockaddr.length, 16);
});

test('v1 TCP6', (t) => {
  const text = 'PROXY TCP6 2001:db8::1 2001:db8::ff 65535 0\r\n';
  const h = header(parseProxyHeader(Buffer.from(text)));
  t.like(h.source, { family: 6, address: '2001:db8::1', port: 65535, text: '[2001:db8::1]:65535' });
  t.like(h.destination, { family: 6, address: '2001:db8::ff', port: 0 });
  t.is(h.source!.sockaddr.length, 28);
  t.is(h.length, text.length);
});

test('v1 UNKNOWN, with or without the rest of the line', (t) => {
  for (const text of ['PROXY UNKNOWN\r\n', 'PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n']) {
    const h = header(parseProxyHeader(Buffer.from(text + 'data')));
    t.is(h.command, 'unknown');
    t.is(h.source, null);
    t.is(h.length, text.length);
  }
});

test('v1 of the longest form (107 bytes) is taken; one byte more is not', (t) => {
  const longest = 'PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n';
  t.is(longest.length, 107);
  t.is(header(parseProxyHeader(Buffer.from(longest))).length, 107);
  const tooLong = longest.replace('UNKNOWN ', 'UNKNOWN  ');
  t.regex(errorOf(parseProxyHeader(Buffer.from(tooLong))), /longer than 107/);
  // Without its CRLF, the judgement comes once 106 bytes are in.
  t.is(parseProxyHeader(Buffer.from(tooLong.slice(0, 105))), NEED_MORE);
  t.regex(errorOf(parseProxyHeader(Buffer.from(tooLong.slice(0, 106)))), /longer than 107/);
});

const MALFORMED_V1: [string, RegExp][] = [
  ['GET / HTTP/1.1\r\n', /not a PROXY/],
  ['PROXY\r\n', /must start with "PROXY "/],
  ['proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n', /not a PROXY/],
  ['PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n', /not TCP4, TCP6 or UNKNOWN/],
  ['PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n', /4 fields/],
  ['PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n', /4 fields/],
  ['PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n', /4 fields/],
  ['PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n', /4 fields/],
  ['PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n', /bad port/],
  ['PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n', /bad port/],
  ['PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n', /bad port/],
  ['PROXY TCP4 1.2.3.4 5.6.7.8 0x10 2\r\n', /bad port/],
  ['PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n', /bad TCP4 address/],
  ['PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n', /bad TCP4 address/],
  ['PROXY TCP4 ::1 5.6.7.8 1 2\r\n', /bad TCP4 address/],
  ['PROXY TCP4 localhost 5.6.7.8 1 2\r\n', /bad TCP4 address/],
  ['PROXY TCP6 1.2.3.4 ::1 1 2\r\n', /bad TCP6 address/],
  ['PROXY TCP6 [::1] ::1 1 2\r\n', /bad TCP6 address/],
  ['PROXY TCP6 fe80::1%lo ::1 1 2\r\n', /bad TCP6 address/],
  ['PROXY TCP6 1::2::3 ::1 1 2\r\n', /bad TCP6 address/],
  ['PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n', /line feed without a carriage return/],
  ['PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX', /not followed by a line feed/],
  ['PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n', /byte 0x09 is not allowed/],
  ['PROXY TCP4 1.2.3.4 5.6.7.8 1 2\x00\r\n', /byte 0x00 is not allowed/],
];

for (const [text, expected] of MALFORMED_V1) {
  test(`v1 malformed: ${JSON.stringify(text)}`, (t) => {
    t.regex(errorOf(parseProxyHeader(Buffer.from(text, 'latin1'))), expected);
  });
}

test('a prefix of a v1 header needs more; a wrong first byte fails at once', (t) => {
  const text = 'PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\n';
  for (let n = 1; n < text.length; n++) t.is(parseProxyHeader(Buffer.from(text.slice(0, n))), NEED_MORE, `${n} bytes`);
  t.regex(errorOf(parseProxyHeader(Buffer.from('G'))), /starts with "G"/);
  t.regex(errorOf(parseProxyHeader(Buffer.from('PRX'))), /must start with "PROXY "/);
  t.is(parseProxyHeader(Buffer.alloc(0)), NEED_MORE);
});

// ---------------------------------------------------------------- v2

test('v2 PROXY over TCP/IPv4', (t) => {
  const buf = v2(1, 0x11, v4Block([192, 0, 2, 7], [198, 51, 100, 1], 56324, 443));
  const h = header(parseProxyHeader(Buffer.concat([buf, Buffer.from('hello')])));
  t.is(h.version, 2);
  t.is(h.command, 'proxy');
  t.is(h.length, 28);
  t.like(h.source, { family: 4, address: '192.0.2.7', port: 56324, text: '192.0.2.7:56324' });
  t.like(h.destination, { family: 4, address: '198.51.100.1', port: 443 });
  t.deepEqual(fromSockaddr(h.destination!.sockaddr), { family: 4, address: '198.51.100.1', port: 443 });
});

test('v2 PROXY over TCP/IPv6', (t) => {
  const buf = v2(1, 0x21, v6Block(1, 65535));
  const h = header(parseProxyHeader(buf));
  t.is(h.length, 52);
  t.like(h.source, { family: 6, address: '2001:db8::1', port: 1, text: '[2001:db8::1]:1' });
  t.like(h.destination, { family: 6, address: '2001:db8::ff', port: 65535 });
  t.deepEqual(fromSockaddr(h.source!.sockaddr), { family: 6, address: '2001:db8::1', port: 1 });
});

test('v2 TLVs after the addresses are skipped', (t) => {
  const tlvs = Buffer.from([0x01, 0x00, 0x02, 0x68, 0x32, 0x04, 0x00, 0x00, 0xe0, 0x00, 0x03, 0x61, 0x62, 0x63]);
  const buf = v2(1, 0x11, Buffer.concat([v4Block([10, 0, 0, 1], [10, 0, 0, 2], 1000, 2000), tlvs]));
  const h = header(parseProxyHeader(Buffer.concat([buf, Buffer.from('data')])));
  t.is(h.length, 16 + 12 + tlvs.length);
  t.is(h.source!.text, '10.0.0.1:1000');
});

test('v2 LOCAL (a balancer\'s own health check): no address, whatever the block', (t) => {
  for (const [ft, block] of [[0x00, Buffer.alloc(0)], [0x11, v4Block([1, 2, 3, 4], [5, 6, 7, 8], 1, 2)], [0x11, Buffer.alloc(0)]] as const) {
    const h = header(parseProxyHeader(v2(0, ft, block)));
    t.is(h.command, 'local');
    t.is(h.source, null);
    t.is(h.length, 16 + block.length);
  }
});

test('v2 PROXY with AF_UNSPEC or AF_UNIX: no address rsp can use', (t) => {
  t.is(header(parseProxyHeader(v2(1, 0x00, Buffer.alloc(0)))).command, 'unknown');
  const unix = header(parseProxyHeader(v2(1, 0x31, Buffer.alloc(216))));
  t.is(unix.command, 'unknown');
  t.is(unix.source, null);
  t.is(unix.length, 232);
});

test('v2 malformed: signature, version, command, family, transport, short blocks, UDP', (t) => {
  const good = v2(1, 0x11, v4Block([1, 2, 3, 4], [5, 6, 7, 8], 1, 2));
  const badSig = Buffer.from(good);
  badSig[7] = 0x50;
  t.regex(errorOf(parseProxyHeader(badSig)), /bad v2 signature/);
  t.regex(errorOf(parseProxyHeader(badSig.subarray(0, 8))), /bad v2 signature/);
  t.regex(errorOf(parseProxyHeader(v2(1, 0x11, v4Block([1, 2, 3, 4], [5, 6, 7, 8], 1, 2), 1))), /version 1, not 2/);
  t.regex(errorOf(parseProxyHeader(v2(1, 0x11, v4Block([1, 2, 3, 4], [5, 6, 7, 8], 1, 2), 3))), /version 3, not 2/);
  t.regex(errorOf(parseProxyHeader(v2(2, 0x11, Buffer.alloc(12)))), /unknown command 2/);
  t.regex(errorOf(parseProxyHeader(v2(1, 0x41, Buffer.alloc(12)))), /unknown address family 4/);
  t.regex(errorOf(parseProxyHeader(v2(1, 0x13, Buffer.alloc(12)))), /unknown transport 3/);
  t.regex(errorOf(parseProxyHeader(v2(1, 0x11, Buffer.alloc(11)))), /11 bytes of addresses, family 1 needs 12/);
  t.regex(errorOf(parseProxyHeader(v2(1, 0x21, Buffer.alloc(12)))), /12 bytes of addresses, family 2 needs 36/);
  t.regex(errorOf(parseProxyHeader(v2(1, 0x31, Buffer.alloc(100)))), /family 3 needs 216/);
  t.regex(errorOf(parseProxyHeader(v2(1, 0x12, Buffer.alloc(12)))), /datagram/);
  // Judged as soon as the length field is in, before the block.
  t.regex(errorOf(parseProxyHeader(v2(1, 0x11, Buffer.alloc(11)).subarray(0, 16))), /needs 12/);
});

test('v2 longer than the bound is refused from its length field alone', (t) => {
  const fixed = v2(1, 0x11, Buffer.alloc(0));
  fixed.writeUInt16BE(V2_MAX_LENGTH - 16, 14);
  t.is(parseProxyHeader(fixed), NEED_MORE);
  fixed.writeUInt16BE(V2_MAX_LENGTH - 15, 14);
  t.regex(errorOf(parseProxyHeader(fixed)), /more than the 4096/);
  fixed.writeUInt16BE(65535, 14);
  t.regex(errorOf(parseProxyHeader(fixed)), /65551 bytes/);
});

test('a prefix of a v2 header needs more', (t) => {
  const buf = v2(1, 0x21, v6Block(1, 2));
  for (let n = 1; n < buf.length; n++) t.is(parseProxyHeader(buf.subarray(0, n)), NEED_MORE, `${n} bytes`);
});

// ---------------------------------------------------------------- incremental

const SAMPLES: [string, Buffer][] = [
  ['v1 TCP4', Buffer.from('PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\n')],
  ['v1 TCP6', Buffer.from('PROXY TCP6 2001:db8::1 2001:db8::ff 1 2\r\n')],
  ['v1 UNKNOWN', Buffer.from('PROXY UNKNOWN\r\n')],
  ['v2 IPv4', v2(1, 0x11, v4Block([192, 0, 2, 7], [198, 51, 100, 1], 56324, 443))],
  ['v2 IPv6 with a TLV', v2(1, 0x21, Buffer.concat([v6Block(1, 2), Buffer.from([0x02, 0x00, 0x01, 0x78])]))],
  ['v2 LOCAL', v2(0, 0x00, Buffer.alloc(0))],
];

for (const [name, head] of SAMPLES) {
  test(`${name} split into two reads at every byte, and one byte per read, with data after it`, (t) => {
    const data = Buffer.from('client data\r\n');
    const whole = Buffer.concat([head, data]);
    const expected = header(parseProxyHeader(whole));
    t.is(expected.length, head.length);
    for (let cut = 1; cut < whole.length; cut++) {
      const p = new ProxyHeaderParser();
      const first = p.feed(whole.subarray(0, cut), cut);
      const restOfWhole = whole.subarray(cut);
      if (cut >= head.length) {
        t.deepEqual(header(first), expected, `cut at ${cut}`);
        t.is(p.restOffset, head.length, `rest offset after a cut at ${cut}`);
        continue;
      }
      t.is(first, NEED_MORE, `cut at ${cut}`);
      // A reader's shared buffer: bigger than what was read, with junk after.
      const shared = Buffer.concat([restOfWhole, Buffer.from('JUNK')]);
      const second = header(p.feed(shared, restOfWhole.length));
      t.deepEqual(second, expected, `cut at ${cut}`);
      t.deepEqual(shared.subarray(p.restOffset, restOfWhole.length), data, `rest after a cut at ${cut}`);
    }
    const p = new ProxyHeaderParser();
    let r: ParseResult = NEED_MORE;
    let i = 0;
    for (; i < whole.length && r === NEED_MORE; i++) r = p.feed(whole.subarray(i, i + 1), 1);
    t.deepEqual(header(r), expected);
    t.is(i, head.length);
    t.is(p.restOffset, 1);
  });
}

test('the incremental parser refuses an endless header', (t) => {
  const p = new ProxyHeaderParser();
  const head = v2(1, 0x11, Buffer.alloc(0));
  head.writeUInt16BE(V2_MAX_LENGTH - 16, 14);
  t.is(p.feed(head, head.length), NEED_MORE);
  const filler = Buffer.alloc(1000);
  let r: ParseResult = NEED_MORE;
  let reads = 0;
  for (; reads < 10 && r === NEED_MORE; reads++) r = p.feed(filler, filler.length);
  t.is(reads, 5); // 16 + 5000 > 4096: complete at the bound, and the rest is data
  t.is(header(r).length, V2_MAX_LENGTH);
  t.is(p.restOffset, V2_MAX_LENGTH - 16 - 4000);

  const q = new ProxyHeaderParser();
  t.is(q.feed(Buffer.from('PROXY '), 6), NEED_MORE);
  const x = Buffer.alloc(200, 0x41);
  t.regex(errorOf(q.feed(x, x.length)), /longer than 107/);
});

// ---------------------------------------------------------------- writer

const ADDRESSES = [
  [{ family: 4, address: '192.0.2.7', port: 56324 }, { family: 4, address: '198.51.100.1', port: 443 }],
  [{ family: 6, address: '2001:db8::1', port: 1 }, { family: 6, address: '::1', port: 65535 }],
  [{ family: 4, address: '127.0.0.1', port: 0 }, { family: 4, address: '255.255.255.255', port: 8000 }],
  [{ family: 6, address: 'fe80::1:0:0:2', port: 7 }, { family: 6, address: '::', port: 8 }],
] as const;

/** The sockaddr accept() or getsockname() would give for an address. */
function sa(a: { address: string; port: number }): Buffer {
  return toSockaddr(a.address, a.port);
}

for (const version of ['v1', 'v2'] as const) {
  test(`writer ${version}: round trip through the parser`, (t) => {
    for (const [source, destination] of ADDRESSES) {
      const buf = proxyHeader(version, sa(source), sa(destination));
      const h = header(parseProxyHeader(buf));
      t.is(h.version, version === 'v1' ? 1 : 2);
      t.is(h.length, buf.length);
      t.is(h.command, 'proxy');
      t.like(h.source, source);
      t.like(h.destination, destination);
      t.deepEqual(h.source!.sockaddr, sa(source));
    }
  });

  test(`writer ${version}: an unknown origin, mixed families as v4-mapped v6, and a dual-stack listener's v4 client as v4`, (t) => {
    for (const [s, d] of [[null, null], [null, sa(ADDRESSES[0][1])], [Buffer.from([1, 0, 0, 0]), sa(ADDRESSES[0][1])]] as const) {
      const unknown = header(parseProxyHeader(proxyHeader(version, s, d)));
      t.is(unknown.command, 'unknown');
      t.is(unknown.source, null);
    }
    const mixed = proxyHeader(version, toSockaddr('192.0.2.7', 5), toSockaddr('2001:db8::2', 6));
    const h = header(parseProxyHeader(mixed));
    // A v4-mapped address is named by its v4 form, as fromSockaddr names it.
    t.like(h.source, { family: 4, address: '192.0.2.7', port: 5 });
    t.like(h.destination, { family: 6, address: '2001:db8::2', port: 6 });
    if (version === 'v1') t.is(mixed.toString(), 'PROXY TCP6 ::ffff:192.0.2.7 2001:db8::2 5 6\r\n');
    else t.is(mixed[13], 0x21);
    // On a "::" listener a v4 client and the local address are both v4-mapped: a TCP4 header.
    const dual = proxyHeader(version, toSockaddr('::ffff:192.0.2.7', 5), toSockaddr('::ffff:127.0.0.1', 80));
    if (version === 'v1') t.is(dual.toString(), 'PROXY TCP4 192.0.2.7 127.0.0.1 5 80\r\n');
    else t.is(dual[13], 0x11);
  });
}

test('writer v1 text and v2 bytes are the spec\'s', (t) => {
  t.is(proxyHeader('v1', sa(ADDRESSES[0][0]), sa(ADDRESSES[0][1])).toString(), 'PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\n');
  t.is(proxyHeader('v1', null, null).toString(), 'PROXY UNKNOWN\r\n');
  t.deepEqual(proxyHeader('v2', sa(ADDRESSES[0][0]), sa(ADDRESSES[0][1])), v2(1, 0x11, v4Block([192, 0, 2, 7], [198, 51, 100, 1], 56324, 443)));
  t.deepEqual(proxyHeader('v2', sa(ADDRESSES[1][0]), sa(ADDRESSES[1][1])), v2(1, 0x21, Buffer.concat([
    Buffer.from('20010db8000000000000000000000001', 'hex'), Buffer.from('00000000000000000000000000000001', 'hex'), Buffer.from([0, 1, 0xff, 0xff]),
  ])));
  t.deepEqual(proxyHeader('v2', null, null), v2(1, 0x00, Buffer.alloc(0)));
});

test('IPv6 text from header bytes is what inet_ntop writes', (t) => {
  const samples = ['::', '::1', '1::', '2001:db8::1', '2001:db8:0:0:1:0:0:1', '2001:0:0:1:0:0:0:1', '1:0:0:2:0:0:0:0', 'fe80::1:2:3:4',
    '1:2:3:4:5:6:7:8', '1:0:2:0:3:0:4:0', '0:1:0:1:0:1:0:1', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', '::ffff:0:1', '64:ff9b::1'];
  let seed = 7;
  for (let i = 0; i < 200; i++) {
    // Random groups, many of them zero: runs of every length and position.
    const groups = Array.from({ length: 8 }, () => ((seed = (seed * 1103515245 + 12345) >>> 0) % 3 === 0 ? ((seed >>> 8) & 0xffff).toString(16) : '0'));
    samples.push(groups.join(':'));
  }
  for (const text of samples) {
    const sockaddr = toSockaddr(text, 1);
    const bytes = sockaddr.subarray(8, 24);
    const expected = fromSockaddr(sockaddr);
    if (expected.family === 4) continue; // v4-mapped: named as v4 (checked above)
    t.is(formatV6(bytes), expected.address, text);
  }
});
