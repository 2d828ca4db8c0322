// The IO seam of the LOCALIO data path: positioned reads and writes and
// syncs on a granted descriptor. Two implementations:
//
//   EngineIo  the IoEngine of src/native (the addon's dedicated threads, or
//             its fs fallback): what LOCALIO uses by default
//   FsIo      plain node:fs (fs.read / fs.writev / fs.fsync on the libuv
//             threadpool)
//
// Both write every byte or fail; a failure after some bytes landed reports
// them (`bytesDone`), so the caller can answer a short write.
//
// Where the time goes: a 4 KiB read of a cached page is about a microsecond
// of kernel work, but reaching an IO thread and coming back costs 25-30 µs
// on a small VM, and bounds one reader at a time (plain fs.read as much as
// this). So EngineIo first tries a read on the event loop's own thread with
// preadv2(RWF_NOWAIT) (readNowait): served from the page cache, or refused
// at once (EAGAIN) where a page is not cached; only then, and for what is
// left, does it go to the engine's threads. Anything that can block (a
// cache miss, O_DIRECT, writes, syncs) still runs on the dedicated pool.

import fs from 'node:fs';
import { IoEngine, MAX_IOV, readNowait, readNowaitBuffered, nowaitReadAvailable, type IoCallback, type IoError, type IoFlags, type IoRequest } from '../native/index.js';

export type SyncKind = 'none' | 'data' | 'file';

export interface LocalIo {
  readonly kind: string;
  /** One read of at most `len` bytes at `pos` into `buf` at `off`; fewer only at the end of the file. */
  read(fd: number, buf: Buffer, off: number, len: number, pos: number, buffered?: boolean): Promise<number>;
  /**
   * Optional: the same read done at once from the page cache, on the calling
   * thread, of a descriptor known to have O_DIRECT off; undefined (nothing
   * to rely on in `buf`) when some of it is not cached: use read().
   */
  readCached?(fd: number, buf: Buffer, off: number, len: number, pos: number): number | undefined;
  /**
   * Writes the concatenation of `pieces` at `pos`, then syncs as asked
   * ('data': fdatasync, 'file': fsync). Rejects with an error carrying
   * `bytesDone` when only a prefix was written.
   */
  write(fd: number, pieces: readonly Buffer[], pos: number, sync: SyncKind): Promise<number>;
  /** fdatasync (`data`) or fsync. */
  sync(fd: number, data: boolean): Promise<void>;
  close(): Promise<void>;
}

function withDone(err: unknown, done: number): Error {
  const e = (err instanceof Error ? err : new Error(String(err))) as IoError;
  e.bytesDone = done;
  return e;
}

/** node:fs on the libuv threadpool. */
export class FsIo implements LocalIo {
  readonly kind = 'fs';

  read(fd: number, buf: Buffer, off: number, len: number, pos: number): Promise<number> {
    return new Promise((resolve, reject) => {
      fs.read(fd, buf, off, len, pos, (err, n) => (err ? reject(err) : resolve(n)));
    });
  }

  async write(fd: number, pieces: readonly Buffer[], pos: number, sync: SyncKind): Promise<number> {
    let rest = pieces.filter((p) => p.length > 0);
    let done = 0;
    while (rest.length > 0) {
      let n: number;
      try {
        n = await new Promise<number>((resolve, reject) => {
          fs.writev(fd, rest, pos + done, (err, written) => (err ? reject(err) : resolve(written)));
        });
      } catch (err) {
        throw withDone(err, done);
      }
      if (n === 0) throw withDone(Object.assign(new Error('EIO: no progress, write'), { code: 'EIO' }), done);
      done += n;
      // Drop what was written; keep the tail of a piece written in part.
      while (n > 0 && rest.length > 0) {
        const first = rest[0]!;
        if (n >= first.length) {
          n -= first.length;
          rest = rest.slice(1);
        } else {
          rest = [first.subarray(n), ...rest.slice(1)];
          n = 0;
        }
      }
    }
    if (sync !== 'none') {
      try {
        await this.sync(fd, sync === 'data');
      } catch (err) {
        // The bytes are there, but not durable as asked: the write failed.
        throw withDone(err, 0);
      }
    }
    return done;
  }

