/*
 * test_redis_loop.c - the Redis front's event loop and its group commit,
 * by behaviour: pipelines from many clients all acknowledged and present,
 * a failing command alone in a batch, MULTI/EXEC atomic under concurrent
 * readers, no acknowledged write lost to a SIGKILL, WATCH, a failed log
 * flush.  Hostile clients and the limits: test_redis_limits.c.
 *
 * The server runs in-process on a Unix socket (tests/lib/respsrv.h), with
 * limits given through srv_start_limits; the SIGKILL test runs it in a
 * forked child and reopens the instance afterwards.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../fs/redis/server.h"
#include "jetsnap.h"
#include "respcl.h"
#include "respsrv.h"
#include "testlib.h"

/* ------------------------------------------------------------------ */
/* Helpers                                                              */
/* ------------------------------------------------------------------ */

/* ------------------------------------------------------------------ */
/* Pipelines and batches                                                */
/* ------------------------------------------------------------------ */

typedef struct pipe_job {
    int id, depth, rounds;
    int ok;                       /* +OK replies received */
} pipe_job;

static void *pipeline_client(void *arg)
{
    pipe_job *j = arg;
    tl_client *c = tl_cl_open(tl_srv_sock);
    for (int r = 0; r < j->rounds; r++) {
        tl_dbuf b = { 0 };
        for (int i = 0; i < j->depth; i++) {
            char k[64], v[64];
            snprintf(k, sizeof k, "p:%d:%d:%d", j->id, r, i);
            snprintf(v, sizeof v, "v%d.%d.%d", j->id, r, i);
            tl_dbuf_set(&b, k, v);
        }
        tl_cl_send(c, b.p, b.len);
        free(b.p);
        for (int i = 0; i < j->depth; i++) {
            size_t len;
            char *rep = tl_cl_reply(c, &len);
            if (rep && strcmp(rep, "+OK\r\n") == 0)
                j->ok++;
            free(rep);
        }
    }
    tl_cl_close(c);
    return NULL;
}

static void run_pipelines(int nclients, int depth, int rounds)
{
    pthread_t th[64];
    pipe_job jobs[64];
    cr_assert_leq(nclients, 64);
    for (int i = 0; i < nclients; i++) {
        jobs[i] = (pipe_job){ .id = i, .depth = depth, .rounds = rounds };
        cr_assert_eq(pthread_create(&th[i], NULL, pipeline_client, &jobs[i]), 0);
    }
    for (int i = 0; i < nclients; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(jobs[i].ok, depth * rounds, "client %d: %d of %d acknowledged", i, jobs[i].ok,
                     depth * rounds);
    }
    /* Every acknowledged key is there with its value. */
    tl_client *c = tl_cl_open(tl_srv_sock);
    for (int i = 0; i < nclients; i++)
        for (int r = 0; r < rounds; r++)
            for (int k = 0; k < depth; k += depth > 16 ? 7 : 1) {
                char key[64], want[128];
                snprintf(key, sizeof key, "p:%d:%d:%d", i, r, k);
                int n = snprintf(want, sizeof want, "$%zu\r\nv%d.%d.%d\r\n",
                                 strlen(key) - 1, i, r, k);
                tl_cl_cmd(c, "GET", key, NULL);
                tl_cl_expect_raw(c, want, (size_t)n, key);
            }
    /* Group commit: the log was flushed far fewer times than commands
     * were acknowledged (INFO stats counts both). */
    tl_cl_cmd(c, "INFO", "stats", NULL);
    size_t len;
    char *info = tl_cl_reply(c, &len);
    unsigned long long cmds = 0, flushes = 0;
    char *p = strstr(info, "total_commands_processed:"), *q = strstr(info, "group_commit_flushes:");
    cr_assert(p && q, "INFO stats: %s", info);
    sscanf(p, "total_commands_processed:%llu", &cmds);
    sscanf(q, "group_commit_flushes:%llu", &flushes);
    cr_log_info("%llu commands, %llu flushes", cmds, flushes);
    cr_assert_geq(cmds, (unsigned long long)(nclients * depth * rounds));
    cr_assert_lt(flushes, (unsigned long long)(nclients * depth * rounds) / 4,
                 "%llu flushes for %d pipelined SETs", flushes, nclients * depth * rounds);
    free(info);
    tl_cl_close(c);
}

