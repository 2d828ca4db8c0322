// NFSv3 (program 100003, version 3), RFC 1813: the 22 procedures over a
// Backend. Every procedure with a file handle goes the same way:
//
//   handle   FileHandles decode: malformed -> NFS3ERR_BADHANDLE; tag does not
//            verify, or the export is gone -> NFS3ERR_STALE
//   client   the export's rules for the connection's address and source port
//            (ExportSet.access, cached per connection):
//              no rule admits the address  -> NFS3ERR_ACCES
//              `secure` rule, port >= 1024 -> NFS3ERR_PERM (as Linux's nfsd)
//            Linux's nfsd answers NFS3ERR_STALE for a client outside the
//            rules (its export lookup fails for that client); ACCES is what
//            actually happened, and STALE would send clients into lookup
//            retries. AUTH_TOOWEAK is not used: the flavor is not the problem.
//   caller   mapCred with the rule's squash options; AUTH_NONE is anonymous
//   ro       a rule without `rw`: NFS3ERR_ROFS for every modifying procedure
//            (COMMIT included, as Linux), and ACCESS never grants MODIFY,
//            EXTEND or DELETE
//   backend  the call; FsError codes map to nfsstat3 in `nfsStatus` (one place)
//   reply    post_op_attr and wcc_data wherever RFC 1813 has them; on errors
//            best-effort (the object's attributes after the failed call)
//
// Names are checked here as well as in the backends, so an embedder's
// backend never sees a name that could address something else: `/` or NUL
// or an empty name -> NFS3ERR_INVAL (our backends say EINVAL; Linux's nfsd
// says ACCES, RFC 1813 allows either), more than 255 bytes ->
// NFS3ERR_NAMETOOLONG.
//
// Limits (FSINFO): rtmax = wtmax = rtpref = wtpref = 1 MiB (as Linux's nfsd:
// the preferred size is the largest, so clients make few large calls),
// multiples of 4096, dtpref 64 KiB. Following Linux's nfsd:
//   READ    count above rtmax is clamped (RFC 1813 lets a READ return less);
//           an offset past 2^63-1 reads nothing, with eof
//   WRITE   `count` differing from the data's length is GARBAGE_ARGS (Linux's
//           decoder refuses the call); more than wtmax writes wtmax (a short
//           write the client continues); an end past 2^63-1 is NFS3ERR_FBIG.
//           The data is a view of the received record: never copied here.
//   COMMIT  an offset past 2^63-1 is NFS3ERR_INVAL
//   READDIR(PLUS) count/maxcount clamped to 1 MiB; the cookie verifier is not
//           checked (Linux's nfsd does not either): our cookies stay valid
//           while the directory changes, and a cookie never issued is
//           NFS3ERR_BAD_COOKIE. READDIRPLUS's dircount is ignored, as Linux's
//           nfsd ignores it: maxcount bounds the reply.
//   `async` exports: stable writes are made UNSTABLE (and reported so) and
//           COMMIT does not sync, as Linux's nfsd does for `async`.

import { Access, FileType, FsError, type Attrs, type Cred, type SetAttrs, type Time, type Wcc } from '../fs/backend.js';
import { AcceptStat, RpcAcceptError, type CallContext, type ProgramVersion } from '../rpc/index.js';
import {
  NFS_V3_TABLE,
  nfsstat3,
  FSF3_CANSETTIME,
  FSF3_HOMOGENEOUS,
  FSF3_LINK,
  FSF3_SYMLINK,
  type ACCESS3args,
  type ACCESS3res,
  type COMMIT3args,
  type COMMIT3res,
  type CREATE3args,
  type CREATE3res,
  type FSINFO3args,
  type FSINFO3res,
  type FSSTAT3args,
  type FSSTAT3res,
  type GETATTR3args,
  type GETATTR3res,
  type LINK3args,
  type LINK3res,
  type LOOKUP3args,
  type LOOKUP3res,
  type MKDIR3args,
  type MKDIR3res,
  type MKNOD3args,
  type MKNOD3res,
  type PATHCONF3args,
  type PATHCONF3res,
  type READ3args,
  type READ3res,
  type READDIR3args,
  type READDIR3res,
  type READDIRPLUS3args,
  type READDIRPLUS3res,
  type READLINK3args,
  type READLINK3res,
  type REMOVE3args,
  type REMOVE3res,
  type RENAME3args,
  type RENAME3res,
  type RMDIR3args,
  type RMDIR3res,
  type SETATTR3args,
  type SETATTR3res,
  type SYMLINK3args,
  type SYMLINK3res,
  type WRITE3args,
  type WRITE3res,
  type entryplus3,
  type fattr3,
  type ftype3,
  type nfstime3,
  type post_op_attr,
  type sattr3,
  type stable_how,
  type wcc_data,
} from '../proto/nfs3.gen.js';
import { type Logger, silentLogger } from '../log.js';
import { encodeBytes } from '../xdr/index.js';
import { mapCred, type ExportOptions } from './exports.js';
import type { ExportSet, ServedExport } from './export-set.js';
import { serveTable } from './program.js';

