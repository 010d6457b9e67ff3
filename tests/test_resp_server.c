/*
 * test_resp_server.c - the RESP2 server end to end over real sockets
 * against a real instance: the commands (strings, MSET/MGET/INCR, SCAN,
 * MULTI/EXEC, INFO, admin commands), atomicity seen from other connections.
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

/* ------------------------------------------------------------------ */
/* Server: commands                                                     */
/* ------------------------------------------------------------------ */

TestSuite(resp_server, .init = tl_srv_setup_lazy, .fini = tl_srv_teardown, .timeout = 120);

Test(resp_server, socket_mode_is_0660)
{
    struct stat st;
    cr_assert_eq(lstat(tl_srv_sock, &st), 0);
    cr_assert(S_ISSOCK(st.st_mode));
    cr_assert_eq(st.st_mode & 0777, 0660, "mode %o", st.st_mode & 0777);
}

Test(resp_server, ping_echo_select_quit)
{
    tl_client *c = tl_cl_open(tl_srv_sock);
    tl_cl_cmd(c, "PING", NULL);
    EXPECT(c, "+PONG\r\n");
    tl_cl_cmd(c, "ping", "hello world", NULL);
    EXPECT(c, "$11\r\nhello world\r\n");
    tl_cl_cmd(c, "PING", "a", "b", NULL);
    tl_cl_expect_err(c, "ERR wrong number of arguments for 'ping' command");
    tl_cl_cmd(c, "ECHO", "x", NULL);
    EXPECT(c, "$1\r\nx\r\n");
    tl_cl_cmd(c, "ECHO", NULL);
    tl_cl_expect_err(c, "ERR wrong number of arguments for 'echo' command");
    tl_cl_cmd(c, "SELECT", "0", NULL);
    EXPECT(c, "+OK\r\n");
    tl_cl_cmd(c, "SELECT", "1", NULL);
    EXPECT(c, "-ERR DB index is out of range\r\n");
    tl_cl_cmd(c, "SELECT", "x", NULL);
    EXPECT(c, "-ERR value is not an integer or out of range\r\n");
    tl_cl_cmd(c, "QUIT", NULL);
    EXPECT(c, "+OK\r\n");
    tl_cl_expect_eof(c);
    tl_cl_close(c);
}

Test(resp_server, set_get_del_exists_binary)
{
    tl_client *c = tl_cl_open(tl_srv_sock);
    const char *av[3] = { "SET", "bin\0key\r\n", "v\0\r\n\xff" };
    size_t al[3] = { 3, 10, 5 };
    tl_cl_cmdv(c, 3, av, al);
    EXPECT(c, "+OK\r\n");
    const char *gv[2] = { "GET", "bin\0key\r\n" };
    size_t gl[2] = { 3, 10 };
    tl_cl_cmdv(c, 2, gv, gl);
    EXPECT(c, "$5\r\nv\0\r\n\xff\r\n");

    tl_cl_cmd(c, "SET", "k1", "", NULL);
    EXPECT(c, "+OK\r\n");
    tl_cl_cmd(c, "GET", "k1", NULL);
    EXPECT(c, "$0\r\n\r\n");
    tl_cl_cmd(c, "GET", "missing", NULL);
    EXPECT(c, "$-1\r\n");
    tl_cl_cmd(c, "SET", "k1", "v", "EX", "10", NULL);
    EXPECT(c, "-ERR syntax error\r\n");
    tl_cl_cmd(c, "SET", "k1", "v", "NX", NULL);
    EXPECT(c, "-ERR syntax error\r\n");
    tl_cl_cmd(c, "GET", "k1", NULL);
    EXPECT(c, "$0\r\n\r\n");
    tl_cl_cmd(c, "SET", "k2", "two", NULL);
    EXPECT(c, "+OK\r\n");
    tl_cl_cmd(c, "EXISTS", "k1", "k2", "k2", "nope", NULL);
    EXPECT(c, ":3\r\n");
    tl_cl_cmd(c, "DEL", "k1", "nope", "k2", NULL);
    EXPECT(c, ":2\r\n");
    tl_cl_cmd(c, "DEL", "k1", NULL);
    EXPECT(c, ":0\r\n");
    tl_cl_cmd(c, "EXISTS", "k1", NULL);
    EXPECT(c, ":0\r\n");
    tl_cl_cmd(c, "DBSIZE", NULL);
    EXPECT(c, ":1\r\n");
    tl_cl_cmd(c, "SET", "", "v", NULL);
    tl_cl_expect_err(c, "ERR empty key");
    tl_cl_close(c);
}

