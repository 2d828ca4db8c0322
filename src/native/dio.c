/*
 * Direct-IO facts and memory: statx STATX_DIOALIGN, O_DIRECT on an open
 * descriptor, and buffers at a chosen alignment.
 */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* struct statx as the kernel lays it out (include/uapi/linux/stat.h, 6.14+).
 * Defined here so the fields newer than the build machine's headers (the
 * direct-IO read alignment) are still read; the kernel fills what it knows
 * and reports it in stx_mask. */
struct tsnfs_statx_ts {
  int64_t tv_sec;
  uint32_t tv_nsec;
  int32_t reserved;
};

struct tsnfs_statx {
  uint32_t stx_mask;
  uint32_t stx_blksize;
  uint64_t stx_attributes;
  uint32_t stx_nlink;
  uint32_t stx_uid;
  uint32_t stx_gid;
  uint16_t stx_mode;
  uint16_t spare0;
  uint64_t stx_ino;
  uint64_t stx_size;
  uint64_t stx_blocks;
  uint64_t stx_attributes_mask;
  struct tsnfs_statx_ts stx_atime, stx_btime, stx_ctime, stx_mtime;
  uint32_t stx_rdev_major, stx_rdev_minor;
  uint32_t stx_dev_major, stx_dev_minor;
  uint64_t stx_mnt_id;
  uint32_t stx_dio_mem_align;
  uint32_t stx_dio_offset_align;
  uint64_t stx_subvol;
  uint32_t stx_atomic_write_unit_min;
  uint32_t stx_atomic_write_unit_max;
  uint32_t stx_atomic_write_segments_max;
  uint32_t stx_dio_read_offset_align;
  uint32_t stx_atomic_write_unit_max_opt;
  uint32_t spare2;
  uint64_t spare3[8];
};

_Static_assert(sizeof(struct tsnfs_statx) == 256, "struct statx is 256 bytes");
_Static_assert(offsetof(struct tsnfs_statx, stx_dio_mem_align) == 152, "stx_dio_mem_align offset");
_Static_assert(offsetof(struct tsnfs_statx, stx_dio_read_offset_align) == 180, "stx_dio_read_offset_align offset");

#define TSNFS_STATX_DIOALIGN 0x00002000U
#define TSNFS_STATX_DIO_READ_ALIGN 0x00020000U
#ifndef AT_EMPTY_PATH
#define AT_EMPTY_PATH 0x1000
#endif
#ifndef AT_STATX_SYNC_AS_STAT
#define AT_STATX_SYNC_AS_STAT 0x0000
#endif

/* statxDioAlign(fd) -> { mask, memAlign, offsetAlign, readOffsetAlign } | -errno
 * Zeros when the file system does not report direct-IO alignment (no
 * STATX_DIOALIGN in the answer) or does not support direct IO on this file.
 * readOffsetAlign is STATX_DIO_READ_ALIGN where the kernel answers it (it may
 * be smaller than offsetAlign: reads can be finer than writes), otherwise
 * offsetAlign. `mask` is the raw stx_mask for diagnostics. */
static napi_value StatxDioAlign(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  if (!tsnfs_arg_int32(env, argv[0], "fd", 0, INT32_MAX, &fd)) return NULL;
#ifdef SYS_statx
  struct tsnfs_statx st;
  memset(&st, 0, sizeof st);
  long rc = syscall(SYS_statx, fd, "", AT_EMPTY_PATH | AT_STATX_SYNC_AS_STAT,
                    TSNFS_STATX_DIOALIGN | TSNFS_STATX_DIO_READ_ALIGN, &st);
  if (rc < 0) return tsnfs_int(env, -errno);
  uint32_t mem = 0, off = 0, roff = 0;
  if (st.stx_mask & TSNFS_STATX_DIOALIGN) {
    mem = st.stx_dio_mem_align;
    off = st.stx_dio_offset_align;
    roff = off;
    if ((st.stx_mask & TSNFS_STATX_DIO_READ_ALIGN) && st.stx_dio_read_offset_align != 0) roff = st.stx_dio_read_offset_align;
  }
  if (mem == 0 || off == 0) mem = off = roff = 0;
  napi_value obj;
  NAPI_CALL(env, napi_create_object(env, &obj));
  if (!tsnfs_set_int(env, obj, "mask", st.stx_mask) || !tsnfs_set_int(env, obj, "memAlign", mem) ||
      !tsnfs_set_int(env, obj, "offsetAlign", off) || !tsnfs_set_int(env, obj, "readOffsetAlign", roff))
    return NULL;
  return obj;
#else
  return tsnfs_int(env, -ENOSYS);
#endif
}

/* setODirect(fd, on) -> 0 | -errno. Fails with -EINVAL where the file system
 * refuses O_DIRECT. Affects the open file description: every descriptor
 * duplicated from it (dup, SCM_RIGHTS) sees the change. */
