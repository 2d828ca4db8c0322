// A set of byte ranges: sorted, disjoint, non-adjacent half-open intervals
// [start, end). Used by the write-back cache for its dirty, in-flight and
// cached bytes. Lookups are binary searches; an insert or removal splices.

export class RangeSet {
  private starts: number[] = [];
  private ends: number[] = [];
  private bytes = 0;

  get isEmpty(): boolean {
    return this.starts.length === 0;
  }

  /** Number of disjoint ranges. */
  get count(): number {
    return this.starts.length;
  }

  /** Total bytes covered. */
  get size(): number {
    return this.bytes;
  }

  /** End of the last range (0 when empty). */
  get maxEnd(): number {
    return this.ends.length ? this.ends[this.ends.length - 1]! : 0;
  }

  /** Index of the first range whose end is > pos (or count). */
  private firstEndAfter(pos: number): number {
    let lo = 0;
    let hi = this.ends.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.ends[mid]! > pos) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  /** Add [s, e), merging with overlapping or touching ranges. */
  add(s: number, e: number): void {
    if (e <= s) return;
    // First range that ends at or after s (touching counts as merge).
    const i = this.firstEndAfter(s - 1); // the first range with end >= s
    let j = i;
    let ns = s;
    let ne = e;
    while (j < this.starts.length && this.starts[j]! <= e) {
      ns = Math.min(ns, this.starts[j]!);
      ne = Math.max(ne, this.ends[j]!);
      this.bytes -= this.ends[j]! - this.starts[j]!;
      j++;
    }
    this.starts.splice(i, j - i, ns);
    this.ends.splice(i, j - i, ne);
    this.bytes += ne - ns;
  }

  /** Remove [s, e). */
  remove(s: number, e: number): void {
    if (e <= s) return;
    const i = this.firstEndAfter(s);
    const newStarts: number[] = [];
    const newEnds: number[] = [];
    let j = i;
    while (j < this.starts.length && this.starts[j]! < e) {
      const rs = this.starts[j]!;
      const re = this.ends[j]!;
      this.bytes -= re - rs;
      if (rs < s) {
        newStarts.push(rs);
        newEnds.push(s);
        this.bytes += s - rs;
      }
      if (re > e) {
        newStarts.push(e);
        newEnds.push(re);
        this.bytes += re - e;
      }
      j++;
    }
    if (j === i) return;
    this.starts.splice(i, j - i, ...newStarts);
    this.ends.splice(i, j - i, ...newEnds);
  }

  /** True when some byte of [s, e) is in the set. */
  intersects(s: number, e: number): boolean {
    if (e <= s) return false;
    const i = this.firstEndAfter(s);
    return i < this.starts.length && this.starts[i]! < e;
  }

  /** True when every byte of [s, e) is in the set. */
  covers(s: number, e: number): boolean {
    if (e <= s) return true;
    const i = this.firstEndAfter(s);
    return i < this.starts.length && this.starts[i]! <= s && this.ends[i]! >= e;
  }

  /** The ranges that intersect [s, e), clipped to it. */
  overlapping(s: number, e: number): Array<[number, number]> {
    const out: Array<[number, number]> = [];
    for (let i = this.firstEndAfter(s); i < this.starts.length && this.starts[i]! < e; i++) {
      out.push([Math.max(s, this.starts[i]!), Math.min(e, this.ends[i]!)]);
    }
    return out;
  }

  /** The first range that intersects [s, e), clipped to it, or undefined. */
  firstIn(s: number, e: number): [number, number] | undefined {
    const i = this.firstEndAfter(s);
    if (i >= this.starts.length || this.starts[i]! >= e) return undefined;
    return [Math.max(s, this.starts[i]!), Math.min(e, this.ends[i]!)];
  }

  /** All ranges, in order. */
  *[Symbol.iterator](): IterableIterator<[number, number]> {
    for (let i = 0; i < this.starts.length; i++) yield [this.starts[i]!, this.ends[i]!];
  }

  clear(): void {
    this.starts = [];
    this.ends = [];
    this.bytes = 0;
  }
}
