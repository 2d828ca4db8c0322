/*
 * Poller: readiness of a descriptor on the Node event loop (a libuv poll
 * handle), so sockets the addon owns are read and written without blocking
 * JavaScript and without a thread per socket.
 *
 *   const p = new Poller(fd, (status, events) => { ... });
 *   p.start(READABLE | WRITABLE); p.stop(); p.setRef(false); p.close();
 *
 * The callback runs on the JS thread with status 0 or a negative errno, and
 * the events that are ready. close() must come before the descriptor is
 * closed (epoll forgets a descriptor only when its file is released).
 */
#include "common.h"

#include <errno.h>
#include <stdlib.h>
#include <uv.h>

#define POLL_READABLE 1
#define POLL_WRITABLE 2

typedef struct poller {
  uv_poll_t handle;
  napi_env env;
  napi_ref cb;
  napi_async_context async;
  bool closing;      /* uv_close called */
  bool closed;       /* its close callback has run */
  bool finalized;    /* the JS object is gone */
  bool hook;         /* env cleanup hook registered */
  int in_callback;   /* inside napi_make_callback with p->async */
  bool release_pending; /* close() ran inside the callback: release after it */
} poller;

static void free_if_done(poller* p) {
  if (p->closed && p->finalized) free(p);
}

static void on_closed(uv_handle_t* h) {
  poller* p = (poller*)h->data;
  p->closed = true;
  free_if_done(p);
}

static void release_js(poller* p) {
  if (p->cb) {
    napi_delete_reference(p->env, p->cb);
    p->cb = NULL;
  }
  if (p->async) {
    napi_async_destroy(p->env, p->async);
    p->async = NULL;
  }
}

static void begin_close(poller* p) {
  if (p->closing) return;
  p->closing = true;
  uv_poll_stop(&p->handle);
  uv_close((uv_handle_t*)&p->handle, on_closed);
}

/* The environment is going away (worker exit, process teardown): close the
 * handle while its loop still runs. */
static void on_env_cleanup(void* arg) {
  poller* p = (poller*)arg;
  p->hook = false;
  begin_close(p);
}

static void on_finalize(napi_env env, void* data, void* hint) {
  (void)hint;
  poller* p = (poller*)data;
  if (p->hook) {
    napi_remove_env_cleanup_hook(env, on_env_cleanup, p);
    p->hook = false;
  }
  release_js(p);
  p->finalized = true;
  if (!p->closing) begin_close(p);
  else free_if_done(p);
}

static void on_poll(uv_poll_t* h, int status, int events) {
  poller* p = (poller*)h->data;
  if (p->closing || !p->cb) return;
  napi_env env = p->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value cb, recv, argv[2];
  int ev = 0;
  if (events & UV_READABLE) ev |= POLL_READABLE;
  if (events & UV_WRITABLE) ev |= POLL_WRITABLE;
  if (events & UV_DISCONNECT) ev |= POLL_READABLE; /* reading will see EOF */
  if (napi_get_reference_value(env, p->cb, &cb) == napi_ok && cb != NULL && napi_get_global(env, &recv) == napi_ok &&
      napi_create_int32(env, status, &argv[0]) == napi_ok && napi_create_int32(env, ev, &argv[1]) == napi_ok) {
    napi_value result;
    p->in_callback++;
    napi_status s = napi_make_callback(env, p->async, recv, cb, 2, argv, &result);
    p->in_callback--;
    if (p->release_pending && p->in_callback == 0) {
      p->release_pending = false;
      release_js(p);
    }
    if (s == napi_pending_exception) {
      napi_value err;
      if (napi_get_and_clear_last_exception(env, &err) == napi_ok) napi_fatal_exception(env, err);
    }
  }
  napi_close_handle_scope(env, scope);
}

static poller* unwrap(napi_env env, napi_callback_info info, size_t* argc, napi_value* argv) {
  napi_value self;
  void* data = NULL;
  if (napi_get_cb_info(env, info, argc, argv, &self, NULL) != napi_ok) return NULL;
  if (napi_unwrap(env, self, &data) != napi_ok || data == NULL) {
    napi_throw_error(env, NULL, "Poller: not a Poller");
    return NULL;
  }
  return (poller*)data;
}

