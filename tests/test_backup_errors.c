/*
 * test_backup_errors.c - every backup error of SPEC section 6, each
 * provoked for real (a backup in progress, logging off, a missing full
 * backup or generation, bad paths and flags, a cancel, a close under a
 * running backup).
 *
 * Every test works in its own mkdtemp directory under /tmp, with small log
 * generations (64 KiB) so the log rolls often, 4 KiB pages and lazy commits
 * unless durability is what is under test.  Every backup set a test makes is
 * checked with `sha256sum -c SHA256SUMS` run inside it (tl_assert_set_sums).
 * The helpers are in tests/lib/bkset.h.
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
/* 7. Every backup error of SPEC section 6                               */
/* ================================================================== */
typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int entered, release;
    int block_snt;              /* block at the first call of this kind */
    const char *block_phase;    /* ... in this phase (NULL: any) */
    js_instance *inst;
    const char *dest;
    unsigned flags;
    JET_ERR result;
    tl_cbrec rec;
} gate;

static int gate_cb(void *ctx, int snp, int snt, const js_progress *p)
{
    gate *g = ctx;
    tl_record_cb(&g->rec, snp, snt, p);
    if (snt == g->block_snt && (!g->block_phase || (p->phase && !strcmp(p->phase, g->block_phase)))) {
        pthread_mutex_lock(&g->mu);
        if (!g->entered) {
            g->entered = 1;
            pthread_cond_broadcast(&g->cv);
            while (!g->release)
                pthread_cond_wait(&g->cv, &g->mu);
        }
        pthread_mutex_unlock(&g->mu);
    }
    return 0;
}

static void *gate_backup_main(void *arg)
{
    gate *g = arg;
    g->result = js_backup(g->inst, g->dest, g->flags, gate_cb, g);
    return NULL;
}

static void gate_init(gate *g, js_instance *inst, const char *dest, unsigned flags, int snt, const char *phase)
{
    memset(g, 0, sizeof *g);
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    g->inst = inst;
    g->dest = dest;
    g->flags = flags;
    g->block_snt = snt;
    g->block_phase = phase;
    g->rec.monotonic_units = 1;
}

static void gate_wait_entered(gate *g)
{
    pthread_mutex_lock(&g->mu);
    while (!g->entered)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

static void gate_release(gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->release = 1;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

Test(backup, err_backup_in_progress, .timeout = 120)
{
    js_params p = tl_test_params();
    js_instance *inst = tl_create_open(tl_tp("inst"), &p);
    tl_fill(inst, "k", 0, 500, 300);
    gate g;
    gate_init(&g, inst, tl_tp("bk1"), JS_BACKUP_CREATE_DIR, JS_SNT_PROGRESS, "copy-database");
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, gate_backup_main, &g), 0);
    gate_wait_entered(&g);
    FAILS_WITH(js_backup(inst, tl_tp("bk2"), JS_BACKUP_CREATE_DIR, NULL, NULL), JET_errBackupInProgress);
    cr_assert(!tl_exists(tl_tp("bk2")), "a refused backup made its DEST");
    FAILS_WITH(js_backup(inst, NULL, 0, NULL, NULL), JET_errBackupInProgress);
    FAILS_WITH(js_backup(inst, tl_tp("bk1"), JS_BACKUP_INCREMENTAL, NULL, NULL), JET_errBackupInProgress);
    /* Writers are not blocked while the job is paused. */
    tl_fill(inst, "during", 0, 50, 100);
    gate_release(&g);
    pthread_join(th, NULL);
    cr_assert_eq(g.result, JET_errSuccess, "%s", js_errname(g.result));
    tl_assert_set_sums(tl_tp("bk1"));
    /* Once it ended, the next job runs. */
    tl_backup_ok(inst, tl_tp("bk3"), JS_BACKUP_CREATE_DIR);
    OK(js_close(inst));
}

