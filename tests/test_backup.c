/*
 * test_backup.c - online backup and restore through the core API
 * (SPEC sections 4 and 6, DESIGN sections 3, 4 and 6): online full
 * backups under a writer, full + incrementals with roll-forward, and
 * truncation and header stamps.  The other backup suites:
 * test_backup_faults.c (injected faults, SIGKILL), test_backup_errors.c
 * (every backup error) and test_backup_restore.c (corruption, restore
 * errors).
 *
 * Every test works in its own mkdtemp directory under /tmp, with small log
 * generations (64 KiB) so the log rolls often, 4 KiB pages and lazy commits
 * unless durability is what is under test.  Every backup set a test makes is
 * checked with `sha256sum -c SHA256SUMS` run inside it (tl_assert_set_sums).
 * The helpers are in tests/lib/bkset.h.
 *
 * Some tests are regressions for engine bugs they found (each says which):
 *   verify_accepts_online_copy_of_growing_database   core/check.c check_db
 *   until_gen_inside_set_is_honoured_or_refused      core/restore.c js_restore
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "jetsnap.h"
#include "bkset.h"
#include "proc.h"
#include "testlib.h"

TestSuite(backup, .init = tl_bk_setup, .fini = tl_bk_teardown, .timeout = 120);

/* ================================================================== */
/* 1. Online full backup under a concurrent monotonic writer             */
/* ================================================================== */
Test(backup, online_full_under_monotonic_writer, .timeout = 120)
{
    const char *inst_dir = tl_tp("inst"), *dest = tl_tp("bk1"), *dest2 = tl_tp("bk2");
    js_params p = tl_test_params();
    p.checkpoint_ms = 20;   /* the flusher runs during the copy too */
    js_instance *inst = tl_create_open(inst_dir, &p);
    tl_fill(inst, "pre", 0, 3000, 900);   /* a few MB, so the copy takes several batches */

    tl_mwriter w;
    tl_mwriter_start(&w, inst, UINT64_MAX, 0, -1);
    while (atomic_load(&w.acked) < 300)
        usleep(1000);
    uint64_t acked_before = atomic_load(&w.acked);

    tl_cbrec rec = { .monotonic_units = 1, .sleep_us = 3000, .w = &w };
    OK(js_backup(inst, dest, JS_BACKUP_CREATE_DIR, tl_record_cb, &rec));
    uint64_t acked_after = atomic_load(&w.acked);
    tl_assert_set_sums(dest);
    cr_assert_eq(rec.begins, 1);
    cr_assert_eq(rec.completes, 1);
    cr_assert_eq(rec.fails, 0);
    cr_assert(rec.progresses > 3, "only %d progress reports", rec.progresses);
    cr_assert_eq(rec.last_units, 100);
    cr_assert_gt(acked_after, acked_before, "the writer was blocked for the length of the backup");
    tl_binfo bi;
    tl_read_binfo(dest, &bi);
    cr_assert_str_eq(bi.type, "full");
    cr_assert_eq(rec.gen_low, bi.gen_low);
    cr_assert_eq(rec.gen_high, bi.gen_high);

    /* Keep writing a little, then stop: the set must not see any of it. */
    while (atomic_load(&w.acked) < acked_after + 200)
        usleep(1000);
    tl_mwriter_stop(&w);
    uint64_t final_acked = atomic_load(&w.acked);

    tl_restore_ok(dest, tl_tp("r1"), NULL, 0);
    js_instance *r1 = tl_reopen(tl_tp("r1"));
    uint64_t m = tl_check_monotonic(r1, 3000);
    cr_assert_geq(m, acked_before, "restored M=%llu below %llu acknowledged before the backup began",
                  (unsigned long long)m, (unsigned long long)acked_before);
    cr_assert_geq(rec.acked_at_roll, acked_before);
    cr_assert_geq(m, rec.acked_at_roll, "restored M=%llu below %llu acknowledged before the log roll",
                  (unsigned long long)m, (unsigned long long)rec.acked_at_roll);
    cr_assert_leq(m, final_acked);
    /* The prefill is intact too. */
    tl_check_fill(r1, "pre", 0, 3000, 900);
    OK(js_close(r1));

    /* A quiet second backup equals its restored copy, key for key. */
    tl_kvdump live, restored;
    tl_dump_inst(inst, &live);
    cr_assert_eq(tl_check_monotonic(inst, 3000), final_acked);
    tl_backup_ok(inst, dest2, JS_BACKUP_CREATE_DIR | JS_BACKUP_ATOMIC);
    OK(js_close(inst));
    tl_restore_ok(dest2, tl_tp("r2"), NULL, 0);
    tl_dump_dir(tl_tp("r2"), &restored);
    ASSERT_DUMP_EQ(&live, &restored, "quiet backup vs its restore");
    cr_assert_eq(live.n, 3000 + final_acked + 1);
    tl_dump_free(&live);
    tl_dump_free(&restored);
    OK(js_verify(dest2, NULL, NULL, NULL));
    /* js_verify(dest) is not asserted here: see
     * verify_accepts_online_copy_of_growing_database (engine bug). */
}

