/*
 * recover.c - redo: replay committed transactions from the log into the
 * buffer pool.  Used by crash recovery (soft recovery, from the checkpoint)
 * and by restore (hard recovery, from the backup's first generation).
 *
 * Records of a transaction are buffered until its commit record; a
 * transaction whose commit never reached the log, or that ends with an
 * abort record, is dropped.  A page image (a new page, or a change of
 * more than half a page) is always applied; a delta is applied only when
 * the page's LSN is older than the transaction's commit LSN.  Images and
 * deltas are applied in log order, so any committed version of a page (a
 * backup's copy, what a checkpoint wrote, a torn page the doublewrite
 * buffer repaired before redo, store/dwb.c) ends up in its last committed
 * state.
 */
#include "log/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct redo_ctx {
    db_store *st;
    uint8_t *buf;           /* buffered records of the open transaction */
    size_t len, cap;
    uint64_t txns;
    int64_t until_us;       /* 0: no time limit */
    int stopped;            /* a commit after until_us was met: apply nothing more */
    int64_t last_us;
    uint64_t last_lsn;
} redo_ctx;

/* A commit record's time in microseconds: the 24-byte form carries it,
 * an older 16-byte one only milliseconds. */
static int64_t commit_time_us(const uint8_t *payload, uint32_t len)
{
    if (len >= 24)
        return (int64_t)pg_u64(payload + 16);
    return len >= 16 ? (int64_t)pg_u64(payload + 8) * 1000 : 0;
}

static JET_ERR redo_apply_txn_record(db_store *st, int type, const uint8_t *p, uint32_t len, uint64_t commit_lsn)
{
    uint32_t ps = st->page_size;
    JET_ERR err = JET_errSuccess;
    frame *f = NULL;
    if (len < 4)
        return JS_CORRUPT(JET_errLogReadVerifyFailure, "log record of %u bytes is too short", len);
    uint32_t pgno = pg_u32(p);
    ss_before_change(st->snap, st, pgno, commit_lsn);   /* a lazy snapshot's version of it (snaplazy.c) */
    if (type == REC_IMAGE) {
        if (len != 4 + ps)
            return JS_CORRUPT(JET_errLogReadVerifyFailure, "image of page %u has %u bytes", pgno, len - 4);
        err = pool_get_for_install(&st->pool, pgno, &f);
        if (err)
            return err;
        memcpy(f->data, p + 4, ps);
    } else {
        if (type == REC_ZIMAGE) {
            /* A whole image, zero but for its runs: no base needed. */
            err = pool_get_for_install(&st->pool, pgno, &f);
            if (err)
                return err;
            memset(f->data, 0, ps);
            pg_put32(f->data + 4, pgno);
        } else {
            err = pool_get(st, pgno, 1, &f);
            if (err)
                return err;
            if (pg_lsn(f->data) >= commit_lsn)
                goto out;
            if (pg_pgno(f->data) != pgno) {
                err = JS_CORRUPT(JET_errReadVerifyFailure,
                                 "page %u of " JS_DB_FILE ": redo found no base image for a change", pgno);
                goto out;
            }
        }
        uint32_t nruns = len >= 6 ? pg_u16(p + 4) : 0, pos = 6;
        for (uint32_t r = 0; r < nruns; r++) {
            if (pos + 4 > len)
                break;
            uint32_t off = pg_u16(p + pos), rl = pg_u16(p + pos + 2);
            if (off < 16 || off + rl > ps || pos + 4 + rl > len) {
                err = JS_CORRUPT(JET_errLogReadVerifyFailure, "malformed change record for page %u", pgno);
                goto out;
            }
            memcpy(f->data + off, p + pos + 4, rl);
            pos += 4 + rl;
        }
    }
    pg_set_lsn(f->data, commit_lsn);
    pool_mark_dirty(&st->pool, f);
out:
    pool_unpin(&st->pool, f);
    return err;
}

