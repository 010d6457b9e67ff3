/*
 * test_backup_restore.c - what a restore refuses: a flipped byte in a
 * database page or a log generation (live or in a set), and every restore
 * error of SPEC section 6 (generations not contiguous, missing, out of
 * range, of another instance; a target not empty; an open of a set).
 *
 * Every test works in its own mkdtemp directory under /tmp, with small log
 * generations (64 KiB) so the log rolls often, 4 KiB pages and lazy commits
 * unless durability is what is under test.  Every backup set a test makes is
 * checked with `sha256sum -c SHA256SUMS` run inside it (tl_assert_set_sums).
 * The helpers are in tests/lib/bkset.h.
 *
 * Some tests are regressions for engine bugs they found (each says which):
 *   refused_open_of_set_leaves_it_untouched          core/instance.c inst_new_common
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
/* 5. Corruption: a database page, a log generation                      */
/* ================================================================== */
Test(backup, flipped_page_fails_read_verify, .timeout = 120)
{
    const char *inst_dir = tl_tp("inst"), *atomic_dest = tl_tp("bk_atomic"), *plain_dest = tl_tp("bk_plain");
    js_params p = tl_test_params();
    p.cache_size = 64 << 10;
    js_instance *inst = tl_create_open(inst_dir, &p);
    tl_fill(inst, "k", 0, 2000, 300);
    tl_backup_ok(inst, atomic_dest, JS_BACKUP_CREATE_DIR | JS_BACKUP_ATOMIC);
    OK(js_close(inst));

    js_info info;
    OK(js_info_read(inst_dir, &info));
    cr_assert_eq(info.page_size, 4096);
    cr_assert_gt(info.pages, 10);
    uint32_t pg = 3 + (uint32_t)(info.pages - 3) / 2;
    /* A used page: not all zero on disk. */
    char db[PATH_MAX];
    snprintf(db, sizeof db, "%s/jetsnap.edb", inst_dir);
    int fd = open(db, O_RDONLY);
    cr_assert_geq(fd, 0);
    unsigned char page[4096];
    cr_assert_eq(pread(fd, page, sizeof page, (off_t)pg * 4096), (ssize_t)sizeof page);
    close(fd);
    int nonzero = 0;
    for (size_t i = 0; i < sizeof page; i++)
        nonzero |= page[i];
    cr_assert(nonzero, "page %u is not used", pg);
    tl_flip_byte(db, (off_t)pg * 4096 + 100);

    char *snap = tl_tree_snapshot(atomic_dest);
    tl_genlist *before = malloc(sizeof *before), *after = malloc(sizeof *after);
    inst = tl_reopen(inst_dir);   /* a fresh, empty cache: the page is read from disk */
    tl_list_gens(inst_dir, before);
    char want[64];
    snprintf(want, sizeof want, "page %u", pg);

    FAILS_WITH(js_backup(inst, atomic_dest, JS_BACKUP_ATOMIC, NULL, NULL), JET_errReadVerifyFailure);
    cr_assert_not_null(strstr(js_errdetail(), want), "detail '%s' does not name %s", js_errdetail(), want);
    char *snap2 = tl_tree_snapshot(atomic_dest);
    cr_assert_str_eq(snap, snap2, "a failed atomic backup changed the previous set");
    free(snap2);

    cr_assert_eq(mkdir(plain_dest, 0700), 0);
    FAILS_WITH(js_backup(inst, plain_dest, 0, NULL, NULL), JET_errReadVerifyFailure);
    cr_assert_not_null(strstr(js_errdetail(), want), "detail '%s' does not name %s", js_errdetail(), want);
    cr_assert_eq(tl_dir_entries(plain_dest), 0, "a failed backup left files in DEST");

    FAILS_WITH(js_backup(inst, tl_tp("bk_created"), JS_BACKUP_CREATE_DIR, NULL, NULL), JET_errReadVerifyFailure);
    cr_assert(!tl_exists(tl_tp("bk_created")), "a failed backup left the DEST it created");

    tl_list_gens(inst_dir, after);
    const char *lost = tl_gens_kept(before, after);
    cr_assert_null(lost, "%s", lost ? lost : "");
    OK(js_close(inst));
    /* The offline check sees the same page. */
    js_check_report rep;
    FAILS_WITH(js_check(inst_dir, &rep), JET_errReadVerifyFailure);
    cr_assert_eq(rep.first_bad_page, pg);
    free(snap);
    free(before);
    free(after);
}