/** rtmax, wtmax, and the preferred sizes. */
export const MAX_TRANSFER = 1 << 20;
export const TRANSFER_MULT = 4096;
export const DIR_PREF = 64 * 1024;
/** Largest file offset (Linux's OFFSET_MAX). */
export const OFFSET_MAX = (1n << 63n) - 1n;
export const NAME_MAX = 255;

/** Procedures answered from the duplicate request cache when retransmitted. */
export const NFS3_NON_IDEMPOTENT = ['SETATTR', 'CREATE', 'MKDIR', 'SYMLINK', 'MKNOD', 'REMOVE', 'RMDIR', 'RENAME', 'LINK'] as const;

type Err = Exclude<nfsstat3, 0>;
const OK = nfsstat3.NFS3_OK;
const MODIFYING = Access.MODIFY | Access.EXTEND | Access.DELETE;
const ALL_ACCESS = Access.READ | Access.LOOKUP | MODIFYING | Access.EXECUTE;

const NO_WCC: wcc_data = Object.freeze({ before: undefined, after: undefined });

/** FsError code -> nfsstat3. Codes not here (and EIO) are NFS3ERR_IO, logged. */
const STATUS_BY_CODE: ReadonlyMap<string, Err> = new Map<string, Err>([
  ['EPERM', nfsstat3.NFS3ERR_PERM],
  ['ENOENT', nfsstat3.NFS3ERR_NOENT],
  ['ENXIO', nfsstat3.NFS3ERR_NXIO],
  ['EACCES', nfsstat3.NFS3ERR_ACCES],
  ['EEXIST', nfsstat3.NFS3ERR_EXIST],
  ['EXDEV', nfsstat3.NFS3ERR_XDEV],
  ['ENODEV', nfsstat3.NFS3ERR_NODEV],
  ['ENOTDIR', nfsstat3.NFS3ERR_NOTDIR],
  ['EISDIR', nfsstat3.NFS3ERR_ISDIR],
  ['EINVAL', nfsstat3.NFS3ERR_INVAL],
  ['EFBIG', nfsstat3.NFS3ERR_FBIG],
  ['ENOSPC', nfsstat3.NFS3ERR_NOSPC],
  ['EROFS', nfsstat3.NFS3ERR_ROFS],
  ['EMLINK', nfsstat3.NFS3ERR_MLINK],
  ['ENAMETOOLONG', nfsstat3.NFS3ERR_NAMETOOLONG],
  ['ENOTEMPTY', nfsstat3.NFS3ERR_NOTEMPTY],
  ['EDQUOT', nfsstat3.NFS3ERR_DQUOT],
  ['ESTALE', nfsstat3.NFS3ERR_STALE],
  ['EBADHANDLE', nfsstat3.NFS3ERR_BADHANDLE],
  ['ENOTSYNC', nfsstat3.NFS3ERR_NOT_SYNC],
  ['EBADCOOKIE', nfsstat3.NFS3ERR_BAD_COOKIE],
  ['ENOTSUPP', nfsstat3.NFS3ERR_NOTSUPP],
  ['ENOTSUP', nfsstat3.NFS3ERR_NOTSUPP],
  ['EOPNOTSUPP', nfsstat3.NFS3ERR_NOTSUPP],
  ['ETOOSMALL', nfsstat3.NFS3ERR_TOOSMALL],
  ['EBADTYPE', nfsstat3.NFS3ERR_BADTYPE],
  ['EJUKEBOX', nfsstat3.NFS3ERR_JUKEBOX],
  // Transient shortages: the client retries later (Linux's nfsd maps
  // EAGAIN and ENOMEM so too); descriptors are a cache here, so running out
  // of them is transient as well.
  ['EAGAIN', nfsstat3.NFS3ERR_JUKEBOX],
  ['ENOMEM', nfsstat3.NFS3ERR_JUKEBOX],
  ['EMFILE', nfsstat3.NFS3ERR_JUKEBOX],
  ['ENFILE', nfsstat3.NFS3ERR_JUKEBOX],
]);

