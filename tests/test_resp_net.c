/*
 * test_resp_net.c - the RESP2 server's framing and endpoints: pipelining
 * and inline commands, limits, misbehaving clients, stale and live
 * sockets, TCP, many writers at once (INCR, durable SET), and the real redis-cli
 * and redis-benchmark as subprocesses.
 *
 * Each test creates an instance in a mkdtemp directory (commit=lazy unless
 * durability is what is tested), starts srv_start on a Unix socket there,
 * and talks raw RESP, comparing each reply byte for byte (the fixture and
 * the client are tests/lib/respsrv.h and tests/lib/respcl.h).
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../fs/redis/commands.h"
#include "../fs/redis/resp.h"
#include "../fs/redis/server.h"
#include "jetsnap.h"
#include "proc.h"
#include "respcl.h"
#include "respsrv.h"
#include "testlib.h"

TestSuite(resp_server, .init = tl_srv_setup_lazy, .fini = tl_srv_teardown, .timeout = 120);

/* ------------------------------------------------------------------ */
/* Server: framing, pipelining, limits, misbehaving clients             */
/* ------------------------------------------------------------------ */

Test(resp_server, pipelining_and_inline)
{
    tl_client *c = tl_cl_open(tl_srv_sock);
    tl_dbuf d = { 0 };
    for (int i = 0; i < 200; i++) {
        char one[128];
        int n = snprintf(one, sizeof one, "*3\r\n$3\r\nSET\r\n$4\r\np%03d\r\n$%d\r\n%d\r\n", i,
                         i < 10 ? 1 : i < 100 ? 2 : 3, i);
        for (int k = 0; k < n; k++)
            tl_dbuf_put(&d, one[k]);
    }
    const char *inl = "PING\r\nset inl \"two words\"\r\nGET inl\nEXISTS p000 p199\r\n";
    for (const char *q = inl; *q; q++)
        tl_dbuf_put(&d, *q);
    tl_cl_send(c, d.p, d.len);
    free(d.p);
    for (int i = 0; i < 200; i++)
        EXPECT(c, "+OK\r\n");
    EXPECT(c, "+PONG\r\n");
    EXPECT(c, "+OK\r\n");
    EXPECT(c, "$9\r\ntwo words\r\n");
    EXPECT(c, ":2\r\n");
    tl_cl_cmd(c, "DBSIZE", NULL);
    EXPECT(c, ":201\r\n");
    tl_cl_close(c);
}

Test(resp_server, key_and_value_limits)
{
    tl_client *c = tl_cl_open(tl_srv_sock);
    char key[300];
    memset(key, 'k', sizeof key);
    const char *av[3] = { "SET", key, "v" };
    size_t al[3] = { 3, 255, 1 };
    tl_cl_cmdv(c, 3, av, al);
    EXPECT(c, "+OK\r\n");
    al[1] = 256;
    tl_cl_cmdv(c, 3, av, al);
    tl_cl_expect_err(c, "ERR key too long");
    tl_cl_cmd(c, "DBSIZE", NULL);
    EXPECT(c, ":1\r\n");

    size_t big = JS_VALUE_MAX + 1;
    char *val = malloc(big);
    memset(val, 'v', big);
    const char *bv[3] = { "SET", "big", val };
    size_t bl[3] = { 3, 3, JS_VALUE_MAX };
    tl_cl_cmdv(c, 3, bv, bl);
    EXPECT(c, "+OK\r\n");
    tl_cl_cmd(c, "GET", "big", NULL);
    size_t len;
    char *r = tl_cl_reply(c, &len);
    cr_assert_not_null(r);
    cr_assert_eq(len, JS_VALUE_MAX + strlen("$1048576\r\n") + 2);
    free(r);

    bv[1] = "toobig";
    bl[1] = 6;
    bl[2] = big;
    tl_cl_cmdv(c, 3, bv, bl);
    tl_cl_expect_err(c, "ERR value too large");
    tl_cl_cmd(c, "EXISTS", "toobig", NULL);
    EXPECT(c, ":0\r\n");
    /* Refused inside MSET: the whole MSET stores nothing. */
    const char *mv[5] = { "MSET", "m1", "small", "m2", val };
    size_t ml[5] = { 4, 2, 5, 2, big };
    tl_cl_cmdv(c, 5, mv, ml);
    tl_cl_expect_err(c, "ERR value too large");
    tl_cl_cmd(c, "EXISTS", "m1", "m2", NULL);
    EXPECT(c, ":0\r\n");
    /* The connection survived all of it. */
    tl_cl_cmd(c, "PING", NULL);
    EXPECT(c, "+PONG\r\n");
    free(val);

    /* Beyond the protocol caps: error, then the connection is closed. */
    char hdr[128];
    int n = snprintf(hdr, sizeof hdr, "*3\r\n$3\r\nSET\r\n$1\r\nz\r\n$%u\r\n", 5u * 1024 * 1024);
    tl_cl_send(c, hdr, (size_t)n);
    tl_cl_expect_err(c, "ERR Protocol error: invalid bulk length");
    tl_cl_expect_eof(c);
    tl_cl_close(c);

    c = tl_cl_open(tl_srv_sock);
    tl_cl_cmd(c, "EXISTS", "z", NULL);
    EXPECT(c, ":0\r\n");
    tl_cl_close(c);
}