static JET_ERR redo_record(void *vctx, uint64_t lsn, int type, const uint8_t *payload, uint32_t len)
{
    redo_ctx *c = vctx;
    if (c->stopped)
        return JET_errSuccess;
    if (type == REC_COMMIT && c->until_us && commit_time_us(payload, len) > c->until_us) {
        c->stopped = 1;     /* this transaction and every later one stay out */
        c->len = 0;
        return JET_errSuccess;
    }
    if (type == REC_ABORT) {
        c->len = 0;   /* the transaction failed: none of it counts */
        return JET_errSuccess;
    }
    if (type != REC_COMMIT) {
        size_t need = c->len + 8 + len;
        if (need > c->cap) {
            size_t ncap = c->cap ? c->cap : 1 << 16;
            while (ncap < need)
                ncap *= 2;
            uint8_t *nb = realloc(c->buf, ncap);
            if (!nb)
                return js_fail(JET_errOutOfMemory, "redo buffer of %zu bytes", ncap);
            c->buf = nb;
            c->cap = ncap;
        }
        pg_put32(c->buf + c->len, (uint32_t)type);
        pg_put32(c->buf + c->len + 4, len);
        memcpy(c->buf + c->len + 8, payload, len);
        c->len += 8 + len;
        return JET_errSuccess;
    }
    for (size_t off = 0; off < c->len;) {
        uint32_t t = pg_u32(c->buf + off), l = pg_u32(c->buf + off + 4);
        JET_ERR err = redo_apply_txn_record(c->st, (int)t, c->buf + off + 8, l, lsn);
        if (err)
            return err;
        off += 8 + l;
    }
    c->len = 0;
    c->txns++;
    c->last_us = commit_time_us(payload, len);
    c->last_lsn = lsn;
    return JET_errSuccess;
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

JET_ERR redo_run(db_store *st, const uint8_t log_sig[JS_SIG_LEN], const char *logdir, uint64_t start_lsn,
                 uint32_t until_gen, int64_t until_us, int stop_at_gap, const redo_result *chain_from,
                 redo_result *res)
{
    redo_ctx ctx = { .st = st, .until_us = until_us };
    JET_ERR err = JET_errSuccess;
    char path[PATH_MAX], cur[PATH_MAX];
    uint32_t min_gen, max_gen;
    loggen_hdr prev_hdr, hdr;
    loggen_scan_result prev_scan, scan;
    int have_prev = 0;
    memset(res, 0, sizeof *res);
    if (chain_from && chain_from->last_gen) {
        prev_hdr = chain_from->last_hdr;
        prev_scan = chain_from->last_scan;
        have_prev = 1;
    }

    err = loggen_list(logdir, &min_gen, &max_gen);
    if (err)
        return err;
    snprintf(cur, sizeof cur, "%s/%s", logdir, JS_LOG_FILE);
    uint32_t cur_gen = 0;
    if (file_exists(cur)) {
        int fd = -1;
        err = os_open(cur, O_RDONLY, 0, &fd);
        if (!err)
            err = loggen_read_header(fd, cur, &hdr);
        os_close(fd);
        if (err)
            return err;
        cur_gen = hdr.gen;
    }
    uint32_t g = LSN_GEN(start_lsn);
    if (g == 0)
        g = min_gen ? min_gen : cur_gen;
    st->recovering = 1;
    for (; g; g++) {
        if (until_gen && g > until_gen)
            break;
        int is_current = 0;
        loggen_name(path, sizeof path, logdir, g);
        if (!file_exists(path)) {
            if (cur_gen == g) {
                memcpy(path, cur, sizeof path);
                is_current = 1;
            } else if (stop_at_gap || (g > max_gen && (cur_gen == 0 || cur_gen < g))) {
                break;
            } else {
                err = js_fail(JET_errMissingLogFile, "log generation %08X is missing from %s", g, logdir);
                goto out;
            }
        }
        int fd = -1;
        err = os_open(path, O_RDONLY, 0, &fd);
        if (!err)
            err = loggen_read_header(fd, path, &hdr);
        os_close(fd);
        if (err)
            goto out;
        if (hdr.gen != g) {
            err = JS_CORRUPT(JET_errLogReadVerifyFailure, "%s holds generation %08X, not %08X", path, hdr.gen, g);
            goto out;
        }
        if (memcmp(hdr.log_sig, log_sig, JS_SIG_LEN) != 0) {
            if (stop_at_gap)
                break;
            err = js_fail(JET_errBadLogSignature, "%s belongs to another log stream", path);
            goto out;
        }
        if (have_prev && prev_hdr.gen + 1 == g && (hdr.prev_digest != prev_scan.digest || hdr.prev_blocks != prev_scan.end_blk ||
                          hdr.prev_created != prev_hdr.created)) {
            if (stop_at_gap)
                break;
            err = JS_CORRUPT(JET_errLogReadVerifyFailure,
                             "generation %08X does not continue generation %08X", g, g - 1);
            goto out;
        }
        /* A damaged block stops the replay with an error; what was applied
         * before it stays in the pool only, which the failed open discards. */
        err = loggen_scan(path, is_current, start_lsn, redo_record, &ctx, &hdr, &scan);
        if (err)
            goto out;
        res->last_gen = g;
        prev_hdr = hdr;
        prev_scan = scan;
        have_prev = 1;
        if (ctx.stopped) {
            res->stopped_at_time = 1;
            break;
        }
        if (is_current) {
            res->have_current = 1;
            res->cur_hdr = hdr;
            res->cur_scan = scan;
            break;
        }
    }
    if (have_prev) {
        res->last_hdr = prev_hdr;
        res->last_scan = prev_scan;
    }
    res->txns_applied = ctx.txns;
    res->unfinished = ctx.len != 0;
    res->last_commit_us = ctx.last_us;
    res->last_commit_lsn = ctx.last_lsn;
out:
    st->recovering = 0;
    free(ctx.buf);
    return err;
}
