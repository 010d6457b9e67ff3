/*
 * test_snapshot.c - copy-on-write snapshots in the core (SPEC section 7,
 * jetsnap.h "Snapshots"): a snapshot's image never changes (writes,
 * checkpoints, backups with log truncation, restarts, crashes), holds
 * exactly the transactions acknowledged before it, opens as an instance of
 * its own with a new log stream, shares saved images, frees them on
 * delete, and a store that cannot save invalidates only the snapshot
 * concerned while the live database goes on; a checkpoint write that
 * failed for lack of space never makes a snapshot keep an older page.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bkset.h"
#include "snapimg.h"
#include "testlib.h"
#include "instance/instance.h"
#include "store/store.h"

static js_params snap_params(void)
{
    js_params p = tl_test_params();
    p.cache_size = 4 << 20;          /* eviction and big checkpoints */
    return p;
}

/* Write the image of name as COPYDIR/jetsnap.edb (a copy of the view). */
static void copy_out(js_instance *inst, const char *name, const char *copydir)
{
    size_t len = 0;
    uint8_t *b = tl_snap_image(inst, name, &len, NULL);
    mkdir(copydir, 0700);
    char path[PATH_MAX];
    tl_pathf(path, "%s/jetsnap.edb", copydir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, b, len), (ssize_t)len);
    close(fd);
    free(b);
}

static void overwrite_load(js_instance *inst, int round)
{
    char pre[16];
    snprintf(pre, sizeof pre, "w%d", round % 3);
    tl_fill(inst, pre, 0, 600, 700);     /* same keys each third round: pages rewritten */
    OK(js_checkpoint(inst));
}

static void read_log_sig(const char *dir, uint8_t sig[JS_SIG_LEN])
{
    char path[PATH_MAX];
    db_header h;
    tl_pathf(path, "%s/jetsnap.edb", dir);
    int fd = open(path, O_RDONLY);
    cr_assert(fd >= 0);
    OK(dbh_read(fd, path, &h));
    close(fd);
    memcpy(sig, h.log_sig, JS_SIG_LEN);
}

TestSuite(snapshot, .init = tl_bk_setup, .fini = tl_bk_teardown, .timeout = 240);

Test(snapshot, holds_exactly_the_acknowledged_prefix_and_opens_as_a_new_stream)
{
    js_params p = snap_params();
    p.commit_mode = JS_COMMIT_DURABLE;
    js_instance *inst = tl_create_open(tl_tp("db"), &p);
    tl_fill(inst, "base", 0, 2000, 300);
    OK(js_checkpoint(inst));
    tl_mwriter w;
    tl_mwriter_start(&w, inst, 1000000, 1, -1);
    while (atomic_load(&w.acked) < 300)
        tl_sleep_ms(5);
    uint64_t before = atomic_load(&w.acked);
    js_snapshot_info info;
    OK(js_snapshot_take(inst, "s1", &info));
    uint64_t after = atomic_load(&w.issued);   /* durable may precede the ack */
    cr_assert_str_eq(info.name, "s1");
    cr_assert(info.valid);
    tl_sleep_ms(300);
    tl_mwriter_stop(&w);
    overwrite_load(inst, 0);

    copy_out(inst, "s1", tl_tp("copy"));
    js_instance *c = NULL;
    OK(js_open(tl_tp("copy"), &p, &c));
    uint64_t m = tl_check_monotonic(c, 2000);
    cr_assert(m >= before && m <= after, "snapshot holds seq 1..%llu, acked %llu before, issued %llu after",
              (unsigned long long)m, (unsigned long long)before, (unsigned long long)after);
    tl_check_fill(c, "base", 0, 2000, 300);
    OK(js_close(c));
    uint8_t a[JS_SIG_LEN], b[JS_SIG_LEN];
    read_log_sig(tl_tp("db"), a);
    read_log_sig(tl_tp("copy"), b);
    cr_assert(memcmp(a, b, JS_SIG_LEN) != 0, "the copy's log stream must be new");

    char cmd[PATH_MAX * 2], bin[PATH_MAX];
    copy_out(inst, "s1", tl_tp("copy2"));
    tl_build_bin(bin, "jetsnap");
    snprintf(cmd, sizeof cmd, "%s check %s >/dev/null 2>&1", bin, tl_tp("copy2"));
    cr_assert_eq(system(cmd), 0, "jetsnap check of a copy");
    snprintf(cmd, sizeof cmd, "%s dump %s >/dev/null 2>&1", bin, tl_tp("copy2"));
    cr_assert_eq(system(cmd), 0, "jetsnap dump of a copy");
    OK(js_close(inst));
}

static void crash_writes(js_instance *inst, js_session *s)
{
    (void)s;
    for (int r = 0; r < 3; r++)
        tl_fill(inst, "w0", 0, 600, 700 + r);
    OK(js_checkpoint(inst));
    tl_fill(inst, "w1", 0, 600, 650);   /* dirty at the crash */
}