TestSuite(redis_loop, .fini = tl_srv_teardown, .timeout = 300);

Test(redis_loop, pipelines_of_16_from_32_clients_durable)
{
    tl_srv_start_limits(JS_COMMIT_DURABLE, NULL);
    run_pipelines(32, 16, 20);
}

Test(redis_loop, pipelines_of_1000_from_16_clients_durable)
{
    tl_srv_start_limits(JS_COMMIT_DURABLE, NULL);
    run_pipelines(16, 1000, 2);
}

Test(redis_loop, pipelines_lazy_reply_without_waiting)
{
    srv_limits lim = { .commit_lazy = 1 };
    tl_srv_start_limits(JS_COMMIT_LAZY, &lim);
    run_pipelines(16, 100, 5);
}

/* A failing INCR in a batch with other clients' SETs fails alone: it
 * changes nothing, its neighbours in its own pipeline and every other
 * client's SETs succeed. */
Test(redis_loop, failing_incr_fails_alone_in_a_batch)
{
    tl_srv_start_limits(JS_COMMIT_DURABLE, NULL);
    static tl_noise noise;
    tl_noise_start(&noise, 2000, 16);
    tl_client *c = tl_cl_open(tl_srv_sock);
    for (int r = 0; r < 50; r++) {
        char before[32], after[32];
        snprintf(before, sizeof before, "before%d", r);
        snprintf(after, sizeof after, "after%d", r);
        tl_dbuf b = { 0 };
        tl_dbuf_set(&b, "word", "abc");
        tl_dbuf_set(&b, before, "1");
        tl_dbuf_puts(&b, "*2\r\n$4\r\nINCR\r\n$4\r\nword\r\n");
        tl_dbuf_set(&b, after, "2");
        tl_dbuf_puts(&b, "*2\r\n$4\r\nINCR\r\n$7\r\ncounter\r\n");
        tl_cl_send(c, b.p, b.len);
        free(b.p);
        EXPECT(c, "+OK\r\n");
        EXPECT(c, "+OK\r\n");
        tl_cl_expect_err(c, "ERR value is not an integer");
        EXPECT(c, "+OK\r\n");
        char want[32];
        int n = snprintf(want, sizeof want, ":%d\r\n", r + 1);
        tl_cl_expect_raw(c, want, (size_t)n, "INCR counter");
    }
    tl_cl_close(c);
    tl_noise_stop(&noise);
    char *w = tl_srv_get("word");
    cr_assert_str_eq(w, "abc");
    free(w);
    char *a = tl_srv_get("after49");
    cr_assert_str_eq(a, "2");
    free(a);
}

static void *multi_writer(void *arg)
{
    volatile int *stop = arg;
    tl_client *c = tl_cl_open(tl_srv_sock);
    for (int i = 1; i <= 300; i++) {
        char v[32];
        snprintf(v, sizeof v, "%d", i);
        tl_dbuf b = { 0 };
        tl_dbuf_puts(&b, "*1\r\n$5\r\nMULTI\r\n");
        tl_dbuf_set(&b, "ma", v);
        tl_dbuf_set(&b, "mb", v);
        tl_dbuf_puts(&b, "*1\r\n$4\r\nEXEC\r\n");
        tl_cl_send(c, b.p, b.len);
        free(b.p);
        for (int k = 0; k < 4; k++) {
            size_t len;
            free(tl_cl_reply(c, &len));
        }
    }
    tl_cl_close(c);
    *stop = 1;
    return NULL;
}

