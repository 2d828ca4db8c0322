// LocalBackend: exports a real directory.
//
// Node ids name inodes, not paths (20 bytes):
//   0     format (1)
//   1     flags: 1 = directory, 2 = stamp is an index tag
//   2..9  inode number
//   10..17 stamp: birth time in ns (statx btime), or a random tag kept in the
//         index where the file system has no birth times
//   18..19 incarnation: tells apart an inode that was freed and reused
//         within one tick of the birth-time clock
// An id is turned into a path through the inode index (inode -> parent,
// name), verified with lstat, and repaired by a bounded search when files
// were moved behind our back. Nothing is resolved outside the root: symlinks
// are never followed (lstat, O_NOFOLLOW, O_PATH descriptors), `..` of the
// root is the root, and objects on another file system are refused (EACCES
// on lookup; listed by readdir without handle or attributes).

import fs from 'node:fs/promises';
import { constants as C, fdatasync as fsFdatasync, fstat as fsFstat, fsync as fsFsync, ftruncate as fsFtruncate, futimes as fsFutimes, write as fsWrite, type Dirent } from 'node:fs';
import { promisify } from 'node:util';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import crypto from 'node:crypto';
import {
  FileType,
  type Attrs,
  type Backend,
  type CreateHow,
  type Cred,
  type FsInfo,
  type FsStat,
  type PathConf,
  type ReadDirResult,
  type SetAttrs,
  type StableHow,
  type Time,
  type Wcc,
} from './backend.js';
import { S_ISGID, sameTime, statToAttrs, wccBefore } from './attrs.js';
import { DirChanges } from './dir-changes.js';
import { fstatFile, type FileStat } from './fast-stat.js';
import { DirCookies, buildSnapshot, readPage, type EntryInfo, type Snapshot } from './cookies.js';
import { errCode, fsError, toFsError } from './errors.js';
import { BufferPool } from '../xdr/buffer-pool.js';
import { decodeBytes, encodeBytes } from '../xdr/bytes-string.js';
import { FdCache, type OpenFile } from './fd-cache.js';
import { InlineFs } from './inline-fs.js';
import { InodeIndex, type IndexEntry } from './local-index.js';
import { findMknod, makeNode, makeSocket } from './local-special.js';
import { Lru } from './lru.js';
import { checkName, checkNewName, checkSymlinkTarget, checkVictimName, hostPath } from './names.js';
import {
  R,
  W,
  checkMknodType,
  checkSetAttrs,
  grantedAccess,
  modeAfterWrite,
  need,
  needLinkSource,
  needLookup,
  needModifyDir,
  needRead,
  needSticky,
  needWrite,
  newOwnership,
  planSetattr,
  type SetattrPlan,
} from './perm.js';

export interface LocalBackendOptions {
  /** The directory to export. */
  root: string;
  /** Where the secret and the inode index live (one directory per backend); in memory only when absent. */
  stateDir?: string;
  /** Allow MKNOD of block and character devices (for root callers). */
  allowDevices?: boolean;
  /** Open descriptors kept for READ/WRITE (default 256). */
  maxOpenFiles?: number;
  /** Largest file size WRITE and SETATTR may make (default and cap 2^53 - 1). */
  maxFileSize?: bigint;
  /** Directory entries a fallback search may examine (default 200,000). */
  searchLimit?: number;
  /** Largest READ served in one call (default 4 MiB). */
  maxRead?: number;
  /**
   * Make lstat, small reads, open, close, chmod, chown and unlink inline
   * while they are fast (see inline-fs.ts); only on local disk file
   * systems. Default true.
   */
  inlineCalls?: boolean;
  /** `index` keeps identity stamps in the index even where birth times exist. */
  stampSource?: 'auto' | 'index';
}

const ID_FORMAT = 1;
const ID_LEN = 20;
const FLAG_DIR = 1;
const FLAG_TAG = 2;
const O_PATH = 0o10000000; // Linux; not in fs.constants
const OFFSET_MAX = (1n << 63n) - 1n;
const SAFE_MAX = BigInt(Number.MAX_SAFE_INTEGER);
const TOMB_MS = 5_000;
const TOMB_SWEEP_MS = 1_000;
const DEAD_MS = 30_000;

interface NodeId {
  ino: bigint;
  stamp: bigint;
  inc: number;
  dir: boolean;
  tag: boolean;
  key: string;
}

/** A node resolved to a verified path. */
interface Located {
  node: Buffer;
  id: NodeId;
  path: string;
  st: FileStat;
}

interface Found {
  path: string;
  st: FileStat;
}

interface CachedSnapshot {
  stamp: string;
  snap: Snapshot;
}

const LINK_MAX_BY_FS = new Map<bigint, number>([
  [0xef53n, 65000], // ext2/3/4
  [0x58465342n, 2147483647], // xfs
  [0x9123683en, 65535], // btrfs
  [0x01021994n, 2147483647], // tmpfs
]);

/**
 * File systems whose fstat() of an open descriptor is answered from the
 * in-memory inode, never waiting on a device or a network: there it is done
 * synchronously, which costs a microsecond where a trip through the libuv
 * threadpool costs several in the event loop alone. Elsewhere (NFS, FUSE,
 * ...) fstat may block, and goes to the threadpool.
 */
const MEMORY_FSTAT_FS = new Set<bigint>([
  0xef53n, // ext2/3/4
  0x58465342n, // xfs
  0x9123683en, // btrfs
  0x01021994n, // tmpfs
]);

export class LocalBackend implements Backend {
  private rootPath = '';
  private rootDev = 0n;
  private rootIno = 0n;
  private rootStamp = 0n;
  private rootId: Buffer = Buffer.alloc(0);
  private tagMode = false;
  private procFd = false;
  private linkMax = 65000;
  private syncFstat = false;
  private io = new InlineFs(false);
  private mknodHelper?: string;
  private index!: InodeIndex;
  private cookies!: DirCookies;
  private readonly procIsRoot = process.geteuid?.() === 0;
  private readonly euid = BigInt(process.geteuid?.() ?? -1);
  private readonly euidNum = process.geteuid?.() ?? -1;
  private readonly egidNum = process.getegid?.() ?? -1;
  /** New files take their directory's group on this file system (mount option grpid); undefined: not known. */
  private groupFromDir: boolean | undefined;
  private readonly maxFileSize: bigint;
  private readonly fds: FdCache;
  private readonly buffers = new BufferPool([64 * 1024, 1024 * 1024]);
  /** write() hands `data` to pwrite and keeps nothing of it. */
  readonly copiesWriteData = true;
  private readonly snapshots = new Lru<bigint, CachedSnapshot>(2_000_000);
  private readonly dirGen = new Lru<bigint, number>(65536);
  private readonly tombs = new Map<bigint, { stamp: bigint; inc: number; at: number }>();
  private tombSweepAt = 0;
  private readonly dead = new Lru<string, number>(4096);
  private readonly searches = new Map<string, Promise<Found | undefined>>();
  /** Directories with name changes in flight (see dir-changes.ts). */
  private readonly changes = new DirChanges();
  private searchLock: Promise<unknown> = Promise.resolve();

