/*
 * IoEngine: a dedicated IO pool with its own threads and a FIFO queue.
 *
 * Why not the libuv threadpool: that pool is shared with DNS lookups, zlib,
 * crypto and every fs call in the process, and it is small (4 threads by
 * default). Write-back that must make progress to free memory cannot wait
 * behind a pbkdf2. So, like the loop block device, the engine owns its
 * workers: submitters append to a queue, and each worker runs the queue until
 * it is empty, then sleeps. A submission wakes one sleeping worker per
 * request queued (never a broadcast: a thundering herd); when every worker
 * is busy and requests wait, the pool grows, up to maxThreads (as io-wq
 * does), so IO that blocks on the device (O_DIRECT) keeps as many requests
 * in flight as were asked for. Workers mark themselves IO flushers
 * (PR_SET_IO_FLUSHER: PF_MEMALLOC_NOIO | PF_LOCAL_THROTTLE, the flags the
 * loop device sets on its workers) where the process may, so their
 * allocations do not recurse into IO and dirty throttling favours them over
 * the writers they are draining for.
 *
 * No allocation in the IO path: the request table, the submission ring and
 * the completion ring are sized to queueDepth when the engine is made. A
 * request is identified by its slot; the JS side owns the slot numbers and
 * never has more than queueDepth outstanding, so neither ring can overflow.
 *
 * Completions are batched: the first worker to complete into an empty
 * completion ring makes one napi_threadsafe_function call; when the JS
 * thread runs it, it takes every completion present at that moment, writes
 * (slot, result, partial) triples into a shared Int32Array and calls the JS
 * callback once with the count.
 *
 * Semantics of one request:
 *  - read: preadv2 once; a short read is returned as is.
 *  - write: pwritev2 until every byte is written; a short write is continued
 *    inside the engine, never reported complete. On error the result is
 *    -errno and `partial` says how many bytes did land first. A write may
 *    gather several buffers (engineSubmitv): one pwritev2 for all of them,
 *    so a 1 MiB write made of 64 KiB cache pages is one system call (and,
 *    with RWF_DONTCACHE, one writeback kick) instead of sixteen.
 *  - fsync / fdatasync.
 * Per-IO flags are RWF_* (RWF_DSYNC, RWF_SYNC, RWF_NOWAIT, RWF_DONTCACHE).
 * A kernel or file system without a flag answers -EOPNOTSUPP, which is
 * passed back for the caller to retry without it. The engine never splits
 * or realigns: misaligned O_DIRECT gets the kernel's -EINVAL.
 */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <linux/aio_abi.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef RWF_HIPRI
#define RWF_HIPRI 0x00000001
#endif
#ifndef RWF_DSYNC
#define RWF_DSYNC 0x00000002
#endif
#ifndef RWF_SYNC
#define RWF_SYNC 0x00000004
#endif
#ifndef RWF_NOWAIT
#define RWF_NOWAIT 0x00000008
#endif
#ifndef RWF_DONTCACHE
#define RWF_DONTCACHE 0x00000080 /* Linux 6.14: drop the page cache after the IO */
#endif
#ifndef PR_SET_IO_FLUSHER
#define PR_SET_IO_FLUSHER 57
#endif

#define RWF_ALLOWED (RWF_HIPRI | RWF_DSYNC | RWF_SYNC | RWF_NOWAIT | RWF_DONTCACHE)
/* The most one read or write moves on Linux (MAX_RW_COUNT); results fit int32. */
#define MAX_IO_BYTES 0x7ffff000u
#define MAX_DEPTH 65536
/* Buffers in one gathered write (the kernel's UIO_MAXIOV). */
#define MAX_IOV 1024
#define MAX_THREADS 256

enum { OP_READ = 0, OP_WRITE = 1, OP_FSYNC = 2, OP_FDATASYNC = 3 };

typedef struct {
  uint8_t* buf;
  size_t len;
  /* Writes: the buffers, `one` for a plain write or the slot's own array
   * (grown on the JS thread, kept for the slot's next gathered write). */
  struct iovec* iov;
  uint32_t iovcnt;
  uint32_t iovcap;
  struct iovec* iovmem;
  struct iovec one;
  int64_t pos;
  int32_t fd;
  int32_t op;
  int32_t rwf;
  int32_t result;  /* bytes, or -errno */
  int32_t partial; /* bytes written before an error */
  bool busy;
} io_req;

