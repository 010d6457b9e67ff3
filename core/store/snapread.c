/*
 * snapread.c - the snapshot store's other half (snapstore.c has the format
 * and the write side): deleting a snapshot, listing, reading an image
 * (the header from the snapshot's meta, each page from the store when
 * saved there, else from jetsnap.edb, untorn), and the note kept with it.
 * Locking as store.h says: ss->lock for reading across a read of the
 * database file, so the flusher cannot overwrite a page in between.
 */
#include "store/snapstore_int.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------- delete, list, read ---------------- */

/* After a delete: rewrite the index once it is mostly dead records (over
 * 64 KiB and four times what the live snapshots need), so it does not grow
 * with every snapshot ever taken between restarts.  A failure keeps the
 * old index (still valid): the next open compacts. */
static void maybe_compact(struct snapstore *ss)
{
    uint64_t live = 64;
    for (size_t i = 0; i < ss->nsnaps; i++) {
        const snap_entry *e = ss->snaps[i];
        if (!e->ready)
            return;   /* a take under way: its saves are only in the old index */
        live += 160 + ss_rec_len(24) * e->saved + 4 * (uint64_t)e->npend_list + e->note_len;
    }
    if (ss->idx_end > (64u << 10) && ss->idx_end > 4 * live)
        (void)ss_compact(ss);
}

JET_ERR ss_delete(struct snapstore *ss, const char *name)
{
    JET_ERR err = JET_errSuccess;
    uint8_t r[32];
    js_wrlock(&ss->lock);
    snap_entry *e = ss_find_name(ss, name);
    if (!e || !e->ready)
        err = js_fail(JET_errOSSnapshotInvalidSnapId, "no snapshot %s", name);
    else if (e->opens)
        err = js_fail(JET_errDatabaseInUse, "snapshot %s has a file open", name);
    else {
        err = ss_idx_append(ss, r, ss_enc_small(r, R_DELETE, e->id, 0));
        if (!err)
            err = os_fsync(ss->idx_fd, ss->idx_path);
        if (!err) {
            ss_entry_free(ss, e, 1);
            maybe_compact(ss);
        }
    }
    js_rwunlock(&ss->lock);
    return err;
}

static void entry_info(const snap_entry *e, ss_entry_info *out)
{
    out->id = e->id;
    out->meta = e->meta;
    out->pages_saved = e->saved;
    out->invalid = e->invalid;
    out->opens = e->opens;
}

JET_ERR ss_list(struct snapstore *ss, ss_entry_info **out, size_t *n)
{
    js_rdlock(&ss->lock);
    *out = calloc(ss->nsnaps ? ss->nsnaps : 1, sizeof **out);
    *n = 0;
    if (!*out) {
        js_rwunlock(&ss->lock);
        return js_fail(JET_errOutOfMemory, "snapshot list");
    }
    for (size_t i = 0; i < ss->nsnaps; i++)
        if (ss->snaps[i]->ready)
            entry_info(ss->snaps[i], &(*out)[(*n)++]);
    js_rwunlock(&ss->lock);
    return JET_errSuccess;
}

uint64_t ss_bytes_held(struct snapstore *ss)
{
    js_rdlock(&ss->lock);
    uint64_t b = ss->live_slots * ss->page_size;
    js_rwunlock(&ss->lock);
    return b;
}

JET_ERR ss_ref(struct snapstore *ss, const char *name, uint32_t *id, ss_entry_info *info)
{
    JET_ERR err = JET_errSuccess;
    js_wrlock(&ss->lock);
    snap_entry *e = ss_find_name(ss, name);
    if (!e || !e->ready)
        err = js_fail(JET_errOSSnapshotInvalidSnapId, "no snapshot %s", name);
    else {
        e->opens++;
        *id = e->id;
        if (info)
            entry_info(e, info);
    }
    js_rwunlock(&ss->lock);
    return err;
}

void ss_unref(struct snapstore *ss, uint32_t id)
{
    js_wrlock(&ss->lock);
    snap_entry *e = ss_find_id(ss, id);
    if (e && e->opens)
        e->opens--;
    js_rwunlock(&ss->lock);
}

