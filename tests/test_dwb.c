/*
 * test_dwb.c - the doublewrite buffer (core/store/dwb.c): a page of
 * jetsnap.edb torn by a crash in the middle of a checkpoint's write is
 * repaired at the next open, with every committed change; without the
 * buffer the same tear is an error (the log holds page deltas, no full
 * images); a crash tearing the buffer's own write loses nothing; and a
 * page damaged after its write was made durable is reported, never
 * "repaired" from an image the buffer still happens to hold.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jetsnap.h"
#include "bkset.h"
#include "jstool.h"
#include "proc.h"
#include "testlib.h"

#define NKEYS 2000
#define PS 8192

static js_params dwb_params(void)
{
    js_params p;
    js_params_default(&p);
    p.page_size = PS;
    p.commit_mode = JS_COMMIT_DURABLE;
    p.checkpoint_ms = 3600 * 1000;   /* checkpoints only when the test asks */
    return p;
}

static void fini(void)
{
    js_fault_reset();
}

TestSuite(dwb, .fini = fini, .timeout = 120);

/* Value of key i in round r: 200 bytes naming both. */
static size_t value_of(char *v, int i, int round)
{
    memset(v, 'a' + round, 200);
    snprintf(v, 200, "r%d:%d:", round, i);
    return 200;
}

/* Write keys [0, NKEYS) with round's values, one transaction per 100. */
static int write_round(js_session *s, int round)
{
    char k[32], v[200];
    for (int i = 0; i < NKEYS; i++) {
        if (i % 100 == 0 && js_txn_begin(s, 0))
            return -1;
        snprintf(k, sizeof k, "key%06d", i);
        if (js_put(s, k, strlen(k), v, value_of(v, i, round)))
            return -1;
        if (i % 100 == 99 && js_txn_commit(s, JS_COMMIT_FLAG_DURABLE))
            return -1;
    }
    return 0;
}

/* Every key holds its round-1 value. */
static void expect_round(js_instance *inst, int round)
{
    js_session *s;
    OK(js_session_open(inst, &s));
    uint64_t n;
    OK(js_count(s, &n));
    cr_assert_eq(n, NKEYS, "expected %d keys, found %llu", NKEYS, (unsigned long long)n);
    for (int i = 0; i < NKEYS; i++) {
        char k[32], want[200];
        void *v;
        size_t vl;
        snprintf(k, sizeof k, "key%06d", i);
        OK(js_get(s, k, strlen(k), &v, &vl));
        size_t wl = value_of(want, i, round);
        cr_assert(vl == wl && !memcmp(v, want, wl), "%s does not hold its round-%d value", k, round);
        free(v);
    }
    js_session_close(s);
}

/* Round 0 checkpointed, round 1 committed (durable, only in the log and
 * the pool), then the checkpoint's in-place write of jetsnap.edb is cut
 * one and a half pages in, and the process dies. */
static void tear_checkpoint_write(js_instance *inst, js_session *s)
{
    if (write_round(s, 0) || js_checkpoint(inst) || write_round(s, 1))
        _exit(4);
    js_fault_arm(JS_FAULT_WRITE, 1, EIO, PS + PS / 2, JS_DB_FILE);
    if (js_checkpoint(inst) == JET_errSuccess)
        _exit(5);
    _exit(0);   /* the crash: nothing closed, nothing more written */
}

/* A new instance directory in which body ran and crashed. */
static char *crashed(void (*body)(js_instance *, js_session *))
{
    char *dir = tl_tmpdir("jsdwb");
    js_params p = dwb_params();
    OK(js_create(dir, &p));
    tl_in_crashing_child(dir, &p, body);
    return dir;
}

/* The instance crashed with a torn page.  js_check proves the tear and
 * tells it from damage: the page fails its checksum, and jetsnap.dwb holds
 * its image for the next open, so it is repairable, not bad. */
static char *crash_with_torn_page(void)
{
    char *dir = crashed(tear_checkpoint_write);
    js_check_report rep;
    JET_ERR err = js_check(dir, &rep);
    cr_assert_eq(err, JET_errSuccess, "%s (%d): %s", js_errname(err), err, rep.first_error);
    cr_assert(rep.pages_repairable >= 1, "the write did not tear a page");
    cr_assert_eq(rep.pages_bad, 0);
    return dir;
}