/* While the job is in its copy-database phase (the file size already
 * read), the database grows and a checkpoint writes the new meta page and
 * extends the file: the copy's meta page then names more pages than the
 * copy holds.  That is a normal fuzzy online copy: restore replays the
 * full page images of the new pages. */
typedef struct grow_ctx {
    js_instance *inst;
    int done;
} grow_ctx;

static int grow_cb(void *ctx, int snp, int snt, const js_progress *p)
{
    (void)snp;
    grow_ctx *g = ctx;
    if (snt == JS_SNT_PROGRESS && !g->done && p->phase && !strcmp(p->phase, "copy-database")) {
        g->done = 1;
        tl_fill(g->inst, "grow", 0, 2000, 900);
        OK(js_checkpoint(g->inst));
    }
    return 0;
}

static void online_copy_of_growing_database(int check_verify)
{
    const char *inst_dir = tl_tp("inst"), *dest = tl_tp("bk");
    js_params p = tl_test_params();
    js_instance *inst = tl_create_open(inst_dir, &p);
    tl_fill(inst, "k", 0, 200, 300);
    grow_ctx g = { .inst = inst };
    OK(js_backup(inst, dest, JS_BACKUP_CREATE_DIR, grow_cb, &g));
    cr_assert(g.done);
    tl_assert_set_sums(dest);
    tl_kvdump live, d;
    tl_dump_inst(inst, &live);
    OK(js_close(inst));
    tl_restore_ok(dest, tl_tp("r"), NULL, 0);
    tl_dump_dir(tl_tp("r"), &d);
    ASSERT_DUMP_EQ(&d, &live, "restore of a copy taken while the database grew");
    tl_dump_free(&d);
    tl_dump_free(&live);
    if (check_verify) {
        js_check_report rep;
        memset(&rep, 0, sizeof rep);
        JET_ERR e = js_verify(dest, &rep, NULL, NULL);
        cr_assert_eq(e, JET_errSuccess, "js_verify of a set that restores: %s (%d): %s [%s]", js_errname(e), e,
                     js_errdetail(), rep.first_error);
    }
}

Test(backup, online_copy_of_growing_database_restores, .timeout = 120)
{
    online_copy_of_growing_database(0);
}

/* Regression (fixed; core/check.c, check_db, used by js_check and js_verify): a
 * full backup copies the database fuzzily (pages changed or added during the
 * copy are put right by replay at restore), but check_db treats the copy
 * like a consistent database: pages below the copied meta page's high-water
 * mark that are still zero ("page N ...: page was never written"), or a
 * high-water mark beyond the copied file ("N pages in use but the file holds
 * M"), fail with JET_errReadVerifyFailure.  So js_verify / `jetsnap verify`
 * rejects a set that restores correctly (SPEC: verify exits 0 only if the
 * set would restore... and here it would).  Seen intermittently with a
 * concurrent writer (online_full_under_monotonic_writer: "page 1549 of
 * .../jetsnap.edb: page was never written"); made deterministic here by
 * growing the database and checkpointing inside the copy-database phase. */
Test(backup, verify_accepts_online_copy_of_growing_database, .timeout = 120)
{
    online_copy_of_growing_database(1);
}