Test(resp_server, malformed_request_closes_only_that_connection)
{
    tl_client *good = tl_cl_open(tl_srv_sock), *bad = tl_cl_open(tl_srv_sock);
    tl_cl_cmd(good, "SET", "g", "1", NULL);
    EXPECT(good, "+OK\r\n");
    /* A valid command, then garbage in the same write: the first is
     * answered, then the error, then EOF. */
    const char junk[] = "*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n#oops\r\n";
    tl_cl_send(bad, junk, sizeof junk - 1);
    EXPECT(bad, "+PONG\r\n");
    tl_cl_expect_err(bad, "ERR Protocol error: expected '$', got '#'");
    tl_cl_expect_eof(bad);
    tl_cl_close(bad);
    tl_cl_cmd(good, "GET", "g", NULL);
    EXPECT(good, "$1\r\n1\r\n");
    tl_cl_close(good);
}

Test(resp_server, client_vanishing_mid_request)
{
    tl_client *v = tl_cl_open(tl_srv_sock);
    const char part[] = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10\r\nabc";
    tl_cl_send(v, part, sizeof part - 1);
    tl_cl_close(v);
    /* Half a big value, then gone. */
    v = tl_cl_open(tl_srv_sock);
    char hdr[64];
    int n = snprintf(hdr, sizeof hdr, "*3\r\n$3\r\nSET\r\n$2\r\nk2\r\n$%u\r\n", JS_VALUE_MAX);
    tl_cl_send(v, hdr, (size_t)n);
    char *half = calloc(1, JS_VALUE_MAX / 2);
    tl_cl_send(v, half, JS_VALUE_MAX / 2);
    free(half);
    tl_cl_close(v);

    tl_client *c = tl_cl_open(tl_srv_sock);
    tl_cl_cmd(c, "EXISTS", "k", "k2", NULL);
    EXPECT(c, ":0\r\n");
    tl_cl_cmd(c, "INFO", "clients", NULL);
    /* Wait for the vanished connections' threads to notice. */
    char *r = tl_cl_reply(c, NULL);
    for (int i = 0; i < 100 && !strstr(r, "connected_clients:1\r\n"); i++) {
        free(r);
        usleep(20000);
        tl_cl_cmd(c, "INFO", "clients", NULL);
        r = tl_cl_reply(c, NULL);
    }
    cr_assert(strstr(r, "connected_clients:1\r\n"), "%s", r);
    free(r);
    tl_cl_close(c);
}