Test(snapshot, image_never_changes)
{
    js_params p = snap_params();
    js_instance *inst = tl_create_open(tl_tp("db"), &p);
    tl_fill(inst, "w0", 0, 600, 500);
    OK(js_checkpoint(inst));
    tl_fill(inst, "w1", 0, 300, 500);    /* dirty at the instant */
    OK(js_snapshot_take(inst, "s1", NULL));
    tl_kvdump at;
    copy_out(inst, "s1", tl_tp("c0"));
    tl_dump_dir(tl_tp("c0"), &at);
    unsigned char h0[32];
    tl_snap_hash(inst, "s1", h0);

    for (int r = 0; r < 4; r++) {
        overwrite_load(inst, r);
        tl_snap_expect(inst, "s1", h0, "image changed after write round %d", r);
    }
    /* A full backup truncates the logs; a second and third snapshot, one deleted. */
    mkdir(tl_tp("bk"), 0700);
    tl_backup_ok(inst, tl_tp("bk"), 0);
    OK(js_snapshot_take(inst, "s2", NULL));
    OK(js_snapshot_take(inst, "s3", NULL));
    overwrite_load(inst, 1);
    OK(js_snapshot_delete(inst, "s2"));
    overwrite_load(inst, 2);
    tl_snap_expect(inst, "s1", h0, "image changed after backup and other snapshots");
    OK(js_close(inst));

    inst = tl_reopen(tl_tp("db"));
    tl_snap_expect(inst, "s1", h0, "image changed across a clean restart");
    OK(js_close(inst));

    for (int k = 0; k < 3; k++) {
        tl_in_crashing_child(tl_tp("db"), &p, crash_writes);
        inst = tl_reopen(tl_tp("db"));
        tl_snap_expect(inst, "s1", h0, "image changed across crash %d and recovery", k);
        OK(js_close(inst));
    }
    inst = tl_reopen(tl_tp("db"));
    tl_kvdump now;
    copy_out(inst, "s1", tl_tp("c1"));
    tl_dump_dir(tl_tp("c1"), &now);
    ASSERT_DUMP_EQ(&at, &now, "snapshot content");
    tl_dump_free(&at);
    tl_dump_free(&now);
    OK(js_close(inst));
}

Test(snapshot, shared_images_are_saved_once_and_delete_frees)
{
    js_params p = snap_params();
    js_instance *inst = tl_create_open(tl_tp("db"), &p);
    tl_fill(inst, "w0", 0, 600, 700);
    OK(js_checkpoint(inst));
    cr_assert_eq(js_snapshot_space(inst), 0);
    OK(js_snapshot_take(inst, "a", NULL));
    OK(js_snapshot_take(inst, "b", NULL));
    overwrite_load(inst, 0);
    js_snapshot_info ia, ib;
    OK(js_snapshot_stat(inst, "a", &ia));
    OK(js_snapshot_stat(inst, "b", &ib));
    cr_assert(ia.bytes_held > 0);
    cr_assert_eq(ia.bytes_held, ib.bytes_held);
    cr_assert_eq(js_snapshot_space(inst), ia.bytes_held, "shared images stored once: %llu vs %llu",
                 (unsigned long long)js_snapshot_space(inst), (unsigned long long)ia.bytes_held);
    overwrite_load(inst, 0);   /* the same pages again: nothing more to save */
    OK(js_snapshot_stat(inst, "a", &ia));
    cr_assert_eq(js_snapshot_space(inst), ia.bytes_held);
    OK(js_snapshot_delete(inst, "a"));
    cr_assert_eq(js_snapshot_space(inst), ib.bytes_held, "b still holds its images");
    OK(js_snapshot_delete(inst, "b"));
    cr_assert_eq(js_snapshot_space(inst), 0);
    OK(js_close(inst));
    inst = tl_reopen(tl_tp("db"));
    cr_assert_eq(js_snapshot_space(inst), 0);
    size_t n = 0;
    js_snapshot_info *all = NULL;
    OK(js_snapshot_list(inst, &all, &n));
    cr_assert_eq(n, 0);
    free(all);
    OK(js_close(inst));
}

Test(snapshot, errors)
{
    js_params p = snap_params();
    p.snapshot_max = 2;
    js_instance *inst = tl_create_open(tl_tp("db"), &p);
    FAILS_WITH(js_snapshot_take(inst, "", NULL), JET_errInvalidParameter);
    FAILS_WITH(js_snapshot_take(inst, ".hidden", NULL), JET_errInvalidParameter);
    FAILS_WITH(js_snapshot_take(inst, "a/b", NULL), JET_errInvalidParameter);
    char longname[80];
    memset(longname, 'x', 65);
    longname[65] = '\0';
    FAILS_WITH(js_snapshot_take(inst, longname, NULL), JET_errInvalidParameter);
    longname[64] = '\0';
    OK(js_snapshot_take(inst, longname, NULL));
    FAILS_WITH(js_snapshot_take(inst, longname, NULL), JET_errDatabaseDuplicate);
    OK(js_snapshot_take(inst, "x-1.y_2", NULL));
    FAILS_WITH(js_snapshot_take(inst, "third", NULL), JET_errOSSnapshotNotAllowed);
    js_snapshot *s = NULL;
    OK(js_snapshot_open(inst, "x-1.y_2", &s, NULL));
    FAILS_WITH(js_snapshot_delete(inst, "x-1.y_2"), JET_errDatabaseInUse);
    js_snapshot_close(s);
    OK(js_snapshot_delete(inst, "x-1.y_2"));
    FAILS_WITH(js_snapshot_delete(inst, "x-1.y_2"), JET_errOSSnapshotInvalidSnapId);
    FAILS_WITH(js_snapshot_open(inst, "nope", &s, NULL), JET_errOSSnapshotInvalidSnapId);
    OK(js_close(inst));
}

