/*
 * MetaWorker: a server's directory changes (create, remove) and closes of
 * descriptors, run on a thread of their own, several system calls per job.
 *
 * Why: a CREATE is lstat(dir), open(O_CREAT), fstat, lstat(dir) and a REMOVE
 * lstat(dir), lstat(name), unlink, lstat(dir). Made one by one from the
 * event loop, each costs the loop its system call (a create or unlink is
 * tens of microseconds of kernel work on ext4), or a thread hand-off each
 * through the libuv threadpool. Here the whole sequence is one job: the
 * event loop queues it and goes on, and hears of it once, with every
 * result. The jobs of one directory serialize on its inode lock in the
 * kernel anyway, so one thread (the default) loses little.
 *
 * The directory is named by path, and the job first checks that the path
 * still reaches the expected directory: lstat, then dev, ino, birth time,
 * type and permission bits, owner and group equal to what the caller
 * checked its permissions against (the caller writes them into the job's
 * first stat block). Anything else answers -ESTALE at stage 1 and changes
 * nothing; the caller then locates the directory again.
 *
 * Memory shared with JS, per slot: RES_WORDS int32 (result, stage, error of
 * the final lstat, unused) and STATS_PER_SLOT blocks of STAT_WORDS int64:
 * [dev, mode, nlink, uid, gid, rdev, blksize, ino, size, blocks,
 *  atime s, ns, mtime s, ns, ctime s, ns, btime s, ns]. Block 0 holds the
 * expected directory on submission and the directory before the change on
 * completion, block 1 the object (the new file, or the removed name), block
 * 2 the directory after. A slot is the JS side's until it submits it and
 * again once its number comes back in a completion batch.
 *
 * Completions are batched as in the IO engine: the first job to complete
 * into an empty completion ring makes one threadsafe-function call, which
 * hands every completed slot to JS at once.
 */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define MW_MAX_DEPTH 4096
#define MW_MAX_THREADS 8
#define STAT_WORDS 18
#define STATS_PER_SLOT 3
#define RES_WORDS 4
/* Completions held back at most while more jobs are queued (complete_locked). */
#define COALESCE_MAX 16

enum { MOP_CREATE = 1, MOP_REMOVE = 2, MOP_CLOSE = 3 };
/* Where a job stopped: 0 done, 1 the directory check, 2 the name's lstat
 * (REMOVE), 3 the change itself (open or unlink). */
enum { STAGE_DONE = 0, STAGE_DIR = 1, STAGE_VICTIM = 2, STAGE_OP = 3 };

typedef struct mjob {
  struct mjob* next;
  uint32_t slot;
  int32_t op;
  int32_t fd;
  int32_t flags;
  int32_t mode;
  char* dir;    /* inside this allocation */
  char* target; /* inside this allocation */
} mjob;

typedef struct mworker {
  pthread_mutex_t mu;
  pthread_cond_t work;
  mjob* head;
  mjob* tail;
  uint32_t* cq;
  uint32_t cq_head, cq_len;
  uint32_t depth;
  pthread_t threads[MW_MAX_THREADS];
  uint32_t started;
  uint32_t idle;
  uint32_t waking;
  bool stopping;
  bool notify_pending;
  int32_t* res;  /* JS memory (kept alive by the refs below) */
  int64_t* stats;
  /* JS-thread-only state below. */
  napi_threadsafe_function tsfn;
  napi_ref res_ref, stats_ref, done_ref;
  bool joined, released, tsfn_finalized, closed, refd;
  int owners;
  uint32_t inflight;
  uint64_t submitted, batches;
} mworker;

static const napi_type_tag MW_TAG = {0x74736e666d657461ULL, 0x776f726b65720001ULL};

static void mw_unref(mworker* w) {
  if (--w->owners > 0) return;
  mjob* j = w->head;
  while (j) {
    mjob* n = j->next;
    if (j->op == MOP_CLOSE && j->fd >= 0) close(j->fd);
    free(j);
    j = n;
  }
  pthread_mutex_destroy(&w->mu);
  pthread_cond_destroy(&w->work);
  free(w->cq);
  free(w);
}

