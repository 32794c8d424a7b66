/** Whether `a` and `b` hold the same items (===) in the same order. */
export function sameItems(a: readonly unknown[], b: readonly unknown[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Strings in code-unit order (as `<` compares them), for sort: ids, names, domains. */
export function compareCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Where `key` is, or belongs, in `items` sorted by `keyOf` (strings in code-unit order, as `<`
 * compares them, or numbers): the first index whose key is not below it. `keyOf` defaults to the
 * item itself, for a sorted list of strings.
 */
export function sortedIndex<T, K extends string | number = string>(
  items: readonly T[],
  key: K,
  keyOf: (item: T) => K = (item) => item as unknown as K,
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
