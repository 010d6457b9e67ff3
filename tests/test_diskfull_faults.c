/*
 * test_diskfull_faults.c - a full disk is transient, an I/O error is not:
 * every place that writes, failed through the fault seam, and recovery
 * killed in its middle.
 *
 *  - The fault seam (core/os.c) fails the log flush, the log roll, the
 *    checkpoint's page writes and the growth of jetsnap.edb with ENOSPC:
 *    writes resume, nothing acknowledged is lost, a transaction refused by
 *    the log leaves nothing behind, even through redo; the same faults with
 *    EIO still make the instance JET_errInstanceUnavailable.
 *  - SIGKILL during crash recovery itself, twice, then a third open:
 *    nothing acknowledged is lost.
 *  - A failed flush of a group commit fails exactly the commits it
 *    carried.
 *
 * test_diskfull.c fills a real tmpfs.  Each test works in a plain
 * /tmp/jsdf-PID-* directory, removed by the suite's fini
 * (tests/lib/diskfull.h).
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "jetsnap.h"
#include "diskfull.h"
#include "testlib.h"

TestSuite(diskfull, .init = tl_df_sweep_stale, .fini = tl_df_sweep, .timeout = 240);

/* ------------------------------------------------------------------ */
/* The fault seam: every place that writes                              */
/* ------------------------------------------------------------------ */

static js_params seam_params(void)
{
    js_params p;
    js_params_default(&p);
    p.log_file_size = 64 << 10;
    p.cache_size = 16 << 20;
    p.checkpoint_ms = 3600 * 1000;   /* checkpoints when the test asks */
    return p;
}

/* Run body in a child that leaves without closing (a crash, as far as the
 * files are concerned), so the parent's open runs redo over what the child
 * logged.  The child reports the key count it acknowledged; 0-exit only. */
typedef long (*child_body)(const char *dir, int err);

static long run_and_crash(const char *dir, child_body body, int err)
{
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        long n = body(dir, err);
        if (write(fds[1], &n, sizeof n) != sizeof n)
            _exit(90);
        _exit(0);
    }
    close(fds[1]);
    long n = -1;
    ssize_t r = read(fds[0], &n, sizeof n);
    close(fds[0]);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0 && r == sizeof n,
              "child failed: exit %d (see the CHILD_FAIL codes in the body)", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    return n;
}