static void put_stat(int64_t* o, const struct statx* s) {
  o[0] = (int64_t)makedev(s->stx_dev_major, s->stx_dev_minor);
  o[1] = s->stx_mode;
  o[2] = s->stx_nlink;
  o[3] = s->stx_uid;
  o[4] = s->stx_gid;
  o[5] = (int64_t)makedev(s->stx_rdev_major, s->stx_rdev_minor);
  o[6] = s->stx_blksize;
  o[7] = (int64_t)s->stx_ino;
  o[8] = (int64_t)s->stx_size;
  o[9] = (int64_t)s->stx_blocks;
  o[10] = s->stx_atime.tv_sec;
  o[11] = s->stx_atime.tv_nsec;
  o[12] = s->stx_mtime.tv_sec;
  o[13] = s->stx_mtime.tv_nsec;
  o[14] = s->stx_ctime.tv_sec;
  o[15] = s->stx_ctime.tv_nsec;
  if (s->stx_mask & STATX_BTIME) {
    o[16] = s->stx_btime.tv_sec;
    o[17] = s->stx_btime.tv_nsec;
  } else {
    o[16] = 0;
    o[17] = 0;
  }
}

#define STATX_WANT (STATX_BASIC_STATS | STATX_BTIME)

static int lstat_x(const char* p, struct statx* s) {
  return statx(AT_FDCWD, p, AT_SYMLINK_NOFOLLOW | AT_STATX_SYNC_AS_STAT, STATX_WANT, s) == 0 ? 0 : -errno;
}

/* The expected directory (block 0 as the caller wrote it) against what the
 * path reaches now. */
static bool same_dir(const int64_t* want, const struct statx* s) {
  int64_t now[STAT_WORDS];
  put_stat(now, s);
  return S_ISDIR(s->stx_mode) && now[0] == want[0] && now[7] == want[7] && now[1] == want[1] && now[3] == want[3] &&
         now[4] == want[4] && now[16] == want[16] && now[17] == want[17];
}

static void run_job(mworker* w, mjob* j) {
  int32_t* res = w->res + (size_t)j->slot * RES_WORDS;
  int64_t* st = w->stats + (size_t)j->slot * STATS_PER_SLOT * STAT_WORDS;
  res[0] = 0;
  res[1] = STAGE_DONE;
  res[2] = 0;
  if (j->op == MOP_CLOSE) {
    res[0] = close(j->fd) == 0 ? 0 : -errno;
    return;
  }
  struct statx s;
  int rc = lstat_x(j->dir, &s);
  if (rc == 0 && !same_dir(st, &s)) rc = -ESTALE;
  if (rc != 0) {
    res[0] = rc;
    res[1] = STAGE_DIR;
    return;
  }
  put_stat(st, &s);
  int64_t dir_dev = st[0];
  if (j->op == MOP_CREATE) {
    int fd = open(j->target, j->flags | O_CLOEXEC, (mode_t)j->mode);
    if (fd < 0) {
      res[0] = -errno;
      res[1] = STAGE_OP;
      return;
    }
    if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_SYNC_AS_STAT, STATX_WANT, &s) != 0) {
      /* The file stays: a retransmission or a LOOKUP finds it. */
      res[0] = -errno;
      res[1] = STAGE_OP;
      close(fd);
      return;
    }
    put_stat(st + STAT_WORDS, &s);
    res[0] = fd;
  } else {
    rc = lstat_x(j->target, &s);
    if (rc == 0 && (int64_t)makedev(s.stx_dev_major, s.stx_dev_minor) != dir_dev) rc = -EXDEV;
    if (rc == 0 && S_ISDIR(s.stx_mode)) rc = -EISDIR;
    if (rc != 0) {
      res[0] = rc;
      res[1] = STAGE_VICTIM;
      return;
    }
    put_stat(st + STAT_WORDS, &s);
    if (unlink(j->target) != 0) {
      res[0] = -errno;
      res[1] = STAGE_OP;
      return;
    }
  }
  rc = lstat_x(j->dir, &s);
  if (rc == 0) put_stat(st + 2 * STAT_WORDS, &s);
  res[2] = rc;
}

/* With w->mu held: `slot` is complete; tell JS unless a call is on its way,
 * or jobs are still queued (and not many completions wait): JS then hears
 * of several at once, and the replies they make leave in one socket write
 * rather than one write each. */
static void complete_locked(mworker* w, uint32_t slot) {
  w->cq[(w->cq_head + w->cq_len) % w->depth] = slot;
  w->cq_len++;
  if (!w->notify_pending && (!w->head || w->cq_len >= COALESCE_MAX)) {
    w->notify_pending = true;
    pthread_mutex_unlock(&w->mu);
    napi_call_threadsafe_function(w->tsfn, NULL, napi_tsfn_nonblocking);
    pthread_mutex_lock(&w->mu);
  }
}

