// The LOCALIO IO engine: a queue of reads, writes and syncs on file
// descriptors, run by a dedicated pool.
//
// With the addon ('native' backend) the pool is the addon's own pthreads,
// not the libuv threadpool that DNS, zlib, crypto and every fs call share:
// IO keeps completing while that pool is saturated. Workers run the FIFO
// queue until it is empty (the loop device's model), as IO flushers where
// the process may (PR_SET_IO_FLUSHER). Requests use preadv2/pwritev2 with
// per-IO RWF_DSYNC / RWF_SYNC / RWF_DONTCACHE / RWF_NOWAIT. Completions come
// back to JS in batches: one threadsafe-function call delivers every
// completion present at that moment.
//
// Without the addon ('fallback' backend) the same API runs over fs.read and
// fs.write, on the libuv threadpool: the dedicated-pool property is lost
// (IO waits behind whatever else uses that pool), dsync/sync are emulated
// with fdatasync/fsync after the write, and dontcache/nowait are refused
// with ENOTSUP so the caller takes its buffered path.
//
// Semantics, both backends:
//  - read: one read; a short read is returned as is (bytes read).
//  - write: every byte or an error; short writes are continued inside the
//    engine and never reported complete. A failed write's error carries
//    `bytesDone`, what landed before it failed. A write may gather several
//    buffers (`buffers`): one pwritev2 for all of them (fallback: fs.writev),
//    so cache pages go out without being copied together first.
//  - fsync / fdatasync.
//  - No splitting or realignment: misaligned O_DIRECT fails with EINVAL,
//    for the caller (which knows the alignment from statxDioAlign) to split.
//  - An unsupported flag fails with code ENOTSUP (errno 95, EOPNOTSUPP) and
//    `unsupported: true`; retry without dontcache/nowait.
//  - At most queueDepth requests are in the engine at once; more wait, in
//    order, in a FIFO here. Buffers must stay untouched until completion.

import { allocAligned } from './dio.js';
import { EINVAL, EOPNOTSUPP, ESHUTDOWN, errnoCode, sysError } from './errors.js';
import { native, type NativeAddon, type RawEngineHandle } from './loader.js';
import fs from 'node:fs';

export type IoOp = 'read' | 'write' | 'fsync' | 'fdatasync';

/** Per-IO flags (preadv2/pwritev2 RWF_*). */
export interface IoFlags {
  /** RWF_DSYNC: the write is durable (data and what is needed to read it back) on completion. */
  dsync?: boolean;
  /** RWF_SYNC: as dsync, plus all metadata (FILE_SYNC). */
  sync?: boolean;
  /** RWF_DONTCACHE (Linux 6.14+): buffered IO that drops its pages from the cache afterwards. */
  dontcache?: boolean;
  /** RWF_NOWAIT: fail with EAGAIN rather than block (on page cache misses, allocation...). */
  nowait?: boolean;
}

export interface IoRequest {
  op: IoOp;
  fd: number;
  /** read/write: the memory to read into or write from. */
  buffer?: Uint8Array;
  /**
   * write only, instead of `buffer`: write the concatenation of these (at
   * most MAX_IOV of them, MAX_IO_BYTES in all), as one gathered write.
   */
  buffers?: readonly Uint8Array[];
  /** Where in `buffer` to start (default 0). */
  offset?: number;
  /** Bytes to move (default: the rest of `buffer` after `offset`). */
  length?: number;
  /** read/write: the file offset. */
  position?: number;
  flags?: IoFlags;
}

/** A failed IO: a Node-style system error (code, errno, syscall) plus context. */
export interface IoError extends NodeJS.ErrnoException {
  /** Writes: bytes written before the failure (the request is not complete). */
  bytesDone?: number;
  /** ENOTSUP because of dontcache or nowait: retry without them. */
  unsupported?: boolean;
  fd?: number;
  position?: number;
}