/** The one mapping from backend errors to nfsstat3. Anything unexpected is NFS3ERR_IO and is logged. */
export function nfsStatus(err: unknown, log: Logger = silentLogger, proc = ''): Err {
  if (err instanceof FsError) {
    const s = STATUS_BY_CODE.get(err.code);
    if (s !== undefined) return s;
    if (err.code === 'EIO') log.error({ err, proc }, 'I/O error');
    else log.error({ err, proc, code: err.code }, 'unexpected backend error code; answering NFS3ERR_IO');
    return nfsstat3.NFS3ERR_IO;
  }
  log.error({ err, proc }, 'backend failed; answering NFS3ERR_IO');
  return nfsstat3.NFS3ERR_IO;
}

/** A name from the wire: 0 when acceptable, else the status to answer. */
export function checkName(name: string): Err | 0 {
  if (name.length === 0 || name.includes('/') || name.includes('\0')) return nfsstat3.NFS3ERR_INVAL;
  // A UTF-16 unit is at most 3 bytes on the wire: count bytes only for long names.
  if (name.length * 3 > NAME_MAX && encodeBytes(name).length > NAME_MAX) return nfsstat3.NFS3ERR_NAMETOOLONG;
  return 0;
}

// ------------------------------------------------------------ conversions

function time3(t: Time): nfstime3 {
  // nfstime3 seconds are 32 bits: wrap as Linux's nfsd does.
  return { seconds: t.sec >>> 0, nseconds: t.nsec >>> 0 };
}

export function toFattr(a: Attrs, fsid: bigint | undefined): fattr3 {
  return {
    type: a.type as number as ftype3,
    mode: a.mode & 0o7777,
    nlink: a.nlink >>> 0,
    uid: a.uid >>> 0,
    gid: a.gid >>> 0,
    size: a.size,
    used: a.used,
    rdev: { specdata1: a.rdev.major >>> 0, specdata2: a.rdev.minor >>> 0 },
    fsid: fsid ?? a.fsid,
    fileid: a.fileid,
    atime: time3(a.atime),
    mtime: time3(a.mtime),
    ctime: time3(a.ctime),
  };
}

function toWcc(w: Wcc, fsid: bigint | undefined): wcc_data {
  return {
    before: w.before && { size: w.before.size, mtime: time3(w.before.mtime), ctime: time3(w.before.ctime) },
    after: w.after && toFattr(w.after, fsid),
  };
}

export function toSetAttrs(s: sattr3): SetAttrs {
  const out: SetAttrs = {};
  if (s.mode !== undefined) out.mode = s.mode;
  if (s.uid !== undefined) out.uid = s.uid;
  if (s.gid !== undefined) out.gid = s.gid;
  if (s.size !== undefined) out.size = s.size;
  if (s.atime.set_it === 1) out.atime = 'now';
  else if (s.atime.set_it === 2) out.atime = { sec: s.atime.atime.seconds, nsec: s.atime.atime.nseconds };
  if (s.mtime.set_it === 1) out.mtime = 'now';
  else if (s.mtime.set_it === 2) out.mtime = { sec: s.mtime.mtime.seconds, nsec: s.mtime.mtime.nseconds };
  return out;
}

// ------------------------------------------------------------ the server

/** A resolved handle: the export, the backend node, and who is asking. */
interface Target {
  readonly exp: ServedExport;
  readonly node: Buffer;
  readonly opts: ExportOptions;
  readonly fsid: bigint | undefined;
  readonly cred: Cred;
}

export interface Nfs3Options {
  exports: ExportSet;
  /** The server's write verifier (ServerState.writeVerifier). */
  writeVerifier: Buffer;
  logger?: Logger;
  /** Counts file data moved (ServerStats). */
  stats?: { addBytesRead(n: number): void; addBytesWritten(n: number): void };
}

export class Nfs3Server {
  private readonly exports: ExportSet;
  private readonly verf: Buffer;
  private readonly log: Logger;
  private readonly stats: Nfs3Options['stats'];

  constructor(opts: Nfs3Options) {
    this.exports = opts.exports;
    this.verf = opts.writeVerifier;
    this.log = opts.logger ?? silentLogger;
    this.stats = opts.stats;
  }

