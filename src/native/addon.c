/*
 * tsnfs native addon: module entry point and argument helpers.
 *
 * The addon holds only what Node cannot do by itself: passing descriptors
 * over Unix sockets (SCM_RIGHTS, SO_PEERCRED), direct-IO facts and memory
 * (statx STATX_DIOALIGN, O_DIRECT on an open descriptor, aligned buffers),
 * and an IO engine with its own threads. Everything else stays in TypeScript.
 */
#include "common.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

void tsnfs_throw_status(napi_env env, napi_status status, const char* what) {
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) == napi_ok && pending) return;
  const napi_extended_error_info* info = NULL;
  napi_get_last_error_info(env, &info);
  char msg[256];
  snprintf(msg, sizeof msg, "tsnfs native: %s failed (%d%s%s)", what, (int)status,
           info && info->error_message ? ": " : "", info && info->error_message ? info->error_message : "");
  napi_throw_error(env, NULL, msg);
}

static bool throw_type(napi_env env, const char* name, const char* what) {
  char msg[160];
  snprintf(msg, sizeof msg, "%s must be %s", name, what);
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
  return false;
}

static bool throw_range(napi_env env, const char* name, const char* what) {
  char msg[160];
  snprintf(msg, sizeof msg, "%s is out of range: %s", name, what);
  napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
  return false;
}

bool tsnfs_arg_int64(napi_env env, napi_value v, const char* name, int64_t lo, int64_t hi, int64_t* out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number) return throw_type(env, name, "a number");
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) return throw_type(env, name, "a number");
  if (!isfinite(d) || d != floor(d)) return throw_range(env, name, "not an integer");
  /* Doubles hold integers exactly up to 2^53. */
  if (d < -9007199254740991.0 || d > 9007199254740991.0) return throw_range(env, name, "beyond 2^53");
  int64_t i = (int64_t)d;
  if (i < lo || i > hi) return throw_range(env, name, "outside the allowed bounds");
  *out = i;
  return true;
}

bool tsnfs_arg_int32(napi_env env, napi_value v, const char* name, int32_t lo, int32_t hi, int32_t* out) {
  int64_t i;
  if (!tsnfs_arg_int64(env, v, name, lo, hi, &i)) return false;
  *out = (int32_t)i;
  return true;
}

bool tsnfs_arg_bool(napi_env env, napi_value v, const char* name, bool* out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_boolean) return throw_type(env, name, "a boolean");
  return napi_get_value_bool(env, v, out) == napi_ok;
}

bool tsnfs_arg_bytes(napi_env env, napi_value v, const char* name, uint8_t** data, size_t* len) {
  bool is = false;
  if (napi_is_typedarray(env, v, &is) == napi_ok && is) {
    napi_typedarray_type type;
    size_t count, offset;
    void* p;
    napi_value ab;
    if (napi_get_typedarray_info(env, v, &type, &count, &p, &ab, &offset) != napi_ok) return throw_type(env, name, "a TypedArray");
    size_t elem = 1;
    switch (type) {
      case napi_int8_array: case napi_uint8_array: case napi_uint8_clamped_array: elem = 1; break;
      case napi_int16_array: case napi_uint16_array: elem = 2; break;
      case napi_int32_array: case napi_uint32_array: case napi_float32_array: elem = 4; break;
      default: elem = 8; break;
    }
    *data = (uint8_t*)p; /* already advanced by the view's byteOffset */
    *len = count * elem;
    return true;
  }
  if (napi_is_dataview(env, v, &is) == napi_ok && is) {
    size_t bytes, offset;
    void* p;
    napi_value ab;
    if (napi_get_dataview_info(env, v, &bytes, &p, &ab, &offset) != napi_ok) return throw_type(env, name, "a DataView");
    *data = (uint8_t*)p;
    *len = bytes;
    return true;
  }
  return throw_type(env, name, "a Buffer, TypedArray or DataView");
}

bool tsnfs_arg_string(napi_env env, napi_value v, const char* name, char* buf, size_t cap, size_t* len) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_string) return throw_type(env, name, "a string");
  size_t need = 0;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &need) != napi_ok) return throw_type(env, name, "a string");
  if (need + 1 > cap) return throw_range(env, name, "too long");
  if (napi_get_value_string_utf8(env, v, buf, cap, len) != napi_ok) return throw_type(env, name, "a string");
  if (strlen(buf) != *len) return throw_range(env, name, "contains a NUL byte");
  return true;
}

napi_value tsnfs_int(napi_env env, int64_t v) {
  napi_value out = NULL;
  napi_create_int64(env, v, &out);
  return out;
}

napi_value tsnfs_bool(napi_env env, bool v) {
  napi_value out = NULL;
  napi_get_boolean(env, v, &out);
  return out;
}

bool tsnfs_set_int(napi_env env, napi_value obj, const char* key, int64_t v) {
  napi_value n = tsnfs_int(env, v);
  return n && napi_set_named_property(env, obj, key, n) == napi_ok;
}

bool tsnfs_export_fn(napi_env env, napi_value exports, const char* name, napi_callback cb) {
  napi_value fn;
  if (napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, NULL, &fn) != napi_ok) return false;
  return napi_set_named_property(env, exports, name, fn) == napi_ok;
}

static napi_value init(napi_env env, napi_value exports) {
  if (!tsnfs_set_int(env, exports, "abi", TSNFS_NATIVE_ABI)) return NULL;
  if (!tsnfs_init_fdpass(env, exports)) return NULL;
  if (!tsnfs_init_poller(env, exports)) return NULL;
  if (!tsnfs_init_dio(env, exports)) return NULL;
  if (!tsnfs_init_engine(env, exports)) return NULL;
  if (!tsnfs_init_stat(env, exports)) return NULL;
  return exports;
}

NAPI_MODULE_INIT() { return init(env, exports); }