/** Called once per request: an error, or the bytes moved (0 for syncs). */
export type IoCallback = (err: IoError | null, bytes: number) => void;

export interface IoEngineOptions {
  /** Worker threads (native) or concurrent fs calls (fallback). Default 4. */
  threads?: number;
  /**
   * Native: the pool grows up to this many workers while requests wait and
   * every worker is busy (IO that blocks on the device, O_DIRECT above all,
   * needs a worker per request in flight); a worker stays until close().
   * Default: `threads` (no growth). The fallback ignores it.
   */
  maxThreads?: number;
  /** Requests in the engine at once; more wait in a FIFO. Default 128. */
  queueDepth?: number;
  /** 'auto' (default) uses the addon when available. */
  backend?: 'auto' | 'native' | 'fallback';
}

export interface IoEngineStats {
  backend: 'native' | 'fallback';
  /** Workers running now (native: `threads`, more once the pool grew). */
  threads: number;
  /** The most workers the pool may grow to. */
  maxThreads: number;
  queueDepth: number;
  /** Requests accepted. */
  submitted: number;
  /** Requests completed (callback called). */
  completed: number;
  /** Accepted and not yet completed: in the engine or waiting for room. */
  inFlight: number;
  /** Of inFlight, those waiting because queueDepth were already in the engine. */
  waiting: number;
  /** The most requests ever in flight at once. */
  maxQueueDepth: number;
  /** Completion deliveries to JS (native: threadsafe-function calls that carried completions). */
  batches: number;
  /** Completions that were errors. */
  errors: number;
  /** O_DIRECT reads sent to the device with Linux AIO instead of a worker (native). */
  asyncReads: number;
  /** Native workers running as IO flushers (PR_SET_IO_FLUSHER); 0 if refused or fallback. */
  ioFlusherThreads: number;
  /** Why PR_SET_IO_FLUSHER was refused (EPERM without CAP_SYS_RESOURCE), if it was. */
  ioFlusherError?: string;
}

const OP_CODES: Record<IoOp, number> = { read: 0, write: 1, fsync: 2, fdatasync: 3 };
// Linux values; the addon defines them itself where headers lack them.
const RWF_DSYNC = 0x2;
const RWF_SYNC = 0x4;
const RWF_NOWAIT = 0x8;
const RWF_DONTCACHE = 0x80;
/** The most one read or write moves on Linux (MAX_RW_COUNT). */
export const MAX_IO_BYTES = 0x7ffff000;
/** The most buffers one gathered write takes (Linux's UIO_MAXIOV). */
export const MAX_IOV = 1024;

interface Norm {
  op: number;
  fd: number;
  buffer: Uint8Array | null;
  /** A gathered write's buffers (empty ones left out); null otherwise. */
  buffers: readonly Uint8Array[] | null;
  offset: number;
  length: number;
  position: number;
  rwf: number;
}

interface Waiting {
  req: Norm;
  cb: IoCallback;
}

interface Backend {
  readonly kind: 'native' | 'fallback';
  readonly threads: number;
  readonly maxThreads: number;
  /** Workers running now. */
  liveThreads(): number;
  /** How many requests it takes at once (slots 0..capacity-1). */
  readonly capacity: number;
  /** Starts `req` in `slot`: 0, or a negative errno (then nothing started). */
  issue(slot: number, req: Norm, kick: boolean): number;
  kick(): void;
  ioFlusher(): { threads: number; error?: string };
  asyncReads(): number;
  shutdown(): void;
}

function flagsToRwf(flags: IoFlags | undefined): number {
  if (!flags) return 0;
  return (
    (flags.dsync ? RWF_DSYNC : 0) | (flags.sync ? RWF_SYNC : 0) | (flags.nowait ? RWF_NOWAIT : 0) | (flags.dontcache ? RWF_DONTCACHE : 0)
  );
}

function checkInt(name: string, v: unknown, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) {
    throw new RangeError(`${name} must be an integer in 0..${max}, got ${String(v)}`);
  }
  return v;
}

