// NfsClient: an NFSv3 client with an fs-like API over one mounted export.
//
//   const c = await connect('nfs://127.0.0.1/srv/export?nfsport=2049&mountport=20048');
//   await c.writeFile('hello.txt', 'hi');
//   const st = await c.stat('hello.txt');
//   for (const d of await c.readdir('.', { withFileTypes: true })) ...
//   await c.close();
//
// Paths are POSIX style and relative to the mounted path ('a/b', '/a/b' and
// './a/b' are the same file); '..' never leaves the mount. Symbolic links are
// followed where Node follows them; an absolute link target is taken from
// the mount's root.
//
// Caches, as the Linux client keeps them:
// - attributes, per handle, for acregmin..acregmax (files) or
//   acdirmin..acdirmax (directories) seconds, the timeout growing while the
//   object does not change (attr-cache.ts);
// - lookups (directory, name) -> handle, positive and negative, dropped when
//   the directory's mtime/ctime changes (lookup-cache.ts);
// - close-to-open: open() revalidates the parent directory and the file
//   (ACCESS, whose reply carries fresh attributes), close() writes back and
//   commits;
// - file data: read chunks with read-ahead for sequential readers (inode.ts)
//   and the write-back cache (writeback.ts).
//
// Non-OK results become NfsError, shaped like Node's SystemError.

import { posix } from 'node:path';
import { setImmediate as yieldLoop } from 'node:timers/promises';
import type { RpcClient } from '../rpc/index.js';
import {
  ACCESS3_DELETE,
  ACCESS3_EXECUTE,
  ACCESS3_EXTEND,
  ACCESS3_LOOKUP,
  ACCESS3_MODIFY,
  ACCESS3_READ,
  nfsstat3,
  NFS_V3_TABLE,
  type fattr3,
  type FSINFO3resok,
  type nfs_fh3,
  type nfstime3,
  type post_op_attr,
  type sattr3,
  type wcc_data,
} from '../proto/nfs3.gen.js';
import type { MOUNT_V3_TABLE } from '../proto/mount3.gen.js';
import { AttrCache, type AttrTimeouts } from './attr-cache.js';
import { dirStamp, LookupCache } from './lookup-cache.js';
import { DirtyAccountant, type DirtyLimits } from './dirty.js';
import { PagePool } from './pages.js';
import { codeError, NfsError, NfsStatusError, statusError, toNfsError } from './errors.js';
import { NfsFileHandle, parseOpenFlags, type FileHost, type ReadAheadState } from './file.js';
import { Inode, type Chunk, type ChunkData } from './inode.js';
import type { ProgramClient } from './program.js';
import { Semaphore } from './semaphore.js';
import { FileType, NfsDirent, NfsStats, statFsOf, type NfsStatFs } from './stat.js';
import { NfsReadStream, NfsWriteStream, type ReadStreamOptions, type WriteStreamOptions } from './streams.js';
import { RpcTransport, type DataTransport } from './transport.js';
import { newWritebackCounters, WriteBack, type WritebackCounters, type WritebackHost } from './writeback.js';
import type { LocalioClientStats } from '../localio/client.js';

/** What the client needs of LOCALIO (src/localio: LocalioClient), attached by connect(). */
export interface LocalioAttachment {
  /** The transport for a file while the server is local; undefined: RPC. */
  transportFor(fh: nfs_fh3): DataTransport | undefined;
  /** True once the server is known local (waits at most `timeoutMs` for a probe under way). */
  ready(timeoutMs: number): Promise<boolean>;
  /** The client dropped the file (no open handle, nothing cached). */
  fileReleased(fh: nfs_fh3): void;
  stats(): LocalioClientStats;
  close(): void;
}

/** Tuning of a client (all optional; see connect()). */
export interface ClientTuning extends AttrTimeouts {
  /** Largest READ / WRITE in bytes (default: the server's preference, at most 1 MiB). */
  rsize?: number;
  wsize?: number;
  /**
   * Largest read-ahead window in bytes (default 4 MiB; 0 turns read-ahead
   * off). Four 1 MiB READs in flight keep a loopback or LAN link busy; a
   * wider window only lets received data go cold in the CPU's caches before
   * the reader takes it (bench:client: a 1 GiB copy took 0.57 s at 4 MiB,
   * 0.66-0.72 s at 8 or 16 MiB).
   */
  readahead?: number;
  /** Lookup cache on (default) or off. */
  lookupCache?: boolean;
  /** Dirty memory limits, or an accountant shared with other clients. */
  dirty?: DirtyLimits | DirtyAccountant;
  /** WRITEs in flight at once (default 32). */
  maxWritesInFlight?: number;
  /** Write-back cache page size in bytes (default 64 KiB; a power of two, at least 4 KiB). */
  pageSize?: number;
  /** Partial chunks are written back after this many ms (default 5000; 0: only on sync, close or memory pressure). */
  writebackDelayMs?: number;
  /** Permission bits removed from the mode of created files and directories (default 0o022). */
  umask?: number;
}

/** What connect() found: where the export is and what the server said about it. */
export interface ClientParts {
  host: string;
  nfsPort: number;
  mountPort: number;
  /** The path given to MNT. */
  exportPath: string;
  /** The mounted path (the export path and the part looked up below it). */
  path: string;
  root: nfs_fh3;
  rootAttrs: fattr3;
  fsinfo: FSINFO3resok;
  nfsRpc: RpcClient;
  mountRpc: RpcClient;
  nfs: ProgramClient<typeof NFS_V3_TABLE>;
  mount: ProgramClient<typeof MOUNT_V3_TABLE>;
  soft: boolean;
}

/** Counters of a client, as returned by stats() (plain JSON). */
export interface ClientStats {
  transport: string;
  nfsOps: Record<string, number>;
  mountOps: Record<string, number>;
  /** Calls sent again after a reconnect. */
  retransmits: number;
  /** Socket writes that carried calls (calls made together share writes). */
  sends: number;
  /** Calls sent again because the server answered NFS3ERR_JUKEBOX. */
  jukeboxRetries: number;
  reads: number;
  bytesRead: number;
  writes: number;
  bytesWritten: number;
  cache: {
    attr: { hits: number; misses: number; entries: number };
    lookup: { hits: number; negativeHits: number; misses: number; entries: number };
    read: { hits: number; misses: number; readahead: number; invalidations: number };
  };
  writeback: WritebackCounters & {
    dirtyBytes: number;
    peakDirtyBytes: number;
    backgroundLimit: number;
    hardLimit: number;
    throttled: number;
    throttledMs: number;
  };
  /** LOCALIO: probes, grants, operations and bytes that bypassed RPC, fallbacks (clients made by connect()). */
  localio?: LocalioClientStats;
}

export interface MkdirOptions {
  recursive?: boolean;
  /** Default 0o777 (less the umask). */
  mode?: number;
}

export interface RmOptions {
  recursive?: boolean;
  /** Ignore a missing path. */
  force?: boolean;
}

export interface ReaddirOptions {
  withFileTypes?: boolean;
}

type TimeLike = number | string | Date;

const NF3DIR = FileType.DIR;
const NF3LNK = FileType.LNK;
const MAX_SYMLINKS = 40;
const ZERO_VERF = Buffer.alloc(8);

function keyOf(fh: nfs_fh3): string {
  return fh.data.toString('latin1');
}

/** A handle that does not keep a reply buffer alive. */
function ownFh(fh: nfs_fh3): nfs_fh3 {
  return { data: Buffer.from(fh.data) };
}

/** Components of a path relative to the mount, with '.' and '..' resolved lexically. */
export function pathComponents(path: string): string[] {
  if (typeof path !== 'string') throw new TypeError(`path must be a string, got ${typeof path}`);
  if (path.includes('\0')) throw codeError('EINVAL', 'path', path, 'path contains a NUL byte');
  return posix
    .normalize('/' + path)
    .split('/')
    .filter((c) => c !== '' && c !== '.' && c !== '..');
}

