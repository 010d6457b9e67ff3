/*
 * test_diskfull.c - a full disk is transient: the real thing.
 *
 * DBDIR on a small tmpfs filled by writes (through the engine API, and
 * once through the RESP server to see the -ERR text) until writes fail
 * with JET_errLogDiskFull or JET_errDiskFull; reads still work; a filler
 * file placed there first is deleted and writes resume without a restart;
 * every acknowledged key is there after a clean close and reopen, and
 * after a SIGKILL and recovery.  test_diskfull_faults.c fails each write
 * through the fault seam instead, and kills recovery itself.
 *
 * The tests run as root (tmpfs mounts).  Every mount is made in a mkdtemp
 * directory /tmp/jsdf-PID-* and unmounted by the suite's fini even when an
 * assertion fails; the suite's init sweeps those of a test process that
 * died before its fini (tests/lib/diskfull.h).
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../fs/redis/server.h"
#include "jetsnap.h"
#include "diskfull.h"
#include "respcl.h"
#include "testlib.h"

#define IS_SPACE(e) ((e) == JET_errLogDiskFull || (e) == JET_errDiskFull)

static char sockdir[64];   /* the RESP test's socket directory, or "" */

static void sweep(void)
{
    if (sockdir[0])
        tl_rmrf(sockdir);
    sockdir[0] = '\0';
    tl_df_sweep();
}

TestSuite(diskfull, .init = tl_df_sweep_stale, .fini = sweep, .timeout = 240);

/* ------------------------------------------------------------------ */
/* Filling the disk                                                     */
/* ------------------------------------------------------------------ */

/* A file of real (allocated) bytes, to be deleted to free space. */
static void make_filler(const char *path, size_t bytes)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
    static char chunk[65536];
    memset(chunk, 0xa5, sizeof chunk);
    for (size_t done = 0; done < bytes;) {
        size_t n = bytes - done < sizeof chunk ? bytes - done : sizeof chunk;
        errno = 0;
        ssize_t w = write(fd, chunk, n);
        cr_assert_eq(w, (ssize_t)n, "filler %s: %s", path, strerror(errno));
        done += n;
    }
    cr_assert_eq(fsync(fd), 0);
    close(fd);
}

/* A filler that leaves only `leave` bytes free on tl_df_root's file system. */
static size_t make_filler_leaving(const char *path, size_t leave)
{
    struct statvfs sv;
    cr_assert_eq(statvfs(tl_df_root, &sv), 0);
    size_t avail = (size_t)sv.f_bavail * sv.f_frsize;
    cr_assert_gt(avail, leave + (2u << 20), "only %zu bytes free on %s", avail, tl_df_root);
    make_filler(path, avail - leave);
    return avail - leave;
}


/* 8 MiB for the instance and its logs, and 2 MiB for the doublewrite buffer
 * (516 slots of 4 KiB pages, allocated at start); every test then leaves
 * only a little of it free with a filler. */
#define DF_TMPFS_KIB (8192 + 2064)

static js_params small_params(void)
{
    js_params p;
    js_params_default(&p);
    p.page_size = 4096;
    p.log_file_size = 128 << 10;
    p.cache_size = 64 << 20;
    p.checkpoint_ms = 50;   /* pages reach jetsnap.edb, so it grows too */
    return p;
}

/* For the tests where the log is what fills the disk: circular logging
 * (a checkpoint deletes the generations before it), no checkpoint but
 * those asked for, and jetsnap.edb grown beforehand (600 keys written,
 * checkpointed, deleted, checkpointed: the file keeps its size and its
 * free pages), so the checkpoint at close needs no new space. */
static js_params log_fill_params(void)
{
    js_params p = small_params();
    p.circular_log = 1;
    p.checkpoint_ms = 3600 * 1000;
    return p;
}

static void create_pregrown(const char *dir)
{
    js_params p = log_fill_params();
    js_instance *inst;
    js_session *s;
    OK(js_create(dir, &p));
    OK(js_open(dir, &p, &inst));
    OK(js_session_open(inst, &s));
    for (long i = 0; i < 600; i++)
        OK(tl_df_put_key(s, 1000000 + i));
    OK(js_checkpoint(inst));
    for (long i = 0; i < 600; i++) {
        char k[32];
        int kl = tl_df_key_of(k, sizeof k, 1000000 + i);
        OK(js_del(s, k, (size_t)kl));
    }
    OK(js_checkpoint(inst));
    js_session_close(s);
    OK(js_close(inst));
}

/* Reopen dir and check keys [0, n) are all there (and the count is at
 * least n: a write whose outcome was unknown may be there too). */
static void verify_reopen(const char *dir, long n)
{
    js_params p = small_params();
    js_instance *inst;
    js_session *s;
    OK(js_open(dir, &p, &inst));
    OK(js_session_open(inst, &s));
    for (long i = 0; i < n; i++)
        tl_df_expect_key(s, i);
    js_session_close(s);
    OK(js_close(inst));
}