Test(resp_server, mset_mget_incr)
{
    tl_client *c = tl_cl_open(tl_srv_sock);
    tl_cl_cmd(c, "MSET", "a", "1", "b", "2", "c", "3", NULL);
    EXPECT(c, "+OK\r\n");
    tl_cl_cmd(c, "MSET", "a", "1", "b", NULL);
    tl_cl_expect_err(c, "ERR wrong number of arguments for 'mset' command");
    tl_cl_cmd(c, "MGET", "a", "zz", "c", NULL);
    EXPECT(c, "*3\r\n$1\r\n1\r\n$-1\r\n$1\r\n3\r\n");
    tl_cl_cmd(c, "INCR", "a", NULL);
    EXPECT(c, ":2\r\n");
    tl_cl_cmd(c, "INCR", "fresh", NULL);
    EXPECT(c, ":1\r\n");
    tl_cl_cmd(c, "SET", "neg", "-5", NULL);
    EXPECT(c, "+OK\r\n");
    tl_cl_cmd(c, "INCR", "neg", NULL);
    EXPECT(c, ":-4\r\n");
    tl_cl_cmd(c, "SET", "s", "12abc", NULL);
    EXPECT(c, "+OK\r\n");
    tl_cl_cmd(c, "INCR", "s", NULL);
    EXPECT(c, "-ERR value is not an integer or out of range\r\n");
    tl_cl_cmd(c, "SET", "sp", " 1", NULL);
    EXPECT(c, "+OK\r\n");
    tl_cl_cmd(c, "INCR", "sp", NULL);
    EXPECT(c, "-ERR value is not an integer or out of range\r\n");
    tl_cl_cmd(c, "SET", "max", "9223372036854775807", NULL);
    EXPECT(c, "+OK\r\n");
    tl_cl_cmd(c, "INCR", "max", NULL);
    tl_cl_expect_err(c, "ERR increment or decrement would overflow");
    tl_cl_cmd(c, "GET", "max", NULL);
    EXPECT(c, "$19\r\n9223372036854775807\r\n");
    tl_cl_cmd(c, "SET", "min", "-9223372036854775808", NULL);
    EXPECT(c, "+OK\r\n");
    tl_cl_cmd(c, "INCR", "min", NULL);
    EXPECT(c, ":-9223372036854775807\r\n");
    tl_cl_cmd(c, "GET", "a", NULL);
    EXPECT(c, "$1\r\n2\r\n");
    tl_cl_cmd(c, "DBSIZE", NULL);
    EXPECT(c, ":9\r\n"); /* a b c fresh neg s sp max min */
    tl_cl_close(c);
}

Test(resp_server, unknown_command_and_admin_commands)
{
    tl_client *c = tl_cl_open(tl_srv_sock);
    tl_cl_cmd(c, "FLUSHALL", "now", "x", NULL);
    EXPECT(c, "-ERR unknown command 'FLUSHALL', with args beginning with: 'now' 'x' \r\n");
    tl_cl_cmd(c, "HSET", NULL);
    EXPECT(c, "-ERR unknown command 'HSET', with args beginning with: \r\n");
    tl_cl_cmd(c, "COMMAND", NULL);
    EXPECT(c, "*0\r\n");
    tl_cl_cmd(c, "COMMAND", "DOCS", NULL);
    EXPECT(c, "*0\r\n");
    tl_cl_cmd(c, "COMMAND", "COUNT", NULL);
    size_t len;
    char *r = tl_cl_reply(c, &len);
    cr_assert(r && r[0] == ':' && atoi(r + 1) >= 19, "COMMAND COUNT: %s", r);
    free(r);
    tl_cl_cmd(c, "CONFIG", "GET", "save", NULL);
    EXPECT(c, "*2\r\n$4\r\nsave\r\n$0\r\n\r\n");
    tl_cl_cmd(c, "CONFIG", "GET", "appendonly", NULL);
    EXPECT(c, "*2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n");
    tl_cl_cmd(c, "CONFIG", "GET", "no-such-thing", NULL);
    EXPECT(c, "*0\r\n");
    tl_cl_cmd(c, "CONFIG", "SET", "save", "", NULL);
    tl_cl_expect_err(c, "ERR unknown subcommand");
    tl_cl_close(c);
}