static void store_fault_invalidates_one(int err)
{
    js_params p = snap_params();
    js_instance *inst = tl_create_open(tl_tp("db"), &p);
    tl_fill(inst, "w0", 0, 600, 700);
    OK(js_checkpoint(inst));
    OK(js_snapshot_take(inst, "old", NULL));
    overwrite_load(inst, 0);             /* "old" has its images saved */
    unsigned char h0[32];
    tl_snap_hash(inst, "old", h0);
    OK(js_snapshot_take(inst, "new", NULL));
    js_fault_arm(JS_FAULT_WRITE, 1, err, -1, "store.pages");
    overwrite_load(inst, 0);             /* only "new" needs saves now */
    js_fault_reset();
    tl_check_fill(inst, "w0", 0, 600, 700);
    overwrite_load(inst, 1);             /* the live database goes on */
    js_snapshot_info info;
    OK(js_snapshot_stat(inst, "new", &info));
    cr_assert(!info.valid);
    OK(js_snapshot_stat(inst, "old", &info));
    cr_assert(info.valid);
    tl_snap_expect(inst, "old", h0, "the image changed");
    size_t len;
    JET_ERR rerr = 0;
    free(tl_snap_image(inst, "new", &len, &rerr));
    cr_assert_eq(rerr, JET_errDiskIO);
    OK(js_snapshot_delete(inst, "new"));
    OK(js_close(inst));
    inst = tl_reopen(tl_tp("db"));
    tl_snap_expect(inst, "old", h0, "the image changed");
    OK(js_close(inst));
}

Test(snapshot, store_enospc_invalidates_only_that_snapshot)
{
    store_fault_invalidates_one(ENOSPC);
}

Test(snapshot, store_eio_invalidates_only_that_snapshot)
{
    store_fault_invalidates_one(EIO);
}

Test(snapshot, no_log_instance)
{
    js_params p = snap_params();
    js_instance *inst = tl_create_open(tl_tp("db"), &p);
    OK(js_close(inst));
    p.no_log = 1;
    OK(js_open(tl_tp("db"), &p, &inst));
    tl_fill(inst, "w0", 0, 600, 700);
    OK(js_snapshot_take(inst, "s", NULL));
    unsigned char h0[32];
    tl_snap_hash(inst, "s", h0);
    overwrite_load(inst, 0);
    overwrite_load(inst, 1);
    tl_snap_expect(inst, "s", h0, "the image changed");
    copy_out(inst, "s", tl_tp("copy"));
    p.no_log = 0;
    js_instance *c = NULL;
    OK(js_open(tl_tp("copy"), &p, &c));
    tl_check_fill(c, "w0", 0, 600, 700);
    OK(js_close(c));
    OK(js_close(inst));
}

/* The checkpoint's steps (checkpoint.c, ckpt_write_batch) with a take in
 * the moment the copied pages are clean in the pool but not in the file,
 * and every page write failing with ENOSPC: then a newer commit of those
 * pages is checkpointed.  The snapshot must hold the pages as committed
 * before it (the failed write's images), not the file's older ones. */
Test(snapshot, failed_checkpoint_write_then_take_keeps_the_committed_pages)
{
    js_params p = snap_params();
    p.commit_mode = JS_COMMIT_DURABLE;
    js_instance *inst = tl_create_open(tl_tp("db"), &p);
    OK(js_snapshot_take(inst, "first", NULL));   /* the store exists: the hook runs */
    OK(js_snapshot_delete(inst, "first"));
    tl_fill(inst, "k", 0, 40, 100);
    OK(js_checkpoint(inst));                     /* the file: values of 100 bytes */
    tl_fill(inst, "k", 0, 40, 200);              /* committed, dirty: 200 bytes */

    db_store *st = &inst->store;
    uint32_t ps = st->page_size, *list = NULL;
    size_t n = 0, m = 0;
    js_mutex_lock(&inst->ckpt_lock);
    OK(pool_dirty_list(&st->pool, &list, &n));
    cr_assert_gt(n, 0);
    uint8_t *buf = malloc(n * ps);
    frame **held = calloc(n, sizeof *held);
    cr_assert(buf && held);
    js_rdlock(&inst->eng.tree_latch);
    for (size_t i = 0; i < n; i++) {
        frame *f = pool_lookup(&st->pool, list[i]);
        if (!f)
            continue;
        if (!f->dirty) {
            pool_unpin(&st->pool, f);
            continue;
        }
        memcpy(buf + m * ps, f->data, ps);
        held[m] = f;
        list[m++] = list[i];
        pool_clear_dirty(&st->pool, f);
    }
    js_rwunlock(&inst->eng.tree_latch);

    /* take waits for a running checkpoint (its store_get takes ckpt_lock)
     * but not for one that starts after that: let go of it here. */
    js_mutex_unlock(&inst->ckpt_lock);
    OK(js_snapshot_take(inst, "s", NULL));       /* nothing dirty to capture */
    js_mutex_lock(&inst->ckpt_lock);

    size_t failed = 0;
    for (size_t i = 0; i < m; i++) {
        pg_seal(buf + i * ps, ps, list[i]);
        js_fault_arm(JS_FAULT_WRITE, 1, ENOSPC, -1, "jetsnap.edb");
        failed += db_write_batch(st, &list[i], buf + i * ps, 1) == JET_errDiskFull;
    }
    js_fault_reset();
    for (size_t i = 0; i < m; i++) {
        pool_mark_dirty(&st->pool, held[i]);
        pool_unpin(&st->pool, held[i]);
    }
    js_mutex_unlock(&inst->ckpt_lock);
    cr_assert_eq(failed, m, "every page write fails (%zu of %zu)", failed, m);
    free(buf);
    free(held);
    free(list);

    tl_fill(inst, "k", 0, 40, 300);              /* newer than the snapshot */
    OK(js_checkpoint(inst));                     /* the hook saves the old pages now */
    js_snapshot_info info;
    OK(js_snapshot_stat(inst, "s", &info));
    cr_assert(info.valid);
    copy_out(inst, "s", tl_tp("copy"));
    js_instance *c = NULL;
    OK(js_open(tl_tp("copy"), &p, &c));
    tl_check_fill(c, "k", 0, 40, 200);
    OK(js_close(c));
    tl_check_fill(inst, "k", 0, 40, 300);
    OK(js_close(inst));
}