typedef struct engine {
  pthread_mutex_t mu;
  pthread_cond_t work;
  pthread_cond_t ready_cv;  /* a worker finished its setup */
  uint32_t ready;           /* workers past their setup */
  uint32_t depth;
  io_req* req;
  uint32_t* sq; /* slots waiting for a worker (FIFO) */
  uint32_t sq_head, sq_len;
  uint32_t* cq; /* slots completed, not yet delivered to JS */
  uint32_t cq_head, cq_len;
  pthread_t* threads;
  uint32_t nthreads;
  uint32_t max_threads;     /* the pool grows up to this while requests wait */
  uint32_t started;
  uint32_t running;        /* IOs inside a system call right now */
  uint32_t idle;           /* workers waiting for work */
  uint32_t waking;         /* of those, signalled and not yet running */
  uint32_t io_flushers;    /* workers that PR_SET_IO_FLUSHER accepted */
  int io_flusher_errno;    /* why not, when it refused */
  bool stopping;
  bool notify_pending;     /* a threadsafe call is queued and not yet run */
  /* Linux AIO for O_DIRECT reads, made on the first one: 0 not yet, 1 on,
   * -1 unavailable. JS-thread-only, like the context and reaper handles. */
  int aio_state;
  aio_context_t aio_ctx;
  pthread_t aio_reaper;
  uint64_t aio_submitted, aio_punted;
  /* JS-thread-only state below. */
  napi_env env;
  napi_threadsafe_function tsfn;
  napi_ref results;        /* Int32Array of 3 * depth: slot, result, partial */
  bool joined, released, tsfn_finalized, closed;
  bool refd;               /* tsfn keeps the loop alive (IO outstanding) */
  int owners;              /* the JS handle and the tsfn */
  uint32_t inflight, max_inflight, max_queued;
  uint64_t submitted, completed, batches, wakeups;
} engine;

static const napi_type_tag ENGINE_TAG = {0x74736e66696f656eULL, 0x67696e6500000001ULL};

static void engine_unref(engine* e) {
  if (--e->owners > 0) return;
  pthread_mutex_destroy(&e->mu);
  pthread_cond_destroy(&e->work);
  pthread_cond_destroy(&e->ready_cv);
  if (e->req)
    for (uint32_t i = 0; i < e->depth; i++) free(e->req[i].iovmem);
  free(e->req);
  free(e->sq);
  free(e->cq);
  free(e->threads);
  free(e);
}

static void aio_stop(engine* e);

/* Stop the workers and join them. They finish the IO they are doing; with
 * `discard` the requests still queued are dropped (teardown: nobody is left
 * to hear of them), otherwise they run first. */
static void engine_join(engine* e, bool discard) {
  if (e->joined) return;
  pthread_mutex_lock(&e->mu);
  e->stopping = true;
  if (discard) e->sq_len = 0;
  pthread_cond_broadcast(&e->work);
  pthread_mutex_unlock(&e->mu);
  for (uint32_t i = 0; i < e->started; i++) pthread_join(e->threads[i], NULL);
  aio_stop(e);
  e->joined = true;
}

/* With e->mu held: `slot` is complete; tell JS unless a call is on its way.
 * Drops and retakes the mutex around the call. */
static void complete_locked(engine* e, uint32_t slot) {
  e->cq[(e->cq_head + e->cq_len) % e->depth] = slot;
  e->cq_len++;
  if (!e->notify_pending) {
    e->notify_pending = true;
    pthread_mutex_unlock(&e->mu);
    /* Non-blocking and unbounded queue: never waits on the JS thread.
     * napi_closing during teardown is fine: nobody is left to tell. */
    napi_call_threadsafe_function(e->tsfn, NULL, napi_tsfn_nonblocking);
    pthread_mutex_lock(&e->mu);
  }
}

static void engine_release(engine* e) {
  if (e->released || e->tsfn_finalized) return;
  e->released = true;
  napi_release_threadsafe_function(e->tsfn, napi_tsfn_release);
}

static void run_io(io_req* r) {
  ssize_t n;
  r->partial = 0;
  switch (r->op) {
    case OP_READ: {
      struct iovec iov = {.iov_base = r->buf, .iov_len = r->len};
      do {
        n = preadv2(r->fd, &iov, 1, r->pos, r->rwf);
      } while (n < 0 && errno == EINTR);
      r->result = n < 0 ? -errno : (int32_t)n;
      return;
    }
    case OP_WRITE: {
      size_t done = 0;
      struct iovec* iov = r->iov;
      uint32_t cnt = r->iovcnt;
      while (done < r->len) {
        n = pwritev2(r->fd, iov, (int)cnt, r->pos + (int64_t)done, r->rwf);
        if (n < 0) {
          if (errno == EINTR) continue;
          r->result = -errno;
          r->partial = (int32_t)done;
          return;
        }
        if (n == 0) { /* no progress and no error: do not spin */
          r->result = -EIO;
          r->partial = (int32_t)done;
          return;
        }
        done += (size_t)n;
        /* Past the buffers written in full; into the one written in part. */
        size_t left = (size_t)n;
        while (cnt > 0 && left >= iov->iov_len) {
          left -= iov->iov_len;
          iov++;
          cnt--;
        }
        if (left > 0) {
          iov->iov_base = (uint8_t*)iov->iov_base + left;
          iov->iov_len -= left;
        }
      }
      r->result = (int32_t)done;
      return;
    }
    case OP_FSYNC:
    case OP_FDATASYNC: {
      int rc;
      do {
        rc = r->op == OP_FSYNC ? fsync(r->fd) : fdatasync(r->fd);
      } while (rc < 0 && errno == EINTR);
      r->result = rc < 0 ? -errno : 0;
      return;
    }
    default:
      r->result = -EINVAL;
  }
}

