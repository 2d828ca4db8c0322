// MetaWorker: creates, removes and closes on a native thread, several system
// calls per job, with one batched completion back to the event loop (see
// metaops.c for the why). Only with the addon: MetaWorker.start() answers
// undefined without it, and callers keep their own path (the local backend
// then makes the same calls one by one through InlineFs).

import { native, type RawMetaHandle } from './loader.js';
import { errnoCode } from './errors.js';

const OP_CREATE = 1;
const OP_REMOVE = 2;
const OP_CLOSE = 3;
const STAT_WORDS = 18;
const STATS_PER_SLOT = 3;
const RES_WORDS = 4;
const NS = 1_000_000_000n;

const S_IFMT = 0o170000n;

/** File attributes as a job saw them, shaped like the parts of fs.BigIntStats a backend reads. */
export class MetaStats {
  readonly dev: bigint;
  readonly mode: bigint;
  readonly nlink: bigint;
  readonly uid: bigint;
  readonly gid: bigint;
  readonly rdev: bigint;
  readonly blksize: bigint;
  readonly ino: bigint;
  readonly size: bigint;
  readonly blocks: bigint;
  readonly atimeNs: bigint;
  readonly mtimeNs: bigint;
  readonly ctimeNs: bigint;
  readonly birthtimeNs: bigint;

  constructor(w: BigInt64Array, o: number) {
    this.dev = w[o]!;
    this.mode = w[o + 1]!;
    this.nlink = w[o + 2]!;
    this.uid = w[o + 3]!;
    this.gid = w[o + 4]!;
    this.rdev = w[o + 5]!;
    this.blksize = w[o + 6]!;
    this.ino = BigInt.asUintN(64, w[o + 7]!);
    this.size = w[o + 8]!;
    this.blocks = w[o + 9]!;
    this.atimeNs = w[o + 10]! * NS + w[o + 11]!;
    this.mtimeNs = w[o + 12]! * NS + w[o + 13]!;
    this.ctimeNs = w[o + 14]! * NS + w[o + 15]!;
    this.birthtimeNs = w[o + 16]! * NS + w[o + 17]!;
  }

  isFile(): boolean {
    return (this.mode & S_IFMT) === 0o100000n;
  }

  isDirectory(): boolean {
    return (this.mode & S_IFMT) === 0o040000n;
  }

  isSymbolicLink(): boolean {
    return (this.mode & S_IFMT) === 0o120000n;
  }
}

/** The directory a job must find at its path before it changes anything. */
export interface DirIdentity {
  dev: bigint;
  ino: bigint;
  /** st_mode, type bits included: permission bits that changed fail the check. */
  mode: bigint;
  uid: bigint;
  gid: bigint;
  birthtimeNs: bigint;
}

export type MetaResult =
  | {
      ok: true;
      /** CREATE: the new descriptor (close-on-exec); REMOVE: 0. */
      fd: number;
      /** The directory just before the change. */
      before: MetaStats;
      /** The new file, or the name removed (as lstat saw it before the unlink). */
      object: MetaStats;
      /** The directory after the change (absent if that lstat failed). */
      after?: MetaStats;
    }
  | {
      ok: false;
      /**
       * `dir`: the path no longer reaches the expected directory (ESTALE), or
       * its lstat failed; `name`: REMOVE's lstat of the name failed, or found
       * a directory (EISDIR) or another file system (EXDEV); `op`: the open
       * or unlink failed. Nothing was changed, except that a create whose
       * fstat failed (stage `op`) leaves its file.
       */
      stage: 'dir' | 'name' | 'op';
      errno: number;
      code: string;
    };

export interface MetaWorkerOptions {
  /** Threads (default 1: jobs in one directory serialize on its lock anyway). */
  threads?: number;
  /** Jobs queued natively at once; more wait in JS (default 1024). */
  depth?: number;
}

/** How long a close may wait for a job to go with before a thread is woken for it (ms). */
const CLOSE_DELAY_MS = 20;
/** Closes that may wait so at once: descriptors held open past their close stay this few. */
export const DEFERRED_CLOSES_MAX = 8;

interface Job {
  op: number;
  dir: string;
  target: string;
  fd: number;
  flags: number;
  mode: number;
  expect?: DirIdentity;
  resolve: (r: MetaResult | undefined) => void;
}

const STAGES = ['op', 'dir', 'name', 'op'] as const;

export class MetaWorker {
  private readonly free: number[] = [];
  private readonly running: (Job | undefined)[];
  private readonly waiting: Job[] = [];
  private inflight = 0;
  private stopped = false;
  private drained?: () => void;
  /** A kick is scheduled for jobs queued since the last one. */
  private kickPending = false;
  private readonly kick = (): void => {
    this.kickPending = false;
    this.deferredCloses = 0;
    native!.metaKick(this.handle);
  };
  /** Closes queued since the last kick. */
  private deferredCloses = 0;
  /** Closes wake no thread: they go with the next job, or after CLOSE_DELAY_MS. */
  private closeTimer: NodeJS.Timeout | undefined;

  private constructor(
    private readonly handle: RawMetaHandle,
    private readonly results: Int32Array,
    private readonly stats: BigInt64Array,
    private readonly done: Uint32Array,
    depth: number,
  ) {
    this.running = new Array<Job | undefined>(depth);
    for (let i = depth - 1; i >= 0; i--) this.free.push(i);
  }

  /** A started worker, or undefined without the addon (or TSNFS_NO_NATIVE=1). */
  static start(opts: MetaWorkerOptions = {}): MetaWorker | undefined {
    const n = native;
    if (!n || typeof n.metaCreate !== 'function') return undefined;
    const depth = opts.depth ?? 1024;
    let w: MetaWorker | undefined;
    const raw = n.metaCreate(opts.threads ?? 1, depth, (count) => w!.onBatch(count));
    w = new MetaWorker(raw.handle, raw.results, raw.stats, raw.done, depth);
    return w;
  }