/* Pages [p, p+n) of e into out, each from the store, the header or the
 * file; caller holds ss->lock (read).  Runs of pages saved in consecutive
 * slots, and runs still in the file, are each read in one pread. */
static JET_ERR read_pages(struct snapstore *ss, db_store *st, snap_entry *e, uint32_t p, uint32_t n, uint8_t *out)
{
    uint32_t ps = ss->page_size;
    JET_ERR err = JET_errSuccess;
    for (uint32_t i = 0; i < n && !err;) {
        uint32_t q = p + i, j = i + 1;
        uint8_t *dst = out + (size_t)i * ps;
        uint32_t slot = e->map[q];
        if (q < 2) {
            memcpy(dst, e->hdr_pages + (size_t)q * ps, ps);
        } else if (slot == SLOT_PENDING) {
            err = ss_lazy_read(ss, st, e, q, dst);   /* a lazy take's page, still in the pool */
        } else if (slot != SLOT_NONE) {
            while (j < n && e->map[p + j] == slot + (j - i) && e->map[p + j] != SLOT_PENDING)
                j++;
            err = os_pread(ss->pages_fd, ss->pages_path, dst, (size_t)(j - i) * ps, (uint64_t)slot * ps, NULL);
            for (uint32_t k = i; k < j && !err; k++)
                if (pg_verify(out + (size_t)k * ps, ps, p + k) != PG_OK)
                    err = JS_CORRUPT(JET_errReadVerifyFailure,
                                     "snapshot %s: saved image of page %u fails its checksum", e->meta.name, p + k);
        } else {
            /* A run of pages still in the file, read untorn in one go. */
            while (j < n && e->map[p + j] == SLOT_NONE)
                j++;
            size_t got = 0, want = (size_t)(j - i) * ps;
            err = db_read(st, (uint64_t)q * ps, dst, want, &got);
            if (!err && got < want)
                memset(dst + got, 0, want - got);
        }
        i = j;
    }
    return err;
}

/* Read-ahead for a reader of the image (tar, cp): when a read enters a new
 * RA_CHUNK of the image, the next two chunks are asked for, from
 * jetsnap.edb (unless edb is 0) and, for the pages saved in the store,
 * from store.pages (slots near each other in one advice): a cold reader
 * then finds them in the page cache instead of waiting on the disk page by
 * page.  Advice only: its result does not matter (and there is no fault to
 * inject, so not through os.c).  ss->lock held for reading.
 *
 * ss_read_pieces with a descriptor of its own (a snapshot handle's) does
 * not advise jetsnap.edb: the kernel's own read-ahead of that descriptor
 * (sequential, js_snapshot_open) reads it in large folios and large
 * requests, where WILLNEED fills the cache page by page.  Measured cold
 * (tar of a 1 GiB snapshot, 72 MB of it in the store, vda at
 * read_ahead_kb 8192): the daemon's CPU 380-540 -> 210-310 ms, disk
 * requests 0.9-1.3 MiB -> 1.7-1.8 MiB on average, the tar 1.09-1.30 ->
 * 1.01-1.04 s.  store.pages is still advised: its slots are scattered. */
#define RA_CHUNK (4u << 20)

static void read_ahead(struct snapstore *ss, db_store *st, const snap_entry *e, uint64_t off, size_t len, int edb)
{
    uint32_t ps = ss->page_size;
    uint64_t size = (uint64_t)e->meta.pages * ps, c = off / RA_CHUNK, from, to;
    if (off % RA_CHUNK >= len && off != 0)
        return;   /* not the first read of its chunk */
    from = off == 0 ? 0 : (c + 1) * RA_CHUNK;
    to = (c + 3) * RA_CHUNK < size ? (c + 3) * RA_CHUNK : size;
    if (from >= to)
        return;
    if (edb)
        (void)posix_fadvise(st->fd, (off_t)from, (off_t)(to - from), POSIX_FADV_WILLNEED);
    uint64_t lo = 0, hi = 0;   /* a run of slots [lo, hi) */
    for (uint64_t p = from / ps; p < to / ps; p++) {
        uint32_t slot = e->map[p];
        if (slot == SLOT_NONE || slot == SLOT_PENDING)
            continue;
        if (hi && slot >= lo && slot <= hi + 8) {
            hi = slot + 1 > hi ? slot + 1 : hi;
            continue;
        }
        if (hi)
            (void)posix_fadvise(ss->pages_fd, (off_t)(lo * ps), (off_t)((hi - lo) * ps), POSIX_FADV_WILLNEED);
        lo = slot;
        hi = (uint64_t)slot + 1;
    }
    if (hi)
        (void)posix_fadvise(ss->pages_fd, (off_t)(lo * ps), (off_t)((hi - lo) * ps), POSIX_FADV_WILLNEED);
}