/* With e->mu held: wake one idle worker per queued request that no wake-up
 * covers yet. Not a broadcast: every worker woken for nothing costs a
 * context switch and a turn on the mutex (a thundering herd that, measured,
 * halved direct IO at 32 in flight). Busy workers take queued requests when
 * they finish, but a request that can block for the device is better
 * started now on an idle worker. */
static uint32_t wake_workers(engine* e) {
  uint32_t uncovered = e->sq_len > e->waking ? e->sq_len - e->waking : 0;
  uint32_t sleeping = e->idle > e->waking ? e->idle - e->waking : 0;
  uint32_t n = uncovered < sleeping ? uncovered : sleeping;
  for (uint32_t i = 0; i < n; i++) pthread_cond_signal(&e->work);
  e->waking += n;
  /* Requests left waiting for a busy worker: how many more workers to start. */
  uint32_t room = e->max_threads - e->started;
  uint32_t left = uncovered - n;
  return left < room ? left : room;
}

static void* worker_main(void* arg);

/* On the JS thread, without e->mu: `n` more workers (the pool grows while
 * requests wait and every worker is busy, as io-wq does, up to
 * max_threads; a worker stays until the engine closes). A failure to start
 * one is not an error: the queue still drains. */
static void grow_pool(engine* e, uint32_t n) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  for (uint32_t i = 0; i < n && e->started < e->max_threads && !e->stopping; i++) {
    if (pthread_create(&e->threads[e->started], &attr, worker_main, e) != 0) break;
    e->started++;
  }
  pthread_attr_destroy(&attr);
}

static void* worker_main(void* arg) {
  engine* e = (engine*)arg;
  /* Signals belong to the JS thread. */
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL);
  pthread_setname_np(pthread_self(), "tsnfs-io");
  int flusher = prctl(PR_SET_IO_FLUSHER, 1, 0, 0, 0);
  int flusher_errno = flusher < 0 ? errno : 0;

  pthread_mutex_lock(&e->mu);
  if (flusher == 0) e->io_flushers++;
  else e->io_flusher_errno = flusher_errno;
  e->ready++;
  pthread_cond_signal(&e->ready_cv);
  for (;;) {
    while (e->sq_len == 0 && !e->stopping) {
      e->idle++;
      pthread_cond_wait(&e->work, &e->mu);
      e->idle--;
      if (e->waking > 0) e->waking--;
    }
    if (e->sq_len == 0) break; /* stopping, and the queue is empty */
    uint32_t slot = e->sq[e->sq_head];
    e->sq_head = (e->sq_head + 1) % e->depth;
    e->sq_len--;
    e->running++;
    pthread_mutex_unlock(&e->mu);

    run_io(&e->req[slot]);

    pthread_mutex_lock(&e->mu);
    e->running--;
    complete_locked(e, slot);
  }
  pthread_mutex_unlock(&e->mu);
  return NULL;
}

/* ------------------------------------------------------------------ AIO
 * O_DIRECT reads go to the device asynchronously (Linux AIO, as fio's
 * libaio): a worker blocked per read in flight costs two context switches
 * and a wake-up per IO, which on a small machine halves what the device
 * gives at 32 in flight. The JS thread submits with RWF_NOWAIT, so
 * io_submit never waits (a full device queue, a lock, an extent to read
 * answer EAGAIN instead); one reaper thread collects completions into the
 * same completion ring as the workers. A read refused with EAGAIN goes to
 * the workers, which may block. Buffered IO and writes never come here:
 * AIO on them runs synchronously inside io_submit. */

static void* aio_main(void* arg) {
  engine* e = (engine*)arg;
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL);
  pthread_setname_np(pthread_self(), "tsnfs-aio");
  struct io_event ev[64];
  for (;;) {
    long n = syscall(SYS_io_getevents, e->aio_ctx, 1, 64, ev, NULL);
    if (n < 0) {
      if (errno == EINTR) continue;
      break; /* io_destroy: the engine is stopping */
    }
    pthread_mutex_lock(&e->mu);
    for (long i = 0; i < n; i++) {
      uint32_t slot = (uint32_t)ev[i].data;
      io_req* r = &e->req[slot];
      if (ev[i].res == -EAGAIN) {
        /* It would have blocked: a worker does it, waiting as needed. */
        e->sq[(e->sq_head + e->sq_len) % e->depth] = slot;
        e->sq_len++;
        e->aio_punted++;
        wake_workers(e);
        continue;
      }
      r->result = (int32_t)ev[i].res; /* bytes, or -errno */
      r->partial = 0;
      complete_locked(e, slot);
    }
    pthread_mutex_unlock(&e->mu);
  }
  return NULL;
}

