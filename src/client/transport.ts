// The data path's seam. The write-back cache and the readers hand their IO
// (READ, WRITE, COMMIT of one file) to a DataTransport and do not care how it
// travels. RpcTransport sends NFSv3 calls over the client's RPC connection;
// a LOCALIO engine (pread/pwrite/fdatasync on a file descriptor the server
// granted) implements the same interface and takes over per file when the
// server turns out to be local.
//
// Contract:
// - read/write/commit reject with NfsStatusError for a non-OK nfsstat3 and
//   with RpcError (or another Error) when the call could not be made.
// - write may write less than asked (the result's count); the caller sends
//   the rest again.
// - Every result of an UNSTABLE write carries the verifier of the server
//   instance that accepted it; commit returns the verifier of the instance
//   that committed. When they differ, the caller must send the data again.
// - `data` buffers passed to write are not copied and must stay unchanged
//   until the promise settles (the caller owns them).
// - readDirect (optional) reads into the caller's buffer without the read
//   cache; a transport without it is always read through the cache.

import type { XdrReader, XdrWriter } from '../xdr/index.js';
import { decodepost_op_attr, encodenfs_fh3, NFS_V3_TABLE, stable_how, type fattr3, type nfs_fh3, type wcc_data } from '../proto/nfs3.gen.js';
import { NfsStatusError } from './errors.js';
import type { ProgramClient } from './program.js';

export type StableHow = (typeof stable_how)[keyof typeof stable_how];

export interface ReadResult {
  /** The bytes read (may be a view into a larger buffer; do not keep it longer than needed). */
  data: Buffer;
  eof: boolean;
  /** The file's attributes after the read, when the transport has them. */
  attrs?: fattr3 | undefined;
  /**
   * When `data` is a view of a pooled buffer: gives it back. Call it once
   * nothing uses `data` (after copying it out); never calling it is fine.
   */
  release?: (() => void) | undefined;
}

export interface WriteResult {
  /** Bytes written (may be less than asked). */
  count: number;
  committed: StableHow;
  /** The write verifier (8 bytes, owned by the caller). */
  verf: Buffer;
  wcc?: wcc_data;
  /**
   * The bytes are in the page cache of the server's host, in the file
   * itself (LOCALIO: written through a granted descriptor): a server
   * restart cannot lose them, only a crash of the host, which takes the
   * client with it. The caller may drop its copy at once; a COMMIT is still
   * needed to make them durable.
   */
  hostCached?: boolean;
}

export interface CommitResult {
  verf: Buffer;
  wcc?: wcc_data;
}

export interface DataTransport {
  /** 'rpc', 'localio', ... (for stats). */
  readonly kind: string;
  read(fh: nfs_fh3, offset: number, count: number): Promise<ReadResult>;
  /** Write the concatenation of `data` (`length` bytes in all) at `offset`. */
  write(fh: nfs_fh3, offset: number, data: readonly Buffer[], length: number, stable: StableHow): Promise<WriteResult>;
  /** Commit [offset, offset+count) (count 0: to the end of the file). */
  commit(fh: nfs_fh3, offset: number, count: number): Promise<CommitResult>;
  /**
   * Optional: read straight into `buf` at `off`, bypassing the client's read
   * cache (LOCALIO: the server's page cache is the cache). Resolves with the
   * bytes read (fewer only at the end of the file), or undefined when the
   * file cannot be read this way now (the caller takes the cached path).
   */
  readDirect?(fh: nfs_fh3, buf: Buffer, off: number, len: number, pos: number): Promise<number | undefined>;
  /**
   * Optional: readDirect done at once, when it can be without waiting (the
   * file's grant is held and its pages are cached); undefined otherwise,
   * with nothing to rely on in `buf` (use readDirect).
   */
  readCached?(fh: nfs_fh3, buf: Buffer, off: number, len: number, pos: number): number | undefined;
  /**
   * Optional: true when a write to `fh` would now land in the server host's
   * page cache (a WriteResult with hostCached), as far as can be told before
   * it is sent.
   */
  landsInHostCache?(fh: nfs_fh3): Promise<boolean>;
}

