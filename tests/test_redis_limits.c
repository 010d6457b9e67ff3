/*
 * test_redis_limits.c - the Redis front against hostile or careless
 * clients, by behaviour: huge or negative lengths, half commands then a
 * disconnect, thousands of idle connections, 32 half-sent 60 MiB requests
 * against client_buffer_total, a client that does not read its replies,
 * maxclients, timeout; and the options that set those limits.  Memory is
 * read from /proc/PID/status (the server runs in this process).
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../fs/daemon/opts.h"
#include "../fs/redis/server.h"
#include "jetsnap.h"
#include "respcl.h"
#include "respsrv.h"
#include "testlib.h"

TestSuite(redis_limits, .fini = tl_srv_teardown, .timeout = 300);

/* ------------------------------------------------------------------ */
/* Hostile clients and limits                                           */
/* ------------------------------------------------------------------ */

Test(redis_limits, hostile_lengths_close_only_their_client)
{
    tl_srv_start_limits(JS_COMMIT_LAZY, NULL);
    tl_client *good = tl_cl_open(tl_srv_sock);
    static const char *const bad[] = {
        "*2147483648\r\n",
        "*99999999999999999999\r\n",
        "*2\r\n$3\r\nGET\r\n$-5\r\n",
        "*2\r\n$3\r\nGET\r\n$99999999999\r\n",
        "*1\r\n$-1\r\n",
        "*-7\r\n*1\r\n$4\r\nPING\r\n*1\r\n$x\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tl_client *c = tl_cl_open(tl_srv_sock);
        tl_cl_send(c, bad[i], strlen(bad[i]));
        size_t len;
        char *r;
        /* Whatever came before the bad part is answered, then one
         * protocol error, then the connection closes. */
        while ((r = tl_cl_reply(c, &len)) && r[0] != '-')
            free(r);
        cr_assert_not_null(r, "no error for %s", bad[i]);
        cr_assert(strstr(r, "Protocol error") != NULL, "%s -> %s", bad[i], r);
        free(r);
        tl_cl_expect_eof(c);
        tl_cl_close(c);
        tl_cl_cmd(good, "PING", NULL);
        EXPECT(good, "+PONG\r\n");
    }
    tl_cl_close(good);
}

Test(redis_limits, half_commands_then_disconnect)
{
    tl_srv_start_limits(JS_COMMIT_DURABLE, NULL);
    static const char half[] = "*3\r\n$3\r\nSET\r\n$4\r\nhalf\r\n$10\r\nabc";
    for (int i = 0; i < 200; i++) {
        int fd = tl_resp_connect(tl_srv_sock);
        cr_assert_geq(fd, 0);
        cr_assert_eq(send(fd, half, sizeof half - 1 - (size_t)(i % 20), MSG_NOSIGNAL),
                     (ssize_t)(sizeof half - 1 - (size_t)(i % 20)));
        close(fd);
    }
    tl_srv_expect_served();
    char *v = tl_srv_get("half");
    cr_assert_null(v, "a half command was applied: %s", v);
}

Test(redis_limits, thousands_of_idle_connections_stay_bounded)
{
    tl_srv_start_limits(JS_COMMIT_DURABLE, NULL);
    long before = tl_vm_rss_kib(getpid());
    enum { N = 2000 };
    static int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = tl_resp_connect(tl_srv_sock);
        cr_assert_geq(fds[i], 0, "connection %d refused", i);
        if (i % 3 == 0) /* some leave a half request behind */
            cr_assert_eq(send(fds[i], "*2\r\n$3\r\nGET", 11, MSG_NOSIGNAL), 11);
    }
    tl_srv_expect_served();
    tl_client *c = tl_cl_open(tl_srv_sock);
    tl_cl_cmd(c, "INFO", "clients", NULL);
    size_t len;
    char *r = tl_cl_reply(c, &len);
    cr_assert_not_null(strstr(r, "connected_clients:2001"), "%s", r);
    free(r);
    tl_cl_close(c);
    long after = tl_vm_rss_kib(getpid());
    cr_log_info("VmRSS %ld KiB -> %ld KiB with %d idle connections", before, after, N);
    cr_assert_lt(after - before, 64 * 1024, "2000 idle connections cost %ld KiB", after - before);
    for (int i = 0; i < N; i++)
        close(fds[i]);
    tl_srv_expect_served();
}

/* 32 clients each hold a half-sent 60 MiB request: client_buffer_total
 * (256 MiB by default) closes the largest; memory stays bounded and other
 * clients are served. */
