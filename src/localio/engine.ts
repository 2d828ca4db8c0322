// The LOCALIO IO engine, client side: how reads and writes on a granted
// descriptor use the page cache, per direction, as nfsd's io_cache_read and
// io_cache_write:
//
//   buffered   pread/pwrite through the page cache (LocalIo: the IoEngine's
//              threads, with cached reads served on the event loop)
//   dontcache  preadv2/pwritev2 with RWF_DONTCACHE (Linux 6.14+): buffered,
//              but the pages are dropped once read or written back, so
//              streaming IO does not evict everything else. Where the file
//              system or kernel refuses it (ENOTSUP, learned once per
//              grant) the IO goes buffered and is counted as a fallback.
//   direct     O_DIRECT on a second grant of the same file (each grant is a
//              new open file description, so O_DIRECT on it leaves the
//              plain grant buffered). Alignment comes from statx
//              STATX_DIOALIGN (and STATX_DIO_READ_ALIGN), learned once per
//              grant. Reads are widened to aligned bounds into a bounce
//              buffer and trimmed (align.ts), or land in the caller's
//              memory when it is aligned; writes are split into a buffered
//              head, a direct middle and a buffered tail, in file order.
//              The middle goes out from the write-back cache's pages
//              themselves (allocated aligned) as one gathered write when
//              they follow the memory rules, through a bounce buffer
//              otherwise.
//              A write too small for one aligned block, memory that cannot
//              be aligned, or a file system without direct IO (tmpfs) goes
//              buffered. Misalignment never fails a request.
//
// Defaults (measured with `tsnfs bench`; figures in the README's "Cache
// modes"): reads buffered, since a read the page cache answers costs a copy
// while dontcache and direct reads always wait for the device (7 to 19
// times slower here); writes buffered, as nfsd's: the measurements did not
// decide (streaming direct writes came out ahead at the median, inside a
// wide run-to-run spread), buffered needs no bounce copy nor second
// descriptor, and data just written stays cached for its readers.
//
// Memory: the bounce buffers of direct IO come from an AlignedBufferPool
// made when the engine starts; under pressure IO waits for a buffer (FIFO)
// and never allocates.
//
// Stable writes keep stable_how in every mode: the parts are written, then
// fdatasync (DATA_SYNC) or fsync (FILE_SYNC) before the write answers; a
// write that is one direct IO asks RWF_DSYNC / RWF_SYNC of that IO instead.
// Short IO: a short read answers what was read; a write is continued until
// every byte is written (by the IoEngine), and a failure reports the prefix
// that landed (`bytesDone`), never the whole.
//
// Throttling (the loop device's PF_LOCAL_THROTTLE rule): application
// writers wait at the client's dirty limit (DirtyAccountant, in the
// write-back cache); the writes and commits this engine carries are that
// cache's writeback and never reserve dirty memory, so they always drain.
// They wait only for bounce buffers and for the gate below, which IO in
// flight releases by completing. The IoEngine's threads run as IO flushers
// (PR_SET_IO_FLUSHER: PF_LOCAL_THROTTLE | PF_MEMALLOC_NOIO) where allowed.
//
// Direct and buffered writes of one file never run at the same time (a
// KindGate per grant): a direct write flushes and drops the page-cache pages
// it covers, and a buffered write in flight on a page it shares (or a large
// folio around it) could bring stale bytes back over it.

import { EngineIo, writeGathered, type LocalIo, type SyncKind } from './io.js';
import { isAligned, isUnsupported, statxDioAlign, type DioAlign, type IoEngine, type IoError, type IoFlags } from '../native/index.js';
import { alignDown, isAlignedRange, planDirectRead, planDirectWrite } from './align.js';
import { AlignedBufferPool, type BufferPoolStats } from './buffer-pool.js';

export type CacheMode = 'buffered' | 'dontcache' | 'direct';

export const CACHE_MODES: readonly CacheMode[] = ['buffered', 'dontcache', 'direct'];

/** Reads: buffered (page-cache hits are a copy; see the measurements above). */
export const DEFAULT_READ_MODE: CacheMode = 'buffered';
/** Writes: buffered (the write-back cache already sends large WRITEs; COMMIT syncs). */
export const DEFAULT_WRITE_MODE: CacheMode = 'buffered';

