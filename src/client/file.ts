// NfsFileHandle: an open file, shaped like Node's fs/promises FileHandle.
//
// Reads go through the file's read cache and read-ahead, and see this
// client's own unwritten data; writes land in the write-back cache (and may
// wait when the dirty limit is reached). close() writes back, commits and
// reports any error of the background writeback (close-to-open consistency:
// another client that opens the file after our close sees our data).

import { constants as fsConstants } from 'node:fs';
import { codeError, toNfsError } from './errors.js';
import type { Inode } from './inode.js';
import type { NfsStats } from './stat.js';
import type { ErrorCursor } from './writeback.js';

/** Read-ahead state of one handle: where a sequential reader goes next, and how far ahead to read. */
export interface ReadAheadState {
  next: number;
  window: number;
}

/** What a handle needs from its client. */
export interface FileHost {
  readInto(inode: Inode, ra: ReadAheadState, pos: number, len: number, buf: Buffer, off: number): Promise<number>;
  /** readInto done at once when it can be (no waiting); undefined otherwise. */
  readNow(inode: Inode, pos: number, len: number, buf: Buffer, off: number): number | undefined;
  readView(inode: Inode, ra: ReadAheadState, pos: number, max: number, borrow?: boolean): Promise<{ data: Buffer; release: () => void }>;
  writeAt(inode: Inode, pos: number, data: Buffer): Promise<void>;
  statInode(inode: Inode): Promise<NfsStats>;
  truncateInode(inode: Inode, len: number, path: string): Promise<void>;
  syncInode(inode: Inode): Promise<void>;
  releaseInode(inode: Inode): void;
  /** The file's size as this client knows it (server size, or longer with cached data). */
  localSize(inode: Inode): number;
  readonly maxFileSize: number;
}

export interface OpenMode {
  read: boolean;
  write: boolean;
  append: boolean;
  create: boolean;
  exclusive: boolean;
  truncate: boolean;
}

/** Node's open flags ('r', 'w+', 'ax', ... or O_* numbers) as what they ask for. */
export function parseOpenFlags(flags: string | number = 'r'): OpenMode {
  if (typeof flags === 'number') {
    const acc = flags & 3;
    return {
      read: acc === fsConstants.O_RDONLY || acc === fsConstants.O_RDWR,
      write: acc === fsConstants.O_WRONLY || acc === fsConstants.O_RDWR,
      append: (flags & fsConstants.O_APPEND) !== 0,
      create: (flags & fsConstants.O_CREAT) !== 0,
      exclusive: (flags & fsConstants.O_EXCL) !== 0,
      truncate: (flags & fsConstants.O_TRUNC) !== 0,
    };
  }
  const f = flags.replace('s', '').replace(/^x([wa])/, '$1x');
  const m = /^([rwa])(x?)(\+?)$/.exec(f);
  if (!m) throw new TypeError(`invalid open flags: ${flags}`);
  const kind = m[1];
  const x = m[2] === 'x';
  const plus = m[3] === '+';
  if (x && kind === 'r') throw new TypeError(`invalid open flags: ${flags}`);
  return {
    read: kind === 'r' || plus,
    write: kind !== 'r' || plus,
    append: kind === 'a',
    create: kind !== 'r',
    exclusive: x,
    truncate: kind === 'w',
  };
}

let nextFd = 1 << 20;

function toPosition(p: number | bigint | null | undefined): number | null {
  if (p === null || p === undefined) return null;
  const n = typeof p === 'bigint' ? Number(p) : p;
  if (n === -1) return null;
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`invalid position ${String(p)}`);
  return n;
}

