// Errors of the client's fs-like layer. A non-OK nfsstat3 (or mountstat3)
// becomes an NfsError shaped like Node's SystemError: `code` ('ENOENT'),
// negative `errno`, `syscall` and `path`, and a message in Node's format
// ("ENOENT: no such file or directory, open 'a/b'"), so callers can handle
// NFS files with the same code they use for local ones.

import { constants as osConstants } from 'node:os';
import { nfsstat3 } from '../proto/nfs3.gen.js';
import { mountstat3 } from '../proto/mount3.gen.js';
import { RpcError } from '../rpc/index.js';

/** Linux errno numbers for the codes Node's os.constants lacks (the kernel's NFS-internal ones). */
const EXTRA_ERRNO: Record<string, number> = {
  EBADHANDLE: 521,
  ENOTSYNC: 522,
  EBADCOOKIE: 523,
  ETOOSMALL: 525,
  ESERVERFAULT: 526,
  EBADTYPE: 527,
  EJUKEBOX: 528,
};

const DESCRIPTIONS: Record<string, string> = {
  EPERM: 'operation not permitted',
  ENOENT: 'no such file or directory',
  EIO: 'i/o error',
  ENXIO: 'no such device or address',
  EACCES: 'permission denied',
  EEXIST: 'file already exists',
  EXDEV: 'cross-device link not permitted',
  ENODEV: 'no such device',
  ENOTDIR: 'not a directory',
  EISDIR: 'illegal operation on a directory',
  EINVAL: 'invalid argument',
  EFBIG: 'file too large',
  ENOSPC: 'no space left on device',
  EROFS: 'read-only file system',
  EMLINK: 'too many links',
  ENAMETOOLONG: 'name too long',
  ENOTEMPTY: 'directory not empty',
  EDQUOT: 'disk quota exceeded',
  ESTALE: 'stale file handle',
  EREMOTE: 'object is remote',
  EBADHANDLE: 'illegal NFS file handle',
  ENOTSYNC: 'update synchronization mismatch',
  EBADCOOKIE: 'cookie is stale',
  ENOTSUP: 'operation not supported',
  ETOOSMALL: 'buffer or request is too small',
  ESERVERFAULT: 'server fault',
  EBADTYPE: 'type not supported by server',
  EJUKEBOX: 'request initiated, but will not complete before timeout',
  ETIMEDOUT: 'connection timed out',
  ECONNREFUSED: 'connection refused',
  EPROTO: 'protocol error',
  ELOOP: 'too many symbolic links encountered',
  EBADF: 'bad file descriptor',
  EPROGUNAVAIL: 'RPC program not available',
};

/** nfsstat3 -> errno code, as the Linux client maps them. */
const NFS_CODES: Record<number, string> = {
  [nfsstat3.NFS3ERR_PERM]: 'EPERM',
  [nfsstat3.NFS3ERR_NOENT]: 'ENOENT',
  [nfsstat3.NFS3ERR_IO]: 'EIO',
  [nfsstat3.NFS3ERR_NXIO]: 'ENXIO',
  [nfsstat3.NFS3ERR_ACCES]: 'EACCES',
  [nfsstat3.NFS3ERR_EXIST]: 'EEXIST',
  [nfsstat3.NFS3ERR_XDEV]: 'EXDEV',
  [nfsstat3.NFS3ERR_NODEV]: 'ENODEV',
  [nfsstat3.NFS3ERR_NOTDIR]: 'ENOTDIR',
  [nfsstat3.NFS3ERR_ISDIR]: 'EISDIR',
  [nfsstat3.NFS3ERR_INVAL]: 'EINVAL',
  [nfsstat3.NFS3ERR_FBIG]: 'EFBIG',
  [nfsstat3.NFS3ERR_NOSPC]: 'ENOSPC',
  [nfsstat3.NFS3ERR_ROFS]: 'EROFS',
  [nfsstat3.NFS3ERR_MLINK]: 'EMLINK',
  [nfsstat3.NFS3ERR_NAMETOOLONG]: 'ENAMETOOLONG',
  [nfsstat3.NFS3ERR_NOTEMPTY]: 'ENOTEMPTY',
  [nfsstat3.NFS3ERR_DQUOT]: 'EDQUOT',
  [nfsstat3.NFS3ERR_STALE]: 'ESTALE',
  [nfsstat3.NFS3ERR_REMOTE]: 'EREMOTE',
  [nfsstat3.NFS3ERR_BADHANDLE]: 'EBADHANDLE',
  [nfsstat3.NFS3ERR_NOT_SYNC]: 'ENOTSYNC',
  [nfsstat3.NFS3ERR_BAD_COOKIE]: 'EBADCOOKIE',
  [nfsstat3.NFS3ERR_NOTSUPP]: 'ENOTSUP',
  [nfsstat3.NFS3ERR_TOOSMALL]: 'ETOOSMALL',
  [nfsstat3.NFS3ERR_SERVERFAULT]: 'ESERVERFAULT',
  [nfsstat3.NFS3ERR_BADTYPE]: 'EBADTYPE',
  [nfsstat3.NFS3ERR_JUKEBOX]: 'EJUKEBOX',
};

