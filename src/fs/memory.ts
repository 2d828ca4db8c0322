// MemoryBackend: a file tree held in memory, for embedding and tests, with
// the semantics of the local backend: the same permission rules, cookies,
// exclusive create, and ESTALE for deleted objects (inode numbers are reused,
// each reuse with a new generation, as real file systems do).
//
// Node ids (13 bytes): format (2), instance (4), inode (4), generation (4).
// File data lives in 4 KiB pages allocated on write, so sparse files cost
// nothing and `capacity` bounds the bytes held.

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
import { nsToTime, sameTime, timeToNs, wccBefore } from './attrs.js';
import { DirCookies, buildSnapshot, readPage, type EntryInfo, type Snapshot } from './cookies.js';
import { fsError, toFsError } from './errors.js';
import { Lru } from './lru.js';
import { checkName, checkNewName, checkSymlinkTarget, checkVictimName } from './names.js';
import { encodeBytes } from '../xdr/bytes-string.js';
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
} from './perm.js';

export interface MemoryBackendOptions {
  /** Bytes of file data the tree may hold (default 1 GiB). */
  capacity?: bigint;
  /** Objects the tree may hold (default 1,000,000). */
  maxFiles?: number;
  /** Largest file size (default 2^63 - 1). */
  maxFileSize?: bigint;
  allowDevices?: boolean;
  /** The root directory's owner and mode (default root, 0755). */
  rootUid?: number;
  rootGid?: number;
  rootMode?: number;
  /** Keys the readdir cookies (random by default). */
  secret?: Buffer;
  fsid?: bigint;
}

const PAGE = 4096;
const ID_FORMAT = 2;
const ID_LEN = 13;
const OFFSET_MAX = (1n << 63n) - 1n;
const MAX_READ = 4 << 20;

interface MNode {
  ino: number;
  gen: number;
  type: FileType;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  atime: bigint;
  mtime: bigint;
  ctime: bigint;
  size: bigint;
  rdev: { major: number; minor: number };
  pages?: Map<number, Buffer>; // REG
  children?: Map<string, number>; // DIR
  parent?: number; // DIR: its `..`
  version: number; // DIR: bumped on every change of entries
  target?: string; // LNK
  verifier?: Buffer; // REG made by an exclusive create, until its times change
}

type Created = { node: Buffer; attrs: Attrs; dirWcc: Wcc };

export class MemoryBackend implements Backend {
  /** write() copies `data` into its pages. */
  readonly copiesWriteData = true;
  private readonly nodes = new Map<number, MNode>();
  private readonly free: { ino: number; gen: number }[] = [];
  private nextIno = 1;
  private usedPages = 0;
  private lastNs = 0n;
  private readonly instance = crypto.randomBytes(4);
  private readonly cookies: DirCookies;
  private readonly snapshots = new Lru<number, { version: number; snap: Snapshot }>(2_000_000);
  private readonly capacityPages: number;
  private readonly maxFiles: number;
  private readonly maxFileSize: bigint;
  private readonly fsid: bigint;
  private readonly rootNode: MNode;

  constructor(private readonly opts: MemoryBackendOptions = {}) {
    this.cookies = new DirCookies(opts.secret ?? crypto.randomBytes(32));
    this.capacityPages = Number((opts.capacity ?? 1n << 30n) / BigInt(PAGE));
    this.maxFiles = opts.maxFiles ?? 1_000_000;
    this.maxFileSize = opts.maxFileSize ?? OFFSET_MAX;
    this.fsid = opts.fsid ?? BigInt(this.instance.readUInt32BE(0));
    this.rootNode = this.alloc(FileType.DIR, opts.rootMode ?? 0o755, opts.rootUid ?? 0, opts.rootGid ?? 0);
    this.rootNode.parent = this.rootNode.ino;
  }

  /** For symmetry with LocalBackend; nothing to set up. */
  async init(): Promise<void> {}

  async root(): Promise<Buffer> {
    return this.idOf(this.rootNode);
  }

  async getattr(node: Buffer): Promise<Attrs> {
    return guard(() => this.attrs(this.get(node)));
  }

