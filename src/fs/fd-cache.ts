// Open file descriptors kept per inode for READ/WRITE/COMMIT, so a stream of
// small IOs does not pay open+close each time. Bounded LRU; a descriptor in
// use is closed only when its last user releases it. Descriptors are plain
// numbers (not FileHandles): the backend calls fs functions on them, inline
// where it can (see inline-fs.ts).

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
}

export class FdCache {
  private readonly slots = new Map<bigint, Slot>();

  /** `close` closes a descriptor the cache is done with (errors are the caller's to ignore). */
  constructor(
    private readonly max: number,
    private readonly close: (fd: number) => Promise<void> | void,
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
    const slot: Slot = { fd, writable: w, nodeKey, refs: 1, retired: false };
    const raced = this.slots.get(ino);
    if (raced) this.retire(ino, raced);
    this.slots.set(ino, slot);
    this.trim();
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
    this.slots.set(ino, { fd, writable: true, nodeKey, refs: 0, retired: false });
    this.trim();
  }

  /** The cached descriptor, if any, without opening one. Pair with release. */
  acquireCached(ino: bigint, nodeKey: string): OpenFile | undefined {
    const slot = this.slots.get(ino);
    if (!slot || slot.nodeKey !== nodeKey) return undefined;
    slot.refs++;
    return slot;
  }

  async closeAll(): Promise<void> {
    const idle = [...this.slots].filter(([, slot]) => slot.refs === 0).map(([, slot]) => slot.fd);
    for (const [ino, slot] of [...this.slots]) {
      if (this.slots.get(ino) === slot) this.slots.delete(ino);
      slot.retired = true;
    }
    await Promise.all(idle.map(async (fd) => this.close(fd)).map((p) => p.catch(() => undefined)));
  }

  private trim(): void {
    for (const [ino, slot] of this.slots) {
      if (this.slots.size <= this.max) break;
      this.retire(ino, slot);
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