function noAttrs(): sattr3 {
  return { mode: undefined, uid: undefined, gid: undefined, size: undefined, atime: { set_it: 0 }, mtime: { set_it: 0 } };
}

function toTime(t: TimeLike): nfstime3 {
  let ms: number;
  if (t instanceof Date) ms = t.getTime();
  else if (typeof t === 'number') ms = t * 1000;
  else if (/^-?[0-9.]+$/.test(t)) ms = Number(t) * 1000;
  else ms = new Date(t).getTime();
  if (!Number.isFinite(ms) || ms < 0) throw new TypeError(`invalid time ${String(t)}`);
  const seconds = Math.floor(ms / 1000);
  return { seconds, nseconds: Math.round((ms - seconds * 1000) * 1e6) };
}

/** An NFSv3 client over one mounted export. Create with connect(). */
export class NfsClient implements FileHost, WritebackHost {
  /** Typed NFSv3 calls: `client.nfs.call('GETATTR', { object: fh })`. */
  readonly nfs: ProgramClient<typeof NFS_V3_TABLE>;
  /** Typed MOUNT v3 calls: `client.mount.call('EXPORT', undefined)`. */
  readonly mount: ProgramClient<typeof MOUNT_V3_TABLE>;
  /** The root handle of the mounted path. */
  readonly root: nfs_fh3;
  /** The server, and the ports used (given, or from the portmapper). */
  readonly host: string;
  readonly nfsPort: number;
  readonly mountPort: number;
  /** The path MNT was given (an export, or below one when the server allows it). */
  readonly exportPath: string;
  /** The server path that paths of this client are relative to. */
  readonly mountedPath: string;
  /** What FSINFO said about the file system. */
  readonly fsinfo: FSINFO3resok;
  /** Bytes per READ and per WRITE (FSINFO's preference, at most 1 MiB, or as tuned). */
  readonly rsize: number;
  readonly wsize: number;
  readonly maxFileSize: number;
  /** The dirty-memory accountant (share it with another client through the `dirty` option). */
  readonly accountant: DirtyAccountant;
  /** @internal Bounds the WRITEs in flight. */
  readonly writeSlots: Semaphore;
  /** Write-back cache page size (memory is charged in pages). */
  readonly pageSize: number;
  /** Largest WRITE the write-back cache sends: wsize, or less under a small dirty limit. */
  readonly chunkSize: number;
  readonly writebackDelayMs: number;
  /** @internal Free write-back pages for reuse. */
  readonly pages: PagePool;
  /** @internal Write-back counters (see stats()). */
  readonly counters: WritebackCounters = newWritebackCounters();

  private readonly parts: ClientParts;
  private readonly attrs: AttrCache;
  private readonly lookups: LookupCache;
  private readonly inodes = new Map<string, Inode>();
  private readonly getattrs = new Map<string, Promise<fattr3>>();
  private readonly readaheadMax: number;
  private readonly maxChunks: number;
  private readonly umask: number;
  private transportSelector: (fh: nfs_fh3) => DataTransport;
  /** @internal */
  readonly rpcTransport: DataTransport;
  private lio: LocalioAttachment | undefined;
  private readonly unsubscribe: () => void;
  private flushing = false;
  private closing: Promise<void> | undefined;
  private readonly io = { reads: 0, bytesRead: 0, readHits: 0, readMisses: 0, readahead: 0 };

  constructor(parts: ClientParts, tuning: ClientTuning = {}) {
    this.parts = parts;
    this.nfs = parts.nfs;
    this.mount = parts.mount;
    this.root = parts.root;
    this.host = parts.host;
    this.nfsPort = parts.nfsPort;
    this.mountPort = parts.mountPort;
    this.exportPath = parts.exportPath;
    this.mountedPath = parts.path;
    this.fsinfo = parts.fsinfo;
    const align = (n: number): number => Math.max(4096, n - (n % 4096));
    const fi = parts.fsinfo;
    this.rsize = align(Math.min(tuning.rsize ?? Math.min(fi.rtpref || 1 << 20, 1 << 20), fi.rtmax || 1 << 20));
    this.wsize = align(Math.min(tuning.wsize ?? Math.min(fi.wtpref || 1 << 20, 1 << 20), fi.wtmax || 1 << 20));
    this.maxFileSize = fi.maxfilesize > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(fi.maxfilesize);
    this.attrs = new AttrCache(tuning);
    this.lookups = new LookupCache(tuning.lookupCache ?? true);
    this.accountant = tuning.dirty instanceof DirtyAccountant ? tuning.dirty : new DirtyAccountant(tuning.dirty);
    this.writeSlots = new Semaphore(tuning.maxWritesInFlight ?? 32);
    const page = tuning.pageSize ?? 64 * 1024;
    if (page < 4096 || (page & (page - 1)) !== 0) throw new RangeError(`pageSize must be a power of two >= 4096, got ${page}`);
    // Pages must fit the hard limit a few times over, or writers would wait for one another.
    this.pageSize = Math.max(4096, Math.min(page, 2 ** Math.floor(Math.log2(Math.max(4096, this.accountant.hard / 4)))));
    // WRITEs of at most a quarter of the hard limit keep writeback flowing under a small limit.
    this.chunkSize = Math.max(this.pageSize, Math.min(this.wsize, Math.floor(this.accountant.hard / 4 / this.pageSize) * this.pageSize));
    this.pages = new PagePool(this.pageSize, () => this.accountant.hard - this.accountant.used);
    this.writebackDelayMs = tuning.writebackDelayMs ?? 5000;
    this.readaheadMax = Math.max(0, tuning.readahead ?? 4 << 20);
    this.maxChunks = Math.ceil(this.readaheadMax / this.rsize) + 4;
    this.umask = tuning.umask ?? 0o022;
    this.rpcTransport = new RpcTransport(this.nfs);
    this.transportSelector = () => this.rpcTransport;
    this.unsubscribe = this.accountant.onPressure(() => void this.relieve());
    this.attrs.update(keyOf(this.root), parts.rootAttrs);
  }

  // ---- the data-path seam ----

  /**
   * Route file data (READ, WRITE, COMMIT) through another transport, chosen
   * per file handle (a LOCALIO engine for files the server granted). The
   * default sends NFSv3 calls over RPC.
   */
  useTransport(select: (fh: nfs_fh3) => DataTransport | undefined): void {
    this.transportSelector = (fh) => select(fh) ?? this.rpcTransport;
  }

  /** @internal */
  transportFor(fh: nfs_fh3): DataTransport {
    return this.transportSelector(fh);
  }

  /** @internal LOCALIO picks the transport of each file from now on (connect() attaches it). */
  attachLocalio(l: LocalioAttachment): void {
    this.lio = l;
    this.useTransport((fh) => l.transportFor(fh));
  }

  /**
   * Whether file data bypasses RPC (LOCALIO): waits at most `timeoutMs` for
   * a probe under way (the first data operation waits up to 1 s by itself).
   */
  localioReady(timeoutMs = 1000): Promise<boolean> {
    return this.lio ? this.lio.ready(timeoutMs) : Promise.resolve(false);
  }

  // ---- attribute and lookup caches ----

  /** @internal Attributes fresh from the server (`k`: the handle's key, when the caller has it). */
  noteAttrs(fh: nfs_fh3, a: post_op_attr, k = keyOf(fh)): void {
    if (!a) return;
    this.attrs.update(k, a);
    this.inodes.get(k)?.noteAttrs(a);
  }

  /** @internal Attributes around our own WRITE or COMMIT of a file. */
  noteWcc(fh: nfs_fh3, wcc: wcc_data | undefined): void {
    if (!wcc?.after) return;
    const k = keyOf(fh);
    this.attrs.update(k, wcc.after);
    this.inodes.get(k)?.noteOwnChange(wcc.before, wcc.after);
  }

