// Which directories have a change of their names in flight.
//
// Create, unlink, rename, mkdir and the rest hold the directory's inode lock
// in the kernel. A thread that finds it taken spins on it while the holder
// runs, then sleeps. On ext4 without a journal a create can take hundreds of
// microseconds (it steps over the inodes freed in the last seconds or
// minutes, one by one), so an inline unlink on the event loop behind a
// create on a threadpool thread in the same directory stalled every
// connection for that long. A call that would take the lock goes inline
// while no change to that directory is in flight from this process, or
// while creates (the measure of what a change costs there) are short
// (inline-fs.ts, CHANGE_WAIT_MS).

export class DirChanges {
  private readonly running = new Map<bigint, number>();

  /** Whether a change to directory `dir` is in flight. */
  busy(dir: bigint): boolean {
    return this.running.has(dir);
  }

  /** Counts `p` as a change to `dir` (two directories for RENAME) until it settles. */
  track<T>(dirs: bigint | readonly bigint[], p: Promise<T>): Promise<T> {
    const list = typeof dirs === 'bigint' ? [dirs] : dirs;
    for (const d of list) this.running.set(d, (this.running.get(d) ?? 0) + 1);
    const end = (): void => {
      for (const d of list) {
        const n = this.running.get(d)! - 1;
        if (n === 0) this.running.delete(d);
        else this.running.set(d, n);
      }
    };
    return p.finally(end);
  }

  /** Directories with changes in flight (for tests). */
  get size(): number {
    return this.running.size;
  }
}