  async setattr(cred: Cred, node: Buffer, set: SetAttrs, guardCtime?: Time): Promise<Wcc> {
    return guard(() => {
      checkSetAttrs(set, this.maxFileSize);
      const n = this.get(node);
      const before = this.attrs(n);
      if (guardCtime && !sameTime(guardCtime, before.ctime)) throw fsError('ENOTSYNC');
      const plan = planSetattr(cred, before, set, true);
      if (plan.size !== undefined) this.truncate(n, plan.size);
      const now = this.now();
      if (plan.uid !== undefined) n.uid = plan.uid;
      if (plan.gid !== undefined) n.gid = plan.gid;
      if (plan.mode !== undefined && n.type !== FileType.LNK) n.mode = plan.mode;
      if (plan.atime !== undefined) n.atime = plan.atime === 'now' ? now : timeToNs(plan.atime);
      if (plan.mtime !== undefined) n.mtime = plan.mtime === 'now' ? now : timeToNs(plan.mtime);
      else if (plan.size !== undefined) n.mtime = now;
      n.ctime = now;
      // The local backend keeps the verifier in atime/mtime: it lasts until those change.
      if (plan.atime !== undefined || plan.mtime !== undefined || plan.size !== undefined) n.verifier = undefined;
      return { before: wccBefore(before), after: this.attrs(n) };
    });
  }

  async lookup(cred: Cred, dir: Buffer, name: string): Promise<{ node: Buffer; attrs: Attrs; dirAttrs?: Attrs }> {
    return guard(() => {
      checkName(name);
      const d = this.get(dir);
      const da = this.attrs(d);
      needLookup(cred, da);
      const n = name === '.' ? d : name === '..' ? this.nodes.get(d.parent!)! : this.child(d, name);
      return { node: this.idOf(n), attrs: this.attrs(n), dirAttrs: da };
    });
  }

  async access(cred: Cred, node: Buffer, mask: number): Promise<{ granted: number; attrs: Attrs }> {
    return guard(() => {
      const attrs = this.attrs(this.get(node));
      return { granted: grantedAccess(cred, attrs, mask), attrs };
    });
  }

  async readlink(_cred: Cred, node: Buffer): Promise<{ target: string; attrs: Attrs }> {
    return guard(() => {
      const n = this.get(node);
      if (n.type !== FileType.LNK) throw fsError('EINVAL', 'not a symlink');
      return { target: n.target!, attrs: this.attrs(n) };
    });
  }

  async read(cred: Cred, node: Buffer, offset: bigint, count: number): Promise<{ data: Buffer; eof: boolean; attrs: Attrs }> {
    return guard(() => {
      const n = this.regular(node);
      needRead(cred, this.attrs(n));
      if (offset < 0n) throw fsError('EINVAL');
      const end = bigMin(n.size, offset + BigInt(Math.max(0, Math.min(count, MAX_READ))));
      const data = offset < end ? this.readPages(n, offset, Number(end - offset)) : Buffer.alloc(0);
      n.atime = this.now();
      return { data, eof: offset + BigInt(data.length) >= n.size, attrs: this.attrs(n) };
    });
  }

  async write(cred: Cred, node: Buffer, offset: bigint, data: Buffer, _stable: StableHow): Promise<{ count: number; committed: StableHow; wcc: Wcc }> {
    return guard(() => {
      if (offset < 0n || offset + BigInt(data.length) > OFFSET_MAX) throw fsError('EFBIG');
      if (data.length > 0 && offset >= this.maxFileSize) throw fsError('EFBIG');
      const n = this.regular(node);
      const before = this.attrs(n);
      needWrite(cred, before);
      const len = Number(bigMin(BigInt(data.length), this.maxFileSize - offset));
      const count = this.writePages(n, offset, data.subarray(0, len));
      if (count > 0) {
        const now = this.now();
        n.mtime = now;
        n.ctime = now;
        n.verifier = undefined;
        n.mode = modeAfterWrite(cred, before) ?? n.mode;
      }
      // Nothing is more durable than the tree itself: every write is FILE_SYNC.
      return { count, committed: 2, wcc: { before: wccBefore(before), after: this.attrs(n) } };
    });
  }

  async create(cred: Cred, dir: Buffer, name: string, how: CreateHow): Promise<Created> {
    return guard(() => {
      checkNewName(name);
      if (how.mode === 'exclusive' && how.verifier.length !== 8) throw fsError('EINVAL', 'verifier must be 8 bytes');
      const attrs = how.mode === 'exclusive' ? {} : how.attrs;
      checkSetAttrs(attrs, this.maxFileSize);
      const d = this.dir(dir);
      const da = this.attrs(d);
      needLookup(cred, da);
      const existing = d.children!.get(name);
      if (existing !== undefined) return this.createExisting(cred, d, da, this.nodes.get(existing)!, how);
      needModifyDir(cred, da);
      const n = this.makeNode(cred, d, FileType.REG, attrs, how.mode === 'exclusive' ? 0o600 : 0o644);
      if (how.mode === 'exclusive') n.verifier = Buffer.from(how.verifier);
      else if (attrs.size !== undefined) this.truncate(n, attrs.size);
      return this.link_(d, da, name, n);
    });
  }