/* Events of an open, kept for the assertions. */
typedef struct seen_events {
    char text[4096];
} seen_events;

static void keep_event(void *ctx, const js_event *ev)
{
    seen_events *e = ctx;
    size_t len = strlen(e->text);
    snprintf(e->text + len, sizeof e->text - len, "%d %s\n", ev->id, ev->message);
}

Test(dwb, torn_checkpoint_write_is_repaired)
{
    char *dir = crash_with_torn_page();
    js_params p = dwb_params();
    /* The tool says so too, and passes. */
    struct tl_run r;
    tl_build_bin(tl_jetsnap_bin, "jetsnap");
    RUN(&r, "check", dir);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_not_null(strstr(r.out, "pages_bad: 0\npages_repairable: "), "%s", r.out);
    tl_run_free(&r);
    js_instance *inst;
    seen_events ev = { .text = "" };
    OK(js_instance_new(dir, &p, &inst));
    js_set_event_sink(inst, keep_event, &ev);
    OK(js_instance_start(inst));
    cr_assert(strstr(ev.text, "repaired from " JS_DWB_FILE) != NULL, "no repair event; events:\n%s", ev.text);
    expect_round(inst, 1);
    OK(js_close(inst));
    js_check_report rep;
    OK(js_check(dir, &rep));
    cr_assert_eq(rep.pages_repairable, 0);
    free(dir);
}

Test(dwb, without_the_buffer_a_torn_page_is_an_error)
{
    char *dir = crash_with_torn_page();
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, JS_DWB_FILE);
    cr_assert_eq(unlink(path), 0);
    js_check_report rep;
    cr_assert_eq(js_check(dir, &rep), JET_errReadVerifyFailure, "check without the buffer");
    cr_assert(rep.pages_bad >= 1 && rep.pages_repairable == 0);
    js_params p = dwb_params();
    js_instance *inst = NULL;
    JET_ERR err = js_open(dir, &p, &inst);
    cr_assert_eq(err, JET_errReadVerifyFailure, "open without the buffer: %s (%d): %s", js_errname(err), err,
                 js_errdetail());
    free(dir);
}

/* A torn page counts as repairable only when no process holds the
 * instance (a running one marks its checkpoint's batches synced, it does
 * not repair from them), and an unreadable buffer leaves the check to the
 * pages alone. */
Test(dwb, check_trusts_the_buffer_only_of_a_crashed_instance)
{
    char *dir = crash_with_torn_page();
    char lock[PATH_MAX], dwb[PATH_MAX], moved[PATH_MAX];
    js_check_report rep;
    snprintf(lock, sizeof lock, "%s/%s", dir, JS_LOCK_FILE);
    int fd = open(lock, O_RDWR | O_CREAT, 0600);
    cr_assert(fd >= 0 && flock(fd, LOCK_EX) == 0);
    cr_assert_eq(js_check(dir, &rep), JET_errReadVerifyFailure);
    cr_assert(rep.pages_bad >= 1 && rep.pages_repairable == 0);
    close(fd);

    snprintf(dwb, sizeof dwb, "%s/%s", dir, JS_DWB_FILE);
    snprintf(moved, sizeof moved, "%s/dwb.saved", dir);
    cr_assert_eq(rename(dwb, moved), 0);
    cr_assert_eq(mkdir(dwb, 0700), 0);   /* opens, and every read of it fails */
    JET_ERR err = js_check(dir, &rep);
    cr_assert_eq(err, JET_errReadVerifyFailure, "%s (%d): %s", js_errname(err), err, js_errdetail());
    cr_assert(rep.pages_bad >= 1 && rep.pages_repairable == 0);
    cr_assert_eq(rmdir(dwb), 0);
    cr_assert_eq(rename(moved, dwb), 0);
    OK(js_check(dir, &rep));
    cr_assert(rep.pages_repairable >= 1);
    free(dir);
}

/* Round 0 checkpointed, round 1 committed, then the checkpoint's write of
 * the doublewrite buffer itself is cut and the process dies: jetsnap.edb
 * was never touched. */