/* On the JS thread: make the AIO context and its reaper (once). */
static bool aio_start(engine* e) {
  if (e->aio_state != 0) return e->aio_state > 0;
  e->aio_state = -1;
  aio_context_t ctx = 0;
  if (syscall(SYS_io_setup, e->depth, &ctx) < 0) return false;
  e->aio_ctx = ctx;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  int err = pthread_create(&e->aio_reaper, &attr, aio_main, e);
  pthread_attr_destroy(&attr);
  if (err != 0) {
    syscall(SYS_io_destroy, ctx);
    return false;
  }
  e->aio_state = 1;
  return true;
}

/* io_destroy waits for the reads in flight and wakes the reaper, which
 * then finds the context gone and exits. */
static void aio_stop(engine* e) {
  if (e->aio_state <= 0) return;
  syscall(SYS_io_destroy, e->aio_ctx);
  pthread_join(e->aio_reaper, NULL);
  e->aio_state = -1;
}

/* On the JS thread: start `r` (slot `slot`) as an async O_DIRECT read if it
 * is one. False: not one, or AIO refused it; the workers take it. */
static bool aio_try_read(engine* e, uint32_t slot, io_req* r) {
  if (r->op != OP_READ || e->aio_state < 0) return false;
  int fl = fcntl(r->fd, F_GETFL);
  if (fl < 0 || !(fl & O_DIRECT) || !aio_start(e)) return false;
  struct iocb cb;
  memset(&cb, 0, sizeof cb);
  cb.aio_data = slot;
  cb.aio_lio_opcode = IOCB_CMD_PREAD;
  cb.aio_fildes = (uint32_t)r->fd;
  cb.aio_buf = (uint64_t)(uintptr_t)r->buf;
  cb.aio_nbytes = r->len;
  cb.aio_offset = r->pos;
  cb.aio_rw_flags = r->rwf | RWF_NOWAIT;
  struct iocb* list[1] = {&cb};
  long n;
  do {
    n = syscall(SYS_io_submit, e->aio_ctx, 1, list);
  } while (n < 0 && errno == EINTR);
  if (n != 1) return false;
  e->aio_submitted++;
  return true;
}

/* On the JS thread: deliver every completion present now, in one call. */
static void call_js(napi_env env, napi_value js_cb, void* context, void* data) {
  (void)data;
  engine* e = (engine*)context;
  if (env == NULL || js_cb == NULL) return; /* being torn down */
  napi_value arr;
  void* raw = NULL;
  napi_typedarray_type type;
  size_t length, offset;
  napi_value ab;
  if (napi_get_reference_value(env, e->results, &arr) != napi_ok || arr == NULL ||
      napi_get_typedarray_info(env, arr, &type, &length, &raw, &ab, &offset) != napi_ok)
    return;
  int32_t* out = (int32_t*)raw;
  uint32_t n = 0;
  pthread_mutex_lock(&e->mu);
  while (e->cq_len > 0) {
    uint32_t slot = e->cq[e->cq_head];
    e->cq_head = (e->cq_head + 1) % e->depth;
    e->cq_len--;
    io_req* r = &e->req[slot];
    out[3 * n] = (int32_t)slot;
    out[3 * n + 1] = r->result;
    out[3 * n + 2] = r->partial;
    r->busy = false;
    r->buf = NULL;
    n++;
  }
  e->notify_pending = false;
  pthread_mutex_unlock(&e->mu);
  e->wakeups++;
  if (n > 0) {
    e->batches++;
    e->completed += n;
    e->inflight -= n;
    napi_value recv, argv[1], result;
    napi_get_undefined(env, &recv);
    napi_create_uint32(env, n, &argv[0]);
    napi_status s = napi_call_function(env, recv, js_cb, 1, argv, &result);
    if (s == napi_pending_exception) {
      napi_value err;
      if (napi_get_and_clear_last_exception(env, &err) == napi_ok) napi_fatal_exception(env, err);
    }
  }
  /* Idle: stop holding the event loop open. */
  if (e->inflight == 0 && e->refd && !e->released && !e->tsfn_finalized) {
    napi_unref_threadsafe_function(env, e->tsfn);
    e->refd = false;
  }
}

static void on_tsfn_finalize(napi_env env, void* finalize_data, void* hint) {
  (void)hint;
  engine* e = (engine*)finalize_data;
  e->tsfn_finalized = true;
  engine_join(e, true); /* the workers use the tsfn and the request table */
  if (e->results) {
    napi_delete_reference(env, e->results);
    e->results = NULL;
  }
  engine_unref(e);
}

static void on_handle_finalize(napi_env env, void* data, void* hint) {
  (void)env;
  (void)hint;
  engine* e = (engine*)data;
  e->closed = true;
  engine_join(e, true);
  engine_release(e);
  engine_unref(e);
}

static engine* get_engine(napi_env env, napi_value v) {
  bool ok = false;
  void* p = NULL;
  if (napi_check_object_type_tag(env, v, &ENGINE_TAG, &ok) != napi_ok || !ok ||
      napi_get_value_external(env, v, &p) != napi_ok || p == NULL) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "not an IoEngine handle");
    return NULL;
  }
  return (engine*)p;
}