static napi_value PollerNew(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], self;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, &self, NULL));
  int32_t fd;
  if (!tsnfs_arg_int32(env, argv[0], "fd", 0, INT32_MAX, &fd)) return NULL;
  napi_valuetype t;
  NAPI_CALL(env, napi_typeof(env, argv[1], &t));
  if (t != napi_function) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "callback must be a function");
    return NULL;
  }
  struct uv_loop_s* loop;
  NAPI_CALL(env, napi_get_uv_event_loop(env, &loop));
  poller* p = calloc(1, sizeof *p);
  if (!p) {
    napi_throw_error(env, "ENOMEM", "Poller: out of memory");
    return NULL;
  }
  p->env = env;
  int rc = uv_poll_init(loop, &p->handle, fd);
  if (rc != 0) {
    free(p);
    napi_throw_error(env, uv_err_name(rc), uv_strerror(rc));
    return NULL;
  }
  p->handle.data = p;
  napi_value name;
  if (napi_create_reference(env, argv[1], 1, &p->cb) != napi_ok ||
      napi_create_string_utf8(env, "tsnfs:Poller", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_async_init(env, self, name, &p->async) != napi_ok ||
      napi_wrap(env, self, p, on_finalize, NULL, NULL) != napi_ok) {
    release_js(p);
    p->finalized = true;
    begin_close(p);
    tsnfs_throw_status(env, napi_generic_failure, "Poller setup");
    return NULL;
  }
  if (napi_add_env_cleanup_hook(env, on_env_cleanup, p) == napi_ok) p->hook = true;
  return self;
}

/* start(events): 1 readable, 2 writable, 3 both. Replaces the current set. */
static napi_value PollerStart(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  poller* p = unwrap(env, info, &argc, argv);
  if (!p) return NULL;
  int32_t ev;
  if (!tsnfs_arg_int32(env, argv[0], "events", 0, 3, &ev)) return NULL;
  if (p->closing) return tsnfs_int(env, -EBADF);
  if (ev == 0) return tsnfs_int(env, uv_poll_stop(&p->handle));
  int uvev = 0;
  if (ev & POLL_READABLE) uvev |= UV_READABLE | UV_DISCONNECT;
  if (ev & POLL_WRITABLE) uvev |= UV_WRITABLE;
  return tsnfs_int(env, uv_poll_start(&p->handle, uvev, on_poll));
}

static napi_value PollerStop(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  poller* p = unwrap(env, info, &argc, NULL);
  if (!p) return NULL;
  if (!p->closing) uv_poll_stop(&p->handle);
  return NULL;
}

static napi_value PollerRef(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  poller* p = unwrap(env, info, &argc, argv);
  if (!p) return NULL;
  bool on;
  if (!tsnfs_arg_bool(env, argv[0], "ref", &on)) return NULL;
  if (!p->closing) {
    if (on) uv_ref((uv_handle_t*)&p->handle);
    else uv_unref((uv_handle_t*)&p->handle);
  }
  return NULL;
}

static napi_value PollerClose(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  poller* p = unwrap(env, info, &argc, NULL);
  if (!p) return NULL;
  if (p->hook) {
    napi_remove_env_cleanup_hook(env, on_env_cleanup, p);
    p->hook = false;
  }
  begin_close(p);
  /* Drop the callback now: it may close over the owner, which would
   * otherwise stay reachable until this object is collected. Not while the
   * callback runs (close() from inside it): its async context is in use. */
  if (p->in_callback > 0) p->release_pending = true;
  else release_js(p);
  return NULL;
}

bool tsnfs_init_poller(napi_env env, napi_value exports) {
  napi_property_descriptor methods[] = {
      {"start", NULL, PollerStart, NULL, NULL, NULL, napi_default_method, NULL},
      {"stop", NULL, PollerStop, NULL, NULL, NULL, napi_default_method, NULL},
      {"setRef", NULL, PollerRef, NULL, NULL, NULL, napi_default_method, NULL},
      {"close", NULL, PollerClose, NULL, NULL, NULL, napi_default_method, NULL},
  };
  napi_value cls;
  if (napi_define_class(env, "Poller", NAPI_AUTO_LENGTH, PollerNew, NULL, sizeof methods / sizeof methods[0], methods,
                        &cls) != napi_ok)
    return false;
  return napi_set_named_property(env, exports, "Poller", cls) == napi_ok && tsnfs_set_int(env, exports, "POLL_READABLE", POLL_READABLE) &&
         tsnfs_set_int(env, exports, "POLL_WRITABLE", POLL_WRITABLE);
}
