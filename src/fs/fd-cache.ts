// Open file descriptors kept per inode for READ/WRITE/COMMIT, so a stream of
// small IOs does not pay open+close each time. Bounded LRU; a descriptor in
// use is closed only when its last user releases it. Descriptors are plain
// numbers (not FileHandles): the backend calls fs functions on them, inline
// where it can (see inline-fs.ts).
//
// Idle descriptors are closed after one to two sweep periods (as nfsd's file
// cache does): a descriptor kept open holds a file that was deleted on the
// server's host (not through NFS) and so its blocks, and the file system
// would run out of space with nothing visible to free.

export interface OpenFile {
  readonly fd: number;
  readonly writable: boolean;
  /** The node id it was opened for (an inode's id changes on reuse). */
  readonly nodeKey: string;
}

const RETRY_READ_ONLY = new Set(['EACCES', 'EPERM', 'EROFS', 'ETXTBSY']);

interface Slot extends OpenFile {
  refs: number;
  retired: boolean;
  /** Acquired since the last sweep. */
  used: boolean;
}

/** How often idle descriptors are looked for (ms); default of FdCache's `idleMs`. */
export const FD_IDLE_SWEEP_MS = 1000;

export class FdCache {
  private readonly slots = new Map<bigint, Slot>();
  private sweeper: NodeJS.Timeout | undefined;

  /**
   * `close` closes a descriptor the cache is done with (errors are the
   * caller's to ignore). A descriptor nobody used for between `idleMs` and
   * twice that is closed.
   */
  constructor(
    private readonly max: number,
    private readonly close: (fd: number) => Promise<void> | void,
    private readonly idleMs = FD_IDLE_SWEEP_MS,
  ) {}

  /**
   * A descriptor for `ino` opened for `nodeKey` (writable if asked), from
   * the cache or from `open`. Pair every acquire with release.
   */
  async acquire(
    ino: bigint,
    nodeKey: string,
    writable: boolean,
    open: (writable: boolean) => Promise<number>,
  ): Promise<OpenFile> {
    const hit = this.slots.get(ino);
    if (hit && hit.nodeKey === nodeKey && (hit.writable || !writable)) {
      this.slots.delete(ino);
      this.slots.set(ino, hit);
      hit.refs++;
      hit.used = true;
      return hit;
    }
    const wantWrite = writable || (hit?.writable ?? false);
    let fd: number;
    let w = true;
    try {
      fd = await open(true);
    } catch (err) {
      if (wantWrite || !RETRY_READ_ONLY.has((err as { code?: string }).code ?? '')) throw err;
      fd = await open(false); // read-only file system or no write access for the server
      w = false;
    }
    const slot: Slot = { fd, writable: w, nodeKey, refs: 1, retired: false, used: true };
    const raced = this.slots.get(ino);
    if (raced) this.retire(ino, raced);
    this.insert(ino, slot);
    return slot;
  }

  release(f: OpenFile): void {
    const slot = f as Slot;
    slot.refs--;
    if (slot.retired && slot.refs === 0) this.closeQuietly(slot.fd);
  }

  /** Forget an inode's descriptor (removed, or found stale). */
  invalidate(ino: bigint): void {
    const slot = this.slots.get(ino);
    if (slot) this.retire(ino, slot);
  }

  /**
   * Takes in a read-write descriptor opened elsewhere (a file just created)
   * as the cached one for `ino`; the cache closes it.
   */
  adopt(ino: bigint, nodeKey: string, fd: number): void {
    const old = this.slots.get(ino);
    if (old) this.retire(ino, old);
    this.insert(ino, { fd, writable: true, nodeKey, refs: 0, retired: false, used: true });
  }

  /** The cached descriptor, if any, without opening one. Pair with release. */
  acquireCached(ino: bigint, nodeKey: string): OpenFile | undefined {
    const slot = this.slots.get(ino);
    if (!slot || slot.nodeKey !== nodeKey) return undefined;
    slot.refs++;
    slot.used = true;
    return slot;
  }

  /** Descriptors held (in use or idle). */
  get size(): number {
    return this.slots.size;
  }

  async closeAll(): Promise<void> {
    clearInterval(this.sweeper);
    this.sweeper = undefined;
    const idle = [...this.slots].filter(([, slot]) => slot.refs === 0).map(([, slot]) => slot.fd);
    for (const [ino, slot] of [...this.slots]) {
      if (this.slots.get(ino) === slot) this.slots.delete(ino);
      slot.retired = true;
    }
    await Promise.all(idle.map(async (fd) => this.close(fd)).map((p) => p.catch(() => undefined)));
  }

  private insert(ino: bigint, slot: Slot): void {
    this.slots.set(ino, slot);
    for (const [oldIno, old] of this.slots) {
      if (this.slots.size <= this.max) break;
      this.retire(oldIno, old);
    }
    if (!this.sweeper) {
      this.sweeper = setInterval(() => this.sweep(), this.idleMs);
      this.sweeper.unref();
    }
  }

  /** Closes what no one acquired since the last sweep; stops when nothing is left. */
  private sweep(): void {
    for (const [ino, slot] of [...this.slots]) {
      if (slot.used || slot.refs > 0) slot.used = false;
      else this.retire(ino, slot);
    }
    if (this.slots.size === 0) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
    }
  }

  private retire(ino: bigint, slot: Slot): void {
    if (this.slots.get(ino) === slot) this.slots.delete(ino);
    if (slot.retired) return;
    slot.retired = true;
    if (slot.refs === 0) this.closeQuietly(slot.fd);
  }

  private closeQuietly(fd: number): void {
    try {
      void Promise.resolve(this.close(fd)).catch(() => undefined);
    } catch {
      // already closed, or the file system failed it: nothing to do
    }
  }
}
