// The lookup cache: (directory handle, name) -> file handle, or "no such
// name" (a negative entry). Every entry of a directory was learned while the
// directory had a given mtime/ctime (its stamp); when the directory's
// attributes show another stamp, all its entries are dropped at once. The
// client's own changes (CREATE, REMOVE, RENAME...) carry the directory's
// attributes before and after: when "before" is the stamp the entries were
// learned under, the change was ours alone and the entries stay, under the
// "after" stamp.

import type { nfs_fh3, nfstime3 } from '../proto/nfs3.gen.js';

/** A directory's stamp: its mtime and ctime. */
export function dirStamp(a: { mtime: nfstime3; ctime: nfstime3 }): string {
  return `${a.mtime.seconds}.${a.mtime.nseconds}/${a.ctime.seconds}.${a.ctime.nseconds}`;
}

interface DirEntries {
  stamp: string;
  /** A handle, or null for a negative entry. */
  names: Map<string, nfs_fh3 | null>;
}

export type LookupHit = { fh: nfs_fh3 } | { fh: null };

export class LookupCache {
  private readonly dirs = new Map<string, DirEntries>();
  private entries = 0;
  hits = 0;
  negativeHits = 0;
  misses = 0;

  constructor(private readonly enabled = true, private readonly maxEntries = 200_000) {}

  get size(): number {
    return this.entries;
  }

  /** The cached answer for `name` in a directory whose current stamp is `stamp`. */
  get(dirKey: string, stamp: string, name: string): LookupHit | undefined {
    const d = this.dirs.get(dirKey);
    if (d && d.stamp !== stamp) this.dropDir(dirKey);
    const v = d && d.stamp === stamp ? d.names.get(name) : undefined;
    if (v === undefined) {
      this.misses++;
      return undefined;
    }
    if (v === null) this.negativeHits++;
    else this.hits++;
    return { fh: v };
  }

  /** Remember `name` (null: it does not exist) as seen under `stamp`. */
  set(dirKey: string, stamp: string, name: string, fh: nfs_fh3 | null): void {
    if (!this.enabled) return;
    let d = this.dirs.get(dirKey);
    if (d && d.stamp !== stamp) {
      this.dropDir(dirKey);
      d = undefined;
    }
    if (!d) {
      d = { stamp, names: new Map() };
      this.dirs.set(dirKey, d);
    }
    if (!d.names.has(name)) this.entries++;
    d.names.set(name, fh);
    this.trim();
  }

  /** Forget one name. */
  forget(dirKey: string, name: string): void {
    const d = this.dirs.get(dirKey);
    if (d?.names.delete(name)) this.entries--;
  }

  /**
   * The directory changed by our own call: keep its entries when `before`
   * is the stamp they were learned under (and move them to `after`), else
   * drop them.
   */
  dirChanged(dirKey: string, before: string | undefined, after: string | undefined): void {
    const d = this.dirs.get(dirKey);
    if (!d) return;
    if (before !== undefined && after !== undefined && d.stamp === before) d.stamp = after;
    else this.dropDir(dirKey);
  }

  dropDir(dirKey: string): void {
    const d = this.dirs.get(dirKey);
    if (!d) return;
    this.entries -= d.names.size;
    this.dirs.delete(dirKey);
  }

  clear(): void {
    this.dirs.clear();
    this.entries = 0;
  }

  private trim(): void {
    while (this.entries > this.maxEntries && this.dirs.size > 0) {
      this.dropDir(this.dirs.keys().next().value as string);
    }
  }
}