  program(): ProgramVersion {
    return serveTable(
      NFS_V3_TABLE,
      {
        NULL: () => undefined,
        GETATTR: (a, c) => this.getattr(a, c),
        SETATTR: (a, c) => this.setattr(a, c),
        LOOKUP: (a, c) => this.lookup(a, c),
        ACCESS: (a, c) => this.access(a, c),
        READLINK: (a, c) => this.readlink(a, c),
        READ: (a, c) => this.read(a, c),
        WRITE: (a, c) => this.write(a, c),
        CREATE: (a, c) => this.create(a, c),
        MKDIR: (a, c) => this.mkdir(a, c),
        SYMLINK: (a, c) => this.symlink(a, c),
        MKNOD: (a, c) => this.mknod(a, c),
        REMOVE: (a, c) => this.remove(a, c),
        RMDIR: (a, c) => this.rmdir(a, c),
        RENAME: (a, c) => this.rename(a, c),
        LINK: (a, c) => this.link(a, c),
        READDIR: (a, c) => this.readdir(a, c),
        READDIRPLUS: (a, c) => this.readdirplus(a, c),
        FSSTAT: (a, c) => this.fsstat(a, c),
        FSINFO: (a, c) => this.fsinfo(a, c),
        PATHCONF: (a, c) => this.pathconf(a, c),
        COMMIT: (a, c) => this.commit(a, c),
      },
      { nonIdempotent: NFS3_NON_IDEMPOTENT },
    );
  }

  // ---------------------------------------------------------- plumbing

  /** Handle -> export -> client rules -> credential; a status when refused. */
  private resolve(fh: Buffer, ctx: CallContext): Target | Err {
    const h = this.exports.handles.decodeHandle(fh);
    if (!h.ok) return h.error === 'stale' ? nfsstat3.NFS3ERR_STALE : nfsstat3.NFS3ERR_BADHANDLE;
    const exp = this.exports.byId(h.exportId);
    if (!exp) return nfsstat3.NFS3ERR_STALE;
    const a = this.exports.access(exp, ctx.conn);
    if (!a.ok) {
      this.log.debug({ client: ctx.conn.remoteAddress, port: ctx.conn.remotePort, export: exp.path, reason: a.reason }, 'request refused by the export rules');
      return a.reason === 'insecure' ? nfsstat3.NFS3ERR_PERM : nfsstat3.NFS3ERR_ACCES;
    }
    // The node id is a view into the request record: copy it (at most 40
    // bytes) so that nothing a backend keeps pins the record.
    return { exp, node: Buffer.from(h.nodeId), opts: a.options, fsid: a.fsid, cred: mapCred(a.options, ctx.authSys) };
  }

  private status(err: unknown, proc: string): Err {
    return nfsStatus(err, this.log, proc);
  }

  private fattr(t: Target, a: Attrs): fattr3 {
    return toFattr(a, t.fsid);
  }

  private fh(t: Target, node: Buffer): { data: Buffer } {
    return { data: this.exports.handleOf(t.exp, node) };
  }

  /** Attributes after a failed call, when they can be had. */
  private async attrsAfter(t: Target, status: Err): Promise<post_op_attr> {
    if (status === nfsstat3.NFS3ERR_STALE || status === nfsstat3.NFS3ERR_BADHANDLE) return undefined;
    try {
      return toFattr(await t.exp.backend.getattr(t.node), t.fsid);
    } catch {
      return undefined;
    }
  }

  private async wccAfter(t: Target, status: Err): Promise<wcc_data> {
    const after = await this.attrsAfter(t, status);
    return after ? { before: undefined, after } : NO_WCC;
  }

  // ---------------------------------------------------------- procedures

  async getattr(a: GETATTR3args, ctx: CallContext): Promise<GETATTR3res> {
    const t = this.resolve(a.object.data, ctx);
    if (typeof t === 'number') return { status: t };
    try {
      return { status: OK, resok: { obj_attributes: this.fattr(t, await t.exp.backend.getattr(t.node)) } };
    } catch (err) {
      return { status: this.status(err, 'GETATTR') };
    }
  }

  async setattr(a: SETATTR3args, ctx: CallContext): Promise<SETATTR3res> {
    const t = this.resolve(a.object.data, ctx);
    if (typeof t === 'number') return { status: t, resfail: { obj_wcc: NO_WCC } };
    let status: Err = nfsstat3.NFS3ERR_ROFS;
    if (t.opts.rw) {
      try {
        const guard = a.guard && { sec: a.guard.seconds, nsec: a.guard.nseconds };
        const w = await t.exp.backend.setattr(t.cred, t.node, toSetAttrs(a.new_attributes), guard);
        return { status: OK, resok: { obj_wcc: toWcc(w, t.fsid) } };
      } catch (err) {
        status = this.status(err, 'SETATTR');
      }
    }
    return { status, resfail: { obj_wcc: await this.wccAfter(t, status) } };
  }