  constructor(private readonly opts: LocalBackendOptions) {
    const max = opts.maxFileSize ?? SAFE_MAX;
    this.maxFileSize = max < SAFE_MAX ? max : SAFE_MAX;
    this.fds = new FdCache(opts.maxOpenFiles ?? 256, (fd) => this.io.close(fd));
  }

  async init(): Promise<void> {
    this.rootPath = decodeBytes(await fs.realpath(this.opts.root, { encoding: 'buffer' }));
    const st = await this.io.lstat(this.rootPath);
    if (!st.isDirectory()) throw fsError('ENOTDIR', `${this.opts.root} is not a directory`);
    this.rootDev = st.dev;
    this.rootIno = st.ino;
    this.tagMode = this.opts.stampSource === 'index' || st.birthtimeNs === 0n;
    this.rootStamp = this.tagMode ? 0n : st.birthtimeNs;
    this.rootId = encodeId(st.ino, this.rootStamp, 0, true, this.tagMode);
    if (this.opts.stateDir) {
      const state = path.resolve(this.opts.stateDir);
      if (state === this.rootPath || state.startsWith(this.rootPath + path.sep)) {
        throw fsError('EINVAL', 'the state directory must not be inside the export');
      }
    }
    const secret = await loadSecret(this.opts.stateDir);
    this.cookies = new DirCookies(secret);
    this.index = await InodeIndex.open(this.opts.stateDir, st.dev, st.ino);
    this.procFd = await fs.access('/proc/self/fd').then(() => true, () => false);
    this.mknodHelper = await findMknod();
    const sfs = await fs.statfs(hostPath(this.rootPath), { bigint: true });
    this.linkMax = LINK_MAX_BY_FS.get(sfs.type) ?? 65000;
    this.syncFstat = MEMORY_FSTAT_FS.has(sfs.type);
    this.io = new InlineFs(this.syncFstat && this.opts.inlineCalls !== false);
    this.groupFromDir = await groupFromDirectory(st.dev);
  }

  async root(): Promise<Buffer> {
    return this.rootId;
  }

  async getattr(node: Buffer): Promise<Attrs> {
    return guard(async () => {
      const id = parseId(node, this.tagMode);
      const open = this.fds.acquireCached(id.ino, id.key);
      if (open) {
        try {
          const st = await this.fstat(open.fd);
          if (st.nlink > 0n) return statToAttrs(st);
          this.fds.invalidate(id.ino);
        } finally {
          this.fds.release(open);
        }
      }
      return statToAttrs((await this.locate(node)).st);
    });
  }

  async setattr(cred: Cred, node: Buffer, set: SetAttrs, guardCtime?: Time): Promise<Wcc> {
    return guard(async () => {
      checkSetAttrs(set, this.maxFileSize);
      const loc = await this.locate(node);
      const a = statToAttrs(loc.st);
      if (guardCtime && !sameTime(guardCtime, a.ctime)) throw fsError('ENOTSYNC');
      const plan = planSetattr(cred, a, set, this.procIsRoot);
      await this.apply(loc, a, plan);
      return { before: wccBefore(a), after: await this.attrsAt(loc) };
    });
  }

  async lookup(cred: Cred, dir: Buffer, name: string): Promise<{ node: Buffer; attrs: Attrs; dirAttrs?: Attrs }> {
    return guard(async () => {
      checkName(name);
      const d = await this.locate(dir);
      const da = statToAttrs(d.st);
      needLookup(cred, da);
      if (name === '.') return { node: d.node, attrs: da, dirAttrs: da };
      if (name === '..') {
        const p = await this.parentOf(d);
        return { node: p.node, attrs: statToAttrs(p.st), dirAttrs: da };
      }
      const st = await this.io.lstat(path.join(d.path, name));
      if (st.dev !== this.rootDev) throw fsError('EACCES', 'another file system');
      return { node: this.observe(d.st.ino, name, st), attrs: statToAttrs(st), dirAttrs: da };
    });
  }

  async access(cred: Cred, node: Buffer, mask: number): Promise<{ granted: number; attrs: Attrs }> {
    return guard(async () => {
      const attrs = await this.getattr(node);
      return { granted: grantedAccess(cred, attrs, mask), attrs };
    });
  }

  async readlink(_cred: Cred, node: Buffer): Promise<{ target: string; attrs: Attrs }> {
    return guard(async () => {
      const loc = await this.locate(node);
      if (!loc.st.isSymbolicLink()) throw fsError('EINVAL', 'not a symlink');
      const target = await fs.readlink(hostPath(loc.path), { encoding: 'buffer' });
      return { target: decodeBytes(target), attrs: statToAttrs(loc.st) };
    });
  }

  async read(cred: Cred, node: Buffer, offset: bigint, count: number): Promise<{ data: Buffer; eof: boolean; attrs: Attrs; release?: () => void }> {
    return guard(() =>
      this.withFile(node, false, async (f, st) => {
        const attrs = statToAttrs(st);
        needRead(cred, attrs);
        if (offset < 0n) throw fsError('EINVAL');
        const n = Math.max(0, Math.min(count, this.opts.maxRead ?? 4 << 20));
        // Past the largest offset there is nothing to read (nfsd clamps likewise).
        if (n === 0 || offset >= st.size || offset > OFFSET_MAX) {
          return { data: Buffer.alloc(0), eof: offset >= st.size, attrs };
        }
        const { buf, release } = this.buffers.take(n);
        // Node reads at bigint positions too, though its types say number.
        const pos = (offset <= SAFE_MAX ? Number(offset) : offset) as number;
        let bytesRead: number;
        try {
          bytesRead = await this.io.read(f.fd, buf, n, pos);
        } catch (err) {
          release();
          throw err;
        }
        return { data: buf.subarray(0, bytesRead), eof: offset + BigInt(bytesRead) >= st.size, attrs, release };
      }),
    );
  }

