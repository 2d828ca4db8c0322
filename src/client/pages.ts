// Free write-back pages kept for reuse. A sequential writer frees pages by
// the thousand at each COMMIT and needs as many again right away; taking
// them from here instead of allocating keeps the process's memory flat (a
// freed Buffer is only returned once the garbage collector runs, which lets
// the resident size run well past the dirty limit) and saves the allocations.
//
// The pool holds at most what the dirty limit leaves unused (`room()`, the
// hard limit less what is charged), so charged pages and pooled pages
// together stay within the hard limit, and it
// lets everything go `idleMs` after the last page came back.
//
// Pages are allocated at PAGE_ALIGN (with the native addon): a LOCALIO
// direct write of whole aligned ranges can then hand the pages themselves
// to O_DIRECT, with no bounce copy.

import { allocAligned } from '../native/dio.js';

/** Address alignment of write-back pages: what O_DIRECT asks of memory on common devices. */
export const PAGE_ALIGN = 4096;

export class PagePool {
  private readonly free: Buffer[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly pageSize: number,
    /** Bytes the pool may hold now. */
    private readonly room: () => number,
    private readonly idleMs = 1000,
  ) {}

  /** Pages held now. */
  get size(): number {
    return this.free.length;
  }

  /** A page of pageSize bytes (contents undefined). */
  take(): Buffer {
    return this.free.pop() ?? allocAligned(this.pageSize, PAGE_ALIGN);
  }

  /**
   * Give a page back, while it is still charged (so pooled and charged
   * bytes together stay within what `room()` counts from); nothing may use
   * it afterwards.
   */
  give(page: Buffer): void {
    if (page.length !== this.pageSize || this.free.length * this.pageSize > this.room()) return;
    this.free.push(page);
    if (!this.timer) {
      this.timer = setTimeout(() => this.clear(), this.idleMs);
      this.timer.unref();
    } else {
      this.timer.refresh();
    }
  }

  clear(): void {
    this.free.length = 0;
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