static napi_value SetODirect(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  bool on;
  if (!tsnfs_arg_int32(env, argv[0], "fd", 0, INT32_MAX, &fd)) return NULL;
  if (!tsnfs_arg_bool(env, argv[1], "on", &on)) return NULL;
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0) return tsnfs_int(env, -errno);
  int want = on ? (fl | O_DIRECT) : (fl & ~O_DIRECT);
  if (want != fl && fcntl(fd, F_SETFL, want) < 0) return tsnfs_int(env, -errno);
  return tsnfs_int(env, 0);
}

/* getFdFlags(fd) -> F_GETFL flags | -errno (to check O_DIRECT and access mode). */
static napi_value GetFdFlags(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  if (!tsnfs_arg_int32(env, argv[0], "fd", 0, INT32_MAX, &fd)) return NULL;
  int fl = fcntl(fd, F_GETFL);
  return tsnfs_int(env, fl < 0 ? -errno : fl);
}

static void free_aligned(napi_env env, void* data, void* hint) {
  int64_t adjusted;
  size_t size = (size_t)(uintptr_t)hint;
  napi_adjust_external_memory(env, -(int64_t)size, &adjusted);
  free(data);
}

/* allocAligned(size, align) -> Buffer (or Uint8Array), zero-filled, whose
 * first byte is a multiple of `align` (a power of two, at least
 * sizeof(void*)). Memory comes from posix_memalign and is freed by the
 * buffer's finalizer. Where the runtime forbids external buffers, an
 * over-allocated ArrayBuffer is sliced at an aligned offset instead. */
static napi_value AllocAligned(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int64_t size, align;
  if (!tsnfs_arg_int64(env, argv[0], "size", 0, (int64_t)1 << 40, &size)) return NULL;
  if (!tsnfs_arg_int64(env, argv[1], "align", 1, (int64_t)1 << 30, &align)) return NULL;
  if ((align & (align - 1)) != 0) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "align must be a power of two");
    return NULL;
  }
  if (align < (int64_t)sizeof(void*)) align = sizeof(void*);
  size_t bytes = size > 0 ? (size_t)size : 1;
  void* mem = NULL;
  int rc = posix_memalign(&mem, (size_t)align, bytes);
  if (rc != 0) {
    napi_throw_error(env, "ENOMEM", "allocAligned: out of memory");
    return NULL;
  }
  memset(mem, 0, bytes);
  napi_value buf;
  napi_status s = napi_create_external_buffer(env, (size_t)size, mem, free_aligned, (void*)(uintptr_t)bytes, &buf);
  if (s == napi_ok) {
    int64_t adjusted;
    napi_adjust_external_memory(env, (int64_t)bytes, &adjusted);
    return buf;
  }
  free(mem);
  if (s != napi_no_external_buffers_allowed) {
    tsnfs_throw_status(env, s, "napi_create_external_buffer");
    return NULL;
  }
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) {
    napi_value ignored;
    napi_get_and_clear_last_exception(env, &ignored);
  }
  void* data;
  napi_value ab, view;
  NAPI_CALL(env, napi_create_arraybuffer(env, (size_t)size + (size_t)align, &data, &ab));
  size_t off = (size_t)((-(uintptr_t)data) & (uintptr_t)(align - 1));
  NAPI_CALL(env, napi_create_typedarray(env, napi_uint8_array, (size_t)size, ab, off, &view));
  return view;
}

/* addressOf(view) -> bigint: the address of the view's first byte, so a
 * caller (or a test) can check alignment. */
static napi_value AddressOf(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint8_t* data;
  size_t len;
  if (!tsnfs_arg_bytes(env, argv[0], "buffer", &data, &len)) return NULL;
  napi_value out;
  NAPI_CALL(env, napi_create_bigint_uint64(env, (uint64_t)(uintptr_t)data, &out));
  return out;
}

/* dropCache(fd, offset, length) -> 0 | -errno: posix_fadvise
 * POSIX_FADV_DONTNEED, so the clean, unmapped cached pages of the range
 * leave the page cache (length 0: to the end of the file). For tests and
 * benchmarks that need reads from the device. */
static napi_value DropCache(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  int64_t offset, length;
  if (!tsnfs_arg_int32(env, argv[0], "fd", 0, INT32_MAX, &fd) ||
      !tsnfs_arg_int64(env, argv[1], "offset", 0, INT64_MAX, &offset) ||
      !tsnfs_arg_int64(env, argv[2], "length", 0, INT64_MAX, &length))
    return NULL;
  return tsnfs_int(env, -posix_fadvise(fd, offset, length, POSIX_FADV_DONTNEED));
}

bool tsnfs_init_dio(napi_env env, napi_value exports) {
  return tsnfs_export_fn(env, exports, "statxDioAlign", StatxDioAlign) &&
         tsnfs_export_fn(env, exports, "setODirect", SetODirect) &&
         tsnfs_export_fn(env, exports, "getFdFlags", GetFdFlags) &&
         tsnfs_export_fn(env, exports, "allocAligned", AllocAligned) &&
         tsnfs_export_fn(env, exports, "addressOf", AddressOf) &&
         tsnfs_export_fn(env, exports, "dropCache", DropCache) &&
         tsnfs_set_int(env, exports, "O_DIRECT", O_DIRECT);
}