  async mkdir(cred: Cred, dir: Buffer, name: string, attrs: SetAttrs): Promise<Created> {
    return guard(() => {
      const { d, da } = this.prepareNew(cred, dir, name, attrs);
      const n = this.makeNode(cred, d, FileType.DIR, attrs, 0o755);
      n.parent = d.ino;
      d.nlink++;
      return this.link_(d, da, name, n);
    });
  }

  async symlink(cred: Cred, dir: Buffer, name: string, target: string, attrs: SetAttrs): Promise<Created> {
    return guard(() => {
      checkSymlinkTarget(target);
      const { d, da } = this.prepareNew(cred, dir, name, attrs);
      const n = this.makeNode(cred, d, FileType.LNK, { ...attrs, mode: 0o777 }, 0o777);
      n.target = target;
      n.size = BigInt(encodeBytes(target).length);
      return this.link_(d, da, name, n);
    });
  }

  async mknod(
    cred: Cred,
    dir: Buffer,
    name: string,
    type: FileType,
    attrs: SetAttrs,
    rdev?: { major: number; minor: number },
  ): Promise<Created> {
    return guard(() => {
      checkMknodType(cred, type, this.opts.allowDevices ?? false);
      const { d, da } = this.prepareNew(cred, dir, name, attrs);
      const n = this.makeNode(cred, d, type, attrs, 0o644);
      if (type === FileType.BLK || type === FileType.CHR) n.rdev = { ...(rdev ?? { major: 0, minor: 0 }) };
      return this.link_(d, da, name, n);
    });
  }

  async remove(cred: Cred, dir: Buffer, name: string): Promise<{ dirWcc: Wcc }> {
    return guard(() => {
      const { d, da, n } = this.prepareVictim(cred, dir, name);
      if (n.type === FileType.DIR) throw fsError('EISDIR');
      this.unlink_(d, name, n);
      return { dirWcc: { before: wccBefore(da), after: this.attrs(d) } };
    });
  }

  async rmdir(cred: Cred, dir: Buffer, name: string): Promise<{ dirWcc: Wcc }> {
    return guard(() => {
      const { d, da, n } = this.prepareVictim(cred, dir, name);
      if (n.type !== FileType.DIR) throw fsError('ENOTDIR');
      if (n.children!.size > 0) throw fsError('ENOTEMPTY');
      this.unlink_(d, name, n);
      return { dirWcc: { before: wccBefore(da), after: this.attrs(d) } };
    });
  }

  async rename(cred: Cred, fromDir: Buffer, fromName: string, toDir: Buffer, toName: string): Promise<{ fromWcc: Wcc; toWcc: Wcc }> {
    return guard(() => {
      const { d: fd, da: fa, n: src } = this.prepareVictim(cred, fromDir, fromName);
      checkVictimName(toName);
      const td = this.dir(toDir);
      const ta = this.attrs(td);
      needLookup(cred, ta);
      const dstIno = td.children!.get(toName);
      const dst = dstIno === undefined ? undefined : this.nodes.get(dstIno)!;
      needModifyDir(cred, ta);
      if (dst) needSticky(cred, ta, this.attrs(dst));
      if (src.type === FileType.DIR) {
        if (this.isAncestor(src, td)) throw fsError('EINVAL', 'into itself');
        if (fd !== td) need(cred, this.attrs(src), W);
      }
      // Replacing an ancestor of the source: its directory is not empty (as Linux says).
      if (dst && dst.type === FileType.DIR && this.isAncestor(dst, fd)) throw fsError('ENOTEMPTY');
      if (dst !== src) {
        if (dst) this.checkReplace(src, dst);
        if (dst) this.unlink_(td, toName, dst);
        fd.children!.delete(fromName);
        td.children!.set(toName, src.ino);
        if (src.type === FileType.DIR && fd !== td) {
          src.parent = td.ino;
          fd.nlink--;
          td.nlink++;
        }
        const now = this.now();
        src.ctime = now;
        this.touchDir(fd, now);
        this.touchDir(td, now);
      }
      return {
        fromWcc: { before: wccBefore(fa), after: this.attrs(fd) },
        toWcc: { before: wccBefore(ta), after: this.attrs(td) },
      };
    });
  }

