/*
 * test_cachetrail.c - a reader in order leaves the page cache as it found
 * it (core/base/cachetrail.c): what it read and was not cached is dropped
 * behind it, past its lag, and what was cached stays; a reader out of
 * order drops nothing it skipped.  A snapshot's handle reads the image so
 * (core/instance/snapshot.c), whether the database was cached or not.
 */
#include <criterion/criterion.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bkset.h"
#include "snapimg.h"
#include "testlib.h"
#include "base/cachetrail.h"

TestSuite(cachetrail, .init = tl_bk_setup, .fini = tl_bk_teardown, .timeout = 120);

#define MIB (1u << 20)

static uint64_t pages_of(uint64_t bytes)
{
    return bytes / (uint64_t)sysconf(_SC_PAGESIZE);
}

/* A file of mb MiB on disk, written back and dropped from the page cache. */
static const char *cold_file(unsigned mb)
{
    const char *path = tl_tp("f");
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert_geq(fd, 0);
    static char buf[MIB];
    memset(buf, 'x', sizeof buf);
    for (unsigned i = 0; i < mb; i++)
        cr_assert_eq(write(fd, buf, sizeof buf), (ssize_t)sizeof buf);
    cr_assert_eq(fsync(fd), 0);
    close(fd);
    tl_set_cached(path, 0);
    cr_assert_lt(tl_cached_share(path), 0.02, "the test's file system keeps dropped pages (tmpfs?)");
    return path;
}

/* Read [off, off+len) of the file at path into the page cache, without
 * the kernel's read-ahead around it. */
static void warm_range(const char *path, uint64_t off, uint64_t len)
{
    int fd = open(path, O_RDONLY);
    cr_assert_geq(fd, 0);
    cr_assert_eq(posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM), 0);
    static char buf[2 * MIB];
    cr_assert_leq(len, sizeof buf);
    cr_assert_eq(pread(fd, buf, (size_t)len, (off_t)off), (ssize_t)len);
    close(fd);
    cr_assert_eq(tl_file_pages_cached(path, off, len), pages_of(len));
}

/* Read [from, to) of fd 256 KiB at a time, telling the trail. */
static void read_range(cache_trail *t, int fd, uint64_t from, uint64_t to)
{
    static char buf[256 << 10];
    for (uint64_t off = from; off < to; off += sizeof buf) {
        cr_assert_eq(pread(fd, buf, sizeof buf, (off_t)off), (ssize_t)sizeof buf);
        ct_read(t, off, sizeof buf);
    }
}

/* Asked 32 MiB ahead: beyond the kernel's read-ahead of the reader's own
 * reads (twice read_ahead_kb at most). */
Test(cachetrail, drops_behind_the_lag_and_keeps_what_was_cached)
{
    const char *path = cold_file(64);
    warm_range(path, 8 * MIB, 2 * MIB);   /* a live instance's pages, cached before the reader came */
    int fd = open(path, O_RDONLY);
    cr_assert_geq(fd, 0);
    cache_trail t;
    ct_init(&t, fd, 64 * MIB, 32 * MIB, 4 * MIB);
    read_range(&t, fd, 0, 24 * MIB);
    /* Behind the lag: the cold chunks are gone, the cached one is not. */
    cr_assert_lt(tl_file_pages_cached(path, 0, 8 * MIB), pages_of(MIB) / 8, "0-8 MiB still cached");
    cr_assert_eq(tl_file_pages_cached(path, 8 * MIB, 2 * MIB), pages_of(2 * MIB), "8-10 MiB was cached, dropped");
    cr_assert_lt(tl_file_pages_cached(path, 10 * MIB, 10 * MIB), pages_of(MIB) / 8, "10-20 MiB still cached");
    /* Within the lag (20-24 MiB), reads may still be in flight: kept. */
    cr_assert_eq(tl_file_pages_cached(path, 20 * MIB, 4 * MIB), pages_of(4 * MIB), "within the lag, dropped");

    read_range(&t, fd, 24 * MIB, 64 * MIB);
    ct_finish(&t);
    cr_assert_lt(tl_file_pages_cached(path, 10 * MIB, 54 * MIB), pages_of(MIB) / 8, "10-64 MiB still cached");
    cr_assert_eq(tl_file_pages_cached(path, 8 * MIB, 2 * MIB), pages_of(2 * MIB));
    read_range(&t, fd, 0, MIB);   /* finished: nothing more is dropped */
    cr_assert_eq(tl_file_pages_cached(path, 0, MIB), pages_of(MIB));
    close(fd);
}

Test(cachetrail, a_reader_out_of_order_drops_nothing_it_skipped)
{
    const char *path = cold_file(48);
    int fd = open(path, O_RDONLY);
    cr_assert_geq(fd, 0);
    cache_trail t;
    ct_init(&t, fd, 48 * MIB, 8 * MIB, 0);
    read_range(&t, fd, 0, 2 * MIB);
    /* 6-8 MiB, which the trail asked about when it began (cold then),
     * becomes cached, and the reader jumps to 30 MiB, past what the trail
     * asked about. */
    warm_range(path, 6 * MIB, 2 * MIB);
    read_range(&t, fd, 30 * MIB, 34 * MIB);
    ct_finish(&t);
    cr_assert_lt(tl_file_pages_cached(path, 0, 2 * MIB), pages_of(MIB) / 8, "0-2 MiB, read in order, still cached");
    cr_assert_eq(tl_file_pages_cached(path, 6 * MIB, 2 * MIB), pages_of(2 * MIB), "a chunk skipped was dropped");
    /* Where it landed the chunk looked cached (just read): kept too. */
    cr_assert_eq(tl_file_pages_cached(path, 30 * MIB, 2 * MIB), pages_of(2 * MIB));
    close(fd);
}

/* Past the first 64 MiB the handle asks about when it opens, a database
 * the instance had cached stays cached and one it had not is dropped
 * again once the image is read. */
Test(cachetrail, a_snapshot_reader_leaves_the_database_cache_as_it_found_it)
{
    const char *dir = tl_tp("inst");
    js_params p = tl_test_params();
    js_instance *inst = tl_create_open(dir, &p);
    tl_fill(inst, "big", 0, 100000, 900);
    cr_assert_eq(js_checkpoint(inst), JET_errSuccess, "%s", js_errdetail());
    cr_assert_eq(js_snapshot_take(inst, "s1", NULL), JET_errSuccess, "%s", js_errdetail());
    char db[4096];
    snprintf(db, sizeof db, "%s/jetsnap.edb", dir);

    tl_set_cached(db, 1);
    cr_assert_gt(tl_cached_share(db), 0.95);
    size_t size = 0;
    free(tl_snap_image(inst, "s1", &size, NULL));
    cr_assert_gt(size, 80u * MIB, "the image (%zu bytes) is too small to pass 64 MiB well", size);
    double warm = tl_cached_share(db);
    cr_expect_gt(warm, 0.9, "reading the snapshot dropped a cached database: %.0f%% left", warm * 100);

    tl_set_cached(db, 0);
    free(tl_snap_image(inst, "s1", &size, NULL));
    double cold = tl_cached_share(db);
    cr_expect_lt(cold, 0.1, "reading the snapshot left %.0f%% of a cold database cached", cold * 100);
    cr_assert_eq(js_close(inst), JET_errSuccess, "%s", js_errdetail());
}
