/**
 * A reference Pearson correlation for tests: the textbook formula on float64 sums, written apart
 * from the library's scoring (`scoreSimulations` centres first), so tests can check its scores
 * against an independent computation.
 */

/** Pearson correlation of two equally long series by the raw-sum formula (NaN for a constant series). */
export function refPearson(a: readonly number[], b: readonly number[]): number {
  if (a.length !== b.length) throw new Error(`refPearson: ${a.length} and ${b.length} values`);
  const n = a.length;
  const sa = a.reduce((x, y) => x + y, 0);
  const sb = b.reduce((x, y) => x + y, 0);
  const sab = a.reduce((x, y, i) => x + y * b[i]!, 0);
  const saa = a.reduce((x, y) => x + y * y, 0);
  const sbb = b.reduce((x, y) => x + y * y, 0);
  return (n * sab - sa * sb) / Math.sqrt((n * saa - sa * sa) * (n * sbb - sb * sb));
}
