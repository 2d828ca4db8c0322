// File system calls made inline, on the event loop, while they are fast.
//
// Through the libuv threadpool every call is handed to a worker thread and
// back: two thread wake-ups, two context switches, and 10-20 µs of CPU on
// this kind of machine, where an lstat of a cached path or a read of a few
// cached pages takes 1-3 µs. With a metadata load, half of the server's CPU
// went to those hand-offs (kernel scheduler functions topped the profile).
//
// Only calls that touch no more than the kernel's caches are fast, and only
// those may run inline: an lstat whose path is in the dentry and inode
// caches, a small read of pages in the page cache, an open, close, chmod,
// chown or unlink that changes inodes in memory (the journal writes them
// out later). Never a sync, nor a large read or write; nor an open that
// creates a file, which takes 50-100 µs of the kernel's time (allocating the
// inode, inserting the name): like a large read's copy, that is real work,
// better done by a worker thread on the other core while the event loop goes
// on.
//
// A call that has to wait for the device (or is slow for any other reason)
// stalls every connection, so each inline call is timed, and SLOW_CALLS
// calls slower than SLOW_MS within WINDOW_MS send every call to the
// threadpool for BACKOFF_MS. (One slow call alone proves little: a thread
// preempted in the middle of a cached lstat looks slow too, and on a busy
// 2-core machine that happens every few thousand calls.) A cold tree walk
// thus costs a few stalls of one device read now and then, not one per
// call. What this gives up: device reads faster than SLOW_MS (NVMe) run
// inline one at a time, where the threadpool would overlap four.
//
// Inline calls are only for local disk file systems (the caller decides):
// on NFS or FUSE even a cached lstat may wait on the network.

import fs from 'node:fs/promises';
import {
  close as fsClose,
  constants,
  closeSync,
  fchmod as fsFchmod,
  fchmodSync,
  fchown as fsFchown,
  fchownSync,
  open as fsOpen,
  openSync,
  read as fsRead,
  readSync,
  unlink as fsUnlink,
  unlinkSync,
} from 'node:fs';
import { errCode } from './errors.js';
import { lstatFile, tryLstatFile, type FileStat } from './fast-stat.js';
import { hostPath } from './names.js';

const O_CREAT = constants.O_CREAT;

/** Inline calls slower than this (ms) may mean the caches missed. */
export const SLOW_MS = 1;
/** This many slow calls within WINDOW_MS do mean it. */
export const SLOW_CALLS = 3;
export const WINDOW_MS = 1000;
/** How long (ms) calls then go to the threadpool before inline ones are tried again. */
export const BACKOFF_MS = 1000;
/**
 * Creating opens run inline while they average less than this (ms): about
 * what handing a call to a thread and back costs the event loop in wake-ups.
 * A create allocates an inode and inserts a name; on tmpfs or a fresh ext4
 * that takes a few microseconds, but ext4 without a journal steps over every
 * inode freed in the last seconds or minutes, one by one, and there a create
 * takes 20 µs to a millisecond. Such creates go to the threadpool, where
 * they overlap with the event loop, and one in CREATE_PROBE_EVERY runs
 * inline to see whether they got cheap again.
 */
export const CREATE_INLINE_MS = 0.015;
/**
 * An unlink behind a create in flight to the same directory waits for the
 * directory's lock at most as long as that create takes. Below this (ms),
 * waiting costs the event loop less than a trip through the threadpool and
 * back: on a journaled ext4, where a create takes about 20 µs, unlinks that
 * wait inline gave 6% more metadata calls per second and 9% less server CPU
 * per call than unlinks on the threadpool (bench/RESULTS.md).
 */
export const CHANGE_WAIT_MS = 0.05;
export const CREATE_PROBE_EVERY = 64;
/** Reads up to this many bytes may run inline. */
export const INLINE_READ_MAX = 64 * 1024;

export class InlineFs {
  private backoffUntil = 0;
  /** Recent inline creates' duration (ms), a moving average. */
  private createMs = 0;
  /** Creates sent to the threadpool since creates became costly. */
  private createsQueued = 0;
  /** When the recent slow calls happened (at most SLOW_CALLS). */
  private readonly slow: number[] = [];
  /** Inline calls made, and times a slow one sent calls to the threadpool (for tests and diagnostics). */
  readonly counters = { inline: 0, backoffs: 0 };

