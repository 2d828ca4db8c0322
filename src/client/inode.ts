// Per-file state shared by every open handle of one file: the write-back
// cache, the read cache (chunks of rsize bytes, filled by reads and by
// read-ahead), and the "data stamp" (mtime and size) the cached data was
// read under. Attributes showing another stamp drop the read cache, except
// when they are explained by our own WRITE (its pre-op attributes match the
// stamp), as the Linux client does with weak cache consistency data.

import type { fattr3, nfs_fh3, wcc_attr } from '../proto/nfs3.gen.js';
import type { WriteBack } from './writeback.js';

export interface ChunkData {
  data: Buffer;
  /** The server said this chunk reaches the end of the file. */
  eof: boolean;
  /** Gives `data`'s pooled buffer back (see ReadCache.recycle). */
  release?: () => void;
}

/** A cached chunk, and who uses its buffer. */
export interface Chunk {
  promise: Promise<ChunkData>;
  /** Readers between asking for the chunk and copying out of it. */
  copying: number;
  /** A view of the data was (or is about to be) handed out: the buffer is never reused. */
  lent: boolean;
}

/** The data stamp, mtime and size (compared on every reply, so kept as fields). */
class Stamp {
  constructor(
    public seconds: number,
    public nseconds: number,
    public size: bigint,
  ) {}

  matches(a: fattr3 | wcc_attr): boolean {
    return this.seconds === a.mtime.seconds && this.nseconds === a.mtime.nseconds && this.size === a.size;
  }

  set(a: fattr3 | wcc_attr): void {
    this.seconds = a.mtime.seconds;
    this.nseconds = a.mtime.nseconds;
    this.size = a.size;
  }
}

/** Read chunks of one file, least recently used dropped first. */
export class ReadCache {
  private readonly chunks = new Map<number, Chunk>();
  /** Chunks that ended at the server's end of file (they are wrong once the file grows). */
  private readonly short = new Set<number>();

  constructor(readonly chunkSize: number, private readonly maxChunks: number) {}

  get size(): number {
    return this.chunks.size;
  }

  has(idx: number): boolean {
    return this.chunks.has(idx);
  }

  /**
   * The chunk `idx`: cached (hit) or fetched now (miss). A failed fetch is
   * not kept.
   */
  get(idx: number, fetch: () => Promise<ChunkData>): { chunk: Chunk; promise: Promise<ChunkData>; hit: boolean } {
    const c = this.chunks.get(idx);
    if (c) {
      this.chunks.delete(idx); // re-insert: most recently used last
      this.chunks.set(idx, c);
      return { chunk: c, promise: c.promise, hit: true };
    }
    const chunk: Chunk = { promise: fetch(), copying: 0, lent: false };
    chunk.promise.then(
      (c) => {
        if (c.data.length < this.chunkSize && this.chunks.get(idx) === chunk) this.short.add(idx);
      },
      () => {
        if (this.chunks.get(idx) === chunk) this.chunks.delete(idx);
      },
    );
    this.chunks.set(idx, chunk);
    while (this.chunks.size > this.maxChunks) this.chunks.delete(this.chunks.keys().next().value as number);
    return { chunk, promise: chunk.promise, hit: false };
  }

  /**
   * A reader finished copying out of `chunk` (`data` is its data): give
   * its buffer back to the pool when nobody can use it any more: it is no
   * longer cached (so nobody new can find it), no other reader is still
   * copying, and no view of it was ever lent.
   */
  recycle(idx: number, chunk: Chunk, data: ChunkData): void {
    if (chunk.copying > 0 || chunk.lent || this.chunks.get(idx) === chunk || !data.release) return;
    const release = data.release;
    data.release = undefined;
    release();
  }

  /** Drop the chunks that overlap [lo, hi) (our own write changed them). */
  dropRange(lo: number, hi: number): void {
    if (this.chunks.size === 0 || hi <= lo) return;
    const first = Math.floor(lo / this.chunkSize);
    const last = Math.floor((hi - 1) / this.chunkSize);
    if (last - first < this.chunks.size) {
      for (let i = first; i <= last; i++) this.chunks.delete(i);
    } else {
      for (const i of [...this.chunks.keys()]) if (i >= first && i <= last) this.chunks.delete(i);
    }
    for (const i of this.short) if (!this.chunks.has(i)) this.short.delete(i);
  }

  /** Drop one chunk (a sequential reader is done with it). */
  drop(idx: number): void {
    this.chunks.delete(idx);
    this.short.delete(idx);
  }

  /** Drop the chunks that ended at the end of file (our WRITE may have made the file longer). */
  dropShort(): void {
    for (const i of this.short) this.chunks.delete(i);
    this.short.clear();
  }

  clear(): void {
    this.chunks.clear();
    this.short.clear();
  }
}

export class Inode {
  /** Open handles. */
  opens = 0;
  wb: WriteBack | undefined;
  readonly readCache: ReadCache;
  /** mtime and size the cached data belongs to. */
  private stamp: Stamp | undefined;
  /** Read cache drops caused by a change seen in the attributes. */
  invalidations = 0;

  constructor(readonly key: string, readonly fh: nfs_fh3, chunkSize: number, maxChunks: number) {
    this.readCache = new ReadCache(chunkSize, maxChunks);
  }

  /** Attributes fresh from the server. */
  noteAttrs(a: fattr3): void {
    if (!this.stamp) {
      this.stamp = new Stamp(a.mtime.seconds, a.mtime.nseconds, a.size);
      return;
    }
    if (this.stamp.matches(a)) return;
    this.readCache.clear();
    this.invalidations++;
    this.stamp.set(a);
  }

  /** Attributes around one of our own WRITEs or COMMITs: a change we made does not drop the cache. */
  noteOwnChange(before: wcc_attr | undefined, after: fattr3 | undefined): void {
    if (!after) return;
    if (before && this.stamp?.matches(before)) this.stamp.set(after);
    else this.noteAttrs(after);
  }

  /** True when nothing needs this inode kept: no open handle, no cached data, no IO. */
  get idle(): boolean {
    return this.opens === 0 && (!this.wb || (!this.wb.hasData && !this.wb.busy));
  }
}