  sync(fd: number, data: boolean): Promise<void> {
    return new Promise((resolve, reject) => {
      (data ? fs.fdatasync : fs.fsync)(fd, (err) => (err ? reject(err) : resolve()));
    });
  }

  async close(): Promise<void> {}
}

interface Plugged {
  req: IoRequest;
  cb: IoCallback;
}

export interface EngineIoOptions {
  /** Try reads from the page cache on the event loop first (default: where the addon can). */
  nowaitReads?: boolean;
  /**
   * The largest read tried that way (default 1 MiB): a cached read holds
   * the event loop for its copy, about 10 GB/s here (100 µs per MiB).
   */
  nowaitMaxBytes?: number;
}

/** How EngineIo's reads went. */
export interface EngineIoStats {
  /** Reads served whole from the page cache on the event loop. */
  cachedReads: number;
  /** Reads (or their uncached rest) that went to the engine's threads. */
  engineReads: number;
}

/**
 * The IoEngine: dedicated threads (native) with completions batched back to
 * JS. A write's pieces go in as one gathered write (pwritev2 of them all),
 * and the sync, when asked, follows once it is done.
 *
 * Reads try the page cache first (readNowait, above). Those that go to the
 * engine are plugged: those asked for in one turn of the event loop (the
 * readers a completion batch woke up ask for their next reads together) go
 * to the engine at the end of that turn with one wake-up of its workers,
 * instead of one wake-up (a futex call) each.
 */
export class EngineIo implements LocalIo {
  readonly kind: string;
  private plugged: Plugged[] = [];
  private readonly nowait: boolean;
  private readonly nowaitMax: number;
  private readonly counts: EngineIoStats = { cachedReads: 0, engineReads: 0 };
  private readonly unplug = (): void => {
    const batch = this.plugged;
    this.plugged = [];
    const last = batch.length - 1;
    for (let i = 0; i <= last; i++) this.engine.enqueue(batch[i]!.req, batch[i]!.cb, i === last);
  };

  constructor(
    readonly engine: IoEngine,
    opts: EngineIoOptions = {},
  ) {
    this.kind = `engine-${engine.backend}`;
    this.nowait = (opts.nowaitReads ?? true) && nowaitReadAvailable && engine.backend === 'native';
    this.nowaitMax = opts.nowaitMaxBytes ?? 1024 * 1024;
  }

  /**
   * `buffered`: the caller knows O_DIRECT is off on `fd` (it owns the
   * descriptor's flags), so the page-cache attempt skips checking it.
   */
  read(fd: number, buf: Buffer, off: number, len: number, pos: number, buffered = false): Promise<number> {
    const cached = this.fromCache(fd, buf, off, len, pos, buffered);
    if (cached >= 0) return Promise.resolve(cached);
    const done = -1 - cached;
    this.counts.engineReads++;
    const rest = new Promise<number>((resolve, reject) => {
      if (this.plugged.length === 0) process.nextTick(this.unplug);
      this.plugged.push({
        req: { op: 'read', fd, buffer: buf, offset: off + done, length: len - done, position: pos + done },
        cb: (err, n) => (err ? reject(err) : resolve(n)),
      });
    });
    return done === 0 ? rest : rest.then((n) => done + n);
  }

  readCached(fd: number, buf: Buffer, off: number, len: number, pos: number): number | undefined {
    const n = this.fromCache(fd, buf, off, len, pos, true);
    return n >= 0 ? n : undefined;
  }

