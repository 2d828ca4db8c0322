// A small LRU map over Map's insertion order, bounded by a total weight
// (entry count by default), with an eviction callback.

export class Lru<K, V> {
  private readonly map = new Map<K, { value: V; weight: number }>();
  private total = 0;
  private cursor: Iterator<[K, { value: V; weight: number }]> | undefined;

  constructor(
    private readonly maxWeight: number,
    private readonly onEvict?: (key: K, value: V) => void,
  ) {}

  get size(): number {
    return this.map.size;
  }

  get(key: K): V | undefined {
    const e = this.map.get(key);
    if (!e) return undefined;
    this.map.delete(key);
    this.map.set(key, e);
    return e.value;
  }

  peek(key: K): V | undefined {
    return this.map.get(key)?.value;
  }

  set(key: K, value: V, weight = 1): void {
    this.delete(key);
    this.map.set(key, { value, weight });
    this.total += weight;
    while (this.total > this.maxWeight && this.map.size > 1) {
      // The oldest entry, from an iterator kept between calls: a fresh one
      // would step again over every entry deleted since the Map last
      // compacted itself, which made a full cache cost O(size) per set.
      // Everything before the cursor has been deleted (evicted, or moved
      // to the end by get/set), so what it yields next is the oldest.
      let n = this.cursor?.next();
      if (!n || n.done) {
        this.cursor = this.map.entries();
        n = this.cursor.next();
      }
      if (n.done) break;
      const [k, e] = n.value;
      this.map.delete(k);
      this.total -= e.weight;
      this.onEvict?.(k, e.value);
    }
  }

  delete(key: K): V | undefined {
    const e = this.map.get(key);
    if (!e) return undefined;
    this.map.delete(key);
    this.total -= e.weight;
    this.onEvict?.(key, e.value);
    return e.value;
  }

  clear(): void {
    for (const k of [...this.map.keys()]) this.delete(k);
  }
}
