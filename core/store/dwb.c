/*
 * dwb.c - the doublewrite buffer, DBDIR/jetsnap.dwb: what makes a page torn
 * by a crash in the middle of its write repairable without logging pages
 * whole.
 *
 * A checkpoint overwrites pages of jetsnap.edb in place, and a crash (power,
 * kernel) in the middle of an 8 KiB write can leave a page half old, half
 * new: it fails its checksum and no log record can be applied to it.  The
 * log used to carry a full image of every page's first change after each
 * checkpoint for this (PostgreSQL's full_page_writes), on the commit path:
 * measured through the Redis front with random 100-byte SETs, 2.5-3.5 KB of
 * log per SET once checkpoints ran, against about 0.4 KB of page deltas.
 * Instead, like InnoDB's doublewrite buffer, db_write_batch first writes
 * the batch's sealed images here and fsyncs, and only then writes them in
 * place.  A torn page in jetsnap.edb then has a whole image here, and redo
 * brings it forward from there.
 *
 * Format, little-endian: slots of page_size bytes, slot k at k * page_size,
 * DWB_SLOTS of them allocated when the instance starts.
 *   Slot 0, the header:
 *     0 u32 crc (CRC32C of bytes 4..63)  4 "JSNAPDWB"  12 u32 version (1)
 *    16 u32 page_size  20 u8[16] db_signature
 *    36 u64 synced: every batch with a sequence number up to it is durable
 *       in jetsnap.edb (rewritten, and fsynced, by db_sync)
 *   From slot 1, batches, each a record slot then its n images:
 *     0 u32 crc (CRC32C of bytes 4..51)  4 "JSNAPDWR"  12 u64 sequence
 *    20 u32 n  24 u32 CRC32C of the n image slots  28 u8[16] db_signature
 *    44 u32 zero  48 u32 zero  52..page_size-1 zero
 *   followed by n slots, each one page image exactly as written to
 *   jetsnap.edb: its own header, page number and checksum (page.h).
 *   The images' CRC ties the record to them: after a crash that wrote the
 *   record but not all its images, the slots may hold valid images of an
 *   older batch, which must not pass for this one's.
 * Batches are appended from slot 1 with increasing sequence numbers.  When
 * the next would not fit, the checkpoint first calls db_sync, which fsyncs
 * jetsnap.edb, records the last sequence as synced, and appending starts
 * again at slot 1; a checkpoint's own fsync goes through db_sync too.  So
 * the batches after "synced" are exactly those whose in-place writes may
 * not be durable: the only ones a crash can have torn pages of.  A file
 * found with no valid header of ours is cleared before use, so no record
 * of an earlier life can join a new chain of sequence numbers.
 *
 * Repair (dwb_repair, at start before recovery) reads the batches from
 * slot 1 while their records are valid (with their images' CRC and this
 * database's signature) and their sequence numbers follow "synced" one by
 * one; every image there whose page in jetsnap.edb fails its checksum is
 * written over it.  jetsnap.edb is then fsynced whenever such a batch was
 * found, repaired or not: dwb_start records them all as synced next, and
 * their in-place writes may still be only in the page cache.  An image is never older than the
 * checkpoint's redo point (copied after it) nor newer than the durable log
 * (db_write_batch runs after the WAL flush), so redo from edb.chk completes
 * it.  Images of older batches, which may be older than the page's last
 * durable write, are never used: a page damaged otherwise stays an error.
 * A file of another database (signature) or page size is not read; a
 * restore starts in an empty directory.
 */
#include "store/store.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DWB_MAGIC "JSNAPDWB"
#define DWB_REC_MAGIC "JSNAPDWR"
#define DWB_VERSION 1u
#define DWB_SLOTS 516u   /* the header, and two checkpoint batches of 256 pages with their records */

static void dwb_path(const db_store *st, char *out, size_t cap)
{
    const char *slash = strrchr(st->path, '/');
    if (slash)
        snprintf(out, cap, "%.*s/%s", (int)(slash - st->path), st->path, JS_DWB_FILE);
    else
        snprintf(out, cap, "%s", JS_DWB_FILE);
}

/* Slot 0 (or a batch record, rec != 0, of n images whose CRC32C is
 * images_crc) into b, page_size bytes. */
static void dwb_encode(const db_store *st, uint8_t *b, int rec, uint64_t seq, uint32_t n, uint32_t images_crc)
{
    memset(b, 0, st->page_size);
    if (rec) {
        memcpy(b + 4, DWB_REC_MAGIC, 8);
        pg_put64(b + 12, seq);
        pg_put32(b + 20, n);
        pg_put32(b + 24, images_crc);
        memcpy(b + 28, st->dwb_sig, JS_SIG_LEN);
        pg_put32(b, js_crc32c(0, b + 4, 48));
        return;
    }
    memcpy(b + 4, DWB_MAGIC, 8);
    pg_put32(b + 12, DWB_VERSION);
    pg_put32(b + 16, st->page_size);
    memcpy(b + 20, st->dwb_sig, JS_SIG_LEN);
    pg_put64(b + 36, seq);
    pg_put32(b, js_crc32c(0, b + 4, 60));
}

