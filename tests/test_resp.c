/*
 * test_resp.c - the RESP2 front: the parser in-process, then the server end
 * to end over real sockets against a real instance, then redis-cli and
 * redis-benchmark as subprocesses.
 *
 * Server tests create an instance in a mkdtemp directory (commit=lazy unless
 * durability is what is tested), start srv_start on a Unix socket there, and
 * talk raw RESP, comparing each reply byte for byte.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
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

/* ------------------------------------------------------------------ */
/* Parser                                                               */
/* ------------------------------------------------------------------ */

/* Feed data in pieces cut at the given offsets (sorted, within len) and
 * render every command as "argc|len:bytes|len:bytes...;" into out.
 * Returns the final parser return code (RESP_NEED or RESP_PROTO). */
static int feed_cuts(const char *data, size_t len, const size_t *cuts, size_t ncuts,
                     char *out, size_t outcap, const char **err)
{
    resp_parser p;
    size_t outlen = 0, start = 0;
    int rc = RESP_NEED;

    resp_parser_init(&p);
    out[0] = '\0';
    for (size_t k = 0; k <= ncuts && rc != RESP_PROTO; k++) {
        size_t end = k < ncuts ? cuts[k] : len;
        while (start < end) {
            size_t used = 0;
            rc = resp_parse(&p, data + start, end - start, &used);
            if (rc == RESP_PROTO)
                break;
            start += used;
            if (rc == RESP_CMD) {
                const resp_arg *av = resp_argv(&p);
                outlen += (size_t)snprintf(out + outlen, outcap - outlen, "%zu", resp_argc(&p));
                for (size_t i = 0; i < resp_argc(&p); i++) {
                    cr_assert_eq(av[i].p[av[i].len], '\0', "argument not NUL-terminated");
                    outlen += (size_t)snprintf(out + outlen, outcap - outlen, "|%zu:", av[i].len);
                    cr_assert_lt(outlen + av[i].len, outcap);
                    memcpy(out + outlen, av[i].p, av[i].len);
                    outlen += av[i].len;
                }
                outlen += (size_t)snprintf(out + outlen, outcap - outlen, ";");
            }
        }
    }
    if (err)
        *err = rc == RESP_PROTO ? strdup(resp_errmsg(&p)) : NULL;
    resp_parser_free(&p);
    /* Ending right after a command is the same as needing more bytes. */
    return rc == RESP_CMD ? RESP_NEED : rc;
}

static const char SAMPLE[] =
    "*3\r\n$3\r\nSET\r\n$3\r\nk\0y\r\n$6\r\na\r\nb\nc\r\n"   /* binary bulk */
    "PING\r\n"                                             /* inline */
    "\r\n"                                                 /* blank line: nothing */
    "*0\r\n"                                               /* empty multibulk */
    "*1\r\n$0\r\n\r\n"                                     /* one empty argument */
    "  set  \"a b\\x41\\n\"  'it\\'s' \n"                  /* inline quoting, LF only */
    "*2\n$4\nECHO\r\n$2\nhi\r\n";                          /* LF-only headers */

static const char SAMPLE_EXPECT[] =
    "3|3:SET|3:k\0y|6:a\r\nb\nc;"
    "1|4:PING;"
    "1|0:;"
    "3|3:set|5:a bA\n|4:it's;"
    "2|4:ECHO|2:hi;";

Test(resp_parser, whole_and_split_at_every_byte)
{
    size_t len = sizeof SAMPLE - 1, elen = sizeof SAMPLE_EXPECT - 1;
    char out[4096];
    const char *err = NULL;
    int rc = feed_cuts(SAMPLE, len, NULL, 0, out, sizeof out, &err);
    cr_assert_eq(rc, RESP_NEED, "%s after %s", err, out);
    cr_assert(memcmp(out, SAMPLE_EXPECT, elen) == 0 && out[elen] == '\0', "whole: got %s", out);

    /* One cut anywhere, two cuts anywhere. */
    for (size_t a = 0; a <= len; a++) {
        size_t cuts[1] = { a };
        rc = feed_cuts(SAMPLE, len, cuts, 1, out, sizeof out, NULL);
        cr_assert_eq(rc, RESP_NEED);
        cr_assert(memcmp(out, SAMPLE_EXPECT, elen) == 0 && out[elen] == '\0', "cut at %zu: %s", a, out);
        for (size_t b = a; b <= len; b += 3) {
            size_t cuts2[2] = { a, b };
            feed_cuts(SAMPLE, len, cuts2, 2, out, sizeof out, NULL);
            cr_assert(memcmp(out, SAMPLE_EXPECT, elen) == 0 && out[elen] == '\0', "cuts %zu,%zu", a, b);
        }
    }
    /* Byte by byte. */
    size_t *cuts = malloc(len * sizeof *cuts);
    for (size_t i = 0; i < len; i++)
        cuts[i] = i + 1;
    feed_cuts(SAMPLE, len, cuts, len, out, sizeof out, NULL);
    cr_assert(memcmp(out, SAMPLE_EXPECT, elen) == 0, "byte by byte: %s", out);
    free(cuts);
}

Test(resp_parser, pipelined_commands_return_one_at_a_time)
{
    const char *in = "*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n*1\r\n$4\r\nPI";
    resp_parser p;
    size_t off = 0, used, n = strlen(in);
    int cmds = 0;

    resp_parser_init(&p);
    for (;;) {
        int rc = resp_parse(&p, in + off, n - off, &used);
        off += used;
        if (rc != RESP_CMD) {
            cr_assert_eq(rc, RESP_NEED);
            break;
        }
        cmds++;
        if (cmds == 2) {
            cr_assert_eq(resp_argc(&p), 2);
            cr_assert_str_eq(resp_argv(&p)[1].p, "k");
        }
    }
    cr_assert_eq(cmds, 3);
    cr_assert_eq(off, n, "the partial fourth command is consumed and kept");
    int rc = resp_parse(&p, "NG\r\n", 4, &used);
    cr_assert_eq(rc, RESP_CMD);
    cr_assert_str_eq(resp_argv(&p)[0].p, "PING");
    resp_parser_free(&p);
}

static const char *proto_error_of(const char *data, size_t len)
{
    char out[256];
    const char *err = NULL;
    int rc = feed_cuts(data, len, NULL, 0, out, sizeof out, &err);
    cr_assert_eq(rc, RESP_PROTO, "expected a protocol error for %.*s", (int)len, data);
    return err;
}

