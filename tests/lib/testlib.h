/*
 * testlib.h - what every suite of tests/ shares: the assertions on JET_ERR
 * codes, the test's scratch directory, paths, files and clocks.  Every
 * helper asserts (Criterion) on what must not fail and returns what a test
 * may want to check itself.  Linked into every test binary (Makefile).
 */
#ifndef TESTLIB_H
#define TESTLIB_H

#include <criterion/criterion.h>

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "jetsnap.h"

/* x must return JET_errSuccess; the failure names the call, the code and
 * js_errdetail(). */
#define OK(x)                                                                                            \
    do {                                                                                                 \
        JET_ERR e_ = (x);                                                                                \
        cr_assert_eq(e_, JET_errSuccess, "%s -> %s (%d): %s", #x, js_errname(e_), e_, js_errdetail());   \
    } while (0)

/* x must return exactly want. */
#define FAILS_WITH(x, want)                                                                              \
    do {                                                                                                 \
        JET_ERR e_ = (x);                                                                                \
        cr_assert_eq(e_, (want), "%s -> %s (%d) [%s], expected %s (%d)", #x, js_errname(e_), e_,         \
                     js_errdetail(), js_errname(want), (want));                                          \
    } while (0)

/* The running test's scratch directory (real path), set by tl_tmp_setup. */
extern char tl_tmp[PATH_MAX];

/* Make /tmp/NAME.XXXXXX and put its real path in tl_tmp (a suite's .init). */
void tl_tmp_setup(const char *name);

/* Remove tl_tmp and everything under it, if tl_tmp_setup made it. */
void tl_tmp_teardown(void);

/* A new directory /tmp/NAME-XXXXXX (malloc'd path, not resolved), for a
 * test that makes several; remove it with tl_rmrf. */
char *tl_tmpdir(const char *name);

/* Remove dir and everything under it (nftw, symlinks not followed);
 * 0 when every entry went, -1 when one stayed or dir could not be read. */
int tl_rmrf(const char *dir);

/* A path inside tl_tmp from printf-style fmt.  The result lives in one of
 * 32 rotating buffers: copy a path a test keeps using for longer. */
char *tl_tp(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* printf into out, a PATH_MAX buffer. */
void tl_pathf(char *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The real path of the program NAME in $BUILD (default "build") into out
 * (PATH_MAX); asserts it exists. */
void tl_build_bin(char *out, const char *name);

/* CLOCK_MONOTONIC in milliseconds. */
int64_t tl_now_ms(void);
/* Resident memory of process pid (VmRSS in /proc/PID/status), in KiB. */
long tl_vm_rss_kib(pid_t pid);
/* Pages of the file mapping [addr, addr+len) in the page cache (mincore);
 * addr page-aligned. */
size_t tl_pages_resident(const void *addr, size_t len);
/* Pages of [off, off+len) of the file at path in the page cache; off
 * page-aligned. */
size_t tl_file_pages_cached(const char *path, uint64_t off, uint64_t len);
/* The share (0..1) of the pages of the file at path in the page cache. */
double tl_cached_share(const char *path);
/* Read all of the file at path in order (warm; a read error fails the
 * test) or drop it from the page cache (cold). */
void tl_set_cached(const char *path, int warm);

/* Sleep ms milliseconds. */
void tl_sleep_ms(long ms);

/* 1 when path exists (stat follows symlinks). */
int tl_exists(const char *path);

/* Entries of a directory other than . and ..; -1 when it cannot be read. */
int tl_dir_entries(const char *path);

/* The whole of fd from offset 0, read with pread (the offset, which a
 * running child may share, does not move); malloc'd and NUL-terminated,
 * its length in *len when len is not NULL. */
char *tl_slurp_fd(int fd, size_t *len);

/* The whole file at path, read from its start (FUSE files that cannot
 * seek too), as tl_slurp_fd gives it; NULL (errno set) when it cannot be
 * opened. */
char *tl_slurp(const char *path, size_t *len);

/* Write text as the whole content of path (created or truncated). */
void tl_spit(const char *path, const char *text);

/* How many newlines s holds. */
int tl_count_lines(const char *s);

/* XOR the byte at off of path with 0x5a (damage that any checksum sees). */
void tl_flip_byte(const char *path, off_t off);

/* Parameters of the backup and page suites: 4 KiB pages, 64 KiB log
 * generations (the log rolls often), lazy commits, a 32 MiB cache, and
 * no background checkpoint (only those a test or a backup makes). */
js_params tl_test_params(void);

/* Parameters of the engine suites: lazy commits, 256 KiB log generations,
 * an 8 MiB cache (eviction happens). */
js_params tl_lazy_params(void);

/* tl_lazy_params with 64 KiB log generations (the log rolls often) and
 * no background checkpoint (it stays where the instance began). */
js_params tl_rolling_params(void);

/* Run fn in a child that opens dir with *p and a session, then leaves
 * without closing them (a crash as far as the files can tell); asserts the
 * child exited 0 (fn _exits non-zero to report a failure). */
void tl_in_crashing_child(const char *dir, const js_params *p, void (*fn)(js_instance *, js_session *));

#endif
