// Turning system errors into FsError codes. Node's err.code is already the
// POSIX name; only a few need renaming, and anything without one is EIO.

import { FsError } from './backend.js';

const RENAMED: Record<string, string> = {
  ENOTSUP: 'ENOTSUPP',
  EOPNOTSUPP: 'ENOTSUPP',
  // A final symlink met with O_NOFOLLOW: the object is not what was asked for.
  ELOOP: 'EINVAL',
  ERR_OUT_OF_RANGE: 'EINVAL',
  ERR_INVALID_ARG_VALUE: 'EINVAL',
};

export function fsError(code: string, message?: string): FsError {
  return new FsError(code, message);
}

export function toFsError(err: unknown): FsError {
  if (err instanceof FsError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  const message = err instanceof Error ? err.message : String(err);
  if (typeof code !== 'string') return new FsError('EIO', message);
  const mapped = RENAMED[code] ?? (/^E[A-Z0-9]+$/.test(code) ? code : 'EIO');
  return new FsError(mapped, message);
}

/** The errno code of a thrown value, or undefined. */
export function errCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}