#define ASSERT_PROTO(lit, substr)                                                   \
    do {                                                                            \
        const char *e_ = proto_error_of(lit, sizeof(lit) - 1);                      \
        cr_assert(strstr(e_, substr), "%s: got '%s'", #lit, e_);                    \
        free((void *)e_);                                                           \
    } while (0)

Test(resp_parser, malformed_requests_are_protocol_errors)
{
    ASSERT_PROTO("*2\r\n$3\r\nGET\r\n:12\r\n", "expected '$', got ':'");
    ASSERT_PROTO("*x\r\n", "invalid multibulk length");
    ASSERT_PROTO("*1048577\r\n", "invalid multibulk length");
    ASSERT_PROTO("*1\r\n$-1\r\n", "invalid bulk length");
    ASSERT_PROTO("*1\r\n$abc\r\n", "invalid bulk length");
    ASSERT_PROTO("*1\r\n$4194305\r\n", "invalid bulk length");
    ASSERT_PROTO("*1\r\n$3\r\nGETXX", "bulk not followed by CRLF");
    ASSERT_PROTO("*1\r\n$00000000000000000000000000000000000000000000000000000000000000000000001\r\n",
                 "too big bulk count string");
    ASSERT_PROTO("*111111111111111111111111111111111111111111111111111111111111111111111111\r\n",
                 "too big mbulk count string");
    ASSERT_PROTO("set k \"abc\r\n", "unbalanced quotes");
    ASSERT_PROTO("set k 'abc\r\n", "unbalanced quotes");
    ASSERT_PROTO("set k \"a\"b\r\n", "unbalanced quotes");

    /* A dead parser stays dead. */
    resp_parser p;
    size_t used;
    resp_parser_init(&p);
    cr_assert_eq(resp_parse(&p, "*x\r\n", 4, &used), RESP_PROTO);
    cr_assert_eq(resp_parse(&p, "PING\r\n", 6, &used), RESP_PROTO);
    resp_parser_free(&p);
}

Test(resp_parser, inline_line_is_capped)
{
    size_t n = RESP_MAX_INLINE + 10;
    char *big = malloc(n);
    memset(big, 'a', n);
    const char *e = proto_error_of(big, n);
    cr_assert(strstr(e, "too big inline request"), "%s", e);
    free((void *)e);
    /* Just under the cap is fine. */
    big[RESP_MAX_INLINE - 1] = '\n';
    char *out = malloc(2 * RESP_MAX_INLINE);
    cr_assert_eq(feed_cuts(big, RESP_MAX_INLINE, NULL, 0, out, 2 * RESP_MAX_INLINE, &e), RESP_NEED, "%s", e);
    cr_assert(strncmp(out, "1|65535:aaa", 11) == 0, "%.20s", out);
    free(out);
    free(big);
}

Test(resp_parser, request_total_is_capped, .timeout = 60)
{
    /* 17 arguments of 4 MiB pass every per-argument cap but exceed the
     * 64 MiB per-request cap: refused before the 17th is allocated. */
    resp_parser p;
    size_t used;
    char hdr[64];
    char *chunk = calloc(1, RESP_MAX_BULK);
    int rc = RESP_NEED;

    resp_parser_init(&p);
    rc = resp_parse(&p, "*17\r\n", 5, &used);
    for (int i = 0; i < 17 && rc == RESP_NEED; i++) {
        int n = snprintf(hdr, sizeof hdr, "$%u\r\n", RESP_MAX_BULK);
        rc = resp_parse(&p, hdr, (size_t)n, &used);
        if (rc != RESP_NEED)
            break;
        rc = resp_parse(&p, chunk, RESP_MAX_BULK, &used);
        if (rc == RESP_NEED)
            rc = resp_parse(&p, "\r\n", 2, &used);
    }
    cr_assert_eq(rc, RESP_PROTO);
    cr_assert(strstr(resp_errmsg(&p), "request too large"), "%s", resp_errmsg(&p));
    resp_parser_free(&p);
    free(chunk);
}

Test(resp_parser, a_bulk_of_exactly_the_cap_is_accepted)
{
    resp_parser p;
    size_t used;
    char hdr[64];
    char *chunk = calloc(1, RESP_MAX_BULK);
    resp_parser_init(&p);
    int n = snprintf(hdr, sizeof hdr, "*2\r\n$3\r\nSET\r\n$%u\r\n", RESP_MAX_BULK);
    cr_assert_eq(resp_parse(&p, hdr, (size_t)n, &used), RESP_NEED);
    cr_assert_eq(resp_parse(&p, chunk, RESP_MAX_BULK, &used), RESP_NEED);
    cr_assert_eq(resp_parse(&p, "\r\n", 2, &used), RESP_CMD);
    cr_assert_eq(resp_argv(&p)[1].len, RESP_MAX_BULK);
    resp_parser_free(&p);
    free(chunk);
}

/* xorshift: a fixed seed makes a failure reproducible. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

Test(resp_parser, mutated_input_same_result_however_split, .timeout = 120)
{
    /* Random mutations of valid requests (byte flips, insertions, cuts)
     * and random bytes: the parser must never crash, and feeding the input
     * whole or cut at random places must give the same commands and the
     * same verdict.  Run under SANITIZE=1 this is a small in-tree fuzzer. */
    static const char *seeds[] = {
        "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n",
        "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n",
        "set a \"b\\x41 c\" 'd e'\r\nPING\n",
        "*0\r\n*-1\r\n\r\n*1\r\n$0\r\n\r\n",
    };
    char buf[512], whole[8192], split[8192];
    for (int iter = 0; iter < 20000; iter++) {
        size_t len;
        if (iter % 10 == 0) {
            len = rng() % 200;
            for (size_t i = 0; i < len; i++)
                buf[i] = (char)(rng() % 4 ? "*$\r\n0123456789 \"'\\xab"[rng() % 22] : (char)rng());
        } else {
            const char *s = seeds[rng() % (sizeof seeds / sizeof seeds[0])];
            len = strlen(s);
            memcpy(buf, s, len);
            int muts = 1 + (int)(rng() % 3);
            for (int m = 0; m < muts && len > 0; m++) {
                size_t at = rng() % len;
                switch (rng() % 3) {
                case 0: buf[at] = (char)rng(); break;
                case 1:
                    if (len + 1 < sizeof buf) {
                        memmove(buf + at + 1, buf + at, len - at);
                        buf[at] = "*$\r\n9-"[rng() % 6];
                        len++;
                    }
                    break;
                default: len = at; break;
                }
            }
        }
        const char *e1 = NULL, *e2 = NULL;
        int r1 = feed_cuts(buf, len, NULL, 0, whole, sizeof whole, &e1);
        size_t cuts[4], nc = 0;
        if (len > 0)
            for (; nc < 4; nc++)
                cuts[nc] = (nc ? cuts[nc - 1] : 0) + rng() % (len + 1 - (nc ? cuts[nc - 1] : 0));
        int r2 = feed_cuts(buf, len, cuts, nc, split, sizeof split, &e2);
        cr_assert_eq(r1, r2, "iteration %d: verdicts differ", iter);
        cr_assert_str_eq(whole, split, "iteration %d", iter);
        if (r1 == RESP_PROTO)
            cr_assert_str_eq(e1, e2);
        free((void *)e1);
        free((void *)e2);
    }
}

Test(resp_reply, builders)
{
    resp_buf b;
    resp_buf_init(&b);
    resp_add_status(&b, "OK");
    resp_add_error(&b, "ERR bad %s", "x\r\ny");
    resp_add_int(&b, -42);
    resp_add_bulk(&b, "a\0b", 3);
    resp_add_null(&b);
    resp_add_array(&b, 2);
    const char want[] = "+OK\r\n-ERR bad x  y\r\n:-42\r\n$3\r\na\0b\r\n$-1\r\n*2\r\n";
    cr_assert_eq(b.len, sizeof want - 1);
    cr_assert(memcmp(b.p, want, b.len) == 0);
    resp_buf_free(&b);
}