static int dwb_header_ok(uint32_t ps, const uint8_t *sig, const uint8_t *b)
{
    return !memcmp(b + 4, DWB_MAGIC, 8) && pg_u32(b) == js_crc32c(0, b + 4, 60) &&
           pg_u32(b + 12) == DWB_VERSION && pg_u32(b + 16) == ps && !memcmp(b + 20, sig, JS_SIG_LEN);
}

static int dwb_record_ok(const uint8_t *sig, const uint8_t *b)
{
    return !memcmp(b + 4, DWB_REC_MAGIC, 8) && pg_u32(b) == js_crc32c(0, b + 4, 48) &&
           !memcmp(b + 28, sig, JS_SIG_LEN);
}

/* Rewrite slot 0 with synced and fsync the file. */
static JET_ERR dwb_write_header(db_store *st, uint64_t synced)
{
    char path[PATH_MAX];
    dwb_path(st, path, sizeof path);
    dwb_encode(st, st->dwb_slot, 0, synced, 0, 0);
    JET_ERR err = os_pwrite(st->dwb_fd, path, st->dwb_slot, st->page_size, 0);
    if (!err)
        err = os_fsync(st->dwb_fd, path);
    return err;
}

JET_ERR dwb_start(db_store *st)
{
    char path[PATH_MAX];
    int created = 0;
    dwb_path(st, path, sizeof path);
    st->dwb_slot = malloc(st->page_size);
    if (!st->dwb_slot)
        return js_fail(JET_errOutOfMemory, "doublewrite buffer");
    JET_ERR err = os_open(path, O_RDWR, 0, &st->dwb_fd);
    if (err == JET_errFileNotFound) {
        created = 1;
        err = os_open(path, O_RDWR | O_CREAT, 0600, &st->dwb_fd);
    }
    /* Not ours (torn before its first sync, or another database's):
     * emptied, so none of its records can pass for a batch of ours later. */
    if (!err && !created && !st->dwb_ours)
        err = os_truncate(st->dwb_fd, path, 0);
    /* Allocated now, so a checkpoint never needs space for it; on a full
     * disk it grows with its first batches instead, which may then fail
     * for lack of space like any other checkpoint write (and be retried). */
    if (!err) {
        err = os_allocate(st->dwb_fd, path, (uint64_t)DWB_SLOTS * st->page_size);
        if (err_is_space(err))
            err = JET_errSuccess;
    }
    if (!err)
        err = dwb_write_header(st, st->dwb_seq);
    if (!err && created) {
        char dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        err = os_fsync_dir(slash ? (*slash = '\0', dir) : ".");
    }
    if (err) {
        dwb_close(st);
        return err;
    }
    st->dwb_synced = st->dwb_seq;
    st->dwb_next = 1;
    return JET_errSuccess;
}

int dwb_full(const db_store *st, uint32_t n)
{
    return st->dwb_fd >= 0 && st->dwb_next > 1 && st->dwb_next + 1 + n > DWB_SLOTS;
}

JET_ERR dwb_write(db_store *st, const uint8_t *pages, uint32_t n)
{
    uint32_t ps = st->page_size;
    JET_ERR err = JET_errSuccess;
    if (st->dwb_fd < 0)
        return JET_errSuccess;   /* not started: an instance being restored, whose crash is a failed restore */
    if (dwb_full(st, n))
        return js_fail(JET_errInvalidParameter, "doublewrite buffer full: db_sync first");
    char path[PATH_MAX];
    dwb_path(st, path, sizeof path);
    dwb_encode(st, st->dwb_slot, 1, st->dwb_seq + 1, n, js_crc32c(0, pages, (size_t)n * ps));
    err = os_pwrite(st->dwb_fd, path, st->dwb_slot, ps, (uint64_t)st->dwb_next * ps);
    if (!err)
        err = os_pwrite(st->dwb_fd, path, pages, (size_t)n * ps, (uint64_t)(st->dwb_next + 1) * ps);
    if (!err)
        err = os_fsync(st->dwb_fd, path);
    if (!err) {
        st->dwb_seq++;
        st->dwb_next += 1 + n;
    }
    return err;
}

JET_ERR db_sync(db_store *st)
{
    JET_ERR err = os_fsync(st->fd, st->path);
    if (err || st->dwb_fd < 0 || st->dwb_synced == st->dwb_seq)
        return err;
    err = dwb_write_header(st, st->dwb_seq);
    if (!err) {
        st->dwb_synced = st->dwb_seq;
        st->dwb_next = 1;
    }
    return err;
}

