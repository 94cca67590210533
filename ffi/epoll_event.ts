// struct epoll_event { uint32_t events; epoll_data_t data; }
//
// The kernel declares it __attribute__((packed)) on x86_64 only, so there it is
// 12 bytes with `data` at offset 4; everywhere else (aarch64 included) natural
// alignment puts `data` at offset 8 and the struct is 16 bytes. The reactor
// reads a whole array of them out of one Buffer, so the layout must be exact.
import koffi from 'koffi';

const packed = process.arch === 'x64' || process.arch === 'ia32';

/** The same struct as koffi sees it, to prove the numbers below (see test/ffi.test.ts). */
export const EpollEventType = packed
  ? koffi.pack('epoll_event', { events: 'uint32_t', data: 'uint64_t' })
  : koffi.struct('epoll_event', { events: 'uint32_t', data: 'uint64_t' });

export const EPOLL_EVENT_SIZE = packed ? 12 : 16;
export const EPOLL_DATA_OFFSET = packed ? 4 : 8;

/**
 * rsp stores two 32-bit numbers in `data`: the fd (low word) and the
 * generation of the handler registered for it (high word). See reactor.ts.
 */
export function writeEpollEvent(buf: Buffer, index: number, events: number, fd: number, generation: number): void {
  const base = index * EPOLL_EVENT_SIZE;
  buf.writeUInt32LE(events >>> 0, base);
  buf.writeUInt32LE(fd >>> 0, base + EPOLL_DATA_OFFSET);
  buf.writeUInt32LE(generation >>> 0, base + EPOLL_DATA_OFFSET + 4);
}