/* In a child, an assertion cannot report: exit codes name the step. */
#define CHILD_OK(x, code)                                                                           \
    do {                                                                                            \
        JET_ERR e_ = (x);                                                                           \
        if (e_) {                                                                                   \
            fprintf(stderr, "%s -> %s (%d): %s\n", #x, js_errname(e_), e_, js_errdetail());         \
            _exit(code);                                                                            \
        }                                                                                           \
    } while (0)
#define CHILD_EXPECT(cond, code)                                                                    \
    do {                                                                                            \
        if (!(cond)) {                                                                              \
            fprintf(stderr, "failed: %s (%s)\n", #cond, js_errdetail());                            \
            _exit(code);                                                                            \
        }                                                                                           \
    } while (0)

/* The log flush: the nth write (or fsync) of edb.log fails.  ENOSPC: the
 * commit carried by it gets JET_errLogDiskFull, the next write goes
 * through (retrying the failed blocks), nothing acknowledged is lost;
 * EIO: sticky.  Returns keys acknowledged (all of [0, n)). */
static long flush_body_common(const char *dir, int err, int op)
{
    js_params p = seam_params();
    js_instance *inst;
    js_session *s;
    CHILD_OK(js_open(dir, &p, &inst), 10);
    CHILD_OK(js_session_open(inst, &s), 11);
    long n = 0;
    for (; n < 20; n++)
        CHILD_OK(tl_df_put_key(s, n), 12);
    js_fault_arm(op, 3, err, -1, "edb.log");
    JET_ERR e = JET_errSuccess;
    for (int i = 0; i < 50 && !e; i++)
        if (!(e = tl_df_put_key(s, n)))
            n++;
    if (err == EIO) {
        CHILD_EXPECT(e == JET_errLogWriteFail, 13);
        CHILD_EXPECT(tl_df_put_key(s, 9999) == JET_errInstanceUnavailable, 14);
        CHILD_EXPECT(js_instance_state(inst) == JS_INST_FATAL, 15);
        return n;
    }
    CHILD_EXPECT(e == JET_errLogDiskFull, 16);
    CHILD_EXPECT(js_instance_state(inst) == JS_INST_READY, 17);
    long failed = n;   /* its outcome is unknown: skip its number */
    n++;
    for (int i = 0; i < 30; i++, n++)
        CHILD_OK(tl_df_put_key(s, n), 18);
    /* Reported as two ranges: [0, failed) and (failed, n). */
    return failed * 100000 + n;
}

static long flush_write_body(const char *dir, int err)
{
    return flush_body_common(dir, err, JS_FAULT_WRITE);
}

static long flush_fsync_body(const char *dir, int err)
{
    return flush_body_common(dir, err, JS_FAULT_FSYNC);
}

static void check_ranges(const char *dir, long code, int sticky)
{
    js_params p = seam_params();
    js_instance *inst;
    js_session *s;
    OK(js_open(dir, &p, &inst));
    OK(js_session_open(inst, &s));
    long failed = sticky ? code : code / 100000, end = sticky ? code : code % 100000;
    for (long i = 0; i < failed; i++)
        tl_df_expect_key(s, i);
    for (long i = failed + 1; i < end; i++)
        tl_df_expect_key(s, i);
    js_session_close(s);
    OK(js_close(inst));
}

static void seam_flush(child_body body, int err)
{
    tl_df_plain_root();
    char dir[128];
    snprintf(dir, sizeof dir, "%s/db", tl_df_root);
    js_params p = seam_params();
    OK(js_create(dir, &p));
    long code = run_and_crash(dir, body, err);
    check_ranges(dir, code, err == EIO);
}

Test(diskfull, seam_log_flush_write_enospc) { seam_flush(flush_write_body, ENOSPC); }
Test(diskfull, seam_log_flush_fsync_enospc) { seam_flush(flush_fsync_body, ENOSPC); }
Test(diskfull, seam_log_flush_write_eio_sticky) { seam_flush(flush_write_body, EIO); }

/* The log roll, in the middle of a transaction: transactions of 8 keys
 * with 3000-byte values log more than half a 64 KiB generation, so most
 * roll between their records.  The header write of the next generation
 * fails.  ENOSPC: that commit gets JET_errLogDiskFull and is rolled back
 * (none of its keys visible, now or after redo, though some of its
 * records were in the log); later transactions commit.  EIO: sticky. */
#define ROLL_KEYS 8

static JET_ERR roll_txn(js_session *s, long t)
{
    JET_ERR e = js_txn_begin(s, 0);
    if (e)
        return e;
    for (long i = 0; i < ROLL_KEYS && !e; i++) {
        char k[32];
        static unsigned char v[3000];
        int kl = snprintf(k, sizeof k, "roll:%04ld:%ld", t, i);
        memset(v, (int)(t + i), sizeof v);
        e = js_put(s, k, (size_t)kl, v, sizeof v);
    }
    if (e) {
        js_txn_rollback(s);
        return e;
    }
    return js_txn_commit(s, 0);
}

static int roll_txn_visible(js_session *s, long t)
{
    int seen = 0;
    for (long i = 0; i < ROLL_KEYS; i++) {
        char k[32];
        void *v = NULL;
        size_t vl = 0;
        int kl = snprintf(k, sizeof k, "roll:%04ld:%ld", t, i);
        JET_ERR e = js_get(s, k, (size_t)kl, &v, &vl);
        if (e == JET_errSuccess) {
            seen++;
            free(v);
        } else {
            cr_assert_eq(e, JET_errRecordNotFound, "get %s: %s", k, js_errname(e));
        }
    }
    return seen;
}

static long roll_body(const char *dir, int err)
{
    js_params p = seam_params();
    js_instance *inst;
    js_session *s;
    CHILD_OK(js_open(dir, &p, &inst), 20);
    CHILD_OK(js_session_open(inst, &s), 21);
    long t = 0;
    for (; t < 3; t++)
        CHILD_OK(roll_txn(s, t), 22);
    js_fault_arm(JS_FAULT_WRITE, 1, err, -1, "edbtmp.log");
    JET_ERR e = JET_errSuccess;
    for (int i = 0; i < 20 && !e; i++)
        if (!(e = roll_txn(s, t)))
            t++;
    if (err == EIO) {
        CHILD_EXPECT(e == JET_errLogWriteFail, 23);
        CHILD_EXPECT(roll_txn(s, 999) == JET_errInstanceUnavailable, 24);
        return t;
    }
    CHILD_EXPECT(e == JET_errLogDiskFull, 25);
    long failed = t;
    /* Rolled back: nothing of it is visible. */
    int seen = 0;
    for (long i = 0; i < ROLL_KEYS; i++) {
        char k[32];
        void *v;
        size_t vl;
        int kl = snprintf(k, sizeof k, "roll:%04ld:%ld", failed, i);
        if (js_get(s, k, (size_t)kl, &v, &vl) == JET_errSuccess) {
            seen++;
            free(v);
        }
    }
    CHILD_EXPECT(seen == 0, 26);
    for (t = failed + 1; t < failed + 8; t++)
        CHILD_OK(roll_txn(s, t), 27);
    uint32_t closed = 0;
    CHILD_OK(js_log_roll(inst, &closed), 28);
    return failed * 100000 + t;
}

static void seam_roll(int err)
{
    tl_df_plain_root();
    char dir[128];
    snprintf(dir, sizeof dir, "%s/db", tl_df_root);
    js_params p = seam_params();
    OK(js_create(dir, &p));
    long code = run_and_crash(dir, roll_body, err);
    js_instance *inst;
    js_session *s;
    OK(js_open(dir, &p, &inst));
    OK(js_session_open(inst, &s));
    long failed = err == EIO ? code : code / 100000, end = err == EIO ? code : code % 100000;
    for (long t = 0; t < failed; t++)
        cr_assert_eq(roll_txn_visible(s, t), ROLL_KEYS, "acknowledged transaction %ld is not whole", t);
    if (err != EIO) {
        cr_assert_eq(roll_txn_visible(s, failed), 0, "the refused transaction %ld came back through redo", failed);
        for (long t = failed + 1; t < end; t++)
            cr_assert_eq(roll_txn_visible(s, t), ROLL_KEYS, "acknowledged transaction %ld is not whole", t);
    }
    js_session_close(s);
    OK(js_close(inst));
    js_check_report rep;
    OK(js_check(dir, &rep));
}

Test(diskfull, seam_log_roll_enospc_rolls_back) { seam_roll(ENOSPC); }
Test(diskfull, seam_log_roll_eio_sticky) { seam_roll(EIO); }

/* The checkpoint: a page write (op JS_FAULT_WRITE) or the growth of
 * jetsnap.edb (JS_FAULT_ALLOCATE) fails.  ENOSPC: js_checkpoint says
 * JET_errDiskFull, writes go on (the next one asks for a checkpoint), a
 * later checkpoint succeeds and writes the pages the failed one did not,
 * then the child crashes: redo starts at that later checkpoint, so a page
 * the failed one dropped would be lost.  EIO: sticky. */
static long ckpt_body(const char *dir, int err, int op)
{
    js_params p = seam_params();
    js_instance *inst;
    js_session *s;
    CHILD_OK(js_open(dir, &p, &inst), 30);
    CHILD_OK(js_session_open(inst, &s), 31);
    long n = 0;
    for (; n < 400; n++)
        CHILD_OK(tl_df_put_key(s, n), 32);
    js_fault_arm(op, 1, err, -1, "jetsnap.edb");
    JET_ERR e = js_checkpoint(inst);
    if (err == EIO) {
        CHILD_EXPECT(e == JET_errDiskIO, 33);
        CHILD_EXPECT(tl_df_put_key(s, 9999) == JET_errInstanceUnavailable, 34);
        return n;
    }
    CHILD_EXPECT(e == JET_errDiskFull, 35);
    CHILD_EXPECT(js_instance_state(inst) == JS_INST_READY, 36);
    for (long i = 0; i < 100; i++, n++)
        CHILD_OK(tl_df_put_key(s, n), 37);
    CHILD_OK(js_checkpoint(inst), 38);
    for (long i = 0; i < 10; i++, n++)
        CHILD_OK(tl_df_put_key(s, n), 39);
    return n;
}

static long ckpt_write_body(const char *dir, int err)
{
    return ckpt_body(dir, err, JS_FAULT_WRITE);
}

static long ckpt_grow_body(const char *dir, int err)
{
    return ckpt_body(dir, err, JS_FAULT_ALLOCATE);
}

static void seam_ckpt(child_body body, int err)
{
    tl_df_plain_root();
    char dir[128];
    snprintf(dir, sizeof dir, "%s/db", tl_df_root);
    js_params p = seam_params();
    OK(js_create(dir, &p));
    long n = run_and_crash(dir, body, err);
    js_instance *inst;
    js_session *s;
    OK(js_open(dir, &p, &inst));
    OK(js_session_open(inst, &s));
    for (long i = 0; i < n; i++)
        tl_df_expect_key(s, i);
    js_session_close(s);
    OK(js_close(inst));
    js_check_report rep;
    OK(js_check(dir, &rep));
}

Test(diskfull, seam_checkpoint_page_write_enospc) { seam_ckpt(ckpt_write_body, ENOSPC); }
Test(diskfull, seam_checkpoint_db_growth_enospc) { seam_ckpt(ckpt_grow_body, ENOSPC); }
Test(diskfull, seam_checkpoint_page_write_eio_sticky) { seam_ckpt(ckpt_write_body, EIO); }
Test(diskfull, seam_checkpoint_db_growth_eio_sticky) { seam_ckpt(ckpt_grow_body, EIO); }

/* ------------------------------------------------------------------ */
/* SIGKILL during crash recovery itself                                 */
/* ------------------------------------------------------------------ */

/* Each transaction n rewrites slot n % RK_SLOTS with a 128 KiB value
 * stamped with n (so the log grows by about that much per transaction:
 * the overflow pages are new every time) and adds the unique key u:n.
 * One commit in RK_DURABLE_EVERY is durable and acknowledged with its n;
 * the lazy ones before it are durable then too. */
#define RK_SLOTS 48
#define RK_VAL (128u << 10)
#define RK_DURABLE_EVERY 8
#define RK_LOG_BYTES (320ull << 20)

static js_params rk_params(void)
{
    js_params p;
    js_params_default(&p);
    p.log_file_size = 16 << 20;
    p.cache_size = 1ull << 30;         /* no checkpoint asked for by dirty pages */
    p.checkpoint_ms = 3600 * 1000;     /* and none by time: redo covers the whole log */
    p.commit_mode = JS_COMMIT_LAZY;
    return p;
}

static void rk_writer(const char *dir, int ackfd)
{
    js_params p = rk_params();
    js_instance *inst;
    js_session *s;
    if (js_open(dir, &p, &inst) || js_session_open(inst, &s))
        _exit(40);
    static unsigned char val[RK_VAL];
    for (long n = 0;; n++) {
        char slot[32], uk[32];
        int sl = snprintf(slot, sizeof slot, "slot:%02ld", n % RK_SLOTS);
        int ul = snprintf(uk, sizeof uk, "u:%08ld", n);
        memset(val, (int)(n & 0xff), sizeof val);
        memcpy(val, &n, sizeof n);
        int durable = n % RK_DURABLE_EVERY == RK_DURABLE_EVERY - 1;
        if (js_txn_begin(s, 0) || js_put(s, slot, (size_t)sl, val, sizeof val) ||
            js_put(s, uk, (size_t)ul, &n, sizeof n) ||
            js_txn_commit(s, durable ? JS_COMMIT_FLAG_DURABLE : JS_COMMIT_FLAG_LAZY))
            _exit(41);
        if (durable && write(ackfd, &n, sizeof n) != sizeof n)
            _exit(42);
    }
}

/* rchar or wchar of a process (/proc/PID/io), 0 when it is gone. */
static unsigned long long proc_io(pid_t pid, const char *field)
{
    char path[64], line[128];
    unsigned long long v = 0;
    snprintf(path, sizeof path, "/proc/%d/io", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t fl = strlen(field);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, field, fl) && line[fl] == ':')
            v = strtoull(line + fl + 1, NULL, 10);
    fclose(f);
    return v;
}

/* Start a recovery (js_open) in a child and SIGKILL it once its field of
 * /proc/PID/io passes threshold.  Returns 1 when the kill landed before
 * the open returned (the child reports that through a pipe). */
static int kill_during_recovery(const char *dir, const char *field, unsigned long long threshold)
{
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        js_params p = rk_params();
        js_instance *inst;
        if (js_open(dir, &p, &inst))
            _exit(50);
        char done = 1;
        if (write(fds[1], &done, 1) != 1)
            _exit(51);
        for (;;)
            pause();
    }
    close(fds[1]);
    while (proc_io(pid, field) < threshold) {
        int st;
        cr_assert_eq(waitpid(pid, &st, WNOHANG), 0, "the recovering child ended (status %d)", st);
        usleep(200);
    }
    kill(pid, SIGKILL);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    char done = 0;
    int finished = read(fds[0], &done, 1) == 1;
    close(fds[0]);
    cr_assert(WIFSIGNALED(st), "the recovering child failed (status %d)", WEXITSTATUS(st));
    return !finished;
}