  /** @internal The server has [s, e) of the file from our WRITE: cached reads of it are stale. */
  dataWritten(fh: nfs_fh3, s: number, e: number): void {
    const inode = this.inodes.get(keyOf(fh));
    if (!inode) return;
    inode.readCache.dropRange(s, e);
    inode.readCache.dropShort();
  }

  /** A directory changed by our own call. */
  private noteDirWcc(dir: nfs_fh3, wcc: wcc_data | undefined): void {
    const k = keyOf(dir);
    this.lookups.dirChanged(k, wcc?.before && dirStamp(wcc.before), wcc?.after && dirStamp(wcc.after));
    if (wcc?.after) this.attrs.update(k, wcc.after);
    else this.attrs.expire(k);
  }

  /**
   * Attributes from the cache, or GETATTR when they are too old (or
   * `force`). `k`: the handle's key (an inode's, whose hash V8 has kept).
   */
  private getattr(fh: nfs_fh3, force = false, k = keyOf(fh)): Promise<fattr3> {
    if (!force) {
      const a = this.attrs.get(k);
      if (a) return Promise.resolve(a);
    }
    return this.fetchAttrs(fh, force, k);
  }

  /** GETATTR (one in flight per handle, unless `force`). */
  private fetchAttrs(fh: nfs_fh3, force: boolean, k: string): Promise<fattr3> {
    let p = this.getattrs.get(k);
    if (p && !force) return p;
    p = (async () => {
      try {
        const res = await this.nfs.call('GETATTR', { object: fh });
        if (res.status !== 0) throw new NfsStatusError(res.status, 'GETATTR');
        this.noteAttrs(fh, res.resok.obj_attributes);
        return res.resok.obj_attributes;
      } finally {
        if (this.getattrs.get(k) === p) this.getattrs.delete(k);
      }
    })();
    this.getattrs.set(k, p);
    return p;
  }

  /** One name in a directory, through the lookup cache; null when it does not exist. */
  private async lookupName(dir: nfs_fh3, dirAttrs: fattr3, name: string): Promise<nfs_fh3 | null> {
    const dk = keyOf(dir);
    const hit = this.lookups.get(dk, dirStamp(dirAttrs), name);
    if (hit) return hit.fh;
    const res = await this.nfs.call('LOOKUP', { what: { dir, name } });
    const dirAfter = res.status === 0 ? res.resok.dir_attributes : res.resfail.dir_attributes;
    this.noteAttrs(dir, dirAfter);
    const stamp = dirStamp(dirAfter ?? dirAttrs);
    if (res.status === nfsstat3.NFS3ERR_NOENT) {
      this.lookups.set(dk, stamp, name, null);
      return null;
    }
    if (res.status !== 0) throw new NfsStatusError(res.status, 'LOOKUP');
    const fh = ownFh(res.resok.object);
    this.noteAttrs(fh, res.resok.obj_attributes);
    this.lookups.set(dk, stamp, name, fh);
    return fh;
  }

  /**
   * Walk `comps` from the root. Symbolic links are followed in the middle,
   * and at the end when `follow` (ELOOP after 40); '..' in a link's target
   * goes up, never above the root.
   */
  private async walk(comps: string[], path: string, syscall: string, opts: { follow: boolean }): Promise<{ fh: nfs_fh3; attrs: fattr3 }> {
    const stack: nfs_fh3[] = [this.root];
    const queue = [...comps];
    let hops = 0;
    while (queue.length > 0) {
      const name = queue.shift()!;
      if (name === '..') {
        if (stack.length > 1) stack.pop();
        continue;
      }
      if (name === '.' || name === '') continue;
      const dir = stack[stack.length - 1]!;
      const last = queue.length === 0;
      const dirAttrs = await this.getattr(dir);
      if (dirAttrs.type !== NF3DIR) throw codeError('ENOTDIR', syscall, path);
      const fh = await this.lookupName(dir, dirAttrs, name);
      if (!fh) throw codeError('ENOENT', syscall, path);
      const attrs = await this.getattr(fh);
      if (attrs.type === NF3LNK && (!last || opts.follow)) {
        if (++hops > MAX_SYMLINKS) throw codeError('ELOOP', syscall, path);
        const target = await this.readlinkFh(fh);
        if (target.startsWith('/')) stack.length = 1;
        queue.unshift(...target.split('/'));
        continue;
      }
      stack.push(fh);
    }
    const fh = stack[stack.length - 1]!;
    return { fh, attrs: await this.getattr(fh) };
  }

  /** Resolve a path to its handle and attributes. */
  private async resolve(path: string, syscall: string, follow = true): Promise<{ fh: nfs_fh3; attrs: fattr3 }> {
    return this.retryStale(() => this.walk(pathComponents(path), path, syscall, { follow }), syscall, path);
  }

  /** The directory holding the last component of `path`, and that component. */
  private async resolveParent(path: string, syscall: string): Promise<{ dir: nfs_fh3; name: string }> {
    const comps = pathComponents(path);
    if (comps.length === 0) throw codeError(syscall === 'mkdir' ? 'EEXIST' : syscall === 'rmdir' ? 'EBUSY' : 'EINVAL', syscall, path);
    const name = comps.pop()!;
    const { fh, attrs } = await this.walk(comps, path, syscall, { follow: true });
    if (attrs.type !== NF3DIR) throw codeError('ENOTDIR', syscall, path);
    return { dir: fh, name };
  }