  async write(
    cred: Cred,
    node: Buffer,
    offset: bigint,
    data: Buffer,
    stable: StableHow,
  ): Promise<{ count: number; committed: StableHow; wcc: Wcc }> {
    return guard(async () => {
      if (offset < 0n || offset > OFFSET_MAX || offset + BigInt(data.length) > OFFSET_MAX) throw fsError('EFBIG');
      if (data.length > 0 && offset >= this.maxFileSize) throw fsError('EFBIG');
      const len = Number(bigMin(BigInt(data.length), this.maxFileSize - offset));
      return this.withFile(node, true, async (f, st) => {
        const a = statToAttrs(st);
        needWrite(cred, a);
        const count = await writeFully(f.fd, data, len, Number(offset));
        const mode = count > 0 ? modeAfterWrite(cred, a) : undefined;
        if (mode !== undefined) await this.io.fchmod(f.fd, mode);
        if (stable === 2) await fsyncP(f.fd);
        else if (stable === 1) await fdatasyncP(f.fd);
        const after = statToAttrs(await this.fstat(f.fd));
        return { count, committed: stable, wcc: { before: wccBefore(a), after } };
      });
    });
  }

  async create(cred: Cred, dir: Buffer, name: string, how: CreateHow): Promise<{ node: Buffer; attrs: Attrs; dirWcc: Wcc }> {
    return guard(async () => {
      checkNewName(name);
      if (how.mode === 'exclusive' && how.verifier.length !== 8) throw fsError('EINVAL', 'verifier must be 8 bytes');
      if (how.mode !== 'exclusive') checkSetAttrs(how.attrs, this.maxFileSize);
      const d = await this.locate(dir);
      const da = statToAttrs(d.st);
      needLookup(cred, da);
      const target = path.join(d.path, name);
      // An existing name is answered as such (createExisting) before the
      // directory's write permission is looked at. Where that permission is
      // there, O_EXCL finds out whether the name exists: no lstat first.
      try {
        needModifyDir(cred, da);
      } catch (denied) {
        const existing = await this.io.tryLstat(target);
        if (existing) return this.createExisting(cred, d, da, name, existing, how);
        throw denied;
      }
      const attrs = how.mode === 'exclusive' ? {} : how.attrs;
      const own = newOwnership(cred, da, FileType.REG, attrs.mode ?? (how.mode === 'exclusive' ? 0o600 : 0o644));
      const owner = this.ownerOf(cred, attrs, own);
      // A file that the kernel makes with the owner asked for can be made
      // with its mode too (less the umask's bits, put back below); one still
      // to be given away starts as 0600, so nobody else can open it first.
      const bornOwned = owner === undefined || (this.groupFromDir !== undefined && owner.uid === this.euidNum && owner.gid === (this.groupFromDir || (da.mode & S_ISGID) !== 0 ? da.gid : this.egidNum));
      const initialMode = bornOwned && (own.mode & ~0o777) === 0 ? own.mode : 0o600;
      let fd: number;
      try {
        fd = await this.changes.track(d.st.ino, this.io.open(target, C.O_CREAT | C.O_EXCL | C.O_RDWR | C.O_NOFOLLOW, initialMode));
      } catch (err) {
        if (errCode(err) !== 'EEXIST') throw err;
        return this.createExisting(cred, d, da, name, await this.io.lstat(target), how);
      }
      let st: FileStat;
      let kept = false;
      try {
        st = await this.fstat(fd);
        let changed = false;
        if (owner && (BigInt(owner.uid) !== st.uid || BigInt(owner.gid) !== st.gid)) {
          await this.io.fchown(fd, owner.uid, owner.gid);
          changed = true;
        }
        // chown clears set-id bits, so the mode comes after it.
        if (changed || Number(st.mode & 0o7777n) !== own.mode) {
          await this.io.fchmod(fd, own.mode);
          changed = true;
        }
        if (how.mode === 'exclusive') {
          await futimesP(fd, how.verifier.readUInt32BE(4), how.verifier.readUInt32BE(0));
          changed = true;
        } else {
          if (attrs.size !== undefined && attrs.size > 0n) {
            await ftruncateP(fd, Number(attrs.size));
            changed = true;
          }
          if (attrs.atime !== undefined || attrs.mtime !== undefined) {
            await setTimes(attrs, (at, mt) => futimesP(fd, at, mt));
            changed = true;
          }
        }
        if (changed) st = await this.fstat(fd);
        const node = this.observe(d.st.ino, name, st);
        // The descriptor joins the cache (what READ, WRITE and GETATTR of a
        // new file want next) when the cache would have been able to open it
        // read-write itself.
        if (this.procIsRoot || (st.uid === this.euid && (st.mode & 0o200n) !== 0n)) {
          this.fds.adopt(st.ino, node.toString('hex'), fd);
          kept = true;
        }
        return { node, attrs: statToAttrs(st), dirWcc: await this.dirChanged(d, da) };
      } finally {
        if (!kept) await this.io.close(fd);
      }
    });
  }

  async mkdir(cred: Cred, dir: Buffer, name: string, attrs: SetAttrs): Promise<{ node: Buffer; attrs: Attrs; dirWcc: Wcc }> {
    return guard(async () => {
      const { d, da, target } = await this.prepareNew(cred, dir, name, attrs);
      const own = newOwnership(cred, da, FileType.DIR, attrs.mode ?? 0o755);
      await this.changes.track(d.st.ino, fs.mkdir(hostPath(target), 0o700));
      const st = await this.finishNew(cred, target, attrs, own);
      return this.created(d, da, name, st);
    });
  }

  async symlink(
    cred: Cred,
    dir: Buffer,
    name: string,
    linkTarget: string,
    attrs: SetAttrs,
  ): Promise<{ node: Buffer; attrs: Attrs; dirWcc: Wcc }> {
    return guard(async () => {
      checkSymlinkTarget(linkTarget);
      const { d, da, target } = await this.prepareNew(cred, dir, name, attrs);
      const own = newOwnership(cred, da, FileType.LNK, 0o777);
      // The target's bytes exactly, UTF-8 or not.
      await this.changes.track(d.st.ino, fs.symlink(encodeBytes(linkTarget), hostPath(target)));
      await this.initOwner(cred, attrs, own, (uid, gid) => fs.lchown(hostPath(target), uid, gid));
      await setTimes(attrs, (at, mt) => fs.lutimes(hostPath(target), at, mt));
      return this.created(d, da, name, await this.io.lstat(target));
    });
  }