Test(resp_glob, redis_semantics)
{
#define M(p, s) cmd_glob_match(p, strlen(p), s, strlen(s), 0)
    cr_assert(M("*", ""));
    cr_assert(M("a*", "a"));
    cr_assert(M("*", "anything"));
    cr_assert(M("user:*", "user:42"));
    cr_assert(!M("user:*", "users"));
    cr_assert(M("h?llo", "hello"));
    cr_assert(!M("h?llo", "hllo"));
    cr_assert(M("h[ae]llo", "hallo"));
    cr_assert(!M("h[ae]llo", "hillo"));
    cr_assert(M("h[^e]llo", "hallo"));
    cr_assert(!M("h[^e]llo", "hello"));
    cr_assert(M("h[a-b]llo", "hbllo"));
    cr_assert(M("h[b-a]llo", "hbllo"));
    cr_assert(!M("h[a-b]llo", "hcllo"));
    cr_assert(M("a\\*b", "a*b"));
    cr_assert(!M("a\\*b", "axb"));
    cr_assert(M("[\\]]", "]"));
    cr_assert(M("*a*b*", "xxaxxbxx"));
    cr_assert(!M("abc", "ab"));
    cr_assert(!M("ab", "abc"));
    cr_assert(cmd_glob_match("SAVE", 4, "save", 4, 1));
    cr_assert(!cmd_glob_match("SAVE", 4, "save", 4, 0));
    /* Binary and NUL bytes. */
    cr_assert(cmd_glob_match("a?c", 3, "a\0c", 3, 0));
    /* Pathological backtracking stays fast. */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    cr_assert(!M("a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    cr_assert_lt(t1.tv_sec - t0.tv_sec, 2);
#undef M
}

/* ------------------------------------------------------------------ */
/* Server fixture and a raw RESP client                                 */
/* ------------------------------------------------------------------ */

static char tmproot[64], dbdir[128], sockpath[128];
static js_instance *inst;
static srv_server *srv;

static size_t backup_info(void *ctx, char *buf, size_t cap)
{
    return (size_t)snprintf(buf, cap, "state: running\njob: 7\nphase: copy-database\nprogress_percent: 42\n");
}

static void start_instance(int commit_mode)
{
    js_params prm;
    strcpy(tmproot, "/tmp/jsresp.XXXXXX");
    cr_assert_not_null(mkdtemp(tmproot));
    snprintf(dbdir, sizeof dbdir, "%s/db", tmproot);
    snprintf(sockpath, sizeof sockpath, "%s/s.sock", tmproot);
    js_params_default(&prm);
    prm.commit_mode = commit_mode;
    JET_ERR rc = js_create(dbdir, &prm);
    cr_assert_eq(rc, 0, "js_create: %d %s", rc, js_errdetail());
    rc = js_open(dbdir, &prm, &inst);
    cr_assert_eq(rc, 0, "js_open: %d %s", rc, js_errdetail());
}

static void start_server(void)
{
    const char *eps[] = { sockpath };
    JET_ERR rc = srv_start(inst, eps, 1, backup_info, NULL, &srv);
    cr_assert_eq(rc, 0, "srv_start: %d %s", rc, js_errdetail());
}

static void setup_lazy(void)
{
    start_instance(JS_COMMIT_LAZY);
    start_server();
}

static void setup_durable(void)
{
    start_instance(JS_COMMIT_DURABLE);
    start_server();
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void teardown(void)
{
    srv_stop(srv);
    srv = NULL;
    if (inst)
        js_close(inst);
    inst = NULL;
    if (tmproot[0])
        nftw(tmproot, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

typedef struct client {
    int fd;
    char buf[65536];
    size_t len, off;
} client;

static client *cl_open_path(const char *path)
{
    struct sockaddr_un sa;
    struct timeval tv = { .tv_sec = 20 };
    client *c = calloc(1, sizeof *c);
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    strcpy(sa.sun_path, path);
    c->fd = socket(AF_UNIX, SOCK_STREAM, 0);
    cr_assert_geq(c->fd, 0);
    cr_assert_eq(connect(c->fd, (struct sockaddr *)&sa, sizeof sa), 0, "connect %s: %s", path,
                 strerror(errno));
    /* A reply that never comes fails the test instead of hanging it. */
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return c;
}

static client *cl_open(void) { return cl_open_path(sockpath); }

static void cl_close(client *c)
{
    close(c->fd);
    free(c);
}

static void cl_send(client *c, const void *data, size_t len)
{
    const char *p = data;
    while (len) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        cr_assert_gt(n, 0, "send: %s", strerror(errno));
        p += n;
        len -= (size_t)n;
    }
}

/* Next byte from the server; -1 on EOF, error or timeout. */
static int cl_byte(client *c)
{
    if (c->off == c->len) {
        ssize_t n = recv(c->fd, c->buf, sizeof c->buf, 0);
        if (n <= 0)
            return -1;
        c->len = (size_t)n;
        c->off = 0;
    }
    return (unsigned char)c->buf[c->off++];
}

typedef struct dbuf {
    char *p;
    size_t len, cap;
} dbuf;

static void db_put(dbuf *d, int ch)
{
    if (d->len + 1 >= d->cap) {
        d->cap = d->cap ? d->cap * 2 : 256;
        d->p = realloc(d->p, d->cap);
    }
    d->p[d->len++] = (char)ch;
    d->p[d->len] = '\0';
}

/* Read one complete reply, raw, into d.  Returns -1 on EOF. */
static int read_reply_into(client *c, dbuf *d)
{
    size_t start = d->len;
    int ch;
    do {
        if ((ch = cl_byte(c)) < 0)
            return -1;
        db_put(d, ch);
    } while (!(ch == '\n' && d->len - start >= 2 && d->p[d->len - 2] == '\r'));
    char type = d->p[start];
    long long n = strtoll(d->p + start + 1, NULL, 10);
    if (type == '$' && n >= 0) {
        for (long long i = 0; i < n + 2; i++) {
            if ((ch = cl_byte(c)) < 0)
                return -1;
            db_put(d, ch);
        }
    } else if (type == '*') {
        for (long long i = 0; i < n; i++)
            if (read_reply_into(c, d) < 0)
                return -1;
    }
    return 0;
}

/* One reply as a malloc'd buffer (*len bytes), NULL on EOF. */
static char *cl_reply(client *c, size_t *len)
{
    dbuf d = { 0 };
    if (read_reply_into(c, &d) < 0) {
        free(d.p);
        return NULL;
    }
    if (len)
        *len = d.len;
    if (!d.p)
        d.p = calloc(1, 1);
    return d.p;
}

/* Send a command of n binary-safe arguments. */
static void cl_cmdv(client *c, size_t n, const char *const *av, const size_t *al)
{
    dbuf d = { 0 };
    char hdr[64];
    int k = snprintf(hdr, sizeof hdr, "*%zu\r\n", n);
    for (int i = 0; i < k; i++)
        db_put(&d, hdr[i]);
    for (size_t a = 0; a < n; a++) {
        k = snprintf(hdr, sizeof hdr, "$%zu\r\n", al[a]);
        for (int i = 0; i < k; i++)
            db_put(&d, hdr[i]);
        for (size_t i = 0; i < al[a]; i++)
            db_put(&d, av[a][i]);
        db_put(&d, '\r');
        db_put(&d, '\n');
    }
    cl_send(c, d.p, d.len);
    free(d.p);
}

/* Send a command of C-string arguments (NULL-terminated list). */
static void cl_cmd(client *c, ...)
{
    const char *av[64];
    size_t al[64], n = 0;
    va_list ap;
    va_start(ap, c);
    for (const char *s; (s = va_arg(ap, const char *)) != NULL;) {
        av[n] = s;
        al[n++] = strlen(s);
    }
    va_end(ap);
    cl_cmdv(c, n, av, al);
}

/* Assert the next reply is exactly want (a C string literal of raw RESP). */
static void expect_raw(client *c, const char *want, size_t wlen, const char *what)
{
    size_t len = 0;
    char *got = cl_reply(c, &len);
    cr_assert_not_null(got, "%s: connection closed, wanted %s", what, want);
    cr_assert(len == wlen && memcmp(got, want, len) == 0, "%s: got [%.*s] want [%s]", what,
              (int)len, got, want);
    free(got);
}
#define EXPECT(c, lit) expect_raw((c), (lit), sizeof(lit) - 1, #lit)

/* Assert the next reply is an error starting with prefix. */
static void expect_err(client *c, const char *prefix)
{
    size_t len;
    char *got = cl_reply(c, &len);
    cr_assert_not_null(got, "connection closed, wanted error %s", prefix);
    cr_assert(got[0] == '-' && strncmp(got + 1, prefix, strlen(prefix)) == 0, "got [%s] want -%s", got,
              prefix);
    free(got);
}

/* The server closed the connection (after any pending replies). */
static void expect_eof(client *c)
{
    char *got = cl_reply(c, NULL);
    cr_assert_null(got, "expected the connection to be closed, got [%s]", got ? got : "");
}

/* ------------------------------------------------------------------ */
/* Server: commands                                                     */
/* ------------------------------------------------------------------ */

TestSuite(resp_server, .init = setup_lazy, .fini = teardown, .timeout = 120);

Test(resp_server, socket_mode_is_0660)
{
    struct stat st;
    cr_assert_eq(lstat(sockpath, &st), 0);
    cr_assert(S_ISSOCK(st.st_mode));
    cr_assert_eq(st.st_mode & 0777, 0660, "mode %o", st.st_mode & 0777);
}

Test(resp_server, ping_echo_select_quit)
{
    client *c = cl_open();
    cl_cmd(c, "PING", NULL);
    EXPECT(c, "+PONG\r\n");
    cl_cmd(c, "ping", "hello world", NULL);
    EXPECT(c, "$11\r\nhello world\r\n");
    cl_cmd(c, "PING", "a", "b", NULL);
    expect_err(c, "ERR wrong number of arguments for 'ping' command");
    cl_cmd(c, "ECHO", "x", NULL);
    EXPECT(c, "$1\r\nx\r\n");
    cl_cmd(c, "ECHO", NULL);
    expect_err(c, "ERR wrong number of arguments for 'echo' command");
    cl_cmd(c, "SELECT", "0", NULL);
    EXPECT(c, "+OK\r\n");
    cl_cmd(c, "SELECT", "1", NULL);
    EXPECT(c, "-ERR DB index is out of range\r\n");
    cl_cmd(c, "SELECT", "x", NULL);
    EXPECT(c, "-ERR value is not an integer or out of range\r\n");
    cl_cmd(c, "QUIT", NULL);
    EXPECT(c, "+OK\r\n");
    expect_eof(c);
    cl_close(c);
}

Test(resp_server, set_get_del_exists_binary)
{
    client *c = cl_open();
    const char *av[3] = { "SET", "bin\0key\r\n", "v\0\r\n\xff" };
    size_t al[3] = { 3, 10, 5 };
    cl_cmdv(c, 3, av, al);
    EXPECT(c, "+OK\r\n");
    const char *gv[2] = { "GET", "bin\0key\r\n" };
    size_t gl[2] = { 3, 10 };
    cl_cmdv(c, 2, gv, gl);
    EXPECT(c, "$5\r\nv\0\r\n\xff\r\n");

    cl_cmd(c, "SET", "k1", "", NULL);
    EXPECT(c, "+OK\r\n");
    cl_cmd(c, "GET", "k1", NULL);
    EXPECT(c, "$0\r\n\r\n");
    cl_cmd(c, "GET", "missing", NULL);
    EXPECT(c, "$-1\r\n");
    cl_cmd(c, "SET", "k1", "v", "EX", "10", NULL);
    EXPECT(c, "-ERR syntax error\r\n");
    cl_cmd(c, "SET", "k1", "v", "NX", NULL);
    EXPECT(c, "-ERR syntax error\r\n");
    cl_cmd(c, "GET", "k1", NULL);
    EXPECT(c, "$0\r\n\r\n");
    cl_cmd(c, "SET", "k2", "two", NULL);
    EXPECT(c, "+OK\r\n");
    cl_cmd(c, "EXISTS", "k1", "k2", "k2", "nope", NULL);
    EXPECT(c, ":3\r\n");
    cl_cmd(c, "DEL", "k1", "nope", "k2", NULL);
    EXPECT(c, ":2\r\n");
    cl_cmd(c, "DEL", "k1", NULL);
    EXPECT(c, ":0\r\n");
    cl_cmd(c, "EXISTS", "k1", NULL);
    EXPECT(c, ":0\r\n");
    cl_cmd(c, "DBSIZE", NULL);
    EXPECT(c, ":1\r\n");
    cl_cmd(c, "SET", "", "v", NULL);
    expect_err(c, "ERR empty key");
    cl_close(c);
}

Test(resp_server, mset_mget_incr)
{
    client *c = cl_open();
    cl_cmd(c, "MSET", "a", "1", "b", "2", "c", "3", NULL);
    EXPECT(c, "+OK\r\n");
    cl_cmd(c, "MSET", "a", "1", "b", NULL);
    expect_err(c, "ERR wrong number of arguments for 'mset' command");
    cl_cmd(c, "MGET", "a", "zz", "c", NULL);
    EXPECT(c, "*3\r\n$1\r\n1\r\n$-1\r\n$1\r\n3\r\n");
    cl_cmd(c, "INCR", "a", NULL);
    EXPECT(c, ":2\r\n");
    cl_cmd(c, "INCR", "fresh", NULL);
    EXPECT(c, ":1\r\n");
    cl_cmd(c, "SET", "neg", "-5", NULL);
    EXPECT(c, "+OK\r\n");
    cl_cmd(c, "INCR", "neg", NULL);
    EXPECT(c, ":-4\r\n");
    cl_cmd(c, "SET", "s", "12abc", NULL);
    EXPECT(c, "+OK\r\n");
    cl_cmd(c, "INCR", "s", NULL);
    EXPECT(c, "-ERR value is not an integer or out of range\r\n");
    cl_cmd(c, "SET", "sp", " 1", NULL);
    EXPECT(c, "+OK\r\n");
    cl_cmd(c, "INCR", "sp", NULL);
    EXPECT(c, "-ERR value is not an integer or out of range\r\n");
    cl_cmd(c, "SET", "max", "9223372036854775807", NULL);
    EXPECT(c, "+OK\r\n");
    cl_cmd(c, "INCR", "max", NULL);
    expect_err(c, "ERR increment or decrement would overflow");
    cl_cmd(c, "GET", "max", NULL);
    EXPECT(c, "$19\r\n9223372036854775807\r\n");
    cl_cmd(c, "SET", "min", "-9223372036854775808", NULL);
    EXPECT(c, "+OK\r\n");
    cl_cmd(c, "INCR", "min", NULL);
    EXPECT(c, ":-9223372036854775807\r\n");
    cl_cmd(c, "GET", "a", NULL);
    EXPECT(c, "$1\r\n2\r\n");
    cl_cmd(c, "DBSIZE", NULL);
    EXPECT(c, ":9\r\n"); /* a b c fresh neg s sp max min */
    cl_close(c);
}

Test(resp_server, unknown_command_and_admin_commands)
{
    client *c = cl_open();
    cl_cmd(c, "FLUSHALL", "now", "x", NULL);
    EXPECT(c, "-ERR unknown command 'FLUSHALL', with args beginning with: 'now' 'x' \r\n");
    cl_cmd(c, "HSET", NULL);
    EXPECT(c, "-ERR unknown command 'HSET', with args beginning with: \r\n");
    cl_cmd(c, "COMMAND", NULL);
    EXPECT(c, "*0\r\n");
    cl_cmd(c, "COMMAND", "DOCS", NULL);
    EXPECT(c, "*0\r\n");
    cl_cmd(c, "COMMAND", "COUNT", NULL);
    size_t len;
    char *r = cl_reply(c, &len);
    cr_assert(r && r[0] == ':' && atoi(r + 1) >= 19, "COMMAND COUNT: %s", r);
    free(r);
    cl_cmd(c, "CONFIG", "GET", "save", NULL);
    EXPECT(c, "*2\r\n$4\r\nsave\r\n$0\r\n\r\n");
    cl_cmd(c, "CONFIG", "GET", "appendonly", NULL);
    EXPECT(c, "*2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n");
    cl_cmd(c, "CONFIG", "GET", "no-such-thing", NULL);
    EXPECT(c, "*0\r\n");
    cl_cmd(c, "CONFIG", "SET", "save", "", NULL);
    expect_err(c, "ERR unknown subcommand");
    cl_close(c);
}

Test(resp_server, info_sections)
{
    client *c = cl_open();
    cl_cmd(c, "MSET", "a", "1", "b", "2", NULL);
    EXPECT(c, "+OK\r\n");
    cl_cmd(c, "INFO", NULL);
    char *r = cl_reply(c, NULL);
    cr_assert_not_null(r);
    cr_assert_eq(r[0], '$');
    cr_assert(strstr(r, "# Server\r\n"), "%s", r);
    cr_assert(strstr(r, "redis_version:"), "%s", r);
    cr_assert(strstr(r, "# Clients\r\nconnected_clients:1\r\n"), "%s", r);
    cr_assert(strstr(r, "# Keyspace\r\ndb0:keys=2,expires=0,avg_ttl=0\r\n"), "%s", r);
    cr_assert(strstr(r, "# Backup\r\nstate:running\r\njob:7\r\nphase:copy-database\r\nprogress_percent:42\r\n"),
              "%s", r);
    free(r);
    cl_cmd(c, "INFO", "keyspace", NULL);
    r = cl_reply(c, NULL);
    cr_assert(strstr(r, "db0:keys=2") && !strstr(r, "# Server"), "%s", r);
    free(r);
    cl_cmd(c, "INFO", "backup", NULL);
    r = cl_reply(c, NULL);
    cr_assert(strstr(r, "# Backup\r\n") && !strstr(r, "# Keyspace"), "%s", r);
    free(r);
    cl_cmd(c, "INFO", "nosuchsection", NULL);
    EXPECT(c, "$0\r\n\r\n");
    cl_close(c);
}

/* Collect every key a SCAN iteration returns (cursor until 0). */
static int scan_all(client *first, client *second, const char *match, const char *count,
                    char seen[][16], int maxseen)
{
    char cursor[32] = "0";
    int n = 0, rounds = 0;
    client *c = first;
    do {
        if (match)
            cl_cmd(c, "SCAN", cursor, "MATCH", match, "COUNT", count, NULL);
        else
            cl_cmd(c, "SCAN", cursor, "COUNT", count, NULL);
        char *r = cl_reply(c, NULL);
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
    client *c = cl_open(), *d = cl_open();
    char key[24], seen[200][16];
    for (int i = 0; i < 50; i++) {
        snprintf(key, sizeof key, "%s:%02d", i % 2 ? "odd" : "even", i);
        cl_cmd(c, "SET", key, "v", NULL);
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

    cl_cmd(c, "SCAN", "abc", NULL);
    EXPECT(c, "-ERR invalid cursor\r\n");
    cl_cmd(c, "SCAN", "0", "COUNT", "0", NULL);
    EXPECT(c, "-ERR syntax error\r\n");
    cl_cmd(c, "SCAN", "0", "BOGUS", "1", NULL);
    EXPECT(c, "-ERR syntax error\r\n");
    cl_close(c);
    cl_close(d);
}

Test(resp_server, scan_resumes_past_concurrent_deletes)
{
    /* Keys deleted during a scan must not make it skip surviving keys. */
    client *c = cl_open(), *w = cl_open();
    char key[24], seen[200][16];
    for (int i = 0; i < 40; i++) {
        snprintf(key, sizeof key, "k%02d", i);
        cl_cmd(c, "SET", key, "v", NULL);
        EXPECT(c, "+OK\r\n");
    }
    cl_cmd(c, "SCAN", "0", "COUNT", "10", NULL);
    char *r = cl_reply(c, NULL);
    cr_assert(strstr(r, "$2\r\n10\r\n"), "first SCAN: %s", r);
    free(r);
    /* Delete the first 10 keys (already returned). */
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof key, "k%02d", i);
        cl_cmd(w, "DEL", key, NULL);
        EXPECT(w, ":1\r\n");
    }
    cl_cmd(c, "SCAN", "10", "COUNT", "100", NULL);
    r = cl_reply(c, NULL);
    cr_assert(strstr(r, "$3\r\nk10\r\n") && strstr(r, "$3\r\nk39\r\n") && strstr(r, "*30\r\n"),
              "resumed SCAN must return k10..k39: %s", r);
    free(r);
    (void)seen;
    cl_close(c);
    cl_close(w);
}

Test(resp_server, multi_exec_discard)
{
    client *c = cl_open();
    cl_cmd(c, "EXEC", NULL);
    EXPECT(c, "-ERR EXEC without MULTI\r\n");
    cl_cmd(c, "DISCARD", NULL);
    EXPECT(c, "-ERR DISCARD without MULTI\r\n");
    cl_cmd(c, "MULTI", NULL);
    EXPECT(c, "+OK\r\n");
    cl_cmd(c, "MULTI", NULL);
    EXPECT(c, "-ERR MULTI calls can not be nested\r\n");
    cl_cmd(c, "SET", "x", "1", NULL);
    EXPECT(c, "+QUEUED\r\n");
    cl_cmd(c, "INCR", "x", NULL);
    EXPECT(c, "+QUEUED\r\n");
    cl_cmd(c, "GET", "x", NULL);
    EXPECT(c, "+QUEUED\r\n");
    cl_cmd(c, "MSET", "y", "a", "z", "b", NULL);
    EXPECT(c, "+QUEUED\r\n");
    cl_cmd(c, "INCR", "y", NULL);
    EXPECT(c, "+QUEUED\r\n");
    cl_cmd(c, "DBSIZE", NULL);
    EXPECT(c, "+QUEUED\r\n");
    cl_cmd(c, "EXEC", NULL);
    EXPECT(c, "*6\r\n+OK\r\n:2\r\n$1\r\n2\r\n+OK\r\n-ERR value is not an integer or out of range\r\n:3\r\n");

    cl_cmd(c, "MULTI", NULL);
    EXPECT(c, "+OK\r\n");
    cl_cmd(c, "SET", "gone", "1", NULL);
    EXPECT(c, "+QUEUED\r\n");
    cl_cmd(c, "DISCARD", NULL);
    EXPECT(c, "+OK\r\n");
    cl_cmd(c, "EXISTS", "gone", NULL);
    EXPECT(c, ":0\r\n");

    /* A refused command while queueing aborts the whole EXEC. */
    cl_cmd(c, "MULTI", NULL);
    EXPECT(c, "+OK\r\n");
    cl_cmd(c, "SET", "gone", "1", NULL);
    EXPECT(c, "+QUEUED\r\n");
    cl_cmd(c, "NOSUCH", NULL);
    expect_err(c, "ERR unknown command 'NOSUCH'");
    cl_cmd(c, "GET", NULL);
    expect_err(c, "ERR wrong number of arguments for 'get' command");
    cl_cmd(c, "EXEC", NULL);
    EXPECT(c, "-EXECABORT Transaction discarded because of previous errors.\r\n");
    cl_cmd(c, "EXISTS", "gone", NULL);
    EXPECT(c, ":0\r\n");

    /* A client that vanishes inside MULTI leaves nothing behind. */
    client *v = cl_open();
    cl_cmd(v, "MULTI", NULL);
    EXPECT(v, "+OK\r\n");
    cl_cmd(v, "SET", "vanished", "1", NULL);
    EXPECT(v, "+QUEUED\r\n");
    cl_close(v);
    cl_cmd(c, "EXISTS", "vanished", NULL);
    EXPECT(c, ":0\r\n");
    cl_close(c);
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
    client *c = cl_open_path(a->path);
    for (int i = 0; i < a->iters; i++) {
        cl_cmd(c, "MGET", "ta", "tb", NULL);
        char *r = cl_reply(c, NULL);
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
    cl_close(c);
    return NULL;
}

Test(resp_server, multi_exec_is_atomic_for_other_connections)
{
    atom_arg a = { sockpath, 3000, 0 };
    pthread_t th;
    client *w = cl_open();
    pthread_create(&th, NULL, atomic_reader, &a);
    char num[32];
    for (int i = 0; i < 3000; i++) {
        snprintf(num, sizeof num, "%d", i);
        /* Pipelined: MULTI, two SETs, EXEC in one write. */
        cl_cmd(w, "MULTI", NULL);
        cl_cmd(w, "SET", "ta", num, NULL);
        cl_cmd(w, "SET", "tb", num, NULL);
        cl_cmd(w, "EXEC", NULL);
        EXPECT(w, "+OK\r\n");
        EXPECT(w, "+QUEUED\r\n");
        EXPECT(w, "+QUEUED\r\n");
        EXPECT(w, "*2\r\n+OK\r\n+OK\r\n");
    }
    pthread_join(th, NULL);
    cr_assert_eq(a.bad, 0, "%d torn MGET reads of a MULTI/EXEC pair", a.bad);
    cl_close(w);
}

typedef struct incr_arg {
    const char *path;
    int n;
    int errors;
} incr_arg;

static void *incr_worker(void *arg)
{
    incr_arg *a = arg;
    client *c = cl_open_path(a->path);
    for (int i = 0; i < a->n; i++) {
        cl_cmd(c, "INCR", "counter", NULL);
        char *r = cl_reply(c, NULL);
        if (!r || r[0] != ':')
            a->errors++;
        free(r);
    }
    cl_close(c);
    return NULL;
}

Test(resp_server, concurrent_incr_loses_nothing)
{
    enum { T = 6, N = 300 };
    pthread_t th[T];
    incr_arg args[T];
    for (int i = 0; i < T; i++) {
        args[i] = (incr_arg){ sockpath, N, 0 };
        pthread_create(&th[i], NULL, incr_worker, &args[i]);
    }
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(args[i].errors, 0);
    }
    client *c = cl_open();
    cl_cmd(c, "GET", "counter", NULL);
    EXPECT(c, "$4\r\n1800\r\n");
    cl_close(c);
}

/* ------------------------------------------------------------------ */
/* Server: framing, pipelining, limits, misbehaving clients             */
/* ------------------------------------------------------------------ */

Test(resp_server, pipelining_and_inline)
{
    client *c = cl_open();
    dbuf d = { 0 };
    for (int i = 0; i < 200; i++) {
        char one[128];
        int n = snprintf(one, sizeof one, "*3\r\n$3\r\nSET\r\n$4\r\np%03d\r\n$%d\r\n%d\r\n", i,
                         i < 10 ? 1 : i < 100 ? 2 : 3, i);
        for (int k = 0; k < n; k++)
            db_put(&d, one[k]);
    }
    const char *inl = "PING\r\nset inl \"two words\"\r\nGET inl\nEXISTS p000 p199\r\n";
    for (const char *q = inl; *q; q++)
        db_put(&d, *q);
    cl_send(c, d.p, d.len);
    free(d.p);
    for (int i = 0; i < 200; i++)
        EXPECT(c, "+OK\r\n");
    EXPECT(c, "+PONG\r\n");
    EXPECT(c, "+OK\r\n");
    EXPECT(c, "$9\r\ntwo words\r\n");
    EXPECT(c, ":2\r\n");
    cl_cmd(c, "DBSIZE", NULL);
    EXPECT(c, ":201\r\n");
    cl_close(c);
}

Test(resp_server, key_and_value_limits)
{
    client *c = cl_open();
    char key[300];
    memset(key, 'k', sizeof key);
    const char *av[3] = { "SET", key, "v" };
    size_t al[3] = { 3, 255, 1 };
    cl_cmdv(c, 3, av, al);
    EXPECT(c, "+OK\r\n");
    al[1] = 256;
    cl_cmdv(c, 3, av, al);
    expect_err(c, "ERR key too long");
    cl_cmd(c, "DBSIZE", NULL);
    EXPECT(c, ":1\r\n");

    size_t big = JS_VALUE_MAX + 1;
    char *val = malloc(big);
    memset(val, 'v', big);
    const char *bv[3] = { "SET", "big", val };
    size_t bl[3] = { 3, 3, JS_VALUE_MAX };
    cl_cmdv(c, 3, bv, bl);
    EXPECT(c, "+OK\r\n");
    cl_cmd(c, "GET", "big", NULL);
    size_t len;
    char *r = cl_reply(c, &len);
    cr_assert_not_null(r);
    cr_assert_eq(len, JS_VALUE_MAX + strlen("$1048576\r\n") + 2);
    free(r);

    bv[1] = "toobig";
    bl[1] = 6;
    bl[2] = big;
    cl_cmdv(c, 3, bv, bl);
    expect_err(c, "ERR value too large");
    cl_cmd(c, "EXISTS", "toobig", NULL);
    EXPECT(c, ":0\r\n");
    /* Refused inside MSET: the whole MSET stores nothing. */
    const char *mv[5] = { "MSET", "m1", "small", "m2", val };
    size_t ml[5] = { 4, 2, 5, 2, big };
    cl_cmdv(c, 5, mv, ml);
    expect_err(c, "ERR value too large");
    cl_cmd(c, "EXISTS", "m1", "m2", NULL);
    EXPECT(c, ":0\r\n");
    /* The connection survived all of it. */
    cl_cmd(c, "PING", NULL);
    EXPECT(c, "+PONG\r\n");
    free(val);

    /* Beyond the protocol caps: error, then the connection is closed. */
    char hdr[128];
    int n = snprintf(hdr, sizeof hdr, "*3\r\n$3\r\nSET\r\n$1\r\nz\r\n$%u\r\n", 5u * 1024 * 1024);
    cl_send(c, hdr, (size_t)n);
    expect_err(c, "ERR Protocol error: invalid bulk length");
    expect_eof(c);
    cl_close(c);

    c = cl_open();
    cl_cmd(c, "EXISTS", "z", NULL);
    EXPECT(c, ":0\r\n");
    cl_close(c);
}

Test(resp_server, malformed_request_closes_only_that_connection)
{
    client *good = cl_open(), *bad = cl_open();
    cl_cmd(good, "SET", "g", "1", NULL);
    EXPECT(good, "+OK\r\n");
    /* A valid command, then garbage in the same write: the first is
     * answered, then the error, then EOF. */
    const char junk[] = "*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n#oops\r\n";
    cl_send(bad, junk, sizeof junk - 1);
    EXPECT(bad, "+PONG\r\n");
    expect_err(bad, "ERR Protocol error: expected '$', got '#'");
    expect_eof(bad);
    cl_close(bad);
    cl_cmd(good, "GET", "g", NULL);
    EXPECT(good, "$1\r\n1\r\n");
    cl_close(good);
}

Test(resp_server, client_vanishing_mid_request)
{
    client *v = cl_open();
    const char part[] = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10\r\nabc";
    cl_send(v, part, sizeof part - 1);
    cl_close(v);
    /* Half a big value, then gone. */
    v = cl_open();
    char hdr[64];
    int n = snprintf(hdr, sizeof hdr, "*3\r\n$3\r\nSET\r\n$2\r\nk2\r\n$%u\r\n", JS_VALUE_MAX);
    cl_send(v, hdr, (size_t)n);
    char *half = calloc(1, JS_VALUE_MAX / 2);
    cl_send(v, half, JS_VALUE_MAX / 2);
    free(half);
    cl_close(v);

    client *c = cl_open();
    cl_cmd(c, "EXISTS", "k", "k2", NULL);
    EXPECT(c, ":0\r\n");
    cl_cmd(c, "INFO", "clients", NULL);
    /* Wait for the vanished connections' threads to notice. */
    char *r = cl_reply(c, NULL);
    for (int i = 0; i < 100 && !strstr(r, "connected_clients:1\r\n"); i++) {
        free(r);
        usleep(20000);
        cl_cmd(c, "INFO", "clients", NULL);
        r = cl_reply(c, NULL);
    }
    cr_assert(strstr(r, "connected_clients:1\r\n"), "%s", r);
    free(r);
    cl_close(c);
}

Test(resp_server, a_stalled_client_does_not_stall_others)
{
    /* One client sends half a request and then pipelines replies it never
     * reads; others must still be served promptly. */
    client *slow = cl_open();
    const char part[] = "*2\r\n$3\r\nGET\r\n$3\r\nab";
    cl_send(slow, part, sizeof part - 1);
    client *hog = cl_open();
    cl_cmd(hog, "SET", "hogval", "x", NULL);
    EXPECT(hog, "+OK\r\n");
    /* Fill the hog's socket with replies it does not read. */
    int fl = fcntl(hog->fd, F_GETFL);
    fcntl(hog->fd, F_SETFL, fl | O_NONBLOCK);
    char req[] = "*2\r\n$3\r\nGET\r\n$6\r\nhogval\r\n";
    for (int i = 0; i < 200000; i++)
        if (send(hog->fd, req, sizeof req - 1, MSG_NOSIGNAL) < 0)
            break;
    client *c = cl_open();
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < 50; i++) {
        cl_cmd(c, "PING", NULL);
        EXPECT(c, "+PONG\r\n");
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    cr_assert_lt(t1.tv_sec - t0.tv_sec, 3);
    cl_close(c);
    cl_close(slow);
    cl_close(hog);
}

Test(resp_server, stop_with_clients_connected)
{
    client *idle = cl_open(), *partial = cl_open();
    cl_send(partial, "*2\r\n$3\r\nGET", 11);
    cl_cmd(idle, "PING", NULL);
    EXPECT(idle, "+PONG\r\n");
    srv_stop(srv);
    srv = NULL;
    expect_eof(idle);
    expect_eof(partial);
    struct stat st;
    cr_assert_neq(lstat(sockpath, &st), 0, "socket file removed at stop");
    cl_close(idle);
    cl_close(partial);
}

/* ------------------------------------------------------------------ */
/* Endpoints                                                            */
/* ------------------------------------------------------------------ */

TestSuite(resp_endpoints, .init = NULL, .fini = teardown, .timeout = 60);

Test(resp_endpoints, stale_socket_replaced_live_one_refused_file_refused)
{
    start_instance(JS_COMMIT_LAZY);
    /* A stale socket: bound, then its server went away. */
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    strcpy(sa.sun_path, sockpath);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    close(fd);
    start_server();
    client *c = cl_open();
    cl_cmd(c, "PING", NULL);
    EXPECT(c, "+PONG\r\n");
    cl_close(c);

    /* A live socket is not stolen. */
    srv_server *second = NULL;
    const char *eps[] = { sockpath };
    JET_ERR rc = srv_start(inst, eps, 1, NULL, NULL, &second);
    cr_assert_neq(rc, 0);
    cr_assert_null(second);
    cr_assert(strstr(js_errdetail(), sockpath), "detail names the endpoint: %s", js_errdetail());

    /* A regular file is not replaced. */
    char fpath[PATH_MAX];
    snprintf(fpath, sizeof fpath, "%s/plain", tmproot);
    int f = open(fpath, O_CREAT | O_WRONLY, 0600);
    close(f);
    eps[0] = fpath;
    rc = srv_start(inst, eps, 1, NULL, NULL, &second);
    cr_assert_eq(rc, JET_errInvalidParameter);
    struct stat st;
    cr_assert_eq(stat(fpath, &st), 0);
    cr_assert(S_ISREG(st.st_mode));
}

Test(resp_endpoints, default_endpoint_and_tcp)
{
    start_instance(JS_COMMIT_LAZY);
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
    snprintf(defsock, sizeof defsock, "%s/jetsnap.sock", dbdir);

    const char *eps[] = { ep };
    JET_ERR rc = srv_start(inst, eps, 1, NULL, NULL, &srv);
    cr_assert_eq(rc, 0, "tcp: %d %s", rc, js_errdetail());
    srv_server *def = NULL;
    rc = srv_start(inst, NULL, 0, NULL, NULL, &def);
    cr_assert_eq(rc, 0, "default: %d %s", rc, js_errdetail());

    client *c = cl_open_path(defsock);
    cl_cmd(c, "SET", "via", "unix", NULL);
    EXPECT(c, "+OK\r\n");
    cl_close(c);

    c = calloc(1, sizeof *c);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_eq(connect(c->fd, (struct sockaddr *)&sin, sizeof sin), 0);
    cl_cmd(c, "GET", "via", NULL);
    EXPECT(c, "$4\r\nunix\r\n");
    cl_close(c);

    srv_stop(def);
    struct stat st;
    cr_assert_neq(lstat(defsock, &st), 0);

    eps[0] = "nosuchhost.invalid:80";
    rc = srv_start(inst, eps, 1, NULL, NULL, &def);
    cr_assert_eq(rc, JET_errInvalidParameter);
}

/* ------------------------------------------------------------------ */
/* Durable commits through the front                                    */
/* ------------------------------------------------------------------ */

static void *set_worker(void *arg)
{
    incr_arg *a = arg;
    client *c = cl_open_path(a->path);
    char key[32];
    for (int i = 0; i < a->n; i++) {
        snprintf(key, sizeof key, "w%p:%d", (void *)a, i);
        cl_cmd(c, "SET", key, "durable", NULL);
        char *r = cl_reply(c, NULL);
        if (!r || strcmp(r, "+OK\r\n") != 0)
            a->errors++;
        free(r);
    }
    cl_close(c);
    return NULL;
}

Test(resp_durable, concurrent_writers_all_acknowledged_and_present, .init = setup_durable,
     .fini = teardown, .timeout = 120)
{
    enum { T = 8, N = 40 };
    pthread_t th[T];
    incr_arg args[T];
    for (int i = 0; i < T; i++) {
        args[i] = (incr_arg){ sockpath, N, 0 };
        pthread_create(&th[i], NULL, set_worker, &args[i]);
    }
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(args[i].errors, 0);
    }
    srv_stop(srv);
    srv = NULL;
    /* Reopen: every acknowledged write is there. */
    cr_assert_eq(js_close(inst), 0);
    inst = NULL;
    js_params prm;
    js_params_default(&prm);
    cr_assert_eq(js_open(dbdir, &prm, &inst), 0, "reopen: %s", js_errdetail());
    js_session *s;
    uint64_t n = 0;
    cr_assert_eq(js_session_open(inst, &s), 0);
    cr_assert_eq(js_count(s, &n), 0);
    js_session_close(s);
    cr_assert_eq(n, (uint64_t)T * N);
}

/* ------------------------------------------------------------------ */
/* Real Redis tools                                                     */
/* ------------------------------------------------------------------ */

/* Run argv with stdin from in (may be NULL); capture stdout. */
static int run_tool(char *const argv[], const char *in, size_t inlen, char *out, size_t outcap)
{
    int pin[2], pout[2];
    cr_assert_eq(pipe(pin), 0);
    cr_assert_eq(pipe(pout), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        dup2(pin[0], 0);
        dup2(pout[1], 1);
        close(pin[1]);
        close(pout[0]);
        execvp(argv[0], argv);
        fprintf(stderr, "cannot run %s: %s (install redis-tools: scripts/deps.sh)\n", argv[0],
                strerror(errno));
        _exit(127);
    }
    close(pin[0]);
    close(pout[1]);
    if (in && inlen)
        cr_assert_eq(write(pin[1], in, inlen), (ssize_t)inlen);
    close(pin[1]);
    size_t got = 0;
    ssize_t n;
    while (got + 1 < outcap && (n = read(pout[0], out + got, outcap - 1 - got)) > 0)
        got += (size_t)n;
    out[got] = '\0';
    close(pout[0]);
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

Test(resp_tools, redis_cli_works_unchanged, .init = setup_lazy, .fini = teardown, .timeout = 60)
{
    char out[4096];
    char *ping[] = { "redis-cli", "-s", sockpath, "ping", NULL };
    cr_assert_eq(run_tool(ping, NULL, 0, out, sizeof out), 0);
    cr_assert_str_eq(out, "PONG\n");

    char *set[] = { "redis-cli", "-s", sockpath, "set", "greeting", "hello world", NULL };
    cr_assert_eq(run_tool(set, NULL, 0, out, sizeof out), 0);
    cr_assert_str_eq(out, "OK\n");
    char *get[] = { "redis-cli", "-s", sockpath, "get", "greeting", NULL };
    cr_assert_eq(run_tool(get, NULL, 0, out, sizeof out), 0);
    cr_assert_str_eq(out, "hello world\n");

    /* Binary value through -x (last argument from stdin), read back raw. */
    const char bin[] = "a\0b\r\n\xff\x01z";
    char *setx[] = { "redis-cli", "-s", sockpath, "-x", "set", "binkey", NULL };
    cr_assert_eq(run_tool(setx, bin, sizeof bin - 1, out, sizeof out), 0);
    cr_assert_str_eq(out, "OK\n");
    client *c = cl_open();
    cl_cmd(c, "GET", "binkey", NULL);
    EXPECT(c, "$8\r\na\0b\r\n\xff\x01" "z\r\n");
    cl_close(c);
    /* redis-cli escapes what it prints with --no-raw. */
    char *getb[] = { "redis-cli", "--no-raw", "-s", sockpath, "get", "binkey", NULL };
    cr_assert_eq(run_tool(getb, NULL, 0, out, sizeof out), 0);
    cr_assert_str_eq(out, "\"a\\x00b\\r\\n\\xff\\x01z\"\n");

    char *scan[] = { "redis-cli", "-s", sockpath, "--scan", "--pattern", "g*", NULL };
    cr_assert_eq(run_tool(scan, NULL, 0, out, sizeof out), 0);
    cr_assert_str_eq(out, "greeting\n");

    char *info[] = { "redis-cli", "-s", sockpath, "info", "keyspace", NULL };
    cr_assert_eq(run_tool(info, NULL, 0, out, sizeof out), 0);
    cr_assert(strstr(out, "db0:keys=2,expires=0,avg_ttl=0"), "%s", out);
}

Test(resp_tools, redis_benchmark_runs, .init = setup_lazy, .fini = teardown, .timeout = 300)
{
    static char out[65536];
    char *bench[] = { "redis-benchmark", "-s", sockpath, "-t", "set,get,incr,ping",
                      "-n", "2000", "-c", "10", "-q", NULL };
    int rc = run_tool(bench, NULL, 0, out, sizeof out);
    cr_assert_eq(rc, 0, "redis-benchmark exit %d: %s", rc, out);
    const char *want[] = { "PING_INLINE:", "PING_MBULK:", "SET:", "GET:", "INCR:" };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_assert(strstr(out, want[i]) && strstr(strstr(out, want[i]), "requests per second"),
                  "missing %s in: %s", want[i], out);
    /* The benchmark's INCRs on one key must all have counted. */
    client *c = cl_open();
    cl_cmd(c, "GET", "counter:__rand_int__", NULL);
    EXPECT(c, "$4\r\n2000\r\n");
    cl_close(c);
}
