// Numbers as the report and the progress lines print them.

export const fmtInt = (n: number): string => Math.round(n).toLocaleString('en-US');
export const fmt0 = (n: number): string => Math.round(n).toLocaleString('en-US');
export const fmt1 = (n: number | undefined): string => (n === undefined ? 'n/a' : n.toFixed(1));
export const fmt2 = (n: number): string => n.toFixed(2);
export const fmtMs = (ms: number): string => (ms < 1 ? `${ms.toFixed(3)} ms` : `${ms.toFixed(2)} ms`);
export const fmtMB = (bytes: number): string => `${(bytes / 1e6).toFixed(1)} MB`;

/** The median; with an even count, the mean of the two middle values. */
export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** min–max of a setup's rounds, e.g. "34,120–38,011". */
export function rangeText(values: number[]): string {
  return `${fmtInt(Math.min(...values))}–${fmtInt(Math.max(...values))}`;
}
