/*
 * lstat and fstat into a caller's BigInt64Array, for the server's hot path.
 *
 * Node's lstatSync(p, { bigint: true }) builds a BigIntStats of 18 BigInts,
 * four BigInt divisions and four Dates per call: on a metadata load about
 * as much CPU as the system call. These fill 18 int64 slots of one array
 * registered once (statBuffer), and the TypeScript side reads the ones it
 * needs (src/fs/fast-stat.ts). Same source as libuv: statx with the basic
 * stats and the birth time.
 */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <unistd.h>

#define SLOTS 18

static int64_t* slots = NULL;
static napi_ref slots_ref = NULL;

static void fill(const struct statx* s) {
  int64_t* o = slots;
  o[0] = (int64_t)makedev(s->stx_dev_major, s->stx_dev_minor);
  o[1] = (int64_t)s->stx_ino;
  o[2] = s->stx_mode;
  o[3] = s->stx_nlink;
  o[4] = s->stx_uid;
  o[5] = s->stx_gid;
  o[6] = (int64_t)makedev(s->stx_rdev_major, s->stx_rdev_minor);
  o[7] = (int64_t)s->stx_size;
  o[8] = s->stx_blksize;
  o[9] = (int64_t)s->stx_blocks;
  o[10] = s->stx_atime.tv_sec;
  o[11] = s->stx_atime.tv_nsec;
  o[12] = s->stx_mtime.tv_sec;
  o[13] = s->stx_mtime.tv_nsec;
  o[14] = s->stx_ctime.tv_sec;
  o[15] = s->stx_ctime.tv_nsec;
  /* libuv copies the birth time whether or not the file system gave one. */
  o[16] = s->stx_btime.tv_sec;
  o[17] = s->stx_btime.tv_nsec;
}

static int do_statx(int dirfd, const char* path, int flags) {
  struct statx s;
  if (statx(dirfd, path, flags | AT_STATX_SYNC_AS_STAT, STATX_BASIC_STATS | STATX_BTIME, &s) < 0) return -errno;
  fill(&s);
  return 0;
}

/* statBuffer(BigInt64Array of 18) -> undefined. Where the next calls write. */
static napi_value StatBuffer(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  bool is;
  NAPI_CALL(env, napi_is_typedarray(env, argv[0], &is));
  napi_typedarray_type type;
  size_t length;
  void* data;
  if (is) NAPI_CALL(env, napi_get_typedarray_info(env, argv[0], &type, &length, &data, NULL, NULL));
  if (!is || type != napi_bigint64_array || length < SLOTS) {
    napi_throw_type_error(env, NULL, "statBuffer: a BigInt64Array of at least 18 elements");
    return NULL;
  }
  if (slots_ref) NAPI_CALL(env, napi_delete_reference(env, slots_ref));
  NAPI_CALL(env, napi_create_reference(env, argv[0], 1, &slots_ref));
  slots = data;
  return NULL;
}

/* The one argument of lstatInto and fstatInto, once statBuffer was called;
 * NULL with an exception pending otherwise. */
static napi_value only_arg(napi_env env, napi_callback_info info, const char* fn) {
  size_t argc = 1;
  napi_value arg = NULL;
  if (napi_get_cb_info(env, info, &argc, &arg, NULL, NULL) != napi_ok || argc < 1) {
    napi_throw_type_error(env, NULL, "missing argument");
    return NULL;
  }
  if (!slots) {
    napi_throw_error(env, NULL, fn);
    return NULL;
  }
  return arg;
}

/* lstatInto(path: string | Buffer) -> 0 | -errno */
static napi_value LstatInto(napi_env env, napi_callback_info info) {
  napi_value arg = only_arg(env, info, "lstatInto: call statBuffer first");
  if (!arg) return NULL;
  char path[PATH_MAX];
  bool isBuffer;
  NAPI_CALL(env, napi_is_buffer(env, arg, &isBuffer));
  if (isBuffer) {
    uint8_t* bytes;
    size_t len;
    if (!tsnfs_arg_bytes(env, arg, "path", &bytes, &len)) return NULL;
    if (len >= sizeof path) return tsnfs_int(env, -ENAMETOOLONG);
    if (memchr(bytes, 0, len)) return tsnfs_int(env, -EINVAL);
    memcpy(path, bytes, len);
    path[len] = 0;
  } else {
    napi_valuetype t;
    NAPI_CALL(env, napi_typeof(env, arg, &t));
    if (t != napi_string) {
      napi_throw_type_error(env, NULL, "path must be a string or a Buffer");
      return NULL;
    }
    size_t need = 0, len = 0;
    NAPI_CALL(env, napi_get_value_string_utf8(env, arg, NULL, 0, &need));
    if (need >= sizeof path) return tsnfs_int(env, -ENAMETOOLONG);
    NAPI_CALL(env, napi_get_value_string_utf8(env, arg, path, sizeof path, &len));
    if (strlen(path) != len) return tsnfs_int(env, -EINVAL);
  }
  return tsnfs_int(env, do_statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW));
}

/* fstatInto(fd) -> 0 | -errno */
static napi_value FstatInto(napi_env env, napi_callback_info info) {
  napi_value arg = only_arg(env, info, "fstatInto: call statBuffer first");
  if (!arg) return NULL;
  int32_t fd;
  if (!tsnfs_arg_int32(env, arg, "fd", 0, INT32_MAX, &fd)) return NULL;
  return tsnfs_int(env, do_statx(fd, "", AT_EMPTY_PATH));
}

bool tsnfs_init_stat(napi_env env, napi_value exports) {
  return tsnfs_export_fn(env, exports, "statBuffer", StatBuffer) &&
         tsnfs_export_fn(env, exports, "lstatInto", LstatInto) &&
         tsnfs_export_fn(env, exports, "fstatInto", FstatInto);
}
