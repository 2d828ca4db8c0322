// Permission rules, checked in-process for the caller's credential (the
// server process itself may be root). They follow Linux: one class of mode
// bits applies (owner, else group, else other); uid 0 passes every check
// except execute on a non-directory, which needs some x bit. Reads and
// writes also let the owner through whatever the mode (RFC 1813 4.4, as
// Linux's nfsd does: a file created read-only must still take its data).

import { FileType, Access, type Cred, type SetAttrs, type Time } from './backend.js';
import { S_ISGID, S_ISUID, S_ISVTX, validTime } from './attrs.js';
import { fsError } from './errors.js';

export const R = 4;
export const W = 2;
export const X = 1;

/** What the rules look at. */
export interface Meta {
  type: FileType;
  mode: number;
  uid: number;
  gid: number;
}

export function isRoot(cred: Cred): boolean {
  return cred.uid === 0;
}

export function inGroup(cred: Cred, gid: number): boolean {
  return cred.gid === gid || cred.gids.includes(gid);
}

/** Whether the mode bits grant all of `bits` (R|W|X). */
export function may(cred: Cred, m: Meta, bits: number): boolean {
  if (isRoot(cred)) {
    if (bits & X && m.type !== FileType.DIR) return (m.mode & 0o111) !== 0;
    return true;
  }
  let cls: number;
  if (cred.uid === m.uid) cls = (m.mode >> 6) & 7;
  else if (inGroup(cred, m.gid)) cls = (m.mode >> 3) & 7;
  else cls = m.mode & 7;
  return (cls & bits) === bits;
}

export function need(cred: Cred, m: Meta, bits: number): void {
  if (!may(cred, m, bits)) throw fsError('EACCES');
}

/** READ: r, or the owner, or x on a regular file (a client must read what it executes). */
export function needRead(cred: Cred, m: Meta): void {
  if (may(cred, m, R) || cred.uid === m.uid) return;
  if (m.type === FileType.REG && may(cred, m, X)) return;
  throw fsError('EACCES');
}

/** WRITE and truncation: w, or the owner. */
export function needWrite(cred: Cred, m: Meta): void {
  if (may(cred, m, W) || cred.uid === m.uid) return;
  throw fsError('EACCES');
}

/** Searching a directory for a name. */
export function needLookup(cred: Cred, dir: Meta): void {
  if (dir.type !== FileType.DIR) throw fsError('ENOTDIR');
  need(cred, dir, X);
}

/** Adding or removing names in a directory. */
export function needModifyDir(cred: Cred, dir: Meta): void {
  if (dir.type !== FileType.DIR) throw fsError('ENOTDIR');
  need(cred, dir, W | X);
}

/** In a sticky directory only the owner of the entry or of the directory (or root) may unlink it. */
export function needSticky(cred: Cred, dir: Meta, victim: Meta): void {
  if (!(dir.mode & S_ISVTX) || isRoot(cred)) return;
  if (cred.uid === dir.uid || cred.uid === victim.uid) return;
  throw fsError('EPERM', 'sticky directory');
}

/** Hard links to others' files need read and write on them (fs.protected_hardlinks). */
export function needLinkSource(cred: Cred, m: Meta): void {
  if (m.type === FileType.DIR) throw fsError('EPERM', 'hard link to a directory');
  if (isRoot(cred) || cred.uid === m.uid) return;
  const privileged = (m.mode & S_ISUID) !== 0 || (m.mode & (S_ISGID | 0o010)) === (S_ISGID | 0o010);
  if (m.type !== FileType.REG || privileged || !may(cred, m, R | W)) throw fsError('EPERM', 'protected hard link');
}

/** ACCESS: the subset of `mask` the mode bits grant (no owner override, as Linux reports). */
export function grantedAccess(cred: Cred, m: Meta, mask: number): number {
  let granted = 0;
  const grant = (bit: number, bits: number): void => {
    if (mask & bit && may(cred, m, bits)) granted |= bit;
  };
  if (m.type === FileType.DIR) {
    grant(Access.READ, R);
    grant(Access.LOOKUP, X);
    grant(Access.MODIFY, W | X);
    grant(Access.EXTEND, W | X);
    grant(Access.DELETE, W | X);
  } else {
    grant(Access.READ, R);
    grant(Access.MODIFY, W);
    grant(Access.EXTEND, W);
    grant(Access.EXECUTE, X);
  }
  return granted;
}

/** The bits a write by `cred` strips: setuid, and setgid when group-executable (as Linux). */
export function modeAfterWrite(cred: Cred, m: Meta): number | undefined {
  if (isRoot(cred)) return undefined;
  return killPriv(m.mode);
}

