// The lab's parameters: how big and how long each experiment runs, in a
// full run and with --quick. One table, so that the two can be compared.
export const HOST = '127.0.0.1';
export const MB = 1_000_000;

export type Mode = 'level' | 'edge';
export const MODES: readonly Mode[] = ['level', 'edge'];


export interface LabParams {
  quick: boolean;
  /** 1: bytes sent through rsp on one connection. */
  bulkBytes: number;
  /** 2 and 6b: persistent connections, warm-up and measured request/response pairs. */
  keepAliveConns: number;
  keepAliveWarmup: number;
  keepAliveRequests: number;
  /**
   * 3: rsp's readBufferSize: small enough that rsp is the slowest part and
   * finds a backend socket never empty when it comes back to it (with 4 KB,
   * rsp's short-read rule often finds it empty, and the shares then follow
   * how fast TCP refills each socket rather than how rsp takes turns).
   */
  fairReadSize: number;
  /** 3: both streams flowing and at least this many bytes before the window opens (or fairStartMs passed). */
  fairWarmBytes: number;
  fairStartMs: number;
  /** 3: the window lasts this many ms (or until this many bytes, whichever first). */
  fairWindowBytes: number;
  fairWindowMs: number;
  /** 4: connections opened at once, how long to wait for them, how long after the 51st. */
  acceptConns: number;
  strandTimeoutMs: number;
  kickTimeoutMs: number;
  /** 5: size of the response, and how long to wait for it. */
  readOnceBytes: number;
  readOnceTimeoutMs: number;
  /** 6a: short connections (one request each), this many at a time. */
  shortConns: number;
  shortConcurrency: number;
  /** 6b: keep-alive requests, then an idle pause with the connections open. */
  wakeRequests: number;
  idleMs: number;
  /** 9: how long the raw loop is measured once both streams flow. */
  oneshotMs: number;
  /** 10: one-request connections through a pool of three (one slow), this many at a time, and the slow member's delay. */
  balanceRequests: number;
  balanceConcurrency: number;
  balanceSlowMs: number;
  /** Any experiment: no progress for this long means rsp is stuck (reported, never waited out). */
  stallMs: number;
}

export const FULL: LabParams = {
  quick: false,
  bulkBytes: 200 * MB,
  keepAliveConns: 16,
  keepAliveWarmup: 2000,
  keepAliveRequests: 20000,
  fairReadSize: 1024,
  fairWarmBytes: 8 * MB,
  fairStartMs: 2000,
  fairWindowBytes: 2000 * MB,
  fairWindowMs: 2500,
  acceptConns: 50,
  strandTimeoutMs: 2000,
  kickTimeoutMs: 1000,
  readOnceBytes: 1024 * 1024,
  readOnceTimeoutMs: 2000,
  shortConns: 2000,
  shortConcurrency: 16,
  wakeRequests: 5000,
  idleMs: 1000,
  oneshotMs: 1500,
  balanceRequests: 3000,
  balanceConcurrency: 16,
  balanceSlowMs: 20,
  stallMs: 3000,
};

export const QUICK: LabParams = {
  quick: true,
  bulkBytes: 50 * MB,
  keepAliveConns: 16,
  keepAliveWarmup: 500,
  keepAliveRequests: 3000,
  fairReadSize: 1024,
  fairWarmBytes: 4 * MB,
  fairStartMs: 600,
  fairWindowBytes: 500 * MB,
  fairWindowMs: 600,
  acceptConns: 50,
  strandTimeoutMs: 1000,
  kickTimeoutMs: 500,
  readOnceBytes: 1024 * 1024,
  readOnceTimeoutMs: 1000,
  shortConns: 300,
  shortConcurrency: 16,
  wakeRequests: 1000,
  idleMs: 300,
  oneshotMs: 500,
  balanceRequests: 600,
  balanceConcurrency: 16,
  balanceSlowMs: 20,
  stallMs: 1000,
};