/* Read the n images of the batch whose record is at slot s into *imgs
 * (grown as needed); 1 when they are all there and match the record's
 * CRC, 0 when the batch was never written whole. */
static int dwb_read_batch(uint32_t ps, int fd, const char *path, uint64_t s, const uint8_t *rec, uint8_t **imgs,
                          size_t *cap, JET_ERR *err)
{
    size_t len = (size_t)pg_u32(rec + 20) * ps, got = 0;
    if (len > *cap) {
        uint8_t *b = realloc(*imgs, len);
        if (!b) {
            *err = js_fail(JET_errOutOfMemory, "doublewrite buffer");
            return 0;
        }
        *imgs = b;
        *cap = len;
    }
    *err = os_pread(fd, path, *imgs, len, (s + 1) * ps, &got);
    return !*err && got == len && js_crc32c(0, *imgs, len) == pg_u32(rec + 24);
}

JET_ERR dwb_scan(const char *path, uint32_t ps, const uint8_t sig[JS_SIG_LEN], dwb_image_fn fn, void *ctx,
                 dwb_scan_result *res)
{
    int fd = -1;
    uint8_t *slot = NULL, *imgs = NULL;
    uint64_t size = 0, s = 1;
    size_t got = 0, cap = 0;
    memset(res, 0, sizeof *res);
    JET_ERR err = os_open(path, O_RDONLY, 0, &fd);
    if (err == JET_errFileNotFound) {
        js_errclear();
        return JET_errSuccess;   /* never started here: nothing written since a sync */
    }
    slot = malloc(ps);
    if (!err && !slot)
        err = js_fail(JET_errOutOfMemory, "doublewrite buffer");
    if (!err)
        err = os_size(fd, path, &size);
    if (!err)
        err = os_pread(fd, path, slot, ps, 0, &got);
    if (err || got < ps || !dwb_header_ok(ps, sig, slot))
        goto out;   /* new, torn before its first sync, or another database's: nothing of ours */
    res->ours = 1;
    res->last_seq = pg_u64(slot + 36);
    while (!err && (s + 1) * ps <= size) {
        err = os_pread(fd, path, slot, ps, s * ps, &got);
        if (err || got < ps || !dwb_record_ok(sig, slot) || pg_u64(slot + 12) != res->last_seq + 1 ||
            !dwb_read_batch(ps, fd, path, s, slot, &imgs, &cap, &err))
            break;   /* the end of the batches written whole since the last sync */
        uint32_t n = pg_u32(slot + 20);
        res->last_seq++;
        res->batches++;
        for (uint32_t i = 0; i < n && !err; i++) {
            const uint8_t *img = imgs + (size_t)i * ps;
            uint32_t pgno = pg_pgno(img);
            if (pg_verify(img, ps, pgno) == PG_OK)
                err = fn(ctx, img, pgno);
        }
        s += 1 + n;
    }
out:
    free(imgs);
    free(slot);
    os_close(fd);
    return err;
}

/* dwb_repair's dwb_image_fn: the image over its page in jetsnap.edb when
 * that one fails its checksum. */
struct repair_ctx {
    db_store *st;
    uint8_t *page;
    uint32_t repaired, first;
};

static JET_ERR repair_page(void *arg, const uint8_t *image, uint32_t pgno)
{
    struct repair_ctx *c = arg;
    db_store *st = c->st;
    uint32_t ps = st->page_size;
    size_t got = 0;
    uint64_t off = (uint64_t)pgno * ps;
    if (pgno >= st->file_pages)
        return JET_errSuccess;
    JET_ERR err = os_pread(st->fd, st->path, c->page, ps, off, &got);
    if (err || (got == ps && pg_verify(c->page, ps, pgno) != PG_BAD))
        return err;
    err = os_pwrite(st->fd, st->path, image, ps, off);
    if (!err && c->repaired++ == 0)
        c->first = pgno;
    return err;
}

JET_ERR dwb_repair(db_store *st, uint32_t *repaired, uint32_t *first)
{
    char path[PATH_MAX];
    struct repair_ctx c = { .st = st, .page = malloc(st->page_size) };
    dwb_scan_result res;
    JET_ERR err = c.page ? JET_errSuccess : js_fail(JET_errOutOfMemory, "doublewrite buffer repair");
    dwb_path(st, path, sizeof path);
    if (!err)
        err = dwb_scan(path, st->page_size, st->dwb_sig, repair_page, &c, &res);
    if (!err) {
        st->dwb_ours = res.ours;
        st->dwb_seq = res.last_seq;
    }
    if (!err && res.batches)
        err = os_fsync(st->fd, st->path);
    free(c.page);
    *repaired = c.repaired;
    *first = c.first;
    return err;
}

void dwb_close(db_store *st)
{
    os_close(st->dwb_fd);
    st->dwb_fd = -1;
    free(st->dwb_slot);
    st->dwb_slot = NULL;
}
