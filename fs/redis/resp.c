/*
 * resp.c - the RESP2 request parser (resumable, bounded) and reply builders.
 *
 * The parser is a byte-level state machine whose whole state lives in
 * struct resp_parser, so a request may arrive split at any byte and parsing
 * resumes where it stopped.  States:
 *
 *   START --'*'--> MBULK_LINE --n>0--> BULK_LINE --> BULK_DATA --> BULK_CRLF
 *     |                |  n<=0: no command, back to START      |       |
 *     |                                          more args: BULK_LINE  |
 *     |                                          last arg: RESP_CMD, START
 *     +--other--> INLINE --'\n'--> split words; RESP_CMD (or skip if empty)
 *
 * Argument bytes are copied into one buffer (data) with a NUL after each, so
 * handlers get binary-safe (pointer, length) pairs that also parse as C
 * strings.  Every allocation is charged against the caps of resp.h before it
 * is made.
 */
#include "resp.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parser states (RP_: the RESP parser's; ST_ is status.c's). */
enum {
    RP_START = 0,
    RP_MBULK_LINE,
    RP_BULK_LINE,
    RP_BULK_DATA,
    RP_BULK_CRLF,
    RP_INLINE,
    RP_DEAD
};

/* What one argument costs besides its bytes: the offset, the length, the
 * resp_arg and the NUL.  Charged so that many empty arguments are bounded
 * by RESP_MAX_REQUEST too. */
#define ARG_OVERHEAD (2 * sizeof(size_t) + sizeof(resp_arg) + 1)

/* A data buffer bigger than this is released between commands, so an idle
 * connection that once sent a large value does not keep it. */
#define DATA_KEEP (256u * 1024u)

void resp_parser_init(resp_parser *p)
{
    memset(p, 0, sizeof *p);
    p->state = RP_START;
}

void resp_parser_free(resp_parser *p)
{
    free(p->inl);
    free(p->data);
    free(p->off);
    free(p->alen);
    free(p->argv);
    memset(p, 0, sizeof *p);
    p->state = RP_DEAD;
}

size_t resp_argc(const resp_parser *p) { return p->argc; }
const resp_arg *resp_argv(const resp_parser *p) { return p->argv; }
const char *resp_errmsg(const resp_parser *p) { return p->err ? p->err : ""; }

static int fail(resp_parser *p, const char *msg)
{
    p->err = msg;
    p->state = RP_DEAD;
    return RESP_PROTO;
}