Test(backup, err_not_allowed_yet_and_not_initialized, .timeout = 120)
{
    js_params p = tl_test_params();
    OK(js_create(tl_tp("inst"), &p));
    js_instance *inst = NULL;
    OK(js_instance_new(tl_tp("inst"), &p, &inst));
    cr_assert_eq(js_instance_state(inst), JS_INST_STARTING);
    FAILS_WITH(js_backup(inst, tl_tp("bk"), JS_BACKUP_CREATE_DIR, NULL, NULL), JET_errBackupNotAllowedYet);
    FAILS_WITH(js_backup(inst, NULL, 0, NULL, NULL), JET_errBackupNotAllowedYet);
    cr_assert(!tl_exists(tl_tp("bk")));
    OK(js_instance_start(inst));
    tl_backup_ok(inst, tl_tp("bk"), JS_BACKUP_CREATE_DIR);
    OK(js_close(inst));
    FAILS_WITH(js_backup(NULL, tl_tp("bk2"), JS_BACKUP_CREATE_DIR, NULL, NULL), JET_errNotInitialized);
}

Test(backup, err_logging_disabled, .timeout = 120)
{
    js_params p = tl_test_params();
    OK(js_create(tl_tp("inst"), &p));
    p.no_log = 1;
    js_instance *inst = NULL;
    OK(js_open(tl_tp("inst"), &p, &inst));
    tl_put_str(inst, "k", "v");
    FAILS_WITH(js_backup(inst, tl_tp("bk"), JS_BACKUP_CREATE_DIR, NULL, NULL), JET_errLoggingDisabled);
    FAILS_WITH(js_backup(inst, tl_tp("bk"), JS_BACKUP_CREATE_DIR | JS_BACKUP_ATOMIC, NULL, NULL),
               JET_errLoggingDisabled);
    FAILS_WITH(js_backup(inst, NULL, 0, NULL, NULL), JET_errLoggingDisabled);
    cr_assert(!tl_exists(tl_tp("bk")));
    OK(js_close(inst));
}

Test(backup, err_invalid_backup_under_circular_log, .timeout = 120)
{
    js_params p = tl_test_params();
    p.circular_log = 1;
    js_instance *inst = tl_create_open(tl_tp("inst"), &p);
    tl_fill(inst, "k", 0, 300, 300);
    tl_backup_ok(inst, tl_tp("bk"), JS_BACKUP_CREATE_DIR);   /* full backups are allowed */
    tl_fill(inst, "l", 0, 300, 300);
    char *snap = tl_tree_snapshot(tl_tp("bk"));
    FAILS_WITH(js_backup(inst, tl_tp("bk"), JS_BACKUP_INCREMENTAL, NULL, NULL), JET_errInvalidBackup);
    FAILS_WITH(js_backup(inst, tl_tp("bk"), JS_BACKUP_INCREMENTAL | JS_BACKUP_ATOMIC, NULL, NULL), JET_errInvalidBackup);
    char *snap2 = tl_tree_snapshot(tl_tp("bk"));
    cr_assert_str_eq(snap, snap2);
    free(snap);
    free(snap2);
    OK(js_close(inst));
    tl_restore_ok(tl_tp("bk"), tl_tp("r"), NULL, 0);
}