function normalize(req: IoRequest): Norm {
  const op = OP_CODES[req.op];
  if (op === undefined) throw new TypeError(`op must be read, write, fsync or fdatasync, got ${String(req.op)}`);
  const fd = checkInt('fd', req.fd, 0x7fffffff);
  const rwf = flagsToRwf(req.flags);
  if (op >= 2) return { op, fd, buffer: null, buffers: null, offset: 0, length: 0, position: 0, rwf };
  if (req.buffers !== undefined) {
    if (op !== 1) throw new TypeError(`buffers is for writes only, not ${req.op}`);
    if (!Array.isArray(req.buffers) || req.buffers.length > MAX_IOV) throw new RangeError(`buffers must be an array of at most ${MAX_IOV} Uint8Arrays`);
    const buffers: Uint8Array[] = [];
    let length = 0;
    for (const b of req.buffers) {
      if (!(b instanceof Uint8Array)) throw new TypeError('buffers must hold Uint8Arrays');
      if (b.byteLength === 0) continue;
      buffers.push(b);
      length += b.byteLength;
    }
    if (length > MAX_IO_BYTES) throw new RangeError(`buffers hold ${length} bytes, more than one write moves (${MAX_IO_BYTES})`);
    const position = checkInt('position', req.position, Number.MAX_SAFE_INTEGER);
    if (buffers.length === 1) return { op, fd, buffer: buffers[0]!, buffers: null, offset: 0, length, position, rwf };
    return { op, fd, buffer: null, buffers, offset: 0, length, position, rwf };
  }
  const buffer = req.buffer;
  if (!(buffer instanceof Uint8Array)) throw new TypeError(`${req.op} needs a buffer (Uint8Array)`);
  const offset = checkInt('offset', req.offset ?? 0, buffer.byteLength);
  const length = checkInt('length', req.length ?? buffer.byteLength - offset, Math.min(MAX_IO_BYTES, buffer.byteLength - offset));
  const position = checkInt('position', req.position, Number.MAX_SAFE_INTEGER);
  return { op, fd, buffer, buffers: null, offset, length, position, rwf };
}

class NativeBackend implements Backend {
  readonly kind = 'native' as const;
  readonly threads: number;
  readonly capacity: number;
  private readonly handle: RawEngineHandle;

  constructor(
    private readonly addon: NativeAddon,
    threads: number,
    readonly maxThreads: number,
    queueDepth: number,
    onBatch: (results: Int32Array, count: number) => void,
  ) {
    let results: Int32Array | undefined;
    const made = addon.engineCreate(threads, queueDepth, (count) => onBatch(results!, count), maxThreads);
    results = made.results;
    this.handle = made.handle;
    this.threads = made.threads;
    this.capacity = queueDepth;
  }

  liveThreads(): number {
    return this.addon.engineStats(this.handle).threads;
  }

  asyncReads(): number {
    return this.addon.engineStats(this.handle).aioReads ?? 0;
  }

  issue(slot: number, r: Norm, kick: boolean): number {
    if (r.buffers) {
      if (this.addon.engineSubmitv) return this.addon.engineSubmitv(this.handle, slot, r.fd, r.buffers, r.position, r.rwf, kick);
      // An addon built before gathered writes: one copy, one write.
      return this.addon.engineSubmit(this.handle, slot, r.op, r.fd, Buffer.concat(r.buffers), 0, r.length, r.position, r.rwf, kick);
    }
    return this.addon.engineSubmit(this.handle, slot, r.op, r.fd, r.buffer, r.offset, r.length, r.position, r.rwf, kick);
  }

  kick(): void {
    this.addon.engineKick(this.handle);
  }

  ioFlusher(): { threads: number; error?: string } {
    const s = this.addon.engineStats(this.handle);
    return s.ioFlusherErrno < 0 ? { threads: s.ioFlusherThreads, error: errnoCode(s.ioFlusherErrno) } : { threads: s.ioFlusherThreads };
  }