/* MULTI/EXEC stays one transaction: a reader never sees half of one. */
Test(redis_loop, multi_exec_atomic_under_readers)
{
    tl_srv_start_limits(JS_COMMIT_DURABLE, NULL);
    volatile int stop = 0;
    pthread_t w;
    cr_assert_eq(pthread_create(&w, NULL, multi_writer, (void *)&stop), 0);
    tl_client *c = tl_cl_open(tl_srv_sock);
    int seen = 0;
    while (!stop) {
        tl_cl_cmd(c, "MGET", "ma", "mb", NULL);
        size_t len;
        char *r = tl_cl_reply(c, &len);
        cr_assert_not_null(r);
        /* "*2\r\n$N\r\nA\r\n$N\r\nB\r\n", or nulls: both halves alike. */
        char *first = strstr(r, "\r\n") + 2;
        char *second = first;
        if (strncmp(first, "$-1\r\n", 5) == 0) {
            second = first + 5;
        } else {
            second = strstr(strstr(first, "\r\n") + 2, "\r\n") + 2;
            seen++;
        }
        size_t l1 = (size_t)(second - first);
        cr_assert(strlen(second) == l1 + 0 && strncmp(first, second, l1) == 0, "MGET saw half a MULTI: %s", r);
        free(r);
    }
    pthread_join(w, NULL);
    tl_cl_close(c);
    char *a = tl_srv_get("ma"), *b = tl_srv_get("mb");
    cr_assert_str_eq(a, "300");
    cr_assert_str_eq(b, "300");
    free(a);
    free(b);
    cr_log_info("readers saw %d complete pairs", seen);
}

/* ------------------------------------------------------------------ */
/* SIGKILL while 50 clients pipeline                                    */
/* ------------------------------------------------------------------ */

#define KILL_CLIENTS 50
#define KILL_DEPTH   16

/* A client of the doomed server: rounds of 16 SETs, every fourth round a
 * MULTI block of two SETs instead, until the server dies.  Plain sockets:
 * no assertion may fire in this thread. */
static void *kill_client(void *arg)
{
    tl_kill_job *j = arg;
    char buf[4096], line[256];
    size_t blen = 0;
    int fd = tl_resp_connect(j->sock);
    if (fd < 0)
        return NULL;
    for (int r = 0;; r++) {
        tl_dbuf b = { 0 };
        int multi = (r % 4 == 3);
        if (multi) {
            char k[64];
            tl_dbuf_puts(&b, "*1\r\n$5\r\nMULTI\r\n");
            snprintf(k, sizeof k, "m:%d:%d:a", j->id, r);
            tl_dbuf_set(&b, k, "x");
            snprintf(k, sizeof k, "m:%d:%d:b", j->id, r);
            tl_dbuf_set(&b, k, "x");
            tl_dbuf_puts(&b, "*1\r\n$4\r\nEXEC\r\n");
        } else {
            for (int i = 0; i < KILL_DEPTH; i++) {
                char k[64];
                snprintf(k, sizeof k, "k:%d:%d:%d", j->id, r, i);
                tl_dbuf_set(&b, k, "v");
            }
        }
        ssize_t s = send(fd, b.p, b.len, MSG_NOSIGNAL);
        free(b.p);
        if (s != (ssize_t)b.len)
            break;
        j->rounds_sent = r + 1;
        if (multi) {
            const char *want[] = { "+OK", "+QUEUED", "+QUEUED", "*2", "+OK", "+OK" };
            int good = 1;
            for (int i = 0; i < 6; i++) {
                if (tl_resp_read_line(fd, buf, &blen, line, sizeof line) != 0)
                    goto out;
                good &= strcmp(line, want[i]) == 0;
            }
            if (!good)
                goto out;
        } else {
            for (int i = 0; i < KILL_DEPTH; i++) {
                if (tl_resp_read_line(fd, buf, &blen, line, sizeof line) != 0)
                    goto out;
                if (strcmp(line, "+OK") != 0)
                    goto out;
            }
        }
        j->acked = r + 1;   /* every reply of rounds 0..r was +OK */
    }
out:
    close(fd);
    return NULL;
}