  async link(cred: Cred, node: Buffer, dir: Buffer, name: string): Promise<{ attrs: Attrs; dirWcc: Wcc }> {
    return guard(() => {
      const n = this.get(node);
      const { d, da } = this.prepareNew(cred, dir, name, {});
      needLinkSource(cred, this.attrs(n));
      n.nlink++;
      const now = this.now();
      n.ctime = now;
      d.children!.set(name, n.ino);
      this.touchDir(d, now);
      return { attrs: this.attrs(n), dirWcc: { before: wccBefore(da), after: this.attrs(d) } };
    });
  }

  async readdir(cred: Cred, dir: Buffer, cookie: bigint, maxBytes: number, plus: boolean): Promise<ReadDirResult & { dirAttrs: Attrs }> {
    return guard(async () => {
      const d = this.get(dir);
      const da = this.attrs(d);
      if (d.type !== FileType.DIR) throw fsError('ENOTDIR');
      need(cred, da, R);
      const dirKey = this.idOf(d);
      const info = (n: MNode): EntryInfo => ({ fileid: BigInt(n.ino), node: this.idOf(n), attrs: this.attrs(n) });
      const page = await readPage({
        cookies: this.cookies,
        dirKey,
        snap: this.snapshotOf(d),
        cookie,
        maxBytes,
        plus,
        dot: async () => info(d),
        dotdot: async () => info(this.nodes.get(d.parent!)!),
        describe: async (name) => {
          const ino = d.children!.get(name);
          return ino === undefined ? undefined : info(this.nodes.get(ino)!);
        },
      });
      return { ...page, cookieverf: this.cookies.verifier(da.mtime), dirAttrs: da };
    });
  }

  async fsstat(node: Buffer): Promise<FsStat & { attrs: Attrs }> {
    return guard(() => {
      const attrs = this.attrs(this.get(node));
      const freePages = BigInt(Math.max(0, this.capacityPages - this.usedPages));
      const freeFiles = BigInt(Math.max(0, this.maxFiles - this.nodes.size));
      return {
        tbytes: BigInt(this.capacityPages) * BigInt(PAGE),
        fbytes: freePages * BigInt(PAGE),
        abytes: freePages * BigInt(PAGE),
        tfiles: BigInt(this.maxFiles),
        ffiles: freeFiles,
        afiles: freeFiles,
        attrs,
      };
    });
  }

  async fsinfo(node: Buffer): Promise<FsInfo & { attrs: Attrs }> {
    return guard(() => ({
      maxFileSize: this.maxFileSize,
      timeDelta: { sec: 0, nsec: 1 },
      linkSupport: true,
      symlinkSupport: true,
      homogeneous: true,
      canSetTime: true,
      attrs: this.attrs(this.get(node)),
    }));
  }

  async pathconf(node: Buffer): Promise<PathConf & { attrs: Attrs }> {
    return guard(() => ({
      linkmax: 0xffffffff,
      nameMax: 255,
      noTrunc: true,
      chownRestricted: true,
      caseInsensitive: false,
      casePreserving: true,
      attrs: this.attrs(this.get(node)),
    }));
  }

  async commit(node: Buffer, _offset: bigint, _count: number): Promise<Wcc> {
    return guard(() => {
      const a = this.attrs(this.regular(node));
      return { before: wccBefore(a), after: a };
    });
  }

  async close(): Promise<void> {
    this.snapshots.clear();
  }

  // ---- nodes ----

  private idOf(n: MNode): Buffer {
    const b = Buffer.alloc(ID_LEN);
    b[0] = ID_FORMAT;
    this.instance.copy(b, 1);
    b.writeUInt32BE(n.ino, 5);
    b.writeUInt32BE(n.gen, 9);
    return b;
  }

  /** The live node an id names; ESTALE once it was deleted (its generation moved on). */
  private get(node: Buffer): MNode {
    if (node.length !== ID_LEN) throw fsError('EBADHANDLE');
    if (node[0] !== ID_FORMAT || !node.subarray(1, 5).equals(this.instance)) throw fsError('ESTALE');
    const n = this.nodes.get(node.readUInt32BE(5));
    if (!n || n.gen !== node.readUInt32BE(9)) throw fsError('ESTALE');
    return n;
  }

  private dir(node: Buffer): MNode {
    const d = this.get(node);
    if (d.type !== FileType.DIR) throw fsError('ENOTDIR');
    return d;
  }

