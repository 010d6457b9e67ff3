/*
 * manifest.h - a backup set's manifest: backup.info (key: value lines) and
 * SHA256SUMS (the format `sha256sum -c` reads: "<64 hex>  <name>\n").
 */
#ifndef JS_MANIFEST_H
#define JS_MANIFEST_H

#include <stddef.h>
#include <stdint.h>
#include "jetsnap.h"

#define MF_MAX_FILES 4096

typedef struct mf_hash mf_hash;
/** Start a SHA-256 computation.  NULL on allocation failure. */
mf_hash *mf_hash_new(void);
void mf_hash_update(mf_hash *h, const void *buf, size_t len);
/** Finish into 65 bytes of lower-case hex and free h. */
void mf_hash_final(mf_hash *h, char hex[65]);
/** Hash dirfd/name (never through a symlink at name); path names it in
 *  messages only. */
JET_ERR mf_hash_fileat(int dirfd, const char *name, const char *path, char hex[65]);

/* A hashing pipeline: buffers handed to it are hashed by a second thread
 * while the caller reads the next one, so SHA-256 costs no wall time on a
 * copy as long as it keeps up with the disk; writer threads write the
 * buffers submitted with a write.  Eight buffers of
 * bufsize bytes go round: mf_pipe_buffer() waits until one is free. */
typedef struct mf_pipe mf_pipe;
/** Start the hashing and the writer threads.  NULL when memory or a
 *  thread is lacking. */
mf_pipe *mf_pipe_new(size_t bufsize);
/** Run the hashing thread at the lowest CPU priority (nice 19) and the
 *  writers at idle I/O priority from now on: an online backup's hashing
 *  yields the CPU to clients and its writes the disk, and the copy, which
 *  cannot run more than a few buffers ahead of them, yields with them. */
void mf_pipe_yield_cpu(mf_pipe *p);
/** A free buffer of bufsize bytes. */
uint8_t *mf_pipe_buffer(mf_pipe *p);
/** Queue the first len bytes of buf (from mf_pipe_buffer) for hashing; buf
 *  must not be touched until it comes back from mf_pipe_buffer. */
void mf_pipe_submit(mf_pipe *p, uint8_t *buf, size_t len);
/** Queue buf as mf_pipe_submit does, and for writing len bytes at off of
 *  fd (path names it in messages and for the fault seam) by the writer
 *  threads, taken in submission order; each write's writeback starts at
 *  once and the range `behind` bytes back is waited for and, if drop,
 *  dropped from the page cache (os_writeback_behind).  Returns the first
 *  failure of an earlier write (the caller stops; later writes are skipped
 *  until mf_pipe_drain).  fd must stay open until mf_pipe_drain. */
JET_ERR mf_pipe_submit_write(mf_pipe *p, uint8_t *buf, size_t len, int fd, const char *path, uint64_t off,
                             uint64_t behind, int drop);
/** Wait until every queued write is done; the first failure since the
 *  last drain (then cleared). */
JET_ERR mf_pipe_drain(mf_pipe *p);
/** After the caller failed: wait until every queued write is done (the
 *  writers may still use its descriptors), leaving the caller's error
 *  detail as it is and forgetting any write failure. */
void mf_pipe_abandon(mf_pipe *p);
/** Wait for every queued buffer, write the digest of everything submitted
 *  since the last final into hex, and start a new digest. */
void mf_pipe_final(mf_pipe *p, char hex[65]);
/** Stop the thread and free.  NULL is a no-op. */
void mf_pipe_free(mf_pipe *p);

typedef struct mf_entry {
    char name[64];
    char hex[65];
} mf_entry;

typedef struct mf_sums {
    mf_entry e[MF_MAX_FILES];
    size_t n;
} mf_sums;

/** Add or replace the digest of name. */
JET_ERR mf_sums_set(mf_sums *s, const char *name, const char hex[65]);
/* The *at forms work in an open directory dirfd (AT_FDCWD: dir is a path)
 * and never follow a symlink at the file's name; dir names it in messages
 * (and for the fault filter) only. */
JET_ERR mf_sums_readat(int dirfd, const char *dir, mf_sums *s);
JET_ERR mf_sums_writeat(int dirfd, const char *dir, const mf_sums *s);

typedef struct mf_info {
    char type[16];              /* "full" or "incremental" */
    char created[32];           /* RFC 3339 UTC */
    uint32_t gen_low, gen_high; /* replay range of the whole set */
    uint32_t full_gen_high;     /* last generation the database copy needs */
    uint32_t parent_high;       /* incremental: previous gen_high */
    char db_signature[40], log_signature[40];
    uint32_t page_size;
    uint64_t pages, pages_verified, log_records_verified;
    int version;
} mf_info;

/** Where a set lives: the first of DIR, DIR/new, DIR/old (SPEC section 4's
 *  order) that holds a file named marker, into out.  0 when found. */
int mf_find_in_set_dirs(const char *dir, const char *marker, char *out, size_t cap);
/** Open the set directory of BACKUP (BACKUP, BACKUP/new or BACKUP/old,
 *  the first holding a regular backup.info; new and old are opened with
 *  O_NOFOLLOW) into *fd, its path for messages into shown.  Resolving it
 *  once and reading every file relative to *fd means a swap of BACKUP's
 *  path cannot make a reader mix two sets.  JET_errInvalidPath when BACKUP
 *  is not a directory, JET_errRestoreOfNonBackupDatabase when none holds a
 *  set. */
JET_ERR mf_open_set(const char *backup, int *fd, char *shown, size_t cap);
/** Parse backup.info in the open directory dirfd (dir names it in
 *  messages).  JET_errRestoreOfNonBackupDatabase when missing or
 *  malformed. */
JET_ERR mf_info_readat(int dirfd, const char *dir, mf_info *out);
/** Render info as backup.info text into buf (cap bytes); returns length. */
size_t mf_info_render(const mf_info *info, char *buf, size_t cap);
/** Current time as RFC 3339 UTC. */
void mf_now_rfc3339(char out[32]);

#endif