/* Put keys from *next on until a put fails; every success is counted in
 * *next.  A checkpoint every 25 puts makes jetsnap.edb grow as well as the
 * log, so either may be the one that finds the disk full.  Returns the
 * error (a space error is asserted). */
static JET_ERR fill_until_full(js_instance *inst, js_session *s, long *next, long max)
{
    for (long i = 0; i < max; i++) {
        if (i % 25 == 24) {
            JET_ERR c = js_checkpoint(inst);
            cr_assert(c == JET_errSuccess || IS_SPACE(c), "checkpoint: %s (%d): %s", js_errname(c), c,
                      js_errdetail());
        }
        JET_ERR e = tl_df_put_key(s, *next);
        if (e) {
            cr_assert(IS_SPACE(e), "put %ld failed with %s (%d), not for lack of space: %s", *next,
                      js_errname(e), e, js_errdetail());
            return e;
        }
        (*next)++;
    }
    cr_assert_fail("the disk never filled up after %ld puts", max);
    return JET_errSuccess;
}

/* ------------------------------------------------------------------ */
/* A real full disk: tmpfs                                              */
/* ------------------------------------------------------------------ */

Test(diskfull, tmpfs_fill_free_resume_then_clean_reopen)
{
    tl_df_mount_tmpfs(DF_TMPFS_KIB);
    char dir[128], filler[128];
    snprintf(dir, sizeof dir, "%s/db", tl_df_root);
    snprintf(filler, sizeof filler, "%s/filler", tl_df_root);
    make_filler(filler, 3 << 20);
    js_params p = small_params();
    OK(js_create(dir, &p));
    js_instance *inst;
    js_session *s;
    OK(js_open(dir, &p, &inst));
    OK(js_session_open(inst, &s));

    long next = 0;
    JET_ERR e = fill_until_full(inst, s, &next, 20000);
    cr_assert_gt(next, 50, "only %ld keys before the disk was full", next);
    cr_log_info("disk full after %ld keys: %s", next, js_errname(e));
    /* Still full: still refused, and the instance is not fatal. */
    e = tl_df_put_key(s, next);
    cr_assert(IS_SPACE(e), "a second put gave %s (%d): %s", js_errname(e), e, js_errdetail());
    cr_assert_eq(js_instance_state(inst), JS_INST_READY);
    /* Reads go on. */
    tl_df_expect_key(s, 0);
    tl_df_expect_key(s, next - 1);
    uint64_t count = 0;
    OK(js_count(s, &count));
    cr_assert_geq(count, (uint64_t)next);

    /* Free space: writes resume by themselves. */
    cr_assert_eq(unlink(filler), 0);
    long resumed_from = next;
    for (int i = 0; i < 100; i++) {
        OK(tl_df_put_key(s, next));
        next++;
    }
    for (long i = resumed_from; i < next; i++)
        tl_df_expect_key(s, i);
    js_session_close(s);
    OK(js_close(inst));
    verify_reopen(dir, next);
}

Test(diskfull, tmpfs_fill_free_resume_then_sigkill_recovery)
{
    tl_df_mount_tmpfs(DF_TMPFS_KIB);
    char dir[128], filler[128];
    snprintf(dir, sizeof dir, "%s/db", tl_df_root);
    snprintf(filler, sizeof filler, "%s/filler", tl_df_root);
    create_pregrown(dir);
    make_filler_leaving(filler, 512 << 10);
    js_params p = log_fill_params();

    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        /* The child acknowledges every committed key, reports the first
         * refusal as a negative number, frees space, writes on and waits
         * for its SIGKILL. */
        close(fds[0]);
        js_instance *inst;
        js_session *s;
        if (js_open(dir, &p, &inst) || js_session_open(inst, &s))
            _exit(3);
        long n = 0, full = 0;
        for (;;) {
            JET_ERR e = tl_df_put_key(s, n);
            if (e && !full) {
                long code = e;
                if (write(fds[1], &code, sizeof code) != sizeof code)
                    _exit(4);
                if (!IS_SPACE(e) || unlink(filler) != 0)
                    _exit(5);
                full = 1;
                continue;
            }
            if (e)
                _exit(6);   /* space was freed: any refusal now is a failure */
            if (write(fds[1], &n, sizeof n) != sizeof n)
                _exit(7);
            n++;
        }
    }
    close(fds[1]);
    long acked = -1, code = 0, after_full = 0, msg;
    while (read(fds[0], &msg, sizeof msg) == sizeof msg) {
        if (msg < 0) {
            code = msg;
            continue;
        }
        acked = msg;
        if (code && ++after_full == 200)
            break;
    }
    kill(pid, SIGKILL);
    while (read(fds[0], &msg, sizeof msg) == sizeof msg)
        if (msg >= 0)
            acked = msg;
    close(fds[0]);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFSIGNALED(st), "the child stopped by itself (status %d): a write failed after space was freed",
              WEXITSTATUS(st));
    cr_assert_eq(code, JET_errLogDiskFull, "first refusal was %ld, not the log's lack of space", code);
    cr_assert_eq(after_full, 200, "writes did not resume after space was freed");
    verify_reopen(dir, acked + 1);
}