static void* worker_main(void* arg) {
  mworker* w = (mworker*)arg;
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL);
  pthread_mutex_lock(&w->mu);
  for (;;) {
    while (!w->head && !w->stopping) {
      __atomic_store_n(&w->idle, w->idle + 1, __ATOMIC_RELEASE);
      pthread_cond_wait(&w->work, &w->mu);
      __atomic_store_n(&w->idle, w->idle - 1, __ATOMIC_RELEASE);
      if (w->waking > 0) w->waking--;
    }
    if (!w->head) break; /* stopping, and nothing left */
    mjob* j = w->head;
    w->head = j->next;
    if (!w->head) w->tail = NULL;
    pthread_mutex_unlock(&w->mu);
    run_job(w, j);
    uint32_t slot = j->slot;
    free(j);
    pthread_mutex_lock(&w->mu);
    complete_locked(w, slot);
  }
  pthread_mutex_unlock(&w->mu);
  return NULL;
}

static void mw_join(mworker* w) {
  if (w->joined) return;
  pthread_mutex_lock(&w->mu);
  w->stopping = true;
  pthread_cond_broadcast(&w->work);
  pthread_mutex_unlock(&w->mu);
  for (uint32_t i = 0; i < w->started; i++) pthread_join(w->threads[i], NULL);
  w->joined = true;
}

static void mw_release(mworker* w) {
  if (w->released || w->tsfn_finalized) return;
  w->released = true;
  napi_release_threadsafe_function(w->tsfn, napi_tsfn_release);
}

static void call_js(napi_env env, napi_value js_cb, void* context, void* data) {
  (void)data;
  mworker* w = (mworker*)context;
  if (env == NULL || js_cb == NULL) return;
  napi_value arr;
  void* raw = NULL;
  napi_typedarray_type type;
  size_t length, offset;
  napi_value ab;
  if (napi_get_reference_value(env, w->done_ref, &arr) != napi_ok || arr == NULL ||
      napi_get_typedarray_info(env, arr, &type, &length, &raw, &ab, &offset) != napi_ok)
    return;
  uint32_t* out = (uint32_t*)raw;
  uint32_t n = 0;
  pthread_mutex_lock(&w->mu);
  while (w->cq_len > 0) {
    out[n++] = w->cq[w->cq_head];
    w->cq_head = (w->cq_head + 1) % w->depth;
    w->cq_len--;
  }
  w->notify_pending = false;
  pthread_mutex_unlock(&w->mu);
  if (n > 0) {
    w->batches++;
    w->inflight -= n;
    napi_value recv, argv[1], result;
    napi_get_undefined(env, &recv);
    napi_create_uint32(env, n, &argv[0]);
    napi_status s = napi_call_function(env, recv, js_cb, 1, argv, &result);
    if (s == napi_pending_exception) {
      napi_value err;
      if (napi_get_and_clear_last_exception(env, &err) == napi_ok) napi_fatal_exception(env, err);
    }
  }
  if (w->inflight == 0 && w->refd && !w->released && !w->tsfn_finalized) {
    napi_unref_threadsafe_function(env, w->tsfn);
    w->refd = false;
  }
}

static void on_tsfn_finalize(napi_env env, void* finalize_data, void* hint) {
  (void)hint;
  mworker* w = (mworker*)finalize_data;
  w->tsfn_finalized = true;
  mw_join(w);
  napi_ref* refs[3] = {&w->res_ref, &w->stats_ref, &w->done_ref};
  for (int i = 0; i < 3; i++)
    if (*refs[i]) {
      napi_delete_reference(env, *refs[i]);
      *refs[i] = NULL;
    }
  mw_unref(w);
}

static void on_handle_finalize(napi_env env, void* data, void* hint) {
  (void)env;
  (void)hint;
  mworker* w = (mworker*)data;
  w->closed = true;
  mw_join(w);
  mw_release(w);
  mw_unref(w);
}

static mworker* get_mw(napi_env env, napi_value v) {
  bool ok = false;
  void* p = NULL;
  if (napi_check_object_type_tag(env, v, &MW_TAG, &ok) != napi_ok || !ok || napi_get_value_external(env, v, &p) != napi_ok ||
      p == NULL) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "not a MetaWorker handle");
    return NULL;
  }
  return (mworker*)p;
}