/* ================================================================== */
/* 2. Full + three incrementals, roll-forward, until_gen                 */
/* ================================================================== */
static void full_plus_incrementals(unsigned atomic)
{
    const char *inst_dir = tl_tp("inst"), *dest = tl_tp("bk");
    js_params p = tl_test_params();
    js_instance *inst = tl_create_open(inst_dir, &p);
    tl_kvdump at_inc3, at_roll, at_close, d;

    tl_fill(inst, "a", 0, 400, 300);
    tl_backup_ok(inst, dest, JS_BACKUP_CREATE_DIR | atomic);
    tl_binfo b0;
    tl_read_binfo(tl_set_of(dest, atomic), &b0);
    cr_assert_str_eq(b0.type, "full");

    tl_fill(inst, "b", 0, 300, 500);
    tl_del_some(inst, "a", 0, 400, 7);
    tl_backup_ok(inst, dest, JS_BACKUP_INCREMENTAL | atomic);
    tl_binfo b1;
    tl_read_binfo(tl_set_of(dest, atomic), &b1);
    cr_assert_str_eq(b1.type, "incremental");
    cr_assert_eq(b1.gen_low, b0.gen_low, "an incremental set still starts at the full backup's gen_low");
    cr_assert_gt(b1.gen_high, b0.gen_high);

    tl_fill(inst, "a", 0, 200, 700);   /* overwrites */
    tl_backup_ok(inst, dest, JS_BACKUP_INCREMENTAL | atomic);

    tl_fill(inst, "c", 0, 500, 200);
    tl_del_some(inst, "b", 0, 300, 3);
    tl_backup_ok(inst, dest, JS_BACKUP_INCREMENTAL | atomic);
    tl_dump_inst(inst, &at_inc3);
    tl_binfo b3;
    tl_read_binfo(tl_set_of(dest, atomic), &b3);
    cr_assert_eq(b3.gen_low, b0.gen_low);
    cr_assert_eq(b3.full_gen_high, b0.gen_high);
    for (uint32_t g = b3.gen_low; g <= b3.gen_high; g++) {
        char gp[PATH_MAX];
        tl_gen_path(gp, tl_set_of(dest, atomic), g);
        cr_assert(tl_exists(gp), "the set lacks edb%08X.log", g);
    }

    /* After the last incremental: two batches separated by a roll. */
    tl_fill(inst, "d", 0, 300, 400);
    tl_del_some(inst, "c", 0, 500, 5);
    tl_dump_inst(inst, &at_roll);
    uint32_t rolled = 0;
    OK(js_log_roll(inst, &rolled));
    cr_assert_gt(rolled, b3.gen_high);
    tl_fill(inst, "e", 0, 300, 400);
    tl_put_str(inst, "last", "commit");
    tl_dump_inst(inst, &at_close);
    OK(js_close(inst));

    js_info si;
    OK(js_info_read(dest, &si));
    cr_assert(si.is_backup_set);
    cr_assert_str_eq(si.backup_type, "incremental");

    tl_restore_ok(dest, tl_tp("r_set"), NULL, 0);
    tl_dump_dir(tl_tp("r_set"), &d);
    ASSERT_DUMP_EQ(&d, &at_inc3, "restore of the set vs the state at the last incremental");
    tl_dump_free(&d);

    tl_restore_ok(dest, tl_tp("r_logs"), inst_dir, 0);
    tl_dump_dir(tl_tp("r_logs"), &d);
    ASSERT_DUMP_EQ(&d, &at_close, "restore --logs live dir vs the last commit before close");
    tl_dump_free(&d);

    tl_restore_ok(dest, tl_tp("r_until"), inst_dir, rolled);
    tl_dump_dir(tl_tp("r_until"), &d);
    ASSERT_DUMP_EQ(&d, &at_roll, "restore --logs --until-gen vs the state at the roll");
    tl_dump_free(&d);

    /* until_gen below what the database copy needs. */
    if (b3.full_gen_high > 1)
        FAILS_WITH(js_restore(dest, tl_tp("r_low"), inst_dir, b3.full_gen_high - 1, NULL, NULL),
                   JET_errEndingRestoreLogTooLow);
    cr_assert(!tl_exists(tl_tp("r_low")));

    /* The restored instances are live instances: they take writes and
     * backups of their own. */
    js_instance *r = tl_reopen(tl_tp("r_logs"));
    tl_put_str(r, "after", "restore");
    tl_backup_ok(r, tl_tp("bk_of_restored"), JS_BACKUP_CREATE_DIR);
    OK(js_close(r));
    OK(js_verify(dest, NULL, NULL, NULL));
    tl_assert_set_sums(tl_set_of(dest, atomic));

    tl_dump_free(&at_inc3);
    tl_dump_free(&at_roll);
    tl_dump_free(&at_close);
}

Test(backup, full_and_three_incrementals_atomic, .timeout = 120)
{
    full_plus_incrementals(JS_BACKUP_ATOMIC);
}

Test(backup, full_and_three_incrementals_plain, .timeout = 120)
{
    full_plus_incrementals(0);
}

/* Regression (fixed; core/restore.c, js_restore): until_gen is applied only to the
 * roll-forward from logs_dir; the set's own generations are always all
 * replayed (redo_run(..., info.gen_high, ...)), so a restore "until" a
 * generation inside the set silently returns the state at the end of the
 * set.  jetsnap.h documents until_gen as "last generation replayed".
 * Either honouring it or refusing it would be right; this accepts both. */
