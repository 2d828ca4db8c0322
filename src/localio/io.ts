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
// this). The next step is a read that skips the thread when it can: preadv2
// with RWF_NOWAIT on the event loop's thread (answers EAGAIN instead of
// waiting when the page is not cached), then the engine only on EAGAIN. That
// needs one more function in the native addon (Node has no preadv2); this
// seam is where it plugs in.

import fs from 'node:fs';
import { IoEngine, type IoCallback, type IoError, type IoRequest } from '../native/index.js';

export type SyncKind = 'none' | 'data' | 'file';

export interface LocalIo {
  readonly kind: string;
  /** One read of at most `len` bytes at `pos` into `buf` at `off`; fewer only at the end of the file. */
  read(fd: number, buf: Buffer, off: number, len: number, pos: number): Promise<number>;
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

/**
 * The IoEngine: dedicated threads (native) with completions batched back to
 * JS. A write's pieces go in together (the engine keeps many in flight) and
 * the sync, when asked, follows once they are all done.
 *
 * Reads are plugged: those asked for in one turn of the event loop (the
 * readers a completion batch woke up ask for their next reads together) go
 * to the engine at the end of that turn with one wake-up of its workers,
 * instead of one wake-up (a futex call) each.
 */
export class EngineIo implements LocalIo {
  readonly kind: string;
  private plugged: Plugged[] = [];
  private readonly unplug = (): void => {
    const batch = this.plugged;
    this.plugged = [];
    const last = batch.length - 1;
    for (let i = 0; i <= last; i++) this.engine.enqueue(batch[i]!.req, batch[i]!.cb, i === last);
  };

  constructor(readonly engine: IoEngine) {
    this.kind = `engine-${engine.backend}`;
  }

  read(fd: number, buf: Buffer, off: number, len: number, pos: number): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      if (this.plugged.length === 0) process.nextTick(this.unplug);
      this.plugged.push({ req: { op: 'read', fd, buffer: buf, offset: off, length: len, position: pos }, cb: (err, n) => (err ? reject(err) : resolve(n)) });
    });
  }

  async write(fd: number, pieces: readonly Buffer[], pos: number, sync: SyncKind): Promise<number> {
    const reqs = [];
    let at = pos;
    for (const p of pieces) {
      if (p.length === 0) continue;
      reqs.push({ op: 'write' as const, fd, buffer: p, position: at });
      at += p.length;
    }
    const results = await Promise.allSettled(this.engine.submit(reqs));
    // A short write is the prefix of pieces written in full, plus what the
    // first failed piece got done; bytes after it are written again later.
    let done = 0;
    for (let i = 0; i < results.length; i++) {
      const r = results[i]!;
      if (r.status === 'fulfilled') {
        done += reqs[i]!.buffer.length;
        continue;
      }
      const err = r.reason as IoError;
      throw withDone(err, done + (err.bytesDone ?? 0));
    }
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

let shared: LocalIo | undefined;

/**
 * The IO path every LOCALIO client of this process shares: the IoEngine
 * (4 threads, 128 requests deep), or plain fs with TSNFS_LOCALIO_IO=fs.
 * It never keeps the event loop alive while idle.
 */
export function sharedLocalIo(): LocalIo {
  if (!shared) {
    shared = process.env['TSNFS_LOCALIO_IO'] === 'fs' ? new FsIo() : new EngineIo(new IoEngine({ threads: 4, queueDepth: 128 }));
  }
  return shared;
}

/** Replace the shared IO path (benchmarks, tests, or the IO engine of a later issue). */
export function setSharedLocalIo(io: LocalIo): LocalIo | undefined {
  const prev = shared;
  shared = io;
  return prev;
}
