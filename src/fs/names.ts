// Directory entry names as they come from the wire. A name is one path
// component: `/` or NUL would let it address something else, so both are
// EINVAL (RFC 1813 allows EACCES too; EINVAL says what is wrong).
//
// Names are bytes. A name that is not UTF-8 arrives with its odd bytes as
// lone surrogates U+DC80..U+DCFF (src/xdr/bytes-string.ts); such names and
// paths go to node:fs as the Buffer of those bytes (hostPath), so the file
// made is the file asked for.

import { decodeBytes, encodeBytes, hasEscapedBytes } from '../xdr/bytes-string.js';
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
  // Other lone surrogates stand for no bytes: stored, they would become
  // U+FFFD, and two such names would be one file.
  const bytes = encodeBytes(name);
  if (decodeBytes(bytes) !== name) throw fsError('EINVAL', 'name is not valid Unicode');
  if (bytes.length > NAME_MAX) throw fsError('ENAMETOOLONG');
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

/** A path for node:fs: as is, or the Buffer of its bytes when it holds bytes that are not UTF-8. */
export function hostPath(p: string): string | Buffer {
  return hasEscapedBytes(p) ? encodeBytes(p) : p;
}
