// The write-back cache of one file.
//
// Application writes are copied into pages (the one copy the write path
// makes: the caller may reuse its buffer as soon as write() returns) and
// the bytes become dirty. From there they go out as UNSTABLE WRITEs of up
// to `chunkSize` bytes, sent straight from the pages (no further copy), many
// in flight; each reply's verifier is kept with the range it covers. A
// COMMIT answers with the server's current verifier: ranges written under
// that verifier are safe and their pages are freed; ranges written under
// another (the server restarted and may have lost them) become dirty again,
// are sent again and committed again. Pages are freed only then, so an
// acknowledged sync() never loses data.
//
// Byte states, each a RangeSet:
//   dirty    - modified, not yet handed to a WRITE
//   writing  - in a WRITE in flight (never two in flight for one byte, so
//              the server cannot apply an older WRITE after a newer one)
//   unstable - records {range, verifier} of UNSTABLE WRITEs not yet committed
//   cached   - bytes held in pages (the union of the above, plus bytes of
//              pages still held for another range)
// A page is freed when no dirty, writing or unstable byte falls in it.
//
// Full chunks are written as soon as they are complete (so a sequential
// writer streams); partial ones wait for sync/close, memory pressure or the
// writeback delay.
//
// COMMITs are pipelined with the WRITEs: over the background threshold,
// once an eighth of the hard dirty limit is written UNSTABLE and waits for
// COMMIT (or a writer waits for memory and no WRITE of the file is left
// to complete), a COMMIT goes out for the ranges whose WRITEs have completed,
// while WRITEs of the next ranges keep going; one COMMIT per file at a
// time (the server syncs the whole file for each). Waiting for the dirty
// limit to fill first would leave no WRITE in flight while the server
// syncs, and the writer stalled for the whole COMMIT.
//
// A WRITE that lands in the page cache of the server's own host (LOCALIO:
// `hostCached`) frees its pages at once: a restart of the server cannot
// lose those bytes, only a crash of the host, which takes this client with
// it. sync() still sends a COMMIT for them (the fsync that makes them
// durable); until then the host's kernel throttles and writes them back,
// as it does for any local writer. Writes of a WRITE's size or more to
// such a file skip the pages altogether (writeThrough): they go from the
// caller's memory to the granted descriptor, the way a local pwrite would.
//
// Memory is charged to the DirtyAccountant page by page;
// only application writes reserve (and may wait); WRITE and COMMIT only
// release.
//
// Errors of background writeback are recorded with a sequence number, and
// every file handle reports each one once, at its next write, sync or close
// (as Linux's errseq), so none is lost; the data of a failed WRITE is
// dropped, or writeback could never drain.

import { stable_how, type nfs_fh3, type wcc_data } from '../proto/nfs3.gen.js';
import { RangeSet } from './ranges.js';
import type { DirtyAccountant } from './dirty.js';
import type { DataTransport, StableHow, WriteResult } from './transport.js';
import type { Semaphore } from './semaphore.js';
import type { PagePool } from './pages.js';

export interface WritebackCounters {
  /** WRITE calls completed. */
  writes: number;
  /** Bytes the server acknowledged. */
  bytesWritten: number;
  /** WRITEs sent FILE_SYNC (a single-chunk flush needs no COMMIT). */
  stableWrites: number;
  shortWrites: number;
  commits: number;
  /** COMMITs whose verifier differed from a WRITE's. */
  verifierMismatches: number;
  /** Ranges sent again after a verifier mismatch, and their bytes. */
  commitResends: number;
  commitResentBytes: number;
  /** WRITE or COMMIT failures recorded for the application. */
  errors: number;
  /** Pages allocated. */
  pagesAllocated: number;
}

export function newWritebackCounters(): WritebackCounters {
  return { writes: 0, bytesWritten: 0, stableWrites: 0, shortWrites: 0, commits: 0, verifierMismatches: 0, commitResends: 0, commitResentBytes: 0, errors: 0, pagesAllocated: 0 };
}