Test(resp_server, info_sections)
{
    tl_client *c = tl_cl_open(tl_srv_sock);
    tl_cl_cmd(c, "MSET", "a", "1", "b", "2", NULL);
    EXPECT(c, "+OK\r\n");
    tl_cl_cmd(c, "INFO", NULL);
    char *r = tl_cl_reply(c, NULL);
    cr_assert_not_null(r);
    cr_assert_eq(r[0], '$');
    cr_assert(strstr(r, "# Server\r\n"), "%s", r);
    cr_assert(strstr(r, "redis_version:"), "%s", r);
    cr_assert(strstr(r, "# Clients\r\nconnected_clients:1\r\n"), "%s", r);
    cr_assert(strstr(r, "# Keyspace\r\ndb0:keys=2,expires=0,avg_ttl=0\r\n"), "%s", r);
    cr_assert(strstr(r, "# Backup\r\nstate:running\r\njob:7\r\nphase:copy-database\r\nprogress_percent:42\r\n"),
              "%s", r);
    free(r);
    tl_cl_cmd(c, "INFO", "keyspace", NULL);
    r = tl_cl_reply(c, NULL);
    cr_assert(strstr(r, "db0:keys=2") && !strstr(r, "# Server"), "%s", r);
    free(r);
    tl_cl_cmd(c, "INFO", "backup", NULL);
    r = tl_cl_reply(c, NULL);
    cr_assert(strstr(r, "# Backup\r\n") && !strstr(r, "# Keyspace"), "%s", r);
    free(r);
    tl_cl_cmd(c, "INFO", "nosuchsection", NULL);
    EXPECT(c, "$0\r\n\r\n");
    tl_cl_close(c);
}

/* The number after "field:" in an INFO reply, -1 when absent. */
static long long info_field(const char *r, const char *field)
{
    char key[64];
    snprintf(key, sizeof key, "\r\n%s:", field);
    const char *p = strstr(r, key);
    return p ? atoll(p + strlen(key)) : -1;
}

/* INFO's # Memory section: the fields monitoring reads of Redis, counting
 * the buffer pool (which holds the pages just written) and the
 * connections' buffers, and the pool's own figures. */
Test(resp_server, info_memory_shows_the_buffer_pool)
{
    tl_client *c = tl_cl_open(tl_srv_sock);
    static char val[1001];   /* 1000 bytes and a NUL: tl_cl_cmd takes C strings */
    memset(val, 'v', sizeof val - 1);
    for (int i = 0; i < 300; i++) {
        char key[16];
        snprintf(key, sizeof key, "mem%d", i);
        tl_cl_cmd(c, "SET", key, val, NULL);
        EXPECT(c, "+OK\r\n");
    }
    tl_cl_cmd(c, "INFO", "memory", NULL);
    char *r = tl_cl_reply(c, NULL);
    cr_assert(strstr(r, "# Memory\r\nused_memory:") && !strstr(r, "# Server"), "%s", r);
    cr_assert(strstr(r, "\r\nmaxmemory:0\r\nmaxmemory_policy:noeviction\r\n"), "%s", r);
    cr_assert_eq(info_field(r, "buffer_pool_limit"), 256ll << 20, "%s", r);   /* the default cache_size */
    cr_assert_eq(info_field(r, "page_size"), 8192, "%s", r);
    long long pages = info_field(r, "buffer_pool_pages"), memory = info_field(r, "buffer_pool_memory");
    long long used = info_field(r, "used_memory"), clients = info_field(r, "mem_clients_normal");
    long long rss = info_field(r, "used_memory_rss");
    cr_assert_geq(pages, 300 * 1000, "300 KB written, %lld bytes of pages held: %s", pages, r);
    cr_assert_geq(memory, pages, "%s", r);
    cr_assert_gt(clients, 0, "%s", r);
    cr_assert_eq(used, memory + clients, "%s", r);
    cr_assert_geq(rss, pages, "%s", r);
    cr_assert(strstr(r, "\r\nused_memory_human:") && strstr(r, "\r\nused_memory_rss_human:"), "%s", r);
    free(r);
    tl_cl_cmd(c, "INFO", NULL);
    r = tl_cl_reply(c, NULL);
    cr_assert(strstr(r, "# Clients\r\n") && strstr(r, "# Memory\r\nused_memory:") && strstr(r, "# Stats\r\n"),
              "%s", r);
    cr_assert_lt(strstr(r, "# Memory"), strstr(r, "# Stats"), "sections out of Redis's order: %s", r);
    free(r);
    tl_cl_close(c);
}