export function isCacheMode(v: unknown): v is CacheMode {
  return v === 'buffered' || v === 'dontcache' || v === 'direct';
}

/** A cache mode from text; throws TypeError naming `what` otherwise. */
export function parseCacheMode(v: string, what: string): CacheMode {
  if (isCacheMode(v)) return v;
  throw new TypeError(`${what}: '${v}' is not a cache mode (buffered, dontcache or direct)`);
}

/** Bounce buffers: one max-size IO, widened by one block of 4 KiB at each end. */
export function bounceBufferSize(maxIoBytes: number): number {
  return Math.ceil(Math.max(maxIoBytes, 4096) / 4096) * 4096 + 8192;
}

/** Alignment of the pool's buffers: enough for the memory rules of every common device. */
export const POOL_ALIGN = 4096;

/** Default pool: eight max-size IOs. */
export const DEFAULT_POOL_BUFFERS = 8;

// ---------------------------------------------------------------- per file

/** A descriptor opened with O_DIRECT, held for one IO. */
export interface DirectDescriptor {
  readonly fd: number;
  release(): void;
}

const KIND_BUFFERED = 0;
const KIND_DIRECT = 1;

/**
 * Lets any number of IOs of one kind run together, never both kinds at
 * once; waiters go in arrival order.
 */
export class KindGate {
  private readonly active = [0, 0];
  private readonly queue: { kind: number; resolve: () => void }[] = [];

  enter(kind: number): Promise<void> | undefined {
    if (this.queue.length === 0 && this.active[1 - kind] === 0) {
      this.active[kind]!++;
      return undefined;
    }
    return new Promise((resolve) => this.queue.push({ kind, resolve }));
  }

  leave(kind: number): void {
    this.active[kind]!--;
    while (this.queue.length > 0 && this.active[1 - this.queue[0]!.kind] === 0) {
      const w = this.queue.shift()!;
      this.active[w.kind]!++;
      w.resolve();
    }
  }
}

const NO_DIO: DioAlign = Object.freeze({ memAlign: 0, offsetAlign: 0, readOffsetAlign: 0 });

/** What the engine knows about one granted descriptor. */
export class GrantedFile {
  /** RWF_DONTCACHE works here, until the file system says ENOTSUP. */
  dontcache = true;
  /** O_DIRECT works here, until it is refused. */
  direct = true;
  readonly gate = new KindGate();
  private align: DioAlign | undefined;

  constructor(
    /** The plain (buffered) descriptor. */
    readonly fd: number,
    /** A second descriptor of the file with O_DIRECT, acquired; undefined when there is none to be had. */
    readonly openDirect: () => Promise<DirectDescriptor | undefined>,
  ) {}

  /** Direct-IO alignment, from statx once (zeros: no direct IO here). */
  dio(): DioAlign {
    if (!this.align) {
      try {
        this.align = statxDioAlign(this.fd);
      } catch {
        this.align = NO_DIO;
      }
    }
    return this.align;
  }
}

// ---------------------------------------------------------------- counters

export interface ModeCounters {
  reads: number;
  readBytes: number;
  writes: number;
  writeBytes: number;
}

export interface EngineFallbacks {
  /** dontcache asked, RWF_DONTCACHE refused (kernel, file system, or no native engine). */
  dontcacheUnsupported: number;
  /** direct asked on a file system without direct IO (STATX_DIOALIGN zero: tmpfs, no addon). */
  noDirectIo: number;
  /** direct asked for a write with no whole aligned block in it. */
  tooSmall: number;
  /** direct asked, but no aligned memory to do it with (no pool, alignment beyond the pool's). */
  unalignedMemory: number;
  /** direct asked, but O_DIRECT was refused (the second grant, fcntl, or EINVAL from the IO). */
  directRefused: number;
}

/** The `io` object of LOCALIO's stats: how reads and writes used the page cache. */
export interface LocalioEngineStats {
  readMode: CacheMode;
  writeMode: CacheMode;
  /** Each read and write is counted once, under the mode it was done in (fallbacks under buffered). */
  buffered: ModeCounters;
  dontcache: ModeCounters;
  /** Whole direct IO (reads widened to aligned bounds included). */
  direct: ModeCounters;
  /** Direct-mode writes split into a buffered head and/or tail around a direct middle. */
  split: { writes: number; writeBytes: number; bufferedBytes: number };
  /** Direct reads widened to aligned bounds, and direct IO done through a bounce buffer. */
  widened: number;
  bounced: number;
  fallbacks: EngineFallbacks;
  /** Reads and writes in the engine now, and the most at once. */
  queueDepth: number;
  maxQueueDepth: number;
  /** The bounce-buffer pool (direct mode). */
  pool?: BufferPoolStats;
}