static void tear_buffer_write(js_instance *inst, js_session *s)
{
    if (write_round(s, 0) || js_checkpoint(inst) || write_round(s, 1))
        _exit(4);
    js_fault_arm(JS_FAULT_WRITE, 2, EIO, PS / 2, JS_DWB_FILE);   /* the first write is the batch record */
    if (js_checkpoint(inst) == JET_errSuccess)
        _exit(5);
    _exit(0);
}

Test(dwb, torn_buffer_write_loses_nothing)
{
    char *dir = crashed(tear_buffer_write);
    js_params p = dwb_params();
    js_check_report rep;
    OK(js_check(dir, &rep));   /* no page of jetsnap.edb was written */
    js_instance *inst;
    OK(js_open(dir, &p, &inst));
    expect_round(inst, 1);
    OK(js_close(inst));
    free(dir);
}

/* Whether some slot of DBDIR/jetsnap.dwb holds page pgno. */
static int buffer_holds_page(const char *dir, uint32_t pgno)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, JS_DWB_FILE);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    unsigned char *slot = malloc(PS);
    int found = 0;
    while (!found && fread(slot, 1, PS, f) == PS) {
        uint32_t no = (uint32_t)slot[4] | (uint32_t)slot[5] << 8 | (uint32_t)slot[6] << 16 |
                      (uint32_t)slot[7] << 24;   /* page.h: u32 pgno at 4 */
        found = no == pgno && slot[16] != 0;     /* and a page type at 16 */
    }
    free(slot);
    fclose(f);
    return found;
}

/* Flip one bit near the end of page pgno of DBDIR/jetsnap.edb (damage
 * that is no tear: the page's own checksum fails). */
static void flip_byte(const char *dir, uint32_t pgno)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, JS_DB_FILE);
    int fd = open(path, O_RDWR);
    cr_assert(fd >= 0);
    unsigned char b;
    off_t at = (off_t)pgno * PS + PS - 10;
    cr_assert_eq(pread(fd, &b, 1, at), 1);
    b ^= 0x40;
    cr_assert_eq(pwrite(fd, &b, 1, at), 1);
    close(fd);
}

Test(dwb, damage_after_a_durable_write_is_reported_not_repaired)
{
    char *dir = tl_tmpdir("jsdwb");
    js_params p = dwb_params();
    js_instance *inst;
    js_session *s;
    inst = tl_create_open(dir, &p);
    OK(js_session_open(inst, &s));
    cr_assert_eq(write_round(s, 0), 0);
    OK(js_checkpoint(inst));
    cr_assert_eq(write_round(s, 1), 0);
    OK(js_checkpoint(inst));
    js_session_close(s);
    OK(js_close(inst));
    /* A tree page the last checkpoint wrote through the buffer, which still
     * holds its image; flip one byte of it in jetsnap.edb. */
    uint32_t victim = 3;
    while (victim < 64 && !buffer_holds_page(dir, victim))
        victim++;
    cr_assert_lt(victim, 64, "the buffer holds no image of a tree page");
    flip_byte(dir, victim);
    JET_ERR err = js_open(dir, &p, &inst);
    if (err == JET_errSuccess) {
        /* Opened (the page is not on recovery's path): reading every key
         * must then find the damage, not stale data. */
        js_check_report rep;
        OK(js_close(inst));
        err = js_check(dir, &rep);
    }
    cr_assert_eq(err, JET_errReadVerifyFailure, "the damaged page went unnoticed: %s (%d)", js_errname(err), err);
    free(dir);
}

/* ---- found by review: each failed before the fix it names ---- */

/* A checkpoint of more pages than the buffer holds syncs jetsnap.edb in the
 * middle; when that fsync fails, the pages written before it may be lost
 * while the pool holds them clean, so the instance must stop (as after the
 * final fsync), not retry from a later redo point as for a failed write. */