/* Collect every key a SCAN iteration returns (cursor until 0). */
static int scan_all(tl_client *first, tl_client *second, const char *match, const char *count,
                    char seen[][16], int maxseen)
{
    char cursor[32] = "0";
    int n = 0, rounds = 0;
    tl_client *c = first;
    do {
        if (match)
            tl_cl_cmd(c, "SCAN", cursor, "MATCH", match, "COUNT", count, NULL);
        else
            tl_cl_cmd(c, "SCAN", cursor, "COUNT", count, NULL);
        char *r = tl_cl_reply(c, NULL);
        cr_assert(r && strncmp(r, "*2\r\n$", 5) == 0, "SCAN reply %s", r);
        char *p = strchr(r + 4, '\n') + 1;
        char *e = strchr(p, '\r');
        memcpy(cursor, p, (size_t)(e - p));
        cursor[e - p] = '\0';
        p = e + 2;
        cr_assert_eq(*p, '*');
        int k = atoi(p + 1);
        p = strchr(p, '\n') + 1;
        for (int i = 0; i < k; i++) {
            int l = atoi(p + 1);
            p = strchr(p, '\n') + 1;
            cr_assert_lt(n, maxseen);
            cr_assert_lt(l, 16);
            memcpy(seen[n], p, (size_t)l);
            seen[n][l] = '\0';
            n++;
            p += l + 2;
        }
        free(r);
        /* Alternate connections when asked: the cursor must work on both. */
        if (second)
            c = c == first ? second : first;
        cr_assert_lt(++rounds, 1000);
    } while (strcmp(cursor, "0") != 0);
    return n;
}

static int cmp_str(const void *a, const void *b) { return strcmp(a, b); }

Test(resp_server, scan_cursor_match_count)
{
    tl_client *c = tl_cl_open(tl_srv_sock), *d = tl_cl_open(tl_srv_sock);
    char key[24], seen[200][16];
    for (int i = 0; i < 50; i++) {
        snprintf(key, sizeof key, "%s:%02d", i % 2 ? "odd" : "even", i);
        tl_cl_cmd(c, "SET", key, "v", NULL);
        EXPECT(c, "+OK\r\n");
    }
    int n = scan_all(c, NULL, NULL, "7", seen, 200);
    cr_assert_eq(n, 50);
    qsort(seen, (size_t)n, sizeof seen[0], cmp_str);
    for (int i = 1; i < n; i++)
        cr_assert_neq(strcmp(seen[i - 1], seen[i]), 0, "duplicate %s", seen[i]);

    n = scan_all(c, NULL, "odd:*", "5", seen, 200);
    cr_assert_eq(n, 25);
    for (int i = 0; i < n; i++)
        cr_assert(strncmp(seen[i], "odd:", 4) == 0);
    n = scan_all(c, NULL, "even:[0-1]?", "1000", seen, 200);
    cr_assert_eq(n, 10, "even:00..18 -> 10 keys, got %d", n);

    /* A cursor handed between connections still completes the scan. */
    n = scan_all(c, d, NULL, "3", seen, 200);
    cr_assert_eq(n, 50);

    tl_cl_cmd(c, "SCAN", "abc", NULL);
    EXPECT(c, "-ERR invalid cursor\r\n");
    tl_cl_cmd(c, "SCAN", "0", "COUNT", "0", NULL);
    EXPECT(c, "-ERR syntax error\r\n");
    tl_cl_cmd(c, "SCAN", "0", "BOGUS", "1", NULL);
    EXPECT(c, "-ERR syntax error\r\n");
    tl_cl_close(c);
    tl_cl_close(d);
}