/* engineCreate(threads, queueDepth, callback(count)[, maxThreads])
 *   -> { handle, results: Int32Array(3 * queueDepth), threads }
 * `threads` start now; the pool grows up to maxThreads (default: threads)
 * while requests wait for a worker. */
static napi_value EngineCreate(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t nthreads, depth, maxthreads;
  if (!tsnfs_arg_int32(env, argv[0], "threads", 1, MAX_THREADS, &nthreads)) return NULL;
  if (!tsnfs_arg_int32(env, argv[1], "queueDepth", 1, MAX_DEPTH, &depth)) return NULL;
  maxthreads = nthreads;
  if (argc >= 4) {
    napi_valuetype mt;
    NAPI_CALL(env, napi_typeof(env, argv[3], &mt));
    if (mt != napi_undefined && !tsnfs_arg_int32(env, argv[3], "maxThreads", nthreads, MAX_THREADS, &maxthreads)) return NULL;
  }
  napi_valuetype t;
  NAPI_CALL(env, napi_typeof(env, argv[2], &t));
  if (t != napi_function) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "callback must be a function");
    return NULL;
  }

  engine* e = calloc(1, sizeof *e);
  if (e) {
    e->req = calloc((size_t)depth, sizeof *e->req);
    e->sq = calloc((size_t)depth, sizeof *e->sq);
    e->cq = calloc((size_t)depth, sizeof *e->cq);
    e->threads = calloc((size_t)maxthreads, sizeof *e->threads);
  }
  if (!e || !e->req || !e->sq || !e->cq || !e->threads) {
    if (e) {
      free(e->req);
      free(e->sq);
      free(e->cq);
      free(e->threads);
      free(e);
    }
    napi_throw_error(env, "ENOMEM", "IoEngine: out of memory");
    return NULL;
  }
  e->depth = (uint32_t)depth;
  e->nthreads = (uint32_t)nthreads;
  e->max_threads = (uint32_t)maxthreads;
  e->env = env;
  pthread_mutex_init(&e->mu, NULL);
  pthread_cond_init(&e->work, NULL);
  pthread_cond_init(&e->ready_cv, NULL);
  e->owners = 1; /* the tsfn, once made; the handle adds itself below */

  napi_value ab, results, name;
  if (napi_create_arraybuffer(env, (size_t)depth * 3 * sizeof(int32_t), NULL, &ab) != napi_ok ||
      napi_create_typedarray(env, napi_int32_array, (size_t)depth * 3, ab, 0, &results) != napi_ok ||
      napi_create_reference(env, results, 1, &e->results) != napi_ok ||
      napi_create_string_utf8(env, "tsnfs:IoEngine", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_threadsafe_function(env, argv[2], NULL, name, 0, 1, e, on_tsfn_finalize, e, call_js, &e->tsfn) != napi_ok) {
    if (e->results) napi_delete_reference(env, e->results);
    engine_unref(e); /* nothing else holds it yet */
    tsnfs_throw_status(env, napi_generic_failure, "IoEngine setup");
    return NULL;
  }
  /* From here the tsfn owns one reference; its finalizer drops it. */
  napi_unref_threadsafe_function(env, e->tsfn);

  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  int err = 0;
  for (int32_t i = 0; i < nthreads; i++) {
    err = pthread_create(&e->threads[i], &attr, worker_main, e);
    if (err != 0) break;
    e->started++;
  }
  pthread_attr_destroy(&attr);
  /* Wait until every worker is set up (signals blocked, IO flusher), so the
   * engine is complete when the constructor returns. Microseconds. */
  pthread_mutex_lock(&e->mu);
  while (e->ready < e->started) pthread_cond_wait(&e->ready_cv, &e->mu);
  pthread_mutex_unlock(&e->mu);
  if (err != 0) {
    engine_join(e, true);
    engine_release(e); /* the tsfn finalizer frees the engine */
    napi_throw_error(env, "EAGAIN", "IoEngine: cannot start worker threads");
    return NULL;
  }

  napi_value handle, obj;
  e->owners++;
  if (napi_create_external(env, e, on_handle_finalize, NULL, &handle) != napi_ok) {
    e->owners--;
    engine_join(e, true);
    engine_release(e);
    tsnfs_throw_status(env, napi_generic_failure, "IoEngine handle");
    return NULL;
  }
  NAPI_CALL(env, napi_type_tag_object(env, handle, &ENGINE_TAG));
  NAPI_CALL(env, napi_create_object(env, &obj));
  NAPI_CALL(env, napi_set_named_property(env, obj, "handle", handle));
  NAPI_CALL(env, napi_set_named_property(env, obj, "results", results));
  if (!tsnfs_set_int(env, obj, "threads", e->started)) return NULL;
  return obj;
}

/* On the JS thread: complete the request in `slot` (its buffers are set)
 * and hand it to AIO or the workers. */
