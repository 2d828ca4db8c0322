// Directory entry names as they come from the wire. A name is one path
// component: `/` or NUL would let it address something else, so both are
// EINVAL (RFC 1813 allows EACCES too; EINVAL says what is wrong).

import { encodeBytes } from '../xdr/bytes-string.js';
import { fsError } from './errors.js';

export const NAME_MAX = 255;
export const PATH_MAX = 4096;

export function isDotName(name: string): boolean {
  return name === '.' || name === '..';
}

/** A well-formed component (`.` and `..` included; callers decide on those). */
export function checkName(name: string): void {
  if (name.length === 0) throw fsError('EINVAL', 'empty name');
  if (name.includes('/') || name.includes('\0')) throw fsError('EINVAL', 'name contains / or NUL');
  // Lone surrogates (among them the bytes of a name that is not UTF-8, as
  // the XDR layer keeps them) would be stored as U+FFFD: the name made would
  // not be the name asked for, and two such names would be one file.
  if (Buffer.from(name).toString() !== name) throw fsError('EINVAL', 'name is not valid Unicode');
  if (Buffer.byteLength(name) > NAME_MAX) throw fsError('ENAMETOOLONG');
}

/** A name that will be created: `.` and `..` always exist (EEXIST, as Linux's nfsd). */
export function checkNewName(name: string): void {
  checkName(name);
  if (isDotName(name)) throw fsError('EEXIST', `${name} exists`);
}

/** A name that will be removed or renamed: never `.` or `..` (EINVAL, as rmdir(2)). */
export function checkVictimName(name: string): void {
  checkName(name);
  if (isDotName(name)) throw fsError('EINVAL', `cannot remove or rename ${name}`);
}

export function checkSymlinkTarget(target: string): void {
  if (target.includes('\0')) throw fsError('EINVAL', 'symlink target contains NUL');
  if (encodeBytes(target).length >= PATH_MAX) throw fsError('ENAMETOOLONG');
}