/** What a WriteBack needs from its client. */
export interface WritebackHost {
  readonly accountant: DirtyAccountant;
  /** Bounds WRITEs in flight (client-wide). */
  readonly writeSlots: Semaphore;
  readonly pageSize: number;
  /** Where pages come from and go back to. */
  readonly pages: PagePool;
  /** Largest WRITE. */
  readonly chunkSize: number;
  /** Start writing partial chunks after this long (ms; 0 = never on a timer). */
  readonly writebackDelayMs: number;
  readonly counters: WritebackCounters;
  /** The transport for this file (RPC, or LOCALIO once granted). */
  transportFor(fh: nfs_fh3): DataTransport;
  /** Attributes before/after one of our own WRITEs or COMMITs. */
  noteWcc(fh: nfs_fh3, wcc: wcc_data | undefined): void;
  /** The server now has [s, e) from us: data read from it before is stale. */
  dataWritten(fh: nfs_fh3, s: number, e: number): void;
}

interface UnstableRecord {
  s: number;
  e: number;
  verf: Buffer;
}

/** A handle's view of the file's error sequence. */
export interface ErrorCursor {
  errSeq: number;
}

export class WriteBack {
  private readonly pages = new Map<number, Buffer>();
  private readonly cached = new RangeSet();
  private readonly dirty = new RangeSet();
  private readonly writing = new RangeSet();
  private readonly unstable = new Map<number, UnstableRecord>();
  /**
   * UNSTABLE bytes written into the server host's page cache (hostCached):
   * their pages are freed at once, as a restart of the server cannot lose
   * them, but sync still owes them a COMMIT.
   */
  private hostCachedUncommitted = false;
  private readonly unstableRefs = new Map<number, number>();
  private nextRecord = 1;
  /** Bytes of the `unstable` records. */
  private unstableBytes = 0;
  private readonly inflight = new Set<Promise<void>>();
  private readonly commits = new Set<Promise<void>>();
  private running = false;
  private loopDone: Promise<void> = Promise.resolve();
  private loopAll = false;
  private rescan = false;
  private fullHint = Infinity;
  private syncing = 0;
  private timer: NodeJS.Timeout | undefined;
  private releaseGen = 0;
  private readonly releaseLog: Array<{ gen: number; end: number }> = [];
  private errSeq = 0;
  private reportedSeq = 0;
  private lastError: unknown;
  private readonly P: number;

  constructor(readonly fh: nfs_fh3, private readonly host: WritebackHost) {
    this.P = host.pageSize;
  }

  /** True while the cache holds any byte of this file. */
  get hasData(): boolean {
    return this.pages.size > 0;
  }

  /** True while a WRITE or COMMIT is in flight. */
  get busy(): boolean {
    return this.inflight.size > 0 || this.commits.size > 0;
  }

  get dirtyBytes(): number {
    return this.dirty.size;
  }

  /** Unstable bytes at which a COMMIT goes out while writing goes on. */
  private get commitThreshold(): number {
    return Math.max(this.host.chunkSize, Math.floor(this.host.accountant.hard / 8));
  }

  /** Start a COMMIT of what is written unstable when enough is, or when nothing else can free memory. */
  private maybeCommit(): void {
    if (this.commits.size > 0 || this.unstable.size === 0) return;
    // A writer waiting for memory with no WRITE of ours left to complete: only a COMMIT frees any.
    const starved = this.host.accountant.waiting > 0 && this.inflight.size === 0;
    // Below the background threshold nothing is committed before sync/close (as nothing is flushed).
    if (!starved && (this.unstableBytes < this.commitThreshold || !this.host.accountant.overBackground)) return;
    void this.commit().catch(() => undefined);
  }

  get unstableCount(): number {
    return this.unstable.size;
  }

  /** End of the last cached byte: the file is at least this long here. */
  get cachedEnd(): number {
    return this.cached.maxEnd;
  }

  /** Counts page releases; a reader compares it before and after (see releasedSince). */
  get generation(): number {
    return this.releaseGen;
  }

