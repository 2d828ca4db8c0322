// ONC RPC v2 messages (RFC 5531): call and reply headers, authentication.

import { XdrReader, XdrWriter, XdrError } from '../xdr/index.js';

export const RPC_VERSION = 2;

export const MsgType = { CALL: 0, REPLY: 1 } as const;
export const ReplyStat = { MSG_ACCEPTED: 0, MSG_DENIED: 1 } as const;

export const AcceptStat = {
  SUCCESS: 0,
  PROG_UNAVAIL: 1,
  PROG_MISMATCH: 2,
  PROC_UNAVAIL: 3,
  GARBAGE_ARGS: 4,
  SYSTEM_ERR: 5,
} as const;
export type AcceptStat = (typeof AcceptStat)[keyof typeof AcceptStat];

export const RejectStat = { RPC_MISMATCH: 0, AUTH_ERROR: 1 } as const;

export const AuthStat = {
  AUTH_OK: 0,
  AUTH_BADCRED: 1,
  AUTH_REJECTEDCRED: 2,
  AUTH_BADVERF: 3,
  AUTH_REJECTEDVERF: 4,
  AUTH_TOOWEAK: 5,
  AUTH_INVALIDRESP: 6,
  AUTH_FAILED: 7,
} as const;
export type AuthStat = (typeof AuthStat)[keyof typeof AuthStat];

export const AuthFlavor = { NONE: 0, SYS: 1, SHORT: 2, DH: 3, GSS: 6 } as const;

/** opaque_auth bodies are at most 400 bytes. */
export const MAX_AUTH_BYTES = 400;
/** AUTH_SYS limits (RFC 5531 appendix A). */
export const MAX_MACHINE_NAME = 255;
export const MAX_AUX_GIDS = 16;

export interface AuthSys {
  stamp: number;
  machineName: string;
  uid: number;
  gid: number;
  gids: number[];
}

export interface OpaqueAuth {
  flavor: number;
  body: Buffer;
}

export interface CallHeader {
  xid: number;
  rpcvers: number;
  prog: number;
  vers: number;
  proc: number;
  cred: OpaqueAuth;
  verf: OpaqueAuth;
}

/** Thrown while decoding a call whose header or credential is unacceptable. */
export class AuthError extends Error {
  override name = 'AuthError';
  constructor(readonly stat: AuthStat, message?: string) {
    super(message ?? `auth error ${stat}`);
  }
}

function readOpaqueAuth(r: XdrReader): OpaqueAuth {
  const flavor = r.uint();
  return { flavor, body: r.opaque(MAX_AUTH_BYTES) };
}

function writeOpaqueAuth(w: XdrWriter, a: OpaqueAuth): void {
  w.uint(a.flavor).opaque(a.body, MAX_AUTH_BYTES);
}

export const AUTH_NONE: OpaqueAuth = { flavor: AuthFlavor.NONE, body: Buffer.alloc(0) };

/**
 * Reads the xid and message type; returns undefined when the record is too
 * short to hold even those (nothing can be answered then).
 */
export function peekXid(record: Buffer): { xid: number; msgType: number } | undefined {
  if (record.length < 8) return undefined;
  return { xid: record.readUInt32BE(0), msgType: record.readUInt32BE(4) };
}

/** Decode a call header; the reader is left at the procedure's arguments. */
export function decodeCallHeader(r: XdrReader): CallHeader {
  const xid = r.uint();
  const type = r.uint();
  if (type !== MsgType.CALL) throw new XdrError(`not a call (msg_type ${type})`);
  const rpcvers = r.uint();
  const prog = r.uint();
  const vers = r.uint();
  const proc = r.uint();
  const cred = readOpaqueAuth(r);
  const verf = readOpaqueAuth(r);
  return { xid, rpcvers, prog, vers, proc, cred, verf };
}

