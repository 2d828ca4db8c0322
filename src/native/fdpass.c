/*
 * Unix sockets that carry descriptors (SCM_RIGHTS) and tell who is on the
 * other end (SO_PEERCRED).
 *
 * The sockets are SOCK_SEQPACKET: connection-oriented like a stream (accept,
 * EOF, peer credentials) but each sendmsg is one record, delivered whole with
 * the descriptors sent alongside it. That makes framing the kernel's job: a
 * message is never split or glued to the next, and its descriptors cannot
 * drift to another message.
 *
 * Every call here is non-blocking (sockets are created O_NONBLOCK and calls
 * pass MSG_DONTWAIT); -EAGAIN means "wait for the poller". Readiness comes
 * from poller.c, so JavaScript never blocks on a socket.
 */
#include "common.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* The kernel's limit on descriptors per SCM_RIGHTS message (SCM_MAX_FD). */
#define TSNFS_MAX_FDS 253

static int fill_addr(const char* path, size_t len, struct sockaddr_un* sa, socklen_t* salen) {
  memset(sa, 0, sizeof *sa);
  sa->sun_family = AF_UNIX;
  if (len == 0) return -EINVAL;
  if (len >= sizeof sa->sun_path) return -ENAMETOOLONG;
  memcpy(sa->sun_path, path, len);
  *salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
  return 0;
}

static int new_socket(void) {
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  return fd < 0 ? -errno : fd;
}

/* unixListen(path, backlog) -> fd | -errno */
static napi_value UnixListen(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char path[4096]; /* PATH_MAX; longer than sun_path answers -ENAMETOOLONG */
  size_t len;
  int32_t backlog;
  if (!tsnfs_arg_string(env, argv[0], "path", path, sizeof path, &len)) return NULL;
  if (!tsnfs_arg_int32(env, argv[1], "backlog", 1, 65535, &backlog)) return NULL;
  struct sockaddr_un sa;
  socklen_t salen;
  int rc = fill_addr(path, len, &sa, &salen);
  if (rc < 0) return tsnfs_int(env, rc);
  int fd = new_socket();
  if (fd < 0) return tsnfs_int(env, fd);
  if (bind(fd, (struct sockaddr*)&sa, salen) < 0 || listen(fd, backlog) < 0) {
    rc = -errno;
    close(fd);
    return tsnfs_int(env, rc);
  }
  return tsnfs_int(env, fd);
}

/* unixConnect(path) -> fd | -errno. A Unix socket connect either completes at
 * once or fails; -EAGAIN means the listener's backlog is full (retry later). */
static napi_value UnixConnect(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char path[4096]; /* PATH_MAX; longer than sun_path answers -ENAMETOOLONG */
  size_t len;
  if (!tsnfs_arg_string(env, argv[0], "path", path, sizeof path, &len)) return NULL;
  struct sockaddr_un sa;
  socklen_t salen;
  int rc = fill_addr(path, len, &sa, &salen);
  if (rc < 0) return tsnfs_int(env, rc);
  int fd = new_socket();
  if (fd < 0) return tsnfs_int(env, fd);
  do {
    rc = connect(fd, (struct sockaddr*)&sa, salen);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) {
    rc = -errno;
    close(fd);
    return tsnfs_int(env, rc);
  }
  return tsnfs_int(env, fd);
}

/* unixAccept(listenFd) -> fd | -errno (-EAGAIN: nobody waiting) */
static napi_value UnixAccept(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t lfd;
  if (!tsnfs_arg_int32(env, argv[0], "fd", 0, INT32_MAX, &lfd)) return NULL;
  int fd;
  do {
    fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  return tsnfs_int(env, fd < 0 ? -errno : fd);
}

/* sendMsg(fd, data, fds: number[] | undefined) -> bytes | -errno
 * One record; the descriptors travel with it. The kernel takes its own
 * references at send time, so the caller may close its copies on return. */
static napi_value SendMsg(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  uint8_t* data;
  size_t len;
  if (!tsnfs_arg_int32(env, argv[0], "fd", 0, INT32_MAX, &fd)) return NULL;
  if (!tsnfs_arg_bytes(env, argv[1], "data", &data, &len)) return NULL;
  if (len == 0) {
    /* A zero-length record would read as end-of-file on the other side. */
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "data must not be empty");
    return NULL;
  }
  int fds[TSNFS_MAX_FDS];
  uint32_t nfds = 0;
  napi_valuetype t = napi_undefined;
  if (argc >= 3) NAPI_CALL(env, napi_typeof(env, argv[2], &t));
  if (t != napi_undefined && t != napi_null) {
    bool is_array = false;
    NAPI_CALL(env, napi_is_array(env, argv[2], &is_array));
    if (!is_array) {
      napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "fds must be an array of descriptors");
      return NULL;
    }
    NAPI_CALL(env, napi_get_array_length(env, argv[2], &nfds));
    if (nfds > TSNFS_MAX_FDS) {
      napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "at most 253 descriptors per message");
      return NULL;
    }
    for (uint32_t i = 0; i < nfds; i++) {
      napi_value e;
      int32_t v;
      NAPI_CALL(env, napi_get_element(env, argv[2], i, &e));
      if (!tsnfs_arg_int32(env, e, "fds[i]", 0, INT32_MAX, &v)) return NULL;
      fds[i] = v;
    }
  }
  struct iovec iov = {.iov_base = data, .iov_len = len};
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(int) * TSNFS_MAX_FDS)];
  } control;
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (nfds > 0) {
    memset(&control, 0, sizeof control);
    msg.msg_control = control.buf;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
  }
  ssize_t n;
  do {
    n = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  return tsnfs_int(env, n < 0 ? -errno : n);
}