/* Snapshot id, to be read (ss->lock held): gone and invalid ones fail. */
static JET_ERR readable_entry(struct snapstore *ss, uint32_t id, snap_entry **out)
{
    snap_entry *e = ss_find_id(ss, id);
    if (!e)
        return js_fail(JET_errOSSnapshotInvalidSnapId, "snapshot %u is gone", id);
    if (e->invalid)
        return js_fail(JET_errDiskIO, "snapshot %s is invalid: %s (%d)", e->meta.name, js_errname(e->invalid),
                       e->invalid);
    *out = e;
    return JET_errSuccess;
}

JET_ERR ss_read(struct snapstore *ss, db_store *st, uint32_t id, uint64_t off, void *buf, size_t len, size_t *got)
{
    uint32_t ps = ss->page_size;
    JET_ERR err = JET_errSuccess;
    uint8_t *tmp = NULL;
    *got = 0;
    js_rdlock(&ss->lock);
    snap_entry *e = NULL;
    err = readable_entry(ss, id, &e);
    if (err)
        goto out;
    uint64_t size = (uint64_t)e->meta.pages * ps;
    if (off >= size)
        goto out;
    if (len > size - off)
        len = (size_t)(size - off);
    read_ahead(ss, st, e, off, len, 1);
    uint32_t lo = (uint32_t)(off / ps), hi = (uint32_t)((off + len + ps - 1) / ps);
    if (off % ps == 0 && len % ps == 0) {
        /* Whole pages (the kernel's reads): straight into buf. */
        err = read_pages(ss, st, e, lo, hi - lo, buf);
        if (!err)
            *got = len;
        goto out;
    }
    const uint32_t batch = 128;
    tmp = malloc((size_t)batch * ps);
    if (!tmp) {
        err = js_fail(JET_errOutOfMemory, "snapshot read");
        goto out;
    }
    for (uint32_t p = lo; p < hi && !err; p += batch) {
        uint32_t n = hi - p < batch ? hi - p : batch;
        err = read_pages(ss, st, e, p, n, tmp);
        if (err)
            break;
        uint64_t base = (uint64_t)p * ps, from = off > base ? off - base : 0;
        uint64_t to = (uint64_t)n * ps;
        if (base + to > off + len)
            to = off + len - base;
        memcpy((uint8_t *)buf + *got, tmp + from, (size_t)(to - from));
        *got += (size_t)(to - from);
    }
out:
    js_rwunlock(&ss->lock);
    free(tmp);
    return err;
}

/* ss_read_pieces: one piece more, merged with the last when it continues
 * it (the same memory, or the same file range). */
static JET_ERR add_piece(js_piece *pc, size_t cap, size_t *n, int fd, uint64_t off, const uint8_t *mem, size_t len)
{
    if (*n) {
        js_piece *l = &pc[*n - 1];
        if (fd < 0 && l->fd < 0 && (const uint8_t *)l->mem + l->len == mem) {
            l->len += len;
            return JET_errSuccess;
        }
        if (fd >= 0 && l->fd == fd && l->off + l->len == off) {
            l->len += len;
            return JET_errSuccess;
        }
    }
    if (*n == cap)
        return js_fail(JET_errInvalidParameter, "snapshot read: more than %zu pieces", cap);
    pc[(*n)++] = (js_piece){ .fd = fd, .off = off, .mem = mem, .len = len };
    return JET_errSuccess;
}

/* Whether page q of e is read straight from the file (a whole page of it
 * there: a page past its end is zeros, served from memory). */
static int in_file(const snap_entry *e, uint32_t q, uint32_t ps, uint64_t fsize)
{
    return q >= 2 && e->map[q] == SLOT_NONE && ((uint64_t)q + 1) * ps <= fsize;
}