static void queue_request(napi_env env, engine* e, uint32_t slot, io_req* r, int32_t op, int32_t fd,
                          int64_t position, int32_t rwf, bool kick) {
  r->pos = position;
  r->fd = fd;
  r->op = op;
  r->rwf = rwf;
  r->result = 0;
  r->partial = 0;
  r->busy = true;
  if (!aio_try_read(e, slot, r)) {
    pthread_mutex_lock(&e->mu);
    e->sq[(e->sq_head + e->sq_len) % e->depth] = slot;
    e->sq_len++;
    if (e->sq_len > e->max_queued) e->max_queued = e->sq_len;
    uint32_t grow = kick ? wake_workers(e) : 0;
    pthread_mutex_unlock(&e->mu);
    if (grow > 0) grow_pool(e, grow);
  }
  e->submitted++;
  e->inflight++;
  if (e->inflight > e->max_inflight) e->max_inflight = e->inflight;
  if (!e->refd) {
    napi_ref_threadsafe_function(env, e->tsfn);
    e->refd = true;
  }
}

/* engineSubmit(handle, slot, op, fd, buffer|null, bufOffset, length, position, rwf, kick)
 *   -> 0 | -errno
 * Queues one request in `slot`. With kick=false the workers are not woken
 * (a plug: the caller is about to queue more); the last of a batch passes
 * kick=true. Busy workers pick up plugged requests anyway. */
static napi_value EngineSubmit(napi_env env, napi_callback_info info) {
  size_t argc = 10;
  napi_value argv[10];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 10) {
    napi_throw_type_error(env, "ERR_MISSING_ARGS", "engineSubmit takes 10 arguments");
    return NULL;
  }
  engine* e = get_engine(env, argv[0]);
  if (!e) return NULL;
  int32_t slot, op, fd, rwf;
  int64_t bufoff, length, position;
  bool kick;
  if (!tsnfs_arg_int32(env, argv[1], "slot", 0, (int32_t)e->depth - 1, &slot) ||
      !tsnfs_arg_int32(env, argv[2], "op", OP_READ, OP_FDATASYNC, &op) ||
      !tsnfs_arg_int32(env, argv[3], "fd", 0, INT32_MAX, &fd) ||
      !tsnfs_arg_int64(env, argv[5], "bufOffset", 0, INT64_MAX, &bufoff) ||
      !tsnfs_arg_int64(env, argv[6], "length", 0, MAX_IO_BYTES, &length) ||
      !tsnfs_arg_int64(env, argv[7], "position", 0, INT64_MAX, &position) ||
      !tsnfs_arg_int32(env, argv[8], "rwf", 0, INT32_MAX, &rwf) ||
      !tsnfs_arg_bool(env, argv[9], "kick", &kick))
    return NULL;
  if (rwf & ~RWF_ALLOWED) return tsnfs_int(env, -EINVAL);
  if (e->closed || e->released || e->joined) return tsnfs_int(env, -ESHUTDOWN);
  io_req* r = &e->req[slot];
  if (r->busy) return tsnfs_int(env, -EBUSY);

  uint8_t* data = NULL;
  if (op == OP_READ || op == OP_WRITE) {
    size_t cap;
    if (!tsnfs_arg_bytes(env, argv[4], "buffer", &data, &cap)) return NULL;
    if ((uint64_t)bufoff > cap || (uint64_t)length > cap - (size_t)bufoff) {
      napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "bufOffset + length is beyond the buffer");
      return NULL;
    }
    data += bufoff;
  }
  r->buf = data;
  r->len = (size_t)length;
  r->one.iov_base = data;
  r->one.iov_len = (size_t)length;
  r->iov = &r->one;
  r->iovcnt = 1;
  queue_request(env, e, (uint32_t)slot, r, op, fd, position, rwf, kick);
  return tsnfs_int(env, 0);
}

/* engineSubmitv(handle, slot, fd, buffers, position, rwf, kick) -> 0 | -errno
 * Queues one write of the concatenation of `buffers` (an array of at most
 * MAX_IOV Uint8Arrays, MAX_IO_BYTES in all) at `position`, as one pwritev2
 * (continued while short). The caller keeps the buffers alive and unchanged
 * until the completion. */