function modeCounters(): ModeCounters {
  return { reads: 0, readBytes: 0, writes: 0, writeBytes: 0 };
}

function newFallbacks(): EngineFallbacks {
  return { dontcacheUnsupported: 0, noDirectIo: 0, tooSmall: 0, unalignedMemory: 0, directRefused: 0 };
}

/** Stats of an engine that has not started (no IO yet). */
export function idleEngineStats(readMode: CacheMode, writeMode: CacheMode): LocalioEngineStats {
  return {
    readMode,
    writeMode,
    buffered: modeCounters(),
    dontcache: modeCounters(),
    direct: modeCounters(),
    split: { writes: 0, writeBytes: 0, bufferedBytes: 0 },
    widened: 0,
    bounced: 0,
    fallbacks: newFallbacks(),
    queueDepth: 0,
    maxQueueDepth: 0,
  };
}

// ---------------------------------------------------------------- helpers

function withDone(err: unknown, done: number): IoError {
  const e = (err instanceof Error ? err : new Error(String(err))) as IoError;
  e.bytesDone = done;
  return e;
}

function bytesDoneOf(err: unknown): number {
  return (err as IoError | null)?.bytesDone ?? 0;
}

/** EINVAL with nothing written: O_DIRECT refused this IO (alignment rules we were not told). */
function directRefusal(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | null)?.code === 'EINVAL' && bytesDoneOf(err) === 0;
}

/** Views of bytes [from, from+len) of the concatenation of `pieces`. */
export function slicePieces(pieces: readonly Buffer[], from: number, len: number): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  const end = from + len;
  for (const p of pieces) {
    const pEnd = at + p.length;
    if (pEnd > from && at < end) out.push(p.subarray(Math.max(0, from - at), Math.min(p.length, end - at)));
    at = pEnd;
    if (at >= end) break;
  }
  return out;
}

/** Copies bytes [from, from+len) of the concatenation of `pieces` to `dst` at 0. */
function copyPieces(pieces: readonly Buffer[], from: number, len: number, dst: Buffer): void {
  let o = 0;
  for (const s of slicePieces(pieces, from, len)) o += s.copy(dst, o);
}

/** Whether O_DIRECT can take `slices` as they are: each at an aligned address and of an aligned length. */
function piecesAligned(slices: readonly Buffer[], memAlign: number): boolean {
  if (memAlign === 0) return false;
  for (const s of slices) if (s.length % memAlign !== 0 || isAligned(s, memAlign) !== true) return false;
  return true;
}

function syncFlags(sync: SyncKind): IoFlags | undefined {
  return sync === 'file' ? { sync: true } : sync === 'data' ? { dsync: true } : undefined;
}

// ---------------------------------------------------------------- the engine

export interface LocalioEngineOptions {
  io: LocalIo;
  readMode?: CacheMode;
  writeMode?: CacheMode;
  /** Largest read or write the client makes (rsize/wsize): sizes the bounce buffers. */
  maxIoBytes?: number;
  /** Bytes of bounce buffers made at start when a direction is direct (at least one buffer). */
  poolBytes?: number;
}

export class LocalioEngine {
  readonly readMode: CacheMode;
  readonly writeMode: CacheMode;
  readonly pool: AlignedBufferPool | undefined;
  private readonly io: LocalIo;
  /** The IoEngine under `io`, for per-IO flags (RWF_DONTCACHE, RWF_DSYNC); none under plain fs. */
  private readonly flagged: IoEngine | undefined;
  private readonly counts: Omit<LocalioEngineStats, 'readMode' | 'writeMode' | 'pool' | 'queueDepth' | 'maxQueueDepth'>;
  private depth = 0;
  private maxDepth = 0;