  /** A handle from the caches may be stale (the object was replaced behind us): look it up again once. */
  private async retryStale<T>(fn: () => Promise<T>, syscall: string, path: string): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof NfsStatusError && err.status === nfsstat3.NFS3ERR_STALE) {
        this.lookups.clear();
        this.attrs.clear();
        try {
          return await fn();
        } catch (err2) {
          throw toNfsError(err2, syscall, path);
        }
      }
      throw toNfsError(err, syscall, path);
    }
  }

  private async readlinkFh(fh: nfs_fh3): Promise<string> {
    const res = await this.nfs.call('READLINK', { symlink: fh });
    if (res.status !== 0) throw new NfsStatusError(res.status, 'READLINK');
    this.noteAttrs(fh, res.resok.symlink_attributes);
    return res.resok.data;
  }

  // ---- inodes ----

  private inodeFor(fh: nfs_fh3): Inode {
    const k = keyOf(fh);
    let inode = this.inodes.get(k);
    if (!inode) {
      inode = new Inode(k, ownFh(fh), this.rsize, this.maxChunks);
      const a = this.attrs.peek(k);
      if (a) inode.noteAttrs(a);
      this.inodes.set(k, inode);
    }
    return inode;
  }

  private writeback(inode: Inode): WriteBack {
    inode.wb ??= new WriteBack(inode.fh, this);
    return inode.wb;
  }

  private dropIfIdle(inode: Inode): void {
    if (inode.idle && this.inodes.get(inode.key) === inode) {
      inode.wb?.dispose();
      this.inodes.delete(inode.key);
      this.lio?.fileReleased(inode.fh);
    }
  }

  /** Memory passed the background threshold: write back and commit until it is under again. */
  private async relieve(): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    try {
      while (this.accountant.overBackground && !this.closing) {
        const files = [...this.inodes.values()].filter((i) => i.wb?.hasData);
        if (files.length === 0) break;
        await Promise.all(files.map((i) => i.wb!.writebackOnce()));
        for (const i of files) this.dropIfIdle(i);
        await yieldLoop();
      }
    } finally {
      this.flushing = false;
    }
  }

  // ---- FileHost: the file handles' IO ----

  /** @internal */
  localSize(inode: Inode): number {
    const a = this.attrs.peek(inode.key);
    return Math.max(a ? Number(a.size) : 0, inode.wb?.cachedEnd ?? 0);
  }

  /** @internal */
  async statInode(inode: Inode): Promise<NfsStats> {
    const a = await this.getattr(inode.fh, false, inode.key);
    return new NfsStats(a, this.wsize, BigInt(inode.wb?.cachedEnd ?? 0));
  }

  /** @internal */
  async syncInode(inode: Inode): Promise<void> {
    await inode.wb?.sync();
  }

  /** @internal */
  releaseInode(inode: Inode): void {
    inode.opens--;
    this.dropIfIdle(inode);
  }

  /** @internal */
  async truncateInode(inode: Inode, len: number, path: string): Promise<void> {
    await inode.wb?.sync();
    await this.setattrFh(inode.fh, { ...noAttrs(), size: BigInt(len) }, 'ftruncate', path);
    inode.readCache.clear();
  }

  /** @internal */
  async writeAt(inode: Inode, pos: number, data: Buffer): Promise<void> {
    const wb = this.writeback(inode);
    inode.readCache.dropRange(pos, pos + data.length);
    if (!(await wb.writeThrough(pos, data))) await wb.write(pos, data);
    // A read may have cached the old bytes while this write waited for memory.
    inode.readCache.dropRange(pos, pos + data.length);
  }

  private fetchChunk(inode: Inode, idx: number): Promise<ChunkData> {
    const size = this.rsize;
    const offset = idx * size;
    return (async () => {
      const t = this.transportFor(inode.fh);
      let res = await t.read(inode.fh, offset, size);
      this.io.reads++;
      this.io.bytesRead += res.data.length;
      this.noteAttrs(inode.fh, res.attrs, inode.key);
      if (res.data.length >= size || res.eof) {
        const whole: ChunkData = { data: res.data, eof: res.eof };
        if (res.release) whole.release = res.release;
        return whole;
      }
      // A short read that is not the end: read the rest of the chunk.
      const parts = [res.data];
      const releases = [res.release];
      let got = res.data.length;
      while (got < size) {
        res = await t.read(inode.fh, offset + got, size - got);
        this.io.reads++;
        this.io.bytesRead += res.data.length;
        this.noteAttrs(inode.fh, res.attrs, inode.key);
        if (res.data.length === 0) break;
        parts.push(res.data);
        releases.push(res.release);
        got += res.data.length;
        if (res.eof) break;
      }
      const data = Buffer.concat(parts, got);
      for (const release of releases) release?.();
      return { data, eof: res.eof || got < size };
    })();
  }

  private chunk(inode: Inode, idx: number): { chunk: Chunk; promise: Promise<ChunkData> } {
    const got = inode.readCache.get(idx, () => this.fetchChunk(inode, idx));
    if (got.hit) this.io.readHits++;
    else this.io.readMisses++;
    return got;
  }

  /**
   * Sequential reading: read the next chunks ahead, with a window that
   * doubles up to `readahead`. Returns whether the read was sequential.
   */
  private readAhead(inode: Inode, ra: ReadAheadState, pos: number, len: number, size: number): boolean {
    const sequential = pos === ra.next || (pos < ra.next && pos + len > ra.next);
    ra.next = pos + len;
    if (this.readaheadMax === 0 || !sequential) {
      ra.window = 0;
      return sequential;
    }
    ra.window = Math.min(ra.window === 0 ? this.rsize : ra.window * 2, this.readaheadMax);
    const end = Math.min(size, pos + len + ra.window);
    if (end <= pos + len) return true;
    const first = Math.floor((pos + len) / this.rsize);
    const last = Math.floor((end - 1) / this.rsize);
    for (let idx = first; idx <= last; idx++) {
      if (inode.readCache.has(idx)) continue;
      this.io.readahead++;
      inode.readCache.get(idx, () => this.fetchChunk(inode, idx)).promise.catch(() => undefined);
    }
    return true;
  }

  /**
   * A read that is not sequential and finds nothing cached asks the server
   * for exactly its bytes (a 4 KiB random read is a 4 KiB READ, not an
   * rsize one) and caches nothing: a random reader would not come back for
   * the rest of a chunk.
   */
  private async readUncached(inode: Inode, pos: number, len: number, buf: Buffer, off: number): Promise<number> {
    const t = this.transportFor(inode.fh);
    let done = 0;
    while (done < len) {
      const res = await t.read(inode.fh, pos + done, Math.min(len - done, this.rsize));
      this.io.reads++;
      this.io.bytesRead += res.data.length;
      this.noteAttrs(inode.fh, res.attrs, inode.key);
      res.data.copy(buf, off + done);
      res.release?.();
      done += res.data.length;
      if (res.eof || res.data.length === 0) break;
    }
    return this.overlayOwn(inode, pos, len, done, buf, off);
  }

  /** True when some chunk of [pos, pos+len) is in the read cache. */
  private anyChunkCached(inode: Inode, pos: number, len: number): boolean {
    const last = Math.floor((pos + len - 1) / this.rsize);
    for (let idx = Math.floor(pos / this.rsize); idx <= last; idx++) if (inode.readCache.has(idx)) return true;
    return false;
  }

  /**
   * Run a read and do it again (at most twice more) when our own cached
   * bytes it depended on were written back and released meanwhile: the READ
   * may have been answered before our WRITE was applied.
   */
  private consistentRead<T>(inode: Inode, pos: number, len: number, once: () => Promise<T>): Promise<T> {
    // Nothing of ours to be written back: one read, without another promise around it.
    if (!inode.wb) return once();
    return this.rereadWhileReleased(inode, pos, len, once);
  }

  private async rereadWhileReleased<T>(inode: Inode, pos: number, len: number, once: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const wb = inode.wb;
      const gen = wb?.generation ?? 0;
      const out = await once();
      if (attempt >= 2 || !wb || !wb.releasedSince(gen, pos)) return out;
      inode.readCache.dropRange(pos, pos + len);
      inode.readCache.dropShort();
    }
  }

  /** Fill the bytes of [pos, pos+len) that our own unwritten data covers or extends (after `done` from the server). */
  private overlayOwn(inode: Inode, pos: number, len: number, done: number, buf: Buffer, off: number): number {
    const wb = inode.wb;
    if (!wb?.hasData) return done;
    // Our own data not yet written back may lengthen the file and overrides what the server sent.
    const localEnd = Math.min(pos + len, wb.cachedEnd);
    if (localEnd > pos + done) {
      buf.fill(0, off + done, off + (localEnd - pos));
      done = localEnd - pos;
    }
    wb.overlay(pos, done, buf, off);
    return done;
  }

  /**
   * @internal A read done at once, or undefined (use readInto): LOCALIO
   * from the page cache. Nothing of ours can be written back while it runs,
   * so it needs no consistentRead.
   */
  readNow(inode: Inode, pos: number, len: number, buf: Buffer, off: number): number | undefined {
    const got = this.transportFor(inode.fh).readCached?.(inode.fh, buf, off, len, pos);
    if (got === undefined) return undefined;
    this.io.reads++;
    this.io.bytesRead += got;
    return this.overlayOwn(inode, pos, len, got, buf, off);
  }

  /** @internal */
  readInto(inode: Inode, ra: ReadAheadState, pos: number, len: number, buf: Buffer, off: number): Promise<number> {
    if (this.transportFor(inode.fh).readDirect) return this.readIntoDirect(inode, ra, pos, len, buf, off);
    // No promise of its own when the attributes are cached (each one is a turn of the microtask queue per read).
    const attrs = this.attrs.get(inode.key);
    if (attrs) return this.readIntoCached(inode, ra, pos, len, buf, off, attrs);
    return this.fetchAttrs(inode.fh, false, inode.key).then((a) => this.readIntoCached(inode, ra, pos, len, buf, off, a));
  }

  /** Straight into the caller's buffer (LOCALIO), no read cache; through the cache when the file cannot be read so now. */
  private async readIntoDirect(inode: Inode, ra: ReadAheadState, pos: number, len: number, buf: Buffer, off: number): Promise<number> {
    const t = this.transportFor(inode.fh);
    let fellBack = false;
    const n = await this.consistentRead(inode, pos, len, async () => {
      const got = await t.readDirect!(inode.fh, buf, off, len, pos);
      if (got === undefined) {
        fellBack = true;
        return 0;
      }
      this.io.reads++;
      this.io.bytesRead += got;
      return this.overlayOwn(inode, pos, len, got, buf, off);
    });
    if (!fellBack) return n;
    return this.readIntoCached(inode, ra, pos, len, buf, off, await this.getattr(inode.fh, false, inode.key));
  }

  /** A read through the read cache (or, when random, a READ of its own), with the file's current attributes. */
  private readIntoCached(inode: Inode, ra: ReadAheadState, pos: number, len: number, buf: Buffer, off: number, attrs: fattr3): Promise<number> {
    if (attrs.type === NF3DIR) return Promise.reject(new NfsStatusError(nfsstat3.NFS3ERR_ISDIR, 'READ'));
    const sequential = this.readAhead(inode, ra, pos, len, Number(attrs.size));
    if (!sequential && !this.anyChunkCached(inode, pos, len)) {
      return this.consistentRead(inode, pos, len, () => this.readUncached(inode, pos, len, buf, off));
    }
    return this.consistentRead(inode, pos, len, async () => {
      let done = 0;
      while (done < len) {
        const p = pos + done;
        const idx = Math.floor(p / this.rsize);
        const entry = this.chunk(inode, idx);
        // Counted from now: the chunk's buffer is not given back while a reader is waiting to copy out of it.
        entry.chunk.copying++;
        let c: ChunkData;
        try {
          c = await entry.promise;
        } finally {
          entry.chunk.copying--;
        }
        const within = p - idx * this.rsize;
        const avail = c.data.length - within;
        if (avail <= 0) break;
        const n = Math.min(avail, len - done);
        c.data.copy(buf, off + done, within, within + n);
        done += n;
        // A sequential reader is done with a chunk it read to the end: let it
        // go, or the least-recently-used order would drop the chunks read
        // ahead (older, not yet touched) before the ones already consumed.
        if (sequential && within + n >= this.rsize) inode.readCache.drop(idx);
        // Copied out: the buffer may go back to the pool (when nobody else can reach it).
        inode.readCache.recycle(idx, entry.chunk, c);
        if (c.data.length < this.rsize) break; // the end of the server's data
      }
      return this.overlayOwn(inode, pos, len, done, buf, off);
    });
  }

  /**
   * @internal The next bytes at `pos` (at most `max`, within one chunk) as
   * a view into the read cache. Lent (`borrow` false): the chunk's buffer
   * is never reused. Borrowed: it goes back to the pool once `release` has
   * been called (and nobody else reads from it).
   */
  async readView(inode: Inode, ra: ReadAheadState, pos: number, max: number, borrow = false): Promise<{ data: Buffer; release: () => void }> {
    const attrs = await this.getattr(inode.fh, false, inode.key);
    if (attrs.type === NF3DIR) throw new NfsStatusError(nfsstat3.NFS3ERR_ISDIR, 'READ');
    const idx = Math.floor(pos / this.rsize);
    const within = pos - idx * this.rsize;
    const want = Math.min(max, this.rsize - within);
    this.readAhead(inode, ra, pos, want, Number(attrs.size));
    return this.consistentRead(inode, pos, want, async () => {
      const entry = this.chunk(inode, idx);
      if (borrow) entry.chunk.copying++;
      else entry.chunk.lent = true;
      let released = !borrow;
      const release = (): void => {
        if (released) return;
        released = true;
        entry.chunk.copying--;
        entry.promise.then((c) => inode.readCache.recycle(idx, entry.chunk, c), () => undefined);
      };
      let c: ChunkData;
      try {
        c = await entry.promise;
      } catch (err) {
        release();
        throw err;
      }
      let view = c.data.subarray(Math.min(within, c.data.length), Math.min(within + want, c.data.length));
      // Once a reader reaches the chunk's end, the cache lets it go (the views out keep their buffer).
      if (within + want >= c.data.length) inode.readCache.drop(idx);
      const wb = inode.wb;
      if (wb?.hasData) {
        const localEnd = Math.min(pos + want, wb.cachedEnd);
        const n = Math.max(view.length, localEnd - pos);
        // Copy when our bytes override the server's, or lengthen the file past its end (a hole reads as zeros).
        if (n > view.length || (n > 0 && wb.overlaps(pos, n))) {
          const copy = Buffer.alloc(n);
          view.copy(copy);
          wb.overlay(pos, n, copy, 0);
          release();
          return { data: copy, release: () => undefined };
        }
      }
      return { data: view, release };
    });
  }

  // ---- fs-like API ----

  /**
   * Open a file. `flags` as Node's ('r', 'r+', 'w', 'w+', 'a', 'a+', 'wx',
   * ... or O_* numbers); `mode` for a created file (default 0o666, less the
   * umask). Revalidates the directory and the file (close-to-open).
   */
  async open(path: string, flags: string | number = 'r', mode = 0o666): Promise<NfsFileHandle> {
    const m = parseOpenFlags(flags);
    const fileMode = mode & ~this.umask & 0o7777;
    const run = async (): Promise<NfsFileHandle> => {
      if (pathComponents(path).length === 0) {
        // The mount's root: a directory, openable for reading only.
        if (m.write) throw codeError('EISDIR', 'open', path);
        if (m.create && m.exclusive) throw codeError('EEXIST', 'open', path);
        const attrs = await this.checkAccess(this.root, m.read, false);
        const inode = this.inodeFor(this.root);
        inode.noteAttrs(attrs);
        inode.opens++;
        return new NfsFileHandle(this, inode, path, m);
      }
      const { dir, name } = await this.resolveParent(path, 'open');
      const dirAttrs = await this.getattr(dir, true); // close-to-open: see what others did
      let fh = await this.lookupName(dir, dirAttrs, name);
      let attrs: fattr3 | undefined;
      if (fh) {
        if (m.create && m.exclusive) throw codeError('EEXIST', 'open', path);
        attrs = await this.getattr(fh);
        if (attrs.type === NF3LNK) {
          const r = await this.resolve(path, 'open', true);
          fh = r.fh;
        }
        attrs = await this.checkAccess(fh, m.read, m.write);
        if (attrs.type === NF3DIR && m.write) throw codeError('EISDIR', 'open', path);
        if (m.truncate && m.write && attrs.type !== NF3DIR) {
          const inode = this.inodes.get(keyOf(fh));
          if (inode?.wb?.hasData) await inode.wb.sync();
          if (attrs.size !== 0n) attrs = await this.setattrFh(fh, { ...noAttrs(), size: 0n }, 'open', path);
          inode?.readCache.clear();
        }
      } else {
        if (!m.create) throw codeError('ENOENT', 'open', path);
        const created = await this.createFile(dir, name, fileMode, m.exclusive, path);
        fh = created.fh;
        attrs = created.attrs;
      }
      const inode = this.inodeFor(fh);
      inode.noteAttrs(attrs);
      inode.opens++;
      return new NfsFileHandle(this, inode, path, m);
    };
    return this.retryStale(run, 'open', path);
  }

  /** ACCESS as close-to-open revalidation: checks the rights and brings fresh attributes. */
  private async checkAccess(fh: nfs_fh3, read: boolean, write: boolean): Promise<fattr3> {
    const want = (read ? ACCESS3_READ : 0) | (write ? ACCESS3_MODIFY : 0);
    const res = await this.nfs.call('ACCESS', { object: fh, access: want });
    if (res.status !== 0) throw new NfsStatusError(res.status, 'ACCESS');
    this.noteAttrs(fh, res.resok.obj_attributes);
    if ((res.resok.access & want) !== want) throw new NfsStatusError(nfsstat3.NFS3ERR_ACCES, 'ACCESS');
    return res.resok.obj_attributes ?? (await this.getattr(fh, true));
  }

  private async createFile(dir: nfs_fh3, name: string, mode: number, exclusive: boolean, path: string): Promise<{ fh: nfs_fh3; attrs: fattr3 }> {
    const res = await this.nfs.call('CREATE', { where: { dir, name }, how: { mode: exclusive ? 1 : 0, obj_attributes: { ...noAttrs(), mode } } });
    this.noteDirWcc(dir, res.status === 0 ? res.resok.dir_wcc : res.resfail.dir_wcc);
    if (res.status !== 0) throw statusError(res.status, 'open', path);
    return this.newObject(dir, name, res.resok.obj, res.resok.obj_attributes);
  }

  /** The handle and attributes of an object we just made (LOOKUP when the reply left them out). */
  private async newObject(dir: nfs_fh3, name: string, fh: nfs_fh3 | undefined, attrs: post_op_attr): Promise<{ fh: nfs_fh3; attrs: fattr3 }> {
    const dk = keyOf(dir);
    if (!fh) {
      this.lookups.forget(dk, name);
      const dirAttrs = await this.getattr(dir, true);
      const found = await this.lookupName(dir, dirAttrs, name);
      if (!found) throw new NfsStatusError(nfsstat3.NFS3ERR_NOENT, 'LOOKUP');
      return { fh: found, attrs: await this.getattr(found) };
    }
    const own = ownFh(fh);
    this.noteAttrs(own, attrs);
    const dirAttrs = this.attrs.peek(dk);
    if (dirAttrs) this.lookups.set(dk, dirStamp(dirAttrs), name, own);
    return { fh: own, attrs: attrs ?? (await this.getattr(own, true)) };
  }

  private async setattrFh(fh: nfs_fh3, a: sattr3, syscall: string, path: string): Promise<fattr3> {
    const res = await this.nfs.call('SETATTR', { object: fh, new_attributes: a, guard: undefined });
    const wcc = res.status === 0 ? res.resok.obj_wcc : res.resfail.obj_wcc;
    if (wcc.after) this.noteAttrs(fh, wcc.after);
    else this.attrs.expire(keyOf(fh));
    if (res.status !== 0) throw statusError(res.status, syscall, path);
    return wcc.after ?? (await this.getattr(fh, true));
  }

  /** Attributes of a path (following a final symbolic link). */
  async stat(path: string): Promise<NfsStats> {
    const { fh, attrs } = await this.resolve(path, 'stat', true);
    return new NfsStats(attrs, this.wsize, BigInt(this.inodes.get(keyOf(fh))?.wb?.cachedEnd ?? 0));
  }

  /** Attributes of a path (a final symbolic link itself). */
  async lstat(path: string): Promise<NfsStats> {
    const { fh, attrs } = await this.resolve(path, 'lstat', false);
    return new NfsStats(attrs, this.wsize, BigInt(this.inodes.get(keyOf(fh))?.wb?.cachedEnd ?? 0));
  }

  /**
   * The names in a directory (READDIRPLUS, paged with cookies and the
   * cookie verifier; '.' and '..' left out). With `withFileTypes`, NfsDirent
   * objects with the entries' attributes as `stats`.
   */
  readdir(path: string, opts: ReaddirOptions & { withFileTypes: true }): Promise<NfsDirent[]>;
  readdir(path: string, opts?: ReaddirOptions & { withFileTypes?: false }): Promise<string[]>;
  async readdir(path: string, opts: ReaddirOptions = {}): Promise<string[] | NfsDirent[]> {
    const { fh, attrs } = await this.resolve(path, 'scandir', true);
    if (attrs.type !== NF3DIR) throw codeError('ENOTDIR', 'scandir', path);
    try {
      const entries = await this.listDir(fh);
      if (!opts.withFileTypes) return entries.map((e) => e.name);
      const parent = path;
      const out: NfsDirent[] = [];
      for (const e of entries) {
        let a = e.attrs;
        if (!a) {
          // The server left the attributes out: look the name up.
          const dirAttrs = await this.getattr(fh);
          const child = await this.lookupName(fh, dirAttrs, e.name);
          a = child ? await this.getattr(child) : undefined;
          if (!a) continue; // removed meanwhile
        }
        out.push(new NfsDirent(e.name, parent, a.type, e.fileid, new NfsStats(a, this.wsize)));
      }
      return out;
    } catch (err) {
      throw toNfsError(err, 'scandir', path);
    }
  }

  private async listDir(dir: nfs_fh3): Promise<Array<{ name: string; fileid: bigint; attrs?: fattr3 }>> {
    const dk = keyOf(dir);
    const dircount = Math.max(4096, Math.min(this.fsinfo.dtpref || 16384, 64 * 1024));
    const maxcount = Math.max(dircount * 4, Math.min(this.rsize, 256 * 1024));
    let plus = true;
    for (let restarts = 0; ; restarts++) {
      const out: Array<{ name: string; fileid: bigint; attrs?: fattr3 }> = [];
      let cookie = 0n;
      let verf: Buffer = ZERO_VERF;
      let badCookie = false;
      for (;;) {
        if (plus) {
          const res = await this.nfs.call('READDIRPLUS', { dir, cookie, cookieverf: verf, dircount, maxcount });
          if (res.status === nfsstat3.NFS3ERR_NOTSUPP && out.length === 0) {
            plus = false;
            continue;
          }
          this.noteAttrs(dir, res.status === 0 ? res.resok.dir_attributes : res.resfail.dir_attributes);
          if (res.status === nfsstat3.NFS3ERR_BAD_COOKIE && restarts < 3) {
            badCookie = true;
            break;
          }
          if (res.status !== 0) throw new NfsStatusError(res.status, 'READDIRPLUS');
          const ok = res.resok;
          verf = Buffer.from(ok.cookieverf);
          const stamp = ok.dir_attributes ? dirStamp(ok.dir_attributes) : undefined;
          for (const e of ok.reply.entries) {
            if (e.name === '.' || e.name === '..') continue;
            out.push({ name: e.name, fileid: e.fileid, attrs: e.name_attributes });
            if (e.name_handle && e.name_handle.data.length > 0) {
              const fh = ownFh(e.name_handle);
              if (e.name_attributes) this.noteAttrs(fh, e.name_attributes);
              if (stamp) this.lookups.set(dk, stamp, e.name, fh);
            }
          }
          if (ok.reply.eof) return out;
          const lastEntry = ok.reply.entries[ok.reply.entries.length - 1];
          if (!lastEntry) throw new NfsStatusError(nfsstat3.NFS3ERR_IO, 'READDIRPLUS'); // no progress and no end
          cookie = lastEntry.cookie;
        } else {
          const res = await this.nfs.call('READDIR', { dir, cookie, cookieverf: verf, count: dircount });
          this.noteAttrs(dir, res.status === 0 ? res.resok.dir_attributes : res.resfail.dir_attributes);
          if (res.status === nfsstat3.NFS3ERR_BAD_COOKIE && restarts < 3) {
            badCookie = true;
            break;
          }
          if (res.status !== 0) throw new NfsStatusError(res.status, 'READDIR');
          const ok = res.resok;
          verf = Buffer.from(ok.cookieverf);
          for (const e of ok.reply.entries) {
            if (e.name === '.' || e.name === '..') continue;
            out.push({ name: e.name, fileid: e.fileid });
          }
          if (ok.reply.eof) return out;
          const lastEntry = ok.reply.entries[ok.reply.entries.length - 1];
          if (!lastEntry) throw new NfsStatusError(nfsstat3.NFS3ERR_IO, 'READDIR');
          cookie = lastEntry.cookie;
        }
      }
      // The directory changed under the listing (NFS3ERR_BAD_COOKIE): start it again.
      if (!badCookie) return out;
    }
  }

  /**
   * Make a directory. With `recursive`, make the missing parents too and
   * resolve with the first directory made (undefined when all existed).
   */
  async mkdir(path: string, opts: MkdirOptions | number = {}): Promise<string | undefined> {
    const o = typeof opts === 'number' ? { mode: opts } : opts;
    const mode = (o.mode ?? 0o777) & ~this.umask & 0o7777;
    if (!o.recursive) {
      const { dir, name } = await this.resolveParent(path, 'mkdir');
      await this.mkdirIn(dir, name, mode, path);
      return undefined;
    }
    const comps = pathComponents(path);
    let dir = this.root;
    let first: string | undefined;
    for (let i = 0; i < comps.length; i++) {
      const name = comps[i]!;
      const sub = comps.slice(0, i + 1).join('/');
      let r: { fh: nfs_fh3; attrs: fattr3 } | undefined;
      try {
        r = await this.walk(comps.slice(0, i + 1), path, 'mkdir', { follow: true });
      } catch (err) {
        if (!(err instanceof NfsError) || err.code !== 'ENOENT') throw toNfsError(err, 'mkdir', path);
      }
      if (r) {
        if (r.attrs.type !== NF3DIR) throw codeError(i === comps.length - 1 ? 'EEXIST' : 'ENOTDIR', 'mkdir', path);
        dir = r.fh;
        continue;
      }
      try {
        dir = await this.mkdirIn(dir, name, mode, path);
        first ??= sub;
      } catch (err) {
        if (!(err instanceof NfsError) || err.code !== 'EEXIST') throw err;
        dir = (await this.walk(comps.slice(0, i + 1), path, 'mkdir', { follow: true })).fh; // made by someone else meanwhile
      }
    }
    return first;
  }

  private async mkdirIn(dir: nfs_fh3, name: string, mode: number, path: string): Promise<nfs_fh3> {
    const res = await this.nfs.call('MKDIR', { where: { dir, name }, attributes: { ...noAttrs(), mode } });
    this.noteDirWcc(dir, res.status === 0 ? res.resok.dir_wcc : res.resfail.dir_wcc);
    if (res.status !== 0) throw statusError(res.status, 'mkdir', path);
    try {
      return (await this.newObject(dir, name, res.resok.obj, res.resok.obj_attributes)).fh;
    } catch (err) {
      throw toNfsError(err, 'mkdir', path);
    }
  }

  /** Remove a file or a symbolic link. */
  async unlink(path: string): Promise<void> {
    const { dir, name } = await this.resolveParent(path, 'unlink');
    await this.removeIn(dir, name, 'REMOVE', 'unlink', path);
  }

  /** Remove an empty directory. */
  async rmdir(path: string): Promise<void> {
    const { dir, name } = await this.resolveParent(path, 'rmdir');
    await this.removeIn(dir, name, 'RMDIR', 'rmdir', path);
  }

  private async removeIn(dir: nfs_fh3, name: string, proc: 'REMOVE' | 'RMDIR', syscall: string, path: string): Promise<void> {
    const res = await this.nfs.call(proc, { object: { dir, name } });
    this.noteDirWcc(dir, res.status === 0 ? res.resok.dir_wcc : res.resfail.dir_wcc);
    if (res.status !== 0) {
      // Linux reports unlink of a directory as EISDIR (NFS servers say EISDIR, EPERM or EACCES).
      throw statusError(res.status, syscall, path);
    }
    const dk = keyOf(dir);
    const dirAttrs = this.attrs.peek(dk);
    if (dirAttrs) this.lookups.set(dk, dirStamp(dirAttrs), name, null);
    else this.lookups.forget(dk, name);
  }

  /**
   * Remove a file, a link or (with `recursive`) a directory tree. With
   * `force`, a missing path is not an error.
   */
  async rm(path: string, opts: RmOptions = {}): Promise<void> {
    let st: NfsStats;
    try {
      st = await this.lstat(path);
    } catch (err) {
      if (opts.force && err instanceof NfsError && err.code === 'ENOENT') return;
      throw toNfsError(err, 'rm', path);
    }
    if (!st.isDirectory()) {
      try {
        await this.unlink(path);
      } catch (err) {
        if (opts.force && err instanceof NfsError && err.code === 'ENOENT') return;
        throw err;
      }
      return;
    }
    if (!opts.recursive) throw codeError('EISDIR', 'rm', path, 'is a directory (use recursive)');
    await this.rmTree(path, opts.force === true);
  }

  private async rmTree(path: string, force: boolean): Promise<void> {
    const entries = await this.readdir(path, { withFileTypes: true });
    const base = pathComponents(path).join('/');
    const child = (n: string): string => (base ? `${base}/${n}` : n);
    // A few removals at a time: enough to hide the round trips, not a flood.
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < entries.length) {
        const e = entries[next++]!;
        try {
          if (e.isDirectory()) await this.rmTree(child(e.name), force);
          else await this.unlink(child(e.name));
        } catch (err) {
          if (!(force && err instanceof NfsError && err.code === 'ENOENT')) throw err;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(8, entries.length) }, worker));
    if (base === '') return; // the mount's root itself stays
    try {
      await this.rmdir(path);
    } catch (err) {
      if (!(force && err instanceof NfsError && err.code === 'ENOENT')) throw err;
    }
  }

  /** Rename (or move) a file or directory; replaces an existing target as rename(2) does. */
  async rename(oldPath: string, newPath: string): Promise<void> {
    const from = await this.resolveParent(oldPath, 'rename');
    const to = await this.resolveParent(newPath, 'rename');
    const res = await this.nfs.call('RENAME', { from: { dir: from.dir, name: from.name }, to: { dir: to.dir, name: to.name } });
    const ok = res.status === 0 ? res.resok : res.resfail;
    this.noteDirWcc(from.dir, ok.fromdir_wcc);
    this.noteDirWcc(to.dir, ok.todir_wcc);
    this.lookups.forget(keyOf(from.dir), from.name);
    this.lookups.forget(keyOf(to.dir), to.name);
    if (res.status !== 0) throw new NfsError({ code: statusError(res.status, 'rename').code, syscall: 'rename', path: oldPath, dest: newPath, nfsStatus: res.status });
  }

  /** Make a hard link `newPath` to `existingPath`. */
  async link(existingPath: string, newPath: string): Promise<void> {
    const { fh } = await this.resolve(existingPath, 'link', false);
    const to = await this.resolveParent(newPath, 'link');
    const res = await this.nfs.call('LINK', { file: fh, link: { dir: to.dir, name: to.name } });
    const r = res.status === 0 ? res.resok : res.resfail;
    this.noteAttrs(fh, r.file_attributes);
    this.noteDirWcc(to.dir, r.linkdir_wcc);
    if (res.status !== 0) throw new NfsError({ code: statusError(res.status, 'link').code, syscall: 'link', path: existingPath, dest: newPath, nfsStatus: res.status });
    const dk = keyOf(to.dir);
    const dirAttrs = this.attrs.peek(dk);
    if (dirAttrs) this.lookups.set(dk, dirStamp(dirAttrs), to.name, ownFh(fh));
  }

  /** Make a symbolic link at `path` whose content is `target`. */
  async symlink(target: string, path: string): Promise<void> {
    const { dir, name } = await this.resolveParent(path, 'symlink');
    const res = await this.nfs.call('SYMLINK', { where: { dir, name }, symlink: { symlink_attributes: { ...noAttrs(), mode: 0o777 }, symlink_data: target } });
    this.noteDirWcc(dir, res.status === 0 ? res.resok.dir_wcc : res.resfail.dir_wcc);
    if (res.status !== 0) throw new NfsError({ code: statusError(res.status, 'symlink').code, syscall: 'symlink', path: target, dest: path, nfsStatus: res.status });
    try {
      await this.newObject(dir, name, res.resok.obj, res.resok.obj_attributes);
    } catch (err) {
      throw toNfsError(err, 'symlink', path);
    }
  }

  /** The content of a symbolic link. */
  async readlink(path: string): Promise<string> {
    const { fh, attrs } = await this.resolve(path, 'readlink', false);
    if (attrs.type !== NF3LNK) throw codeError('EINVAL', 'readlink', path);
    try {
      return await this.readlinkFh(fh);
    } catch (err) {
      throw toNfsError(err, 'readlink', path);
    }
  }

  /** Change permission bits. */
  async chmod(path: string, mode: number): Promise<void> {
    const { fh } = await this.resolve(path, 'chmod', true);
    await this.setattrFh(fh, { ...noAttrs(), mode: mode & 0o7777 }, 'chmod', path);
  }

  /** Change owner and group (-1 leaves one unchanged). */
  async chown(path: string, uid: number, gid: number): Promise<void> {
    const { fh } = await this.resolve(path, 'chown', true);
    await this.setattrFh(fh, { ...noAttrs(), uid: uid === -1 ? undefined : uid, gid: gid === -1 ? undefined : gid }, 'chown', path);
  }

  /** Set a file's length (cached data of the file is written back first). */
  async truncate(path: string, len = 0): Promise<void> {
    const { fh } = await this.resolve(path, 'truncate', true);
    const inode = this.inodes.get(keyOf(fh));
    if (inode) return this.truncateInode(inode, len, path);
    await this.setattrFh(fh, { ...noAttrs(), size: BigInt(len) }, 'truncate', path);
  }

  /** Set access and modification times (numbers are seconds since the epoch, as Node's). */
  async utimes(path: string, atime: TimeLike, mtime: TimeLike): Promise<void> {
    const { fh } = await this.resolve(path, 'utime', true);
    // Data written back later would move mtime again.
    await this.inodes.get(keyOf(fh))?.wb?.sync();
    await this.setattrFh(fh, { ...noAttrs(), atime: { set_it: 2, atime: toTime(atime) }, mtime: { set_it: 2, mtime: toTime(mtime) } }, 'utime', path);
  }

  /**
   * Check access as Node's fs.access: F_OK (0) existence, R_OK (4), W_OK (2),
   * X_OK (1), asked of the server with ACCESS.
   */
  async access(path: string, mode = 0): Promise<void> {
    const { fh, attrs } = await this.resolve(path, 'access', true);
    if (mode === 0) return;
    const dir = attrs.type === NF3DIR;
    let want = 0;
    if (mode & 4) want |= ACCESS3_READ;
    if (mode & 2) want |= ACCESS3_MODIFY | ACCESS3_EXTEND | (dir ? ACCESS3_DELETE : 0);
    if (mode & 1) want |= dir ? ACCESS3_LOOKUP : ACCESS3_EXECUTE;
    const res = await this.nfs.call('ACCESS', { object: fh, access: want });
    if (res.status !== 0) throw statusError(res.status, 'access', path);
    this.noteAttrs(fh, res.resok.obj_attributes);
    if ((res.resok.access & want) !== want) throw codeError('EACCES', 'access', path);
  }

  /** File system figures (FSSTAT) for the file system holding `path`. */
  async statfs(path = ''): Promise<NfsStatFs> {
    const { fh } = await this.resolve(path, 'statfs', true);
    const res = await this.nfs.call('FSSTAT', { fsroot: fh });
    if (res.status !== 0) throw statusError(res.status, 'statfs', path);
    this.noteAttrs(fh, res.resok.obj_attributes);
    return statFsOf(res.resok);
  }

  /** The whole file (as a string when `encoding` is given). */
  readFile(path: string, opts?: { encoding?: null }): Promise<Buffer>;
  readFile(path: string, opts: { encoding: BufferEncoding } | BufferEncoding): Promise<string>;
  async readFile(path: string, opts?: { encoding?: BufferEncoding | null } | BufferEncoding): Promise<Buffer | string> {
    const encoding = typeof opts === 'string' ? opts : opts?.encoding;
    const h = await this.open(path, 'r');
    try {
      const parts: Buffer[] = [];
      let pos = 0;
      for (;;) {
        const chunk = await h.readChunk(pos, this.rsize);
        if (chunk.length === 0) break;
        parts.push(chunk);
        pos += chunk.length;
      }
      const data = parts.length === 1 ? Buffer.from(parts[0]!) : Buffer.concat(parts, pos);
      return encoding ? data.toString(encoding) : data;
    } finally {
      await h.close();
    }
  }

  /** Replace (or create) a file with `data`; resolves once it is committed. */
  async writeFile(path: string, data: string | Buffer | Uint8Array, opts: { mode?: number; flag?: string; encoding?: BufferEncoding } | BufferEncoding = {}): Promise<void> {
    const o = typeof opts === 'string' ? { encoding: opts } : opts;
    const buf = typeof data === 'string' ? Buffer.from(data, o.encoding ?? 'utf8') : data;
    const h = await this.open(path, o.flag ?? 'w', o.mode ?? 0o666);
    let failed = false;
    try {
      await h.write(buf, 0, buf.byteLength, o.flag?.startsWith('a') ? null : 0);
    } catch (err) {
      failed = true;
      await h.close().catch(() => undefined);
      throw err;
    } finally {
      if (!failed) await h.close();
    }
  }

  /** Append to (or create) a file. */
  appendFile(path: string, data: string | Buffer | Uint8Array, opts: { mode?: number; encoding?: BufferEncoding } = {}): Promise<void> {
    return this.writeFile(path, data, { ...opts, flag: 'a' });
  }

  /** A Readable of the file's bytes [start, end] (end inclusive, as Node's). */
  createReadStream(path: string, opts: ReadStreamOptions = {}): NfsReadStream {
    return new NfsReadStream(() => this.open(path, opts.flags ?? 'r'), path, opts);
  }

  /** A Writable to the file; 'finish' once everything is written back and committed. */
  createWriteStream(path: string, opts: WriteStreamOptions = {}): NfsWriteStream {
    return new NfsWriteStream(() => this.open(path, opts.flags ?? 'w', opts.mode ?? 0o666), path, opts);
  }

  /** Write back and commit every file with cached data. */
  async syncAll(): Promise<void> {
    await Promise.all([...this.inodes.values()].map((i) => i.wb?.sync()));
  }

  /** Counters since connect, as plain JSON. */
  stats(): ClientStats {
    let invalidations = 0;
    for (const i of this.inodes.values()) invalidations += i.invalidations;
    const a = this.accountant;
    return {
      transport: this.rpcTransport.kind,
      nfsOps: { ...this.nfs.counts },
      mountOps: { ...this.mount.counts },
      retransmits: this.parts.nfsRpc.retransmits + this.parts.mountRpc.retransmits,
      sends: this.parts.nfsRpc.sends + this.parts.mountRpc.sends,
      jukeboxRetries: this.nfs.laterRetries,
      reads: this.io.reads,
      bytesRead: this.io.bytesRead,
      writes: this.counters.writes,
      bytesWritten: this.counters.bytesWritten,
      cache: {
        attr: { hits: this.attrs.hits, misses: this.attrs.misses, entries: this.attrs.size },
        lookup: { hits: this.lookups.hits, negativeHits: this.lookups.negativeHits, misses: this.lookups.misses, entries: this.lookups.size },
        read: { hits: this.io.readHits, misses: this.io.readMisses, readahead: this.io.readahead, invalidations },
      },
      writeback: {
        ...this.counters,
        dirtyBytes: a.used,
        peakDirtyBytes: a.peak,
        backgroundLimit: a.background,
        hardLimit: a.hard,
        throttled: a.throttled,
        throttledMs: a.throttledMs,
      },
      localio: this.lio?.stats(),
    };
  }

  /**
   * Write back and commit everything, tell the server we unmount (UMNT),
   * and close the connections. Rejects with the first writeback error.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      let first: unknown;
      await Promise.all(
        [...this.inodes.values()].map(async (i) => {
          try {
            await i.wb?.sync();
          } catch (err) {
            first ??= err;
          }
          const err = i.wb?.unreportedError();
          if (err !== undefined) first ??= err;
          i.wb?.dispose();
        }),
      );
      this.unsubscribe();
      this.pages.clear();
      this.lio?.close();
      // UMNT is advisory (servers keep no state that matters for NFSv3): do not wait long for it.
      await this.mount.call('UMNT', this.exportPath, { timeoutMs: 1000 }).catch(() => undefined);
      this.parts.nfsRpc.close();
      this.parts.mountRpc.close();
      if (first !== undefined) throw toNfsError(first, 'close');
    })();
    return this.closing;
  }
}