Test(backup, flipped_log_byte_fails_log_read_verify, .timeout = 120)
{
    const char *inst_dir = tl_tp("inst"), *dest = tl_tp("bk");
    js_params p = tl_test_params();
    js_instance *inst = tl_create_open(inst_dir, &p);
    tl_fill(inst, "k", 0, 500, 300);
    tl_backup_ok(inst, dest, JS_BACKUP_CREATE_DIR);
    tl_binfo bi;
    tl_read_binfo(dest, &bi);
    tl_fill(inst, "l", 0, 1200, 300);   /* several 64 KiB generations */
    OK(js_log_roll(inst, NULL));
    tl_genlist *before = malloc(sizeof *before), *after = malloc(sizeof *after);
    tl_list_gens(inst_dir, before);
    uint32_t g = bi.gen_high + 2;
    cr_assert(tl_gen_has(before, g) && tl_gen_has(before, g + 1), "edb%08X.log should be a closed generation", g);
    char gp[PATH_MAX];
    tl_gen_path(gp, inst_dir, g);
    tl_flip_byte(gp, 600);

    char *snap = tl_tree_snapshot(dest);
    FAILS_WITH(js_backup(inst, dest, JS_BACKUP_INCREMENTAL, NULL, NULL), JET_errLogReadVerifyFailure);
    char want[16];
    snprintf(want, sizeof want, "%08X", g);
    cr_assert_not_null(strstr(js_errdetail(), want), "detail '%s' does not name generation %s", js_errdetail(),
                       want);
    char *snap2 = tl_tree_snapshot(dest);
    cr_assert_str_eq(snap, snap2, "a failed incremental changed the set");
    tl_list_gens(inst_dir, after);
    const char *lost = tl_gens_kept(before, after);
    cr_assert_null(lost, "%s", lost ? lost : "");
    /* The set is still the full backup, and restores. */
    tl_assert_set_sums(dest);
    /* The same for an atomic set. */
    OK(js_close(inst));
    free(snap);
    free(snap2);
    free(before);
    free(after);
    tl_restore_ok(dest, tl_tp("r"), NULL, 0);
}

Test(backup, flipped_log_byte_in_set_fails_restore, .timeout = 120)
{
    const char *inst_dir = tl_tp("inst"), *dest = tl_tp("bk");
    js_params p = tl_test_params();
    js_instance *inst = tl_create_open(inst_dir, &p);
    tl_fill(inst, "k", 0, 500, 300);
    tl_backup_ok(inst, dest, JS_BACKUP_CREATE_DIR);
    tl_fill(inst, "l", 0, 800, 300);
    tl_backup_ok(inst, dest, JS_BACKUP_INCREMENTAL);
    OK(js_close(inst));
    tl_binfo bi;
    tl_read_binfo(dest, &bi);
    cr_assert_geq(bi.gen_high, bi.gen_low + 2);
    char gp[PATH_MAX];
    tl_gen_path(gp, dest, bi.gen_low + 1);
    tl_flip_byte(gp, 600);
    /* Unchanged SHA256SUMS: the hash check finds it. */
    FAILS_WITH(js_restore(dest, tl_tp("r1"), NULL, 0, NULL, NULL), JET_errLogReadVerifyFailure);
    cr_assert(!tl_exists(tl_tp("r1")));
    /* Fixed SHA256SUMS: the block checksum finds it. */
    tl_regen_sums(dest);
    FAILS_WITH(js_restore(dest, tl_tp("r2"), NULL, 0, NULL, NULL), JET_errLogReadVerifyFailure);
    char want[16];
    snprintf(want, sizeof want, "%08X", bi.gen_low + 1);
    cr_assert_not_null(strstr(js_errdetail(), want), "detail '%s'", js_errdetail());
    cr_assert(!tl_exists(tl_tp("r2")));
    cr_assert_neq(js_verify(dest, NULL, NULL, NULL), JET_errSuccess);
}