  async mknod(
    cred: Cred,
    dir: Buffer,
    name: string,
    type: FileType,
    attrs: SetAttrs,
    rdev?: { major: number; minor: number },
  ): Promise<{ node: Buffer; attrs: Attrs; dirWcc: Wcc }> {
    return guard(async () => {
      checkMknodType(cred, type, this.opts.allowDevices ?? false);
      const { d, da, target } = await this.prepareNew(cred, dir, name, attrs);
      const own = newOwnership(cred, da, type, attrs.mode ?? 0o644);
      const kind = type === FileType.FIFO ? 'p' : type === FileType.BLK ? 'b' : 'c';
      await this.changes.track(
        d.st.ino,
        type === FileType.SOCK ? makeSocket(d.path, name, this.procFd) : makeNode(this.mknodHelper, d.path, name, kind, rdev ?? { major: 0, minor: 0 }),
      );
      const st = await this.finishNew(cred, target, attrs, own);
      return this.created(d, da, name, st);
    });
  }

  async remove(cred: Cred, dir: Buffer, name: string): Promise<{ dirWcc: Wcc }> {
    return guard(async () => {
      const { d, da, st, target } = await this.prepareVictim(cred, dir, name);
      if (st.isDirectory()) throw fsError('EISDIR');
      this.closeBeforeLastUnlink(st);
      await this.changes.track(d.st.ino, this.io.unlink(target, this.changes.busy(d.st.ino)));
      this.forget(st);
      return { dirWcc: await this.dirChanged(d, da) };
    });
  }

  async rmdir(cred: Cred, dir: Buffer, name: string): Promise<{ dirWcc: Wcc }> {
    return guard(async () => {
      const { d, da, st, target } = await this.prepareVictim(cred, dir, name);
      if (!st.isDirectory()) throw fsError('ENOTDIR');
      try {
        await this.changes.track(d.st.ino, fs.rmdir(hostPath(target)));
      } catch (err) {
        throw errCode(err) === 'EEXIST' ? fsError('ENOTEMPTY') : err;
      }
      this.forget(st);
      return { dirWcc: await this.dirChanged(d, da) };
    });
  }

  async rename(
    cred: Cred,
    fromDir: Buffer,
    fromName: string,
    toDir: Buffer,
    toName: string,
  ): Promise<{ fromWcc: Wcc; toWcc: Wcc }> {
    return guard(async () => {
      const { d: fd, da: fa, st: src, target: srcPath } = await this.prepareVictim(cred, fromDir, fromName);
      checkVictimName(toName);
      const td = await this.locate(toDir);
      const ta = statToAttrs(td.st);
      needLookup(cred, ta);
      const dstPath = path.join(td.path, toName);
      const dst = await this.io.tryLstat(dstPath);
      if (dst && dst.dev !== this.rootDev) throw fsError('EACCES', 'another file system');
      needModifyDir(cred, ta);
      if (dst) needSticky(cred, ta, statToAttrs(dst));
      if (src.isDirectory()) {
        if (td.path === srcPath || td.path.startsWith(srcPath + path.sep)) throw fsError('EINVAL', 'into itself');
        if (fd.st.ino !== td.st.ino) need(cred, statToAttrs(src), W); // its `..` changes
      }
      if (!(dst && dst.ino === src.ino)) {
        if (dst) this.closeBeforeLastUnlink(dst);
        await this.changes.track([fd.st.ino, td.st.ino], fs.rename(hostPath(srcPath), hostPath(dstPath)));
        this.index.set(src.ino, td.st.ino, toName);
        if (dst) this.forget(dst);
      }
      const fromWcc = await this.dirChanged(fd, fa);
      const toWcc = fd.st.ino === td.st.ino ? fromWcc : await this.dirChanged(td, ta);
      return { fromWcc, toWcc };
    });
  }

  async link(cred: Cred, node: Buffer, dir: Buffer, name: string): Promise<{ attrs: Attrs; dirWcc: Wcc }> {
    return guard(async () => {
      const src = await this.locate(node);
      const { d, da, target } = await this.prepareNew(cred, dir, name, {});
      needLinkSource(cred, statToAttrs(src.st));
      await this.changes.track(d.st.ino, fs.link(hostPath(src.path), hostPath(target)));
      const attrs = statToAttrs(await this.io.lstat(target));
      return { attrs, dirWcc: await this.dirChanged(d, da) };
    });
  }

  async readdir(
    cred: Cred,
    dir: Buffer,
    cookie: bigint,
    maxBytes: number,
    plus: boolean,
  ): Promise<ReadDirResult & { dirAttrs: Attrs }> {
    return guard(async () => {
      const d = await this.locate(dir);
      const da = statToAttrs(d.st);
      if (da.type !== FileType.DIR) throw fsError('ENOTDIR');
      need(cred, da, R);
      const snap = await this.snapshotOf(d);
      const page = await readPage({
        cookies: this.cookies,
        dirKey: d.node,
        snap,
        cookie,
        maxBytes,
        plus,
        dot: async () => ({ fileid: da.fileid, node: d.node, attrs: da }),
        dotdot: async () => {
          const p = await this.parentOf(d);
          return { fileid: p.st.ino, node: p.node, attrs: statToAttrs(p.st) };
        },
        describe: (name) => this.describe(d, name),
      });
      return { ...page, cookieverf: this.cookies.verifier(da.mtime), dirAttrs: da };
    });
  }

  async fsstat(node: Buffer): Promise<FsStat & { attrs: Attrs }> {
    return guard(async () => {
      const attrs = await this.getattr(node);
      const s = await fs.statfs(hostPath(this.rootPath), { bigint: true });
      return {
        tbytes: s.blocks * s.bsize,
        fbytes: s.bfree * s.bsize,
        abytes: s.bavail * s.bsize,
        tfiles: s.files,
        ffiles: s.ffree,
        afiles: s.ffree,
        attrs,
      };
    });
  }