int resp_parse_ll(const char *s, size_t n, long long *out)
{
    size_t i = 0;
    int neg = 0;
    unsigned long long v = 0;

    if (n == 0 || n > 20)
        return -1;
    if (s[0] == '-') {
        neg = 1;
        i = 1;
        if (n == 1)
            return -1;
    }
    if (s[i] == '0' && n - i > 1)
        return -1;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (ULLONG_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    if (neg) {
        if (v > (unsigned long long)LLONG_MAX + 1)
            return -1;
        *out = v == (unsigned long long)LLONG_MAX + 1 ? LLONG_MIN : -(long long)v;
        if (*out == 0 && neg)
            return -1; /* "-0" */
    } else {
        if (v > (unsigned long long)LLONG_MAX)
            return -1;
        *out = (long long)v;
    }
    return 0;
}

size_t resp_parser_bytes(const resp_parser *p)
{
    return p->inl_cap + p->data_cap + p->arg_cap * 2 * sizeof(size_t) + p->argv_cap * sizeof(resp_arg);
}

/* Forget the previous command's arguments before a new one starts. */
static void reset_command(resp_parser *p)
{
    p->argc = 0;
    p->data_len = 0;
    p->request_bytes = 0;
    p->complete = 0;
    if (p->data_cap > DATA_KEEP) {
        free(p->data);
        p->data = NULL;
        p->data_cap = 0;
    }
}

static int grow(void **ptr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap : 16;
    while (ncap < need)
        ncap *= 2;
    void *np = realloc(*ptr, ncap * elem);
    if (!np)
        return -1;
    *ptr = np;
    *cap = ncap;
    return 0;
}

/* Make room for one more argument's bookkeeping, charging its overhead
 * plus extra bytes against RESP_MAX_REQUEST. */
static int arg_slot(resp_parser *p, size_t extra)
{
    size_t cost = extra + ARG_OVERHEAD;
    if (p->request_bytes + cost > RESP_MAX_REQUEST)
        return fail(p, "Protocol error: request too large");
    p->request_bytes += cost;
    size_t cap = p->arg_cap;
    if (grow((void **)&p->off, &cap, p->argc + 1, sizeof *p->off))
        return fail(p, "out of memory");
    cap = p->arg_cap;
    if (grow((void **)&p->alen, &cap, p->argc + 1, sizeof *p->alen))
        return fail(p, "out of memory");
    p->arg_cap = cap;
    p->off[p->argc] = p->data_len;
    p->alen[p->argc] = 0;
    return 0;
}

/* Reserve room for one more argument of len bytes; charges the caps. */
static int arg_reserve(resp_parser *p, size_t len)
{
    if (arg_slot(p, len))
        return RESP_PROTO;
    if (grow((void **)&p->data, &p->data_cap, p->data_len + len + 1, 1))
        return fail(p, "out of memory");
    p->alen[p->argc] = len;
    return 0;
}

#define PEEK_HEADER_MAX sizeof(((resp_parser *)0)->line)

/* A "<tag><digits>\r\n" header at buf[*pos]: its number, *pos past it.
 * -1 when it is not one, or not whole. */
static long long peek_header(const char *buf, size_t len, size_t *pos, char tag)
{
    size_t i = *pos;
    if (i >= len || buf[i] != tag)
        return -1;
    /* A header is no longer than the parser's line: never scan a payload. */
    size_t most = len - i - 1 < PEEK_HEADER_MAX ? len - i - 1 : PEEK_HEADER_MAX;
    const char *cr = memchr(buf + i + 1, '\r', most);
    long long v;
    if (!cr || (size_t)(cr - buf) + 1 >= len || cr[1] != '\n' ||
        resp_parse_ll(buf + i + 1, (size_t)(cr - (buf + i + 1)), &v) != 0 || v < 0)
        return -1;
    *pos = (size_t)(cr - buf) + 2;
    return v;
}

size_t resp_peek_keys(const resp_parser *p, const char *buf, size_t len, resp_arg *keys, size_t max)
{
    size_t n = 0, pos = 0;
    if (p->state != RP_START)
        return 0;
    while (n < max) {
        long long argc = peek_header(buf, len, &pos, '*');
        if (argc < 2 || argc > (long long)RESP_MAX_ARGS)
            break;
        resp_arg key = { NULL, 0 };
        for (long long a = 0; a < argc; a++) {
            long long blen = peek_header(buf, len, &pos, '$');
            if (blen < 0 || blen > (long long)RESP_MAX_BULK || len - pos < (size_t)blen + 2 ||
                buf[pos + (size_t)blen] != '\r' || buf[pos + (size_t)blen + 1] != '\n')
                return n;
            if (a == 1) {
                key.p = buf + pos;
                key.len = (size_t)blen;
            }
            pos += (size_t)blen + 2;
        }
        keys[n++] = key;
    }
    return n;
}

/* The arguments are all in: publish them as resp_args. */
static int finish_command(resp_parser *p)
{
    if (grow((void **)&p->argv, &p->argv_cap, p->argc, sizeof *p->argv))
        return fail(p, "out of memory");
    for (size_t i = 0; i < p->argc; i++) {
        p->argv[i].p = p->data + p->off[i];
        p->argv[i].len = p->alen[i];
    }
    p->complete = 1;
    p->state = RP_START;
    return RESP_CMD;
}

/* Collect a header line ("*3" or "$5") into p->line.  Returns 1 once the
 * line ended (CR stripped), 0 if more bytes are needed, RESP_PROTO. */
static int collect_line(resp_parser *p, const char *buf, size_t len, size_t *i,
                        const char *toobig)
{
    const char *nl = memchr(buf + *i, '\n', len - *i);
    size_t take = (nl ? (size_t)(nl - (buf + *i)) : len - *i);
    if (p->line_len + take >= sizeof p->line)
        return fail(p, toobig);
    memcpy(p->line + p->line_len, buf + *i, take);
    p->line_len += take;
    *i += take;
    if (!nl)
        return 0;
    (*i)++; /* the '\n' */
    if (p->line_len > 0 && p->line[p->line_len - 1] == '\r')
        p->line_len--;
    return 1;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Split an inline line into arguments, with Redis's sdssplitargs quoting. */
static int split_inline(resp_parser *p, const char *s, size_t n)
{
    size_t i = 0;
    /* A word is never longer than its source text, and there are at most
     * n/2 + 1 words, each with a NUL: reserve that once, up front. */
    if (grow((void **)&p->data, &p->data_cap, n + n / 2 + 2, 1))
        return fail(p, "out of memory");
    while (1) {
        while (i < n && isspace((unsigned char)s[i]))
            i++;
        if (i >= n)
            break;
        if (arg_slot(p, 0))
            return RESP_PROTO;
        char *w = p->data + p->data_len;
        size_t wl = 0;
        if (s[i] == '"') {
            i++;
            for (;;) {
                if (i >= n)
                    return fail(p, "Protocol error: unbalanced quotes in request");
                if (s[i] == '\\' && i + 3 < n && s[i + 1] == 'x' &&
                    hexval((unsigned char)s[i + 2]) >= 0 && hexval((unsigned char)s[i + 3]) >= 0) {
                    w[wl++] = (char)(hexval((unsigned char)s[i + 2]) * 16 + hexval((unsigned char)s[i + 3]));
                    i += 4;
                } else if (s[i] == '\\' && i + 1 < n) {
                    char c = s[i + 1];
                    switch (c) {
                    case 'n': c = '\n'; break;
                    case 'r': c = '\r'; break;
                    case 't': c = '\t'; break;
                    case 'b': c = '\b'; break;
                    case 'a': c = '\a'; break;
                    default: break;
                    }
                    w[wl++] = c;
                    i += 2;
                } else if (s[i] == '"') {
                    i++;
                    /* A closing quote must end the word. */
                    if (i < n && !isspace((unsigned char)s[i]))
                        return fail(p, "Protocol error: unbalanced quotes in request");
                    break;
                } else {
                    w[wl++] = s[i++];
                }
            }
        } else if (s[i] == '\'') {
            i++;
            for (;;) {
                if (i >= n)
                    return fail(p, "Protocol error: unbalanced quotes in request");
                if (s[i] == '\\' && i + 1 < n && s[i + 1] == '\'') {
                    w[wl++] = '\'';
                    i += 2;
                } else if (s[i] == '\'') {
                    i++;
                    if (i < n && !isspace((unsigned char)s[i]))
                        return fail(p, "Protocol error: unbalanced quotes in request");
                    break;
                } else {
                    w[wl++] = s[i++];
                }
            }
        } else {
            while (i < n && !isspace((unsigned char)s[i]))
                w[wl++] = s[i++];
        }
        w[wl] = '\0';
        p->alen[p->argc] = wl;
        p->data_len += wl + 1;
        p->argc++;
    }
    return 0;
}

/* lint: long-function (the protocol parser's resumable state machine reads best as one switch) */
int resp_parse(resp_parser *p, const char *buf, size_t len, size_t *used)
{
    size_t i = 0;
    int rc;

    if (p->state == RP_DEAD) {
        *used = 0;
        return RESP_PROTO;
    }
    if (p->complete)
        reset_command(p);

    while (i < len) {
        switch (p->state) {
        case RP_START:
            p->line_len = 0;
            if (buf[i] == '*') {
                i++;
                p->state = RP_MBULK_LINE;
            } else {
                p->inl_len = 0;
                p->state = RP_INLINE;
            }
            break;

        case RP_MBULK_LINE: {
            long long n;
            rc = collect_line(p, buf, len, &i, "Protocol error: too big mbulk count string");
            if (rc <= 0)
                goto out_rc;
            if (resp_parse_ll(p->line, p->line_len, &n) || n > (long long)RESP_MAX_ARGS)
                return fail(p, "Protocol error: invalid multibulk length");
            if (n <= 0) {
                p->state = RP_START; /* an empty request: nothing to run */
                break;
            }
            p->multi_left = n;
            p->line_len = 0;
            p->state = RP_BULK_LINE;
            break;
        }

        case RP_BULK_LINE: {
            long long n;
            if (p->line_len == 0 && buf[i] != '$') {
                unsigned char c = (unsigned char)buf[i];
                if (isprint(c))
                    snprintf(p->errbuf, sizeof p->errbuf, "Protocol error: expected '$', got '%c'", c);
                else
                    snprintf(p->errbuf, sizeof p->errbuf, "Protocol error: expected '$', got '\\x%02x'", c);
                return fail(p, p->errbuf);
            }
            rc = collect_line(p, buf, len, &i, "Protocol error: too big bulk count string");
            if (rc <= 0)
                goto out_rc;
            if (resp_parse_ll(p->line + 1, p->line_len - 1, &n) || n < 0 ||
                n > (long long)RESP_MAX_BULK)
                return fail(p, "Protocol error: invalid bulk length");
            if (arg_reserve(p, (size_t)n))
                return RESP_PROTO;
            p->bulk_left = n;
            p->state = RP_BULK_DATA;
            break;
        }

        case RP_BULK_DATA: {
            size_t take = len - i;
            if ((unsigned long long)take > (unsigned long long)p->bulk_left)
                take = (size_t)p->bulk_left;
            memcpy(p->data + p->data_len, buf + i, take);
            p->data_len += take;
            p->bulk_left -= (long long)take;
            i += take;
            if (p->bulk_left == 0) {
                p->data[p->data_len++] = '\0';
                p->crlf_left = 2;
                p->state = RP_BULK_CRLF;
            }
            break;
        }

        case RP_BULK_CRLF:
            if (buf[i] != (p->crlf_left == 2 ? '\r' : '\n'))
                return fail(p, "Protocol error: bulk not followed by CRLF");
            i++;
            if (--p->crlf_left > 0)
                break;
            p->argc++;
            if (--p->multi_left > 0) {
                p->line_len = 0;
                p->state = RP_BULK_LINE;
                break;
            }
            *used = i;
            return finish_command(p);

        case RP_INLINE: {
            const char *nl = memchr(buf + i, '\n', len - i);
            size_t take = nl ? (size_t)(nl - (buf + i)) : len - i;
            if (p->inl_len + take > RESP_MAX_INLINE)
                return fail(p, "Protocol error: too big inline request");
            if (grow((void **)&p->inl, &p->inl_cap, p->inl_len + take + 1, 1))
                return fail(p, "out of memory");
            memcpy(p->inl + p->inl_len, buf + i, take);
            p->inl_len += take;
            i += take;
            if (!nl)
                break;
            i++; /* the '\n' */
            if (split_inline(p, p->inl, p->inl_len))
                return RESP_PROTO;
            if (p->inl_cap > DATA_KEEP) {
                free(p->inl);
                p->inl = NULL;
                p->inl_cap = 0;
            }
            p->inl_len = 0;
            if (p->argc == 0) {
                reset_command(p);
                p->state = RP_START; /* a blank line: nothing to run */
                break;
            }
            *used = i;
            return finish_command(p);
        }

        default:
            return fail(p, "Protocol error: parser state");
        }
    }
    *used = i;
    return RESP_NEED;

out_rc:
    if (rc < 0)
        return RESP_PROTO;
    *used = i;
    return RESP_NEED;
}

/* ------------------------------------------------------------------ */
/* Replies                                                              */
/* ------------------------------------------------------------------ */

void resp_buf_init(resp_buf *b) { memset(b, 0, sizeof *b); }

void resp_buf_free(resp_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

void resp_buf_reset(resp_buf *b)
{
    b->len = 0;
    /* Keep a modest buffer between batches; drop one grown by a big reply. */
    if (b->cap > DATA_KEEP) {
        free(b->p);
        b->p = NULL;
        b->cap = 0;
    }
}

static char *reserve(resp_buf *b, size_t n)
{
    if (b->oom)
        return NULL;
    if (b->len + n > b->cap) {
        size_t ncap = b->cap ? b->cap : 256;
        while (ncap < b->len + n)
            ncap *= 2;
        char *np = realloc(b->p, ncap);
        if (!np) {
            b->oom = 1;
            return NULL;
        }
        b->p = np;
        b->cap = ncap;
    }
    return b->p + b->len;
}

void resp_add_raw(resp_buf *b, const void *data, size_t len)
{
    if (len == 0)
        return;
    char *d = reserve(b, len);
    if (!d)
        return;
    memcpy(d, data, len);
    b->len += len;
}

void resp_add_status(resp_buf *b, const char *s)
{
    resp_add_raw(b, "+", 1);
    resp_add_raw(b, s, strlen(s));
    resp_add_raw(b, "\r\n", 2);
}

static void resp_add_verror(resp_buf *b, const char *fmt, va_list ap)
{
    char msg[512];
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof msg)
        n = sizeof msg - 1;
    /* An error reply is one line: a CR or LF inside would end it early and
     * desynchronise the client. */
    for (int k = 0; k < n; k++)
        if (msg[k] == '\r' || msg[k] == '\n')
            msg[k] = ' ';
    resp_add_raw(b, "-", 1);
    resp_add_raw(b, msg, (size_t)n);
    resp_add_raw(b, "\r\n", 2);
}

void resp_add_error(resp_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    resp_add_verror(b, fmt, ap);
    va_end(ap);
}

static void add_prefixed_num(resp_buf *b, char c, long long v)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%c%lld\r\n", c, v);
    resp_add_raw(b, tmp, (size_t)n);
}

void resp_add_int(resp_buf *b, long long v) { add_prefixed_num(b, ':', v); }
void resp_add_array(resp_buf *b, long long n) { add_prefixed_num(b, '*', n); }
void resp_add_null(resp_buf *b) { resp_add_raw(b, "$-1\r\n", 5); }

void resp_add_bulk(resp_buf *b, const void *data, size_t len)
{
    add_prefixed_num(b, '$', (long long)len);
    resp_add_raw(b, data, len);
    resp_add_raw(b, "\r\n", 2);
}

void resp_add_cbulk(resp_buf *b, const char *s) { resp_add_bulk(b, s, strlen(s)); }