  shutdown(): void {
    this.addon.engineClose(this.handle);
  }
}

function errnoOf(err: NodeJS.ErrnoException): number {
  return typeof err.errno === 'number' && err.errno < 0 ? err.errno : -5; /* EIO */
}

class FallbackBackend implements Backend {
  readonly kind = 'fallback' as const;
  readonly capacity: number;
  readonly maxThreads: number;

  constructor(
    readonly threads: number,
    private readonly complete: (slot: number, result: number, partial: number) => void,
  ) {
    this.capacity = threads;
    this.maxThreads = threads;
  }

  liveThreads(): number {
    return this.threads;
  }

  asyncReads(): number {
    return 0;
  }

  issue(slot: number, r: Norm, _kick: boolean): number {
    if (r.rwf & (RWF_DONTCACHE | RWF_NOWAIT)) return EOPNOTSUPP;
    const done = (result: number, partial = 0): void => this.complete(slot, result, partial);
    if (r.op <= 1 && r.length === 0 && !r.buffers) {
      // As preadv2/pwritev2 with nothing to move (fs.read refuses an empty buffer).
      process.nextTick(done, 0);
      return 0;
    }
    switch (r.op) {
      case 0:
        fs.read(r.fd, r.buffer!, r.offset, r.length, r.position, (err, n) => done(err ? errnoOf(err) : n));
        return 0;
      case 1: {
        const sync = (): void => {
          if (r.rwf & RWF_SYNC) fs.fsync(r.fd, (err) => done(err ? errnoOf(err) : r.length, err ? r.length : 0));
          else if (r.rwf & RWF_DSYNC) fs.fdatasync(r.fd, (err) => done(err ? errnoOf(err) : r.length, err ? r.length : 0));
          else done(r.length);
        };
        const step = (written: number): void => {
          if (written >= r.length) return sync();
          if (r.buffers) {
            fs.writev(r.fd, piecesAfter(r.buffers, written), r.position + written, (err, n) => {
              if (err) done(errnoOf(err), written);
              else if (n === 0) done(-5 /* EIO: no progress */, written);
              else step(written + n);
            });
            return;
          }
          fs.write(r.fd, r.buffer!, r.offset + written, r.length - written, r.position + written, (err, n) => {
            if (err) done(errnoOf(err), written);
            else if (n === 0) done(-5 /* EIO: no progress */, written);
            else step(written + n);
          });
        };
        step(0);
        return 0;
      }
      case 2:
        fs.fsync(r.fd, (err) => done(err ? errnoOf(err) : 0));
        return 0;
      default:
        fs.fdatasync(r.fd, (err) => done(err ? errnoOf(err) : 0));
        return 0;
    }
  }

  kick(): void {}

  ioFlusher(): { threads: number; error?: string } {
    return { threads: 0 };
  }

  shutdown(): void {}
}

/** The buffers of a gathered write from byte `skip` on (views, no copy). */
function piecesAfter(buffers: readonly Uint8Array[], skip: number): Uint8Array[] {
  if (skip === 0) return buffers as Uint8Array[];
  const out: Uint8Array[] = [];
  for (const b of buffers) {
    if (skip >= b.byteLength) {
      skip -= b.byteLength;
      continue;
    }
    out.push(skip > 0 ? b.subarray(skip) : b);
    skip = 0;
  }
  return out;
}

const SYSCALLS_NATIVE = ['preadv2', 'pwritev2', 'fsync', 'fdatasync'];
const SYSCALLS_FALLBACK = ['read', 'write', 'fsync', 'fdatasync'];

/**
 * The IO engine. `new IoEngine({ threads, queueDepth })` uses the addon's
 * dedicated threads when available, the fallback otherwise (see `backend`).
 * Close it when done: an engine that is never closed keeps its (idle,
 * sleeping) threads until the process exits; it never keeps the event loop
 * alive while idle.
 */
