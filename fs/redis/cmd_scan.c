/*
 * cmd_scan.c - SCAN and the glob matcher behind its MATCH option.
 */
#include "cmd_family.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* SCAN cursor [MATCH pattern] [COUNT n]: 0, or -1 after the error reply. */
static int scan_args(cmd_conn *c, size_t argc, const resp_arg *argv, unsigned long long *cursor,
                     unsigned long long *count, const resp_arg **match)
{
    long long cursor_arg;

    /* A cursor counts keys, so it never exceeds what a long long holds. */
    if (resp_parse_ll(argv[1].p, argv[1].len, &cursor_arg) != 0 || cursor_arg < 0) {
        resp_add_error(c->out, "ERR invalid cursor");
        return -1;
    }
    *cursor = (unsigned long long)cursor_arg;
    for (size_t i = 2; i < argc; i += 2) {
        if (i + 1 >= argc) {
            resp_add_error(c->out, "ERR syntax error");
            return -1;
        }
        if (cmd_arg_is(&argv[i], "MATCH")) {
            *match = &argv[i + 1];
        } else if (cmd_arg_is(&argv[i], "COUNT")) {
            long long n;
            if (resp_parse_ll(argv[i + 1].p, argv[i + 1].len, &n) != 0) {
                resp_add_error(c->out, "ERR value is not an integer or out of range");
                return -1;
            }
            if (n < 1) {
                resp_add_error(c->out, "ERR syntax error");
                return -1;
            }
            *count = (unsigned long long)n;
        } else {
            resp_add_error(c->out, "ERR syntax error");
            return -1;
        }
    }
    return 0;
}

/* Remember where cursor `next` stops (after key last); reuse a slot holding
 * the same number so one cursor never has two positions. */
static void scan_remember(cmd_conn *c, unsigned long long next, const unsigned char *last,
                          size_t last_len)
{
    cmd_scan_pos *slot = NULL;

    for (unsigned i = 0; i < CMD_SCAN_SLOTS; i++)
        if (c->scan[i].cursor == next)
            slot = &c->scan[i];
    if (!slot) {
        slot = &c->scan[c->scan_next];
        c->scan_next = (c->scan_next + 1) % CMD_SCAN_SLOTS;
    }
    slot->cursor = next;
    slot->klen = last_len;
    memcpy(slot->key, last, last_len);
}

/* SCAN cursor [MATCH pattern] [COUNT n]
 *
 * The cursor counts the keys this scan has passed.  The connection
 * remembers, for its last few cursors, the last key each returned; a call
 * with such a cursor seeks just past that key, so every key present for the
 * whole scan is returned exactly once however the tree changes.  A cursor
 * the connection does not know (another connection's, or evicted) falls
 * back to skipping that many keys from the start: still a complete scan when
 * nothing is deleted meanwhile. */
void cmd_scan(cmd_conn *c, size_t argc, const resp_arg *argv)
{
    unsigned long long cursor, count = 10, examined = 0;
    const resp_arg *match = NULL;
    js_cursor *cur = NULL;
    cmd_scan_pos *pos = NULL;
    unsigned char last[JS_KEY_MAX];
    size_t last_len = 0;
    long long nfound = 0;
    int opened = 0, at_end = 0;
    resp_buf keys;
    JET_ERR rc;

    resp_buf_init(&keys);
    if (scan_args(c, argc, argv, &cursor, &count, &match) != 0)
        goto out;
    if (cursor != 0)
        for (unsigned i = 0; i < CMD_SCAN_SLOTS; i++)
            if (c->scan[i].cursor == cursor)
                pos = &c->scan[i];

    rc = cmd_txn_open(c, JS_TXN_READONLY, &opened);
    if (rc == JET_errSuccess)
        rc = js_cursor_open(c->sess, &cur);
    if (rc != JET_errSuccess)
        goto out_engine;
    if (pos) {
        rc = js_cursor_seek(cur, pos->key, pos->klen);
        if (rc == JET_errSuccess) {
            const void *k;
            size_t kl;
            rc = js_cursor_key(cur, &k, &kl);
            if (rc == JET_errSuccess && kl == pos->klen && memcmp(k, pos->key, kl) == 0)
                rc = js_cursor_next(cur);
        }
    } else {
        /* "From the first key" is klen 0.  The pointer is kept non-NULL:
         * the engine's key compare once handed it to memcmp even for 0
         * bytes, which UBSan aborts on. */
        static const unsigned char from_start[1];
        rc = js_cursor_seek(cur, from_start, 0);
        for (unsigned long long skip = 0; rc == JET_errSuccess && skip < cursor; skip++)
            rc = js_cursor_next(cur);
    }
    while (rc == JET_errSuccess && examined < count) {
        const void *k;
        size_t kl;
        rc = js_cursor_key(cur, &k, &kl);
        if (rc != JET_errSuccess)
            break;
        examined++;
        if (!match || cmd_glob_match(match->p, match->len, k, kl, 0)) {
            resp_add_bulk(&keys, k, kl);
            nfound++;
        }
        memcpy(last, k, kl);
        last_len = kl;
        rc = js_cursor_next(cur);
    }
    if (rc == JET_errRecordNotFound) {
        at_end = 1;
        rc = JET_errSuccess;
    }
out_engine:
    js_cursor_close(cur);
    rc = cmd_txn_close(c, opened, 1, rc);
    if (rc != JET_errSuccess) {
        cmd_reply_jet(c, rc);
        goto out;
    }
    if (keys.oom) {
        c->out->oom = 1;
        goto out;
    }
    {
        unsigned long long next = 0;
        char num[32];
        if (!at_end) {
            next = cursor + examined;
            scan_remember(c, next, last, last_len);
        }
        int n = snprintf(num, sizeof num, "%llu", next);
        resp_add_array(c->out, 2);
        resp_add_bulk(c->out, num, (size_t)n);
        resp_add_array(c->out, nfound);
        resp_add_raw(c->out, keys.p, keys.len);
    }
out:
    resp_buf_free(&keys);
}