/* recvMsg(fd, data: Uint8Array, fds: Int32Array)
 *   -> { bytes, nfds, truncated, fdsTruncated } | -errno (-EAGAIN: nothing yet)
 * bytes == 0 is end-of-file (empty records are never sent). Received
 * descriptors are close-on-exec (MSG_CMSG_CLOEXEC) and written to `fds`;
 * the caller owns them from here on, including on truncation. */
static napi_value RecvMsg(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  uint8_t* data;
  size_t cap;
  uint8_t* fdbytes;
  size_t fdcap;
  if (!tsnfs_arg_int32(env, argv[0], "fd", 0, INT32_MAX, &fd)) return NULL;
  if (!tsnfs_arg_bytes(env, argv[1], "data", &data, &cap)) return NULL;
  if (!tsnfs_arg_bytes(env, argv[2], "fds", &fdbytes, &fdcap)) return NULL;
  if (cap == 0) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "data must not be empty");
    return NULL;
  }
  if ((uintptr_t)fdbytes % sizeof(int32_t) != 0) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "fds must be an Int32Array");
    return NULL;
  }
  size_t maxfds = fdcap / sizeof(int32_t);
  if (maxfds > TSNFS_MAX_FDS) maxfds = TSNFS_MAX_FDS;
  int32_t* outfds = (int32_t*)fdbytes;

  struct iovec iov = {.iov_base = data, .iov_len = cap};
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(int) * TSNFS_MAX_FDS)];
  } control;
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (maxfds > 0) {
    msg.msg_control = control.buf;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * maxfds);
  }
  ssize_t n;
  do {
    n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return tsnfs_int(env, -errno);

  size_t got = 0;
  bool dropped = false;
  for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const unsigned char* p = CMSG_DATA(c);
    for (size_t i = 0; i < count; i++) {
      int v;
      memcpy(&v, p + i * sizeof(int), sizeof v);
      if (got < maxfds) outfds[got++] = v;
      else {
        /* CMSG_SPACE rounds up, so the kernel may fit one more than asked. */
        close(v);
        dropped = true;
      }
    }
  }
  napi_value obj;
  NAPI_CALL(env, napi_create_object(env, &obj));
  if (!tsnfs_set_int(env, obj, "bytes", n)) return NULL;
  if (!tsnfs_set_int(env, obj, "nfds", (int64_t)got)) return NULL;
  NAPI_CALL(env, napi_set_named_property(env, obj, "truncated", tsnfs_bool(env, (msg.msg_flags & MSG_TRUNC) != 0)));
  NAPI_CALL(env, napi_set_named_property(env, obj, "fdsTruncated", tsnfs_bool(env, dropped || (msg.msg_flags & MSG_CTRUNC) != 0)));
  return obj;
}

/* peerCred(fd) -> { pid, uid, gid } | -errno: who connected (or listened),
 * as the kernel recorded it at connect()/listen() time. */
static napi_value PeerCred(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  if (!tsnfs_arg_int32(env, argv[0], "fd", 0, INT32_MAX, &fd)) return NULL;
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) return tsnfs_int(env, -errno);
  napi_value obj;
  NAPI_CALL(env, napi_create_object(env, &obj));
  if (!tsnfs_set_int(env, obj, "pid", cred.pid) || !tsnfs_set_int(env, obj, "uid", cred.uid) ||
      !tsnfs_set_int(env, obj, "gid", cred.gid))
    return NULL;
  return obj;
}

/* closeFd(fd) -> 0 | -errno. Not retried on EINTR: on Linux the descriptor
 * is released even then. */
static napi_value CloseFd(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  if (!tsnfs_arg_int32(env, argv[0], "fd", 0, INT32_MAX, &fd)) return NULL;
  int rc = close(fd);
  return tsnfs_int(env, rc < 0 && errno != EINTR ? -errno : 0);
}

bool tsnfs_init_fdpass(napi_env env, napi_value exports) {
  return tsnfs_export_fn(env, exports, "unixListen", UnixListen) &&
         tsnfs_export_fn(env, exports, "unixConnect", UnixConnect) &&
         tsnfs_export_fn(env, exports, "unixAccept", UnixAccept) &&
         tsnfs_export_fn(env, exports, "sendMsg", SendMsg) &&
         tsnfs_export_fn(env, exports, "recvMsg", RecvMsg) &&
         tsnfs_export_fn(env, exports, "peerCred", PeerCred) &&
         tsnfs_export_fn(env, exports, "closeFd", CloseFd) &&
         tsnfs_set_int(env, exports, "maxFdsPerMessage", TSNFS_MAX_FDS);
}