function asBuffer(b: Buffer | Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

export class NfsFileHandle {
  /** A number unique to this handle (not a kernel descriptor). */
  readonly fd = nextFd++;
  private position = 0;
  private appendPos: number;
  private closed = false;
  private closing: Promise<void> | undefined;
  private readonly ra: ReadAheadState = { next: 0, window: 0 };
  private readonly errors: ErrorCursor;

  constructor(private readonly host: FileHost, readonly inode: Inode, readonly path: string, readonly mode: OpenMode) {
    this.errors = { errSeq: inode.wb?.errorSeq ?? 0 };
    this.appendPos = host.localSize(inode);
  }

  /**
   * Read up to `length` bytes at `position` into `buffer` at `offset`.
   * With `position` null the handle's own position is used and advanced.
   */
  async read<T extends Buffer | Uint8Array>(buffer: T, offset = 0, length?: number, position?: number | bigint | null): Promise<{ bytesRead: number; buffer: T }> {
    this.check('read', this.mode.read);
    const buf = asBuffer(buffer);
    const len = length ?? buf.length - offset;
    if (offset < 0 || len < 0 || offset + len > buf.length) throw new RangeError(`read: offset ${offset} and length ${len} do not fit a buffer of ${buf.length}`);
    const explicit = toPosition(position);
    const pos = explicit ?? this.position;
    if (len === 0) return { bytesRead: 0, buffer };
    let n: number | undefined;
    try {
      n = this.host.readNow(this.inode, pos, len, buf, offset) ?? (await this.host.readInto(this.inode, this.ra, pos, len, buf, offset));
    } catch (err) {
      throw toNfsError(err, 'read', this.path);
    }
    if (explicit === null) this.position = pos + n;
    return { bytesRead: n, buffer };
  }

  /**
   * The next bytes at `position` (at most `max`) without copying them when
   * possible: a view into the read cache. Empty at the end of the file.
   * The view must not be written to.
   */
  async readChunk(position: number, max: number): Promise<Buffer> {
    this.check('read', this.mode.read);
    try {
      return (await this.host.readView(this.inode, this.ra, position, max)).data;
    } catch (err) {
      throw toNfsError(err, 'read', this.path);
    }
  }

  /**
   * readChunk without a copy and without giving the buffer up: `data` is a
   * view into the read cache, valid until `release()` is called, which
   * lets the client reuse its buffer for later reads (a copy loop that
   * writes each chunk out and releases it reads with no copy and no new
   * memory). Empty at the end of the file. Call `release()` once for every
   * result, an empty one included.
   */
  async readBorrowed(position: number, max: number): Promise<{ data: Buffer; release: () => void }> {
    this.check('read', this.mode.read);
    try {
      return await this.host.readView(this.inode, this.ra, position, max, true);
    } catch (err) {
      throw toNfsError(err, 'read', this.path);
    }
  }

  /**
   * Write `length` bytes of `buffer` from `offset` at `position` (null: the
   * handle's position, advanced; opened for append: the end of the file).
   * Resolves once the data is in the write-back cache; it reaches the server
   * in the background, and for sure on sync() or close().
   */
  async write<T extends Buffer | Uint8Array>(buffer: T, offset = 0, length?: number, position?: number | bigint | null): Promise<{ bytesWritten: number; buffer: T }> {
    this.check('write', this.mode.write);
    const pending = this.inode.wb?.takeError(this.errors);
    if (pending !== undefined) throw toNfsError(pending, 'write', this.path);
    const all = asBuffer(buffer);
    const len = length ?? all.length - offset;
    if (offset < 0 || len < 0 || offset + len > all.length) throw new RangeError(`write: offset ${offset} and length ${len} do not fit a buffer of ${all.length}`);
    const buf = offset === 0 && len === all.length ? all : all.subarray(offset, offset + len);
    const explicit = toPosition(position);
    let pos: number;
    if (this.mode.append) {
      pos = Math.max(this.appendPos, this.host.localSize(this.inode));
      this.appendPos = pos + buf.length;
    } else if (explicit === null) {
      pos = this.position;
      this.position += buf.length;
    } else {
      pos = explicit;
    }
    if (pos + buf.length > this.host.maxFileSize) throw codeError('EFBIG', 'write', this.path);
    if (buf.length > 0) {
      try {
        await this.host.writeAt(this.inode, pos, buf);
      } catch (err) {
        throw toNfsError(err, 'write', this.path);
      }
    }
    return { bytesWritten: buf.length, buffer };
  }

  /** Attributes (from the attribute cache, revalidated when their timeout ran out). */
  async stat(): Promise<NfsStats> {
    this.check('fstat', true);
    try {
      return await this.host.statInode(this.inode);
    } catch (err) {
      throw toNfsError(err, 'fstat', this.path);
    }
  }

  /** Set the file's length (cached data is written back first). */
  async truncate(len = 0): Promise<void> {
    this.check('ftruncate', this.mode.write);
    try {
      await this.host.truncateInode(this.inode, len, this.path);
    } catch (err) {
      throw toNfsError(err, 'ftruncate', this.path);
    }
    const pending = this.inode.wb?.takeError(this.errors);
    if (pending !== undefined) throw toNfsError(pending, 'ftruncate', this.path);
  }

  /** Write back and COMMIT everything cached for the file; reports writeback errors. */
  async sync(): Promise<void> {
    this.check('fsync', true);
    await this.flushAndReport('fsync');
  }

  /** As sync() (NFSv3 COMMIT makes data and metadata stable together). */
  datasync(): Promise<void> {
    return this.sync();
  }

  /**
   * Write back and commit (when opened for writing), then release the
   * handle. Rejects with the first writeback error this handle had not
   * reported yet; the handle is closed anyway.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.closed = true;
      try {
        if (this.mode.write) await this.flushAndReport('close');
      } finally {
        this.host.releaseInode(this.inode);
      }
    })();
    return this.closing;
  }

  private async flushAndReport(syscall: string): Promise<void> {
    let failure: unknown;
    try {
      await this.host.syncInode(this.inode);
    } catch (err) {
      failure = err;
    }
    const pending = this.inode.wb?.takeError(this.errors);
    if (pending !== undefined) throw toNfsError(pending, syscall, this.path);
    if (failure !== undefined) throw toNfsError(failure, syscall, this.path);
  }

  private check(syscall: string, allowed: boolean): void {
    if (this.closed && syscall !== 'close') throw codeError('EBADF', syscall, this.path, 'file handle is closed');
    if (!allowed) throw codeError('EBADF', syscall, this.path, `file not open for ${syscall === 'read' ? 'reading' : 'writing'}`);
  }
}