  /**
   * Reads from the page cache on this thread: the bytes read when that was
   * all of them (or up to the end of the file), else -1 - the bytes read
   * before the first page not cached (the rest goes to the engine).
   */
  private fromCache(fd: number, buf: Buffer, off: number, len: number, pos: number, buffered: boolean): number {
    // (Arguments out of the buffer's bounds go to the engine, which rejects them.)
    if (!this.nowait || len <= 0 || len > this.nowaitMax || off < 0 || off + len > buf.length) return -1;
    const nowait = buffered ? readNowaitBuffered : readNowait;
    let done = 0;
    // A short answer is the end of the file or the first page not cached:
    // ask again for the rest (0 at the end of the file, undefined if not cached).
    for (;;) {
      const n = nowait(fd, buf, off + done, len - done, pos + done);
      if (n === undefined) return -1 - done;
      done += n;
      if (n === 0 || done === len) {
        this.counts.cachedReads++;
        return done;
      }
    }
  }

  stats(): EngineIoStats {
    return { ...this.counts };
  }

  async write(fd: number, pieces: readonly Buffer[], pos: number, sync: SyncKind): Promise<number> {
    const done = await writeGathered(this.engine, fd, pieces, pos, undefined);
    if (sync !== 'none') {
      try {
        await this.sync(fd, sync === 'data');
      } catch (err) {
        throw withDone(err, 0);
      }
    }
    return done;
  }

  async sync(fd: number, data: boolean): Promise<void> {
    await this.engine.run({ op: data ? 'fdatasync' : 'fsync', fd });
  }

  close(): Promise<void> {
    return this.engine.close();
  }
}

/**
 * Writes the concatenation of `pieces` at `pos` as gathered writes of at
 * most MAX_IOV buffers each (one pwritev2 per MAX_IOV pieces, not one per
 * piece); every byte, or an error carrying `bytesDone` (the prefix that
 * landed: the writes before the first failed one, plus what it got done).
 */
export async function writeGathered(engine: IoEngine, fd: number, pieces: readonly Buffer[], pos: number, flags: IoFlags | undefined): Promise<number> {
  const reqs: IoRequest[] = [];
  const lengths: number[] = [];
  let at = pos;
  for (let i = 0; i < pieces.length; i += MAX_IOV) {
    const buffers = pieces.slice(i, i + MAX_IOV);
    let n = 0;
    for (const b of buffers) n += b.length;
    if (n === 0) continue;
    reqs.push({ op: 'write', fd, buffers, position: at, flags });
    lengths.push(n);
    at += n;
  }
  if (reqs.length === 0) return 0;
  if (reqs.length === 1) return engine.run(reqs[0]!);
  const results = await Promise.allSettled(engine.submit(reqs));
  let done = 0;
  for (let i = 0; i < results.length; i++) {
    const r = results[i]!;
    if (r.status === 'fulfilled') {
      done += lengths[i]!;
      continue;
    }
    const err = r.reason as IoError;
    throw withDone(err, done + (err.bytesDone ?? 0));
  }
  return done;
}

/** The engine LOCALIO shares (and its benchmark measures). */
export const SHARED_ENGINE = { threads: 4, maxThreads: 32, queueDepth: 128 } as const;

let shared: LocalIo | undefined;

/**
 * The IO path every LOCALIO client of this process shares: the IoEngine
 * (4 threads, growing to 32 while requests wait, as an O_DIRECT write
 * needs a worker per request in flight; 128 requests deep), or plain fs with
 * TSNFS_LOCALIO_IO=fs.
 * It never keeps the event loop alive while idle.
 */
export function sharedLocalIo(): LocalIo {
  if (!shared) {
    shared = process.env['TSNFS_LOCALIO_IO'] === 'fs' ? new FsIo() : new EngineIo(new IoEngine(SHARED_ENGINE));
  }
  return shared;
}

/** Replace the shared IO path (benchmarks, tests, or the IO engine of a later issue). */
export function setSharedLocalIo(io: LocalIo): LocalIo | undefined {
  const prev = shared;
  shared = io;
  return prev;
}