  async fsinfo(node: Buffer): Promise<FsInfo & { attrs: Attrs }> {
    return guard(async () => ({
      maxFileSize: this.maxFileSize,
      timeDelta: { sec: 0, nsec: 1 },
      linkSupport: true,
      symlinkSupport: true,
      homogeneous: true,
      canSetTime: true,
      attrs: await this.getattr(node),
    }));
  }

  async pathconf(node: Buffer): Promise<PathConf & { attrs: Attrs }> {
    return guard(async () => ({
      linkmax: this.linkMax,
      nameMax: 255,
      noTrunc: true,
      chownRestricted: true,
      caseInsensitive: false,
      casePreserving: true,
      attrs: await this.getattr(node),
    }));
  }

  async commit(node: Buffer, _offset: bigint, _count: number): Promise<Wcc> {
    return guard(() =>
      this.withFile(node, false, async (f, st) => {
        await fsyncP(f.fd);
        return { before: wccBefore(statToAttrs(st)), after: statToAttrs(await this.fstat(f.fd)) };
      }),
    );
  }

  async open(cred: Cred, node: Buffer, write: boolean): Promise<FileHandle> {
    return guard(async () => {
      const loc = await this.locate(node);
      const a = statToAttrs(loc.st);
      if (a.type !== FileType.REG) throw fsError(a.type === FileType.DIR ? 'EISDIR' : 'EINVAL');
      needRead(cred, a);
      if (write) needWrite(cred, a);
      return this.openVerified(loc, write);
    });
  }

  async close(): Promise<void> {
    await this.fds.closeAll();
    await this.index?.close();
  }

  // ---- node ids and resolution ----

  /** Resolve a node id to a verified path, repairing the index if needed; ESTALE when gone. */
  private async locate(node: Buffer): Promise<Located> {
    const id = parseId(node, this.tagMode);
    const deadUntil = this.dead.peek(id.key);
    if (deadUntil !== undefined && deadUntil > Date.now()) throw fsError('ESTALE');
    const found = await this.findFast(id.ino) ?? await this.search(id);
    if (!found || !this.matches(id, found.st)) {
      this.dead.set(id.key, Date.now() + DEAD_MS);
      throw fsError('ESTALE');
    }
    return { node, id, path: found.path, st: found.st };
  }

  /** The index's path for an inode, if lstat confirms it. */
  private async findFast(ino: bigint): Promise<Found | undefined> {
    if (ino === this.rootIno) return { path: this.rootPath, st: await this.io.lstat(this.rootPath) };
    const names = this.index.namesOf(ino, this.rootIno);
    if (!names || !names.every(isPlainName)) return undefined;
    const p = path.join(this.rootPath, ...names);
    const st = await this.io.tryLstat(p);
    return st && st.ino === ino && st.dev === this.rootDev ? { path: p, st } : undefined;
  }

  /** Searches are coalesced per id and run one at a time (they can be expensive). */
  private search(id: NodeId): Promise<Found | undefined> {
    let p = this.searches.get(id.key);
    if (!p) {
      p = this.searchLock.then(() => this.relocate(id.ino, id.dir, 0));
      this.searchLock = p.catch(() => undefined);
      this.searches.set(id.key, p);
      void p.finally(() => this.searches.delete(id.key)).catch(() => undefined);
    }
    return p;
  }

  /**
   * Where an inode went: first below its recorded parent (itself relocated
   * if needed), renamed in place, then by a breadth-first search.
   */
  private async relocate(ino: bigint, isDir: boolean, depth: number): Promise<Found | undefined> {
    const fast = await this.findFast(ino);
    if (fast) return fast;
    const e = this.index.get(ino);
    if (e && depth < 64) {
      const parent = await this.relocate(e.parent, true, depth + 1);
      if (parent) {
        const p = path.join(parent.path, e.name);
        const st = await this.io.tryLstat(p);
        if (st && st.ino === ino && st.dev === this.rootDev) {
          this.index.set(ino, parent.st.ino, e.name);
          return { path: p, st };
        }
        const hit = await this.scan([{ path: parent.path, ino: parent.st.ino }], ino, isDir, 1);
        if (hit) return hit;
      }
    }
    return this.scan([{ path: this.rootPath, ino: this.rootIno }], ino, isDir, Infinity);
  }

  /**
   * Breadth-first search for an inode, `levels` deep, within the search
   * limit. Directories met are recorded in the index: it heals as it looks.
   */
  private async scan(start: { path: string; ino: bigint }[], ino: bigint, isDir: boolean, levels: number): Promise<Found | undefined> {
    let budget = this.opts.searchLimit ?? 200_000;
    let level = [...start];
    for (let depth = 0; depth < levels && level.length > 0 && budget > 0; depth++) {
      const next: { path: string; ino: bigint }[] = [];
      for (const dir of level) {
        let dirents: Dirent<Buffer>[];
        try {
          dirents = await fs.readdir(hostPath(dir.path), { withFileTypes: true, encoding: 'buffer' });
        } catch {
          continue;
        }
        // Looking for a directory, only directories (and entries of unknown type) need an lstat.
        const todo = (isDir ? dirents.filter((x) => x.isDirectory() || !knownType(x)) : dirents).map((x) => decodeBytes(x.name));
        for (let i = 0; i < todo.length && budget > 0; i += 64) {
          const batch = todo.slice(i, i + 64);
          budget -= batch.length;
          const stats = await Promise.all(batch.map((name) => this.io.tryLstat(path.join(dir.path, name))));
          for (let k = 0; k < batch.length; k++) {
            const st = stats[k];
            if (!st || st.dev !== this.rootDev) continue;
            const name = batch[k]!;
            const p = path.join(dir.path, name);
            if (st.isDirectory()) {
              this.index.set(st.ino, dir.ino, name);
              next.push({ path: p, ino: st.ino });
            }
            if (st.ino === ino) {
              this.index.set(st.ino, dir.ino, name);
              return { path: p, st };
            }
          }
        }
      }
      level = next;
    }
    return undefined;
  }

  private matches(id: NodeId, st: FileStat): boolean {
    if (st.dev !== this.rootDev || st.ino !== id.ino || st.isDirectory() !== id.dir) return false;
    if (id.ino === this.rootIno) return id.stamp === this.rootStamp && id.inc === 0;
    const e = this.index.get(id.ino);
    if (this.tagMode) return e?.tag === id.stamp && e.inc === id.inc;
    return st.birthtimeNs === id.stamp && (e?.inc ?? 0) === id.inc;
  }

