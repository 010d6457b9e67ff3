/*
 * dbfile.c - jetsnap.edb: the header stored twice (format and rules in
 * store.h), the one write path of pages, untorn reads for outsiders (the
 * FUSE live view and backups), and the check of pages read raw from a file
 * against its written bound (the rule in page.h: zero is corruption where
 * a page is in use).
 *
 * Every page reaches the file through db_write_batch(), which holds the
 * page-range lock for writing over the pages it writes; readers of the raw
 * file (js_db_read, backup) hold it for reading, so neither ever sees a page
 * half-written by the other.  It writes the pages to the doublewrite buffer
 * (dwb.c) first, so a crash cannot leave one torn beyond repair.
 */
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define DB_EXTENT_BYTES (1u << 20)

void dbh_new_signature(uint8_t sig[JS_SIG_LEN])
{
    size_t got = 0;
    while (got < JS_SIG_LEN) {
        ssize_t n = getrandom(sig + got, JS_SIG_LEN - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    if (got < JS_SIG_LEN) {
        /* getrandom cannot fail on Linux >= 3.17 with a blocking pool; keep a
         * unique fallback anyway: time and address entropy. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t a = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20), b = (uint64_t)(uintptr_t)sig;
        memcpy(sig, &a, 8);
        memcpy(sig + 8, &b, 8);
    }
}

void dbh_sig_hex(const uint8_t sig[JS_SIG_LEN], char *out)
{
    for (int i = 0; i < JS_SIG_LEN; i++)
        sprintf(out + 2 * i, "%02x", sig[i]);
}

void dbh_encode(const db_header *h, uint8_t *page, uint32_t pgno)
{
    pg_init(page, h->page_size, pgno, PG_HEADER);
    uint8_t *p = page + PG_HDR_SIZE;
    memcpy(p, DBH_MAGIC, 8);
    pg_put32(p + 8, DBH_VERSION);
    pg_put32(p + 12, h->page_size);
    pg_put32(p + 16, h->state);
    pg_put32(p + 20, h->flags);
    memcpy(p + 24, h->db_sig, JS_SIG_LEN);
    memcpy(p + 40, h->log_sig, JS_SIG_LEN);
    pg_put64(p + 56, (uint64_t)h->created);
    pg_put64(p + 64, h->log_file_size);
    pg_put32(p + 72, h->full.gen_low);
    pg_put32(p + 76, h->full.gen_high);
    pg_put64(p + 80, (uint64_t)h->full.time);
    pg_put32(p + 88, h->inc.gen_low);
    pg_put32(p + 92, h->inc.gen_high);
    pg_put64(p + 96, (uint64_t)h->inc.time);
    pg_put32(p + 104, h->backup_gen_low);
    pg_put32(p + 108, h->backup_gen_high);
    pg_put64(p + 112, h->consistent_lsn);
    pg_put32(p + 120, h->valid_below);
    pg_seal(page, h->page_size, pgno);
}

static int dbh_decode(const uint8_t *page, db_header *h)
{
    const uint8_t *p = page + PG_HDR_SIZE;
    if (memcmp(p, DBH_MAGIC, 8) != 0 || pg_u32(p + 8) != DBH_VERSION)
        return 0;
    memset(h, 0, sizeof *h);
    h->page_size = pg_u32(p + 12);
    h->state = pg_u32(p + 16);
    h->flags = pg_u32(p + 20);
    memcpy(h->db_sig, p + 24, JS_SIG_LEN);
    memcpy(h->log_sig, p + 40, JS_SIG_LEN);
    h->created = (int64_t)pg_u64(p + 56);
    h->log_file_size = pg_u64(p + 64);
    h->full.gen_low = pg_u32(p + 72);
    h->full.gen_high = pg_u32(p + 76);
    h->full.time = (int64_t)pg_u64(p + 80);
    h->inc.gen_low = pg_u32(p + 88);
    h->inc.gen_high = pg_u32(p + 92);
    h->inc.time = (int64_t)pg_u64(p + 96);
    h->backup_gen_low = pg_u32(p + 104);
    h->backup_gen_high = pg_u32(p + 108);
    h->consistent_lsn = pg_u64(p + 112);
    h->valid_below = pg_u32(p + 120);
    return pg_size_valid(h->page_size);
}

JET_ERR dbh_read(int fd, const char *path, db_header *out)
{
    /* The page size is inside the header, so read the largest page size and
     * try each candidate size for each copy. */
    const uint32_t maxps = 32768;
    uint8_t *buf = malloc(2 * maxps);
    JET_ERR err = JET_errSuccess;
    if (!buf)
        return js_fail(JET_errOutOfMemory, "header buffer");
    size_t got = 0;
    err = os_pread(fd, path, buf, 2 * maxps, 0, &got);
    if (err)
        goto out;
    if (got < 8192 || memcmp(buf + PG_HDR_SIZE, DBH_MAGIC, 8) != 0) {
        /* Copy 0 may be damaged: accept a valid copy 1 at any page size. */
        int found = 0;
        for (uint32_t ps = 4096; ps <= maxps && !found; ps *= 2) {
            if (got >= 2 * (size_t)ps && pg_verify(buf + ps, ps, 1) == PG_OK && dbh_decode(buf + ps, out) &&
                out->page_size == ps)
                found = 1;
        }
        if (!found) {
            int magic1 = 0;
            for (uint32_t ps = 4096; ps <= maxps; ps *= 2)
                if (got >= 2 * (size_t)ps && !memcmp(buf + ps + PG_HDR_SIZE, DBH_MAGIC, 8))
                    magic1 = 1;
            err = magic1 ? JS_CORRUPT(JET_errReadVerifyFailure, "%s: both header copies fail their checksum", path)
                         : js_fail(JET_errInvalidDatabase, "%s: not a jetsnap database", path);
        }
        goto out;
    }
    uint32_t ps = pg_u32(buf + PG_HDR_SIZE + 12);
    if (!pg_size_valid(ps)) {
        err = JS_CORRUPT(JET_errReadVerifyFailure, "%s: header copy 0 has an invalid page size", path);
        goto out;
    }
    if (got >= ps && pg_verify(buf, ps, 0) == PG_OK && dbh_decode(buf, out))
        goto out;
    if (got >= 2 * (size_t)ps && pg_verify(buf + ps, ps, 1) == PG_OK && dbh_decode(buf + ps, out))
        goto out;
    err = JS_CORRUPT(JET_errReadVerifyFailure, "%s: both header copies fail their checksum", path);
out:
    free(buf);
    return err;
}

JET_ERR dbh_write(int fd, const char *path, const db_header *hdr)
{
    uint8_t *page = aligned_alloc(4096, hdr->page_size);
    JET_ERR err;
    if (!page)
        return js_fail(JET_errOutOfMemory, "header page");
    for (uint32_t copy = 0; copy < 2; copy++) {
        dbh_encode(hdr, page, copy);
        err = os_pwrite(fd, path, page, hdr->page_size, (uint64_t)copy * hdr->page_size);
        if (!err)
            err = os_fsync(fd, path);
        if (err)
            break;
    }
    free(page);
    return err;
}

JET_ERR db_write_batch(db_store *st, const uint32_t *pgnos, const uint8_t *pages, uint32_t n)
{
    JET_ERR err = JET_errSuccess;
    uint32_t ps = st->page_size, done = 0;
    if (!n)
        return JET_errSuccess;
    uint64_t end = (uint64_t)pgnos[n - 1] + 1;
    if (end > st->file_pages) {
        /* Grow in extents so the file does not fragment page by page. */
        uint64_t per = DB_EXTENT_BYTES / ps;
        uint64_t want = (end + per - 1) / per * per;
        err = os_allocate(st->fd, st->path, want * ps);
        if (err) {
            if (st->snap)
                ss_write_failed(st->snap, pgnos, pages, n);
            return err;
        }
        st->file_pages = want;
    }
    /* Copy-on-write for snapshots: the old images a snapshot still reads
     * here are durable in the store before the new ones land.  The
     * checkpoint saved most before its first batch (ss_cow_prepare); what
     * is left (pages whose LSN it could not yet tell, snapshots taken
     * since) is saved here for the whole batch at once, one fsync. */
    if (st->snap)
        ss_cow_begin(st->snap, st, pgnos, pages, n);
    /* No page is overwritten before its new image is durable in the
     * doublewrite buffer: a write torn by a crash is repaired from there. */
    err = dwb_write(st, pages, n);
    while (done < n && !err) {
        uint32_t j = done + 1;
        while (j < n && pgnos[j] == pgnos[j - 1] + 1)
            j++;
        int slot = rl_lock(&st->rl, pgnos[done], (uint64_t)pgnos[j - 1] + 1, 1);
        err = os_pwrite(st->fd, st->path, pages + (size_t)done * ps, (size_t)(j - done) * ps,
                        (uint64_t)pgnos[done] * ps);
        rl_unlock(&st->rl, slot);
        if (!err)
            done = j;
    }
    pool_written(&st->pool, pgnos, done);   /* landed: no longer "writing" for a take */
    if (st->snap)
        ss_cow_end(st->snap, pgnos, pages, n, done, err);
    return err;
}

JET_ERR db_read(db_store *st, uint64_t off, void *buf, size_t len, size_t *got)
{
    *got = 0;
    if (len == 0)
        return JET_errSuccess;
    uint64_t lo = off / st->page_size, hi = (off + len + st->page_size - 1) / st->page_size;
    int slot = rl_lock(&st->rl, lo, hi, 0);
    JET_ERR err = os_pread(st->fd, st->path, buf, len, off, got);
    rl_unlock(&st->rl, slot);
    return err;
}

JET_ERR db_check_pages(const uint8_t *buf, uint32_t page_size, uint32_t pgno, uint32_t n, uint32_t valid_below,
                       const char *file, uint64_t *nvalid)
{
    char why[64];
    for (uint32_t i = 0; i < n; i++) {
        int st = pg_check(buf + (size_t)i * page_size, page_size, pgno + i, valid_below, why, sizeof why);
        if (st == PG_BAD)
            return JS_CORRUPT(JET_errReadVerifyFailure, "page %u of %s: %s", pgno + i, file, why);
        if (st == PG_OK && nvalid)
            (*nvalid)++;
    }
    return JET_errSuccess;
}

JET_ERR db_verify_range(db_store *st, uint32_t lo, uint32_t hi)
{
    const uint32_t batch = 256, ps = st->page_size;
    JET_ERR err = JET_errSuccess;
    if (lo >= hi)
        return JET_errSuccess;
    uint8_t *buf = malloc((size_t)batch * ps);
    if (!buf)
        return js_fail(JET_errOutOfMemory, "page check buffer");
    for (uint32_t p = lo; p < hi && !err; p += batch) {
        uint32_t n = hi - p < batch ? hi - p : batch;
        size_t got = 0;
        err = os_pread(st->fd, st->path, buf, (size_t)n * ps, (uint64_t)p * ps, &got);
        if (err)
            break;
        if (got < (size_t)n * ps) {
            err = JS_CORRUPT(JET_errReadVerifyFailure, "page %u of %s: beyond the end of the file",
                             p + (uint32_t)(got / ps), st->path);
            break;
        }
        err = db_check_pages(buf, ps, p, n, hi, st->path, NULL);
    }
    free(buf);
    return err;
}
