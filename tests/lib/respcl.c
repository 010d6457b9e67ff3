/*
 * respcl.c - a raw RESP2 client for tests (see respcl.h).
 */
#include "respcl.h"
#include "testlib.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

tl_client *tl_cl_open(const char *path)
{
    struct sockaddr_un sa;
    struct timeval tv = { .tv_sec = 20 };
    tl_client *c = calloc(1, sizeof *c);

    cr_assert_not_null(c);
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    c->fd = socket(AF_UNIX, SOCK_STREAM, 0);
    cr_assert_geq(c->fd, 0);
    cr_assert_eq(connect(c->fd, (struct sockaddr *)&sa, sizeof sa), 0, "connect %s: %s", path,
                 strerror(errno));
    /* A reply that never comes fails the test instead of hanging it. */
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return c;
}

void tl_cl_close(tl_client *c)
{
    close(c->fd);
    free(c);
}

void tl_cl_send(tl_client *c, const void *data, size_t len)
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
static int cl_byte(tl_client *c)
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

void tl_dbuf_put(tl_dbuf *d, int ch)
{
    if (d->len + 1 >= d->cap) {
        d->cap = d->cap ? d->cap * 2 : 256;
        d->p = realloc(d->p, d->cap);
        cr_assert_not_null(d->p);
    }
    d->p[d->len++] = (char)ch;
    d->p[d->len] = '\0';
}

void tl_dbuf_puts(tl_dbuf *d, const char *s)
{
    for (; *s; s++)
        tl_dbuf_put(d, *s);
}

void tl_dbuf_set(tl_dbuf *d, const char *key, const char *val)
{
    char hdr[64];
    snprintf(hdr, sizeof hdr, "*3\r\n$3\r\nSET\r\n$%zu\r\n", strlen(key));
    tl_dbuf_puts(d, hdr);
    tl_dbuf_puts(d, key);
    snprintf(hdr, sizeof hdr, "\r\n$%zu\r\n", strlen(val));
    tl_dbuf_puts(d, hdr);
    tl_dbuf_puts(d, val);
    tl_dbuf_puts(d, "\r\n");
}

/* Read one complete reply, raw, into d.  Returns -1 on EOF. */
static int read_reply_into(tl_client *c, tl_dbuf *d)
{
    size_t start = d->len;
    long long n;
    char type;
    int ch;

    do {
        if ((ch = cl_byte(c)) < 0)
            return -1;
        tl_dbuf_put(d, ch);
    } while (!(ch == '\n' && d->len - start >= 2 && d->p[d->len - 2] == '\r'));
    type = d->p[start];
    n = strtoll(d->p + start + 1, NULL, 10);
    if (type == '$' && n >= 0) {
        for (long long i = 0; i < n + 2; i++) {
            if ((ch = cl_byte(c)) < 0)
                return -1;
            tl_dbuf_put(d, ch);
        }
    } else if (type == '*') {
        for (long long i = 0; i < n; i++)
            if (read_reply_into(c, d) < 0)
                return -1;
    }
    return 0;
}

char *tl_cl_reply(tl_client *c, size_t *len)
{
    tl_dbuf d = { 0 };

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

void tl_cl_cmdv(tl_client *c, size_t n, const char *const *av, const size_t *al)
{
    tl_dbuf d = { 0 };
    char hdr[64];
    int k = snprintf(hdr, sizeof hdr, "*%zu\r\n", n);

    for (int i = 0; i < k; i++)
        tl_dbuf_put(&d, hdr[i]);
    for (size_t a = 0; a < n; a++) {
        k = snprintf(hdr, sizeof hdr, "$%zu\r\n", al[a]);
        for (int i = 0; i < k; i++)
            tl_dbuf_put(&d, hdr[i]);
        for (size_t i = 0; i < al[a]; i++)
            tl_dbuf_put(&d, av[a][i]);
        tl_dbuf_put(&d, '\r');
        tl_dbuf_put(&d, '\n');
    }
    tl_cl_send(c, d.p, d.len);
    free(d.p);
}

void tl_cl_cmd(tl_client *c, ...)
{
    const char *av[64];
    size_t al[64], n = 0;
    va_list ap;

    va_start(ap, c);
    for (const char *s; (s = va_arg(ap, const char *)) != NULL;) {
        cr_assert_lt(n, 64);
        av[n] = s;
        al[n++] = strlen(s);
    }
    va_end(ap);
    tl_cl_cmdv(c, n, av, al);
}

void tl_cl_expect_raw(tl_client *c, const char *want, size_t wlen, const char *what)
{
    size_t len = 0;
    char *got = tl_cl_reply(c, &len);

    cr_assert_not_null(got, "%s: connection closed, wanted %s", what, want);
    cr_assert(len == wlen && memcmp(got, want, len) == 0, "%s: got [%.*s] want [%s]", what,
              (int)len, got, want);
    free(got);
}

void tl_cl_expect_err(tl_client *c, const char *prefix)
{
    size_t len;
    char *got = tl_cl_reply(c, &len);

    cr_assert_not_null(got, "connection closed, wanted error %s", prefix);
    cr_assert(got[0] == '-' && strncmp(got + 1, prefix, strlen(prefix)) == 0, "got [%s] want -%s", got,
              prefix);
    free(got);
}

void tl_cl_expect_eof(tl_client *c)
{
    char *got = tl_cl_reply(c, NULL);

    cr_assert_null(got, "expected the connection to be closed, got [%s]", got ? got : "");
}

int tl_resp_connect(const char *path)
{
    struct sockaddr_un sa;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int tl_resp_read_line(int fd, char *buf, size_t *blen, char *line, size_t cap)
{
    for (;;) {
        char *nl = memchr(buf, '\n', *blen);
        if (nl) {
            size_t n = (size_t)(nl - buf) + 1;
            size_t l = n >= 2 ? n - 2 : 0;
            if (l >= cap)
                l = cap - 1;
            memcpy(line, buf, l);
            line[l] = '\0';
            memmove(buf, buf + n, *blen - n);
            *blen -= n;
            return 0;
        }
        if (*blen >= 4096)
            return -1;
        ssize_t r = recv(fd, buf + *blen, 4096 - *blen, 0);
        if (r <= 0)
            return -1;
        *blen += (size_t)r;
    }
}

int tl_resp_ping(const char *path)
{
    char buf[64];
    size_t got = 0;
    ssize_t n;
    int fd = tl_resp_connect(path), ok = 0;

    if (fd < 0)
        return 0;
    if (write(fd, "PING\r\n", 6) != 6)
        goto out_close;
    /* A reply may arrive in pieces. */
    while (got < 7 && (n = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0)
        got += (size_t)n;
    buf[got] = '\0';
    ok = strncmp(buf, "+PONG\r\n", 7) == 0;
out_close:
    close(fd);
    return ok;
}

int tl_resp_info_backup(const char *sock, char *out, size_t cap)
{
    int fd = tl_resp_connect(sock);
    size_t n = 0;

    if (fd < 0)
        return -1;
    out[0] = '\0';
    if (write(fd, "INFO backup\r\n", 13) != 13) {
        close(fd);
        return -1;
    }
    /* The section ends with its last key, message. */
    while (n + 1 < cap && strstr(out, "message:") == NULL) {
        ssize_t r = read(fd, out + n, cap - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
        out[n] = '\0';
    }
    close(fd);
    return 0;
}
