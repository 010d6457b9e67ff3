/*
 * test_fault.c - I/O faults injected under the engine (EIO, ENOSPC, a torn
 * write) during commit, log roll and checkpoint: the call reports the error,
 * the instance refuses further work after an I/O error (but not after a
 * lack of space, which is transient: tests/test_diskfull.c covers it in
 * depth), and reopened it holds exactly the committed data.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jetsnap.h"
#include "testlib.h"

static js_params fault_params(void)
{
    js_params p;
    js_params_default(&p);
    p.commit_mode = JS_COMMIT_DURABLE;
    p.log_file_size = 64 << 10;
    p.cache_size = 4 << 20;
    p.checkpoint_ms = 3600 * 1000;   /* checkpoints only when the test asks */
    return p;
}

static void fini(void)
{
    js_fault_reset();
}

TestSuite(fault, .fini = fini, .timeout = 120);

/* Commit keys one by one until a call fails; return how many succeeded. */
static int commit_until_error(js_session *s, int start, int max, JET_ERR *err)
{
    char k[32];
    unsigned char v[700];
    memset(v, 'f', sizeof v);
    for (int i = start; i < start + max; i++) {
        snprintf(k, sizeof k, "k%06d", i);
        *err = js_put(s, k, strlen(k), v, sizeof v);
        if (*err)
            return i - start;
    }
    return max;
}

/* Reopened, the instance holds exactly keys [0, n), or [0, n + maybe_one)
 * when the failed call's bytes may have reached the file (a failed fsync
 * cannot tell whether they are durable, so the commit is reported failed
 * and may still be found after a restart). */
static void expect_exactly(const char *dir, int n, int maybe_one)
{
    js_params p = fault_params();
    js_instance *inst;
    js_session *s;
    js_fault_reset();
    OK(js_open(dir, &p, &inst));
    OK(js_session_open(inst, &s));
    uint64_t count;
    OK(js_count(s, &count));
    cr_assert(count == (uint64_t)n || (maybe_one && count == (uint64_t)n + 1), "expected %d keys, found %llu", n,
              (unsigned long long)count);
    char k[32];
    for (int i = 0; i < n; i++) {
        void *v;
        size_t vl;
        snprintf(k, sizeof k, "k%06d", i);
        OK(js_get(s, k, strlen(k), &v, &vl));
        cr_assert_eq(vl, 700);
        free(v);
    }
    js_session_close(s);
    OK(js_close(inst));
}

static void run_fault(int op, int err, long tear, const char *filter, int nth, JET_ERR want, int roll)
{
    char *dir = tl_tmpdir("jsfault");
    js_params p = fault_params();
    if (!roll)
        p.log_file_size = 16 << 20;   /* no roll inside the test */
    OK(js_create(dir, &p));
    js_instance *inst;
    js_session *s;
    OK(js_open(dir, &p, &inst));
    OK(js_session_open(inst, &s));
    JET_ERR e = JET_errSuccess;
    int done = commit_until_error(s, 0, 20, &e);
    OK(e);
    js_fault_arm(op, (uint64_t)nth, err, tear, filter);
    done += commit_until_error(s, done, 400, &e);
    cr_assert_eq(e, want, "expected %s, got %s (%s)", js_errname(want), js_errname(e), js_errdetail());
    int space = err == ENOSPC;
    if (space) {
        /* Transient: the next write retries the failed log write and goes
         * through; the failed commit's records are rewritten with it. */
        OK(js_put(s, "more", 4, "x", 1));
        OK(js_del(s, "more", 4));
    } else {
        /* Sticky: nothing more is accepted. */
        cr_assert_eq(js_put(s, "more", 4, "x", 1), JET_errInstanceUnavailable);
    }
    js_session_close(s);
    js_close(inst);   /* returns the first error; the files stay as they are */
    expect_exactly(dir, done, space || op == JS_FAULT_FSYNC || op == JS_FAULT_RENAME);
    cr_assert_eq(tl_rmrf(dir), 0);
    free(dir);
}

Test(fault, log_write_eio_during_commit)
{
    run_fault(JS_FAULT_WRITE, EIO, -1, "edb.log", 3, JET_errLogWriteFail, 0);
}

Test(fault, log_write_enospc_during_commit)
{
    run_fault(JS_FAULT_WRITE, ENOSPC, -1, "edb.log", 3, JET_errLogDiskFull, 0);
}

Test(fault, log_write_torn_during_commit)
{
    run_fault(JS_FAULT_WRITE, EIO, 300, "edb.log", 2, JET_errLogWriteFail, 0);
}

Test(fault, log_fsync_eio_during_commit)
{
    run_fault(JS_FAULT_FSYNC, EIO, -1, "edb.log", 2, JET_errLogWriteFail, 0);
}

Test(fault, rename_eio_during_roll)
{
    run_fault(JS_FAULT_RENAME, EIO, -1, NULL, 1, JET_errLogWriteFail, 1);
}

Test(fault, fsync_eio_during_roll)
{
    /* The new generation's header sync is the one that fails. */
    run_fault(JS_FAULT_FSYNC, EIO, -1, "edbtmp.log", 1, JET_errLogWriteFail, 1);
}

static void checkpoint_fault(int op, int err, const char *filter, JET_ERR want)
{
    char *dir = tl_tmpdir("jsfault");
    js_params p = fault_params();
    OK(js_create(dir, &p));
    js_instance *inst;
    js_session *s;
    OK(js_open(dir, &p, &inst));
    OK(js_session_open(inst, &s));
    JET_ERR e;
    int done = commit_until_error(s, 0, 200, &e);
    OK(e);
    js_fault_arm(op, 1, err, -1, filter);
    e = js_checkpoint(inst);
    cr_assert_eq(e, want, "checkpoint: expected %s, got %s (%s)", js_errname(want), js_errname(e), js_errdetail());
    if (err == ENOSPC) {
        /* Transient: the write asks for another checkpoint, which succeeds. */
        OK(js_put(s, "more", 4, "x", 1));
        OK(js_del(s, "more", 4));
    } else {
        cr_assert_eq(js_put(s, "more", 4, "x", 1), JET_errInstanceUnavailable);
    }
    js_session_close(s);
    js_close(inst);
    expect_exactly(dir, done, 0);
    cr_assert_eq(tl_rmrf(dir), 0);
    free(dir);
}

Test(fault, checkpoint_page_write_eio)
{
    checkpoint_fault(JS_FAULT_WRITE, EIO, "jetsnap.edb", JET_errDiskIO);
}

Test(fault, checkpoint_page_write_enospc)
{
    checkpoint_fault(JS_FAULT_WRITE, ENOSPC, "jetsnap.edb", JET_errDiskFull);
}

Test(fault, checkpoint_db_fsync_eio)
{
    checkpoint_fault(JS_FAULT_FSYNC, EIO, "jetsnap.edb", JET_errDiskIO);
}

Test(fault, checkpoint_file_write_eio)
{
    checkpoint_fault(JS_FAULT_WRITE, EIO, "edb.chk", JET_errDiskIO);
}

Test(fault, counters_count_and_filter)
{
    char *dir = tl_tmpdir("jsfault");
    js_params p = fault_params();
    js_fault_reset();
    js_fault_arm(JS_FAULT_WRITE, 0, 0, -1, "edb.chk");
    OK(js_create(dir, &p));
    cr_assert_eq(js_fault_count(JS_FAULT_WRITE), 2, "edb.chk is written as two copies");
    cr_assert_eq(tl_rmrf(dir), 0);
    free(dir);
}