/* The database copy is hashed while restore copies it: a damaged copy is
 * caught there, the restore fails, and TARGET is left as it was found. */
Test(backup, flipped_db_byte_in_set_fails_restore, .timeout = 120)
{
    const char *inst_dir = tl_tp("inst"), *dest = tl_tp("bk");
    js_params p = tl_test_params();
    js_instance *inst = tl_create_open(inst_dir, &p);
    tl_fill(inst, "k", 0, 2000, 300);
    tl_backup_ok(inst, dest, JS_BACKUP_CREATE_DIR);
    OK(js_close(inst));
    char db[PATH_MAX];
    snprintf(db, sizeof db, "%s/jetsnap.edb", dest);
    tl_flip_byte(db, 3 * 4096 + 777);
    FAILS_WITH(js_restore(dest, tl_tp("r1"), NULL, 0, NULL, NULL), JET_errReadVerifyFailure);
    cr_assert_not_null(strstr(js_errdetail(), "jetsnap.edb"), "detail '%s'", js_errdetail());
    cr_assert(!tl_exists(tl_tp("r1")), "a failed restore left its target behind");
    cr_assert_eq(mkdir(tl_tp("r2"), 0700), 0);
    FAILS_WITH(js_restore(dest, tl_tp("r2"), NULL, 0, NULL, NULL), JET_errReadVerifyFailure);
    cr_assert(tl_exists(tl_tp("r2")), "a failed restore removed a target it did not create");
    cr_assert_eq(tl_sh("[ -z \"$(ls -A '%s')\" ]", tl_tp("r2")), 0, "a failed restore left files in its target");
    cr_assert_neq(js_verify(dest, NULL, NULL, NULL), JET_errSuccess);
}

/* ================================================================== */
/* 8. Restore errors                                                     */
/* ================================================================== */
/* A status callback that writes while the database is copied, so the full
 * backup's own range gen_low..gen_high spans several generations. */
typedef struct writing_ctx {
    js_instance *inst;
    int done;
} writing_ctx;

static int writing_cb(void *ctx, int snp, int snt, const js_progress *p)
{
    (void)snp;
    writing_ctx *w = ctx;
    if (snt == JS_SNT_PROGRESS && !w->done && p->phase && !strcmp(p->phase, "copy-database")) {
        w->done = 1;
        tl_fill(w->inst, "during", 0, 600, 300);
    }
    return 0;
}

/* A set with several generations: full + incremental. */
static void make_set(const char *inst_dir, const char *dest, tl_binfo *bi)
{
    js_params p = tl_test_params();
    js_instance *inst = tl_create_open(inst_dir, &p);
    tl_fill(inst, "k", 0, 500, 300);
    tl_backup_ok(inst, dest, JS_BACKUP_CREATE_DIR);
    tl_fill(inst, "l", 0, 800, 300);
    tl_backup_ok(inst, dest, JS_BACKUP_INCREMENTAL);
    OK(js_close(inst));
    tl_read_binfo(dest, bi);
    cr_assert_geq(bi->gen_high, bi->gen_low + 3, "the set has too few generations");
}

