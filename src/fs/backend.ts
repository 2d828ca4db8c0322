// The storage seam of the server: everything the NFSv3 procedures need from
// a file system, expressed without XDR. A backend addresses objects by opaque
// node ids (small buffers it makes itself); the server signs them into file
// handles. Backends: `local` (a real directory) and `memory` (embedding, tests).

import type { FileHandle } from 'node:fs/promises';

/** Object types, numbered as NFSv3's ftype3 so the server maps them 1:1. */
export enum FileType {
  REG = 1,
  DIR = 2,
  BLK = 3,
  CHR = 4,
  LNK = 5,
  SOCK = 6,
  FIFO = 7,
}

/** A point in time with nanosecond precision (as nfstime3, but 64-bit seconds). */
export interface Time {
  sec: number;
  nsec: number;
}

export interface Attrs {
  type: FileType;
  mode: number; // permission bits and setuid/setgid/sticky (07777), no type bits
  nlink: number;
  uid: number;
  gid: number;
  size: bigint;
  used: bigint; // bytes of storage actually used
  rdev: { major: number; minor: number };
  fsid: bigint;
  fileid: bigint; // unique within the export, stable, never 0
  atime: Time;
  mtime: Time;
  ctime: Time;
}

/** Attributes a client may set (undefined = leave as is). */
export interface SetAttrs {
  mode?: number;
  uid?: number;
  gid?: number;
  size?: bigint;
  atime?: Time | 'now';
  mtime?: Time | 'now';
}

/** The caller, after export squashing: checks are done as this user. */
export interface Cred {
  uid: number;
  gid: number;
  gids: readonly number[];
}

/** ACCESS bits, as NFSv3's ACCESS3_* values. */
export const Access = {
  READ: 0x01,
  LOOKUP: 0x02,
  MODIFY: 0x04,
  EXTEND: 0x08,
  DELETE: 0x10,
  EXECUTE: 0x20,
} as const;

export type StableHow = 0 | 1 | 2; // UNSTABLE, DATA_SYNC, FILE_SYNC

export type CreateHow =
  | { mode: 'unchecked'; attrs: SetAttrs }
  | { mode: 'guarded'; attrs: SetAttrs }
  | { mode: 'exclusive'; verifier: Buffer }; // 8 bytes, stored so a retransmit succeeds

export interface DirEntry {
  name: string;
  fileid: bigint;
  cookie: bigint;
  /**
   * Filled by readdir when `plus` is asked, except for entries the backend
   * will not descend into (a mount point of another file system).
   */
  node?: Buffer;
  attrs?: Attrs;
}

export interface ReadDirResult {
  entries: DirEntry[];
  eof: boolean;
  cookieverf: Buffer; // 8 bytes
}

export interface FsStat {
  tbytes: bigint;
  fbytes: bigint;
  abytes: bigint;
  tfiles: bigint;
  ffiles: bigint;
  afiles: bigint;
}

/** What FSINFO reports beyond transfer sizes (those are the server's). */
export interface FsInfo {
  maxFileSize: bigint;
  timeDelta: Time; // granularity of settable times
  linkSupport: boolean;
  symlinkSupport: boolean;
  homogeneous: boolean; // PATHCONF answers hold for every object
  canSetTime: boolean;
}

export interface PathConf {
  linkmax: number;
  nameMax: number;
  noTrunc: boolean;
  chownRestricted: boolean;
  caseInsensitive: boolean;
  casePreserving: boolean;
}

/** Weak cache consistency data: attributes before and after a change. */
export interface Wcc {
  before?: { size: bigint; mtime: Time; ctime: Time };
  after?: Attrs;
}

/**
 * A backend error carries a POSIX errno code (`ENOENT`, `ENOSPC`, ...) or one
 * of NFS's own conditions (`ESTALE`, `EBADHANDLE`, `EBADCOOKIE`, `ENOTSUPP`,
 * `ENOTSYNC`, `EJUKEBOX`, `EBADTYPE`, `ETOOSMALL`); the server maps codes to
 * nfsstat3 in one place.
 */
export class FsError extends Error {
  override name = 'FsError';
  constructor(readonly code: string, message?: string) {
    super(message ?? code);
  }
}

