// What every part of the config check shares: the one-line error, and the
// check for names rsp does not know (globals and the keys of nested tables),
// with a "did you mean" for typos.

/** A config problem, reported as one line: "Error parsing config file: <message>". */
export class ConfigError extends Error {}

/** Edit distance with transpositions (optimal string alignment). */
function distance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/** The known name closest to `name`, if it is close enough to be a typo of it (case and _ aside). */
export function didYouMean(name: string, known: readonly string[]): string | undefined {
  const norm = (s: string): string => s.toLowerCase().replace(/[_-]/g, '');
  const limit = Math.max(1, Math.floor(name.length / 4));
  let best: { name: string; d: number } | undefined;
  for (const candidate of known) {
    const d = distance(norm(name), norm(candidate));
    if (d <= limit && (best === undefined || d < best.d)) best = { name: candidate, d };
  }
  return best?.name;
}

/**
 * The one check for names rsp does not know, for the globals today and for
 * the keys of nested tables later: throws `unknown option backendAdress (did
 * you mean backendAddress?)`. `prefix` qualifies the names in the message
 * ("backends.app."); `hint` is added once when some name is not a typo.
 */
export function checkKnownNames(names: readonly string[], known: readonly string[], opts: { prefix?: string; hint?: string } = {}): void {
  const unknown = names.filter((n) => !known.includes(n));
  if (unknown.length === 0) return;
  let typosOnly = true;
  const described = unknown.map((n) => {
    const suggestion = didYouMean(n, known);
    if (suggestion === undefined) typosOnly = false;
    return `${opts.prefix ?? ''}${n}${suggestion === undefined ? '' : ` (did you mean ${suggestion}?)`}`;
  });
  const hint = !typosOnly && opts.hint !== undefined ? `; ${opts.hint}` : '';
  throw new ConfigError(`unknown option${unknown.length > 1 ? 's' : ''} ${described.join(', ')}${hint}`);
}