Test(resp_server, a_stalled_client_does_not_stall_others)
{
    /* One client sends half a request and then pipelines replies it never
     * reads; others must still be served promptly. */
    tl_client *slow = tl_cl_open(tl_srv_sock);
    const char part[] = "*2\r\n$3\r\nGET\r\n$3\r\nab";
    tl_cl_send(slow, part, sizeof part - 1);
    tl_client *hog = tl_cl_open(tl_srv_sock);
    tl_cl_cmd(hog, "SET", "hogval", "x", NULL);
    EXPECT(hog, "+OK\r\n");
    /* Fill the hog's socket with replies it does not read. */
    int fl = fcntl(hog->fd, F_GETFL);
    fcntl(hog->fd, F_SETFL, fl | O_NONBLOCK);
    char req[] = "*2\r\n$3\r\nGET\r\n$6\r\nhogval\r\n";
    for (int i = 0; i < 200000; i++)
        if (send(hog->fd, req, sizeof req - 1, MSG_NOSIGNAL) < 0)
            break;
    tl_client *c = tl_cl_open(tl_srv_sock);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < 50; i++) {
        tl_cl_cmd(c, "PING", NULL);
        EXPECT(c, "+PONG\r\n");
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    cr_assert_lt(t1.tv_sec - t0.tv_sec, 3);
    tl_cl_close(c);
    tl_cl_close(slow);
    tl_cl_close(hog);
}

Test(resp_server, stop_with_clients_connected)
{
    tl_client *idle = tl_cl_open(tl_srv_sock), *partial = tl_cl_open(tl_srv_sock);
    tl_cl_send(partial, "*2\r\n$3\r\nGET", 11);
    tl_cl_cmd(idle, "PING", NULL);
    EXPECT(idle, "+PONG\r\n");
    srv_stop(tl_srv);
    tl_srv = NULL;
    tl_cl_expect_eof(idle);
    tl_cl_expect_eof(partial);
    struct stat st;
    cr_assert_neq(lstat(tl_srv_sock, &st), 0, "socket file removed at stop");
    tl_cl_close(idle);
    tl_cl_close(partial);
}

/* ------------------------------------------------------------------ */
/* Endpoints                                                            */
/* ------------------------------------------------------------------ */

TestSuite(resp_endpoints, .init = NULL, .fini = tl_srv_teardown, .timeout = 60);

Test(resp_endpoints, stale_socket_replaced_live_one_refused_file_refused)
{
    tl_srv_start_instance(JS_COMMIT_LAZY);
    /* A stale socket: bound, then its server went away. */
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    strcpy(sa.sun_path, tl_srv_sock);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    close(fd);
    tl_srv_start_server();
    tl_client *c = tl_cl_open(tl_srv_sock);
    tl_cl_cmd(c, "PING", NULL);
    EXPECT(c, "+PONG\r\n");
    tl_cl_close(c);

    /* A live socket is not stolen. */
    srv_server *second = NULL;
    const char *eps[] = { tl_srv_sock };
    JET_ERR rc = srv_start(tl_srv_inst, eps, 1, NULL, NULL, &second);
    cr_assert_neq(rc, 0);
    cr_assert_null(second);
    cr_assert(strstr(js_errdetail(), tl_srv_sock), "detail names the endpoint: %s", js_errdetail());

    /* A regular file is not replaced. */
    char fpath[PATH_MAX];
    snprintf(fpath, sizeof fpath, "%s/plain", tl_srv_root);
    int f = open(fpath, O_CREAT | O_WRONLY, 0600);
    close(f);
    eps[0] = fpath;
    rc = srv_start(tl_srv_inst, eps, 1, NULL, NULL, &second);
    cr_assert_eq(rc, JET_errInvalidParameter);
    struct stat st;
    cr_assert_eq(stat(fpath, &st), 0);
    cr_assert(S_ISREG(st.st_mode));
}