/* ---------------- lazy takes (core/store/snaplazy.c) ---------------- */

static js_params lazy_params(void)
{
    js_params p = tl_test_params();
    p.cache_size = 64 << 20;         /* no checkpoint asked for by a full pool */
    p.commit_mode = JS_COMMIT_DURABLE;
    return p;
}

/* What a child saw at its take, for the parent after the kill. */
typedef struct take_rec {
    uint64_t before, after;     /* seq acked before the take, and when it returned */
    uint64_t space, ndirty;     /* store bytes and dirty pool pages right after it */
    int hashed;
    unsigned char h[32];        /* the image's hash, read before the later writes */
} take_rec;

static void put_rec(const char *path, const take_rec *r)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, r, sizeof *r) != (ssize_t)sizeof *r || fsync(fd) != 0)
        _exit(5);
    close(fd);
}

static int get_rec(const char *path, take_rec *r)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, r, sizeof *r);
    close(fd);
    return n == (ssize_t)sizeof *r;
}

/* The image hash without criterion (a child process). */
static int child_hash(js_instance *inst, const char *name, unsigned char out[32])
{
    js_snapshot *s = NULL;
    js_snapshot_info info;
    if (js_snapshot_open(inst, name, &s, &info))
        return -1;
    size_t size = (size_t)info.pages * info.page_size, got = 0, n = 0;
    uint8_t *buf = malloc(size);
    JET_ERR err = buf ? JET_errSuccess : JET_errOutOfMemory;
    while (!err && got < size && !(err = js_snapshot_read(s, got, buf + got, size - got, &n)) && n)
        got += n;
    js_snapshot_close(s);
    if (!err && got == size)
        SHA256(buf, size, out);
    free(buf);
    return err || got != size ? -1 : 0;
}

/* Child: a durable monotonic writer, 600 more pages made dirty, the take,
 * then (mode 1, 2) the same pages changed again (captures), (mode 2) a
 * checkpoint and more changes; then SIGKILL. */
static void lazy_child(const char *dir, const char *recpath, int mode)
{
    js_params p = lazy_params();
    js_instance *inst = NULL;
    take_rec r;
    memset(&r, 0, sizeof r);
    if (js_open(dir, &p, &inst))
        _exit(3);
    tl_mwriter w;
    memset(&w, 0, sizeof w);
    w.inst = inst;
    w.limit = 1000000;
    w.durable = 1;
    w.ackfd = -1;
    if (pthread_create(&w.th, NULL, tl_mwriter_main, &w))
        _exit(3);
    while (atomic_load(&w.acked) < 200)
        usleep(2000);
    tl_fill(inst, "w1", 0, 600, 500);
    r.before = atomic_load(&w.acked);
    if (js_snapshot_take(inst, "s1", NULL))
        _exit(4);
    r.after = atomic_load(&w.issued);   /* durable may precede the ack */
    r.space = js_snapshot_space(inst);
    r.ndirty = pool_ndirty(&inst->store.pool);
    if (mode >= 1) {
        put_rec(recpath, &r);   /* the take's figures, in case the hash is slow */
        r.hashed = child_hash(inst, "s1", r.h) == 0;
        put_rec(recpath, &r);
        tl_fill(inst, "w1", 0, 600, 650);
        if (mode == 2) {
            if (js_checkpoint(inst))
                _exit(6);
            tl_fill(inst, "w1", 0, 600, 420);
        }
    } else {
        put_rec(recpath, &r);
    }
    kill(getpid(), SIGKILL);
}

