// One backend of a pool: where it is, how much traffic it should get, and
// what the proxy and the health checks have seen of it. Every counter is a
// plain number field, so the proxy bumps it with one increment and a stats
// page can read it later without touching the hot path.

/** Member.state: picked. */
export const UP = 0;
/** Member.state: not picked (passive failures or active checks said so). */
export const DOWN = 1;

/** A member as the configuration gives it, its address already resolved. */
export interface MemberSpec {
  /** "10.0.0.2:8080" or "[::1]:5432": how logs name it (and the Host of an HTTP check). */
  name: string;
  sockaddr: Buffer;
  /** Share of the traffic relative to the other members; default 1. */
  weight?: number;
  /** Takes traffic only while no primary member can. */
  backup?: boolean;
  /** At most this many connections at once (counting connects in progress); 0 or absent: no limit. */
  maxConnections?: number;
}

/** Below this fraction of its weight a slow-starting member does not go: "near zero", never zero. */
const RAMP_FLOOR = 0.01;

export class Member {
  readonly name: string;
  readonly sockaddr: Buffer;
  readonly weight: number;
  readonly backup: boolean;
  readonly maxConnections: number;

  /** UP or DOWN. */
  state = UP;
  /** False once it has left its pool (pool.remove): its pairings go on, but nothing marks it up or down. */
  inPool = true;
  /** Why it went down, as logged ('' while up). */
  downReason = '';
  /** When it last went down (the pool's clock). */
  downSince = 0;
  /** Picks not yet ended by failed() or released(): connects in progress and live pairings. */
  active = 0;
  /** Connections that were established. */
  total = 0;
  /** Connects that failed (every one, not only those that counted towards maxFails). */
  failures = 0;
  /** Bytes from this member to clients, and from clients to it: bumped by the proxy. */
  bytesIn = 0;
  bytesOut = 0;
  /** The last active check: '' before the first, 'ok', or why it failed ("connection refused", "status 503"). */
  lastCheck = '';
  /** Consecutive check results of one kind, towards `rise` and `fall`. */
  checkSuccesses = 0;
  checkFailures = 0;

  // Passive health: failures counted since firstFailAt; down until downUntil.
  failCount = 0;
  firstFailAt = 0;
  downUntil = 0;
  // Slow start: the weight ramps up between these two times.
  rampFrom = 0;
  rampUntil = 0;
  /** Smooth weighted round-robin's current_weight (roundrobin, and leastconn's tie-break). */
  current = 0;

  constructor(spec: MemberSpec) {
    const weight = spec.weight ?? 1;
    if (!(weight > 0) || !Number.isFinite(weight)) throw new Error(`member ${spec.name}: weight must be a positive number, not ${weight}`);
    const max = spec.maxConnections ?? 0;
    if (!Number.isInteger(max) || max < 0) throw new Error(`member ${spec.name}: maxConnections must be a whole number >= 0, not ${max}`);
    this.name = spec.name;
    this.sockaddr = spec.sockaddr;
    this.weight = weight;
    this.backup = spec.backup === true;
    this.maxConnections = max;
  }

  /** The weight to balance by at `now`: the full weight, or less while slow-starting. */
  weightAt(now: number): number {
    if (now >= this.rampUntil) return this.weight;
    const fraction = (now - this.rampFrom) / (this.rampUntil - this.rampFrom);
    return this.weight * (fraction > RAMP_FLOOR ? fraction : RAMP_FLOOR);
  }
}

/** Can `m` take one more connection: up, below its limit, and not already tried for this client? */
export function available(m: Member, exclude: readonly Member[] | null): boolean {
  if (m.state !== UP) return false;
  if (m.maxConnections !== 0 && m.active >= m.maxConnections) return false;
  if (exclude !== null) {
    for (let i = 0; i < exclude.length; i++) if (exclude[i] === m) return false;
  }
  return true;
}
