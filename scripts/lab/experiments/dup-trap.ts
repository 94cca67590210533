// Experiment 8: the dup trap. An epoll registration belongs to the open
// file description (the socket itself), not to the fd number a program
// registered it with. Register fd A, dup it to B, close A: events keep
// coming with A's number in event.data although A is closed, and
// EPOLL_CTL_DEL on A fails with EBADF. Shown on a raw epoll set, no rsp.
import * as libc from '../../../ffi/libc';
import { emptyCounters } from '../rsp';
import { explained, plan, type Experiment, type LabRow } from '../experiment';
import { MODES, type LabParams, type Mode } from '../params';
import { RawEpoll } from '../raw-epoll';
import { n0 } from '../table';

const ONE = Buffer.from('x');

/** A non-blocking stream socketpair: [the end registered in epoll, the end the experiment writes to]. */
function socketPair(): [number, number] {
  const fds = Buffer.alloc(8);
  libc.check('socketpair', libc.socketpair(libc.AF_UNIX, libc.SOCK_STREAM | libc.SOCK_NONBLOCK | libc.SOCK_CLOEXEC, 0, fds));
  return [fds.readInt32LE(0), fds.readInt32LE(4)];
}

/** Events epoll_wait(timeout 0) reports now, and which fd numbers they carry. */
function poll(ep: RawEpoll): number[] {
  const n = ep.wait(0);
  return Array.from({ length: n }, (_, i) => ep.fdAt(i));
}

export async function dupTrap(mode: Mode, _p: LabParams): Promise<LabRow> {
  const ep = new RawEpoll(8, true);
  const opened: number[] = [];
  const closeLater = (fd: number): number => (opened.push(fd), fd);
  try {
    const [a, w] = socketPair().map(closeLater);
    const et = mode === 'edge' ? libc.EPOLLET : 0;
    ep.ctl(libc.EPOLL_CTL_ADD, a, libc.EPOLLIN | et);
    const b = closeLater(libc.check('dup', libc.dup(a)));
    ep.note(`dup(${a}) = ${b}`);
    libc.close(a);
    opened.splice(opened.indexOf(a), 1);
    ep.note(`close(${a}) = 0`);
    // Bytes arrive on the socket that fd A named (B still names it).
    libc.write(w, ONE, 1);
    ep.note(`write(${w}, "x") = 1   (the other end of the pair)`);
    const afterClose = poll(ep);
    // Level: reported on every call while unread; edge: once per arrival.
    const again = [poll(ep), poll(ep), poll(ep)];
    const repeats = again.filter((got) => got.includes(a)).length;
    const delA = ep.ctl(libc.EPOLL_CTL_DEL, a);
    const delB = ep.ctl(libc.EPOLL_CTL_DEL, b);
    // The lowest free number is handed out next: often A's, to a new socket.
    const fresh = closeLater(libc.check('socket', libc.socket(libc.AF_INET, libc.SOCK_STREAM | libc.SOCK_NONBLOCK | libc.SOCK_CLOEXEC, 0)));
    ep.note(`socket(AF_INET, SOCK_STREAM) = ${fresh}   (a new, unrelated socket)`);
    libc.write(w, ONE, 1);
    ep.note(`write(${w}, "x") = 1`);
    const afterReuse = poll(ep);
    const delReused = fresh === a ? ep.ctl(libc.EPOLL_CTL_DEL, a) : '';
    // Only closing the last fd of the description ends its registration.
    libc.close(b);
    opened.splice(opened.indexOf(b), 1);
    ep.note(`close(${b}) = 0   (the last fd of that socket)`);
    // Level-triggered, the unread bytes were reported on every call until now.
    const afterLast = poll(ep);
    const figures = {
      fdA: a,
      fdB: b,
      eventsAfterClose: afterClose.length,
      eventsCarryClosedFd: afterClose.includes(a) ? 1 : 0,
      repeatsOfThree: repeats,
      delClosedEbadf: delA === 'EBADF' ? 1 : 0,
      delDupEnoent: delB === 'ENOENT' ? 1 : 0,
      freshFd: fresh,
      numberReused: fresh === a ? 1 : 0,
      eventsAfterReuse: afterReuse.length,
      eventsAfterReuseCarryA: afterReuse.includes(a) ? 1 : 0,
      delReusedEnoent: delReused === 'ENOENT' ? 1 : 0,
      eventsAfterLastClose: afterLast.length,
      epollCtl: ep.ctls,
      epollWaits: ep.waits,
    };
    return explained(explain, {
      experiment: 8,
      label: '8',
      title: 'dup: events for a closed fd',
      mode,
      settings: {},
      subject: 'no rsp: a raw epoll set',
      figures,
      result: `after close(${a}): ${afterClose.length} event for fd ${afterClose.join(',') || '-'} · DEL(${a}) ${delA === '0' ? 'ok' : delA} · DEL(${b}) ${delB === '0' ? 'ok' : delB} · after close(${b}): ${afterLast.length} events`,
      explanation: '',
      counters: emptyCounters(),
      trace: ep.lines,
    });
  } finally {
    ep.close();
    for (const fd of opened) libc.close(fd);
  }
}