Test(backup, restore_err_not_contiguous, .timeout = 120)
{
    const char *set = tl_tp("bk");
    tl_binfo bi;
    make_set(tl_tp("inst"), set, &bi);
    char a[PATH_MAX], b[PATH_MAX];
    /* A middle generation replaced by another generation of the same set. */
    tl_gen_path(a, set, bi.gen_low + 1);
    tl_gen_path(b, set, bi.gen_low + 2);
    cr_assert_eq(tl_sh("cp '%s' '%s'", b, a), 0);
    FAILS_WITH(js_restore(set, tl_tp("r0"), NULL, 0, NULL, NULL), JET_errLogReadVerifyFailure);   /* SHA256SUMS */
    tl_regen_sums(set);
    tl_assert_set_sums(set);
    FAILS_WITH(js_restore(set, tl_tp("r1"), NULL, 0, NULL, NULL), JET_errGivenLogFileIsNotContiguous);
    cr_assert(!tl_exists(tl_tp("r1")));
    cr_assert_neq(js_verify(set, NULL, NULL, NULL), JET_errSuccess);
}

Test(backup, restore_err_not_contiguous_other_timeline, .timeout = 120)
{
    /* Same generation number and log stream, but from another history:
     * a restored copy that went on writing. */
    const char *set = tl_tp("bk");
    tl_binfo bi;
    make_set(tl_tp("inst"), set, &bi);
    tl_restore_ok(set, tl_tp("fork"), NULL, 0);
    js_instance *f = tl_reopen(tl_tp("fork"));
    tl_fill(f, "fork", 0, 600, 300);
    OK(js_log_roll(f, NULL));
    OK(js_close(f));
    /* The original goes on too, and its next incremental covers the same
     * generation numbers. */
    js_instance *inst = tl_reopen(tl_tp("inst"));
    tl_fill(inst, "orig", 0, 600, 300);
    tl_backup_ok(inst, set, JS_BACKUP_INCREMENTAL);
    OK(js_close(inst));
    tl_binfo b2;
    tl_read_binfo(set, &b2);
    uint32_t g = bi.gen_high + 2;
    cr_assert_lt(g, b2.gen_high);
    char mine[PATH_MAX], theirs[PATH_MAX];
    tl_gen_path(mine, set, g);
    tl_gen_path(theirs, tl_tp("fork"), g);
    cr_assert(tl_exists(theirs), "the fork has no edb%08X.log", g);
    cr_assert_eq(tl_sh("cp '%s' '%s'", theirs, mine), 0);
    tl_regen_sums(set);
    FAILS_WITH(js_restore(set, tl_tp("r"), NULL, 0, NULL, NULL), JET_errGivenLogFileIsNotContiguous);
    cr_assert(!tl_exists(tl_tp("r")));
}

Test(backup, restore_err_missing_log_files, .timeout = 120)
{
    const char *set = tl_tp("bk");
    tl_binfo bi;
    make_set(tl_tp("inst"), set, &bi);
    char gp[PATH_MAX];
    tl_gen_path(gp, set, bi.gen_low + 1);
    cr_assert_eq(unlink(gp), 0);
    FAILS_WITH(js_restore(set, tl_tp("r1"), NULL, 0, NULL, NULL), JET_errMissingRestoreLogFiles);
    cr_assert(!tl_exists(tl_tp("r1")));
    tl_regen_sums(set);   /* no longer listed either */
    FAILS_WITH(js_restore(set, tl_tp("r2"), NULL, 0, NULL, NULL), JET_errMissingRestoreLogFiles);
    cr_assert(!tl_exists(tl_tp("r2")));
    /* The last generation gone. */
    make_set(tl_tp("inst2"), tl_tp("bk2"), &bi);
    tl_gen_path(gp, tl_tp("bk2"), bi.gen_high);
    cr_assert_eq(unlink(gp), 0);
    tl_regen_sums(tl_tp("bk2"));
    FAILS_WITH(js_restore(tl_tp("bk2"), tl_tp("r3"), NULL, 0, NULL, NULL), JET_errMissingRestoreLogFiles);
    cr_assert(!tl_exists(tl_tp("r3")));
}

