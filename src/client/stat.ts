// What stat, readdir and statfs return: objects shaped like Node's fs.Stats,
// fs.Dirent and fs.StatFs, built from NFSv3 attributes.

import type { fattr3, FSSTAT3resok, nfstime3 } from '../proto/nfs3.gen.js';

/** ftype3 values. */
export const FileType = { REG: 1, DIR: 2, BLK: 3, CHR: 4, LNK: 5, SOCK: 6, FIFO: 7 } as const;

/** S_IF* bits of each ftype3. */
const TYPE_BITS: Record<number, number> = {
  1: 0o100000, // S_IFREG
  2: 0o040000, // S_IFDIR
  3: 0o060000, // S_IFBLK
  4: 0o020000, // S_IFCHR
  5: 0o120000, // S_IFLNK
  6: 0o140000, // S_IFSOCK
  7: 0o010000, // S_IFIFO
};

const S_IFMT = 0o170000;

function u53(v: bigint): number {
  return Number(BigInt.asUintN(53, v));
}

function ms(t: nfstime3): number {
  return t.seconds * 1000 + Math.floor(t.nseconds / 1e6);
}

function ns(t: nfstime3): bigint {
  return BigInt(t.seconds) * 1_000_000_000n + BigInt(t.nseconds);
}

class TypeTests {
  constructor(readonly mode: number) {}
  isFile(): boolean {
    return (this.mode & S_IFMT) === 0o100000;
  }
  isDirectory(): boolean {
    return (this.mode & S_IFMT) === 0o040000;
  }
  isSymbolicLink(): boolean {
    return (this.mode & S_IFMT) === 0o120000;
  }
  isBlockDevice(): boolean {
    return (this.mode & S_IFMT) === 0o060000;
  }
  isCharacterDevice(): boolean {
    return (this.mode & S_IFMT) === 0o020000;
  }
  isFIFO(): boolean {
    return (this.mode & S_IFMT) === 0o010000;
  }
  isSocket(): boolean {
    return (this.mode & S_IFMT) === 0o140000;
  }
}

/** The mode with its S_IF* type bits, as stat(2) reports it. */
export function modeOf(a: fattr3): number {
  return (TYPE_BITS[a.type] ?? 0) | (a.mode & 0o7777);
}

/**
 * fs.Stats-like attributes: `size` is a number and `sizeBig` the exact
 * bigint; `ino` is the fileid (as a number, `fileid` as the bigint); dates
 * as Date, `*Ms` as numbers and `*Ns` as bigints.
 */
export class NfsStats extends TypeTests {
  readonly dev: number;
  readonly ino: number;
  readonly nlink: number;
  readonly uid: number;
  readonly gid: number;
  readonly rdev: number;
  readonly size: number;
  readonly sizeBig: bigint;
  readonly blksize: number;
  readonly blocks: number;
  readonly atimeMs: number;
  readonly mtimeMs: number;
  readonly ctimeMs: number;
  readonly birthtimeMs: number;
  readonly atimeNs: bigint;
  readonly mtimeNs: bigint;
  readonly ctimeNs: bigint;
  readonly atime: Date;
  readonly mtime: Date;
  readonly ctime: Date;
  readonly birthtime: Date;
  /** The NFS fileid and fsid, exact. */
  readonly fileid: bigint;
  readonly fsid: bigint;

  /** `size` overrides the server's size (a file with data not yet written back is longer here). */
  constructor(readonly attrs: fattr3, blksize = 4096, size?: bigint) {
    super(modeOf(attrs));
    this.dev = u53(attrs.fsid);
    this.ino = u53(attrs.fileid);
    this.fileid = attrs.fileid;
    this.fsid = attrs.fsid;
    this.nlink = attrs.nlink;
    this.uid = attrs.uid;
    this.gid = attrs.gid;
    const { specdata1: major, specdata2: minor } = attrs.rdev;
    this.rdev = ((major & 0xfff) << 8) | (minor & 0xff) | ((minor & ~0xff) << 12);
    this.sizeBig = size !== undefined && size > attrs.size ? size : attrs.size;
    this.size = Number(this.sizeBig);
    this.blksize = blksize;
    this.blocks = Number((attrs.used + 511n) / 512n);
    this.atimeMs = ms(attrs.atime);
    this.mtimeMs = ms(attrs.mtime);
    this.ctimeMs = ms(attrs.ctime);
    this.birthtimeMs = this.ctimeMs;
    this.atimeNs = ns(attrs.atime);
    this.mtimeNs = ns(attrs.mtime);
    this.ctimeNs = ns(attrs.ctime);
    this.atime = new Date(this.atimeMs);
    this.mtime = new Date(this.mtimeMs);
    this.ctime = new Date(this.ctimeMs);
    this.birthtime = new Date(this.birthtimeMs);
  }
}

/** An fs.Dirent-like directory entry (readdir with `withFileTypes`). */
export class NfsDirent extends TypeTests {
  /** The directory it was listed from (relative to the mount). */
  readonly path: string;
  constructor(readonly name: string, readonly parentPath: string, type: number, readonly fileid: bigint, readonly stats?: NfsStats) {
    super(TYPE_BITS[type] ?? 0);
    this.path = parentPath;
  }
}

/** fs.StatFs-like file system figures (FSSTAT), plus the exact byte counts. */
export interface NfsStatFs {
  /** Always 0x6969 (NFS_SUPER_MAGIC), as statfs(2) reports NFS. */
  type: number;
  bsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  totalBytes: bigint;
  freeBytes: bigint;
  availBytes: bigint;
  totalFiles: bigint;
  freeFiles: bigint;
  availFiles: bigint;
  /** Seconds during which these figures will not change (0: may change any time). */
  invarsec: number;
}

export function statFsOf(r: FSSTAT3resok, bsize = 4096): NfsStatFs {
  const b = BigInt(bsize);
  return {
    type: 0x6969,
    bsize,
    blocks: Number(r.tbytes / b),
    bfree: Number(r.fbytes / b),
    bavail: Number(r.abytes / b),
    files: u53(r.tfiles),
    ffree: u53(r.afiles),
    totalBytes: r.tbytes,
    freeBytes: r.fbytes,
    availBytes: r.abytes,
    totalFiles: r.tfiles,
    freeFiles: r.ffiles,
    availFiles: r.afiles,
    invarsec: r.invarsec,
  };
}
