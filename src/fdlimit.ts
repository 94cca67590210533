// The open-files limit (RLIMIT_NOFILE) and the default maxConnections it
// gives. At start-up rsp raises its soft limit to the hard limit, as HAProxy
// does and nginx's worker_rlimit_nofile does: the soft limit is often 1024,
// far below what a proxy needs, while the hard limit (systemd's LimitNOFILE=,
// ulimit -Hn) is what the administrator allows.
import * as fs from 'node:fs';
import * as libc from '../ffi/libc';

/**
 * Descriptors that are not clients or backends: stdio, the epoll set, the
 * eventfd, Node's own (libuv, the worker thread), listeners, health checks.
 * Listeners and pool members are added to this by defaultMaxConnections.
 */
export const FD_HEADROOM = 64;

export interface FdLimit {
  soft: number;
  hard: number;
  /** Why the soft limit could not be raised, or null. */
  problem: string | null;
}

const RLIM_INFINITY = 0xffffffffffffffffn;

/** The most a process may set RLIMIT_NOFILE to (fs.nr_open), for a hard limit of "unlimited". */
function nrOpen(): bigint {
  try {
    return BigInt(fs.readFileSync('/proc/sys/fs/nr_open', 'utf8').trim());
  } catch {
    return 1048576n; // the kernel's default
  }
}

/** Raise the soft RLIMIT_NOFILE to the hard one (for the whole process: set before the worker starts). */
export function raiseFdLimit(): FdLimit {
  const rlim = Buffer.alloc(16);
  libc.check('getrlimit(RLIMIT_NOFILE)', libc.getrlimit(libc.RLIMIT_NOFILE, rlim));
  const soft = rlim.readBigUInt64LE(0);
  const hard = rlim.readBigUInt64LE(8);
  const target = hard === RLIM_INFINITY ? nrOpen() : hard;
  const toNumber = (n: bigint): number => Number(n > BigInt(Number.MAX_SAFE_INTEGER) ? BigInt(Number.MAX_SAFE_INTEGER) : n);
  if (soft >= target) return { soft: toNumber(soft), hard: toNumber(hard), problem: null };
  rlim.writeBigUInt64LE(target, 0);
  if (libc.setrlimit(libc.RLIMIT_NOFILE, rlim) < 0) {
    return { soft: toNumber(soft), hard: toNumber(hard), problem: `setrlimit(RLIMIT_NOFILE, ${target}): ${libc.errnoName(libc.errno())}` };
  }
  return { soft: toNumber(target), hard: toNumber(hard), problem: null };
}

/** Each client costs its own fd and a backend's: half of what the headroom leaves. */
export function defaultMaxConnections(softLimit: number, reserved: number): number {
  return Math.max(1, Math.floor((softLimit - FD_HEADROOM - reserved) / 2));
}