Test(resp_server, scan_resumes_past_concurrent_deletes)
{
    /* Keys deleted during a scan must not make it skip surviving keys. */
    tl_client *c = tl_cl_open(tl_srv_sock), *w = tl_cl_open(tl_srv_sock);
    char key[24], seen[200][16];
    for (int i = 0; i < 40; i++) {
        snprintf(key, sizeof key, "k%02d", i);
        tl_cl_cmd(c, "SET", key, "v", NULL);
        EXPECT(c, "+OK\r\n");
    }
    tl_cl_cmd(c, "SCAN", "0", "COUNT", "10", NULL);
    char *r = tl_cl_reply(c, NULL);
    cr_assert(strstr(r, "$2\r\n10\r\n"), "first SCAN: %s", r);
    free(r);
    /* Delete the first 10 keys (already returned). */
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof key, "k%02d", i);
        tl_cl_cmd(w, "DEL", key, NULL);
        EXPECT(w, ":1\r\n");
    }
    tl_cl_cmd(c, "SCAN", "10", "COUNT", "100", NULL);
    r = tl_cl_reply(c, NULL);
    cr_assert(strstr(r, "$3\r\nk10\r\n") && strstr(r, "$3\r\nk39\r\n") && strstr(r, "*30\r\n"),
              "resumed SCAN must return k10..k39: %s", r);
    free(r);
    (void)seen;
    tl_cl_close(c);
    tl_cl_close(w);
}

Test(resp_server, multi_exec_discard)
{
    tl_client *c = tl_cl_open(tl_srv_sock);
    tl_cl_cmd(c, "EXEC", NULL);
    EXPECT(c, "-ERR EXEC without MULTI\r\n");
    tl_cl_cmd(c, "DISCARD", NULL);
    EXPECT(c, "-ERR DISCARD without MULTI\r\n");
    tl_cl_cmd(c, "MULTI", NULL);
    EXPECT(c, "+OK\r\n");
    tl_cl_cmd(c, "MULTI", NULL);
    EXPECT(c, "-ERR MULTI calls can not be nested\r\n");
    tl_cl_cmd(c, "SET", "x", "1", NULL);
    EXPECT(c, "+QUEUED\r\n");
    tl_cl_cmd(c, "INCR", "x", NULL);
    EXPECT(c, "+QUEUED\r\n");
    tl_cl_cmd(c, "GET", "x", NULL);
    EXPECT(c, "+QUEUED\r\n");
    tl_cl_cmd(c, "MSET", "y", "a", "z", "b", NULL);
    EXPECT(c, "+QUEUED\r\n");
    tl_cl_cmd(c, "INCR", "y", NULL);
    EXPECT(c, "+QUEUED\r\n");
    tl_cl_cmd(c, "DBSIZE", NULL);
    EXPECT(c, "+QUEUED\r\n");
    tl_cl_cmd(c, "EXEC", NULL);
    EXPECT(c, "*6\r\n+OK\r\n:2\r\n$1\r\n2\r\n+OK\r\n-ERR value is not an integer or out of range\r\n:3\r\n");

    tl_cl_cmd(c, "MULTI", NULL);
    EXPECT(c, "+OK\r\n");
    tl_cl_cmd(c, "SET", "gone", "1", NULL);
    EXPECT(c, "+QUEUED\r\n");
    tl_cl_cmd(c, "DISCARD", NULL);
    EXPECT(c, "+OK\r\n");
    tl_cl_cmd(c, "EXISTS", "gone", NULL);
    EXPECT(c, ":0\r\n");

    /* A refused command while queueing aborts the whole EXEC. */
    tl_cl_cmd(c, "MULTI", NULL);
    EXPECT(c, "+OK\r\n");
    tl_cl_cmd(c, "SET", "gone", "1", NULL);
    EXPECT(c, "+QUEUED\r\n");
    tl_cl_cmd(c, "NOSUCH", NULL);
    tl_cl_expect_err(c, "ERR unknown command 'NOSUCH'");
    tl_cl_cmd(c, "GET", NULL);
    tl_cl_expect_err(c, "ERR wrong number of arguments for 'get' command");
    tl_cl_cmd(c, "EXEC", NULL);
    EXPECT(c, "-EXECABORT Transaction discarded because of previous errors.\r\n");
    tl_cl_cmd(c, "EXISTS", "gone", NULL);
    EXPECT(c, ":0\r\n");

    /* A client that vanishes inside MULTI leaves nothing behind. */
    tl_client *v = tl_cl_open(tl_srv_sock);
    tl_cl_cmd(v, "MULTI", NULL);
    EXPECT(v, "+OK\r\n");
    tl_cl_cmd(v, "SET", "vanished", "1", NULL);
    EXPECT(v, "+QUEUED\r\n");
    tl_cl_close(v);
    tl_cl_cmd(c, "EXISTS", "vanished", NULL);
    EXPECT(c, ":0\r\n");
    tl_cl_close(c);
}