export class IoEngine {
  readonly backend: 'native' | 'fallback';
  readonly threads: number;
  /** Requests in the engine at once (fallback: concurrent fs calls = threads). */
  readonly queueDepth: number;

  private readonly b: Backend;
  private readonly cbs: (IoCallback | undefined)[];
  private readonly reqs: (Norm | undefined)[];
  private readonly free: number[] = [];
  private waitQ: Waiting[] = [];
  private waitHead = 0;
  private readonly batchCbs: (IoCallback | undefined)[];
  private readonly batchReqs: (Norm | undefined)[];
  private readonly batchRes: Int32Array;
  private readonly batchPart: Int32Array;
  private readonly syscalls: string[];
  private submitted = 0;
  private completed = 0;
  private errors = 0;
  private batches = 0;
  private maxDepth = 0;
  private closing: Promise<void> | undefined;
  private closed = false;
  private onIdle: (() => void) | undefined;
  private probeBuf: Buffer | undefined;

  constructor(opts: IoEngineOptions = {}) {
    const threads = opts.threads ?? 4;
    const maxThreads = opts.maxThreads ?? threads;
    const depth = opts.queueDepth ?? 128;
    if (!Number.isInteger(threads) || threads < 1 || threads > 256) throw new RangeError(`threads must be 1..256, got ${threads}`);
    if (!Number.isInteger(maxThreads) || maxThreads < threads || maxThreads > 256) {
      throw new RangeError(`maxThreads must be threads..256, got ${maxThreads}`);
    }
    if (!Number.isInteger(depth) || depth < 1 || depth > 65536) throw new RangeError(`queueDepth must be 1..65536, got ${depth}`);
    const want = opts.backend ?? 'auto';
    if (want === 'native' && !native) throw new Error('IoEngine: the native backend is unavailable');
    if (native && want !== 'fallback') {
      this.b = new NativeBackend(native, threads, maxThreads, depth, (results, count) => this.onBatch(results, count));
      this.syscalls = SYSCALLS_NATIVE;
    } else {
      this.b = new FallbackBackend(Math.min(threads, depth), (slot, result, partial) => this.onOne(slot, result, partial));
      this.syscalls = SYSCALLS_FALLBACK;
    }
    this.backend = this.b.kind;
    this.threads = this.b.threads;
    this.queueDepth = this.b.capacity;
    const cap = this.b.capacity;
    this.cbs = new Array<IoCallback | undefined>(cap).fill(undefined);
    this.reqs = new Array<Norm | undefined>(cap).fill(undefined);
    this.batchCbs = new Array<IoCallback | undefined>(cap).fill(undefined);
    this.batchReqs = new Array<Norm | undefined>(cap).fill(undefined);
    this.batchRes = new Int32Array(cap);
    this.batchPart = new Int32Array(cap);
    for (let i = cap - 1; i >= 0; i--) this.free.push(i);
  }

  /**
   * Queues requests, in order. Each promise resolves with the bytes moved
   * (0 for syncs) or rejects with an IoError; an invalid request rejects its
   * own promise and does not stop the others.
   */
  submit(requests: readonly IoRequest[]): Promise<number>[] {
    const out = new Array<Promise<number>>(requests.length);
    for (let i = 0; i < requests.length; i++) {
      out[i] = new Promise<number>((resolve, reject) => {
        this.enqueue(requests[i]!, (err, n) => (err ? reject(err) : resolve(n)), false);
      });
    }
    if (requests.length > 0) this.b.kick();
    return out;
  }

