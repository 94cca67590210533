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

/**
 * What one client costs in fds when maxConnections is derived: its own and
 * its backend's, and room for zero copy's pipes (two fds each, src/splice.ts):
 * "on" gives every client two pipes, "auto" one pipe for every second client.
 */
export function fdsPerConnection(zeroCopy: 'auto' | 'on' | 'off'): number {
  return zeroCopy === 'on' ? 6 : zeroCopy === 'auto' ? 3 : 2;
}

/** Each client costs its own fd and a backend's (and room for pipes): what the headroom leaves, shared out. */
export function defaultMaxConnections(softLimit: number, reserved: number, perConnection = 2): number {
  return Math.max(1, Math.floor((softLimit - FD_HEADROOM - reserved) / perConnection));
}

/** The soft open-files limit as it is now (the main thread raised it before any worker started). */
export function softFdLimit(): number {
  const rlim = Buffer.alloc(16);
  if (libc.getrlimit(libc.RLIMIT_NOFILE, rlim) < 0) return 1024;
  const soft = rlim.readBigUInt64LE(0);
  return soft > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(soft);
}

/**
 * Pipes zero copy may hold at once: the fds left once maxConnections clients
 * and their backends have theirs, two per pipe. A pipe never takes an fd a
 * client within maxConnections would need.
 */
export function pipeBudget(softLimit: number, reserved: number, maxConnections: number): number {
  return Math.max(0, Math.floor((softLimit - FD_HEADROOM - reserved - 2 * maxConnections) / 2));
}
