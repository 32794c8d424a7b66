/** Whether `a` and `b` hold the same items (===) in the same order. */
export function sameItems(a: readonly unknown[], b: readonly unknown[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Where `key` is, or belongs, in `items` sorted by `keyOf` (code-unit order, as `<` compares
 * strings): the first index whose key is not below it. `keyOf` defaults to the item itself, for
 * a sorted list of strings.
 */
export function sortedIndex<T>(
  items: readonly T[],
  key: string,
  keyOf: (item: T) => string = (item) => item as unknown as string,
): number {
  let lo = 0;
  let hi = items.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (keyOf(items[mid]!) < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