  constructor(o: LocalioEngineOptions) {
    this.io = o.io;
    this.readMode = o.readMode ?? DEFAULT_READ_MODE;
    this.writeMode = o.writeMode ?? DEFAULT_WRITE_MODE;
    this.flagged = o.io instanceof EngineIo ? o.io.engine : undefined;
    const idle = idleEngineStats(this.readMode, this.writeMode);
    this.counts = { buffered: idle.buffered, dontcache: idle.dontcache, direct: idle.direct, split: idle.split, widened: 0, bounced: 0, fallbacks: idle.fallbacks };
    if (this.readMode === 'direct' || this.writeMode === 'direct') {
      const size = bounceBufferSize(o.maxIoBytes ?? 1 << 20);
      this.pool = new AlignedBufferPool(Math.max(size, o.poolBytes ?? DEFAULT_POOL_BUFFERS * size), size, POOL_ALIGN);
    }
  }

  stats(): LocalioEngineStats {
    const c = this.counts;
    const out: LocalioEngineStats = {
      readMode: this.readMode,
      writeMode: this.writeMode,
      buffered: { ...c.buffered },
      dontcache: { ...c.dontcache },
      direct: { ...c.direct },
      split: { ...c.split },
      widened: c.widened,
      bounced: c.bounced,
      fallbacks: { ...c.fallbacks },
      queueDepth: this.depth,
      maxQueueDepth: this.maxDepth,
    };
    if (this.pool) out.pool = this.pool.stats();
    return out;
  }

  private enter(): void {
    if (++this.depth > this.maxDepth) this.maxDepth = this.depth;
  }

  // ---- reads

  /**
   * Reads at most `len` bytes at `pos` into `buf` at `off`; fewer only at
   * the end of the file. `buffered`: the caller knows O_DIRECT is off on
   * `f.fd` (it owns the descriptor's flags).
   */
  async read(f: GrantedFile, buf: Buffer, off: number, len: number, pos: number, buffered = false): Promise<number> {
    this.enter();
    try {
      let n: number | undefined;
      if (len > 0 && this.readMode === 'dontcache') n = await this.readDontcache(f, buf, off, len, pos);
      else if (len > 0 && this.readMode === 'direct') n = await this.readDirect(f, buf, off, len, pos);
      if (n !== undefined) return n;
      n = await this.io.read(f.fd, buf, off, len, pos, buffered);
      this.counts.buffered.reads++;
      this.counts.buffered.readBytes += n;
      return n;
    } finally {
      this.depth--;
    }
  }

  /**
   * The common case done at once: a buffered-mode read served whole from the
   * page cache on this thread, of a descriptor the caller knows has O_DIRECT
   * off. undefined when it cannot be (another read mode, a page not cached):
   * use read(), which does the whole read again.
   */
  readCached(f: GrantedFile, buf: Buffer, off: number, len: number, pos: number): number | undefined {
    if (this.readMode !== 'buffered' || !this.io.readCached) return undefined;
    this.enter();
    try {
      const n = this.io.readCached(f.fd, buf, off, len, pos);
      if (n === undefined) return undefined;
      this.counts.buffered.reads++;
      this.counts.buffered.readBytes += n;
      return n;
    } finally {
      this.depth--;
    }
  }

  private async readDontcache(f: GrantedFile, buf: Buffer, off: number, len: number, pos: number): Promise<number | undefined> {
    const e = this.flagged;
    if (e && f.dontcache) {
      try {
        const n = await e.run({ op: 'read', fd: f.fd, buffer: buf, offset: off, length: len, position: pos, flags: { dontcache: true } });
        this.counts.dontcache.reads++;
        this.counts.dontcache.readBytes += n;
        return n;
      } catch (err) {
        if (!isUnsupported(err)) throw err;
        f.dontcache = false;
      }
    }
    this.counts.fallbacks.dontcacheUnsupported++;
    return undefined;
  }

  /** Bounce buffers of the pool can carry IO of this alignment (memory and offsets). */
  private poolServes(a: DioAlign, offsetAlign: number): boolean {
    const pool = this.pool;
    return !!pool && a.memAlign <= pool.align && pool.bufferSize >= offsetAlign;
  }

  /** The file's O_DIRECT descriptor, or undefined (counted: the server refused it). */
  private async openDirect(f: GrantedFile): Promise<DirectDescriptor | undefined> {
    const d = await f.openDirect();
    if (!d) this.counts.fallbacks.directRefused++;
    return d;
  }