Test(snapshot, lazy_take_copies_no_page_and_a_kill_right_after_keeps_the_prefix)
{
    for (int mode = 0; mode < 3; mode++) {
        char *dir = tl_tp("db%d", mode), rec[PATH_MAX];
        js_params p = lazy_params();
        js_instance *inst = tl_create_open(dir, &p);
        tl_fill(inst, "base", 0, 2000, 300);
        OK(js_checkpoint(inst));
        OK(js_close(inst));
        tl_pathf(rec, "%s.rec", dir);
        pid_t pid = fork();
        cr_assert(pid >= 0);
        if (pid == 0)
            lazy_child(dir, rec, mode);
        int st;
        cr_assert_eq(waitpid(pid, &st, 0), pid);
        cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "mode %d: child ended with status %d", mode, st);
        take_rec r;
        cr_assert(get_rec(rec, &r), "mode %d: the child's record", mode);
        cr_assert(r.ndirty >= 100, "mode %d: only %llu dirty pages at the take", mode, (unsigned long long)r.ndirty);
        cr_assert_eq(r.space, 0, "mode %d: a lazy take copies no page (%llu bytes)", mode,
                     (unsigned long long)r.space);

        inst = tl_reopen(dir);
        js_snapshot_info info;
        OK(js_snapshot_stat(inst, "s1", &info));
        cr_assert(info.valid, "mode %d: s1 invalid after the kill", mode);
        if (r.hashed) {
            tl_snap_expect(inst, "s1", r.h, "mode %d: the image changed across the kill", mode);
        }
        char *copy = tl_tp("copy%d", mode);
        copy_out(inst, "s1", copy);
        OK(js_close(inst));
        js_instance *c = NULL;
        OK(js_open(copy, &p, &c));
        uint64_t m = tl_check_monotonic(c, 2000 + 600);
        cr_assert(m >= r.before && m <= r.after, "mode %d: snapshot holds seq 1..%llu, acked %llu before, issued %llu after",
                  mode, (unsigned long long)m, (unsigned long long)r.before, (unsigned long long)r.after);
        tl_check_fill(c, "base", 0, 2000, 300);
        tl_check_fill(c, "w1", 0, 600, 500);
        OK(js_close(c));
    }
}

/* Child of a kill round: take sN with pages dirty, record its hash, then
 * change those pages and checkpoint until a timer thread kills it. */
static void *killer(void *arg)
{
    usleep((useconds_t)(uintptr_t)arg);
    kill(getpid(), SIGKILL);
    return NULL;
}

static void kill_round_child(const char *dir, const char *recpath, int round, unsigned delay_us)
{
    js_params p = lazy_params();
    js_instance *inst = NULL;
    char name[16];
    take_rec r;
    memset(&r, 0, sizeof r);
    if (js_open(dir, &p, &inst))
        _exit(3);
    tl_fill(inst, "w1", 0, 300, 300 + 10 * (size_t)round);   /* dirty at the take */
    snprintf(name, sizeof name, "k%d", round);
    if (js_snapshot_take(inst, name, NULL))
        _exit(4);
    r.hashed = child_hash(inst, name, r.h) == 0;
    if (!r.hashed)
        _exit(5);
    put_rec(recpath, &r);
    pthread_t th;
    if (pthread_create(&th, NULL, killer, (void *)(uintptr_t)delay_us))
        _exit(3);
    for (int i = 0;; i++) {
        tl_fill(inst, "w1", 0, 300, 200 + (size_t)(i % 7) * 40);
        if (i % 2 && js_checkpoint(inst))
            _exit(6);
    }
}

Test(snapshot, lazy_pages_kept_through_changes_checkpoints_restarts_and_kills)
{
    js_params p = lazy_params();
    char *dir = tl_tp("db");
    js_instance *inst = tl_create_open(dir, &p);
    tl_fill(inst, "w0", 0, 600, 500);
    OK(js_checkpoint(inst));
    tl_fill(inst, "w1", 0, 300, 500);      /* dirty at the instant */
    OK(js_snapshot_take(inst, "s1", NULL));
    cr_assert_eq(js_snapshot_space(inst), 0);
    unsigned char h0[32];
    tl_snap_hash(inst, "s1", h0);
    tl_fill(inst, "w1", 0, 300, 640);      /* pending pages change: captured */
    tl_snap_expect(inst, "s1", h0, "image changed when its pending pages changed");
    OK(js_checkpoint(inst));               /* captures saved */
    cr_assert(js_snapshot_space(inst) > 0);
    tl_snap_expect(inst, "s1", h0, "image changed at the checkpoint");
    OK(js_close(inst));
    inst = tl_reopen(dir);
    tl_snap_expect(inst, "s1", h0, "image changed across a restart");
    OK(js_close(inst));

    srand(1234);
    for (int round = 0; round < 12; round++) {
        char rec[PATH_MAX], name[16];
        tl_pathf(rec, "%s/../k%d.rec", dir, round);
        pid_t pid = fork();
        cr_assert(pid >= 0);
        if (pid == 0)
            kill_round_child(dir, rec, round, (unsigned)(rand() % 200000));
        int st;
        cr_assert_eq(waitpid(pid, &st, 0), pid);
        cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "round %d: child ended with status %d", round, st);
        take_rec r;
        cr_assert(get_rec(rec, &r) && r.hashed, "round %d: the child's record", round);
        inst = tl_reopen(dir);
        tl_snap_expect(inst, "s1", h0, "round %d: s1 changed", round);
        snprintf(name, sizeof name, "k%d", round);
        tl_snap_expect(inst, name, r.h, "round %d: %s changed across the kill", round, name);
        OK(js_snapshot_delete(inst, name));
        OK(js_close(inst));
    }
    inst = tl_reopen(dir);
    OK(js_snapshot_delete(inst, "s1"));
    cr_assert_eq(js_snapshot_space(inst), 0);
    OK(js_close(inst));
}