Test(resp_endpoints, default_endpoint_and_tcp)
{
    tl_srv_start_instance(JS_COMMIT_LAZY);
    /* Find a free port, then listen on it and on the default socket. */
    int probe = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t sl = sizeof sin;
    cr_assert_eq(bind(probe, (struct sockaddr *)&sin, sizeof sin), 0);
    getsockname(probe, (struct sockaddr *)&sin, &sl);
    int port = ntohs(sin.sin_port);
    close(probe);
    char ep[64], defsock[PATH_MAX];
    snprintf(ep, sizeof ep, "127.0.0.1:%d", port);
    snprintf(defsock, sizeof defsock, "%s/jetsnap.sock", tl_srv_dbdir);

    const char *eps[] = { ep };
    JET_ERR rc = srv_start(tl_srv_inst, eps, 1, NULL, NULL, &tl_srv);
    cr_assert_eq(rc, 0, "tcp: %d %s", rc, js_errdetail());
    srv_server *def = NULL;
    rc = srv_start(tl_srv_inst, NULL, 0, NULL, NULL, &def);
    cr_assert_eq(rc, 0, "default: %d %s", rc, js_errdetail());

    tl_client *c = tl_cl_open(defsock);
    tl_cl_cmd(c, "SET", "via", "unix", NULL);
    EXPECT(c, "+OK\r\n");
    tl_cl_close(c);

    c = calloc(1, sizeof *c);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_eq(connect(c->fd, (struct sockaddr *)&sin, sizeof sin), 0);
    tl_cl_cmd(c, "GET", "via", NULL);
    EXPECT(c, "$4\r\nunix\r\n");
    tl_cl_close(c);

    srv_stop(def);
    struct stat st;
    cr_assert_neq(lstat(defsock, &st), 0);

    eps[0] = "nosuchhost.invalid:80";
    rc = srv_start(tl_srv_inst, eps, 1, NULL, NULL, &def);
    cr_assert_eq(rc, JET_errInvalidParameter);
}

/* ------------------------------------------------------------------ */
/* Many connections at once                                             */
/* ------------------------------------------------------------------ */

typedef struct incr_arg {
    const char *path;
    int n;
    int errors;
} incr_arg;

static void *incr_worker(void *arg)
{
    incr_arg *a = arg;
    tl_client *c = tl_cl_open(a->path);
    for (int i = 0; i < a->n; i++) {
        tl_cl_cmd(c, "INCR", "counter", NULL);
        char *r = tl_cl_reply(c, NULL);
        if (!r || r[0] != ':')
            a->errors++;
        free(r);
    }
    tl_cl_close(c);
    return NULL;
}

Test(resp_server, concurrent_incr_loses_nothing)
{
    enum { T = 6, N = 300 };
    pthread_t th[T];
    incr_arg args[T];
    for (int i = 0; i < T; i++) {
        args[i] = (incr_arg){ tl_srv_sock, N, 0 };
        pthread_create(&th[i], NULL, incr_worker, &args[i]);
    }
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(args[i].errors, 0);
    }
    tl_client *c = tl_cl_open(tl_srv_sock);
    tl_cl_cmd(c, "GET", "counter", NULL);
    EXPECT(c, "$4\r\n1800\r\n");
    tl_cl_close(c);
}

/* ------------------------------------------------------------------ */
/* Durable commits through the front                                    */
/* ------------------------------------------------------------------ */

static void *set_worker(void *arg)
{
    incr_arg *a = arg;
    tl_client *c = tl_cl_open(a->path);
    char key[32];
    for (int i = 0; i < a->n; i++) {
        snprintf(key, sizeof key, "w%p:%d", (void *)a, i);
        tl_cl_cmd(c, "SET", key, "durable", NULL);
        char *r = tl_cl_reply(c, NULL);
        if (!r || strcmp(r, "+OK\r\n") != 0)
            a->errors++;
        free(r);
    }
    tl_cl_close(c);
    return NULL;
}

Test(resp_durable, concurrent_writers_all_acknowledged_and_present, .init = tl_srv_setup_durable,
     .fini = tl_srv_teardown, .timeout = 120)
{
    enum { T = 8, N = 40 };
    pthread_t th[T];
    incr_arg args[T];
    for (int i = 0; i < T; i++) {
        args[i] = (incr_arg){ tl_srv_sock, N, 0 };
        pthread_create(&th[i], NULL, set_worker, &args[i]);
    }
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(args[i].errors, 0);
    }
    srv_stop(tl_srv);
    tl_srv = NULL;
    /* Reopen: every acknowledged write is there. */
    cr_assert_eq(js_close(tl_srv_inst), 0);
    tl_srv_inst = NULL;
    js_params prm;
    js_params_default(&prm);
    cr_assert_eq(js_open(tl_srv_dbdir, &prm, &tl_srv_inst), 0, "reopen: %s", js_errdetail());
    js_session *s;
    uint64_t n = 0;
    cr_assert_eq(js_session_open(tl_srv_inst, &s), 0);
    cr_assert_eq(js_count(s, &n), 0);
    js_session_close(s);
    cr_assert_eq(n, (uint64_t)T * N);
}

