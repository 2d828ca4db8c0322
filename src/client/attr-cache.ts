// The attribute cache, with the Linux client's timing rules: attributes of a
// regular file are trusted for acregmin..acregmax seconds and those of a
// directory for acdirmin..acdirmax. The timeout adapts: each change seen
// resets it to the minimum; each time it runs out with no change, it doubles
// (up to the maximum). So the timeout grows with the time since the object
// last changed: files that keep changing are checked often, quiet ones
// rarely.

import type { fattr3 } from '../proto/nfs3.gen.js';

export interface AttrTimeouts {
  /** Seconds (defaults 3, 60, 30, 60, as mount(8)). 0 everywhere = noac. */
  acregmin?: number;
  acregmax?: number;
  acdirmin?: number;
  acdirmax?: number;
}

interface Entry {
  attrs: fattr3;
  /** When the attributes were fetched (ms). */
  fetched: number;
  /** Current timeout (ms). */
  timeo: number;
  /** When `timeo` was last set. */
  timeoStamp: number;
}

const NF3DIR = 2;

/** True when two attribute sets show a change of the object (data or metadata). */
export function attrsChanged(a: fattr3, b: fattr3): boolean {
  return (
    a.mtime.seconds !== b.mtime.seconds ||
    a.mtime.nseconds !== b.mtime.nseconds ||
    a.ctime.seconds !== b.ctime.seconds ||
    a.ctime.nseconds !== b.ctime.nseconds ||
    a.size !== b.size ||
    a.fileid !== b.fileid
  );
}

export class AttrCache {
  private readonly map = new Map<string, Entry>();
  private readonly regMin: number;
  private readonly regMax: number;
  private readonly dirMin: number;
  private readonly dirMax: number;
  hits = 0;
  misses = 0;

  constructor(t: AttrTimeouts = {}, private readonly maxEntries = 100_000) {
    this.regMin = (t.acregmin ?? 3) * 1000;
    this.regMax = Math.max(this.regMin, (t.acregmax ?? 60) * 1000);
    this.dirMin = (t.acdirmin ?? 30) * 1000;
    this.dirMax = Math.max(this.dirMin, (t.acdirmax ?? 60) * 1000);
  }

  get size(): number {
    return this.map.size;
  }

  /** Cached attributes still within their timeout (counted as a hit or a miss). */
  get(key: string, now = Date.now()): fattr3 | undefined {
    const e = this.map.get(key);
    if (e && now - e.fetched < e.timeo) {
      this.hits++;
      return e.attrs;
    }
    this.misses++;
    return undefined;
  }

  /** Cached attributes however old (not counted). */
  peek(key: string): fattr3 | undefined {
    return this.map.get(key)?.attrs;
  }

  /** The current timeout of an entry in ms (for tests and stats). */
  timeoutOf(key: string): number | undefined {
    return this.map.get(key)?.timeo;
  }

  /**
   * Store attributes just received from the server; returns true when they
   * differ from the cached ones (the object changed).
   */
  update(key: string, attrs: fattr3, now = Date.now()): boolean {
    const dir = attrs.type === NF3DIR;
    const min = dir ? this.dirMin : this.regMin;
    const max = dir ? this.dirMax : this.regMax;
    const e = this.map.get(key);
    if (!e) {
      this.map.set(key, { attrs, fetched: now, timeo: min, timeoStamp: now });
      this.trim();
      return false;
    }
    const changed = attrsChanged(e.attrs, attrs);
    if (changed) {
      e.timeo = min;
      e.timeoStamp = now;
    } else if (now - e.timeoStamp >= e.timeo) {
      e.timeo = Math.min(Math.max(e.timeo * 2, min, 1000), max);
      e.timeoStamp = now;
    }
    e.attrs = attrs;
    e.fetched = now;
    return changed;
  }

  /** Forget the freshness (the next get() misses) but keep the attributes. */
  expire(key: string): void {
    const e = this.map.get(key);
    if (e) e.fetched = -Infinity;
  }

  delete(key: string): void {
    this.map.delete(key);
  }

  clear(): void {
    this.map.clear();
  }

  private trim(): void {
    // Oldest inserted first: a cheap approximation of LRU.
    while (this.map.size > this.maxEntries) {
      const k = this.map.keys().next().value as string;
      this.map.delete(k);
    }
  }
}