Test(diskfull, sigkill_during_recovery_then_recover_again, .timeout = 600)
{
    tl_df_plain_root();
    char dir[128];
    snprintf(dir, sizeof dir, "%s/db", tl_df_root);
    js_params p = rk_params();
    OK(js_create(dir, &p));

    /* A long log: RK_LOG_BYTES of transactions, then SIGKILL. */
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        rk_writer(dir, fds[1]);
    }
    close(fds[1]);
    long acked = -1, n;
    const long target = (long)(RK_LOG_BYTES / RK_VAL);
    while (acked < target && read(fds[0], &n, sizeof n) == sizeof n)
        acked = n;
    kill(pid, SIGKILL);
    while (read(fds[0], &n, sizeof n) == sizeof n)
        acked = n;
    close(fds[0]);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFSIGNALED(st), "the writer stopped by itself (status %d)", WEXITSTATUS(st));
    cr_assert_geq(acked, target);

    /* Recovery killed while it reads the log (a third of the way in), then
     * while it writes (the checkpoint that ends recovery), then a third
     * open that must find every acknowledged transaction. */
    int mid_redo = kill_during_recovery(dir, "rchar", RK_LOG_BYTES / 3);
    int mid_write = kill_during_recovery(dir, "wchar", 4u << 20);
    cr_log_info("acknowledged %ld transactions; kills landed inside recovery: redo %d, writes %d", acked, mid_redo,
                mid_write);

    js_instance *inst;
    js_session *s;
    OK(js_open(dir, &p, &inst));
    OK(js_session_open(inst, &s));
    for (long i = 0; i <= acked; i++) {
        char uk[32];
        int ul = snprintf(uk, sizeof uk, "u:%08ld", i);
        void *v = NULL;
        size_t vl = 0;
        JET_ERR e = js_get(s, uk, (size_t)ul, &v, &vl);
        cr_assert_eq(e, JET_errSuccess, "acknowledged transaction %ld lost: %s", i, js_errname(e));
        cr_assert(vl == sizeof(long) && !memcmp(v, &i, sizeof i));
        free(v);
    }
    /* Every slot holds the last acknowledged write to it, or the one in
     * flight just after (committed, not yet acknowledged). */
    for (long j = 0; j < RK_SLOTS; j++) {
        char slot[32];
        int sl = snprintf(slot, sizeof slot, "slot:%02ld", j);
        void *v = NULL;
        size_t vl = 0;
        OK(js_get(s, slot, (size_t)sl, &v, &vl));
        long got;
        memcpy(&got, v, sizeof got);
        long want = acked - ((acked - j) % RK_SLOTS + RK_SLOTS) % RK_SLOTS;
        cr_assert(vl == RK_VAL && got >= want && got <= acked + RK_SLOTS && got % RK_SLOTS == j,
                  "slot %ld holds transaction %ld, acknowledged up to %ld", j, got, want);
        cr_assert_eq(((unsigned char *)v)[RK_VAL - 1], (unsigned char)(got & 0xff), "slot %ld is torn", j);
        free(v);
    }
    js_session_close(s);
    OK(js_close(inst));
}

