// Calls per second of a few in-process variants (the parser, route(), the
// routes lookup): each runs for `roundMs` in turn, `rounds` times, and keeps
// its best round. Interleaving the variants keeps their ratios honest when
// the machine's load changes during the run.

export interface BestRateOptions {
  rounds: number;
  roundMs: number;
  /** Calls of each variant before measuring, to let the JIT settle. */
  warmup: number;
  /** Calls between two looks at the clock. */
  batch: number;
}

export function bestRates(variants: (() => void)[], o: BestRateOptions): number[] {
  const best = variants.map(() => 0);
  for (const v of variants) for (let i = 0; i < o.warmup; i++) v();
  for (let round = 0; round < o.rounds; round++) {
    variants.forEach((v, i) => {
      let calls = 0;
      const start = process.hrtime.bigint();
      const until = start + BigInt(o.roundMs) * 1_000_000n;
      let now = start;
      while (now < until) {
        for (let k = 0; k < o.batch; k++) v();
        calls += o.batch;
        now = process.hrtime.bigint();
      }
      best[i] = Math.max(best[i], calls / (Number(now - start) / 1e9));
    });
  }
  return best;
}