/** The NFSv3 program client the RPC transport and the fs-like layer use. */
export type Nfs3Program = ProgramClient<typeof NFS_V3_TABLE>;

/** NFSv3 READ/WRITE/COMMIT over RPC. */
export class RpcTransport implements DataTransport {
  readonly kind = 'rpc';

  constructor(private readonly nfs: Nfs3Program) {}

  read(fh: nfs_fh3, offset: number, count: number): Promise<ReadResult> {
    return this.nfs.callWith('READ', (w) => encodeReadArgs(w, fh, offset, count), decodeReadResult);
  }

  async write(fh: nfs_fh3, offset: number, data: readonly Buffer[], length: number, stable: StableHow): Promise<WriteResult> {
    const res = await this.nfs.callEncoded('WRITE', (w) => encodeWriteArgs(w, fh, offset, data, length, stable));
    if (res.status !== 0) throw new NfsStatusError(res.status, 'WRITE');
    const ok = res.resok;
    return { count: Math.min(ok.count, length), committed: ok.committed, verf: Buffer.from(ok.verf), wcc: ok.file_wcc };
  }

  async commit(fh: nfs_fh3, offset: number, count: number): Promise<CommitResult> {
    const res = await this.nfs.call('COMMIT', { file: fh, offset: BigInt(offset), count });
    if (res.status !== 0) throw new NfsStatusError(res.status, 'COMMIT');
    return { verf: Buffer.from(res.resok.verf), wcc: res.resok.file_wcc };
  }
}

/** READ3args, with the offset as a number. */
function encodeReadArgs(w: XdrWriter, fh: nfs_fh3, offset: number, count: number): void {
  encodenfs_fh3(w, fh);
  w.uhyper(offset);
  w.uint(count);
}

/**
 * READ3res as a ReadResult, decoded as the reply comes in (a failure
 * throws NfsStatusError). The data is a view of the reply; `release`, when
 * the reply came in a pooled buffer, gives it back.
 */
function decodeReadResult(r: XdrReader, release: (() => void) | undefined): ReadResult {
  const status = r.uint();
  if (status !== 0) throw new NfsStatusError(status, 'READ');
  const attrs = decodepost_op_attr(r);
  const count = r.uint();
  const eof = r.bool();
  let data = r.opaque(0xffffffff);
  // A server may send fewer data bytes than its count says; trust the data.
  if (data.length > count) data = data.subarray(0, count);
  return { data, eof, attrs, release };
}

/**
 * WRITE3args with the data given as several buffers, sent by reference (the
 * XDR writer keeps large pieces as separate chunks for writev): the bytes on
 * the wire are exactly those of encodeWRITE3args with the concatenation.
 */
export function encodeWriteArgs(w: XdrWriter, fh: nfs_fh3, offset: number, data: readonly Buffer[], length: number, stable: StableHow): void {
  encodenfs_fh3(w, fh);
  w.uhyper(offset);
  w.uint(length);
  w.enum(stable);
  w.uint(length);
  writeConcatenated(w, data);
}

/**
 * Append the concatenation of `pieces` plus XDR padding. Each piece goes out
 * in 4-byte multiples (which the writer appends without padding); the at
 * most 3 bytes left at a piece's end are joined with the start of the next
 * in a small buffer, so only those few bytes are ever copied.
 */
export function writeConcatenated(w: XdrWriter, pieces: readonly Buffer[]): void {
  let carry: Buffer | undefined;
  for (let p of pieces) {
    if (carry) {
      const take = p.subarray(0, 4 - carry.length);
      carry = Buffer.concat([carry, take]);
      p = p.subarray(take.length);
      if (carry.length < 4) continue;
      w.opaqueFixed(carry);
      carry = undefined;
    }
    const aligned = p.length & ~3;
    if (aligned > 0) w.opaqueFixed(aligned === p.length ? p : p.subarray(0, aligned));
    if (aligned < p.length) carry = p.subarray(aligned);
  }
  if (carry) w.opaqueFixed(carry); // pads the whole opaque to a multiple of 4
}