Test(backup, until_gen_inside_set_is_honoured_or_refused, .timeout = 120)
{
    js_params p = tl_test_params();
    js_instance *inst = tl_create_open(tl_tp("inst"), &p);
    tl_fill(inst, "a", 0, 300, 300);
    tl_backup_ok(inst, tl_tp("bk"), JS_BACKUP_CREATE_DIR);
    tl_fill(inst, "b", 0, 300, 300);
    tl_backup_ok(inst, tl_tp("bk"), JS_BACKUP_INCREMENTAL);
    tl_binfo b1;
    tl_read_binfo(tl_tp("bk"), &b1);
    tl_kvdump at1, d;
    tl_dump_inst(inst, &at1);
    tl_fill(inst, "c", 0, 300, 300);
    tl_backup_ok(inst, tl_tp("bk"), JS_BACKUP_INCREMENTAL);
    OK(js_close(inst));
    JET_ERR e = js_restore(tl_tp("bk"), tl_tp("r"), NULL, b1.gen_high, NULL, NULL);
    if (e == JET_errSuccess) {
        tl_dump_dir(tl_tp("r"), &d);
        ASSERT_DUMP_EQ(&d, &at1, "restore with until_gen = the first incremental's gen_high");
        tl_dump_free(&d);
    } else {
        cr_assert(!tl_exists(tl_tp("r")), "a refused restore left its target");
    }
    tl_dump_free(&at1);
}

/* ================================================================== */
/* 6. Truncation and header stamps                                       */
/* ================================================================== */
/* After a job that truncated below 'below': every generation of 'before'
 * below it is gone, every one at or above it is still there, and nothing
 * below it exists. */
static void assert_truncated_below(const tl_genlist *before, const tl_genlist *after, uint32_t below)
{
    for (size_t i = 0; i < before->n; i++) {
        uint32_t g = before->g[i];
        if (g < below)
            cr_assert(!tl_gen_has(after, g), "edb%08X.log survived truncation below %08X", g, below);
        else
            cr_assert(tl_gen_has(after, g), "edb%08X.log was deleted though truncation was below %08X", g, below);
    }
    for (size_t i = 0; i < after->n; i++)
        cr_assert_geq(after->g[i], below, "edb%08X.log is below the truncation point %08X", after->g[i], below);
}

static uint32_t min_u32(uint32_t a, uint32_t b)
{
    return a < b ? a : b;
}