Test(backup, err_missing_full_backup, .timeout = 120)
{
    js_params p = tl_test_params();
    js_instance *inst = tl_create_open(tl_tp("inst"), &p);
    tl_fill(inst, "k", 0, 300, 300);
    cr_assert_eq(mkdir(tl_tp("bk"), 0700), 0);
    FAILS_WITH(js_backup(inst, tl_tp("bk"), JS_BACKUP_INCREMENTAL, NULL, NULL), JET_errMissingFullBackup);
    FAILS_WITH(js_backup(inst, tl_tp("bk"), JS_BACKUP_INCREMENTAL | JS_BACKUP_ATOMIC, NULL, NULL),
               JET_errMissingFullBackup);
    cr_assert_eq(tl_dir_entries(tl_tp("bk")), 0);
    /* A full backup elsewhere does not make an empty DEST a set. */
    tl_backup_ok(inst, tl_tp("full"), JS_BACKUP_CREATE_DIR);
    tl_fill(inst, "l", 0, 100, 300);
    FAILS_WITH(js_backup(inst, tl_tp("bk"), JS_BACKUP_INCREMENTAL, NULL, NULL), JET_errMissingFullBackup);
    cr_assert_eq(tl_dir_entries(tl_tp("bk")), 0);
    /* Nor is an atomic incremental into a plain set (no DEST/new). */
    FAILS_WITH(js_backup(inst, tl_tp("full"), JS_BACKUP_INCREMENTAL | JS_BACKUP_ATOMIC, NULL, NULL),
               JET_errMissingFullBackup);
    /* A set of another database. */
    js_instance *other = tl_create_open(tl_tp("other"), &p);
    tl_put_str(other, "x", "y");
    tl_backup_ok(other, tl_tp("other_bk"), JS_BACKUP_CREATE_DIR);
    OK(js_close(other));
    char *snap = tl_tree_snapshot(tl_tp("other_bk"));
    FAILS_WITH(js_backup(inst, tl_tp("other_bk"), JS_BACKUP_INCREMENTAL, NULL, NULL), JET_errMissingFullBackup);
    char *snap2 = tl_tree_snapshot(tl_tp("other_bk"));
    cr_assert_str_eq(snap, snap2);
    free(snap);
    free(snap2);
    tl_backup_ok(inst, tl_tp("full"), JS_BACKUP_INCREMENTAL);
    OK(js_close(inst));
}

Test(backup, err_missing_file_to_backup, .timeout = 120)
{
    const char *inst_dir = tl_tp("inst");
    js_params p = tl_test_params();
    js_instance *inst = tl_create_open(inst_dir, &p);
    tl_fill(inst, "k", 0, 300, 300);
    tl_backup_ok(inst, tl_tp("bk"), JS_BACKUP_CREATE_DIR);
    tl_binfo bi;
    tl_read_binfo(tl_tp("bk"), &bi);
    tl_fill(inst, "l", 0, 1000, 300);
    OK(js_log_roll(inst, NULL));
    tl_genlist *gl = malloc(sizeof *gl), *after = malloc(sizeof *after);
    tl_list_gens(inst_dir, gl);
    uint32_t first = bi.gen_high + 1;
    cr_assert(tl_gen_has(gl, first) && tl_gen_has(gl, first + 1) && tl_gen_has(gl, first + 2));
    char *snap = tl_tree_snapshot(tl_tp("bk"));
    char gp[PATH_MAX], aside[PATH_MAX];

    /* A generation in the middle of the range is gone. */
    tl_gen_path(gp, inst_dir, first + 1);
    snprintf(aside, sizeof aside, "%s/aside.log", tl_tmp);
    cr_assert_eq(rename(gp, aside), 0);
    FAILS_WITH(js_backup(inst, tl_tp("bk"), JS_BACKUP_INCREMENTAL, NULL, NULL), JET_errMissingFileToBackup);
    char want[16];
    snprintf(want, sizeof want, "%08X", first + 1);
    cr_assert_not_null(strstr(js_errdetail(), want), "detail '%s'", js_errdetail());
    char *snap2 = tl_tree_snapshot(tl_tp("bk"));
    cr_assert_str_eq(snap, snap2);
    free(snap2);
    cr_assert_eq(rename(aside, gp), 0);

    /* The first generation after the set is gone. */
    tl_gen_path(gp, inst_dir, first);
    cr_assert_eq(unlink(gp), 0);
    tl_list_gens(inst_dir, gl);
    FAILS_WITH(js_backup(inst, tl_tp("bk"), JS_BACKUP_INCREMENTAL, NULL, NULL), JET_errMissingFileToBackup);
    snprintf(want, sizeof want, "%08X", first);
    cr_assert_not_null(strstr(js_errdetail(), want), "detail '%s'", js_errdetail());
    FAILS_WITH(js_backup(inst, tl_tp("bk"), JS_BACKUP_INCREMENTAL | JS_BACKUP_ATOMIC, NULL, NULL),
               JET_errMissingFullBackup);
    snap2 = tl_tree_snapshot(tl_tp("bk"));
    cr_assert_str_eq(snap, snap2);
    free(snap2);
    tl_list_gens(inst_dir, after);
    const char *lost = tl_gens_kept(gl, after);
    cr_assert_null(lost, "%s", lost ? lost : "");
    /* A new full backup is possible. */
    tl_backup_ok(inst, tl_tp("bk_new"), JS_BACKUP_CREATE_DIR);
    OK(js_close(inst));
    free(snap);
    free(gl);
    free(after);
}