  async lookup(a: LOOKUP3args, ctx: CallContext): Promise<LOOKUP3res> {
    const d = this.resolve(a.what.dir.data, ctx);
    if (typeof d === 'number') return { status: d, resfail: { dir_attributes: undefined } };
    let status = checkName(a.what.name);
    if (status === 0) {
      try {
        const r = await d.exp.backend.lookup(d.cred, d.node, a.what.name);
        return {
          status: OK,
          resok: { object: this.fh(d, r.node), obj_attributes: this.fattr(d, r.attrs), dir_attributes: r.dirAttrs && this.fattr(d, r.dirAttrs) },
        };
      } catch (err) {
        status = this.status(err, 'LOOKUP');
      }
    }
    return { status, resfail: { dir_attributes: await this.attrsAfter(d, status) } };
  }

  async access(a: ACCESS3args, ctx: CallContext): Promise<ACCESS3res> {
    const t = this.resolve(a.object.data, ctx);
    if (typeof t === 'number') return { status: t, resfail: { obj_attributes: undefined } };
    try {
      const asked = a.access & ALL_ACCESS;
      const r = await t.exp.backend.access(t.cred, t.node, asked);
      let granted = r.granted & asked;
      if (!t.opts.rw) granted &= ~MODIFYING;
      return { status: OK, resok: { obj_attributes: this.fattr(t, r.attrs), access: granted } };
    } catch (err) {
      const status = this.status(err, 'ACCESS');
      return { status, resfail: { obj_attributes: await this.attrsAfter(t, status) } };
    }
  }

  async readlink(a: READLINK3args, ctx: CallContext): Promise<READLINK3res> {
    const t = this.resolve(a.symlink.data, ctx);
    if (typeof t === 'number') return { status: t, resfail: { symlink_attributes: undefined } };
    try {
      const r = await t.exp.backend.readlink(t.cred, t.node);
      return { status: OK, resok: { symlink_attributes: this.fattr(t, r.attrs), data: r.target } };
    } catch (err) {
      const status = this.status(err, 'READLINK');
      return { status, resfail: { symlink_attributes: await this.attrsAfter(t, status) } };
    }
  }

  async read(a: READ3args, ctx: CallContext): Promise<READ3res> {
    const t = this.resolve(a.file.data, ctx);
    if (typeof t === 'number') return { status: t, resfail: { file_attributes: undefined } };
    let offset = a.offset;
    let count = Math.min(a.count, MAX_TRANSFER);
    if (offset > OFFSET_MAX) {
      // Linux's nfsd reads nothing there (and reports eof).
      offset = OFFSET_MAX;
      count = 0;
    } else if (offset + BigInt(count) > OFFSET_MAX) {
      count = Number(OFFSET_MAX - offset);
    }
    try {
      const r = await t.exp.backend.read(t.cred, t.node, offset, count);
      // The data goes into the reply by reference (XdrWriter), not copied;
      // its buffer goes back to the backend once the reply is written.
      // (Without afterReply nobody knows when: the buffer is left to the GC.)
      if (r.release) ctx.afterReply?.(r.release);
      const data = r.data.length > count ? r.data.subarray(0, count) : r.data;
      this.stats?.addBytesRead(data.length);
      return { status: OK, resok: { file_attributes: this.fattr(t, r.attrs), count: data.length, eof: r.eof && data.length === r.data.length, data } };
    } catch (err) {
      const status = this.status(err, 'READ');
      return { status, resfail: { file_attributes: await this.attrsAfter(t, status) } };
    }
  }

  async write(a: WRITE3args, ctx: CallContext): Promise<WRITE3res> {
    // Linux's decoder refuses a count that is not the data's length.
    if (a.count !== a.data.length) throw new RpcAcceptError(AcceptStat.GARBAGE_ARGS, `WRITE count ${a.count} but ${a.data.length} bytes of data`);
    const t = this.resolve(a.file.data, ctx);
    if (typeof t === 'number') return { status: t, resfail: { file_wcc: NO_WCC } };
    // Nothing here keeps the request (the reply holds no view of it): when
    // the backend copies the data too, the record's memory may be reused.
    if (t.exp.backend.copiesWriteData) ctx.recycleArgs?.();
    // Bounded by the record size already; past wtmax the write is short, as Linux's.
    const data = a.data.length > MAX_TRANSFER ? a.data.subarray(0, MAX_TRANSFER) : a.data;
    let status: Err;
    if (!t.opts.rw) status = nfsstat3.NFS3ERR_ROFS;
    else if (a.offset > OFFSET_MAX || a.offset + BigInt(data.length) > OFFSET_MAX) status = nfsstat3.NFS3ERR_FBIG;
    else {
      try {
        const stable = t.opts.sync ? a.stable : 0;
        const r = await t.exp.backend.write(t.cred, t.node, a.offset, data, stable);
        this.stats?.addBytesWritten(r.count);
        return { status: OK, resok: { file_wcc: toWcc(r.wcc, t.fsid), count: r.count, committed: r.committed as stable_how, verf: this.verf } };
      } catch (err) {
        status = this.status(err, 'WRITE');
      }
    }
    return { status, resfail: { file_wcc: await this.wccAfter(t, status) } };
  }

