// The dirty-memory accountant: every byte the write-back cache holds (dirty,
// being written, or written UNSTABLE and waiting for COMMIT) is charged here.
//
// - Above the background threshold, the flushers are asked to write back
//   (and commit, which is what frees memory).
// - At the hard limit, application writers wait, first come first served: a
//   writer that arrives while others wait queues behind them even when its
//   own request would fit, so a stream of small writes cannot starve a large
//   one.
// - The flushers never reserve anything: their WRITEs and COMMITs only ever
//   release memory, so writeback always drains, whatever the limit.
//
// One accountant may be shared by several clients (pass it in the options)
// to bound the process as a whole.

import { totalmem } from 'node:os';

export interface DirtyLimits {
  /** Bytes above which background writeback starts (default: half the hard limit). */
  background?: number;
  /** Bytes at which application writers wait (default: 1/8 of RAM, at most 128 MiB). */
  hard?: number;
}

interface Waiter {
  n: number;
  resolve: () => void;
  since: number;
}

export class DirtyAccountant {
  readonly hard: number;
  readonly background: number;
  private usedBytes = 0;
  private peakBytes = 0;
  private readonly queue: Waiter[] = [];
  private readonly pressure = new Set<() => void>();
  private pressureQueued = false;
  /** Reservations that had to wait. */
  throttled = 0;
  /** Total time writers spent waiting, in ms. */
  throttledMs = 0;

  constructor(limits: DirtyLimits = {}) {
    const hard = limits.hard ?? defaultHardLimit();
    if (!(hard > 0)) throw new RangeError(`dirty hard limit must be positive, got ${hard}`);
    this.hard = hard;
    this.background = Math.min(limits.background ?? Math.floor(hard / 2), hard);
  }

  /** Bytes charged now. */
  get used(): number {
    return this.usedBytes;
  }

  /** The most ever charged at once. */
  get peak(): number {
    return this.peakBytes;
  }

  /** Writers waiting now. */
  get waiting(): number {
    return this.queue.length;
  }

  get overBackground(): boolean {
    return this.usedBytes > this.background || this.queue.length > 0;
  }

  /**
   * Take `n` bytes at once if that is possible without waiting (nobody
   * queued, and under the hard limit); false otherwise.
   */
  tryReserve(n: number): boolean {
    if (this.queue.length > 0 || !this.fits(n)) return false;
    this.charge(n);
    return true;
  }

  /** Take `n` bytes, waiting (FIFO) while that would pass the hard limit. */
  reserve(n: number): Promise<void> {
    if (this.tryReserve(n)) return Promise.resolve();
    this.throttled++;
    const p = new Promise<void>((resolve) => this.queue.push({ n, resolve, since: Date.now() }));
    this.signalPressure();
    return p;
  }

  /** Give back `n` bytes; wakes waiters in order while they fit. */
  release(n: number): void {
    this.usedBytes -= n;
    if (this.usedBytes < 0) this.usedBytes = 0;
    while (this.queue.length > 0 && this.fits(this.queue[0]!.n)) {
      const w = this.queue.shift()!;
      this.throttledMs += Date.now() - w.since;
      this.charge(w.n);
      w.resolve();
    }
    if (this.queue.length > 0) this.signalPressure();
  }

  /** Register a flusher to be told when memory passes the background threshold. */
  onPressure(fn: () => void): () => void {
    this.pressure.add(fn);
    return () => this.pressure.delete(fn);
  }

  /** One request larger than the hard limit is let through alone, or it would wait forever. */
  private fits(n: number): boolean {
    return this.usedBytes + n <= this.hard || this.usedBytes === 0;
  }

  private charge(n: number): void {
    this.usedBytes += n;
    if (this.usedBytes > this.peakBytes) this.peakBytes = this.usedBytes;
    if (this.usedBytes > this.background) this.signalPressure();
  }

  private signalPressure(): void {
    if (this.pressureQueued) return;
    this.pressureQueued = true;
    queueMicrotask(() => {
      this.pressureQueued = false;
      for (const fn of this.pressure) fn();
    });
  }
}

/**
 * 128 MiB at most: with node's own memory that keeps a writing process under
 * 256 MiB resident, and a larger limit does not write faster (COMMIT, which
 * frees memory, waits for the server's disk either way).
 */
function defaultHardLimit(): number {
  return Math.max(8 << 20, Math.min(128 << 20, Math.floor(totalmem() / 8)));
}