  /** A direct read, or undefined (nothing done: read buffered). */
  private async readDirect(f: GrantedFile, buf: Buffer, off: number, len: number, pos: number): Promise<number | undefined> {
    const fb = this.counts.fallbacks;
    const a = f.dio();
    const align = a.readOffsetAlign || a.offsetAlign;
    if (align === 0) {
      fb.noDirectIo++;
      return undefined;
    }
    if (!f.direct) {
      fb.directRefused++;
      return undefined;
    }
    // The caller's memory as it is, when it already follows the rules.
    const inPlace = isAlignedRange(pos, len, align) && isAligned(buf.subarray(off, off + len), a.memAlign) === true;
    if (!inPlace && !this.poolServes(a, align)) {
      fb.unalignedMemory++;
      return undefined;
    }
    const d = await this.openDirect(f);
    if (!d) return undefined;
    const pool = this.pool;
    try {
      let got = 0;
      if (inPlace) {
        got = await this.io.read(d.fd, buf, off, len, pos);
      } else {
        const steps = planDirectRead(pos, len, align, pool!.bufferSize);
        if (steps.length > 1 || steps[0]!.length !== len) this.counts.widened++;
        for (const st of steps) {
          const b = pool!.tryAcquire() ?? (await pool!.acquire());
          let n: number;
          try {
            n = await this.io.read(d.fd, b, 0, st.length, st.start);
            const useful = Math.max(0, Math.min(n - st.skip, st.take));
            b.copy(buf, off + st.dst, st.skip, st.skip + useful);
            got += useful;
          } finally {
            pool!.release(b);
          }
          this.counts.bounced++;
          if (n < st.length) break; // the end of the file
        }
      }
      this.counts.direct.reads++;
      this.counts.direct.readBytes += got;
      return got;
    } catch (err) {
      if (!directRefusal(err)) throw err;
      f.direct = false;
      fb.directRefused++;
      return undefined;
    } finally {
      d.release();
    }
  }

  /** COMMIT: fsync of the file. */
  sync(fd: number): Promise<void> {
    return this.io.sync(fd, false);
  }

  // ---- writes

  /**
   * Writes the concatenation of `pieces` (`length` bytes) at `pos`, then
   * makes it durable as `sync` asks. Every byte or an error carrying
   * `bytesDone` (the prefix that landed).
   */
  async write(f: GrantedFile, pieces: readonly Buffer[], length: number, pos: number, sync: SyncKind): Promise<number> {
    this.enter();
    try {
      let n: number | undefined;
      if (length > 0 && this.writeMode === 'dontcache') n = await this.writeDontcache(f, pieces, length, pos, sync);
      else if (length > 0 && this.writeMode === 'direct') n = await this.writeDirect(f, pieces, length, pos, sync);
      if (n !== undefined) return n;
      n = await this.gated(f, KIND_BUFFERED, () => this.io.write(f.fd, pieces, pos, sync));
      this.counts.buffered.writes++;
      this.counts.buffered.writeBytes += n;
      return n;
    } finally {
      this.depth--;
    }
  }

  /** Runs `fn` as IO of `kind` on `f`, when direct and buffered writes may meet there (direct write mode). */
  private async gated<T>(f: GrantedFile, kind: number, fn: () => Promise<T>): Promise<T> {
    if (this.writeMode !== 'direct') return fn();
    const wait = f.gate.enter(kind);
    if (wait) await wait;
    try {
      return await fn();
    } finally {
      f.gate.leave(kind);
    }
  }

  private async syncAfter(fd: number, sync: SyncKind): Promise<void> {
    if (sync === 'none') return;
    try {
      await this.io.sync(fd, sync === 'data');
    } catch (err) {
      // The bytes are there, but not durable as asked: the write failed.
      throw withDone(err, 0);
    }
  }

  private async writeDontcache(f: GrantedFile, pieces: readonly Buffer[], length: number, pos: number, sync: SyncKind): Promise<number | undefined> {
    const e = this.flagged;
    if (e && f.dontcache) {
      let n: number | undefined;
      try {
        n = await writeGathered(e, f.fd, pieces, pos, { dontcache: true });
      } catch (err) {
        if (!isUnsupported(err)) throw err;
        // Refused before any IO: the whole write goes buffered.
        f.dontcache = false;
      }
      if (n !== undefined) {
        await this.syncAfter(f.fd, sync);
        this.counts.dontcache.writes++;
        this.counts.dontcache.writeBytes += n;
        return n;
      }
    }
    this.counts.fallbacks.dontcacheUnsupported++;
    return undefined;
  }