static void truncation_and_stamps(unsigned atomic)
{
    const char *inst_dir = tl_tp("inst"), *dest = tl_tp("bk");
    js_params p = tl_test_params();
    js_instance *inst = tl_create_open(inst_dir, &p);
    tl_genlist *g0 = malloc(sizeof *g0), *g1 = malloc(sizeof *g1);
    js_info info;
    tl_binfo bf, bi;
    char expect_trunc[64];

    OK(js_info_read(inst_dir, &info));
    tl_assert_stamp(&info.last_full, 0, 0, "new instance last_full");
    tl_assert_stamp(&info.last_incremental, 0, 0, "new instance last_incremental");

    tl_fill(inst, "a", 0, 1500, 300);   /* several closed generations */
    tl_list_gens(inst_dir, g0);
    cr_assert_geq(g0->n, 3, "only %zu closed generations", g0->n);

    tl_cbrec rec = { .monotonic_units = 1 };
    OK(js_backup(inst, dest, JS_BACKUP_CREATE_DIR | atomic, tl_record_cb, &rec));
    tl_assert_set_sums(tl_set_of(dest, atomic));
    tl_read_binfo(tl_set_of(dest, atomic), &bf);
    OK(js_info_read(inst_dir, &info));
    tl_assert_stamp(&info.last_full, bf.gen_low, bf.gen_high, "after full: last_full");
    tl_assert_stamp(&info.last_incremental, 0, 0, "after full: last_incremental");
    cr_assert(rec.monotonic_units, "units_done went backwards in a quiet backup");
    cr_assert_eq(rec.completes, 1);
    cr_assert_eq(rec.last_units, 100);
    cr_assert_eq(rec.gen_low, bf.gen_low);
    cr_assert_eq(rec.gen_high, bf.gen_high);
    uint32_t below = min_u32(info.checkpoint_gen, bf.gen_high + 1);
    cr_assert_gt(below, g0->g[0], "nothing to truncate: the test proves nothing");
    tl_list_gens(inst_dir, g1);
    assert_truncated_below(g0, g1, below);
    snprintf(expect_trunc, sizeof expect_trunc, "edb%08X.log-edb%08X.log", g0->g[0], below - 1);
    cr_assert_str_eq(rec.truncated, expect_trunc);
    cr_assert(info.log_gen_min == (g1->n ? g1->g[0] : 0));

    /* Two incrementals. */
    uint32_t prev_high = bf.gen_high;
    for (int round = 0; round < 2; round++) {
        tl_fill(inst, round ? "c" : "b", 0, 800, 300);
        tl_list_gens(inst_dir, g0);
        memset(&rec, 0, sizeof rec);
        rec.monotonic_units = 1;
        /* An incremental does not force a checkpoint (ESE's does not
         * either): it truncates below the checkpoint the instance has. */
        OK(js_checkpoint(inst));
        OK(js_backup(inst, dest, JS_BACKUP_INCREMENTAL | atomic, tl_record_cb, &rec));
        tl_assert_set_sums(tl_set_of(dest, atomic));
        tl_read_binfo(tl_set_of(dest, atomic), &bi);
        cr_assert_str_eq(bi.type, "incremental");
        cr_assert_eq(bi.gen_low, bf.gen_low);
        OK(js_info_read(inst_dir, &info));
        tl_assert_stamp(&info.last_full, bf.gen_low, bf.gen_high, "after incremental: last_full");
        tl_assert_stamp(&info.last_incremental, prev_high + 1, bi.gen_high, "after incremental: last_incremental");
        cr_assert_eq(rec.gen_low, prev_high + 1);
        cr_assert_eq(rec.gen_high, bi.gen_high);
        below = min_u32(info.checkpoint_gen, bi.gen_high + 1);
        tl_list_gens(inst_dir, g1);
        assert_truncated_below(g0, g1, below);
        cr_assert_gt(below, g0->g[0], "the incremental truncated nothing");
        prev_high = bi.gen_high;
    }

    /* A new full backup resets last_incremental. */
    tl_fill(inst, "d", 0, 300, 300);
    const char *dest2 = tl_tp("bk2");
    tl_backup_ok(inst, dest2, JS_BACKUP_CREATE_DIR | atomic);
    tl_read_binfo(tl_set_of(dest2, atomic), &bf);
    OK(js_info_read(inst_dir, &info));
    tl_assert_stamp(&info.last_full, bf.gen_low, bf.gen_high, "second full: last_full");
    tl_assert_stamp(&info.last_incremental, 0, 0, "second full: last_incremental");

    /* Truncate-only (dest NULL): below the checkpoint; stamps unchanged. */
    tl_fill(inst, "e", 0, 1200, 300);
    tl_list_gens(inst_dir, g0);
    cr_assert_geq(g0->n, 3);
    memset(&rec, 0, sizeof rec);
    rec.monotonic_units = 1;
    OK(js_backup(inst, NULL, 0, tl_record_cb, &rec));
    cr_assert_eq(rec.completes, 1);
    OK(js_info_read(inst_dir, &info));
    tl_list_gens(inst_dir, g1);
    assert_truncated_below(g0, g1, info.checkpoint_gen);
    cr_assert_gt(info.checkpoint_gen, g0->g[g0->n - 1], "the truncate-only job's checkpoint is not at the end");
    cr_assert_eq(g1->n, 0, "closed generations left below the checkpoint");
    tl_assert_stamp(&info.last_full, bf.gen_low, bf.gen_high, "truncate-only: last_full");
    tl_assert_stamp(&info.last_incremental, 0, 0, "truncate-only: last_incremental");
    /* The instance still recovers and holds everything. */
    tl_kvdump a, b;
    tl_dump_inst(inst, &a);
    OK(js_close(inst));
    tl_dump_dir(inst_dir, &b);
    ASSERT_DUMP_EQ(&a, &b, "reopen after truncation");
    tl_dump_free(&a);
    tl_dump_free(&b);
    /* With the generations since the set truncated, an incremental is
     * impossible now. */
    inst = tl_reopen(inst_dir);
    FAILS_WITH(js_backup(inst, dest2, JS_BACKUP_INCREMENTAL | atomic, NULL, NULL), JET_errMissingFileToBackup);
    OK(js_close(inst));
    free(g0);
    free(g1);
}

Test(backup, truncation_and_stamps_plain, .timeout = 120)
{
    truncation_and_stamps(0);
}

Test(backup, truncation_and_stamps_atomic, .timeout = 120)
{
    truncation_and_stamps(JS_BACKUP_ATOMIC);
}