  /** Record an object seen at `parent/name` and give its node id. */
  private observe(parent: bigint, name: string, st: FileStat): Buffer {
    if (st.ino === this.rootIno) return this.rootId;
    let e = this.index.get(st.ino);
    if (!e) {
      const tomb = this.tombs.get(st.ino);
      const reused = tomb !== undefined && (this.tagMode || tomb.stamp === st.birthtimeNs);
      e = this.index.set(st.ino, parent, name, { inc: reused ? (tomb.inc + 1) & 0xffff : 0, ...this.newTag() });
    } else {
      e = this.index.set(st.ino, parent, name, e.tag === undefined ? this.newTag() : {});
    }
    return this.idOf(st, e);
  }

  private newTag(): { tag?: bigint } {
    return this.tagMode ? { tag: crypto.randomBytes(8).readBigUInt64BE() } : {};
  }

  private idOf(st: FileStat, e: IndexEntry | undefined): Buffer {
    const stamp = this.tagMode ? (e?.tag ?? 0n) : st.birthtimeNs;
    return encodeId(st.ino, stamp, e?.inc ?? 0, st.isDirectory(), this.tagMode);
  }

  /** An object is gone (last link removed): stale ids, no cached descriptor. */
  /**
   * Before the last name of a file goes: our cached descriptor of it is
   * closed first (unless a call is using it). Unlinked while open, the file
   * would go on the file system's orphan list (ext4 with a journal, XFS's
   * unlinked list) and come off it at our close, two more metadata updates;
   * closed first, the unlink frees it at once. On the metadata mix over a
   * journaled ext4 that was 7% less event-loop time per operation.
   */
  private closeBeforeLastUnlink(st: FileStat): void {
    if (st.isFile() && st.nlink === 1n) this.fds.invalidate(st.ino);
  }

  private forget(st: FileStat): void {
    // Only directories have listings to tell apart (a file's inode reused
    // as a directory finds its snapshot dropped below).
    if (st.isDirectory()) this.dirGen.set(st.ino, (this.dirGen.peek(st.ino) ?? 0) + 1);
    if (!st.isDirectory() && st.nlink > 1n) return;
    const e = this.index.get(st.ino);
    this.dead.set(this.idOf(st, e).toString('hex'), Date.now() + DEAD_MS);
    this.index.drop(st.ino);
    this.fds.invalidate(st.ino);
    this.snapshots.delete(st.ino);
    const now = Date.now();
    // Expired tombs go at most once a second: every sweep walks from the
    // Map's start over the entries deleted since it last compacted itself,
    // and one per REMOVE made that the largest cost of a create/remove
    // stream. (A tomb kept a little longer only bumps an incarnation more.)
    if (now >= this.tombSweepAt) {
      this.tombSweepAt = now + TOMB_SWEEP_MS;
      for (const [ino, t] of this.tombs) {
        if (now - t.at < TOMB_MS) break;
        this.tombs.delete(ino);
      }
    }
    this.tombs.delete(st.ino);
    this.tombs.set(st.ino, { stamp: st.birthtimeNs, inc: e?.inc ?? 0, at: now });
  }

  private async parentOf(d: Located): Promise<{ node: Buffer; st: FileStat }> {
    if (d.st.ino === this.rootIno) return { node: this.rootId, st: d.st };
    const pp = path.dirname(d.path);
    const st = await this.io.lstat(pp);
    if (st.ino === this.rootIno) return { node: this.rootId, st };
    const e = this.index.get(st.ino);
    if (e && (!this.tagMode || e.tag !== undefined)) return { node: this.idOf(st, e), st };
    const gst = await this.io.lstat(path.dirname(pp));
    return { node: this.observe(gst.ino, path.basename(pp), st), st };
  }

  // ---- helpers for the procedures ----

  private async withFile<T>(node: Buffer, writable: boolean, fn: (f: OpenFile, st: FileStat) => Promise<T>): Promise<T> {
    const id = parseId(node, this.tagMode);
    const f = await this.fds.acquire(id.ino, id.key, writable, async (w) => {
      const loc = await this.locate(node);
      if (loc.st.isDirectory()) throw fsError('EISDIR');
      if (!loc.st.isFile()) throw fsError('EINVAL', 'not a regular file');
      return this.openVerifiedFd(loc, w);
    });
    try {
      const st = await this.fstat(f.fd);
      if (st.nlink === 0n) {
        this.fds.invalidate(id.ino);
        throw fsError('ESTALE');
      }
      return await fn(f, st);
    } finally {
      this.fds.release(f);
    }
  }

  /** fstat of an open descriptor (see MEMORY_FSTAT_FS). */
  private async fstat(fd: number): Promise<FileStat> {
    if (this.syncFstat) return fstatFile(fd);
    return new Promise((resolve, reject) => fsFstat(fd, { bigint: true }, (err, st) => (err ? reject(err) : resolve(st))));
  }

  /** Open a located regular file without following links, and check it is still that inode. */
  private async openVerified(loc: Located, write: boolean): Promise<FileHandle> {
    const fh = await fs.open(hostPath(loc.path), (write ? C.O_RDWR : C.O_RDONLY) | C.O_NOFOLLOW);
    const st = await this.fstat(fh.fd).catch(async (err: unknown) => {
      await fh.close();
      throw err;
    });
    if (!this.matches(loc.id, st)) {
      await fh.close();
      throw fsError('ESTALE');
    }
    return fh;
  }

  /** openVerified, as a plain descriptor (for the fd cache). */
  private async openVerifiedFd(loc: Located, write: boolean): Promise<number> {
    const fd = await this.io.open(loc.path, (write ? C.O_RDWR : C.O_RDONLY) | C.O_NOFOLLOW);
    let st: FileStat;
    try {
      st = await this.fstat(fd);
    } catch (err) {
      await this.io.close(fd).catch(() => undefined);
      throw err;
    }
    if (!this.matches(loc.id, st)) {
      await this.io.close(fd).catch(() => undefined);
      throw fsError('ESTALE');
    }
    return fd;
  }