  /**
   * open(target, flags | O_CLOEXEC, mode) in directory `dir` (the target's
   * parent path), after checking that `dir` still reaches `expect`; then the
   * new file's fstat and the directory's lstat.
   */
  create(dir: string, target: string, flags: number, mode: number, expect: DirIdentity): Promise<MetaResult> {
    return this.queue({ op: OP_CREATE, dir, target, fd: -1, flags, mode, expect }) as Promise<MetaResult>;
  }

  /**
   * unlink(target) after checking that `dir` still reaches `expect` and that
   * target is no directory and on the directory's file system; then the
   * directory's lstat.
   */
  remove(dir: string, target: string, expect: DirIdentity): Promise<MetaResult> {
    return this.queue({ op: OP_REMOVE, dir, target, fd: -1, flags: 0, mode: 0, expect }) as Promise<MetaResult>;
  }

  /** close(fd) on the worker (closing the last reference of a removed file frees it: kernel work). */
  async close(fd: number): Promise<void> {
    const r = await this.queue({ op: OP_CLOSE, dir: '', target: '', fd, flags: 0, mode: 0 });
    if (r && !r.ok) throw Object.assign(new Error(`${r.code}: close`), { code: r.code, errno: r.errno, syscall: 'close' });
  }

  /** Runs what is queued, then stops the threads. Later calls fail with ESHUTDOWN. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.closeTimer);
    this.closeTimer = undefined;
    native!.metaKick(this.handle);
    if (this.inflight > 0 || this.waiting.length > 0) await new Promise<void>((r) => (this.drained = r));
    native!.metaClose(this.handle);
  }

  private queue(job: Omit<Job, 'resolve'>): Promise<MetaResult | undefined> {
    if (this.stopped) return Promise.resolve(failed('op', -108));
    return new Promise((resolve) => {
      const j = { ...job, resolve };
      if (this.free.length === 0) this.waiting.push(j);
      else this.submit(j);
    });
  }

  private submit(j: Job): void {
    const slot = this.free.pop()!;
    if (j.expect) {
      const e = j.expect;
      const w = this.stats;
      const o = slot * STATS_PER_SLOT * STAT_WORDS;
      w[o] = e.dev;
      w[o + 1] = e.mode;
      w[o + 3] = e.uid;
      w[o + 4] = e.gid;
      w[o + 7] = BigInt.asIntN(64, e.ino);
      let s = e.birthtimeNs / NS;
      let ns = e.birthtimeNs % NS;
      if (ns < 0n) {
        ns += NS;
        s -= 1n;
      }
      w[o + 16] = s;
      w[o + 17] = ns;
    }
    let rc: number;
    try {
      // The thread is woken once for the jobs queued in this turn of the
      // event loop (a server queues one per request it read), when the
      // current task's microtasks run.
      rc = native!.metaSubmit(this.handle, slot, j.op, j.dir, j.target, j.fd, j.flags, j.mode, false);
    } catch (err) {
      // A path too long or holding a NUL: what open or unlink would say.
      this.free.push(slot);
      j.resolve(failed('op', (err as { code?: string }).code === 'ERR_OUT_OF_RANGE' ? -36 : -22));
      return;
    }
    if (rc !== 0) {
      this.free.push(slot);
      j.resolve(failed('op', rc));
      return;
    }
    this.running[slot] = j;
    this.inflight++;
    if (j.op === OP_CLOSE && ++this.deferredCloses < DEFERRED_CLOSES_MAX) {
      // Nobody waits for a close (the cache has forgotten the descriptor),
      // and a thread woken for it alone costs the event loop a cross-CPU
      // interrupt: it goes with the next job, or a little later.
      this.closeTimer ??= setTimeout(() => {
        this.closeTimer = undefined;
        this.kick();
      }, CLOSE_DELAY_MS).unref();
    } else if (!this.kickPending) {
      this.kickPending = true;
      queueMicrotask(this.kick);
    }
  }

  private onBatch(count: number): void {
    const res = this.results;
    for (let i = 0; i < count; i++) {
      const slot = this.done[i]!;
      const j = this.running[slot];
      this.running[slot] = undefined;
      if (!j) continue;
      const r = slot * RES_WORDS;
      const result = res[r]!;
      const stage = res[r + 1]!;
      let out: MetaResult | undefined;
      if (j.op === OP_CLOSE) out = result < 0 ? failed('op', result) : undefined;
      else if (stage !== 0) out = failed(STAGES[stage] ?? 'op', result);
      else {
        const o = slot * STATS_PER_SLOT * STAT_WORDS;
        out = {
          ok: true,
          fd: j.op === OP_CREATE ? result : 0,
          before: new MetaStats(this.stats, o),
          object: new MetaStats(this.stats, o + STAT_WORDS),
          ...(res[r + 2] === 0 ? { after: new MetaStats(this.stats, o + 2 * STAT_WORDS) } : {}),
        };
      }
      this.free.push(slot);
      this.inflight--;
      j.resolve(out);
    }
    while (this.waiting.length > 0 && this.free.length > 0) this.submit(this.waiting.shift()!);
    if (this.inflight === 0 && this.waiting.length === 0 && this.drained) {
      const d = this.drained;
      this.drained = undefined;
      d();
    }
  }
}

function failed(stage: 'dir' | 'name' | 'op', errno: number): MetaResult {
  // libuv's table has no ESTALE (116 on Linux).
  return { ok: false, stage, errno, code: errno === -116 ? 'ESTALE' : errnoCode(errno) };
}
