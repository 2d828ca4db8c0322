// Errors for the native wrappers, shaped like Node's own system errors
// (code, errno, syscall), so callers treat them exactly like fs errors.

import { getSystemErrorMap } from 'node:util';

let errorMap: Map<number, [string, string]> | undefined;

/** The Node-style name of a negative errno (-2 -> 'ENOENT'). */
export function errnoCode(negErrno: number): string {
  errorMap ??= getSystemErrorMap();
  return errorMap.get(negErrno)?.[0] ?? `E${-negErrno}`;
}

/** A system error from a negative errno, as Node would make it. */
export function sysError(negErrno: number, syscall: string, detail?: string): NodeJS.ErrnoException {
  errorMap ??= getSystemErrorMap();
  const [code, uvDescription] = errorMap.get(negErrno) ?? [`E${-negErrno}`, 'unknown error'];
  // libuv names errno 95 ENOTSUP and words it for sockets; it is also
  // EOPNOTSUPP, what files answer for an RWF_* flag they lack.
  const description = negErrno === EOPNOTSUPP ? 'operation not supported' : uvDescription;
  const err = new Error(`${code}: ${description}, ${syscall}${detail ? ` ${detail}` : ''}`) as NodeJS.ErrnoException;
  err.code = code;
  err.errno = negErrno;
  err.syscall = syscall;
  return err;
}

/** Thrown where a feature needs the addon and it is not available. */
export function nativeUnavailable(what: string, reason: string | undefined): Error & { code: string } {
  const err = new Error(`${what} needs the tsnfs native addon, which is unavailable (${reason ?? 'unknown reason'})`) as Error & {
    code: string;
  };
  err.code = 'ERR_TSNFS_NATIVE_UNAVAILABLE';
  return err;
}

/** errno values the wrappers test for (Linux numbering). */
export const EAGAIN = -11;
export const EBADF = -9;
export const EINVAL = -22;
export const EMSGSIZE = -90;
export const ECONNABORTED = -103;
export const EPIPE = -32;
export const EOPNOTSUPP = -95;
export const ESHUTDOWN = -108;