  /**
   * Run `fn` with a path that reaches exactly the located object: a
   * /proc/self/fd link to an O_PATH descriptor, so a swapped-in symlink
   * cannot redirect chmod/chown/utimes/truncate.
   */
  private async viaFd<T>(loc: { path: string; st: FileStat }, fn: (p: string | Buffer) => Promise<T>): Promise<T> {
    if (!this.procFd) return fn(hostPath(loc.path));
    const fh = await fs.open(hostPath(loc.path), O_PATH | C.O_NOFOLLOW);
    try {
      const st = await fh.stat({ bigint: true });
      if (st.ino !== loc.st.ino || st.dev !== this.rootDev) throw fsError('ESTALE');
      return await fn(`/proc/self/fd/${fh.fd}`);
    } finally {
      await fh.close();
    }
  }

  private async apply(loc: Located, a: Attrs, plan: SetattrPlan): Promise<void> {
    if (a.type === FileType.LNK) {
      if (plan.uid !== undefined || plan.gid !== undefined) await fs.lchown(hostPath(loc.path), plan.uid ?? -1, plan.gid ?? -1);
      if (plan.atime !== undefined || plan.mtime !== undefined) {
        await setTimes(plan, (at, mt) => fs.lutimes(hostPath(loc.path), at, mt), a);
      }
      return;
    }
    await this.viaFd(loc, async (p) => {
      if (plan.uid !== undefined || plan.gid !== undefined) await fs.chown(p, plan.uid ?? -1, plan.gid ?? -1);
      if (plan.mode !== undefined) await fs.chmod(p, plan.mode);
      let current = a;
      if (plan.size !== undefined) {
        await fs.truncate(p, Number(plan.size));
        current = statToAttrs(await fs.stat(p, { bigint: true })); // truncation moved mtime
      }
      if (plan.atime !== undefined || plan.mtime !== undefined) await setTimes(plan, (at, mt) => fs.utimes(p, at, mt), current);
    });
  }

  private async attrsAt(loc: Located): Promise<Attrs> {
    return statToAttrs(await this.io.lstat(loc.path));
  }

  /** The checks shared by every procedure that makes a new name in a directory. */
  private async prepareNew(cred: Cred, dir: Buffer, name: string, attrs: SetAttrs): Promise<{ d: Located; da: Attrs; target: string }> {
    checkNewName(name);
    checkSetAttrs(attrs, this.maxFileSize);
    const d = await this.locate(dir);
    const da = statToAttrs(d.st);
    needLookup(cred, da);
    const target = path.join(d.path, name);
    if (await this.io.tryLstat(target)) throw fsError('EEXIST');
    needModifyDir(cred, da);
    return { d, da, target };
  }

  /** The checks shared by REMOVE, RMDIR and RENAME's source. */
  private async prepareVictim(cred: Cred, dir: Buffer, name: string): Promise<{ d: Located; da: Attrs; st: FileStat; target: string }> {
    checkVictimName(name);
    const d = await this.locate(dir);
    const da = statToAttrs(d.st);
    needLookup(cred, da);
    const target = path.join(d.path, name);
    const st = await this.io.lstat(target);
    if (st.dev !== this.rootDev) throw fsError('EACCES', 'another file system');
    needModifyDir(cred, da);
    needSticky(cred, da, statToAttrs(st));
    return { d, da, st, target };
  }

  /** Owner of a new object: chowned to the caller when we are root; root callers may ask for others. */
  private async initOwner(
    cred: Cred,
    attrs: SetAttrs,
    own: { uid: number; gid: number },
    chown: (uid: number, gid: number) => Promise<void>,
  ): Promise<void> {
    const owner = this.ownerOf(cred, attrs, own);
    if (owner) await chown(owner.uid, owner.gid);
  }

  /** The owner a new object is given (initOwner); undefined when we are not root and cannot give it away. */
  private ownerOf(cred: Cred, attrs: SetAttrs, own: { uid: number; gid: number }): { uid: number; gid: number } | undefined {
    if (!this.procIsRoot) return undefined;
    const root = cred.uid === 0;
    return { uid: root ? (attrs.uid ?? own.uid) : own.uid, gid: root ? (attrs.gid ?? own.gid) : own.gid };
  }

  /** Ownership, mode and times of a new directory or special file. */
  private async finishNew(
    cred: Cred,
    target: string,
    attrs: SetAttrs,
    own: { uid: number; gid: number; mode: number },
  ): Promise<FileStat> {
    const st0 = await this.io.lstat(target);
    return this.viaFd({ path: target, st: st0 }, async (p) => {
      await this.initOwner(cred, attrs, own, (uid, gid) => fs.chown(p, uid, gid));
      await fs.chmod(p, own.mode);
      await setTimes(attrs, (at, mt) => fs.utimes(p, at, mt));
      return fs.stat(p, { bigint: true });
    });
  }

  private async created(d: Located, da: Attrs, name: string, st: FileStat): Promise<{ node: Buffer; attrs: Attrs; dirWcc: Wcc }> {
    const node = this.observe(d.st.ino, name, st);
    return { node, attrs: statToAttrs(st), dirWcc: await this.dirChanged(d, da) };
  }

  private async createExisting(
    cred: Cred,
    d: Located,
    da: Attrs,
    name: string,
    st: FileStat,
    how: CreateHow,
  ): Promise<{ node: Buffer; attrs: Attrs; dirWcc: Wcc }> {
    if (st.dev !== this.rootDev || how.mode === 'guarded' || !st.isFile()) throw fsError('EEXIST');
    if (how.mode === 'exclusive') {
      // A retransmission finds the file as it was made: verifier in the times, still empty.
      const same =
        st.size === 0n &&
        st.mtimeNs / 1_000_000_000n === BigInt(how.verifier.readUInt32BE(0)) &&
        st.atimeNs / 1_000_000_000n === BigInt(how.verifier.readUInt32BE(4));
      if (!same) throw fsError('EEXIST');
    } else if (how.attrs.size !== undefined) {
      needWrite(cred, statToAttrs(st));
      const size = how.attrs.size;
      st = await this.viaFd({ path: path.join(d.path, name), st }, async (p) => {
        await fs.truncate(p, Number(size));
        return fs.stat(p, { bigint: true });
      });
    }
    const node = this.observe(d.st.ino, name, st);
    return { node, attrs: statToAttrs(st), dirWcc: await this.dirChanged(d, da) };
  }

  /** After a change to a directory: drop its listing snapshot and give its wcc data. */
  private async dirChanged(d: Located, before: Attrs): Promise<Wcc> {
    this.dirGen.set(d.st.ino, (this.dirGen.peek(d.st.ino) ?? 0) + 1);
    const after = await this.io.tryLstat(d.path);
    return { before: wccBefore(before), ...(after ? { after: statToAttrs(after) } : {}) };
  }