Test(backup, err_paths_flags_and_directory_not_empty, .timeout = 120)
{
    const char *inst_dir = tl_tp("inst");
    js_params p = tl_test_params();
    js_instance *inst = tl_create_open(inst_dir, &p);
    tl_fill(inst, "k", 0, 100, 100);

    /* Not empty. */
    cr_assert_eq(mkdir(tl_tp("full"), 0700), 0);
    cr_assert_eq(tl_sh("echo keep > '%s/keep.txt'", tl_tp("full")), 0);
    FAILS_WITH(js_backup(inst, tl_tp("full"), 0, NULL, NULL), JET_errBackupDirectoryNotEmpty);
    FAILS_WITH(js_backup(inst, tl_tp("full"), JS_BACKUP_CREATE_DIR, NULL, NULL), JET_errBackupDirectoryNotEmpty);
    cr_assert_eq(tl_dir_entries(tl_tp("full")), 1);
    /* ... but an atomic full backup into it is fine. */
    tl_backup_ok(inst, tl_tp("full"), JS_BACKUP_ATOMIC);
    cr_assert(tl_exists(tl_tp("full/keep.txt")));
    /* A plain full backup into a set is refused too. */
    FAILS_WITH(js_backup(inst, tl_tp("full/new"), 0, NULL, NULL), JET_errBackupDirectoryNotEmpty);

    /* create, but the parent is missing: the directory cannot be made. */
    FAILS_WITH(js_backup(inst, tl_tp("no/such/parent"), JS_BACKUP_CREATE_DIR, NULL, NULL),
               JET_errMakeBackupDirectoryFail);
    cr_assert(!tl_exists(tl_tp("no")));

    /* Missing without create. */
    FAILS_WITH(js_backup(inst, tl_tp("missing"), 0, NULL, NULL), JET_errInvalidPath);
    FAILS_WITH(js_backup(inst, tl_tp("missing"), JS_BACKUP_ATOMIC, NULL, NULL), JET_errInvalidPath);
    cr_assert(!tl_exists(tl_tp("missing")));
    cr_assert_neq(js_errdetail()[0], '\0');
    /* A regular file. */
    cr_assert_eq(tl_sh("echo x > '%s'", tl_tp("file")), 0);
    FAILS_WITH(js_backup(inst, tl_tp("file"), JS_BACKUP_CREATE_DIR, NULL, NULL), JET_errInvalidPath);
    /* Inside the instance directory (or the directory itself). */
    cr_assert_eq(mkdir(tl_tp("inst/sub"), 0700), 0);
    FAILS_WITH(js_backup(inst, tl_tp("inst/sub"), 0, NULL, NULL), JET_errInvalidPath);
    FAILS_WITH(js_backup(inst, inst_dir, JS_BACKUP_ATOMIC, NULL, NULL), JET_errInvalidPath);
    cr_assert_eq(tl_dir_entries(tl_tp("inst/sub")), 0);
    /* ... also through a symlink from outside. */
    cr_assert_eq(symlink(tl_tp("inst/sub"), tl_tp("link")), 0);
    FAILS_WITH(js_backup(inst, tl_tp("link"), 0, NULL, NULL), JET_errInvalidPath);

    /* A relative path, an empty path, a newline. */
    FAILS_WITH(js_backup(inst, "relative/bk", JS_BACKUP_CREATE_DIR, NULL, NULL), JET_errInvalidParameter);
    FAILS_WITH(js_backup(inst, "", JS_BACKUP_CREATE_DIR, NULL, NULL), JET_errInvalidParameter);
    FAILS_WITH(js_backup(inst, tl_tp("new\nline"), JS_BACKUP_CREATE_DIR, NULL, NULL), JET_errInvalidParameter);
    cr_assert(!tl_exists("relative"));

    /* Unknown or contradictory flags. */
    FAILS_WITH(js_backup(inst, tl_tp("g"), JS_BACKUP_CREATE_DIR | 0x100u, NULL, NULL), JET_errInvalidGrbit);
    FAILS_WITH(js_backup(inst, NULL, JS_BACKUP_INCREMENTAL, NULL, NULL), JET_errInvalidGrbit);
    FAILS_WITH(js_backup(inst, NULL, JS_BACKUP_ATOMIC, NULL, NULL), JET_errInvalidGrbit);
    cr_assert(!tl_exists(tl_tp("g")));

    /* No job: cancel has nothing to stop. */
    FAILS_WITH(js_backup_cancel(inst), JET_errInvalidParameter);

    /* After all the refusals, a backup still runs. */
    tl_backup_ok(inst, tl_tp("ok"), JS_BACKUP_CREATE_DIR);
    OK(js_close(inst));
}