Test(dwb, a_failed_fsync_in_the_middle_of_a_checkpoint_stops_the_instance)
{
    char *dir = tl_tmpdir("jsdwb");
    js_params p = dwb_params();
    js_instance *inst;
    js_session *s;
    inst = tl_create_open(dir, &p);
    OK(js_session_open(inst, &s));
    static char big[3000];
    for (int i = 0; i < 1500; i++) {   /* about 560 dirty pages: more than two batches */
        char k[32];
        memset(big, 'a' + i % 26, sizeof big);
        snprintf(k, sizeof k, "big%06d", i);
        OK(js_put(s, k, strlen(k), big, sizeof big));
    }
    js_fault_arm(JS_FAULT_FSYNC, 1, ENOSPC, -1, JS_DB_FILE);
    JET_ERR err = js_checkpoint(inst);
    js_fault_reset();
    cr_assert_eq(err, JET_errDiskFull, "the checkpoint: %s (%d)", js_errname(err), err);
    err = js_put(s, "after", 5, "x", 1);
    cr_assert_eq(err, JET_errInstanceUnavailable, "a write after the failed fsync: %s (%d)", js_errname(err), err);
    js_session_close(s);
    js_close(inst);
    OK(js_open(dir, &p, &inst));   /* recovery from the previous redo point */
    OK(js_session_open(inst, &s));
    uint64_t n;
    OK(js_count(s, &n));
    cr_assert_eq(n, 1500);
    js_session_close(s);
    OK(js_close(inst));
    free(dir);
}

/* The checkpoint's in-place writes reach the page cache, then its fsync
 * fails and the process dies: at the next start the batches are recorded
 * as synced, so jetsnap.edb must have been fsynced before (else a power
 * loss could still tear a page no batch covers any more). */
static void die_before_the_fsync(js_instance *inst, js_session *s)
{
    if (write_round(s, 0) || js_checkpoint(inst) || write_round(s, 1))
        _exit(4);
    js_fault_arm(JS_FAULT_FSYNC, 1, EIO, -1, JS_DB_FILE);
    if (js_checkpoint(inst) == JET_errSuccess)
        _exit(5);
    _exit(0);
}

static uint64_t dwb_synced(const char *dir)
{
    char path[PATH_MAX];
    unsigned char b[44];
    snprintf(path, sizeof path, "%s/%s", dir, JS_DWB_FILE);
    FILE *f = fopen(path, "rb");
    cr_assert(f && fread(b, 1, sizeof b, f) == sizeof b);
    fclose(f);
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | b[36 + i];   /* the header's u64 synced */
    return v;
}

Test(dwb, start_syncs_the_database_before_it_records_batches_as_synced)
{
    char *dir = crashed(die_before_the_fsync);
    js_params p = dwb_params();
    uint64_t before = dwb_synced(dir);
    /* The first fsync of jetsnap.edb fails: the start must fail before it
     * records the batches as synced. */
    js_instance *inst;
    OK(js_instance_new(dir, &p, &inst));
    js_fault_arm(JS_FAULT_FSYNC, 1, EIO, -1, JS_DB_FILE);
    JET_ERR err = js_instance_start(inst);
    js_fault_reset();
    js_close(inst);
    cr_assert_eq(err, JET_errDiskIO, "the start: %s (%d)", js_errname(err), err);
    cr_assert_eq(dwb_synced(dir), before, "batches recorded as synced before " JS_DB_FILE " was fsynced");
    OK(js_open(dir, &p, &inst));
    expect_round(inst, 1);
    OK(js_close(inst));
    free(dir);
}

/* A crash that wrote a batch's record but cut its images leaves, in the
 * slots after the record, valid images of an older, synced batch.  They
 * must not pass for the batch's: one of them would "repair" a page damaged
 * otherwise with a version older than the redo point. */
static void put_range(js_session *s, int lo, int hi, int round)
{
    char k[32], v[200];
    if (js_txn_begin(s, 0))
        _exit(4);
    for (int i = lo; i < hi; i++) {
        snprintf(k, sizeof k, "key%06d", i);
        if (js_put(s, k, strlen(k), v, value_of(v, i, round)))
            _exit(4);
    }
    if (js_txn_commit(s, JS_COMMIT_FLAG_DURABLE))
        _exit(4);
}

