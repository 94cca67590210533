// Several workers often meet the same condition at once - out of file
// descriptors, a member that DNS added to every worker's copy of a pool - and
// each logs it. The main thread prints such a line once: the same text from
// another worker within `windowMs` is an echo. A worker repeating itself is
// never one (that is a new event).
export class LineEchoes {
  /** Lines printed lately, by text (without the timestamp): which workers said it since `at`. */
  private readonly recent = new Map<string, { workers: Set<number>; at: number }>();

  constructor(private readonly windowMs = 1000) {}

  /** True if `line` from `worker` only repeats what another worker just said. */
  isEcho(worker: number, line: string, now = Date.now()): boolean {
    const text = line.replace(/^\[[^\]]*\] /, '');
    const seen = this.recent.get(text);
    if (seen !== undefined && !seen.workers.has(worker) && now - seen.at < this.windowMs) {
      seen.workers.add(worker);
      return true;
    }
    if (this.recent.size > 1000) for (const [k, v] of this.recent) if (now - v.at >= this.windowMs) this.recent.delete(k);
    this.recent.set(text, { workers: new Set([worker]), at: now });
    return false;
  }
}