/* Cancel from the status callback's own thread. */
typedef struct cancel_ctx {
    js_instance *inst;
    int mode;               /* 0: js_backup_cancel, 1: return non-zero */
    const char *phase;
    int fired;
    tl_cbrec rec;
} cancel_ctx;

static int cancel_cb(void *ctx, int snp, int snt, const js_progress *p)
{
    cancel_ctx *c = ctx;
    tl_record_cb(&c->rec, snp, snt, p);
    if (snt == JS_SNT_PROGRESS && !c->fired && p->phase && !strcmp(p->phase, c->phase)) {
        c->fired = 1;
        if (c->mode == 0) {
            cr_assert_eq(js_backup_cancel(c->inst), JET_errSuccess);
            return 0;
        }
        return 1;
    }
    return 0;
}

Test(backup, err_abort_by_server, .timeout = 120)
{
    const char *inst_dir = tl_tp("inst");
    js_params p = tl_test_params();
    js_instance *inst = tl_create_open(inst_dir, &p);
    tl_fill(inst, "k", 0, 2000, 500);
    tl_backup_ok(inst, tl_tp("atomic"), JS_BACKUP_CREATE_DIR | JS_BACKUP_ATOMIC);
    tl_fill(inst, "l", 0, 300, 500);
    char *snap = tl_tree_snapshot(tl_tp("atomic"));
    tl_genlist *before = malloc(sizeof *before), *after = malloc(sizeof *after);
    const char *phases[] = { "copy-database", "copy-logs" };
    for (int mode = 0; mode < 2; mode++)
        for (int ph = 0; ph < 2; ph++) {
            tl_list_gens(inst_dir, before);
            cancel_ctx c = { .inst = inst, .mode = mode, .phase = phases[ph], .rec = { .monotonic_units = 1 } };
            FAILS_WITH(js_backup(inst, tl_tp("plain"), JS_BACKUP_CREATE_DIR, cancel_cb, &c), JET_errBackupAbortByServer);
            cr_assert(c.fired);
            cr_assert_eq(c.rec.fails, 1, "no JS_SNT_FAIL report");
            cr_assert_eq(c.rec.fail_err, JET_errBackupAbortByServer);
            cr_assert_eq(c.rec.completes, 0);
            cr_assert(!tl_exists(tl_tp("plain")), "a cancelled backup left the DEST it created");

            cancel_ctx c2 = { .inst = inst, .mode = mode, .phase = phases[ph], .rec = { .monotonic_units = 1 } };
            FAILS_WITH(js_backup(inst, tl_tp("atomic"), JS_BACKUP_ATOMIC, cancel_cb, &c2), JET_errBackupAbortByServer);
            char *snap2 = tl_tree_snapshot(tl_tp("atomic"));
            cr_assert_str_eq(snap, snap2, "a cancelled atomic backup changed the previous set");
            free(snap2);

            if (ph == 1) {
                cancel_ctx c3 = { .inst = inst, .mode = mode, .phase = "copy-logs", .rec = { .monotonic_units = 1 } };
                FAILS_WITH(js_backup(inst, tl_tp("atomic"), JS_BACKUP_ATOMIC | JS_BACKUP_INCREMENTAL, cancel_cb, &c3),
                           JET_errBackupAbortByServer);
                snap2 = tl_tree_snapshot(tl_tp("atomic"));
                cr_assert_str_eq(snap, snap2, "a cancelled atomic incremental changed the previous set");
                free(snap2);
            }
            tl_list_gens(inst_dir, after);
            const char *lost = tl_gens_kept(before, after);
            cr_assert_null(lost, "a cancelled backup truncated: %s", lost ? lost : "");
        }
    /* No job is left marked running. */
    FAILS_WITH(js_backup_cancel(inst), JET_errInvalidParameter);
    tl_backup_ok(inst, tl_tp("atomic"), JS_BACKUP_ATOMIC | JS_BACKUP_INCREMENTAL);
    OK(js_close(inst));
    free(snap);
    free(before);
    free(after);
}