  private regular(node: Buffer): MNode {
    const n = this.get(node);
    if (n.type === FileType.DIR) throw fsError('EISDIR');
    if (n.type !== FileType.REG) throw fsError('EINVAL', 'not a regular file');
    return n;
  }

  private child(d: MNode, name: string): MNode {
    const ino = d.children!.get(name);
    if (ino === undefined) throw fsError('ENOENT');
    return this.nodes.get(ino)!;
  }

  private attrs(n: MNode): Attrs {
    return {
      type: n.type,
      mode: n.mode,
      nlink: n.nlink,
      uid: n.uid,
      gid: n.gid,
      size: n.type === FileType.DIR ? BigInt(4096) : n.size,
      used: BigInt((n.pages?.size ?? 0) * PAGE),
      rdev: { ...n.rdev },
      fsid: this.fsid,
      fileid: BigInt(n.ino),
      atime: nsToTime(n.atime),
      mtime: nsToTime(n.mtime),
      ctime: nsToTime(n.ctime),
    };
  }

  /** A strictly increasing clock, so every change moves mtime/ctime. */
  private now(): bigint {
    const wall = BigInt(Date.now()) * 1_000_000n;
    this.lastNs = wall > this.lastNs ? wall : this.lastNs + 1n;
    return this.lastNs;
  }

  private alloc(type: FileType, mode: number, uid: number, gid: number): MNode {
    if (this.nodes.size >= this.maxFiles) throw fsError('ENOSPC', 'too many files');
    const slot = this.free.pop() ?? { ino: this.nextIno++, gen: 1 };
    if (slot.ino > 0xffffffff) throw fsError('ENOSPC', 'inode numbers exhausted');
    const now = this.now();
    const n: MNode = {
      ino: slot.ino,
      gen: slot.gen,
      type,
      mode: mode & 0o7777,
      uid,
      gid,
      nlink: type === FileType.DIR ? 2 : 1,
      atime: now,
      mtime: now,
      ctime: now,
      size: 0n,
      rdev: { major: 0, minor: 0 },
      version: 0,
    };
    if (type === FileType.REG) n.pages = new Map();
    if (type === FileType.DIR) n.children = new Map();
    this.nodes.set(n.ino, n);
    return n;
  }

  /** Drop a node whose last link went: its inode number comes back with the next generation. */
  private release(n: MNode): void {
    if (n.pages) this.usedPages -= n.pages.size;
    this.nodes.delete(n.ino);
    this.snapshots.delete(n.ino);
    this.free.push({ ino: n.ino, gen: (n.gen + 1) >>> 0 || 1 });
  }

  private makeNode(cred: Cred, d: MNode, type: FileType, attrs: SetAttrs, defaultMode: number): MNode {
    const own = newOwnership(cred, this.attrs(d), type, attrs.mode ?? defaultMode);
    const root = cred.uid === 0;
    const n = this.alloc(type, own.mode, root ? (attrs.uid ?? own.uid) : own.uid, root ? (attrs.gid ?? own.gid) : own.gid);
    if (attrs.atime !== undefined && attrs.atime !== 'now') n.atime = timeToNs(attrs.atime);
    if (attrs.mtime !== undefined && attrs.mtime !== 'now') n.mtime = timeToNs(attrs.mtime);
    return n;
  }

  private link_(d: MNode, da: Attrs, name: string, n: MNode): Created {
    d.children!.set(name, n.ino);
    this.touchDir(d, n.ctime);
    return { node: this.idOf(n), attrs: this.attrs(n), dirWcc: { before: wccBefore(da), after: this.attrs(d) } };
  }

  private unlink_(d: MNode, name: string, n: MNode): void {
    d.children!.delete(name);
    const now = this.now();
    this.touchDir(d, now);
    if (n.type === FileType.DIR) {
      d.nlink--;
      n.nlink = 0;
    } else {
      n.nlink--;
    }
    n.ctime = now;
    if (n.nlink === 0) this.release(n);
  }

  private touchDir(d: MNode, now: bigint): void {
    d.mtime = now;
    d.ctime = now;
    d.version++;
  }

  private prepareNew(cred: Cred, dir: Buffer, name: string, attrs: SetAttrs): { d: MNode; da: Attrs } {
    checkNewName(name);
    checkSetAttrs(attrs, this.maxFileSize);
    const d = this.dir(dir);
    const da = this.attrs(d);
    needLookup(cred, da);
    if (d.children!.has(name)) throw fsError('EEXIST');
    needModifyDir(cred, da);
    return { d, da };
  }