Test(redis_loop, sigkill_loses_no_acknowledged_write, .timeout = 600)
{
    static tl_kill_job jobs[KILL_CLIENTS];
    char root[64];
    /* Let them write until a good number of rounds were acknowledged. */
    js_instance *inst = tl_srv_kill_run("jsloopkill", kill_client, jobs, KILL_CLIENTS, 2000, root);
    js_session *s;
    cr_assert_eq(js_session_open(inst, &s), 0);
    long acked = 0, multis = 0;
    for (int i = 0; i < KILL_CLIENTS; i++) {
        for (int r = 0; r < jobs[i].rounds_sent; r++) {
            if (r % 4 == 3) {
                char ka[64], kb[64];
                void *v;
                size_t vl;
                snprintf(ka, sizeof ka, "m:%d:%d:a", i, r);
                snprintf(kb, sizeof kb, "m:%d:%d:b", i, r);
                JET_ERR ea = js_get(s, ka, strlen(ka), &v, &vl);
                if (!ea)
                    free(v);
                JET_ERR eb = js_get(s, kb, strlen(kb), &v, &vl);
                if (!eb)
                    free(v);
                cr_assert_eq(ea, eb, "MULTI %s half applied (%d, %d)", ka, ea, eb);
                if (r < jobs[i].acked) {
                    cr_assert_eq(ea, 0, "acknowledged MULTI %s lost", ka);
                    multis++;
                }
                continue;
            }
            if (r >= jobs[i].acked)
                continue;
            for (int k = 0; k < KILL_DEPTH; k++) {
                char key[64];
                void *v;
                size_t vl;
                snprintf(key, sizeof key, "k:%d:%d:%d", i, r, k);
                JET_ERR e = js_get(s, key, strlen(key), &v, &vl);
                cr_assert_eq(e, 0, "acknowledged %s lost after SIGKILL (%d)", key, e);
                free(v);
                acked++;
            }
        }
    }
    cr_log_info("%ld acknowledged SETs and %ld MULTI blocks all present", acked, multis);
    cr_assert_gt(acked, 0);
    js_session_close(s);
    js_close(inst);
    tl_rmrf(root);
}

/* ------------------------------------------------------------------ */
/* WATCH / UNWATCH                                                      */
/* ------------------------------------------------------------------ */

Test(redis_loop, watch_aborts_exec_when_a_watched_key_changed)
{
    tl_srv_start_limits(JS_COMMIT_DURABLE, NULL);
    tl_client *a = tl_cl_open(tl_srv_sock), *b = tl_cl_open(tl_srv_sock);
    /* Unchanged: EXEC runs. */
    tl_cl_cmd(a, "WATCH", "k", "other", NULL);
    EXPECT(a, "+OK\r\n");
    tl_cl_cmd(a, "MULTI", NULL);
    EXPECT(a, "+OK\r\n");
    tl_cl_cmd(a, "SET", "k", "1", NULL);
    EXPECT(a, "+QUEUED\r\n");
    tl_cl_cmd(a, "EXEC", NULL);
    EXPECT(a, "*1\r\n+OK\r\n");
    /* Changed by another client: EXEC answers null and runs nothing. */
    tl_cl_cmd(a, "WATCH", "k", NULL);
    EXPECT(a, "+OK\r\n");
    tl_cl_cmd(b, "INCR", "k", NULL);
    EXPECT(b, ":2\r\n");
    tl_cl_cmd(a, "MULTI", NULL);
    EXPECT(a, "+OK\r\n");
    tl_cl_cmd(a, "SET", "k", "mine", NULL);
    EXPECT(a, "+QUEUED\r\n");
    tl_cl_cmd(a, "WATCH", "x", NULL);
    tl_cl_expect_err(a, "ERR WATCH inside MULTI is not allowed");
    tl_cl_cmd(a, "EXEC", NULL);
    EXPECT(a, "*-1\r\n");
    tl_cl_cmd(a, "GET", "k", NULL);
    EXPECT(a, "$1\r\n2\r\n");
    /* EXEC forgot the watch; UNWATCH forgets one too. */
    tl_cl_cmd(a, "WATCH", "k", NULL);
    EXPECT(a, "+OK\r\n");
    tl_cl_cmd(a, "UNWATCH", NULL);
    EXPECT(a, "+OK\r\n");
    tl_cl_cmd(b, "DEL", "k", NULL);
    EXPECT(b, ":1\r\n");
    tl_cl_cmd(a, "MULTI", NULL);
    EXPECT(a, "+OK\r\n");
    tl_cl_cmd(a, "SET", "k", "3", NULL);
    EXPECT(a, "+QUEUED\r\n");
    tl_cl_cmd(a, "EXEC", NULL);
    EXPECT(a, "*1\r\n+OK\r\n");
    /* A watching client that leaves is forgotten (no stale pointer). */
    tl_cl_cmd(b, "WATCH", "k", NULL);
    EXPECT(b, "+OK\r\n");
    tl_cl_close(b);
    tl_sleep_ms(50);
    tl_cl_cmd(a, "SET", "k", "4", NULL);
    EXPECT(a, "+OK\r\n");
    tl_cl_close(a);
}