Test(snapshot, lazy_pending_page_shared_saved_once_and_delete_while_pending)
{
    js_params p = lazy_params();
    js_instance *inst = tl_create_open(tl_tp("db"), &p);
    tl_fill(inst, "w0", 0, 600, 500);
    OK(js_checkpoint(inst));
    tl_fill(inst, "w1", 0, 300, 500);
    OK(js_snapshot_take(inst, "a", NULL));
    OK(js_snapshot_take(inst, "b", NULL));   /* the same pages pending for both */
    OK(js_snapshot_take(inst, "gone", NULL));
    size_t la = 0, lb = 0;
    uint8_t *a0 = tl_snap_image(inst, "a", &la, NULL);
    tl_fill(inst, "w1", 0, 300, 610);
    OK(js_snapshot_delete(inst, "gone"));    /* with captures in memory */
    OK(js_checkpoint(inst));
    js_snapshot_info ia, ib;
    OK(js_snapshot_stat(inst, "a", &ia));
    OK(js_snapshot_stat(inst, "b", &ib));
    cr_assert(ia.bytes_held > 0);
    cr_assert_eq(ia.bytes_held, ib.bytes_held);
    cr_assert_eq(js_snapshot_space(inst), ia.bytes_held, "a capture shared is stored once: %llu vs %llu",
                 (unsigned long long)js_snapshot_space(inst), (unsigned long long)ia.bytes_held);
    /* Pages 0 and 1 (the header: own log signature and time) aside, the
     * two images are the same instant, and a's did not change. */
    uint8_t *a1 = tl_snap_image(inst, "a", &la, NULL), *b1 = tl_snap_image(inst, "b", &lb, NULL);
    cr_assert(la == lb && la > 2 * (size_t)p.page_size);
    cr_assert(!memcmp(a0 + 2 * p.page_size, b1 + 2 * p.page_size, la - 2 * p.page_size), "a and b hold the same pages");
    cr_assert(!memcmp(a0, a1, la), "a changed");
    free(a0);
    free(a1);
    free(b1);
    OK(js_snapshot_delete(inst, "a"));
    OK(js_snapshot_delete(inst, "b"));
    cr_assert_eq(js_snapshot_space(inst), 0);
    OK(js_close(inst));
}

Test(snapshot, lazy_pages_settled_by_a_clean_shutdown_hold_under_no_log)
{
    js_params p = lazy_params();
    char *dir = tl_tp("db");
    js_instance *inst = tl_create_open(dir, &p);
    tl_fill(inst, "w0", 0, 600, 500);
    OK(js_checkpoint(inst));
    tl_fill(inst, "w1", 0, 300, 500);      /* pending at the take */
    OK(js_snapshot_take(inst, "s1", NULL));
    unsigned char h0[32];
    tl_snap_hash(inst, "s1", h0);
    OK(js_close(inst));                    /* the final checkpoint resolves them */
    js_params nl = p;
    nl.no_log = 1;
    OK(js_open(dir, &nl, &inst));
    tl_snap_expect(inst, "s1", h0, "image changed across a clean restart");
    tl_fill(inst, "w1", 0, 300, 610);      /* no LSNs now: the pages must no longer be pending */
    OK(js_checkpoint(inst));
    tl_snap_expect(inst, "s1", h0, "image changed under no_log writes");
    OK(js_close(inst));
    inst = tl_reopen(dir);
    tl_snap_expect(inst, "s1", h0, "image changed after the no_log run");
    OK(js_close(inst));
}

Test(snapshot, delete_compacts_a_mostly_dead_index)
{
    js_params p = snap_params();
    char *dir = tl_tp("db"), idx[PATH_MAX];
    tl_pathf(idx, "%s/snapshots/store.idx", dir);
    js_instance *inst = tl_create_open(dir, &p);
    tl_fill(inst, "w0", 0, 600, 700);
    OK(js_checkpoint(inst));
    OK(js_snapshot_take(inst, "keep", NULL));
    overwrite_load(inst, 0);
    unsigned char h0[32];
    tl_snap_hash(inst, "keep", h0);
    struct stat st;
    off_t peak = 0;
    for (int r = 0; r < 16; r++) {
        OK(js_snapshot_take(inst, "tmp", NULL));
        overwrite_load(inst, r + 1);
        cr_assert_eq(stat(idx, &st), 0);
        if (st.st_size > peak)
            peak = st.st_size;
        OK(js_snapshot_delete(inst, "tmp"));
    }
    cr_assert_eq(stat(idx, &st), 0);
    cr_assert(peak > (64 << 10), "the test must grow the index past 64 KiB (peak %lld)", (long long)peak);
    /* Append-only, it never shrinks: smaller than its peak means rewritten. */
    cr_assert(st.st_size < peak, "index %lld bytes after the deletes, peak %lld", (long long)st.st_size,
              (long long)peak);
    tl_snap_expect(inst, "keep", h0, "image changed by the compaction");
    OK(js_close(inst));
    inst = tl_reopen(dir);
    tl_snap_expect(inst, "keep", h0, "image changed across a restart after compaction");
    OK(js_close(inst));
}