Test(backup, restore_err_log_range, .timeout = 120)
{
    const char *set = tl_tp("bk");
    tl_binfo bi;
    js_params p = tl_test_params();
    js_instance *inst = tl_create_open(tl_tp("inst"), &p);
    tl_fill(inst, "k", 0, 500, 300);
    writing_ctx wc = { .inst = inst };
    OK(js_backup(inst, set, JS_BACKUP_CREATE_DIR, writing_cb, &wc));
    tl_assert_set_sums(set);
    tl_read_binfo(set, &bi);
    cr_assert_eq(bi.full_gen_high, bi.gen_high);
    cr_assert_geq(bi.full_gen_high, bi.gen_low + 2, "the full backup spans only %08X-%08X", bi.gen_low,
                  bi.gen_high);
    tl_fill(inst, "l", 0, 300, 300);
    tl_backup_ok(inst, set, JS_BACKUP_INCREMENTAL);
    OK(js_close(inst));
    tl_read_binfo(set, &bi);
    cr_assert_gt(bi.gen_high, bi.full_gen_high);
    char v[16];
    cr_assert_eq(tl_sh("cp -a '%s' '%s'", set, tl_tp("bk_orig")), 0);
    tl_restore_ok(set, tl_tp("r0"), NULL, 0);

    /* The set claims to start after what the database copy needs. */
    snprintf(v, sizeof v, "%08X", bi.gen_low + 1);
    tl_edit_binfo(set, "gen_low", v);
    tl_regen_sums(set);
    tl_assert_set_sums(set);
    FAILS_WITH(js_restore(set, tl_tp("r1"), NULL, 0, NULL, NULL), JET_errStartingRestoreLogTooHigh);
    cr_assert(!tl_exists(tl_tp("r1")));

    /* The set claims to end before what the database copy needs. */
    cr_assert_eq(tl_sh("rm -rf '%s' && cp -a '%s' '%s'", set, tl_tp("bk_orig"), set), 0);
    snprintf(v, sizeof v, "%08X", bi.gen_high + 1);
    tl_edit_binfo(set, "full_gen_high", v);
    tl_regen_sums(set);
    FAILS_WITH(js_restore(set, tl_tp("r2"), NULL, 0, NULL, NULL), JET_errEndingRestoreLogTooLow);
    cr_assert(!tl_exists(tl_tp("r2")));

    /* gen_high lowered below full_gen_high. */
    cr_assert_eq(tl_sh("rm -rf '%s' && cp -a '%s' '%s'", set, tl_tp("bk_orig"), set), 0);
    cr_assert_gt(bi.full_gen_high, bi.gen_low);
    snprintf(v, sizeof v, "%08X", bi.full_gen_high - 1);
    tl_edit_binfo(set, "gen_high", v);
    tl_regen_sums(set);
    FAILS_WITH(js_restore(set, tl_tp("r3"), NULL, 0, NULL, NULL), JET_errEndingRestoreLogTooLow);
    cr_assert(!tl_exists(tl_tp("r3")));

    /* until_gen below what the copy needs. */
    FAILS_WITH(js_restore(tl_tp("bk_orig"), tl_tp("r4"), NULL, bi.full_gen_high - 1, NULL, NULL),
               JET_errEndingRestoreLogTooLow);
    cr_assert(!tl_exists(tl_tp("r4")));
    tl_restore_ok(tl_tp("bk_orig"), tl_tp("r5"), NULL, 0);
}

Test(backup, restore_err_bad_log_signature, .timeout = 120)
{
    const char *set = tl_tp("bk");
    tl_binfo bi, bo;
    make_set(tl_tp("inst"), set, &bi);
    make_set(tl_tp("other"), tl_tp("bk_other"), &bo);
    cr_assert_str_neq(bi.log_signature, bo.log_signature);
    uint32_t g = bi.gen_low + 1;
    cr_assert(g >= bo.gen_low && g <= bo.gen_high, "the other set has no generation %08X", g);
    char mine[PATH_MAX], theirs[PATH_MAX];
    tl_gen_path(mine, set, g);
    tl_gen_path(theirs, tl_tp("bk_other"), g);
    cr_assert_eq(tl_sh("cp -a '%s' '%s.orig' && cp '%s' '%s'", mine, mine, theirs, mine), 0);
    tl_regen_sums(set);
    FAILS_WITH(js_restore(set, tl_tp("r1"), NULL, 0, NULL, NULL), JET_errBadLogSignature);
    cr_assert(!tl_exists(tl_tp("r1")));

    /* backup.info of another log stream. */
    cr_assert_eq(tl_sh("mv '%s.orig' '%s'", mine, mine), 0);
    tl_edit_binfo(set, "log_signature", bo.log_signature);
    tl_regen_sums(set);
    FAILS_WITH(js_restore(set, tl_tp("r2"), NULL, 0, NULL, NULL), JET_errBadLogSignature);
    cr_assert(!tl_exists(tl_tp("r2")));
}