  /**
   * True when pages holding bytes at or after `from` were released since
   * generation `gen`: a read that overlaid cached bytes (or used them to
   * lengthen the file) while the server had older data must be done again.
   */
  releasedSince(gen: number, from: number): boolean {
    if (gen === this.releaseGen) return false;
    const first = this.releaseLog[0];
    if (!first || first.gen > gen + 1) return true; // the log does not reach back that far
    return this.releaseLog.some((r) => r.gen > gen && r.end > from);
  }

  /** The current error sequence (a new handle starts there: it sees later errors only). */
  get errorSeq(): number {
    return this.errSeq;
  }

  /** The error this handle has not seen yet, if any (and mark it seen). */
  takeError(cursor: ErrorCursor): unknown {
    if (cursor.errSeq >= this.errSeq) return undefined;
    cursor.errSeq = this.errSeq;
    this.reportedSeq = Math.max(this.reportedSeq, this.errSeq);
    return this.lastError;
  }

  /** The last error when no handle ever reported it (the client reports it at close). */
  unreportedError(): unknown {
    return this.errSeq > this.reportedSeq ? this.lastError : undefined;
  }

  /**
   * Copy `data` into the cache at `offset`. Waits when the dirty limit is
   * reached. The caller may reuse `data` once this resolves.
   */
  async write(offset: number, data: Buffer): Promise<void> {
    const P = this.P;
    let pos = offset;
    let src = 0;
    while (src < data.length) {
      const idx = Math.floor(pos / P);
      const inPage = pos - idx * P;
      const n = Math.min(P - inPage, data.length - src);
      let page = this.pages.get(idx);
      if (!page) {
        if (!this.host.accountant.tryReserve(P)) {
          await this.host.accountant.reserve(P);
          page = this.pages.get(idx); // another writer may have made it meanwhile
          if (page) this.host.accountant.release(P);
        }
        if (!page) {
          if (this.host.pages.size === 0) this.host.counters.pagesAllocated++;
          page = this.host.pages.take();
          this.pages.set(idx, page);
        }
      }
      data.copy(page, inPage, src, src + n);
      this.cached.add(pos, pos + n);
      this.dirty.add(pos, pos + n);
      pos += n;
      src += n;
      // A large write streams: each chunk it completes goes out while it copies the next.
      if (pos % this.host.chunkSize === 0) this.sendIfFull(pos - this.host.chunkSize);
    }
    this.afterWrite(offset, pos);
  }

  /**
   * Writes `data` at `offset` straight from the caller's memory, with no
   * copy into pages and nothing held, when the file's transport puts what it
   * writes into the server host's page cache (LOCALIO), the write is at
   * least one chunk, and none of its range is cached here (so no WRITE of
   * ours can race with it). A WRITE that did not land there after all (the
   * grant went away and it went over RPC) or landed short is written again
   * through the cache, so nothing rests on a reply a server restart could
   * void. False when it does not apply: the caller copies (write()).
   */
  async writeThrough(offset: number, data: Buffer): Promise<boolean> {
    const t = this.host.transportFor(this.fh);
    if (data.length < this.host.chunkSize || !t.landsInHostCache || this.cached.intersects(offset, offset + data.length)) return false;
    if (!(await t.landsInHostCache(this.fh)) || this.cached.intersects(offset, offset + data.length)) return false;
    let res: WriteResult;
    try {
      res = await t.write(this.fh, offset, [data], data.length, stable_how.UNSTABLE);
    } catch {
      return false; // the cache's WRITE meets the error again and reports it as write-back does
    }
    this.host.noteWcc(this.fh, res.wcc);
    const n = Math.max(0, Math.min(res.count, data.length));
    this.host.dataWritten(this.fh, offset, offset + n);
    if (res.committed !== stable_how.UNSTABLE || !res.hostCached) {
      await this.write(offset, data);
      return true;
    }
    this.host.counters.writes++;
    this.host.counters.bytesWritten += n;
    this.hostCachedUncommitted = true;
    if (n < data.length) await this.write(offset + n, data.subarray(n));
    return true;
  }