static void *close_main(void *arg)
{
    js_instance *inst = arg;
    return (void *)(intptr_t)js_close(inst);
}

Test(backup, err_close_stops_running_backup, .timeout = 120)
{
    const char *inst_dir = tl_tp("inst");
    js_params p = tl_test_params();
    js_instance *inst = tl_create_open(inst_dir, &p);
    tl_fill(inst, "k", 0, 2000, 500);
    tl_kvdump live;
    tl_dump_inst(inst, &live);
    gate g;
    gate_init(&g, inst, tl_tp("bk"), JS_BACKUP_CREATE_DIR, JS_SNT_PROGRESS, "copy-database");
    pthread_t bth, cth;
    cr_assert_eq(pthread_create(&bth, NULL, gate_backup_main, &g), 0);
    gate_wait_entered(&g);
    cr_assert_eq(pthread_create(&cth, NULL, close_main, inst), 0);
    /* js_close waits for the job, so the instance is still there: poll
     * until a new job is refused because the instance is stopping. */
    JET_ERR r;
    for (int i = 0;; i++) {
        r = js_backup(inst, NULL, 0, NULL, NULL);
        if (r == JET_errTermInProgress)
            break;
        cr_assert_eq(r, JET_errBackupInProgress, "%s", js_errname(r));
        cr_assert_lt(i, 10000, "js_close never began");
        usleep(1000);
    }
    gate_release(&g);
    pthread_join(bth, NULL);
    void *cres;
    pthread_join(cth, &cres);
    cr_assert_eq(g.result, JET_errClientRequestToStopJetService, "backup ended with %s", js_errname(g.result));
    cr_assert_eq((JET_ERR)(intptr_t)cres, JET_errSuccess);
    cr_assert_eq(g.rec.fails, 1);
    cr_assert_eq(g.rec.fail_err, JET_errClientRequestToStopJetService);
    cr_assert(!tl_exists(tl_tp("bk")), "a stopped backup left its DEST");
    tl_kvdump d;
    tl_dump_dir(inst_dir, &d);
    ASSERT_DUMP_EQ(&d, &live, "reopen after a close that stopped a backup");
    js_info info;
    OK(js_info_read(inst_dir, &info));
    tl_assert_stamp(&info.last_full, 0, 0, "a stopped backup stamped last_full");
    tl_dump_free(&d);
    tl_dump_free(&live);
}