Test(backup, restore_err_target_not_empty_and_bad_paths, .timeout = 120)
{
    const char *set = tl_tp("bk");
    tl_binfo bi;
    make_set(tl_tp("inst"), set, &bi);
    cr_assert_eq(mkdir(tl_tp("t"), 0700), 0);
    cr_assert_eq(tl_sh("echo x > '%s/junk'", tl_tp("t")), 0);
    FAILS_WITH(js_restore(set, tl_tp("t"), NULL, 0, NULL, NULL), JET_errInvalidPath);
    cr_assert_eq(tl_dir_entries(tl_tp("t")), 1, "a refused restore touched its target");
    /* An existing empty target is fine, and stays a directory. */
    cr_assert_eq(mkdir(tl_tp("empty"), 0700), 0);
    tl_restore_ok(set, tl_tp("empty"), NULL, 0);
    /* A restored instance cannot be restored over. */
    FAILS_WITH(js_restore(set, tl_tp("empty"), NULL, 0, NULL, NULL), JET_errInvalidPath);
    /* No set there. */
    cr_assert_neq(js_restore(tl_tp("t"), tl_tp("r"), NULL, 0, NULL, NULL), JET_errSuccess);
    cr_assert_neq(js_restore(tl_tp("nothing"), tl_tp("r"), NULL, 0, NULL, NULL), JET_errSuccess);
    cr_assert(!tl_exists(tl_tp("r")));
    /* --logs that is not a directory. */
    FAILS_WITH(js_restore(set, tl_tp("r"), tl_tp("nothing"), 0, NULL, NULL), JET_errInvalidPath);
    cr_assert(!tl_exists(tl_tp("r")));
}

/* Regression (fixed; core/instance.c, inst_new_common): js_open / js_instance_new
 * of a backup set creates jetsnap.lock in the set before it reads the
 * header and refuses the raw copy (JET_errSoftRecoveryOnBackupDatabase), and
 * leaves it there: the set then holds a file SHA256SUMS does not list
 * (SPEC section 4: a set holds jetsnap.edb, the generations, backup.info
 * and SHA256SUMS, nothing else). */
Test(backup, refused_open_of_set_leaves_it_untouched, .timeout = 120)
{
    const char *set = tl_tp("bk");
    tl_binfo bi;
    make_set(tl_tp("inst"), set, &bi);
    char *snap = tl_tree_snapshot(set);
    js_params p = tl_test_params();
    js_instance *bad = NULL;
    FAILS_WITH(js_open(set, &p, &bad), JET_errSoftRecoveryOnBackupDatabase);
    char *snap2 = tl_tree_snapshot(set);
    cr_assert_str_eq(snap, snap2, "a refused open changed the backup set");
    tl_assert_set_sums(set);
    free(snap);
    free(snap2);
}

Test(backup, refused_open_of_set, .timeout = 120)
{
    const char *set = tl_tp("bk");
    tl_binfo bi;
    make_set(tl_tp("inst"), set, &bi);
    js_params p = tl_test_params();
    js_instance *bad = NULL;
    FAILS_WITH(js_open(set, &p, &bad), JET_errSoftRecoveryOnBackupDatabase);
    cr_assert_null(bad);
    cr_assert_eq(tl_sh("cd '%s' && sha256sum -c --quiet SHA256SUMS >/dev/null 2>&1", set), 0);
    tl_restore_ok(set, tl_tp("r"), NULL, 0);
}