export function explain(row: LabRow, _rows: LabRow[]): string {
  const f = row.figures;
  const a = f.fdA;
  const b = f.fdB;
  const edge = row.mode === 'edge';
  const head = `On a bare epoll set (${edge ? 'edge' : 'level'}-triggered, event.data = the fd number, as a C program stores it), socket fd ${a} was registered for EPOLLIN, dup()ed to fd ${b}, and fd ${a} closed. Then a byte arrived: epoll_wait reported ${n0(f.eventsAfterClose)} event${f.eventsAfterClose === 1 ? '' : 's'}${f.eventsCarryClosedFd ? `, carrying fd ${a}, a number that is closed` : ''}.`;
  const why = ` An epoll registration belongs to the open file description (the socket), not to the fd number: close(${a}) removed a number, but fd ${b} still holds the socket, so the registration lives on, and epoll has no way left to tell a program about it except the number it was given.`;
  const repeat = edge
    ? ` Edge-triggered, it is reported once per arrival (${f.repeatsOfThree} of 3 further calls reported it).`
    : ` Level-triggered, it is reported on every call while the byte is unread (${f.repeatsOfThree} of 3 further calls), and nobody will read it: a program would spin.`;
  const del = ` It cannot be taken out either: EPOLL_CTL_DEL on fd ${a} failed with ${f.delClosedEbadf ? 'EBADF (no such fd)' : 'an error'}, and on fd ${b} with ${f.delDupEnoent ? 'ENOENT (fd ' + b + ' was never registered: epoll keys a registration by socket and number together)' : 'an unexpected result'}.`;
  const reuse = f.numberReused
    ? ` Worse, the next socket opened got number ${a} again (the kernel hands out the lowest free number), so the event for the old socket now names a new, unrelated one (${n0(f.eventsAfterReuse)} event carrying fd ${a} after the next byte), and EPOLL_CTL_DEL on fd ${a} ${f.delReusedEnoent ? 'answers ENOENT: it is a different socket' : 'does not reach the old registration'}.`
    : ` (The next socket opened got number ${f.freshFd}, not ${a}; had it got ${a}, the stale events would have named it.)`;
  const end = ` Only closing fd ${b}, the last reference to the socket, ended the registration: ${n0(f.eventsAfterLastClose)} events after that${edge ? '' : ', although its bytes were never read'}.`;
  const rsp = ' What keeps rsp clear of it: it never dup()s a socket; it creates every socket with SOCK_CLOEXEC (socket, accept4, epoll_create1 with EPOLL_CLOEXEC), so a child process it might start does not inherit copies; and it closes a socket without EPOLL_CTL_DEL, which is safe only because nothing else holds that description, so the close removes the registration. (Its generation numbers in event.data would make a stale event for a reused number harmless, but not silent: level-triggered it would keep coming.)';
  return head + why + repeat + del + reuse + end + rsp;
}

export const experiment: Experiment = {
  n: 8,
  title: 'dup: events for a closed fd (epoll and open file descriptions)',
  rows: (p) => MODES.map((m) => plan('8', m, {}, () => dupTrap(m, p))),
  explain,
};