  /** One request, as a promise. */
  run(request: IoRequest): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      this.enqueue(request, (err, n) => (err ? reject(err) : resolve(n)));
    });
  }

  /**
   * One request with a callback (no promise). Throws TypeError/RangeError
   * for a malformed request, synchronously; everything else goes to `cb`,
   * always asynchronously. With kick=false the workers are not woken yet
   * (call more, then one with kick=true).
   */
  enqueue(request: IoRequest, cb: IoCallback, kick = true): void {
    let req: Norm;
    try {
      req = normalize(request);
    } catch (err) {
      process.nextTick(cb, err as IoError, 0);
      return;
    }
    if (this.closing) {
      const err = sysError(ESHUTDOWN, this.syscalls[req.op]!, '(IoEngine closed)') as IoError;
      process.nextTick(cb, err, 0);
      return;
    }
    this.submitted++;
    const depth = this.submitted - this.completed;
    if (depth > this.maxDepth) this.maxDepth = depth;
    if (this.free.length > 0 && this.waitHead === this.waitQ.length) this.issue(req, cb, kick);
    else this.waitQ.push({ req, cb });
  }

  /**
   * Whether RWF_DONTCACHE works on this file (a 4 KiB read at offset 0 with
   * the flag). False on the fallback backend, on kernels before 6.14 and on
   * file systems without it (tmpfs).
   */
  async probeDontcache(fd: number): Promise<boolean> {
    if (this.backend === 'fallback') return false;
    this.probeBuf ??= allocAligned(4096, 4096);
    try {
      await this.run({ op: 'read', fd, buffer: this.probeBuf, position: 0, length: 4096, flags: { dontcache: true } });
      return true;
    } catch (err) {
      if ((err as IoError).unsupported) return false;
      throw err;
    }
  }

  stats(): IoEngineStats {
    const waiting = this.waitQ.length - this.waitHead;
    const stats: IoEngineStats = {
      backend: this.backend,
      threads: this.closed ? this.threads : this.b.liveThreads(),
      maxThreads: this.b.maxThreads,
      queueDepth: this.queueDepth,
      submitted: this.submitted,
      completed: this.completed,
      inFlight: this.submitted - this.completed,
      waiting,
      maxQueueDepth: this.maxDepth,
      batches: this.batches,
      errors: this.errors,
      asyncReads: this.closed ? 0 : this.b.asyncReads(),
      ioFlusherThreads: 0,
    };
    if (!this.closed) {
      const f = this.b.ioFlusher();
      stats.ioFlusherThreads = f.threads;
      if (f.error) stats.ioFlusherError = f.error;
    }
    return stats;
  }

  /**
   * Stops accepting requests (new ones fail with ESHUTDOWN), waits for every
   * accepted one to complete, then stops the workers.
   */
  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      const finish = (): void => {
        this.closed = true;
        this.b.shutdown();
        resolve();
      };
      if (this.submitted === this.completed) finish();
      else this.onIdle = finish;
    });
    return this.closing;
  }

  private issue(req: Norm, cb: IoCallback, kick: boolean): void {
    const slot = this.free.pop()!;
    this.cbs[slot] = cb;
    this.reqs[slot] = req;
    let rc: number;
    try {
      rc = this.b.issue(slot, req, kick);
    } catch {
      rc = EINVAL; // the addon refused the arguments
    }
    if (rc < 0) {
      // Nothing started: complete it as failed, asynchronously.
      process.nextTick(() => this.onOne(slot, rc, 0));
    }
  }

  /** Moves waiting requests into free slots, in order. */
  private refill(): void {
    let moved = 0;
    while (this.free.length > 0 && this.waitHead < this.waitQ.length) {
      const w = this.waitQ[this.waitHead]!;
      this.waitQ[this.waitHead++] = undefined as unknown as Waiting;
      this.issue(w.req, w.cb, false);
      moved++;
    }
    if (this.waitHead === this.waitQ.length) {
      this.waitQ.length = 0;
      this.waitHead = 0;
    } else if (this.waitHead > 1024 && this.waitHead * 2 > this.waitQ.length) {
      this.waitQ = this.waitQ.slice(this.waitHead);
      this.waitHead = 0;
    }
    if (moved > 0) this.b.kick();
  }

  private onBatch(results: Int32Array, count: number): void {
    this.batches++;
    for (let i = 0; i < count; i++) {
      const slot = results[3 * i]!;
      this.batchCbs[i] = this.cbs[slot];
      this.batchReqs[i] = this.reqs[slot];
      this.batchRes[i] = results[3 * i + 1]!;
      this.batchPart[i] = results[3 * i + 2]!;
      this.cbs[slot] = undefined;
      this.reqs[slot] = undefined;
      this.free.push(slot);
    }
    this.completed += count;
    // Waiting requests go in before any callback can queue new ones: FIFO.
    this.refill();
    for (let i = 0; i < count; i++) {
      const cb = this.batchCbs[i]!;
      const req = this.batchReqs[i]!;
      this.batchCbs[i] = undefined;
      this.batchReqs[i] = undefined;
      this.deliver(cb, req, this.batchRes[i]!, this.batchPart[i]!);
    }
    this.checkIdle();
  }

  private onOne(slot: number, result: number, partial: number): void {
    const cb = this.cbs[slot]!;
    const req = this.reqs[slot]!;
    this.cbs[slot] = undefined;
    this.reqs[slot] = undefined;
    this.free.push(slot);
    this.completed++;
    this.batches++;
    this.refill();
    this.deliver(cb, req, result, partial);
    this.checkIdle();
  }

  private deliver(cb: IoCallback, req: Norm, result: number, partial: number): void {
    let err: IoError | null = null;
    if (result < 0) {
      this.errors++;
      err = sysError(result, this.syscalls[req.op]!) as IoError;
      err.fd = req.fd;
      if (req.op <= 1) err.position = req.position;
      if (req.op === 1) err.bytesDone = partial;
      if (result === EOPNOTSUPP && req.rwf & (RWF_DONTCACHE | RWF_NOWAIT)) err.unsupported = true;
    }
    try {
      cb(err, err ? 0 : result);
    } catch (thrown) {
      // One failing callback must not lose the rest of the batch.
      process.nextTick(() => {
        throw thrown;
      });
    }
  }

  private checkIdle(): void {
    if (this.onIdle && this.submitted === this.completed) {
      const f = this.onIdle;
      this.onIdle = undefined;
      f();
    }
  }
}

