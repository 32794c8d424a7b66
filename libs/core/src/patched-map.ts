/**
 * A read-only map that is `base` with some values replaced or added, without copying `base`:
 * for a map of thousands of entries of which a change touches a few (the content digests of a
 * snapshot after a one-host change). Layers stack; past MAX_LAYERS the newest copies the whole
 * map once, so a lookup never walks more than that many layers and the copies cost O(n) every
 * MAX_LAYERS patches. `base` must never change afterwards (maps handed around as ReadonlyMap).
 * Iterates `base`'s keys in its order, then the added keys in the order they were set.
 */
export class PatchedMap<K, V> implements ReadonlyMap<K, V> {
  static readonly MAX_LAYERS = 8;
  private readonly base: ReadonlyMap<K, V>;
  private readonly changes: ReadonlyMap<K, V>;
  private readonly layers: number;
  readonly size: number;

  /** `base` with `changes` set over it. */
  static of<K, V>(base: ReadonlyMap<K, V>, changes: ReadonlyMap<K, V>): ReadonlyMap<K, V> {
    if (changes.size === 0) return base;
    const layers = base instanceof PatchedMap ? base.layers + 1 : 1;
    if (layers > PatchedMap.MAX_LAYERS) {
      const whole = new Map(base);
      for (const [k, v] of changes) whole.set(k, v);
      return whole;
    }
    return new PatchedMap(base, new Map(changes), layers);
  }

  private constructor(base: ReadonlyMap<K, V>, changes: ReadonlyMap<K, V>, layers: number) {
    this.base = base;
    this.changes = changes;
    this.layers = layers;
    let added = 0;
    for (const k of changes.keys()) if (!base.has(k)) added++;
    this.size = base.size + added;
  }

  get(key: K): V | undefined {
    return this.changes.has(key) ? this.changes.get(key) : this.base.get(key);
  }

  has(key: K): boolean {
    return this.changes.has(key) || this.base.has(key);
  }

  *keys(): MapIterator<K> {
    yield* this.base.keys();
    for (const k of this.changes.keys()) if (!this.base.has(k)) yield k;
  }

  *values(): MapIterator<V> {
    for (const k of this.keys()) yield this.get(k)!;
  }

  *entries(): MapIterator<[K, V]> {
    for (const k of this.keys()) yield [k, this.get(k)!];
  }

  [Symbol.iterator](): MapIterator<[K, V]> {
    return this.entries();
  }

  forEach(fn: (value: V, key: K, map: ReadonlyMap<K, V>) => void, thisArg?: unknown): void {
    for (const [k, v] of this.entries()) fn.call(thisArg, v, k, this);
  }
}