Test(redis_limits, client_buffer_total_caps_half_sent_requests)
{
    tl_srv_start_limits(JS_COMMIT_LAZY, NULL);
    enum { N = 32, ARGS = 15, ARG = 4000000 };
    static char chunk[ARG];
    memset(chunk, 'x', sizeof chunk);
    int fds[N];
    size_t sent[N], total = 0, want = 0;
    int closed[N];
    char hdr[64];
    int hl = snprintf(hdr, sizeof hdr, "$%d\r\n", ARG);
    /* MSET with 15 arguments of 4 MB after its name: about 60 MiB, of
     * which everything but the last 100 bytes is sent. */
    static const char head[] = "*16\r\n$4\r\nMSET\r\n";
    size_t reqlen = sizeof head - 1 + (size_t)ARGS * ((size_t)hl + ARG + 2);
    want = reqlen - 100;
    for (int i = 0; i < N; i++) {
        fds[i] = tl_resp_connect(tl_srv_sock);
        cr_assert_geq(fds[i], 0);
        fcntl(fds[i], F_SETFL, O_NONBLOCK);
        sent[i] = 0;
        closed[i] = 0;
    }
    long peak = 0;
    int open_left = N;
    while (open_left > 0) {
        int progress = 0;
        for (int i = 0; i < N; i++) {
            if (closed[i] || sent[i] >= want)
                continue;
            /* Where in the request are we: build the next piece. */
            size_t pos = sent[i];
            const char *p;
            size_t n;
            if (pos < sizeof head - 1) {
                p = head + pos;
                n = sizeof head - 1 - pos;
            } else {
                size_t in = (pos - (sizeof head - 1)) % ((size_t)hl + ARG + 2);
                if (in < (size_t)hl) {
                    p = hdr + in;
                    n = (size_t)hl - in;
                } else if (in < (size_t)hl + ARG) {
                    p = chunk + (in - (size_t)hl);
                    n = (size_t)hl + ARG - in;
                } else {
                    p = "\r\n" + (in - (size_t)hl - ARG);
                    n = (size_t)hl + ARG + 2 - in;
                }
            }
            if (n > want - pos)
                n = want - pos;
            ssize_t w = send(fds[i], p, n, MSG_NOSIGNAL);
            if (w > 0) {
                sent[i] += (size_t)w;
                total += (size_t)w;
                progress = 1;
                if (sent[i] >= want)
                    open_left--;
            } else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
                closed[i] = 1;
                open_left--;
                progress = 1;
            }
        }
        long rss = tl_vm_rss_kib(getpid());
        if (rss > peak)
            peak = rss;
        if (!progress) {
            struct pollfd pf[N];
            int np = 0;
            for (int i = 0; i < N; i++)
                if (!closed[i] && sent[i] < want)
                    pf[np++] = (struct pollfd){ .fd = fds[i], .events = POLLOUT };
            if (np)
                poll(pf, (nfds_t)np, 200);
        }
    }
    /* The server has read what it could; memory stayed bounded, and it
     * still answers others. */
    tl_srv_expect_served();
    long rss = tl_vm_rss_kib(getpid());
    if (rss > peak)
        peak = rss;
    int nclosed = 0;
    for (int i = 0; i < N; i++) {
        char b[256];
        /* A closed client got the error (or at least end of file). */
        struct pollfd pf = { .fd = fds[i], .events = POLLIN };
        if (poll(&pf, 1, closed[i] ? 2000 : 0) > 0) {
            ssize_t r = recv(fds[i], b, sizeof b - 1, 0);
            if (r >= 0) {
                nclosed++;
                if (r > 0) {
                    b[r] = '\0';
                    cr_assert(strstr(b, "client_buffer_total") != NULL, "closed with: %s", b);
                }
            }
        }
        close(fds[i]);
    }
    cr_log_info("sent %zu MiB, %d clients cut off, peak VmRSS %ld MiB", total >> 20, nclosed, peak >> 10);
    cr_assert_geq(nclosed, N - 8, "only %d of %d clients were cut off", nclosed, N);
    cr_assert_lt(peak, 512 * 1024, "VmRSS reached %ld MiB", peak >> 10);
    tl_srv_expect_served();
}

Test(redis_limits, maxclients_refuses_beyond)
{
    srv_limits lim = { .maxclients = 3 };
    tl_srv_start_limits(JS_COMMIT_LAZY, &lim);
    tl_client *c[3];
    for (int i = 0; i < 3; i++) {
        c[i] = tl_cl_open(tl_srv_sock);
        tl_cl_cmd(c[i], "PING", NULL);
        EXPECT(c[i], "+PONG\r\n");
    }
    tl_client *x = tl_cl_open(tl_srv_sock);
    tl_cl_expect_err(x, "ERR max number of clients reached");
    tl_cl_expect_eof(x);
    tl_cl_close(x);
    tl_cl_close(c[0]);
    /* Once the server has seen the close, a new client gets in. */
    int ok = 0;
    for (int tries = 0; tries < 200 && !ok; tries++) {
        x = tl_cl_open(tl_srv_sock);
        tl_cl_cmd(x, "PING", NULL);
        size_t len;
        char *r = tl_cl_reply(x, &len);
        ok = r && strcmp(r, "+PONG\r\n") == 0;
        free(r);
        tl_cl_close(x);
        if (!ok)
            tl_sleep_ms(10);
    }
    cr_assert(ok, "a freed slot was never reused");
    tl_cl_close(c[1]);
    tl_cl_close(c[2]);
}