static bool typed(napi_env env, size_t bytes, napi_typedarray_type type, size_t elem, napi_value* out, void** data,
                  napi_ref* ref) {
  napi_value ab;
  return napi_create_arraybuffer(env, bytes, data, &ab) == napi_ok &&
         napi_create_typedarray(env, type, bytes / elem, ab, 0, out) == napi_ok &&
         napi_create_reference(env, *out, 1, ref) == napi_ok;
}

/* metaCreate(threads, depth, callback(count))
 *   -> { handle, results: Int32Array, stats: BigInt64Array, done: Uint32Array } */
static napi_value MetaCreate(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t nthreads, depth;
  if (!tsnfs_arg_int32(env, argv[0], "threads", 1, MW_MAX_THREADS, &nthreads)) return NULL;
  if (!tsnfs_arg_int32(env, argv[1], "depth", 1, MW_MAX_DEPTH, &depth)) return NULL;
  napi_valuetype t;
  NAPI_CALL(env, napi_typeof(env, argv[2], &t));
  if (t != napi_function) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "callback must be a function");
    return NULL;
  }
  mworker* w = calloc(1, sizeof *w);
  if (w) w->cq = calloc((size_t)depth, sizeof *w->cq);
  if (!w || !w->cq) {
    if (w) free(w);
    napi_throw_error(env, "ENOMEM", "MetaWorker: out of memory");
    return NULL;
  }
  w->depth = (uint32_t)depth;
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->work, NULL);
  w->owners = 1; /* the tsfn */

  napi_value results, stats, done, name;
  void* p;
  bool ok = typed(env, (size_t)depth * RES_WORDS * 4, napi_int32_array, 4, &results, &p, &w->res_ref);
  if (ok) w->res = (int32_t*)p;
  ok = ok && typed(env, (size_t)depth * STATS_PER_SLOT * STAT_WORDS * 8, napi_bigint64_array, 8, &stats, &p, &w->stats_ref);
  if (ok) w->stats = (int64_t*)p;
  ok = ok && typed(env, (size_t)depth * 4, napi_uint32_array, 4, &done, &p, &w->done_ref);
  ok = ok && napi_create_string_utf8(env, "tsnfs:MetaWorker", NAPI_AUTO_LENGTH, &name) == napi_ok &&
       napi_create_threadsafe_function(env, argv[2], NULL, name, 0, 1, w, on_tsfn_finalize, w, call_js, &w->tsfn) == napi_ok;
  if (!ok) {
    napi_ref* refs[3] = {&w->res_ref, &w->stats_ref, &w->done_ref};
    for (int i = 0; i < 3; i++)
      if (*refs[i]) napi_delete_reference(env, *refs[i]);
    mw_unref(w);
    tsnfs_throw_status(env, napi_generic_failure, "MetaWorker setup");
    return NULL;
  }
  napi_unref_threadsafe_function(env, w->tsfn);

  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 128 * 1024);
  int err = 0;
  for (int32_t i = 0; i < nthreads; i++) {
    err = pthread_create(&w->threads[i], &attr, worker_main, w);
    if (err != 0) break;
    w->started++;
  }
  pthread_attr_destroy(&attr);
  if (err != 0) {
    mw_join(w);
    mw_release(w);
    napi_throw_error(env, "EAGAIN", "MetaWorker: cannot start its threads");
    return NULL;
  }
  napi_value handle, obj;
  w->owners++;
  if (napi_create_external(env, w, on_handle_finalize, NULL, &handle) != napi_ok) {
    w->owners--;
    mw_join(w);
    mw_release(w);
    tsnfs_throw_status(env, napi_generic_failure, "MetaWorker handle");
    return NULL;
  }
  NAPI_CALL(env, napi_type_tag_object(env, handle, &MW_TAG));
  NAPI_CALL(env, napi_create_object(env, &obj));
  NAPI_CALL(env, napi_set_named_property(env, obj, "handle", handle));
  NAPI_CALL(env, napi_set_named_property(env, obj, "results", results));
  NAPI_CALL(env, napi_set_named_property(env, obj, "stats", stats));
  NAPI_CALL(env, napi_set_named_property(env, obj, "done", done));
  return obj;
}

/* A path argument copied into `dst` (NUL-terminated); false (thrown) when
 * it is not a string, too long, or holds a NUL. */
static bool path_arg(napi_env env, napi_value v, const char* name, char* dst, size_t* len) {
  return tsnfs_arg_string(env, v, name, dst, PATH_MAX, len);
}

/* With w->mu held: wake a sleeping thread for queued jobs, unless one is on
 * its way already. */