JET_ERR ss_read_pieces(struct snapstore *ss, db_store *st, int rfd, uint32_t id, uint64_t off, size_t len,
                       uint8_t *scratch, js_piece *pc, size_t cap, js_emit_fn emit, void *ctx)
{
    uint32_t ps = ss->page_size;
    JET_ERR err = JET_errSuccess;
    size_t n = 0;
    int files = 0;
    js_rdlock(&ss->lock);
    snap_entry *e = NULL;
    err = readable_entry(ss, id, &e);
    if (err)
        goto out;
    uint64_t size = (uint64_t)e->meta.pages * ps, fsize = 0;
    len = off >= size ? 0 : len > size - off ? (size_t)(size - off) : len;
    uint32_t lo = (uint32_t)(off / ps), hi = (uint32_t)((off + len + ps - 1) / ps);
    if (len) {
        read_ahead(ss, st, e, off, len, rfd < 0);
        err = os_size(st->fd, st->path, &fsize);   /* only grows: a page below it stays there */
    }
    for (uint32_t i = 0; i < hi - lo && !err;) {
        uint32_t j = i + 1;
        int file = in_file(e, lo + i, ps, fsize);
        while (j < hi - lo && in_file(e, lo + j, ps, fsize) == file)
            j++;
        uint64_t from = (uint64_t)(lo + i) * ps, to = (uint64_t)(lo + j) * ps;
        from = from < off ? off : from;
        to = to > off + len ? off + len : to;
        if (file) {
            files = 1;
            err = add_piece(pc, cap, &n, rfd >= 0 ? rfd : st->fd, from, NULL, (size_t)(to - from));
        } else {
            err = read_pages(ss, st, e, lo + i, j - i, scratch + (size_t)i * ps);
            if (!err)
                err = add_piece(pc, cap, &n, -1, 0, scratch + (from - (uint64_t)lo * ps), (size_t)(to - from));
        }
        i = j;
    }
    if (!err) {
        /* The file's pages stay as they are until emit has consumed them:
         * no checkpoint writes over them (range lock), and none saves and
         * then overwrites a page this snapshot reads there (ss->lock). */
        int slot = files ? rl_lock(&st->rl, lo, hi, 0) : -1;
        err = emit(ctx, pc, n);
        if (slot >= 0)
            rl_unlock(&st->rl, slot);
    }
out:
    js_rwunlock(&ss->lock);
    return err;
}

JET_ERR ss_note_set(struct snapstore *ss, uint32_t id, const void *data, uint32_t len)
{
    JET_ERR err = JET_errSuccess;
    js_wrlock(&ss->lock);
    snap_entry *e = ss_find_id(ss, id);
    size_t rl = ss_rec_len(8 + (size_t)len);
    uint8_t *r = calloc(1, rl), *copy = malloc(len ? len : 1);
    if (!e)
        err = js_fail(JET_errOSSnapshotInvalidSnapId, "snapshot %u is gone", id);
    else if (!r || !copy)
        err = js_fail(JET_errOutOfMemory, "snapshot note");
    if (!err) {
        pg_put32(r + 12, id);
        pg_put32(r + 16, len);
        memcpy(r + 20, data, len);
        ss_rec_seal(r, R_NOTE, rl);
        err = ss_idx_append(ss, r, rl);
        if (!err)
            err = os_fsync(ss->idx_fd, ss->idx_path);
    }
    if (!err) {
        memcpy(copy, data, len);
        free(e->note);
        e->note = copy;
        e->note_len = len;
        copy = NULL;
    }
    js_rwunlock(&ss->lock);
    free(r);
    free(copy);
    return err;
}

JET_ERR ss_note_get(struct snapstore *ss, uint32_t id, void *buf, uint32_t cap, uint32_t *len)
{
    JET_ERR err = JET_errSuccess;
    js_rdlock(&ss->lock);
    snap_entry *e = ss_find_id(ss, id);
    *len = 0;
    if (!e)
        err = js_fail(JET_errOSSnapshotInvalidSnapId, "snapshot %u is gone", id);
    else if (e->note) {
        *len = e->note_len < cap ? e->note_len : cap;
        memcpy(buf, e->note, *len);
    }
    js_rwunlock(&ss->lock);
    return err;
}
