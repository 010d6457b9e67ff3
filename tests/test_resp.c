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

/* resp_peek_keys: the keys of the whole commands at the start of a
 * buffer, none of a command cut short, and nothing while the parser is in
 * the middle of one (the buffer then starts inside it). */
Test(resp_parser, peek_keys_of_a_pipeline)
{
    const char *in = "*3\r\n$3\r\nSET\r\n$2\r\nk1\r\n$1\r\nv\r\n"
                     "*2\r\n$3\r\nGET\r\n$0\r\n\r\n"
                     "*2\r\n$3\r\nGET\r\n$3\r\nk\r\n\r\n"          /* a key holding CR LF */
                     "*3\r\n$3\r\nSET\r\n$2\r\nk4\r\n$5\r\nab";     /* cut short */
    resp_parser p;
    resp_parser_init(&p);
    resp_arg keys[8];
    size_t n = resp_peek_keys(&p, in, strlen(in), keys, 8);
    cr_assert_eq(n, 3, "%zu keys", n);
    cr_assert_eq(keys[0].len, 2);
    cr_assert_eq(memcmp(keys[0].p, "k1", 2), 0);
    cr_assert_eq(keys[1].len, 0);
    cr_assert_eq(keys[2].len, 3);
    cr_assert_eq(memcmp(keys[2].p, "k\r\n", 3), 0);
    cr_assert_eq(resp_peek_keys(&p, in, strlen(in), keys, 2), 2, "max is kept");

    /* Stops at a command with one argument, an inline one, a bad header. */
    const char *stops[] = { "*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
                            "GET k\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
                            "*2\r\n$x\r\nGET\r\n$1\r\nk\r\n",
                            "*2\r\n$-1\r\n$1\r\nk\r\n",
                            "*2\r\n$3\r\nGET\r\n$1\r\nkXX" };
    for (size_t i = 0; i < sizeof stops / sizeof stops[0]; i++)
        cr_assert_eq(resp_peek_keys(&p, stops[i], strlen(stops[i]), keys, 8), 0, "case %zu", i);

    /* Mid-command: the buffer starts inside one, which looks like more. */
    size_t used;
    const char *head = "*3\r\n$3\r\nSET\r\n$2\r\nk1\r\n";
    cr_assert_eq(resp_parse(&p, head, strlen(head), &used), RESP_NEED);
    const char *rest = "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";   /* is the value's header and more */
    cr_assert_eq(resp_peek_keys(&p, rest, strlen(rest), keys, 8), 0);
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