const addon = native?.readNowait ? native : undefined;

const nowaitUnchecked = addon?.readNowaitBuffered ?? addon?.readNowait;

/** Whether readNowait can serve reads here (the addon is loaded and has it). */
export const nowaitReadAvailable = addon !== undefined;

/**
 * A read served from the page cache on the calling thread, never waiting
 * for the device (preadv2 with RWF_NOWAIT): about a microsecond for a cached
 * 4 KiB page, against tens of microseconds for a hand-off to an IO thread.
 * Answers the bytes read (fewer than `length` at the end of the file, or
 * where the first page not in the cache begins), or undefined when nothing
 * could be read without waiting: a page not cached (EAGAIN), an O_DIRECT
 * descriptor or a file system without non-blocking reads (ENOTSUP), no
 * addon. Other failures (EBADF...) also answer undefined, for the engine's
 * read to report them the usual way.
 */
export function readNowait(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): number | undefined {
  if (!addon) return undefined;
  const n = addon.readNowait!(fd, buffer, offset, length, position);
  return n >= 0 ? n : undefined;
}

/**
 * readNowait for a descriptor the caller knows has O_DIRECT off (it owns
 * the descriptor's flags): the same answers without the fcntl per read.
 * On an O_DIRECT descriptor it would read through to the device.
 */
export function readNowaitBuffered(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): number | undefined {
  if (!nowaitUnchecked) return undefined;
  const n = nowaitUnchecked(fd, buffer, offset, length, position);
  return n >= 0 ? n : undefined;
}

/** Whether an error from the engine means "flag unsupported here: retry without it". */
export function isUnsupported(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as IoError).unsupported === true;
}
