/*
 * snapimg.c - snapshot images read whole for the snapshot suites
 * (snapimg.h).
 */
#include "snapimg.h"

#include <criterion/criterion.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"

uint8_t *tl_snap_image(js_instance *inst, const char *name, size_t *len, JET_ERR *rerr)
{
    js_snapshot *s = NULL;
    js_snapshot_info info;
    OK(js_snapshot_open(inst, name, &s, &info));
    size_t size = (size_t)info.pages * info.page_size, got = 0;
    uint8_t *buf = malloc(size);
    cr_assert_not_null(buf);
    JET_ERR err = JET_errSuccess;
    while (got < size && !err) {
        size_t want = size - got < 100000 ? size - got : 100000, n = 0;
        err = js_snapshot_read(s, got, buf + got, want, &n);
        if (!err && n == 0)
            break;
        got += n;
    }
    js_snapshot_close(s);
    if (rerr)
        *rerr = err;
    else
        OK(err);
    *len = got;
    return buf;
}

void tl_snap_hash(js_instance *inst, const char *name, unsigned char out[32])
{
    size_t len = 0;
    uint8_t *b = tl_snap_image(inst, name, &len, NULL);
    SHA256(b, len, out);
    free(b);
}

void tl_snap_expect(js_instance *inst, const char *name, const unsigned char want[32], const char *fmt, ...)
{
    unsigned char h[32];
    char why[256];
    va_list ap;
    tl_snap_hash(inst, name, h);
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    cr_assert(!memcmp(want, h, 32), "%s", why);
}