static napi_value EngineSubmitv(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 7) {
    napi_throw_type_error(env, "ERR_MISSING_ARGS", "engineSubmitv takes 7 arguments");
    return NULL;
  }
  engine* e = get_engine(env, argv[0]);
  if (!e) return NULL;
  int32_t slot, fd, rwf;
  int64_t position;
  bool kick, is_array = false;
  uint32_t count = 0;
  if (!tsnfs_arg_int32(env, argv[1], "slot", 0, (int32_t)e->depth - 1, &slot) ||
      !tsnfs_arg_int32(env, argv[2], "fd", 0, INT32_MAX, &fd) ||
      !tsnfs_arg_int64(env, argv[4], "position", 0, INT64_MAX, &position) ||
      !tsnfs_arg_int32(env, argv[5], "rwf", 0, INT32_MAX, &rwf) ||
      !tsnfs_arg_bool(env, argv[6], "kick", &kick))
    return NULL;
  if (napi_is_array(env, argv[3], &is_array) != napi_ok || !is_array || napi_get_array_length(env, argv[3], &count) != napi_ok ||
      count < 1 || count > MAX_IOV) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "buffers must be an array of 1 to 1024 Uint8Arrays");
    return NULL;
  }
  if (rwf & ~RWF_ALLOWED) return tsnfs_int(env, -EINVAL);
  if (e->closed || e->released || e->joined) return tsnfs_int(env, -ESHUTDOWN);
  io_req* r = &e->req[slot];
  if (r->busy) return tsnfs_int(env, -EBUSY);
  if (r->iovcap < count) {
    struct iovec* grown = realloc(r->iovmem, (size_t)count * sizeof *grown);
    if (!grown) return tsnfs_int(env, -ENOMEM);
    r->iovmem = grown;
    r->iovcap = count;
  }
  uint64_t total = 0;
  uint32_t used = 0;
  for (uint32_t i = 0; i < count; i++) {
    napi_value item;
    uint8_t* data;
    size_t len;
    NAPI_CALL(env, napi_get_element(env, argv[3], i, &item));
    if (!tsnfs_arg_bytes(env, item, "buffers[i]", &data, &len)) return NULL;
    if (len == 0) continue; /* nothing to gather; an empty iovec would read as no progress */
    total += len;
    if (total > MAX_IO_BYTES) {
      napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "buffers hold more than one write may move");
      return NULL;
    }
    r->iovmem[used].iov_base = data;
    r->iovmem[used].iov_len = len;
    used++;
  }
  r->buf = used > 0 ? (uint8_t*)r->iovmem[0].iov_base : NULL;
  r->len = (size_t)total;
  r->iov = r->iovmem;
  r->iovcnt = used;
  queue_request(env, e, (uint32_t)slot, r, OP_WRITE, fd, position, rwf, kick);
  return tsnfs_int(env, 0);
}

/* engineKick(handle): wake workers for plugged requests. */
static napi_value EngineKick(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  engine* e = get_engine(env, argv[0]);
  if (!e) return NULL;
  pthread_mutex_lock(&e->mu);
  uint32_t grow = wake_workers(e);
  pthread_mutex_unlock(&e->mu);
  if (grow > 0) grow_pool(e, grow);
  return NULL;
}

static napi_value EngineStats(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  engine* e = get_engine(env, argv[0]);
  if (!e) return NULL;
  pthread_mutex_lock(&e->mu);
  uint32_t queued = e->sq_len, running = e->running, max_queued = e->max_queued, flushers = e->io_flushers;
  int flusher_errno = e->io_flusher_errno;
  uint64_t aio_punted = e->aio_punted;
  pthread_mutex_unlock(&e->mu);
  napi_value obj;
  NAPI_CALL(env, napi_create_object(env, &obj));
  if (!tsnfs_set_int(env, obj, "submitted", (int64_t)e->submitted) ||
      !tsnfs_set_int(env, obj, "completed", (int64_t)e->completed) ||
      !tsnfs_set_int(env, obj, "inFlight", e->inflight) || !tsnfs_set_int(env, obj, "queued", queued) ||
      !tsnfs_set_int(env, obj, "running", running) || !tsnfs_set_int(env, obj, "maxInFlight", e->max_inflight) ||
      !tsnfs_set_int(env, obj, "maxQueued", max_queued) || !tsnfs_set_int(env, obj, "batches", (int64_t)e->batches) ||
      !tsnfs_set_int(env, obj, "wakeups", (int64_t)e->wakeups) || !tsnfs_set_int(env, obj, "threads", e->started) ||
      !tsnfs_set_int(env, obj, "ioFlusherThreads", flushers) ||
      !tsnfs_set_int(env, obj, "ioFlusherErrno", -flusher_errno) ||
      !tsnfs_set_int(env, obj, "aioReads", (int64_t)e->aio_submitted) ||
      !tsnfs_set_int(env, obj, "aioPunted", (int64_t)aio_punted))
    return NULL;
  return obj;
}

/* engineClose(handle): the caller has waited for in-flight IO; workers drain
 * whatever is still queued, exit and are joined; the tsfn is released. */
static napi_value EngineClose(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  engine* e = get_engine(env, argv[0]);
  if (!e) return NULL;
  if (e->closed) return NULL;
  e->closed = true;
  engine_join(e, false);
  engine_release(e);
  return NULL;
}

/* A number that is an integer in [lo, hi], read without a typeof call
 * (false, nothing thrown, for anything else). */
static bool plain_int(napi_env env, napi_value v, int64_t lo, int64_t hi, int64_t* out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || !(d >= (double)lo && d <= (double)hi && d <= 9007199254740991.0)) return false;
  int64_t i = (int64_t)d;
  if ((double)i != d) return false;
  *out = i;
  return true;
}