/* ------------------------------------------------------------------ */
/* A failed log flush                                                   */
/* ------------------------------------------------------------------ */

/* Pipeline 16 SETs whose log flush is made to fail with errno err; the
 * replies into replies[].  Returns the client, still open. */
static tl_client *pipeline_with_failed_flush(int err, char *replies[16])
{
    tl_srv_start_limits(JS_COMMIT_DURABLE, NULL);
    tl_srv_expect_served();
    tl_client *c = tl_cl_open(tl_srv_sock);
    tl_dbuf b = { 0 };
    for (int i = 0; i < 16; i++) {
        char k[32];
        snprintf(k, sizeof k, "ff:%d", i);
        tl_dbuf_set(&b, k, "v");
    }
    js_fault_arm(JS_FAULT_WRITE, 1, err, -1, "edb.log");
    tl_cl_send(c, b.p, b.len);
    free(b.p);
    for (int i = 0; i < 16; i++) {
        size_t len;
        replies[i] = tl_cl_reply(c, &len);
        cr_assert_not_null(replies[i], "reply %d missing", i);
    }
    js_fault_reset();
    /* A read after the failed flush is answered (it does not wait for a
     * flush that nothing would ever make). */
    tl_cl_cmd(c, "GET", "ff:0", NULL);
    size_t len;
    char *r = tl_cl_reply(c, &len);
    cr_assert_not_null(r, "a GET after the failed flush got no reply");
    free(r);
    return c;
}

/* No space for the log write: the replies that depended on it are that
 * error, none is +OK before its flush succeeded, and writes go on once the
 * log can be written again. */
Test(redis_loop, failed_flush_turns_its_replies_into_the_error)
{
    char *r[16];
    tl_cl_close(pipeline_with_failed_flush(ENOSPC, r));
    int failed = 0;
    for (int i = 0; i < 16; i++) {
        if (strncmp(r[i], "-ERR JET_errLogDiskFull", 23) == 0)
            failed++;
        else
            cr_assert_str_eq(r[i], "+OK\r\n", "reply %d: %s", i, r[i]);
        free(r[i]);
    }
    cr_assert_gt(failed, 0, "no reply told of the failed log write");
    tl_srv_expect_served();
}

Test(redis_loop, failed_flush_io_error_fails_every_reply)
{
    char *r[16];
    tl_client *c = pipeline_with_failed_flush(EIO, r);
    for (int i = 0; i < 16; i++) {
        cr_assert(r[i][0] == '-', "reply %d acknowledged a lost write: %s", i, r[i]);
        free(r[i]);
    }
    /* The instance is fatal now: writes are refused. */
    tl_cl_cmd(c, "SET", "after", "x", NULL);
    tl_cl_expect_err(c, "ERR");
    tl_cl_close(c);
}
