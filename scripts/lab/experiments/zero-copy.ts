// Experiment 11: copy vs splice. The bulk transfer of experiment 1, once
// with every byte copied through rsp (zeroCopy = "off": read() into rsp's
// buffer, write() out of it) and once through a pipe with splice(2)
// (zeroCopy = "on": splice(socket -> pipe), splice(pipe -> socket), the
// bytes never enter rsp's memory), in both trigger modes. MB/s, system calls
// per MB from rsp's counters, and rsp's CPU time per MB from /proc; the
// splice rows quote the trace of one round from a short traced transfer.
import * as fs from 'node:fs';
import { explained, plan, sibling, type Experiment, type LabRow } from '../experiment';
import { MB, MODES, type LabParams, type Mode } from '../params';
import { REQUEST, withRsp } from '../peer';
import type { RspSettings } from '../rsp';
import { n0, n1, n2 } from '../table';

type ZeroCopy = 'off' | 'on';

/** CPU time of every thread of `pid` so far, in ms (the sum of each thread's schedstat run time). */
function cpuMs(pid: number): number {
  let ns = 0;
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      // A thread that ended meanwhile.
    }
  }
  return ns / 1e6;
}

/** One download of `bytes` through rsp; the transfer's figures and rsp's counters. */
async function transfer(mode: Mode, zeroCopy: ZeroCopy, bytes: number, p: LabParams, settings: RspSettings = {}) {
  return withRsp({ triggerMode: mode, zeroCopy, ...settings }, (peer, fd) => peer.bulkSender(fd, bytes), async (rsp, peer) => {
    let received = 0;
    const cpuBefore = cpuMs(rsp.pid);
    const start = performance.now();
    const client = peer.connect(rsp.port, {
      data: (_c, _d, length) => (received += length),
      end: (c) => c.close(),
    });
    client.write(REQUEST, REQUEST.length);
    if ((await peer.driveWhileMoving(() => received >= bytes, () => received, p.stallMs)) === 'stalled') {
      throw new Error(`transfer stalled: ${received} of ${bytes} bytes, then nothing for ${p.stallMs} ms`);
    }
    const seconds = (performance.now() - start) / 1000;
    const cpu = cpuMs(rsp.pid) - cpuBefore;
    if (received !== bytes) throw new Error(`received ${received} bytes, expected ${bytes}`);
    const counters = await rsp.stop();
    return { seconds, cpu, counters, output: rsp.output() };
  });
}

/** The first splice round of a traced transfer: the event, then the splice in and the splice out. */
function spliceRound(output: string): string[] {
  const lines = output.split('\n');
  const i = lines.findIndex((l, k) => /^ {4}splice\(\d+ → pipe \d+\) = \d+$/.test(l) && /^ {4}splice\(pipe \d+ → \d+\) = \d+/.test(lines[k + 1] ?? ''));
  if (i < 0) return [];
  let event = i - 1;
  while (event > 0 && !/^ {2}fd /.test(lines[event])) event--;
  return [lines[event], lines[i], lines[i + 1]].map((l) => l.trimEnd());
}

export async function copyVsSplice(mode: Mode, zeroCopy: ZeroCopy, p: LabParams): Promise<LabRow> {
  const t = await transfer(mode, zeroCopy, p.bulkBytes, p);
  const c = t.counters;
  const mb = p.bulkBytes / MB;
  let trace: string[] | undefined;
  if (zeroCopy === 'on') {
    // A short traced transfer (tracing the measured one would slow it): one round, as the trace shows it.
    const traced = await transfer(mode, zeroCopy, 512 * 1024, p, { trace: true });
    trace = spliceRound(traced.output);
  }
  const figures = {
    megabytes: mb,
    mbPerSecond: mb / t.seconds,
    syscalls: c.syscalls,
    syscallsPerMB: c.syscalls / mb,
    cpuMsPerMB: t.cpu / mb,
    reads: c.reads,
    writes: c.writes,
    splices: c.splices,
    pipes: c.pipes,
    epollWaits: c.waits,
    bytesPerSplice: c.splices > 0 ? (2 * c.bytesSpliced) / c.splices : 0,
  };
  return explained(explain, {
    experiment: 11,
    label: '12',
    title: `copy vs splice, ${n0(mb)} MB`,
    mode,
    settings: { zeroCopy },
    figures,
    result: `${n0(figures.mbPerSecond)} MB/s · ${n1(figures.syscallsPerMB)} syscalls/MB · ${n2(figures.cpuMsPerMB)} ms CPU/MB`,
    explanation: '',
    counters: c,
    trace,
  });
}

export function explain(row: LabRow, rows: LabRow[]): string {
  const f = row.figures;
  const splice = row.settings.zeroCopy === 'on';
  const other = sibling(row, rows, (r) => r.mode === row.mode && r.settings.zeroCopy !== row.settings.zeroCopy);
  const head = `${n0(f.megabytes)} MB from the backend to the client at ${n0(f.mbPerSecond)} MB/s, ${n1(f.syscallsPerMB)} system calls and ${n2(f.cpuMsPerMB)} ms of rsp's CPU time per MB (both of its threads, from /proc).`;
  const versus = other
    ? ` The ${splice ? 'copying' : 'splice'} row of the same mode: ${n1(other.figures.syscallsPerMB)} system calls and ${n2(other.figures.cpuMsPerMB)} ms CPU per MB, so splicing ${splice ? 'takes' : 'would take'} ${n2((splice ? f : other.figures).cpuMsPerMB / Math.max(1e-9, (splice ? other.figures : f).cpuMsPerMB))}× the CPU of copying per MB.`
    : '';
  const tail = ' The MB/s are mostly this lab process\'s, which plays both ends with 64 KB read() and write() calls on the same two cores (and copies every byte itself): here they say little about splice. The CPU and system-call figures are rsp\'s alone; `npm run bench -- --only direct,rsp-level,rsp-level-copy` measures the speed against curl and nginx (see docs/lab.md).';
  if (!splice) {
    return `rsp copied ${head} Every byte crosses the kernel boundary twice: read() copies it from the backend socket's receive queue into rsp's 64 KB buffer, write() copies it into the client socket's send queue (${n0(f.reads)} reads, ${n0(f.writes)} writes). The copy is most of what a byte costs rsp.${versus}${tail}`;
  }
  const round = row.trace && row.trace.length === 3 ? ` One round, from rsp's trace: "${row.trace[0].trim()}", then "${row.trace[1].trim()}" moves the bytes from the backend socket into the pipe and "${row.trace[2].trim()}" moves the same count from the pipe into the client socket.` : '';
  return `rsp spliced ${head} With zeroCopy = "on" a direction gets a pipe from its second read on, once the backend is connected (${n0(f.pipes)} here${f.pipes === 1 ? ': the request came while rsp was still connecting to the backend, so only the download got one' : ''}): splice(backend socket → pipe) hands the pages of the receive queue to the pipe, splice(pipe → client socket) hands them on to the send queue, and no byte enters rsp's memory. Still two system calls per round (${n0(f.splices)} splices, ${n0(f.bytesPerSplice)} bytes each on average), but each moves up to the pipe's size (1 MB, F_SETPIPE_SZ) instead of the 64 KB read buffer, and no copy.${round}${versus}${tail}`;
}

export const experiment: Experiment = {
  n: 12,
  title: 'copy vs splice',
  rows: (p) => MODES.flatMap((m) => (['off', 'on'] as const).map((z) => plan('12', m, { zeroCopy: z }, () => copyVsSplice(m, z, p)))),
  explain,
};
