/*
 * The libnfs peer of bench/client.ts's random-read point: 4 KiB READs at
 * random 4 KiB-aligned offsets of one file, DEPTH in flight, for SECONDS,
 * through libnfs's asynchronous API (nfs_pread_async and its own event
 * loop, the way an application drives libnfs for parallel IO). libnfs-utils
 * has no command for this, so bench/client.ts compiles this file with
 * `cc -O2 ... -lnfs` (Debian: libnfs-dev) when it runs.
 *
 * usage: libnfs-randread NFS_URL DEPTH SECONDS
 * prints: {"ops": N, "seconds": S, "bytes": B}
 */
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <nfsc/libnfs.h>

static struct nfs_context *nfs;
static struct nfsfh *fh;
static uint64_t blocks;
static uint64_t ops, bytes;
static int inflight, failed;
static double deadline;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* xorshift64: cheap, and the offsets only need to be spread out. */
static uint64_t rng = 88172645463325252ull;
static uint64_t next_block(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng % blocks;
}

static void issue(void);

static void done(int err, struct nfs_context *ctx, void *data, void *priv) {
  (void)ctx, (void)data, (void)priv;
  inflight--;
  if (err < 0) {
    fprintf(stderr, "pread: %s\n", (char *)data);
    failed = 1;
    return;
  }
  ops++;
  bytes += (uint64_t)err;
  if (now() < deadline) issue();
}

static void issue(void) {
  if (nfs_pread_async(nfs, fh, next_block() * 4096, 4096, done, NULL) != 0) {
    fprintf(stderr, "pread_async: %s\n", nfs_get_error(nfs));
    failed = 1;
    return;
  }
  inflight++;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s NFS_URL DEPTH SECONDS\n", argv[0]);
    return 2;
  }
  int depth = atoi(argv[2]);
  double seconds = atof(argv[3]);
  nfs = nfs_init_context();
  struct nfs_url *url = nfs_parse_url_full(nfs, argv[1]);
  if (!url) {
    fprintf(stderr, "url: %s\n", nfs_get_error(nfs));
    return 1;
  }
  if (nfs_mount(nfs, url->server, url->path) != 0 || nfs_open(nfs, url->file, O_RDONLY, &fh) != 0) {
    fprintf(stderr, "mount/open: %s\n", nfs_get_error(nfs));
    return 1;
  }
  struct nfs_stat_64 st;
  if (nfs_fstat64(nfs, fh, &st) != 0 || st.nfs_size < 4096) {
    fprintf(stderr, "fstat: %s\n", nfs_get_error(nfs));
    return 1;
  }
  blocks = st.nfs_size / 4096;
  rng ^= (uint64_t)time(NULL);
  double start = now();
  deadline = start + seconds;
  for (int i = 0; i < depth && !failed; i++) issue();
  while (inflight > 0 && !failed) {
    struct pollfd pfd = {.fd = nfs_get_fd(nfs), .events = nfs_which_events(nfs)};
    if (poll(&pfd, 1, 1000) < 0) break;
    if (nfs_service(nfs, pfd.revents) < 0) {
      fprintf(stderr, "service: %s\n", nfs_get_error(nfs));
      failed = 1;
    }
  }
  double elapsed = now() - start;
  nfs_close(nfs, fh);
  nfs_destroy_url(url);
  nfs_destroy_context(nfs);
  if (failed) return 1;
  printf("{\"ops\": %llu, \"seconds\": %.6f, \"bytes\": %llu}\n", (unsigned long long)ops, elapsed, (unsigned long long)bytes);
  return 0;
}