  private prepareVictim(cred: Cred, dir: Buffer, name: string): { d: MNode; da: Attrs; n: MNode } {
    checkVictimName(name);
    const d = this.dir(dir);
    const da = this.attrs(d);
    needLookup(cred, da);
    const n = this.child(d, name);
    needModifyDir(cred, da);
    needSticky(cred, da, this.attrs(n));
    return { d, da, n };
  }

  private createExisting(cred: Cred, d: MNode, da: Attrs, n: MNode, how: CreateHow): Created {
    if (how.mode === 'guarded' || n.type !== FileType.REG) throw fsError('EEXIST');
    if (how.mode === 'exclusive') {
      if (!n.verifier?.equals(how.verifier) || n.size !== 0n) throw fsError('EEXIST');
    } else if (how.attrs.size !== undefined) {
      needWrite(cred, this.attrs(n));
      this.truncate(n, how.attrs.size);
      const now = this.now();
      n.mtime = now;
      n.ctime = now;
    }
    return { node: this.idOf(n), attrs: this.attrs(n), dirWcc: { before: wccBefore(da), after: this.attrs(d) } };
  }

  private checkReplace(src: MNode, dst: MNode): void {
    if (src.type === FileType.DIR && dst.type !== FileType.DIR) throw fsError('ENOTDIR');
    if (src.type !== FileType.DIR && dst.type === FileType.DIR) throw fsError('EISDIR');
    if (dst.type === FileType.DIR && dst.children!.size > 0) throw fsError('ENOTEMPTY');
  }

  private isAncestor(a: MNode, n: MNode): boolean {
    for (let cur = n; ; cur = this.nodes.get(cur.parent!)!) {
      if (cur === a) return true;
      if (cur === this.rootNode) return false;
    }
  }

  private snapshotOf(d: MNode): Snapshot {
    const cached = this.snapshots.get(d.ino);
    if (cached?.version === d.version) return cached.snap;
    const snap = buildSnapshot(this.cookies, d.children!.keys(), cached?.snap);
    this.snapshots.set(d.ino, { version: d.version, snap }, d.children!.size + 1);
    return snap;
  }

  // ---- file data ----

  private readPages(n: MNode, offset: bigint, len: number): Buffer {
    const out = Buffer.alloc(len);
    for (let done = 0; done < len; ) {
      const pos = offset + BigInt(done);
      const pageNo = Number(pos / BigInt(PAGE));
      const inPage = Number(pos % BigInt(PAGE));
      const k = Math.min(PAGE - inPage, len - done);
      n.pages!.get(pageNo)?.copy(out, done, inPage, inPage + k);
      done += k;
    }
    return out;
  }

  /** Copy into pages, allocating as capacity allows; returns the bytes written (short at ENOSPC). */
  private writePages(n: MNode, offset: bigint, data: Buffer): number {
    let done = 0;
    while (done < data.length) {
      const pos = offset + BigInt(done);
      const pageNo = Number(pos / BigInt(PAGE));
      const inPage = Number(pos % BigInt(PAGE));
      let page = n.pages!.get(pageNo);
      if (!page) {
        if (this.usedPages >= this.capacityPages) {
          if (done === 0) throw fsError('ENOSPC');
          break;
        }
        page = Buffer.alloc(PAGE);
        n.pages!.set(pageNo, page);
        this.usedPages++;
      }
      done += data.copy(page, inPage, done, done + Math.min(PAGE - inPage, data.length - done));
    }
    const end = offset + BigInt(done);
    if (done > 0 && end > n.size) n.size = end;
    return done;
  }

  private truncate(n: MNode, size: bigint): void {
    if (size < n.size) {
      const keep = Number((size + BigInt(PAGE) - 1n) / BigInt(PAGE));
      for (const pageNo of [...n.pages!.keys()]) {
        if (pageNo >= keep) {
          n.pages!.delete(pageNo);
          this.usedPages--;
        }
      }
      const tail = Number(size % BigInt(PAGE));
      if (tail > 0) n.pages!.get(keep - 1)?.fill(0, tail);
    }
    n.size = size;
  }
}

function guard<T>(fn: () => T | Promise<T>): Promise<T> {
  try {
    return Promise.resolve(fn()).catch((err: unknown) => {
      throw toFsError(err);
    });
  } catch (err) {
    return Promise.reject(toFsError(err));
  }
}

function bigMin(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}