  /** Shared by CREATE, MKDIR, SYMLINK and MKNOD: checks, the call, the reply. */
  private async make(
    proc: string,
    dirFh: Buffer,
    name: string,
    ctx: CallContext,
    /** The backend call, or the status to answer instead. */
    fn: ((d: Target) => Promise<{ node: Buffer; attrs: Attrs; dirWcc: Wcc }>) | Err,
  ): Promise<CREATE3res> {
    const d = this.resolve(dirFh, ctx);
    if (typeof d === 'number') return { status: d, resfail: { dir_wcc: NO_WCC } };
    let status: Err | 0 = !d.opts.rw ? nfsstat3.NFS3ERR_ROFS : checkName(name);
    if (status === 0) {
      if (typeof fn === 'number') status = fn;
      else {
        try {
          const r = await fn(d);
          return { status: OK, resok: { obj: this.fh(d, r.node), obj_attributes: this.fattr(d, r.attrs), dir_wcc: toWcc(r.dirWcc, d.fsid) } };
        } catch (err) {
          status = this.status(err, proc);
        }
      }
    }
    return { status, resfail: { dir_wcc: await this.wccAfter(d, status) } };
  }

  create(a: CREATE3args, ctx: CallContext): Promise<CREATE3res> {
    const how = a.how;
    return this.make('CREATE', a.where.dir.data, a.where.name, ctx, (d) =>
      d.exp.backend.create(
        d.cred,
        d.node,
        a.where.name,
        how.mode === 2
          ? { mode: 'exclusive', verifier: Buffer.from(how.verf) }
          : { mode: how.mode === 1 ? 'guarded' : 'unchecked', attrs: toSetAttrs(how.obj_attributes) },
      ),
    );
  }

  mkdir(a: MKDIR3args, ctx: CallContext): Promise<MKDIR3res> {
    return this.make('MKDIR', a.where.dir.data, a.where.name, ctx, (d) => d.exp.backend.mkdir(d.cred, d.node, a.where.name, toSetAttrs(a.attributes)));
  }

  symlink(a: SYMLINK3args, ctx: CallContext): Promise<SYMLINK3res> {
    const s = a.symlink;
    return this.make('SYMLINK', a.where.dir.data, a.where.name, ctx, (d) =>
      d.exp.backend.symlink(d.cred, d.node, a.where.name, s.symlink_data, toSetAttrs(s.symlink_attributes)),
    );
  }

  mknod(a: MKNOD3args, ctx: CallContext): Promise<MKNOD3res> {
    const w = a.what;
    let type: FileType;
    let attrs: sattr3 | undefined;
    let rdev: { major: number; minor: number } | undefined;
    if (w.type === 3 || w.type === 4) {
      type = w.type === 3 ? FileType.BLK : FileType.CHR;
      attrs = w.device.dev_attributes;
      rdev = { major: w.device.spec.specdata1, minor: w.device.spec.specdata2 };
    } else if (w.type === 6 || w.type === 7) {
      type = w.type === 6 ? FileType.SOCK : FileType.FIFO;
      attrs = w.pipe_attributes;
    } else {
      // Regular files, directories and symlinks have procedures of their own.
      return this.make('MKNOD', a.where.dir.data, a.where.name, ctx, nfsstat3.NFS3ERR_BADTYPE);
    }
    const set = toSetAttrs(attrs);
    return this.make('MKNOD', a.where.dir.data, a.where.name, ctx, (d) => d.exp.backend.mknod(d.cred, d.node, a.where.name, type, set, rdev));
  }

  private async unlink(proc: 'REMOVE' | 'RMDIR', a: REMOVE3args, ctx: CallContext): Promise<REMOVE3res> {
    const d = this.resolve(a.object.dir.data, ctx);
    if (typeof d === 'number') return { status: d, resfail: { dir_wcc: NO_WCC } };
    let status: Err | 0 = !d.opts.rw ? nfsstat3.NFS3ERR_ROFS : checkName(a.object.name);
    if (status === 0) {
      try {
        const b = d.exp.backend;
        const r = proc === 'REMOVE' ? await b.remove(d.cred, d.node, a.object.name) : await b.rmdir(d.cred, d.node, a.object.name);
        return { status: OK, resok: { dir_wcc: toWcc(r.dirWcc, d.fsid) } };
      } catch (err) {
        status = this.status(err, proc);
      }
    }
    return { status, resfail: { dir_wcc: await this.wccAfter(d, status) } };
  }