const MOUNT_CODES: Record<number, string> = {
  [mountstat3.MNT3ERR_PERM]: 'EPERM',
  [mountstat3.MNT3ERR_NOENT]: 'ENOENT',
  [mountstat3.MNT3ERR_IO]: 'EIO',
  [mountstat3.MNT3ERR_ACCES]: 'EACCES',
  [mountstat3.MNT3ERR_NOTDIR]: 'ENOTDIR',
  [mountstat3.MNT3ERR_INVAL]: 'EINVAL',
  [mountstat3.MNT3ERR_NAMETOOLONG]: 'ENAMETOOLONG',
  [mountstat3.MNT3ERR_NOTSUPP]: 'ENOTSUP',
  [mountstat3.MNT3ERR_SERVERFAULT]: 'ESERVERFAULT',
};

/** The positive errno number of a code ('ENOENT' -> 2), 0 when unknown. */
export function errnoOf(code: string): number {
  const n = (osConstants.errno as Record<string, number | undefined>)[code];
  return n ?? EXTRA_ERRNO[code] ?? 0;
}

/** The errno code of an nfsstat3 ('EIO' for values this table does not know). */
export function codeOfNfsStat(status: number): string {
  return NFS_CODES[status] ?? 'EIO';
}

/** The errno code of a mountstat3. */
export function codeOfMountStat(status: number): string {
  return MOUNT_CODES[status] ?? 'EIO';
}

export interface NfsErrorInit {
  code: string;
  syscall: string;
  path?: string;
  dest?: string;
  /** The nfsstat3 (or mountstat3) the server answered, when there was one. */
  nfsStatus?: number;
  cause?: unknown;
  message?: string;
}

/**
 * A failed file-system call, shaped like Node's SystemError:
 * `err.code === 'ENOENT'`, `err.errno === -2`, `err.syscall === 'open'`,
 * `err.path === 'a/b'`. `nfsStatus` keeps the server's nfsstat3.
 */
export class NfsError extends Error {
  override name = 'NfsError';
  readonly code: string;
  readonly errno: number;
  readonly syscall: string;
  readonly path?: string;
  readonly dest?: string;
  readonly nfsStatus?: number;

  constructor(init: NfsErrorInit) {
    const desc = init.message ?? DESCRIPTIONS[init.code] ?? init.code.toLowerCase();
    let msg = `${init.code}: ${desc}, ${init.syscall}`;
    if (init.path !== undefined) msg += ` '${init.path}'`;
    if (init.dest !== undefined) msg += ` -> '${init.dest}'`;
    super(msg, init.cause === undefined ? undefined : { cause: init.cause });
    this.code = init.code;
    this.errno = -errnoOf(init.code);
    this.syscall = init.syscall;
    if (init.path !== undefined) this.path = init.path;
    if (init.dest !== undefined) this.dest = init.dest;
    if (init.nfsStatus !== undefined) this.nfsStatus = init.nfsStatus;
  }

  /** The same error for another call (a background writeback error surfacing at `close`). */
  withCall(syscall: string, path?: string): NfsError {
    return new NfsError({ code: this.code, syscall, path: path ?? this.path, nfsStatus: this.nfsStatus, cause: this.cause ?? this });
  }
}

/**
 * A non-OK nfsstat3 inside the client, before it reaches the API edge and
 * gets a syscall and a path. Transports throw it.
 */
export class NfsStatusError extends Error {
  override name = 'NfsStatusError';
  constructor(readonly status: number, readonly procedure: string) {
    super(`${procedure}: ${codeOfNfsStat(status)} (nfsstat3 ${status})`);
  }
}

/** The code an RPC-level failure takes in the fs-like layer. */
function codeOfRpcError(err: RpcError): string {
  switch (err.code) {
    case 'ETIMEDOUT':
      return 'ETIMEDOUT';
    case 'AUTH_ERROR':
      return 'EACCES';
    case 'PROG_UNAVAIL':
    case 'PROG_MISMATCH':
      return 'EPROGUNAVAIL';
    case 'PROC_UNAVAIL':
      return 'ENOTSUP';
    case 'EPROTO':
    case 'GARBAGE_ARGS':
    case 'RPC_MISMATCH':
      return 'EPROTO';
    default:
      return 'EIO';
  }
}

/** Any failure (NfsStatusError, RpcError, NfsError, other) as an NfsError for `syscall` on `path`. */
export function toNfsError(err: unknown, syscall: string, path?: string, dest?: string): NfsError {
  if (err instanceof NfsError) return err.syscall === syscall && err.path === path ? err : err.withCall(syscall, path);
  if (err instanceof NfsStatusError) return new NfsError({ code: codeOfNfsStat(err.status), syscall, path, dest, nfsStatus: err.status });
  if (err instanceof RpcError) return new NfsError({ code: codeOfRpcError(err), syscall, path, dest, cause: err, message: err.message });
  const e = err as NodeJS.ErrnoException;
  if (e && typeof e.code === 'string' && /^E[A-Z0-9]+$/.test(e.code)) return new NfsError({ code: e.code, syscall, path, dest, cause: err, message: e.message });
  return new NfsError({ code: 'EIO', syscall, path, dest, cause: err, message: e?.message ?? String(err) });
}

/** An NfsError for an nfsstat3 returned by a call. */
export function statusError(status: number, syscall: string, path?: string, dest?: string): NfsError {
  return new NfsError({ code: codeOfNfsStat(status), syscall, path, dest, nfsStatus: status });
}

/** An NfsError with a plain code (EISDIR, ELOOP, EBADF ...) raised by the client itself. */
export function codeError(code: string, syscall: string, path?: string, message?: string): NfsError {
  return new NfsError({ code, syscall, path, message });
}
