// Reserved IO memory: a fixed set of aligned buffers, made once, lent to
// IO and given back. Under pressure requests wait for a buffer, first come
// first served; nothing is allocated on the IO path, so memory for IO is
// bounded by the pool whatever the load (the loop device's model: its
// requests never allocate in the writeback path).

import { allocAligned } from '../native/index.js';

export interface BufferPoolStats {
  /** Bytes reserved (buffers x bufferSize). */
  bytes: number;
  buffers: number;
  bufferSize: number;
  /** Alignment of each buffer's address. */
  align: number;
  free: number;
  /** Acquisitions that had to wait for a buffer, and the time they waited (ms). */
  waits: number;
  waitMs: number;
  /** Requests waiting now, and the most ever waiting at once. */
  waiting: number;
  maxWaiting: number;
}

interface Waiter {
  resolve: (b: Buffer) => void;
  since: number;
}

export class AlignedBufferPool {
  readonly bufferSize: number;
  readonly align: number;
  private readonly all: Buffer[] = [];
  private readonly free: Buffer[] = [];
  private readonly queue: Waiter[] = [];
  private waits = 0;
  private waitMs = 0;
  private maxWaiting = 0;

  /**
   * `bytes` of buffers of `bufferSize` each (at least one buffer, however
   * small `bytes`), every buffer starting at a multiple of `align`.
   */
  constructor(bytes: number, bufferSize: number, align: number) {
    if (!Number.isSafeInteger(bufferSize) || bufferSize <= 0) throw new RangeError(`bufferSize must be a positive integer, got ${bufferSize}`);
    this.bufferSize = bufferSize;
    this.align = align;
    const count = Math.max(1, Math.floor(bytes / bufferSize));
    for (let i = 0; i < count; i++) {
      const b = allocAligned(bufferSize, align);
      this.all.push(b);
      this.free.push(b);
    }
  }

  get buffers(): number {
    return this.all.length;
  }

  /** A buffer now, or undefined when none is free or others wait (FIFO). */
  tryAcquire(): Buffer | undefined {
    return this.queue.length === 0 ? this.free.pop() : undefined;
  }

  /** A buffer, waiting in line while all are lent. Give it back with release(). */
  acquire(): Promise<Buffer> {
    const b = this.tryAcquire();
    if (b) return Promise.resolve(b);
    this.waits++;
    const p = new Promise<Buffer>((resolve) => this.queue.push({ resolve, since: Date.now() }));
    if (this.queue.length > this.maxWaiting) this.maxWaiting = this.queue.length;
    return p;
  }

  release(b: Buffer): void {
    const w = this.queue.shift();
    if (w) {
      this.waitMs += Date.now() - w.since;
      w.resolve(b);
      return;
    }
    this.free.push(b);
  }

  stats(): BufferPoolStats {
    return {
      bytes: this.all.length * this.bufferSize,
      buffers: this.all.length,
      bufferSize: this.bufferSize,
      align: this.align,
      free: this.free.length,
      waits: this.waits,
      waitMs: this.waitMs,
      waiting: this.queue.length,
      maxWaiting: this.maxWaiting,
    };
  }
}