/* A checkpoint copies a batch (the pages turn clean) and writes it after
 * its WAL flush; a take in between must not read those pages from the
 * file, which still holds their older version until the write lands. */
/* Set the version in store.idx's header record (first record) to v. */
static void set_store_version(const char *dir, uint32_t v)
{
    char path[PATH_MAX];
    tl_pathf(path, "%s/snapshots/store.idx", dir);
    int fd = open(path, O_RDWR);
    cr_assert(fd >= 0);
    uint8_t r[64];
    cr_assert_eq(pread(fd, r, sizeof r, 0), (ssize_t)sizeof r);
    uint32_t len = pg_u32(r + 8);
    cr_assert(len <= sizeof r && pg_u16(r + 4) == 1, "header record");
    pg_put32(r + 20, v);
    pg_put32(r, js_crc32c(0, r + 4, len - 4));
    cr_assert_eq(pwrite(fd, r, len, 0), (ssize_t)len);
    close(fd);
}

Test(snapshot, store_version_1_opens_a_later_one_is_refused)
{
    js_params p = snap_params();
    char *dir = tl_tp("db");
    js_instance *inst = tl_create_open(dir, &p);
    tl_fill(inst, "w0", 0, 300, 500);
    OK(js_snapshot_take(inst, "s1", NULL));
    overwrite_load(inst, 0);
    unsigned char h0[32];
    tl_snap_hash(inst, "s1", h0);
    OK(js_close(inst));
    set_store_version(dir, 1);            /* as written before PEND records */
    inst = tl_reopen(dir);
    tl_snap_expect(inst, "s1", h0, "a version 1 store reads the same");
    OK(js_close(inst));
    set_store_version(dir, 3);
    js_params q = tl_test_params();
    inst = NULL;
    JET_ERR err = js_open(dir, &q, &inst);
    cr_assert_eq(err, JET_errInvalidDatabase, "a store of a later version: %d", err);
    cr_assert(strstr(js_errdetail(), "store version 3"), "says why: %s", js_errdetail());
}

/* js_snapshot_read_pieces (the daemon's splice path): the pieces, the file
 * ranges read only when emit runs, are the image js_snapshot_read gives,
 * at any offset and length; the ranges hold while a checkpoint waits to
 * write over them; emit's error is returned. */
typedef struct piece_rd {
    uint8_t *out;
    size_t got;
    int files, mems, stall, started;
    js_instance *inst;
    pthread_t ckpt;
} piece_rd;

static void *ckpt_over(void *arg)
{
    js_instance *inst = arg;
    tl_fill(inst, "w2", 0, 400, 530);    /* pages the snapshot reads in the file */
    OK(js_checkpoint(inst));
    return NULL;
}

static JET_ERR collect(void *ctx, const js_piece *p, size_t n)
{
    piece_rd *r = ctx;
    if (r->stall) {   /* a checkpoint overwriting the snapshot's pages now must wait */
        cr_assert_eq(pthread_create(&r->ckpt, NULL, ckpt_over, r->inst), 0);
        r->started = 1;
        tl_sleep_ms(300);
    }
    for (size_t i = 0; i < n; i++) {
        if (p[i].fd >= 0) {
            cr_assert_eq(pread(p[i].fd, r->out + r->got, p[i].len, (off_t)p[i].off), (ssize_t)p[i].len);
            r->files++;
        } else {
            memcpy(r->out + r->got, p[i].mem, p[i].len);
            r->mems++;
        }
        r->got += p[i].len;
    }
    if (r->stall) {
        r->stall = 0;
        return JET_errDiskIO;
    }
    return JET_errSuccess;
}