  /** `now`: a millisecond clock (tests give their own). */
  constructor(
    private readonly enabled: boolean,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Whether calls run inline at the moment. */
  get active(): boolean {
    if (!this.enabled) return false;
    if (this.backoffUntil === 0) return true;
    if (this.now() < this.backoffUntil) return false;
    this.backoffUntil = 0;
    return true;
  }

  lstat(p: string): Promise<FileStat> {
    if (!this.active) return fs.lstat(hostPath(p), { bigint: true });
    const t0 = this.now();
    try {
      return Promise.resolve(lstatFile(hostPath(p)));
    } catch (err) {
      return Promise.reject(err);
    } finally {
      this.timed(t0);
    }
  }

  /** lstat, or undefined where nothing is (ENOENT, ENOTDIR). */
  async tryLstat(p: string): Promise<FileStat | undefined> {
    try {
      // Inline, an absent name costs no exception (a third of the cost of a found one).
      if (this.active) return this.timedSync(() => tryLstatFile(hostPath(p)));
      return await fs.lstat(hostPath(p), { bigint: true });
    } catch (err) {
      const code = errCode(err);
      if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
      throw err;
    }
  }

  /**
   * open(2). One that may create a file (O_CREAT) runs inline only while
   * creates are cheap (see CREATE_INLINE_MS).
   */
  open(p: string, flags: number, mode?: number): Promise<number> {
    if (flags & O_CREAT) return this.create(p, flags, mode);
    return this.call(
      () => openSync(hostPath(p), flags, mode),
      (cb) => fsOpen(hostPath(p), flags, mode, cb),
    );
  }

  private create(p: string, flags: number, mode: number | undefined): Promise<number> {
    if (!this.active || (this.createMs > CREATE_INLINE_MS && ++this.createsQueued % CREATE_PROBE_EVERY !== 0)) {
      return new Promise((resolve, reject) => fsOpen(hostPath(p), flags, mode, (err, fd) => (err ? reject(err) : resolve(fd))));
    }
    const t0 = this.now();
    try {
      return Promise.resolve(openSync(hostPath(p), flags, mode));
    } catch (err) {
      return Promise.reject(err);
    } finally {
      const ms = this.now() - t0;
      // A cheap probe brings creates back at once; costly ones count in the average.
      this.createMs = this.createMs > CREATE_INLINE_MS && ms <= CREATE_INLINE_MS ? ms : this.createMs + (ms - this.createMs) / 4;
      // Only here: a slow create is the file system searching for a free
      // inode, which says nothing of the other calls. Counted among the slow
      // calls, a few millisecond probes would send every lstat to the
      // threadpool, where each costs the event loop more than it does inline.
      this.counters.inline++;
    }
  }

  /** Closes a descriptor; errors (EBADF, EIO) are returned, as by close(2). */
  close(fd: number): Promise<void> {
    return this.call(
      () => closeSync(fd),
      (cb) => fsClose(fd, (err) => cb(err, undefined)),
    );
  }

  fchmod(fd: number, mode: number): Promise<void> {
    return this.call(
      () => fchmodSync(fd, mode),
      (cb) => fsFchmod(fd, mode, (err) => cb(err, undefined)),
    );
  }

  fchown(fd: number, uid: number, gid: number): Promise<void> {
    return this.call(
      () => fchownSync(fd, uid, gid),
      (cb) => fsFchown(fd, uid, gid, (err) => cb(err, undefined)),
    );
  }

  /**
   * unlink(2). `behindChange`: a change to the same directory is in flight
   * (see dir-changes.ts), so the unlink waits for that change's lock; it
   * still runs inline while creates are short (CHANGE_WAIT_MS), and goes to
   * the threadpool when they are not.
   */
  unlink(p: string, behindChange = false): Promise<void> {
    if (behindChange && this.createMs > CHANGE_WAIT_MS) return new Promise((resolve, reject) => fsUnlink(hostPath(p), (err) => (err ? reject(err) : resolve())));
    return this.call(
      () => unlinkSync(hostPath(p)),
      (cb) => fsUnlink(hostPath(p), (err) => cb(err, undefined)),
    );
  }

  /** pread of `n` bytes at `pos` into `buf`: inline when small and calls are fast. */
  read(fd: number, buf: Buffer, n: number, pos: number): Promise<number> {
    if (n > INLINE_READ_MAX || !this.active) {
      return new Promise((resolve, reject) => fsRead(fd, buf, 0, n, pos, (err, bytes) => (err ? reject(err) : resolve(bytes))));
    }
    const t0 = this.now();
    try {
      return Promise.resolve(readSync(fd, buf, 0, n, pos));
    } catch (err) {
      return Promise.reject(err);
    } finally {
      this.timed(t0);
    }
  }

  /** `inline` on the event loop while calls are fast, else `queued` on the threadpool. */
  private call<T>(inline: () => T, queued: (cb: (err: NodeJS.ErrnoException | null, value: T) => void) => void): Promise<T> {
    if (!this.active) return new Promise((resolve, reject) => queued((err, value) => (err ? reject(err) : resolve(value))));
    const t0 = this.now();
    try {
      return Promise.resolve(inline());
    } catch (err) {
      return Promise.reject(err);
    } finally {
      this.timed(t0);
    }
  }

  /** `fn` inline, timed like any inline call. */
  private timedSync<T>(fn: () => T): T {
    const t0 = this.now();
    try {
      return fn();
    } finally {
      this.timed(t0);
    }
  }

  private timed(t0: number): void {
    this.counters.inline++;
    const now = this.now();
    if (now - t0 <= SLOW_MS) return;
    const slow = this.slow;
    slow.push(now);
    if (slow.length > SLOW_CALLS) slow.shift();
    if (slow.length === SLOW_CALLS && now - slow[0]! <= WINDOW_MS) {
      slow.length = 0;
      this.backoffUntil = now + BACKOFF_MS;
      this.counters.backoffs++;
    }
  }
}
