// Direct IO: what alignment a file needs (statx STATX_DIOALIGN), switching
// O_DIRECT on an open descriptor, and buffers at a chosen alignment.
//
// Without the addon: alignment reads as zeros (callers then use buffered
// IO), setODirect reports false, and allocAligned returns an ordinary
// zeroed Buffer whose alignment is not guaranteed.

import fs from 'node:fs';
import { sysError } from './errors.js';
import { native } from './loader.js';

/**
 * Direct-IO alignment of an open file, in bytes. All zeros means direct IO
 * is not available on it (the file system does not report STATX_DIOALIGN,
 * or does not support O_DIRECT, as tmpfs), so use buffered IO.
 */
export interface DioAlign {
  /** Alignment of the memory buffer's address (and, in practice, length). */
  memAlign: number;
  /** Alignment of file offsets and lengths for direct writes (and reads). */
  offsetAlign: number;
  /**
   * Alignment of file offsets and lengths for direct reads: the kernel's
   * STATX_DIO_READ_ALIGN (Linux 6.14+, XFS) where answered, which can be
   * finer than offsetAlign (e.g. 512 vs 4096 on a reflinked XFS file);
   * otherwise equal to offsetAlign.
   */
  readOffsetAlign: number;
}

const NO_DIO: DioAlign = Object.freeze({ memAlign: 0, offsetAlign: 0, readOffsetAlign: 0 });

/**
 * Direct-IO alignment of `fd` from statx(STATX_DIOALIGN |
 * STATX_DIO_READ_ALIGN). Zeros when direct IO is unsupported or the addon is
 * unavailable. Throws a Node-style error if statx itself fails (EBADF...).
 */
export function statxDioAlign(fd: number): DioAlign {
  if (!native) return { ...NO_DIO };
  const r = native.statxDioAlign(fd);
  if (typeof r === 'number') throw sysError(r, 'statx');
  return { memAlign: r.memAlign, offsetAlign: r.offsetAlign, readOffsetAlign: r.readOffsetAlign };
}

/**
 * Turns O_DIRECT on or off on an open descriptor (fcntl F_SETFL). Answers
 * true when done, false when the addon is unavailable (the descriptor is
 * left as it was: buffered). Throws EINVAL where the file system refuses
 * O_DIRECT. The flag belongs to the open file description: descriptors
 * duplicated from it (dup, SCM_RIGHTS) share it, which is why LOCALIO grants
 * a new open file description per grant.
 */
export function setODirect(fd: number, on: boolean): boolean {
  if (!native) return false;
  const rc = native.setODirect(fd, on);
  if (rc < 0) throw sysError(rc, 'fcntl', '(F_SETFL O_DIRECT)');
  return true;
}

/** Whether O_DIRECT is set on `fd`; undefined when the addon is unavailable. */
export function isODirect(fd: number): boolean | undefined {
  if (!native) return undefined;
  const fl = native.getFdFlags(fd);
  if (fl < 0) throw sysError(fl, 'fcntl', '(F_GETFL)');
  return (fl & native.O_DIRECT) !== 0;
}

/**
 * Opens `file` with O_DIRECT (and close-on-exec, as Node always does).
 * Pure TypeScript: Node exposes O_DIRECT on Linux. Throws EINVAL where the
 * file system refuses direct IO, and ENOTSUP on platforms without O_DIRECT.
 * `flags` are numeric open flags (fs.constants.O_RDWR | O_CREAT ...).
 */
export function openODirect(file: string, flags: number = fs.constants.O_RDONLY, mode = 0o666): number {
  const direct = (fs.constants as Record<string, number | undefined>)['O_DIRECT'];
  if (direct === undefined) throw sysError(-95, 'open', `(O_DIRECT) '${file}'`);
  return fs.openSync(file, flags | direct, mode);
}

/**
 * A zero-filled Buffer of `size` bytes whose first byte's address is a
 * multiple of `align` (a power of two). With the addon the memory comes from
 * posix_memalign and is freed when the Buffer is collected; allocate IO
 * buffers once, at start, and reuse them. Without the addon this is
 * Buffer.alloc(size) and alignment is not guaranteed (direct IO is not used
 * then anyway: statxDioAlign answers zeros).
 */
export function allocAligned(size: number, align: number): Buffer {
  if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`size must be a non-negative integer, got ${size}`);
  if (!Number.isSafeInteger(align) || align < 1 || (align & (align - 1)) !== 0) {
    throw new RangeError(`align must be a power of two, got ${align}`);
  }
  if (!native) return Buffer.alloc(size);
  const view = native.allocAligned(size, align);
  return Buffer.isBuffer(view) ? view : Buffer.from(view.buffer, view.byteOffset, view.byteLength);
}

/** The address of a view's first byte, or undefined without the addon. */
export function bufferAddress(view: ArrayBufferView): bigint | undefined {
  return native ? native.addressOf(view) : undefined;
}

/** Whether `view` starts at a multiple of `align`; undefined without the addon. */
export function isAligned(view: ArrayBufferView, align: number): boolean | undefined {
  const addr = bufferAddress(view);
  return addr === undefined ? undefined : addr % BigInt(align) === 0n;
}

/**
 * Asks the kernel to drop the cached pages of [offset, offset+length) of
 * `fd` (posix_fadvise POSIX_FADV_DONTNEED; length 0: to the end of the
 * file), so the next reads come from the device. Only clean pages that
 * nobody maps go: fsync first. Answers false without the addon.
 */
export function dropCachedPages(fd: number, offset = 0, length = 0): boolean {
  if (!native?.dropCache) return false;
  const rc = native.dropCache(fd, offset, length);
  if (rc < 0) throw sysError(rc, 'posix_fadvise', '(POSIX_FADV_DONTNEED)');
  return true;
}