typedef struct atom_arg {
    const char *path;
    int iters;
    int bad;
} atom_arg;

/* Parse one bulk element at *p: returns its length, -1 for nil; *data
 * points at its bytes; *p moves past it. */
static long bulk_at(const char **p, const char **data)
{
    long n = strtol(*p + 1, NULL, 10);
    const char *q = strstr(*p, "\r\n") + 2;
    *data = q;
    *p = n < 0 ? q : q + n + 2;
    return n;
}

static void *atomic_reader(void *arg)
{
    atom_arg *a = arg;
    tl_client *c = tl_cl_open(a->path);
    for (int i = 0; i < a->iters; i++) {
        tl_cl_cmd(c, "MGET", "ta", "tb", NULL);
        char *r = tl_cl_reply(c, NULL);
        if (!r || strncmp(r, "*2\r\n", 4) != 0) {
            a->bad++;
            free(r);
            break;
        }
        /* Both nil, or both the same value. */
        const char *p = r + 4, *d1, *d2;
        long l1 = bulk_at(&p, &d1), l2 = bulk_at(&p, &d2);
        if (l1 != l2 || (l1 > 0 && memcmp(d1, d2, (size_t)l1) != 0))
            a->bad++;
        free(r);
    }
    tl_cl_close(c);
    return NULL;
}

Test(resp_server, multi_exec_is_atomic_for_other_connections)
{
    atom_arg a = { tl_srv_sock, 3000, 0 };
    pthread_t th;
    tl_client *w = tl_cl_open(tl_srv_sock);
    pthread_create(&th, NULL, atomic_reader, &a);
    char num[32];
    for (int i = 0; i < 3000; i++) {
        snprintf(num, sizeof num, "%d", i);
        /* Pipelined: MULTI, two SETs, EXEC in one write. */
        tl_cl_cmd(w, "MULTI", NULL);
        tl_cl_cmd(w, "SET", "ta", num, NULL);
        tl_cl_cmd(w, "SET", "tb", num, NULL);
        tl_cl_cmd(w, "EXEC", NULL);
        EXPECT(w, "+OK\r\n");
        EXPECT(w, "+QUEUED\r\n");
        EXPECT(w, "+QUEUED\r\n");
        EXPECT(w, "*2\r\n+OK\r\n+OK\r\n");
    }
    pthread_join(th, NULL);
    cr_assert_eq(a.bad, 0, "%d torn MGET reads of a MULTI/EXEC pair", a.bad);
    tl_cl_close(w);
}