/* readNowait(fd, buffer, bufOffset, length, position) -> bytes | -errno
 * One preadv2 with RWF_NOWAIT on the calling (JS) thread: a read served
 * from the page cache without a hand-off to a worker, for the cost of a copy.
 * It never waits for the device: a page not cached (or locked for IO)
 * answers -EAGAIN, or the bytes up to it (a short read), and the caller
 * sends the rest to the engine. Refused (-EOPNOTSUPP) on an O_DIRECT
 * descriptor, where RWF_NOWAIT only avoids lock waits and the read still
 * waits for the device; file systems without non-blocking buffered reads
 * answer -EOPNOTSUPP too. */
static napi_value read_nowait(napi_env env, napi_callback_info info, bool check_direct) {
  size_t argc = 5;
  napi_value argv[5];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  /* On the hot path of every cached read: plain getters, no typeof round
   * trips. Anything unusual takes the full checks, which throw. */
  int32_t fd;
  int64_t bufoff, length, position;
  uint8_t* data = NULL;
  size_t cap = 0;
  napi_typedarray_type type;
  if (argc < 5 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0 ||
      !plain_int(env, argv[2], 0, INT64_MAX, &bufoff) || !plain_int(env, argv[3], 0, MAX_IO_BYTES, &length) ||
      !plain_int(env, argv[4], 0, INT64_MAX, &position) ||
      napi_get_typedarray_info(env, argv[1], &type, &cap, (void**)&data, NULL, NULL) != napi_ok || type != napi_uint8_array) {
    if (argc < 5) {
      napi_throw_type_error(env, "ERR_MISSING_ARGS", "readNowait takes 5 arguments");
      return NULL;
    }
    if (!tsnfs_arg_int32(env, argv[0], "fd", 0, INT32_MAX, &fd) || !tsnfs_arg_bytes(env, argv[1], "buffer", &data, &cap) ||
        !tsnfs_arg_int64(env, argv[2], "bufOffset", 0, INT64_MAX, &bufoff) ||
        !tsnfs_arg_int64(env, argv[3], "length", 0, MAX_IO_BYTES, &length) ||
        !tsnfs_arg_int64(env, argv[4], "position", 0, INT64_MAX, &position))
      return NULL;
  }
  if ((uint64_t)bufoff > cap || (uint64_t)length > cap - (size_t)bufoff) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "bufOffset + length is beyond the buffer");
    return NULL;
  }
  if (check_direct) {
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0) return tsnfs_int(env, -errno);
    if (fl & O_DIRECT) return tsnfs_int(env, -EOPNOTSUPP);
  }
  struct iovec iov = {.iov_base = data + bufoff, .iov_len = (size_t)length};
  ssize_t n;
  do {
    n = preadv2(fd, &iov, 1, position, RWF_NOWAIT);
  } while (n < 0 && errno == EINTR);
  return tsnfs_int(env, n < 0 ? -errno : (int64_t)n);
}

static napi_value ReadNowait(napi_env env, napi_callback_info info) {
  return read_nowait(env, info, true);
}

/* readNowaitBuffered(fd, buffer, bufOffset, length, position): readNowait
 * without the F_GETFL check, for callers that own the descriptor's flags and
 * know O_DIRECT is off (a tenth of a cached 4 KiB read's time). */
static napi_value ReadNowaitBuffered(napi_env env, napi_callback_info info) {
  return read_nowait(env, info, false);
}

bool tsnfs_init_engine(napi_env env, napi_value exports) {
  napi_value rwf;
  if (napi_create_object(env, &rwf) != napi_ok) return false;
  return tsnfs_export_fn(env, exports, "engineCreate", EngineCreate) &&
         tsnfs_export_fn(env, exports, "engineSubmit", EngineSubmit) &&
         tsnfs_export_fn(env, exports, "engineSubmitv", EngineSubmitv) &&
         tsnfs_set_int(env, exports, "maxIov", MAX_IOV) &&
         tsnfs_export_fn(env, exports, "engineKick", EngineKick) &&
         tsnfs_export_fn(env, exports, "engineStats", EngineStats) &&
         tsnfs_export_fn(env, exports, "engineClose", EngineClose) &&
         tsnfs_export_fn(env, exports, "readNowait", ReadNowait) &&
         tsnfs_export_fn(env, exports, "readNowaitBuffered", ReadNowaitBuffered) && tsnfs_set_int(env, rwf, "HIPRI", RWF_HIPRI) &&
         tsnfs_set_int(env, rwf, "DSYNC", RWF_DSYNC) && tsnfs_set_int(env, rwf, "SYNC", RWF_SYNC) &&
         tsnfs_set_int(env, rwf, "NOWAIT", RWF_NOWAIT) && tsnfs_set_int(env, rwf, "DONTCACHE", RWF_DONTCACHE) &&
         napi_set_named_property(env, exports, "RWF", rwf) == napi_ok &&
         tsnfs_set_int(env, exports, "maxIoBytes", MAX_IO_BYTES);
}