  /**
   * Copy the cached bytes of [offset, offset+len) over `target` (from
   * `targetOffset`); returns how many bytes came from the cache.
   */
  overlay(offset: number, len: number, target: Buffer, targetOffset: number): number {
    let copied = 0;
    const P = this.P;
    for (const [a, b] of this.cached.overlapping(offset, offset + len)) {
      let pos = a;
      while (pos < b) {
        const idx = Math.floor(pos / P);
        const inPage = pos - idx * P;
        const n = Math.min(P - inPage, b - pos);
        this.pages.get(idx)!.copy(target, targetOffset + (pos - offset), inPage, inPage + n);
        pos += n;
        copied += n;
      }
    }
    return copied;
  }

  /** True when some cached byte falls in [offset, offset+len). */
  overlaps(offset: number, len: number): boolean {
    return this.cached.intersects(offset, offset + len);
  }

  /**
   * Write everything dirty, commit, and repeat until nothing is left
   * uncommitted (a COMMIT with a new verifier sends the data again).
   */
  async sync(): Promise<void> {
    this.syncing++;
    try {
      for (;;) {
        await this.flush();
        if (!this.dirty.isEmpty) continue;
        if (this.commits.size > 0) {
          await Promise.all([...this.commits]);
          continue;
        }
        if (!this.owesCommit) return;
        await this.commit();
      }
    } finally {
      this.syncing--;
    }
  }

  /** Hand every dirty byte to a WRITE and wait for those WRITEs. */
  async flush(): Promise<void> {
    await this.kick(true);
    if (this.inflight.size > 0) await Promise.all([...this.inflight]);
  }

  /** One round of background writeback: write what is dirty, then commit. */
  async writebackOnce(): Promise<void> {
    await this.flush();
    if (this.commits.size > 0) await Promise.all([...this.commits]);
    else if (this.unstable.size > 0) await this.commit();
  }

  private get owesCommit(): boolean {
    return this.unstable.size > 0 || this.hostCachedUncommitted;
  }

  /** COMMIT the whole file; ranges written under another verifier become dirty again. */
  async commit(): Promise<void> {
    if (!this.owesCommit) return;
    const ids = [...this.unstable.keys()];
    this.hostCachedUncommitted = false;
    const p = this.doCommit(ids);
    this.commits.add(p);
    try {
      await p;
    } finally {
      this.commits.delete(p);
    }
    this.maybeCommit();
  }

  private async doCommit(ids: number[]): Promise<void> {
    let verf: Buffer;
    try {
      const res = await this.host.transportFor(this.fh).commit(this.fh, 0, 0);
      this.host.counters.commits++;
      this.host.noteWcc(this.fh, res.wcc);
      verf = res.verf;
    } catch (err) {
      this.recordError(err);
      for (const id of ids) this.dropRecord(id, false);
      this.hostCachedUncommitted = true;
      return;
    }
    let mismatch = false;
    for (const id of ids) {
      const rec = this.unstable.get(id);
      if (!rec) continue;
      const again = !rec.verf.equals(verf);
      if (again) {
        mismatch = true;
        this.host.counters.commitResends++;
        this.host.counters.commitResentBytes += rec.e - rec.s;
      }
      this.dropRecord(id, again);
    }
    if (mismatch) this.host.counters.verifierMismatches++;
  }

  private dropRecord(id: number, redirty: boolean): void {
    const rec = this.unstable.get(id);
    if (!rec) return;
    this.unstable.delete(id);
    this.unstableBytes -= rec.e - rec.s;
    this.forEachPage(rec.s, rec.e, (idx) => {
      const n = (this.unstableRefs.get(idx) ?? 1) - 1;
      if (n > 0) this.unstableRefs.set(idx, n);
      else this.unstableRefs.delete(idx);
    });
    if (redirty) this.dirty.add(rec.s, rec.e);
    this.release(rec.s, rec.e);
  }