/* ------------------------------------------------------------------ */
/* Real Redis tools                                                     */
/* ------------------------------------------------------------------ */

Test(resp_tools, redis_cli_works_unchanged, .init = tl_srv_setup_lazy, .fini = tl_srv_teardown, .timeout = 60)
{
    char out[4096];
    char *ping[] = { "redis-cli", "-s", tl_srv_sock, "ping", NULL };
    cr_assert_eq(tl_run_io(ping, NULL, 0, out, sizeof out), 0);
    cr_assert_str_eq(out, "PONG\n");

    char *set[] = { "redis-cli", "-s", tl_srv_sock, "set", "greeting", "hello world", NULL };
    cr_assert_eq(tl_run_io(set, NULL, 0, out, sizeof out), 0);
    cr_assert_str_eq(out, "OK\n");
    char *get[] = { "redis-cli", "-s", tl_srv_sock, "get", "greeting", NULL };
    cr_assert_eq(tl_run_io(get, NULL, 0, out, sizeof out), 0);
    cr_assert_str_eq(out, "hello world\n");

    /* Binary value through -x (last argument from stdin), read back raw. */
    const char bin[] = "a\0b\r\n\xff\x01z";
    char *setx[] = { "redis-cli", "-s", tl_srv_sock, "-x", "set", "binkey", NULL };
    cr_assert_eq(tl_run_io(setx, bin, sizeof bin - 1, out, sizeof out), 0);
    cr_assert_str_eq(out, "OK\n");
    tl_client *c = tl_cl_open(tl_srv_sock);
    tl_cl_cmd(c, "GET", "binkey", NULL);
    EXPECT(c, "$8\r\na\0b\r\n\xff\x01" "z\r\n");
    tl_cl_close(c);
    /* redis-cli escapes what it prints with --no-raw. */
    char *getb[] = { "redis-cli", "--no-raw", "-s", tl_srv_sock, "get", "binkey", NULL };
    cr_assert_eq(tl_run_io(getb, NULL, 0, out, sizeof out), 0);
    cr_assert_str_eq(out, "\"a\\x00b\\r\\n\\xff\\x01z\"\n");

    char *scan[] = { "redis-cli", "-s", tl_srv_sock, "--scan", "--pattern", "g*", NULL };
    cr_assert_eq(tl_run_io(scan, NULL, 0, out, sizeof out), 0);
    cr_assert_str_eq(out, "greeting\n");

    char *info[] = { "redis-cli", "-s", tl_srv_sock, "info", "keyspace", NULL };
    cr_assert_eq(tl_run_io(info, NULL, 0, out, sizeof out), 0);
    cr_assert(strstr(out, "db0:keys=2,expires=0,avg_ttl=0"), "%s", out);
}

Test(resp_tools, redis_benchmark_runs, .init = tl_srv_setup_lazy, .fini = tl_srv_teardown, .timeout = 300)
{
    static char out[65536];
    char *bench[] = { "redis-benchmark", "-s", tl_srv_sock, "-t", "set,get,incr,ping",
                      "-n", "2000", "-c", "10", "-q", NULL };
    int rc = tl_run_io(bench, NULL, 0, out, sizeof out);
    cr_assert_eq(rc, 0, "redis-benchmark exit %d: %s", rc, out);
    const char *want[] = { "PING_INLINE:", "PING_MBULK:", "SET:", "GET:", "INCR:" };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_assert(strstr(out, want[i]) && strstr(strstr(out, want[i]), "requests per second"),
                  "missing %s in: %s", want[i], out);
    /* The benchmark's INCRs on one key must all have counted. */
    tl_client *c = tl_cl_open(tl_srv_sock);
    tl_cl_cmd(c, "GET", "counter:__rand_int__", NULL);
    EXPECT(c, "$4\r\n2000\r\n");
    tl_cl_close(c);
}