Test(redis_limits, timeout_closes_idle_clients_only)
{
    srv_limits lim = { .timeout = 1 };
    tl_srv_start_limits(JS_COMMIT_LAZY, &lim);
    tl_client *idle = tl_cl_open(tl_srv_sock);
    tl_cl_cmd(idle, "PING", NULL);
    EXPECT(idle, "+PONG\r\n");
    tl_client *busy = tl_cl_open(tl_srv_sock);
    /* The busy one keeps talking; the idle one is closed. */
    for (int i = 0; i < 30; i++) {
        tl_cl_cmd(busy, "PING", NULL);
        EXPECT(busy, "+PONG\r\n");
        tl_sleep_ms(100);
    }
    tl_cl_expect_eof(idle);
    tl_cl_cmd(busy, "PING", NULL);
    EXPECT(busy, "+PONG\r\n");
    tl_cl_close(idle);
    tl_cl_close(busy);
}

/* A client that pipelines GETs of a big value and does not read: the
 * server stops reading it once its replies pile up (memory stays
 * bounded), serves everyone else, and once the client reads, every reply
 * comes, in order. */
Test(redis_limits, unread_replies_hold_back_only_their_client)
{
    tl_srv_start_limits(JS_COMMIT_LAZY, NULL);
    enum { VLEN = 100000, NGET = 2000 };
    char *val = malloc(VLEN + 1);
    memset(val, 'b', VLEN);
    val[VLEN] = '\0';
    tl_client *c = tl_cl_open(tl_srv_sock);
    tl_cl_cmd(c, "SET", "big", val, NULL);
    EXPECT(c, "+OK\r\n");
    long before = tl_vm_rss_kib(getpid());
    tl_dbuf b = { 0 };
    for (int i = 0; i < NGET; i++)
        tl_dbuf_puts(&b, i % 2 ? "*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n" : "*1\r\n$4\r\nPING\r\n");
    /* Send without reading (the socket buffers fill; a thread would block,
     * so send what goes and keep the rest). */
    fcntl(c->fd, F_SETFL, O_NONBLOCK);
    size_t off = 0;
    for (int spins = 0; off < b.len && spins < 200; spins++) {
        ssize_t w = send(c->fd, b.p + off, b.len - off, MSG_NOSIGNAL);
        if (w > 0)
            off += (size_t)w;
        else
            tl_sleep_ms(10);
    }
    tl_srv_expect_served();
    long during = tl_vm_rss_kib(getpid());
    cr_log_info("VmRSS %ld KiB -> %ld KiB with %zu of %zu request bytes sent, none read",
                before, during, off, b.len);
    cr_assert_lt(during - before, 64 * 1024, "unread replies cost %ld KiB", during - before);
    fcntl(c->fd, F_SETFL, 0);
    /* Now read: every reply, in order, while sending the rest. */
    int n = 0;
    while (n < NGET) {
        if (off < b.len) {
            ssize_t w = send(c->fd, b.p + off, b.len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (w > 0)
                off += (size_t)w;
        }
        size_t len;
        char *r = tl_cl_reply(c, &len);
        cr_assert_not_null(r, "reply %d missing", n);
        if (n % 2)
            cr_assert(len == VLEN + 11 && strncmp(r, "$100000\r\nbbbb", 13) == 0, "reply %d: %.20s", n, r);
        else
            cr_assert_str_eq(r, "+PONG\r\n", "reply %d", n);
        free(r);
        n++;
    }
    free(b.p);
    free(val);
    tl_cl_close(c);
}

/* ------------------------------------------------------------------ */
/* The options                                                          */
/* ------------------------------------------------------------------ */

static int parse_o(const char *list, struct fs_opts *o, char *err, size_t cap)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", list);
    char *argv[] = { "jetsnapfs", "/d", "/m", "-o", buf, NULL };
    return opts_parse(5, argv, o, err, cap);
}

Test(redis_opts, limits_parse_and_refuse_nonsense)
{
    struct fs_opts o;
    char err[256];
    cr_assert_eq(parse_o("maxclients=5,client_buffer_total=1G,timeout=30", &o, err, sizeof err), 0, "%s", err);
    cr_assert_eq(o.maxclients, 5);
    cr_assert_eq(o.client_buffer_total, 1ull << 30);
    cr_assert_eq(o.timeout, 30);
    opts_free(&o);
    cr_assert_eq(parse_o("listen=/x", &o, err, sizeof err), 0, "%s", err);
    cr_assert_eq(o.maxclients, 0, "unset means the server's default");
    cr_assert_eq(o.timeout, 0);
    opts_free(&o);
    static const char *const bad[] = { "maxclients=0", "maxclients=x", "client_buffer_total=10K",
                                       "client_buffer_total=", "timeout=-1", "timeout=1s" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(parse_o(bad[i], &o, err, sizeof err), -1, "%s accepted", bad[i]);
        opts_free(&o);
    }
}