static void wake_locked(mworker* w) {
  if (w->head && w->idle > w->waking) {
    w->waking++;
    pthread_cond_signal(&w->work);
  }
}

/* metaSubmit(handle, slot, op, dir, target, fd, flags, mode, kick) -> 0 | -errno
 * CREATE and REMOVE: block 0 of the slot holds the expected directory.
 * CLOSE: only fd counts (dir and target are ignored). With kick=false no
 * thread is woken (a wake-up is a cross-CPU interrupt here): the caller
 * queues more, then calls metaKick once. Busy threads take the job anyway. */
static napi_value MetaSubmit(napi_env env, napi_callback_info info) {
  size_t argc = 9;
  napi_value argv[9];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 9) {
    napi_throw_type_error(env, "ERR_MISSING_ARGS", "metaSubmit takes 9 arguments");
    return NULL;
  }
  mworker* w = get_mw(env, argv[0]);
  if (!w) return NULL;
  int32_t slot, op, fd, flags, mode;
  if (!tsnfs_arg_int32(env, argv[1], "slot", 0, (int32_t)w->depth - 1, &slot)) return NULL;
  if (!tsnfs_arg_int32(env, argv[2], "op", MOP_CREATE, MOP_CLOSE, &op)) return NULL;
  if (!tsnfs_arg_int32(env, argv[5], "fd", -1, INT32_MAX, &fd)) return NULL;
  if (!tsnfs_arg_int32(env, argv[6], "flags", INT32_MIN, INT32_MAX, &flags)) return NULL;
  if (!tsnfs_arg_int32(env, argv[7], "mode", 0, 07777, &mode)) return NULL;
  bool kick;
  if (!tsnfs_arg_bool(env, argv[8], "kick", &kick)) return NULL;
  if (w->closed) return tsnfs_int(env, -ESHUTDOWN);
  mjob* j;
  if (op == MOP_CLOSE) {
    j = calloc(1, sizeof *j);
    if (!j) return tsnfs_int(env, -ENOMEM);
  } else {
    char dir[PATH_MAX], target[PATH_MAX];
    size_t dl, tl;
    if (!path_arg(env, argv[3], "dir", dir, &dl) || !path_arg(env, argv[4], "target", target, &tl)) return NULL;
    j = malloc(sizeof *j + dl + tl + 2);
    if (!j) return tsnfs_int(env, -ENOMEM);
    memset(j, 0, sizeof *j);
    j->dir = (char*)(j + 1);
    j->target = j->dir + dl + 1;
    memcpy(j->dir, dir, dl + 1);
    memcpy(j->target, target, tl + 1);
  }
  j->slot = (uint32_t)slot;
  j->op = op;
  j->fd = fd;
  j->flags = flags;
  j->mode = mode;
  pthread_mutex_lock(&w->mu);
  if (w->tail) w->tail->next = j;
  else w->head = j;
  w->tail = j;
  if (kick) wake_locked(w);
  pthread_mutex_unlock(&w->mu);
  w->submitted++;
  w->inflight++;
  if (!w->refd) {
    napi_ref_threadsafe_function(env, w->tsfn);
    w->refd = true;
  }
  return tsnfs_int(env, 0);
}

/* metaKick(handle): wake a thread for jobs queued without a kick. */
static napi_value MetaKick(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  mworker* w = get_mw(env, argv[0]);
  if (!w) return NULL;
  /* A thread that sleeps counted itself idle before it looked at the queue
   * last (both under the mutex, and the jobs were queued under it too):
   * no idle thread, no job left unseen. */
  if (__atomic_load_n(&w->idle, __ATOMIC_ACQUIRE) == 0) return NULL;
  pthread_mutex_lock(&w->mu);
  wake_locked(w);
  pthread_mutex_unlock(&w->mu);
  return NULL;
}

/* metaClose(handle): jobs still queued run, the threads exit and are joined. */
static napi_value MetaClose(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  mworker* w = get_mw(env, argv[0]);
  if (!w) return NULL;
  if (w->closed) return NULL;
  w->closed = true;
  mw_join(w);
  mw_release(w);
  return NULL;
}

bool tsnfs_init_metaops(napi_env env, napi_value exports) {
  return tsnfs_export_fn(env, exports, "metaCreate", MetaCreate) &&
         tsnfs_export_fn(env, exports, "metaSubmit", MetaSubmit) &&
         tsnfs_export_fn(env, exports, "metaKick", MetaKick) &&
         tsnfs_export_fn(env, exports, "metaClose", MetaClose);
}