function killPriv(mode: number): number | undefined {
  let next = mode & ~S_ISUID;
  if (mode & 0o010) next &= ~S_ISGID;
  return next === mode ? undefined : next;
}

/** A SETATTR that passed the checks: only what actually changes. */
export interface SetattrPlan {
  uid?: number;
  gid?: number;
  mode?: number;
  size?: bigint;
  atime?: Time | 'now';
  mtime?: Time | 'now';
}

/**
 * Check a SETATTR as Linux does and work out the final mode. `canChown` is
 * false where the process itself cannot give files away (not root).
 */
export function planSetattr(cred: Cred, m: Meta, set: SetAttrs, canChown: boolean): SetattrPlan {
  const plan: SetattrPlan = {};
  const owner = isRoot(cred) || cred.uid === m.uid;
  if (set.uid !== undefined && set.uid !== m.uid) {
    if (!isRoot(cred) || !canChown) throw fsError('EPERM', 'only root may change the owner');
    plan.uid = set.uid;
  }
  if (set.gid !== undefined && set.gid !== m.gid) {
    const ownerChgrp = cred.uid === m.uid && plan.uid === undefined && inGroup(cred, set.gid);
    if (!isRoot(cred) && !ownerChgrp) throw fsError('EPERM', 'may not change the group');
    plan.gid = set.gid;
  }
  if (set.mode !== undefined) {
    if (!owner) throw fsError('EPERM', 'only the owner may change the mode');
    let mode = set.mode & 0o7777;
    if (!isRoot(cred) && !inGroup(cred, plan.gid ?? m.gid)) mode &= ~S_ISGID;
    plan.mode = mode;
  }
  // Chown of anything but a directory drops setuid/setgid, even to the same ids (as chown(2)).
  if ((set.uid !== undefined || set.gid !== undefined) && m.type !== FileType.DIR) {
    const base = plan.mode ?? m.mode;
    const next = killPriv(base);
    if (next !== undefined) plan.mode = next;
  }
  if (plan.mode === m.mode) delete plan.mode;
  if (set.size !== undefined) {
    if (m.type === FileType.DIR) throw fsError('EISDIR');
    if (m.type !== FileType.REG) throw fsError('EINVAL', 'size of a non-regular file');
    needWrite(cred, m);
    plan.size = set.size;
  }
  for (const key of ['atime', 'mtime'] as const) {
    const t = set[key];
    if (t === undefined) continue;
    if (t === 'now') {
      if (!owner && !may(cred, m, W)) throw fsError('EACCES');
    } else if (!owner) {
      throw fsError('EPERM', 'only the owner may set explicit times');
    }
    plan[key] = t;
  }
  return plan;
}

/** Owner, group and mode of a new object, as Linux's inode_init_owner. */
export function newOwnership(
  cred: Cred,
  dir: Meta,
  type: FileType,
  mode: number,
): { uid: number; gid: number; mode: number } {
  const setgidDir = (dir.mode & S_ISGID) !== 0;
  const gid = setgidDir ? dir.gid : cred.gid;
  let m = mode & 0o7777;
  if (type === FileType.DIR && setgidDir) m |= S_ISGID;
  else if (m & S_ISGID && !isRoot(cred) && !inGroup(cred, gid)) m &= ~S_ISGID;
  return { uid: cred.uid, gid, mode: m };
}

/** Sanity of client-supplied attributes before anything is touched. */
export function checkSetAttrs(set: SetAttrs, maxFileSize: bigint): void {
  if (set.mode !== undefined && (!Number.isInteger(set.mode) || set.mode < 0)) throw fsError('EINVAL', 'bad mode');
  for (const t of [set.atime, set.mtime]) {
    if (t !== undefined && t !== 'now' && !validTime(t)) throw fsError('EINVAL', 'bad time');
  }
  if (set.size !== undefined && (set.size < 0n || set.size > maxFileSize)) throw fsError('EFBIG');
}

/** FIFO and SOCK always; devices only where allowed, and only for root. */
export function checkMknodType(cred: Cred, type: FileType, allowDevices: boolean): void {
  if (type === FileType.FIFO || type === FileType.SOCK) return;
  if (type !== FileType.BLK && type !== FileType.CHR) throw fsError('EBADTYPE');
  if (!allowDevices) throw fsError('EBADTYPE', 'device nodes are not allowed');
  if (cred.uid !== 0) throw fsError('EPERM', 'only root may make device nodes');
}