static void cut_after_stale_images(js_instance *inst, js_session *s)
{
    put_range(s, 0, NKEYS, 0);
    if (js_checkpoint(inst))
        _exit(4);
    put_range(s, 1040, 1060, 1);   /* one leaf, its round-0 image stays in a later slot */
    if (js_checkpoint(inst))
        _exit(4);
    put_range(s, 0, 900, 2);
    put_range(s, 1200, NKEYS, 2);
    /* The batch's second write (its images) stops after 6 pages. */
    js_fault_arm(JS_FAULT_WRITE, 2, EIO, 6L * PS, JS_DWB_FILE);
    if (js_checkpoint(inst) == JET_errSuccess)
        _exit(5);
    _exit(0);
}

Test(dwb, a_record_without_its_images_is_not_used)
{
    char *dir = crashed(cut_after_stale_images);
    js_params p = dwb_params();
    /* Damage the leaf holding key001050 (bit rot, not a tear), found in
     * the file as the crash left it. */
    js_instance *inst;
    js_session *s;
    uint32_t victim = 0;
    {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", dir, JS_DB_FILE);
        FILE *f = fopen(path, "rb");
        cr_assert_not_null(f);
        static unsigned char pg[PS];
        for (uint32_t no = 0; !victim && fread(pg, 1, PS, f) == PS; no++)
            if (no >= 3 && pg[16] == 3 && memmem(pg, PS, "key001050", 9))   /* a leaf (page.h) */
                victim = no;
        fclose(f);
        cr_assert_neq(victim, 0, "no leaf holds key001050");
    }
    flip_byte(dir, victim);
    JET_ERR err = js_open(dir, &p, &inst);
    int stale = 0, failed = err != JET_errSuccess;
    if (!err) {
        OK(js_session_open(inst, &s));
        for (int i = 1040; i < 1060; i++) {
            char k[32], want[200];
            void *v;
            size_t vl;
            snprintf(k, sizeof k, "key%06d", i);
            JET_ERR g = js_get(s, k, strlen(k), &v, &vl);
            failed |= g == JET_errReadVerifyFailure;
            if (!g) {
                stale += vl != value_of(want, i, 1) || memcmp(v, want, vl);
                free(v);
            }
        }
        js_session_close(s);
        js_close(inst);
    }
    cr_assert_eq(stale, 0, "%d keys read an older value than committed", stale);
    cr_assert(failed, "the damaged page %u went unnoticed", victim);
    free(dir);
}

/* A buffer file of another database (or one torn before its first sync) is
 * emptied at start: none of its slots survives to pass for ours. */
Test(dwb, a_buffer_not_ours_is_emptied)
{
    char *a = tl_tmpdir("jsdwb"), *b = tl_tmpdir("jsdwb");
    js_params p = dwb_params();
    js_instance *inst;
    js_session *s;
    inst = tl_create_open(a, &p);
    OK(js_session_open(inst, &s));
    cr_assert_eq(write_round(s, 0), 0);
    OK(js_checkpoint(inst));
    js_session_close(s);
    OK(js_close(inst));
    OK(js_create(b, &p));
    cr_assert_eq(tl_sh("cp '%s/%s' '%s/%s'", a, JS_DWB_FILE, b, JS_DWB_FILE), 0);
    OK(js_open(b, &p, &inst));
    OK(js_close(inst));
    char pa[PATH_MAX], pb[PATH_MAX];
    snprintf(pa, sizeof pa, "%s/%s", a, JS_DWB_FILE);
    snprintf(pb, sizeof pb, "%s/%s", b, JS_DWB_FILE);
    FILE *fa = fopen(pa, "rb"), *fb = fopen(pb, "rb");
    cr_assert(fa && fb);
    static unsigned char sa[PS], sb[PS], zero[PS];
    int kept = 0, slots = 0;
    while (fread(sa, 1, PS, fa) == PS && fread(sb, 1, PS, fb) == PS) {
        slots++;
        kept += memcmp(sa, zero, PS) != 0 && !memcmp(sa, sb, PS);
    }
    fclose(fa);
    fclose(fb);
    cr_assert_gt(slots, 2);
    cr_assert_eq(kept, 0, "%d slots of the other database's buffer survived", kept);
    free(a);
    free(b);
}
