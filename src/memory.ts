// rsp's own memory (BENCHMARKS.md, "Where the memory goes"): the worker's V8
// limits, the start-up pages let go of once rsp runs, and the report behind
// the figures. With RSP_MEMORY_REPORT=1 in the environment, SIGUSR2 prints,
// besides the counters, one isolate's V8 heap (used/total, each space, code)
// and the modules it has loaded, for the main thread and for each worker
// (scripts/bench/memory-breakdown.ts reads them). Off (the default) it costs
// one comparison per SIGUSR2; node:v8 is loaded only when a report is asked for.

import * as fs from 'node:fs';
import * as libc from '../ffi/libc';

/** Read once: a worker gets a copy of the main thread's environment. */
export const memoryReportOn = process.env.RSP_MEMORY_REPORT === '1';

const MB = (n: number): string => (n / 1e6).toFixed(2);

/** The report's lines for this thread (its isolate), `who` being "main" or "worker". */
export function memoryLines(who: string): string[] {
  const v8 = require('node:v8') as typeof import('node:v8');
  const h = v8.getHeapStatistics();
  const code = v8.getHeapCodeStatistics();
  const spaces = v8
    .getHeapSpaceStatistics()
    .filter((s) => s.space_size > 0)
    .map((s) => `${s.space_name}=${MB(s.space_used_size)}/${MB(s.space_size)}`)
    .join(' ');
  const modules = Object.keys(require.cache).map(shortName);
  return [
    ...(who === 'main' ? [`memory: node binary pages dropped after start-up: ${dropped === null ? 'not yet' : `${MB(dropped.bytes)} MB in ${dropped.mappings} mappings${dropped.failed > 0 ? ` (${dropped.failed} madvise calls failed)` : ''}${dropped.problem !== undefined ? ` (${dropped.problem})` : ''}`}`] : []),
    `memory ${who}: rss=${MB(process.memoryUsage.rss())} heap-used=${MB(h.used_heap_size)} heap-total=${MB(h.total_heap_size)} heap-committed=${MB(h.total_physical_size)} malloced=${MB(h.malloced_memory)} external=${MB(h.external_memory)} code=${MB(code.code_and_metadata_size)} bytecode=${MB(code.bytecode_and_metadata_size)} MB`,
    `memory ${who} spaces (used/size MB): ${spaces}`,
    `memory ${who} modules (${modules.length}): ${modules.join(' ')}`,
  ];
}

/** node_modules/koffi/index.js -> koffi/index.js; dist/src/proxy.js -> src/proxy.js. */
function shortName(file: string): string {
  const nm = file.lastIndexOf('node_modules/');
  if (nm >= 0) return file.slice(nm + 'node_modules/'.length);
  const dist = file.lastIndexOf('/dist/');
  return dist >= 0 ? file.slice(dist + '/dist/'.length) : file;
}

/**
 * The worker's V8 limits. Its young generation is capped: left to itself V8
 * grows it to 16 MB (two 8 MB semi-spaces) during a burst of new connections
 * and keeps it: a third of the RSS that 5,000 idle connections added. The
 * reactor allocates about 100 bytes per request, so 1 MB semi-spaces mean a
 * sub-millisecond scavenge a second under load, which no req/s figure shows
 * (BENCHMARKS.md, "Where the memory goes", has both measurements).
 */
export const WORKER_RESOURCE_LIMITS = { maxYoungGenerationSizeMb: 3 };

let dropped: { mappings: number; bytes: number; failed: number; problem?: string } | null = null;

/**
 * Once rsp has started: unmaps from this process the pages of the node
 * binary that start-up touched (bootstrapping two isolates and a config
 * thread, compiling, the dynamic linker's symbol lookups) and serving does
 * not need. They are clean pages of the file: they stay in the page cache,
 * shared with every other node process, and the few that serving uses come
 * back on first touch (a minor fault). File-backed RSS goes from 45 MB to
 * 17 MB at start, and is 27 MB once connections have been served
 * (BENCHMARKS.md, "Where the memory goes").
 *
 * Only mappings of the executable that are read-only and hold no private
 * (copy-on-write) page are touched: for those MADV_DONTNEED can only make a
 * page be read again from the file, never lose a byte (RELRO, the one
 * read-only part the loader wrote to, has private pages and is left alone).
 * A failed madvise leaves the pages where they were; nothing depends on it.
 * Run once, on the main thread, when the worker says it listens: about 20 ms.
 */
export function dropStartupPages(): void {
  let exe: string;
  let smaps: string;
  try {
    exe = fs.realpathSync(process.execPath);
    smaps = fs.readFileSync('/proc/self/smaps', 'utf8');
  } catch {
    dropped = { mappings: 0, bytes: 0, failed: 0, problem: 'cannot read /proc/self/smaps' }; // a sandbox: the pages stay, rsp runs as before
    return;
  }
  let mappings = 0;
  let bytes = 0;
  let failed = 0;
  for (const block of smaps.split(/\n(?=[0-9a-f]+-[0-9a-f]+ )/)) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ \d+ +(.*)/.exec(block);
    if (m === null || m[4] !== exe || m[3][1] === 'w' || !/\nAnonymous: +0 kB/.test(block)) continue;
    const start = BigInt(`0x${m[1]}`);
    const length = BigInt(`0x${m[2]}`) - start;
    if (libc.madvise(start, length, libc.MADV_DONTNEED) !== 0) {
      failed++;
      continue;
    }
    mappings++;
    bytes += Number(/\nRss: +(\d+) kB/.exec(block)?.[1] ?? 0) * 1024;
  }
  dropped = { mappings, bytes, failed };
  // And the malloc'd memory start-up freed (the config thread's, reading smaps): about 0.7 MB.
  libc.malloc_trim(0);
}