/* ------------------------------------------------------------------ */
/* Group commit: a failed flush fails exactly the commits it carried     */
/* ------------------------------------------------------------------ */

#define GC_THREADS 4
#define GC_PUTS 150

typedef struct gc_arg {
    js_instance *inst;
    int id;
    unsigned char acked[GC_PUTS];   /* 1: the put returned success */
    int refused, other;
} gc_arg;

static void *gc_thread(void *p)
{
    gc_arg *a = p;
    js_session *s;
    if (js_session_open(a->inst, &s)) {
        a->other++;
        return NULL;
    }
    for (int i = 0; i < GC_PUTS; i++) {
        char k[32];
        int kl = snprintf(k, sizeof k, "gc:%d:%04d", a->id, i);
        JET_ERR e = js_put(s, k, (size_t)kl, k, (size_t)kl);
        if (e == JET_errSuccess)
            a->acked[i] = 1;
        else if (e == JET_errLogDiskFull)
            a->refused++;
        else
            a->other++;
    }
    js_session_close(s);
    return NULL;
}

Test(diskfull, group_commit_flush_enospc_with_concurrent_committers)
{
    tl_df_plain_root();
    char dir[128];
    snprintf(dir, sizeof dir, "%s/db", tl_df_root);
    js_params p = seam_params();
    p.log_file_size = 16 << 20;
    OK(js_create(dir, &p));
    js_instance *inst;
    OK(js_open(dir, &p, &inst));
    /* A failed write, then a failed fsync, of edb.log while four threads
     * commit durably. */
    static gc_arg args[2][GC_THREADS];
    const int ops[2] = { JS_FAULT_WRITE, JS_FAULT_FSYNC };
    int refused = 0;
    for (int r = 0; r < 2; r++) {
        pthread_t th[GC_THREADS];
        js_fault_arm(ops[r], 30, ENOSPC, -1, "edb.log");
        for (int t = 0; t < GC_THREADS; t++) {
            memset(&args[r][t], 0, sizeof args[r][t]);
            args[r][t].inst = inst;
            args[r][t].id = r * GC_THREADS + t;
            cr_assert_eq(pthread_create(&th[t], NULL, gc_thread, &args[r][t]), 0);
        }
        for (int t = 0; t < GC_THREADS; t++)
            pthread_join(th[t], NULL);
        for (int t = 0; t < GC_THREADS; t++) {
            cr_assert_eq(args[r][t].other, 0, "a committer got an error other than JET_errLogDiskFull");
            refused += args[r][t].refused;
        }
    }
    cr_assert_geq(refused, 2, "the injected failures reached no committer");
    cr_assert_eq(js_instance_state(inst), JS_INST_READY);
    js_fault_reset();
    OK(js_close(inst));

    /* Every acknowledged put is there after a clean close; js_check
     * agrees with the files. */
    OK(js_open(dir, &p, &inst));
    js_session *s;
    OK(js_session_open(inst, &s));
    for (int r = 0; r < 2; r++)
        for (int t = 0; t < GC_THREADS; t++)
            for (int i = 0; i < GC_PUTS; i++) {
                if (!args[r][t].acked[i])
                    continue;
                char k[32];
                int kl = snprintf(k, sizeof k, "gc:%d:%04d", args[r][t].id, i);
                void *v;
                size_t vl;
                JET_ERR e = js_get(s, k, (size_t)kl, &v, &vl);
                cr_assert_eq(e, JET_errSuccess, "acknowledged %s lost", k);
                cr_assert(vl == (size_t)kl && !memcmp(v, k, vl));
                free(v);
            }
    js_session_close(s);
    OK(js_close(inst));
    js_check_report rep;
    OK(js_check(dir, &rep));
}