  /** A direct (or split) write, or undefined (nothing done: write buffered). */
  private async writeDirect(f: GrantedFile, pieces: readonly Buffer[], length: number, pos: number, sync: SyncKind): Promise<number | undefined> {
    const fb = this.counts.fallbacks;
    const a = f.dio();
    if (a.offsetAlign === 0) {
      fb.noDirectIo++;
      return undefined;
    }
    if (!f.direct) {
      fb.directRefused++;
      return undefined;
    }
    const parts = planDirectWrite(pos, length, a.offsetAlign);
    if (!parts.some((p) => p.direct)) {
      fb.tooSmall++;
      return undefined;
    }
    const pool = this.pool;
    if (!pool || !this.poolServes(a, a.offsetAlign)) {
      fb.unalignedMemory++;
      return undefined;
    }
    const d = await this.openDirect(f);
    if (!d) return undefined;
    const step = alignDown(pool.bufferSize, a.offsetAlign);
    // Write-back pages are allocated aligned: a direct part whose pieces all
    // follow the memory rules goes out from them as one gathered write.
    const inPlace = parts.map((p) => p.direct && piecesAligned(slicePieces(pieces, p.start - pos, p.length), a.memAlign));
    const oneIo = parts.length === 1 && (inPlace[0] || length <= step);
    // One direct IO: RWF_DSYNC / RWF_SYNC on it (a FUA write where the device has it) instead of a separate sync.
    const ioFlags = oneIo && this.flagged ? syncFlags(sync) : undefined;
    let done = 0;
    let bufferedBytes = 0;
    let refused = false;
    try {
      for (const [i, part] of parts.entries()) {
        const rel = part.start - pos;
        if (inPlace[i] && !refused) {
          const slices = slicePieces(pieces, rel, part.length);
          try {
            await this.gated(f, KIND_DIRECT, () =>
              this.flagged ? writeGathered(this.flagged, d.fd, slices, part.start, ioFlags) : this.io.write(d.fd, slices, part.start, 'none'),
            );
            done += part.length;
            continue;
          } catch (err) {
            if (!directRefusal(err)) throw err;
            // O_DIRECT refused after all: this part and the rest go buffered.
            f.direct = false;
            fb.directRefused++;
            refused = true;
          }
        }
        if (!part.direct || refused) {
          await this.gated(f, KIND_BUFFERED, () => this.io.write(f.fd, slicePieces(pieces, rel, part.length), part.start, 'none'));
          done += part.length;
          bufferedBytes += part.length;
          continue;
        }
        for (let s = 0; s < part.length; s += step) {
          const n = Math.min(step, part.length - s);
          const b = pool.tryAcquire() ?? (await pool.acquire());
          try {
            copyPieces(pieces, rel + s, n, b);
            this.counts.bounced++;
            const view = b.subarray(0, n);
            await this.gated(f, KIND_DIRECT, () =>
              this.flagged ? writeGathered(this.flagged, d.fd, [view], part.start + s, ioFlags) : this.io.write(d.fd, [view], part.start + s, 'none'),
            );
          } catch (err) {
            if (!directRefusal(err)) throw err;
            // O_DIRECT refused after all: this block and the rest go buffered.
            f.direct = false;
            fb.directRefused++;
            refused = true;
            const restLen = part.length - s;
            await this.gated(f, KIND_BUFFERED, () => this.io.write(f.fd, slicePieces(pieces, rel + s, restLen), part.start + s, 'none'));
            done += restLen;
            bufferedBytes += restLen;
            break;
          } finally {
            pool.release(b);
          }
          done += n;
        }
      }
    } catch (err) {
      throw withDone(err, done + bytesDoneOf(err));
    } finally {
      d.release();
    }
    if (!ioFlags || refused) await this.syncAfter(f.fd, sync);
    if (bufferedBytes === length) {
      this.counts.buffered.writes++;
      this.counts.buffered.writeBytes += length;
    } else if (bufferedBytes > 0) {
      this.counts.split.writes++;
      this.counts.split.writeBytes += length;
      this.counts.split.bufferedBytes += bufferedBytes;
    } else {
      this.counts.direct.writes++;
      this.counts.direct.writeBytes += length;
    }
    return done;
  }
}