export interface Backend {
  /**
   * True when write() keeps no reference to its `data` once its promise
   * settles (it copies what it keeps): the server may then reuse the
   * request's memory for another one. Absent: the server never does.
   */
  readonly copiesWriteData?: boolean;
  /** The node id of the export's root directory. */
  root(): Promise<Buffer>;
  /** Check that a node id still names a live object inside this backend (ESTALE otherwise). */
  getattr(node: Buffer): Promise<Attrs>;
  /** `guardCtime`: fail with ENOTSYNC unless the object's ctime equals it. */
  setattr(cred: Cred, node: Buffer, attrs: SetAttrs, guardCtime?: Time): Promise<Wcc>;
  /** `name` may be `.` or `..`; `..` of the root is the root itself. */
  lookup(cred: Cred, dir: Buffer, name: string): Promise<{ node: Buffer; attrs: Attrs; dirAttrs?: Attrs }>;
  /** Returns the subset of `mask` (Access bits) the caller is granted. */
  access(cred: Cred, node: Buffer, mask: number): Promise<{ granted: number; attrs: Attrs }>;
  readlink(cred: Cred, node: Buffer): Promise<{ target: string; attrs: Attrs }>;
  /**
   * `data` holds exactly the bytes read; `eof` when offset + length reaches the size.
   * `release`, when present, gives `data`'s memory back for reuse: the caller
   * calls it once, when nothing uses `data` any more (the reply is written),
   * or never (the memory is then garbage collected).
   */
  read(cred: Cred, node: Buffer, offset: bigint, count: number): Promise<{ data: Buffer; eof: boolean; attrs: Attrs; release?: () => void }>;
  /** `count` may be short of data.length (the tail was not written); `committed` is at least `stable`. */
  write(cred: Cred, node: Buffer, offset: bigint, data: Buffer, stable: StableHow): Promise<{ count: number; committed: StableHow; wcc: Wcc }>;
  create(cred: Cred, dir: Buffer, name: string, how: CreateHow): Promise<{ node: Buffer; attrs: Attrs; dirWcc: Wcc }>;
  mkdir(cred: Cred, dir: Buffer, name: string, attrs: SetAttrs): Promise<{ node: Buffer; attrs: Attrs; dirWcc: Wcc }>;
  symlink(cred: Cred, dir: Buffer, name: string, target: string, attrs: SetAttrs): Promise<{ node: Buffer; attrs: Attrs; dirWcc: Wcc }>;
  /** FIFO and SOCK always; BLK/CHR only when the backend allows devices. */
  mknod(cred: Cred, dir: Buffer, name: string, type: FileType, attrs: SetAttrs, rdev?: { major: number; minor: number }): Promise<{ node: Buffer; attrs: Attrs; dirWcc: Wcc }>;
  remove(cred: Cred, dir: Buffer, name: string): Promise<{ dirWcc: Wcc }>;
  rmdir(cred: Cred, dir: Buffer, name: string): Promise<{ dirWcc: Wcc }>;
  rename(cred: Cred, fromDir: Buffer, fromName: string, toDir: Buffer, toName: string): Promise<{ fromWcc: Wcc; toWcc: Wcc }>;
  link(cred: Cred, node: Buffer, dir: Buffer, name: string): Promise<{ attrs: Attrs; dirWcc: Wcc }>;
  /**
   * Entries after `cookie` (0 = from the start; `.` and `..` come first),
   * fitting a reply of `maxBytes` (READDIR's count, READDIRPLUS's maxcount)
   * by RFC 1813's encoding. Cookies are unique per entry and stay valid while
   * the directory changes, so the server may drop trailing entries (to honour
   * READDIRPLUS's dircount) and the client resumes after the last one kept.
   * A cookie never issued gives EBADCOOKIE; a `maxBytes` too small for one
   * entry gives ETOOSMALL.
   */
  readdir(cred: Cred, dir: Buffer, cookie: bigint, maxBytes: number, plus: boolean): Promise<ReadDirResult & { dirAttrs: Attrs }>;
  fsstat(node: Buffer): Promise<FsStat & { attrs: Attrs }>;
  fsinfo(node: Buffer): Promise<FsInfo & { attrs: Attrs }>;
  pathconf(node: Buffer): Promise<PathConf & { attrs: Attrs }>;
  /** Make data durable (fsync) before returning. */
  commit(node: Buffer, offset: bigint, count: number): Promise<Wcc>;
  /**
   * A new open file description on a regular file, after the same permission
   * checks as read/write (for LOCALIO grants). Only backends over real files
   * have it.
   */
  open?(cred: Cred, node: Buffer, write: boolean): Promise<FileHandle>;
  /** Release cached file descriptors and indexes. */
  close(): Promise<void>;
}