/* ------------------------------------------------------------------ */
/* Glob                                                                 */
/* ------------------------------------------------------------------ */

static int fold(int ch, int nocase)
{
    return nocase ? tolower(ch) : ch;
}

/* Redis's stringmatchlen_impl.  *skip_longer is set once a '*' tried every
 * remaining suffix and failed: a longer suffix cannot match either, which
 * keeps patterns like "a*a*a*a*b" linear instead of exponential.  depth
 * bounds recursion for hostile patterns. */
static int glob_impl(const char *p, size_t pl, const char *s, size_t sl, int nocase,
                     int *skip_longer, int depth)
{
    if (depth > 1000)
        return 0;
    while (pl && sl) {
        switch (p[0]) {
        case '*':
            while (pl > 1 && p[1] == '*') {
                p++;
                pl--;
            }
            if (pl == 1)
                return 1;
            while (sl) {
                if (glob_impl(p + 1, pl - 1, s, sl, nocase, skip_longer, depth + 1))
                    return 1;
                if (*skip_longer)
                    return 0;
                s++;
                sl--;
            }
            *skip_longer = 1;
            return 0;
        case '?':
            s++;
            sl--;
            break;
        case '[': {
            int negate, match = 0;
            p++;
            pl--;
            negate = pl > 0 && p[0] == '^';
            if (negate) {
                p++;
                pl--;
            }
            for (;;) {
                if (pl == 0) {
                    /* Unterminated class: step back so the outer p++ lands
                     * on the end. */
                    p--;
                    pl++;
                    break;
                }
                if (p[0] == '\\' && pl >= 2) {
                    p++;
                    pl--;
                    if (fold((unsigned char)p[0], nocase) == fold((unsigned char)s[0], nocase))
                        match = 1;
                } else if (p[0] == ']') {
                    break;
                } else if (pl >= 3 && p[1] == '-') {
                    int lo = fold((unsigned char)p[0], nocase), hi = fold((unsigned char)p[2], nocase);
                    int ch = fold((unsigned char)s[0], nocase);
                    if (lo > hi) {
                        int t = lo;
                        lo = hi;
                        hi = t;
                    }
                    p += 2;
                    pl -= 2;
                    if (ch >= lo && ch <= hi)
                        match = 1;
                } else if (fold((unsigned char)p[0], nocase) == fold((unsigned char)s[0], nocase)) {
                    match = 1;
                }
                p++;
                pl--;
            }
            if (negate)
                match = !match;
            if (!match)
                return 0;
            s++;
            sl--;
            break;
        }
        case '\\':
            if (pl >= 2) {
                p++;
                pl--;
            }
            /* fall through */
        default:
            if (fold((unsigned char)p[0], nocase) != fold((unsigned char)s[0], nocase))
                return 0;
            s++;
            sl--;
            break;
        }
        p++;
        pl--;
        if (sl == 0)
            break;
    }
    /* Trailing stars match the empty rest of the string (unlike Redis,
     * "*" also matches an empty string). */
    if (sl == 0)
        while (pl && p[0] == '*') {
            p++;
            pl--;
        }
    return pl == 0 && sl == 0;
}

int cmd_glob_match(const char *pat, size_t plen, const char *str, size_t slen, int nocase)
{
    int skip_longer = 0;
    return glob_impl(pat, plen, str, slen, nocase, &skip_longer, 0);
}