  remove(a: REMOVE3args, ctx: CallContext): Promise<REMOVE3res> {
    return this.unlink('REMOVE', a, ctx);
  }

  rmdir(a: RMDIR3args, ctx: CallContext): Promise<RMDIR3res> {
    return this.unlink('RMDIR', a, ctx);
  }

  async rename(a: RENAME3args, ctx: CallContext): Promise<RENAME3res> {
    const f = this.resolve(a.from.dir.data, ctx);
    if (typeof f === 'number') return { status: f, resfail: { fromdir_wcc: NO_WCC, todir_wcc: NO_WCC } };
    const t = this.resolve(a.to.dir.data, ctx);
    if (typeof t === 'number') return { status: t, resfail: { fromdir_wcc: await this.wccAfter(f, t), todir_wcc: NO_WCC } };
    let status: Err | 0;
    if (f.exp !== t.exp) status = nfsstat3.NFS3ERR_XDEV;
    else if (!f.opts.rw) status = nfsstat3.NFS3ERR_ROFS;
    else status = checkName(a.from.name) || checkName(a.to.name);
    if (status === 0) {
      try {
        const r = await f.exp.backend.rename(f.cred, f.node, a.from.name, t.node, a.to.name);
        return { status: OK, resok: { fromdir_wcc: toWcc(r.fromWcc, f.fsid), todir_wcc: toWcc(r.toWcc, t.fsid) } };
      } catch (err) {
        status = this.status(err, 'RENAME');
      }
    }
    const [fromdir_wcc, todir_wcc] = await Promise.all([this.wccAfter(f, status), this.wccAfter(t, status)]);
    return { status, resfail: { fromdir_wcc, todir_wcc } };
  }

  async link(a: LINK3args, ctx: CallContext): Promise<LINK3res> {
    const f = this.resolve(a.file.data, ctx);
    if (typeof f === 'number') return { status: f, resfail: { file_attributes: undefined, linkdir_wcc: NO_WCC } };
    const d = this.resolve(a.link.dir.data, ctx);
    if (typeof d === 'number') return { status: d, resfail: { file_attributes: await this.attrsAfter(f, d), linkdir_wcc: NO_WCC } };
    let status: Err | 0;
    if (f.exp !== d.exp) status = nfsstat3.NFS3ERR_XDEV;
    else if (!d.opts.rw) status = nfsstat3.NFS3ERR_ROFS;
    else status = checkName(a.link.name);
    if (status === 0) {
      try {
        const r = await d.exp.backend.link(d.cred, f.node, d.node, a.link.name);
        return { status: OK, resok: { file_attributes: this.fattr(f, r.attrs), linkdir_wcc: toWcc(r.dirWcc, d.fsid) } };
      } catch (err) {
        status = this.status(err, 'LINK');
      }
    }
    const [file_attributes, linkdir_wcc] = await Promise.all([this.attrsAfter(f, status), this.wccAfter(d, status)]);
    return { status, resfail: { file_attributes, linkdir_wcc } };
  }

  async readdir(a: READDIR3args, ctx: CallContext): Promise<READDIR3res> {
    const d = this.resolve(a.dir.data, ctx);
    if (typeof d === 'number') return { status: d, resfail: { dir_attributes: undefined } };
    try {
      const r = await d.exp.backend.readdir(d.cred, d.node, a.cookie, Math.min(a.count, MAX_TRANSFER), false);
      // DirEntry has entry3's fields (fileid, name, cookie): no copies.
      return { status: OK, resok: { dir_attributes: this.fattr(d, r.dirAttrs), cookieverf: r.cookieverf, reply: { entries: r.entries, eof: r.eof } } };
    } catch (err) {
      const status = this.status(err, 'READDIR');
      return { status, resfail: { dir_attributes: await this.attrsAfter(d, status) } };
    }
  }

  async readdirplus(a: READDIRPLUS3args, ctx: CallContext): Promise<READDIRPLUS3res> {
    const d = this.resolve(a.dir.data, ctx);
    if (typeof d === 'number') return { status: d, resfail: { dir_attributes: undefined } };
    try {
      const r = await d.exp.backend.readdir(d.cred, d.node, a.cookie, Math.min(a.maxcount, MAX_TRANSFER), true);
      const entries: entryplus3[] = new Array(r.entries.length);
      for (let i = 0; i < r.entries.length; i++) {
        const e = r.entries[i]!;
        entries[i] = {
          fileid: e.fileid,
          name: e.name,
          cookie: e.cookie,
          // Entries the backend does not descend into (another file system) come without.
          name_attributes: e.attrs && this.fattr(d, e.attrs),
          name_handle: e.node && this.fh(d, e.node),
        };
      }
      return { status: OK, resok: { dir_attributes: this.fattr(d, r.dirAttrs), cookieverf: r.cookieverf, reply: { entries, eof: r.eof } } };
    } catch (err) {
      const status = this.status(err, 'READDIRPLUS');
      return { status, resfail: { dir_attributes: await this.attrsAfter(d, status) } };
    }
  }