/** Parse an AUTH_SYS body; any inconsistency is AUTH_BADCRED. */
export function decodeAuthSys(body: Buffer): AuthSys {
  try {
    const r = new XdrReader(body);
    const stamp = r.uint();
    const machineName = r.string(MAX_MACHINE_NAME);
    const uid = r.uint();
    const gid = r.uint();
    const gids = r.array(MAX_AUX_GIDS, (x) => x.uint());
    r.done();
    return { stamp, machineName, uid, gid, gids };
  } catch (e) {
    if (e instanceof XdrError) throw new AuthError(AuthStat.AUTH_BADCRED, `bad AUTH_SYS credential: ${e.message}`);
    throw e;
  }
}

export function encodeAuthSys(a: AuthSys): OpaqueAuth {
  const w = new XdrWriter(64);
  w.uint(a.stamp >>> 0).string(a.machineName, MAX_MACHINE_NAME).uint(a.uid).uint(a.gid);
  w.array(a.gids.slice(0, MAX_AUX_GIDS), (x, g) => x.uint(g), MAX_AUX_GIDS);
  return { flavor: AuthFlavor.SYS, body: w.toBuffer() };
}

export function encodeCallHeader(w: XdrWriter, xid: number, prog: number, vers: number, proc: number, cred: OpaqueAuth, verf: OpaqueAuth = AUTH_NONE): void {
  w.uint(xid).uint(MsgType.CALL).uint(RPC_VERSION).uint(prog).uint(vers).uint(proc);
  writeOpaqueAuth(w, cred);
  writeOpaqueAuth(w, verf);
}

/** Header of an accepted reply; the caller appends results after SUCCESS. */
export function encodeAcceptedReply(w: XdrWriter, xid: number, stat: AcceptStat, mismatch?: { low: number; high: number }): void {
  w.uint(xid).uint(MsgType.REPLY).uint(ReplyStat.MSG_ACCEPTED);
  writeOpaqueAuth(w, AUTH_NONE);
  w.uint(stat);
  if (stat === AcceptStat.PROG_MISMATCH) w.uint(mismatch?.low ?? 0).uint(mismatch?.high ?? 0);
}

export function encodeRpcMismatchReply(w: XdrWriter, xid: number): void {
  w.uint(xid).uint(MsgType.REPLY).uint(ReplyStat.MSG_DENIED).uint(RejectStat.RPC_MISMATCH).uint(RPC_VERSION).uint(RPC_VERSION);
}

export function encodeAuthErrorReply(w: XdrWriter, xid: number, stat: AuthStat): void {
  w.uint(xid).uint(MsgType.REPLY).uint(ReplyStat.MSG_DENIED).uint(RejectStat.AUTH_ERROR).uint(stat);
}

export type ReplyHeader =
  | { xid: number; kind: 'accepted'; stat: AcceptStat; mismatch?: { low: number; high: number } }
  | { xid: number; kind: 'rpc_mismatch'; low: number; high: number }
  | { xid: number; kind: 'auth_error'; stat: AuthStat };

/** Decode a reply header; for SUCCESS the reader is left at the results. */
export function decodeReplyHeader(r: XdrReader): ReplyHeader {
  const xid = r.uint();
  const type = r.uint();
  if (type !== MsgType.REPLY) throw new XdrError(`not a reply (msg_type ${type})`);
  const rstat = r.uint();
  if (rstat === ReplyStat.MSG_ACCEPTED) {
    readOpaqueAuth(r);
    const stat = r.uint();
    if (stat > AcceptStat.SYSTEM_ERR) throw new XdrError(`bad accept_stat ${stat}`);
    if (stat === AcceptStat.PROG_MISMATCH) return { xid, kind: 'accepted', stat, mismatch: { low: r.uint(), high: r.uint() } };
    return { xid, kind: 'accepted', stat: stat as AcceptStat };
  }
  if (rstat === ReplyStat.MSG_DENIED) {
    const why = r.uint();
    if (why === RejectStat.RPC_MISMATCH) return { xid, kind: 'rpc_mismatch', low: r.uint(), high: r.uint() };
    if (why === RejectStat.AUTH_ERROR) return { xid, kind: 'auth_error', stat: r.uint() as AuthStat };
    throw new XdrError(`bad reject_stat ${why}`);
  }
  throw new XdrError(`bad reply_stat ${rstat}`);
}