Test(snapshot, read_pieces_give_the_image_and_hold_until_consumed)
{
    js_params p = snap_params();
    js_instance *inst = tl_create_open(tl_tp("db"), &p);
    tl_fill(inst, "w0", 0, 600, 500);
    tl_fill(inst, "w2", 0, 400, 500);
    OK(js_checkpoint(inst));
    tl_fill(inst, "w1", 0, 100, 500);    /* dirty at the instant: pending pages */
    OK(js_snapshot_take(inst, "s1", NULL));
    overwrite_load(inst, 0);             /* saved pages */
    size_t len = 0;
    uint8_t *img = tl_snap_image(inst, "s1", &len, NULL);
    js_snapshot *s = NULL;
    OK(js_snapshot_open(inst, "s1", &s, NULL));
    const size_t steps[] = { 524288, 100000, 4096, 1 << 20 };
    piece_rd r = { .out = malloc(len + (1 << 20)), .inst = inst };
    uint8_t *scratch = malloc((1 << 20) + (64 << 10));
    js_piece pc[(1 << 20) / 4096 + 3];
    cr_assert(r.out && scratch);
    for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++) {
        r.got = 0;
        for (uint64_t off = 0; off <= len; off += steps[k]) {
            size_t before = r.got;
            OK(js_snapshot_read_pieces(s, off, steps[k], scratch, pc, steps[k] / 4096 + 3, collect, &r));
            cr_assert_eq(r.got - before, off + steps[k] <= len ? steps[k] : len - off);
        }
        cr_assert_eq(r.got, len);
        cr_assert(!memcmp(r.out, img, len), "pieces of %zu bytes differ from the image", steps[k]);
    }
    cr_assert(r.files > 0 && r.mems > 0, "both kinds of piece (%d file, %d memory)", r.files, r.mems);

    /* Held: emit stalls while a checkpoint tries to write over the pages. */
    r.got = 0;
    r.stall = 1;
    cr_assert_eq(js_snapshot_read_pieces(s, 0, 1 << 20, scratch, pc, 0, collect, &r), JET_errInvalidParameter);
    for (uint64_t off = 0; off < len; off += 1 << 20) {
        size_t before = r.got;
        JET_ERR err = js_snapshot_read_pieces(s, off, 1 << 20, scratch, pc, sizeof pc / sizeof pc[0], collect, &r);
        cr_assert(err == JET_errSuccess || (off == 0 && err == JET_errDiskIO), "emit's error returned: %d", err);
        cr_assert_gt(r.got, before);
    }
    cr_assert_eq(r.got, len);
    cr_assert(!memcmp(r.out, img, len), "a checkpoint changed pieces before they were consumed");
    cr_assert(r.started);
    pthread_join(r.ckpt, NULL);
    OK(js_snapshot_read_pieces(s, len, 1 << 20, scratch, pc, sizeof pc / sizeof pc[0], collect, &r));
    js_snapshot_close(s);
    free(r.out);
    free(scratch);
    free(img);
    OK(js_close(inst));
}

/* Each handle's file pieces come through a descriptor of its own (its
 * kernel read-ahead is the handle's: snapread.c), closed with the handle,
 * and read the image like any other. */
typedef struct fd_seen {
    int fd, pieces;
    uint8_t *out;
    size_t got;
} fd_seen;

static JET_ERR note_fd(void *ctx, const js_piece *p, size_t n)
{
    fd_seen *f = ctx;
    for (size_t i = 0; i < n; i++) {
        if (p[i].fd >= 0) {
            cr_assert(f->fd < 0 || f->fd == p[i].fd, "one descriptor per handle");
            f->fd = p[i].fd;
            f->pieces++;
            cr_assert_eq(pread(p[i].fd, f->out + f->got, p[i].len, (off_t)p[i].off), (ssize_t)p[i].len);
        } else {
            memcpy(f->out + f->got, p[i].mem, p[i].len);
        }
        f->got += p[i].len;
    }
    return JET_errSuccess;
}

Test(snapshot, read_pieces_use_a_descriptor_per_handle)
{
    js_params p = snap_params();
    js_instance *inst = tl_create_open(tl_tp("db"), &p);
    tl_fill(inst, "w0", 0, 600, 500);
    OK(js_checkpoint(inst));
    OK(js_snapshot_take(inst, "s1", NULL));
    overwrite_load(inst, 0);
    size_t len = 0;
    uint8_t *img = tl_snap_image(inst, "s1", &len, NULL);
    js_snapshot *s[2] = { NULL, NULL };
    fd_seen f[2];
    uint8_t *scratch = malloc((1 << 20) + (64 << 10));
    js_piece pc[(1 << 20) / 4096 + 3];
    cr_assert(scratch);
    for (int h = 0; h < 2; h++) {
        OK(js_snapshot_open(inst, "s1", &s[h], NULL));
        f[h] = (fd_seen){ .fd = -1, .out = malloc(len + (1 << 20)) };
        cr_assert(f[h].out);
    }
    for (uint64_t off = 0; off < len; off += 1 << 20)
        for (int h = 0; h < 2; h++)   /* interleaved, as two readers would */
            OK(js_snapshot_read_pieces(s[h], off, 1 << 20, scratch, pc, sizeof pc / sizeof pc[0], note_fd, &f[h]));
    for (int h = 0; h < 2; h++) {
        cr_assert_eq(f[h].got, len);
        cr_assert(f[h].pieces > 0, "pages read in the file");
        cr_assert(!memcmp(f[h].out, img, len), "handle %d reads the image", h);
    }
    cr_assert_neq(f[0].fd, f[1].fd, "each handle has its own descriptor");
    js_snapshot_close(s[0]);
    cr_assert_eq(fcntl(f[0].fd, F_GETFD), -1, "closed with its handle");
    cr_assert_neq(fcntl(f[1].fd, F_GETFD), -1, "the other handle's stays");
    js_snapshot_close(s[1]);
    for (int h = 0; h < 2; h++)
        free(f[h].out);
    free(scratch);
    free(img);
    OK(js_close(inst));
}
