// rsp's own memory (BENCHMARKS.md, "Where the memory goes"): the worker's V8
// limits, the malloc'd memory start-up freed handed back, and the report behind
// the figures. With RSP_MEMORY_REPORT=1 in the environment, SIGUSR2 prints,
// besides the counters, one isolate's V8 heap (used/total, each space, code)
// and the modules it has loaded, for the main thread and for each worker
// (scripts/bench/memory-breakdown.ts reads them). Off (the default) it costs
// one comparison per SIGUSR2; node:v8 is loaded only when a report is asked for.

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

/** Once rsp serves: hand back to the OS the malloc'd memory start-up freed (the config thread's): about 0.7 MB. */
export function trimAfterStart(): void {
  libc.malloc_trim(0);
}