  private async snapshotOf(d: Located): Promise<Snapshot> {
    const gen = this.dirGen.peek(d.st.ino) ?? 0;
    const stamp = `${d.st.mtimeNs}:${d.st.ctimeNs}:${d.st.size}:${gen}`;
    const cached = this.snapshots.get(d.st.ino);
    if (cached?.stamp === stamp) return cached.snap;
    const names = (await fs.readdir(hostPath(d.path), { encoding: 'buffer' })).map(decodeBytes);
    const snap = buildSnapshot(this.cookies, names, cached?.snap);
    this.snapshots.set(d.st.ino, { stamp, snap }, names.length + 1);
    return snap;
  }

  private async describe(d: Located, name: string): Promise<EntryInfo | undefined> {
    const st = await this.io.tryLstat(path.join(d.path, name));
    if (!st) return undefined;
    if (st.dev !== this.rootDev) return { fileid: st.ino };
    return { fileid: st.ino, node: this.observe(d.st.ino, name, st), attrs: statToAttrs(st) };
  }
}

// ---- module helpers ----

function encodeId(ino: bigint, stamp: bigint, inc: number, dir: boolean, tag: boolean): Buffer {
  const b = Buffer.alloc(ID_LEN);
  b[0] = ID_FORMAT;
  b[1] = (dir ? FLAG_DIR : 0) | (tag ? FLAG_TAG : 0);
  b.writeBigUInt64BE(ino, 2);
  b.writeBigUInt64BE(BigInt.asUintN(64, stamp), 10);
  b.writeUInt16BE(inc, 18);
  return b;
}

function parseId(node: Buffer, tagMode: boolean): NodeId {
  if (node.length !== ID_LEN) throw fsError('EBADHANDLE');
  if (node[0] !== ID_FORMAT) throw fsError('ESTALE');
  const flags = node[1]!;
  const tag = (flags & FLAG_TAG) !== 0;
  if (tag !== tagMode) throw fsError('ESTALE');
  return {
    ino: node.readBigUInt64BE(2),
    stamp: node.readBigUInt64BE(10),
    inc: node.readUInt16BE(18),
    dir: (flags & FLAG_DIR) !== 0,
    tag,
    key: node.toString('hex'),
  };
}

async function loadSecret(stateDir: string | undefined): Promise<Buffer> {
  if (!stateDir) return crypto.randomBytes(32);
  await fs.mkdir(stateDir, { recursive: true, mode: 0o700 });
  const file = path.join(stateDir, 'fs-secret');
  try {
    const s = await fs.readFile(file);
    if (s.length === 32) return s;
  } catch (err) {
    if (errCode(err) !== 'ENOENT') throw err;
  }
  const s = crypto.randomBytes(32);
  const tmp = `${file}.tmp`;
  await fs.writeFile(tmp, s, { mode: 0o600 });
  await fs.rename(tmp, file);
  return s;
}

/**
 * Whether new files on the file system of device `dev` take the group of
 * their directory (mount option grpid, alias bsdgroups) rather than the
 * creator's; undefined where /proc/self/mountinfo does not say.
 */
export async function groupFromDirectory(dev: bigint): Promise<boolean | undefined> {
  let text: string;
  try {
    text = await fs.readFile('/proc/self/mountinfo', 'utf8');
  } catch {
    return undefined;
  }
  // glibc's major() and minor() of a 64-bit dev_t.
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  const id = `${major}:${minor}`;
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    if (f[2] !== id) continue;
    // ... optional fields, then "-", the type, the source and the super block's options.
    const sep = f.indexOf('-', 6);
    const opts = sep > 0 ? f[sep + 3]?.split(',') : undefined;
    if (opts) return opts.includes('grpid') || opts.includes('bsdgroups');
  }
  return undefined;
}

/** A single path component: the index is trusted only this far. */
function isPlainName(name: string): boolean {
  return name !== '' && name !== '.' && name !== '..' && !name.includes('/') && !name.includes('\0');
}

function knownType(x: Dirent<Buffer>): boolean {
  return x.isFile() || x.isDirectory() || x.isSymbolicLink() || x.isFIFO() || x.isSocket() || x.isBlockDevice() || x.isCharacterDevice();
}

async function guard<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw toFsError(err);
  }
}

function bigMin(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}

/** pwrite until done; a failure after some bytes reports those (a short write). */
// Calls on plain descriptors (the fd cache's), on the threadpool: they wait for the device or may.
const fsyncP = promisify(fsFsync);
const fdatasyncP = promisify(fsFdatasync);
const futimesP = promisify(fsFutimes);
const ftruncateP = promisify(fsFtruncate);

/**
 * pwrite through fs.write on the descriptor (held open by the fd cache
 * meanwhile): a third cheaper in CPU per call than FileHandle.write, whose
 * promise plumbing costs about 3 µs. (Reads: InlineFs.read.)
 */
function pwrite(fd: number, data: Buffer, off: number, n: number, pos: number): Promise<number> {
  return new Promise((resolve, reject) => fsWrite(fd, data, off, n, pos, (err, bytes) => (err ? reject(err) : resolve(bytes))));
}

async function writeFully(fd: number, data: Buffer, len: number, pos: number): Promise<number> {
  let done = 0;
  while (done < len) {
    let n: number;
    try {
      n = await pwrite(fd, data, done, len - done, pos + done);
    } catch (err) {
      if (done === 0) throw err;
      break;
    }
    if (n === 0) break;
    done += n;
  }
  return done;
}

/** utimes with seconds as numbers (Node has no ns API); unset times keep their value. */
async function setTimes(
  set: { atime?: Time | 'now'; mtime?: Time | 'now' },
  utimes: (atime: number, mtime: number) => Promise<void>,
  current?: Attrs,
): Promise<void> {
  if (set.atime === undefined && set.mtime === undefined) return;
  const now = Date.now() / 1000;
  const pick = (t: Time | 'now' | undefined, cur: Time | undefined): number => {
    if (t === 'now') return now;
    if (t) return t.sec + t.nsec / 1e9;
    return cur ? cur.sec + cur.nsec / 1e9 : now;
  };
  await utimes(pick(set.atime, current?.atime), pick(set.mtime, current?.mtime));
}