/* ------------------------------------------------------------------ */
/* The same through the RESP server                                     */
/* ------------------------------------------------------------------ */

#define FULL_ERR "-ERR JET_errLogDiskFull (-529)"

/* SET key n to its value; the raw reply (malloc'd). */
static char *set_key(tl_client *c, long n)
{
    char k[32];
    unsigned char v[TL_DF_VAL_LEN];
    int kl = tl_df_key_of(k, sizeof k, n);
    tl_df_val_of(v, n);
    const char *argv[] = { "SET", k, (const char *)v };
    size_t lens[] = { 3, (size_t)kl, TL_DF_VAL_LEN };
    tl_cl_cmdv(c, 3, argv, lens);
    char *reply = tl_cl_reply(c, NULL);
    cr_assert_not_null(reply, "no reply from the server");
    return reply;
}


/* Events about the log's lack of space: one when it starts, one when it
 * is over, however many writes were refused in between. */
static pthread_mutex_t ev_lock = PTHREAD_MUTEX_INITIALIZER;
static int ev_full, ev_resumed;

static void count_events(void *ctx, const js_event *ev)
{
    (void)ctx;
    pthread_mutex_lock(&ev_lock);
    if (ev->level == JS_EV_WARNING && strstr(ev->message, "no space for the log"))
        ev_full++;
    if (ev->level == JS_EV_INFO && strstr(ev->message, "writes resume"))
        ev_resumed++;
    pthread_mutex_unlock(&ev_lock);
}

Test(diskfull, resp_client_sees_disk_full_then_resumes)
{
    tl_df_mount_tmpfs(DF_TMPFS_KIB);
    char dir[128], filler[128], sock[128];
    snprintf(dir, sizeof dir, "%s/db", tl_df_root);
    snprintf(filler, sizeof filler, "%s/filler", tl_df_root);
    tl_df_side_dir(sockdir, sizeof sockdir, "sock");
    snprintf(sock, sizeof sock, "%s/s.sock", sockdir);
    create_pregrown(dir);
    make_filler_leaving(filler, 512 << 10);
    js_params p = log_fill_params();
    js_instance *inst;
    OK(js_open(dir, &p, &inst));
    js_set_event_sink(inst, count_events, NULL);
    const char *eps[] = { sock };
    srv_server *srv = NULL;
    OK(srv_start(inst, eps, 1, NULL, NULL, &srv));
    tl_client *c = tl_cl_open(sock);

    char *reply = NULL;
    long next = 0;
    for (;; next++) {
        cr_assert_lt(next, 20000, "the disk never filled up");
        free(reply);
        reply = set_key(c, next);
        if (strcmp(reply, "+OK\r\n") != 0)
            break;
    }
    cr_log_info("after %ld SETs: %s", next, reply);
    cr_assert(strncmp(reply, FULL_ERR, strlen(FULL_ERR)) == 0, "reply to a SET on a full disk: %s", reply);
    free(reply);
    /* Reads go on. */
    char k[32];
    tl_df_key_of(k, sizeof k, 0);
    tl_cl_cmd(c, "GET", k, NULL);
    reply = tl_cl_reply(c, NULL);
    cr_assert_not_null(reply, "no reply from the server");
    cr_assert_eq(strncmp(reply, "$1500\r\n", 7), 0, "GET on a full disk: %.40s", reply);
    free(reply);
    for (int i = 0; i < 5; i++) {
        reply = set_key(c, next);
        cr_assert(strncmp(reply, FULL_ERR, strlen(FULL_ERR)) == 0, "SET while still full: %s", reply);
        free(reply);
    }
    /* Space freed: the same connection writes again, no restart. */
    cr_assert_eq(unlink(filler), 0);
    long resumed = next;
    for (; next < resumed + 50; next++) {
        reply = set_key(c, next);
        cr_assert_eq(strcmp(reply, "+OK\r\n"), 0, "SET after space was freed: %s", reply);
        free(reply);
    }
    tl_cl_close(c);
    srv_stop(srv);
    pthread_mutex_lock(&ev_lock);
    cr_assert(ev_full == 1 && ev_resumed == 1, "events: %d about the full log, %d about writes resuming", ev_full,
              ev_resumed);
    pthread_mutex_unlock(&ev_lock);
    OK(js_close(inst));
    verify_reopen(dir, resumed);
    /* The SET refused while full may or may not be there; those after are. */
    js_instance *again;
    js_session *s;
    OK(js_open(dir, &p, &again));
    OK(js_session_open(again, &s));
    for (long i = resumed + 1; i < next; i++)
        tl_df_expect_key(s, i);
    js_session_close(s);
    OK(js_close(again));
}