  /** Send the chunk at `c` (a multiple of chunkSize) if it is all dirty and not in flight. */
  private sendIfFull(c: number): boolean {
    const cs = this.host.chunkSize;
    if (!this.dirty.covers(c, c + cs) || this.writing.intersects(c, c + cs)) return false;
    this.fullHint = Math.min(this.fullHint, c);
    void this.kick(false).catch(() => undefined);
    return true;
  }

  private afterWrite(lo: number, hi: number): void {
    const cs = this.host.chunkSize;
    // The chunks at the edges of this write may have been completed by it.
    const first = Math.floor(lo / cs) * cs;
    const last = Math.floor((hi - 1) / cs) * cs;
    this.sendIfFull(first);
    if (last !== first) this.sendIfFull(last);
    if (!this.timer && this.host.writebackDelayMs > 0) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        if (!this.dirty.isEmpty || this.unstable.size > 0) void this.writebackOnce().catch(() => undefined);
      }, this.host.writebackDelayMs);
      this.timer.unref();
    }
  }

  /** Start (or extend) the pump: `all` sends partial chunks too. Resolves when a pass found nothing more to send. */
  private kick(all: boolean): Promise<void> {
    if (all) this.loopAll = true;
    this.rescan = true;
    if (!this.running) {
      this.running = true;
      this.loopDone = this.runLoop();
    }
    return this.loopDone;
  }

  private async runLoop(): Promise<void> {
    try {
      while (this.rescan) {
        this.rescan = false;
        let cursor = this.loopAll ? 0 : Math.min(this.fullHint, Number.MAX_SAFE_INTEGER);
        this.fullHint = Infinity;
        for (;;) {
          let chunk = this.nextChunk(cursor, this.loopAll);
          if (!chunk) break;
          if (!this.host.writeSlots.tryAcquire()) {
            await this.host.writeSlots.acquire();
            chunk = this.nextChunk(cursor, this.loopAll); // things moved while we waited
            if (!chunk) {
              this.host.writeSlots.release();
              break;
            }
          }
          this.issue(chunk[0], chunk[1], this.stableFor(chunk[0], chunk[1]));
          cursor = chunk[1];
        }
      }
    } finally {
      // No await between the last check of `rescan` and here: a kick() either
      // saw `running` true before the check, or starts a new loop.
      this.running = false;
      this.loopAll = false;
    }
  }

  /** A sync that flushes everything in one WRITE asks for FILE_SYNC and needs no COMMIT. */
  private stableFor(s: number, e: number): StableHow {
    const everything = this.dirty.size === e - s; // [s, e) is all that is dirty
    if (this.syncing > 0 && everything && !this.owesCommit && this.inflight.size === 0 && this.commits.size === 0) return stable_how.FILE_SYNC;
    return stable_how.UNSTABLE;
  }

  /** The next range to WRITE at or after `cursor`, or undefined. */
  private nextChunk(cursor: number, all: boolean): [number, number] | undefined {
    const cs = this.host.chunkSize;
    let c = cursor;
    for (;;) {
      const r = this.dirty.firstIn(c, Number.MAX_SAFE_INTEGER);
      if (!r) return undefined;
      const [s, e] = r;
      let x = s;
      while (x < e) {
        const xe = all && e - x <= cs ? e : Math.min(e, Math.floor(x / cs) * cs + cs);
        if ((all || xe - x === cs) && !this.writing.intersects(x, xe)) return [x, xe];
        x = xe;
      }
      c = e;
    }
  }

  private issue(s: number, e: number, stable: StableHow): void {
    let pieces: Buffer[];
    try {
      pieces = this.pieces(s, e);
    } catch (err) {
      this.host.writeSlots.release();
      this.dirty.remove(s, e);
      this.recordError(err);
      this.release(s, e);
      return;
    }
    this.dirty.remove(s, e);
    this.writing.add(s, e);
    let p!: Promise<void>;
    const done = (): void => {
      this.host.writeSlots.release();
      this.inflight.delete(p);
      if (this.inflight.size === 0) this.maybeCommit();
      if (this.dirty.intersects(s, e) || (!this.dirty.isEmpty && this.syncing > 0)) {
        // Bytes that waited for this WRITE may go now.
        const cs = this.host.chunkSize;
        this.fullHint = Math.min(this.fullHint, Math.floor(s / cs) * cs);
        void this.kick(this.syncing > 0).catch(() => undefined);
      }
    };
    p = this.host
      .transportFor(this.fh)
      .write(this.fh, s, pieces, e - s, stable)
      .then(
        (res) => this.written(s, e, res),
        (err) => this.failed(s, e, err),
      )
      .finally(done);
    this.inflight.add(p);
  }

  private written(s: number, e: number, res: WriteResult): void {
    const c = this.host.counters;
    this.writing.remove(s, e);
    c.writes++;
    this.host.noteWcc(this.fh, res.wcc);
    const n = res.count;
    if (n <= 0) {
      this.recordError(Object.assign(new Error('server wrote 0 bytes'), { code: 'EIO' }));
      this.release(s, e);
      return;
    }
    c.bytesWritten += n;
    this.host.dataWritten(this.fh, s, s + n);
    if (n < e - s) {
      c.shortWrites++;
      this.dirty.add(s + n, e);
    }
    if (res.committed === stable_how.UNSTABLE && res.hostCached) {
      this.hostCachedUncommitted = true;
    } else if (res.committed === stable_how.UNSTABLE) {
      const id = this.nextRecord++;
      this.unstable.set(id, { s, e: s + n, verf: res.verf });
      this.unstableBytes += n;
      this.forEachPage(s, s + n, (idx) => this.unstableRefs.set(idx, (this.unstableRefs.get(idx) ?? 0) + 1));
      this.maybeCommit();
    } else {
      c.stableWrites++;
    }
    this.release(s, e);
  }

  private failed(s: number, e: number, err: unknown): void {
    this.writing.remove(s, e);
    this.recordError(err);
    this.release(s, e);
  }

  private recordError(err: unknown): void {
    this.errSeq++;
    this.lastError = err;
    this.host.counters.errors++;
  }

  /** The page slices holding [s, e). */
  private pieces(s: number, e: number): Buffer[] {
    const out: Buffer[] = [];
    const P = this.P;
    let pos = s;
    while (pos < e) {
      const idx = Math.floor(pos / P);
      const inPage = pos - idx * P;
      const n = Math.min(P - inPage, e - pos);
      const page = this.pages.get(idx);
      if (!page) throw new Error(`write-back cache lost page ${idx}`);
      out.push(page.subarray(inPage, inPage + n));
      pos += n;
    }
    return out;
  }

  private forEachPage(s: number, e: number, fn: (idx: number) => void): void {
    if (e <= s) return;
    const last = Math.floor((e - 1) / this.P);
    for (let idx = Math.floor(s / this.P); idx <= last; idx++) fn(idx);
  }

  /** Free the pages of [s, e) that nothing holds any more. */
  private release(s: number, e: number): void {
    const P = this.P;
    this.forEachPage(s, e, (idx) => {
      if (!this.pages.has(idx) || this.unstableRefs.has(idx)) return;
      const ps = idx * P;
      const pe = ps + P;
      if (this.dirty.intersects(ps, pe) || this.writing.intersects(ps, pe)) return;
      const page = this.pages.get(idx)!;
      this.pages.delete(idx);
      this.cached.remove(ps, pe);
      // Pooled before the release, which may hand the memory to a waiting writer at once.
      this.host.pages.give(page);
      this.host.accountant.release(P);
      this.releaseLog.push({ gen: ++this.releaseGen, end: pe });
      if (this.releaseLog.length > 64) this.releaseLog.shift();
    });
  }

  /** Stop the timer (the file is being dropped). Data still cached stays charged until written. */
  dispose(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
