/*
 * Shared helpers for the tsnfs native addon.
 *
 * Conventions used by every function the addon exports:
 *  - System call failures are returned, not thrown: a function answers a
 *    negative errno (-ENOENT, -EAGAIN, ...) and the TypeScript wrapper turns
 *    it into a Node-style error (code, errno, syscall). Only misuse (wrong
 *    argument types, out-of-range values) throws, as a TypeError/RangeError.
 *  - Every descriptor the addon creates is close-on-exec.
 */
#ifndef TSNFS_NATIVE_COMMON_H
#define TSNFS_NATIVE_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <node_api.h>

/* Bumped whenever the JS-visible surface of the addon changes, so a stale
 * build left in build/ is refused by the loader instead of misbehaving. */
#define TSNFS_NATIVE_ABI 1

/* Evaluate an N-API call; on failure throw (unless an exception is already
 * pending) and return NULL from the enclosing napi_callback. */
#define NAPI_CALL(env, call)                                      \
  do {                                                            \
    napi_status status_ = (call);                                 \
    if (status_ != napi_ok) {                                     \
      tsnfs_throw_status((env), status_, #call);                  \
      return NULL;                                                \
    }                                                             \
  } while (0)

void tsnfs_throw_status(napi_env env, napi_status status, const char* what);

/* Argument readers. Each throws a TypeError/RangeError naming `name` and
 * returns false when the value does not fit. */
bool tsnfs_arg_int32(napi_env env, napi_value v, const char* name, int32_t lo, int32_t hi, int32_t* out);
bool tsnfs_arg_int64(napi_env env, napi_value v, const char* name, int64_t lo, int64_t hi, int64_t* out);
bool tsnfs_arg_bool(napi_env env, napi_value v, const char* name, bool* out);
/* A Buffer/TypedArray/DataView: its first byte and its length in bytes. */
bool tsnfs_arg_bytes(napi_env env, napi_value v, const char* name, uint8_t** data, size_t* len);
/* A string copied into buf (NUL-terminated). Too long: RangeError. */
bool tsnfs_arg_string(napi_env env, napi_value v, const char* name, char* buf, size_t cap, size_t* len);

napi_value tsnfs_int(napi_env env, int64_t v);
napi_value tsnfs_bool(napi_env env, bool v);
bool tsnfs_set_int(napi_env env, napi_value obj, const char* key, int64_t v);

/* Registration of each part's exports. */
bool tsnfs_init_fdpass(napi_env env, napi_value exports);
bool tsnfs_init_poller(napi_env env, napi_value exports);
bool tsnfs_init_dio(napi_env env, napi_value exports);
bool tsnfs_init_engine(napi_env env, napi_value exports);
bool tsnfs_init_stat(napi_env env, napi_value exports);

bool tsnfs_export_fn(napi_env env, napi_value exports, const char* name, napi_callback cb);

#endif