  async fsstat(a: FSSTAT3args, ctx: CallContext): Promise<FSSTAT3res> {
    const t = this.resolve(a.fsroot.data, ctx);
    if (typeof t === 'number') return { status: t, resfail: { obj_attributes: undefined } };
    try {
      const r = await t.exp.backend.fsstat(t.node);
      return {
        status: OK,
        resok: { obj_attributes: this.fattr(t, r.attrs), tbytes: r.tbytes, fbytes: r.fbytes, abytes: r.abytes, tfiles: r.tfiles, ffiles: r.ffiles, afiles: r.afiles, invarsec: 0 },
      };
    } catch (err) {
      const status = this.status(err, 'FSSTAT');
      return { status, resfail: { obj_attributes: await this.attrsAfter(t, status) } };
    }
  }

  async fsinfo(a: FSINFO3args, ctx: CallContext): Promise<FSINFO3res> {
    const t = this.resolve(a.fsroot.data, ctx);
    if (typeof t === 'number') return { status: t, resfail: { obj_attributes: undefined } };
    try {
      const r = await t.exp.backend.fsinfo(t.node);
      const properties = (r.linkSupport ? FSF3_LINK : 0) | (r.symlinkSupport ? FSF3_SYMLINK : 0) | (r.homogeneous ? FSF3_HOMOGENEOUS : 0) | (r.canSetTime ? FSF3_CANSETTIME : 0);
      return {
        status: OK,
        resok: {
          obj_attributes: this.fattr(t, r.attrs),
          rtmax: MAX_TRANSFER,
          rtpref: MAX_TRANSFER,
          rtmult: TRANSFER_MULT,
          wtmax: MAX_TRANSFER,
          wtpref: MAX_TRANSFER,
          wtmult: TRANSFER_MULT,
          dtpref: DIR_PREF,
          maxfilesize: r.maxFileSize,
          time_delta: time3(r.timeDelta),
          properties,
        },
      };
    } catch (err) {
      const status = this.status(err, 'FSINFO');
      return { status, resfail: { obj_attributes: await this.attrsAfter(t, status) } };
    }
  }

  async pathconf(a: PATHCONF3args, ctx: CallContext): Promise<PATHCONF3res> {
    const t = this.resolve(a.object.data, ctx);
    if (typeof t === 'number') return { status: t, resfail: { obj_attributes: undefined } };
    try {
      const r = await t.exp.backend.pathconf(t.node);
      return {
        status: OK,
        resok: {
          obj_attributes: this.fattr(t, r.attrs),
          linkmax: r.linkmax >>> 0,
          name_max: Math.min(r.nameMax, NAME_MAX),
          no_trunc: r.noTrunc,
          chown_restricted: r.chownRestricted,
          case_insensitive: r.caseInsensitive,
          case_preserving: r.casePreserving,
        },
      };
    } catch (err) {
      const status = this.status(err, 'PATHCONF');
      return { status, resfail: { obj_attributes: await this.attrsAfter(t, status) } };
    }
  }

  async commit(a: COMMIT3args, ctx: CallContext): Promise<COMMIT3res> {
    const t = this.resolve(a.file.data, ctx);
    if (typeof t === 'number') return { status: t, resfail: { file_wcc: NO_WCC } };
    let status: Err;
    if (!t.opts.rw) status = nfsstat3.NFS3ERR_ROFS;
    else if (a.offset > OFFSET_MAX) status = nfsstat3.NFS3ERR_INVAL;
    else {
      try {
        if (!t.opts.sync) {
          // `async`: nothing is synced (the export's owner asked for that).
          const after = await t.exp.backend.getattr(t.node);
          return { status: OK, resok: { file_wcc: { before: undefined, after: this.fattr(t, after) }, verf: this.verf } };
        }
        const w = await t.exp.backend.commit(t.node, a.offset, a.count);
        return { status: OK, resok: { file_wcc: toWcc(w, t.fsid), verf: this.verf } };
      } catch (err) {
        status = this.status(err, 'COMMIT');
      }
    }
    return { status, resfail: { file_wcc: await this.wccAfter(t, status) } };
  }
}