/* The one lack of space that stays sticky: a failed fsync of jetsnap.edb
 * (the kernel may have dropped the pages it could not write). */
Test(diskfull, seam_checkpoint_db_fsync_enospc_is_sticky)
{
    tl_df_plain_root();
    char dir[128];
    snprintf(dir, sizeof dir, "%s/db", tl_df_root);
    js_params p = seam_params();
    OK(js_create(dir, &p));
    js_instance *inst;
    js_session *s;
    OK(js_open(dir, &p, &inst));
    OK(js_session_open(inst, &s));
    for (long n = 0; n < 100; n++)
        OK(tl_df_put_key(s, n));
    js_fault_arm(JS_FAULT_FSYNC, 1, ENOSPC, -1, "jetsnap.edb");
    JET_ERR e = js_checkpoint(inst);
    cr_assert_eq(e, JET_errDiskFull, "checkpoint: %s (%d): %s", js_errname(e), e, js_errdetail());
    cr_assert_eq(tl_df_put_key(s, 100), JET_errInstanceUnavailable);
    cr_assert_eq(js_instance_state(inst), JS_INST_FATAL);
    js_session_close(s);
    js_close(inst);
    js_fault_reset();
    js_params vp = seam_params();
    OK(js_open(dir, &vp, &inst));
    OK(js_session_open(inst, &s));
    for (long n = 0; n < 100; n++)
        tl_df_expect_key(s, n);
    js_session_close(s);
    OK(js_close(inst));
}
