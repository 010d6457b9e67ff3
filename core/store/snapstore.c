/*
 * snapstore.c - the snapshot store: the old page images copy-on-write
 * snapshots read (store.h, "the snapshot store"), kept in DBDIR/snapshots/
 * so they survive restarts and crashes, each saved once however many
 * snapshots share it.
 *
 * Two files, little-endian throughout.
 *
 * snapshots/store.pages: slots of page_size bytes; slot k at k * page_size.
 *   Slot 0 is the file's header:
 *     0 u32 crc (CRC32C of bytes 4..page_size-1)  4 "JSNAPSPG"
 *    12 u32 version (1)  16 u32 page_size  20 u8[16] db_signature
 *   Slot k >= 1 holds one page image exactly as jetsnap.edb held it: its own
 *   page header and checksum, the page number mixed in (page.h).  A freed
 *   slot is punched out (os_punch_hole) and reused.
 *
 * snapshots/store.idx: the index, a journal of records appended in order:
 *     0 u32 crc (CRC32C of bytes 4..len-1)  4 u16 type  6 u16 zero
 *     8 u32 len (whole record, a multiple of 8)  12 payload, zero padded
 *   type 1 HEADER (first record): 12 "JSNAPSIX" 20 u32 version (1)
 *     24 u32 page_size 28 u8[16] db_signature 44 u32 next id (ids, and
 *     so the mount's inode numbers, are never reused)
 *   type 2 CREATE (a snapshot became durable): 12 u32 id 16 u32 pages
 *     20 u64 log_position 28 i64 created (ms) 36 i64 last_commit_time (ms)
 *     44 u8[16] the image's log_signature 60 u64 log_file_size
 *     68 u32 header flags 72 i64 database created (s) 80 u8 name length
 *     81 name
 *   type 3 MAP (an image saved): 12 u64 slot 20 u32 pgno 24 u32 CRC32C of
 *     the image 28 u32 count 32 u32 ids[count]: the snapshots reading it
 *   type 4 INVALID: 12 u32 id 16 i32 the error
 *   type 5 DELETE: 12 u32 id
 *   type 6 NOTE (replaces the previous one): 12 u32 id 16 u32 n 20 bytes[n]
 *   type 7 PEND (a lazy take: pages whose version at S is still in the pool
 *     or the log, snaplazy.c): 12 u32 id 16 u32 n 20 u32 pgnos[n]; a MAP
 *     of the same snapshot and page, in any order, overrides it
 * The header's version is 2 since PEND records exist; version 1 stores
 * (no PEND) open as before, a version above 2 is refused.
 * Open reads records until the first that fails its CRC or runs past the
 * end (a torn tail), then applies them: a MAP counts only for ids with a
 * CREATE and no DELETE (a MAP may precede its CREATE: images saved while a
 * snapshot was being taken).  It then rewrites the index compacted (temp,
 * fsync, rename, fsync dir) and punches out the slots no snapshot reads.
 *
 * Durability order of a save (DESIGN section 7): image into its slot, MAP
 * record, fsync of both files, and only then the database write; so after a
 * crash every page a snapshot lacks in the store is still in jetsnap.edb.
 * Recovery never needs the store.  A checkpoint does this once for all its
 * pages before its first batch (ss_cow_prepare, for the pages whose
 * version in the pool is already at or after a snapshot's S), so its
 * batches find them saved and fsync the store only for what is left.
 *
 * Which image a snapshot gets.  When a write of page P with an LSN at or
 * after S reaches db_write_batch and the snapshot has no image of P yet,
 * its image is the one before that write: normally what jetsnap.edb holds
 * (pages dirty or being written at S are pending, snaplazy.c, or without
 * a log were copied at take; a write with an LSN before S
 * brings the snapshot's own version and saves nothing).  One exception: a
 * write that failed (a checkpoint out of space) leaves the file older than
 * the pool, and the pool holds the page clean for a moment before the
 * checkpoint marks it dirty again; a take in that moment neither captures
 * it nor finds it in the file.  So the store keeps, in memory, the image of
 * every failed write ("unwritten", until a write of that page succeeds),
 * and a save uses it instead of the file's when its LSN is before S and
 * newer than the file's (or the file's page fails its checksum: torn by
 * the failed write).  Nothing needs it after a restart: the pool is gone,
 * and every snapshot's pages were decided while the instance ran.  Its
 * size is that of the failed writes not yet retried (a checkpoint batch
 * each, at most the pool's dirty pages); if it cannot grow, take refuses
 * with JET_errOutOfMemory until the instance is reopened.
 */
#include "store/snapstore_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---------------- records ---------------- */

size_t ss_rec_len(size_t payload)
{
    return (12 + payload + 7) & ~(size_t)7;
}

void ss_rec_seal(uint8_t *r, int type, size_t len)
{
    pg_put16(r + 4, (uint16_t)type);
    pg_put16(r + 6, 0);
    pg_put32(r + 8, (uint32_t)len);
    pg_put32(r, js_crc32c(0, r + 4, len - 4));
}

JET_ERR ss_idx_append(struct snapstore *ss, const uint8_t *r, size_t len)
{
    JET_ERR err = os_pwrite(ss->idx_fd, ss->idx_path, r, len, ss->idx_end);
    if (!err)
        ss->idx_end += len;
    return err;
}

size_t ss_enc_create(const snap_entry *e, uint8_t *r)
{
    size_t nl = strlen(e->meta.name), len = ss_rec_len(69 + nl);
    memset(r, 0, len);
    pg_put32(r + 12, e->id);
    pg_put32(r + 16, e->meta.pages);
    pg_put64(r + 20, e->meta.log_position);
    pg_put64(r + 28, (uint64_t)e->meta.created);
    pg_put64(r + 36, (uint64_t)e->meta.last_commit_time);
    memcpy(r + 44, e->meta.hdr.log_sig, JS_SIG_LEN);
    pg_put64(r + 60, e->meta.hdr.log_file_size);
    pg_put32(r + 68, e->meta.hdr.flags);
    pg_put64(r + 72, (uint64_t)e->meta.hdr.created);
    r[80] = (uint8_t)nl;
    memcpy(r + 81, e->meta.name, nl);
    ss_rec_seal(r, R_CREATE, len);
    return len;
}

size_t ss_enc_small(uint8_t *r, int type, uint32_t a, uint32_t b)
{
    size_t len = ss_rec_len(8);
    memset(r, 0, len);
    pg_put32(r + 12, a);
    pg_put32(r + 16, b);
    ss_rec_seal(r, type, len);
    return len;
}

/* ---------------- entries ---------------- */

snap_entry *ss_find_id(struct snapstore *ss, uint32_t id)
{
    for (size_t i = 0; i < ss->nsnaps; i++)
        if (ss->snaps[i]->id == id)
            return ss->snaps[i];
    return NULL;
}

snap_entry *ss_find_name(struct snapstore *ss, const char *name)
{
    for (size_t i = 0; i < ss->nsnaps; i++)
        if (!strcmp(ss->snaps[i]->meta.name, name))
            return ss->snaps[i];
    return NULL;
}

static void image_header(struct snapstore *ss, snap_entry *e)
{
    db_header *h = &e->meta.hdr;
    h->page_size = ss->page_size;
    h->state = JS_DB_CLEAN_SHUTDOWN;
    memcpy(h->db_sig, ss->db_sig, JS_SIG_LEN);
    h->flags &= DBH_CIRCULAR;
    memset(&h->full, 0, sizeof h->full);
    memset(&h->inc, 0, sizeof h->inc);
    h->backup_gen_low = h->backup_gen_high = 0;
    h->consistent_lsn = 0;
    h->valid_below = e->meta.pages;
    dbh_encode(h, e->hdr_pages, 0);
    dbh_encode(h, e->hdr_pages + ss->page_size, 1);
}

snap_entry *ss_entry_new(struct snapstore *ss, uint32_t id, const ss_meta *m)
{
    snap_entry *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->map = calloc(m->pages ? m->pages : 1, sizeof *e->map);
    if (!e->map) {
        free(e);
        return NULL;
    }
    e->id = id;
    e->meta = *m;
    image_header(ss, e);
    js_mutex_lock(&ss->cap_lock);   /* the array: ss_before_change walks it */
    if (ss->nsnaps == ss->snaps_cap) {
        size_t cap = ss->snaps_cap ? 2 * ss->snaps_cap : 8;
        snap_entry **n = realloc(ss->snaps, cap * sizeof *n);
        if (!n) {
            js_mutex_unlock(&ss->cap_lock);
            free(e->map);
            free(e);
            return NULL;
        }
        ss->snaps = n;
        ss->snaps_cap = cap;
    }
    ss->snaps[ss->nsnaps++] = e;
    js_mutex_unlock(&ss->cap_lock);
    return e;
}

static void slot_release(struct snapstore *ss, uint32_t slot)
{
    if (slot == SLOT_NONE || slot == SLOT_PENDING || slot >= ss->nslots || !ss->refs[slot])
        return;
    if (--ss->refs[slot])
        return;
    ss->live_slots--;
    /* A failed punch or push only keeps space until the next open. */
    (void)os_punch_hole(ss->pages_fd, ss->pages_path, (uint64_t)slot * ss->page_size, ss->page_size);
    if (ss->nfree == ss->free_cap) {
        size_t cap = ss->free_cap ? 2 * ss->free_cap : 64;
        uint32_t *n = realloc(ss->free_slots, cap * sizeof *n);
        if (!n)
            return;
        ss->free_slots = n;
        ss->free_cap = cap;
    }
    ss->free_slots[ss->nfree++] = slot;
}

/* Drop e from memory; release: its images are freed too (a delete), else
 * they stay in the files (close). */
void ss_entry_free(struct snapstore *ss, snap_entry *e, int release)
{
    for (uint32_t p = 0; release && p < e->meta.pages; p++)
        slot_release(ss, e->map[p]);
    js_mutex_lock(&ss->cap_lock);
    ss_lazy_drop(ss, e);
    for (size_t i = 0; i < ss->nsnaps; i++)
        if (ss->snaps[i] == e) {
            ss->snaps[i] = ss->snaps[--ss->nsnaps];
            break;
        }
    js_mutex_unlock(&ss->cap_lock);
    free(e->pend_pgno);
    free(e->pend_buf);
    free(e->pend_list);
    free(e->map);
    free(e->note);
    free(e);
}

static JET_ERR slot_alloc(struct snapstore *ss, uint32_t *out)
{
    if (ss->nfree) {
        *out = ss->free_slots[--ss->nfree];
    } else {
        if (ss->nslots >= SLOT_PENDING - 1)
            return js_fail(JET_errDiskFull, "%s: too many page images", ss->pages_path);
        if (ss->nslots == ss->refs_cap) {
            uint64_t cap = ss->refs_cap ? 2 * ss->refs_cap : 1024;
            uint32_t *n = realloc(ss->refs, cap * sizeof *n);
            if (!n)
                return js_fail(JET_errOutOfMemory, "snapshot store slots");
            memset(n + ss->refs_cap, 0, (cap - ss->refs_cap) * sizeof *n);
            ss->refs = n;
            ss->refs_cap = cap;
        }
        *out = (uint32_t)ss->nslots++;
    }
    ss->refs[*out] = 0;
    ss->live_slots++;
    return JET_errSuccess;
}

/* Undo slot_alloc of a slot no record names. */
void ss_slot_unalloc(struct snapstore *ss, uint32_t slot)
{
    ss->refs[slot] = 1;
    slot_release(ss, slot);
}

static void invalidate(struct snapstore *ss, snap_entry *e, JET_ERR err)
{
    if (e->invalid)
        return;
    e->invalid = err;
    if (e->ready) {
        uint8_t r[32];
        size_t len = ss_enc_small(r, R_INVALID, e->id, (uint32_t)err);
        /* Best effort: if it cannot be recorded, the store's own failure
         * shows again at the next save or read. */
        if (!ss_idx_append(ss, r, len))
            (void)os_fsync(ss->idx_fd, ss->idx_path);
    }
    if (ss->on_invalid)
        ss->on_invalid(ss->ev_ctx, e->meta.name, err);
}

/* Queue a MAP record (slot holds page pgno's image, crc its CRC32C, read
 * by ids) in ss->mbuf; map_flush appends the queue to the index in one
 * write, so a batch of saves costs one append and one fsync. */
JET_ERR ss_map_queue(struct snapstore *ss, uint32_t slot, uint32_t pgno, uint32_t crc, const uint32_t *ids,
                     uint32_t nids)
{
    size_t len = ss_rec_len(20 + 4 * (size_t)nids);
    if (ss->mlen + len > ss->mcap) {
        size_t cap = ss->mcap ? ss->mcap : 4096;
        while (cap < ss->mlen + len)
            cap *= 2;
        uint8_t *n = realloc(ss->mbuf, cap);
        if (!n)
            return js_fail(JET_errOutOfMemory, "snapshot index records");
        ss->mbuf = n;
        ss->mcap = cap;
    }
    uint8_t *r = ss->mbuf + ss->mlen;
    memset(r, 0, len);
    pg_put64(r + 12, slot);
    pg_put32(r + 20, pgno);
    pg_put32(r + 24, crc);
    pg_put32(r + 28, nids);
    for (uint32_t i = 0; i < nids; i++)
        pg_put32(r + 32 + 4 * i, ids[i]);
    ss_rec_seal(r, R_MAP, len);
    ss->mlen += len;
    return JET_errSuccess;
}

JET_ERR ss_map_flush(struct snapstore *ss)
{
    JET_ERR err = ss->mlen ? ss_idx_append(ss, ss->mbuf, ss->mlen) : JET_errSuccess;
    ss->mlen = 0;
    return err;
}

JET_ERR ss_save_image(struct snapstore *ss, uint32_t pgno, const uint8_t *img, const uint32_t *ids, uint32_t nids,
                      uint32_t *slot_out)
{
    uint32_t slot;
    JET_ERR err = slot_alloc(ss, &slot);
    if (err)
        return err;
    err = os_pwrite(ss->pages_fd, ss->pages_path, img, ss->page_size, (uint64_t)slot * ss->page_size);
    if (!err)
        err = ss_map_queue(ss, slot, pgno, js_crc32c(0, img, ss->page_size), ids, nids);
    if (err) {
        ss_slot_unalloc(ss, slot);
        return err;
    }
    *slot_out = slot;
    return JET_errSuccess;
}

static JET_ERR sync_both(struct snapstore *ss)
{
    JET_ERR err = os_fsync(ss->pages_fd, ss->pages_path);
    return err ? err : os_fsync(ss->idx_fd, ss->idx_path);
}

/* ---------------- unwritten images ---------------- */

static size_t unw_find(struct snapstore *ss, uint32_t pgno)
{
    for (size_t i = 0; i < ss->nunw; i++)
        if (ss->unw_pgno[i] == pgno)
            return i;
    return SIZE_MAX;
}

/* Remember img as what page pgno should hold; ss->lock held for writing. */
static void unw_put(struct snapstore *ss, uint32_t pgno, const uint8_t *img)
{
    size_t i = unw_find(ss, pgno);
    if (i == SIZE_MAX) {
        if (ss->nunw == ss->unw_cap) {
            size_t cap = ss->unw_cap ? 2 * ss->unw_cap : 64;
            uint32_t *np = realloc(ss->unw_pgno, cap * sizeof *np);
            if (np)
                ss->unw_pgno = np;
            uint8_t *ni = np ? realloc(ss->unw_img, cap * ss->page_size) : NULL;
            if (!ni) {
                ss->unw_lost = 1;
                return;
            }
            ss->unw_img = ni;
            ss->unw_cap = cap;
        }
        i = ss->nunw++;
        ss->unw_pgno[i] = pgno;
    }
    memcpy(ss->unw_img + i * ss->page_size, img, ss->page_size);
}

/* Pages pgnos[0..n) (images in pages): the first nok were written, the
 * rest were not (err set) and are remembered until a write of them lands. */
static void unw_record(struct snapstore *ss, const uint32_t *pgnos, const uint8_t *pages, uint32_t n, uint32_t nok)
{
    for (uint32_t k = 0; k < n; k++) {
        if (k >= nok) {
            unw_put(ss, pgnos[k], pages + (size_t)k * ss->page_size);
            continue;
        }
        size_t i = ss->nunw ? unw_find(ss, pgnos[k]) : SIZE_MAX;
        if (i == SIZE_MAX)
            continue;
        ss->nunw--;
        ss->unw_pgno[i] = ss->unw_pgno[ss->nunw];
        memcpy(ss->unw_img + i * ss->page_size, ss->unw_img + ss->nunw * ss->page_size, ss->page_size);
    }
}

void ss_write_failed(struct snapstore *ss, const uint32_t *pgnos, const uint8_t *pages, uint32_t n)
{
    js_wrlock(&ss->lock);
    unw_record(ss, pgnos, pages, n, 0);
    js_rwunlock(&ss->lock);
}

/* ---------------- open: replay and compact ---------------- */

static JET_ERR replay_record(struct snapstore *ss, const uint8_t *r, size_t len, int pass)
{
    int type = pg_u16(r + 4);
    if (type == R_CREATE && pass == 0) {
        ss_meta m;
        memset(&m, 0, sizeof m);
        uint32_t id = pg_u32(r + 12);
        m.pages = pg_u32(r + 16);
        m.log_position = pg_u64(r + 20);
        m.created = (int64_t)pg_u64(r + 28);
        m.last_commit_time = (int64_t)pg_u64(r + 36);
        memcpy(m.hdr.log_sig, r + 44, JS_SIG_LEN);
        m.hdr.log_file_size = pg_u64(r + 60);
        m.hdr.flags = pg_u32(r + 68);
        m.hdr.created = (int64_t)pg_u64(r + 72);
        size_t nl = r[80];
        if (nl > SS_NAME_MAX || 81 + nl > len)
            return JS_CORRUPT(JET_errDatabaseCorrupted, "%s: bad snapshot record", ss->idx_path);
        memcpy(m.name, r + 81, nl);
        m.name[nl] = '\0';
        snap_entry *e = ss_entry_new(ss, id, &m);
        if (!e)
            return js_fail(JET_errOutOfMemory, "snapshot %s", m.name);
        e->ready = 1;
        if (id >= ss->next_id)
            ss->next_id = id + 1;
    } else if (type == R_DELETE && pass == 1) {
        snap_entry *e = ss_find_id(ss, pg_u32(r + 12));
        if (e)
            ss_entry_free(ss, e, 1);
    } else if (type == R_INVALID && pass == 1) {
        snap_entry *e = ss_find_id(ss, pg_u32(r + 12));
        if (e)
            e->invalid = (JET_ERR)(int32_t)pg_u32(r + 16);
    } else if (type == R_NOTE && pass == 1) {
        snap_entry *e = ss_find_id(ss, pg_u32(r + 12));
        uint32_t n = pg_u32(r + 16);
        if (e && 20 + (size_t)n <= len) {
            free(e->note);
            e->note = malloc(n ? n : 1);
            if (!e->note)
                return js_fail(JET_errOutOfMemory, "snapshot note");
            memcpy(e->note, r + 20, n);
            e->note_len = n;
        }
    } else if (type == R_PEND && pass == 2) {
        snap_entry *e = ss_find_id(ss, pg_u32(r + 12));
        uint32_t n = pg_u32(r + 16);
        if (20 + 4 * (size_t)n > len)
            return JS_CORRUPT(JET_errDatabaseCorrupted, "%s: bad pending record", ss->idx_path);
        js_mutex_lock(&ss->cap_lock);
        /* The last PEND of a snapshot replaces the earlier ones. */
        for (uint32_t p = 0; e && e->npending && p < e->meta.pages; p++)
            if (e->map[p] == SLOT_PENDING)
                e->map[p] = SLOT_NONE;
        if (e)
            ss_lazy_drop(ss, e);
        uint32_t *list = e && n ? malloc((size_t)n * sizeof *list) : NULL;
        for (uint32_t i = 0; list && i < n; i++) {
            list[i] = pg_u32(r + 20 + 4 * i);
            ss_lazy_mark(ss, e, &list[i], 1);
        }
        js_mutex_unlock(&ss->cap_lock);
        if (e && n && !list)
            return js_fail(JET_errOutOfMemory, "snapshot pending pages");
        if (e) {
            free(e->pend_list);
            e->pend_list = list;
            e->npend_list = n;
        }
    } else if (type == R_MAP && pass == 3) {
        uint64_t slot = pg_u64(r + 12);
        uint32_t pgno = pg_u32(r + 20), n = pg_u32(r + 28);
        if (32 + 4 * (size_t)n > len || slot == 0 || slot >= SLOT_PENDING - 1)
            return JS_CORRUPT(JET_errDatabaseCorrupted, "%s: bad image record", ss->idx_path);
        while (ss->nslots <= slot) {
            uint32_t s;
            JET_ERR err = slot_alloc(ss, &s);
            if (err)
                return err;
            ss->live_slots--;   /* allocated as free: counted when referenced */
        }
        for (uint32_t i = 0; i < n; i++) {
            snap_entry *e = ss_find_id(ss, pg_u32(r + 32 + 4 * i));
            if (!e || pgno >= e->meta.pages || (e->map[pgno] != SLOT_NONE && e->map[pgno] != SLOT_PENDING))
                continue;
            if (e->map[pgno] == SLOT_PENDING) {   /* saved after the take: no longer pending */
                js_mutex_lock(&ss->cap_lock);
                e->map[pgno] = SLOT_NONE;
                e->npending--;
                if (!e->npending)
                    atomic_fetch_sub(&ss->lazy_snaps, 1);
                js_mutex_unlock(&ss->cap_lock);
            }
            if (!ss->refs[slot]++)
                ss->live_slots++;
            e->map[pgno] = (uint32_t)slot;
            e->saved++;
        }
    }
    return JET_errSuccess;
}

static JET_ERR replay(struct snapstore *ss, const uint8_t *buf, size_t size)
{
    JET_ERR err = JET_errSuccess;
    size_t end = 0;
    /* The valid prefix: the first record that fails ends the journal. */
    while (end + 12 <= size) {
        uint32_t len = pg_u32(buf + end + 8);
        if (len < 16 || len % 8 || end + len > size || pg_u32(buf + end) != js_crc32c(0, buf + end + 4, len - 4))
            break;
        end += len;
    }
    if (end < 12 + 28 || pg_u16(buf + 4) != R_HEADER || memcmp(buf + 12, "JSNAPSIX", 8))
        return JET_errSuccess;   /* nothing durable yet: an empty store */
    if (pg_u32(buf + 20) > SS_VERSION)
        return js_fail(JET_errInvalidDatabase, "%s: store version %u, this program reads up to %u", ss->idx_path,
                       pg_u32(buf + 20), SS_VERSION);
    if (pg_u32(buf + 24) != ss->page_size || memcmp(buf + 28, ss->db_sig, JS_SIG_LEN))
        return js_fail(JET_errBadDbSignature, "%s belongs to another database", ss->idx_path);
    if (pg_u32(buf + 8) >= 48 && pg_u32(buf + 44) > ss->next_id)
        ss->next_id = pg_u32(buf + 44);
    for (int pass = 0; pass < 4 && !err; pass++)
        for (size_t off = 0; off < end && !err; off += pg_u32(buf + off + 8))
            err = replay_record(ss, buf + off, pg_u32(buf + off + 8), pass);
    return err;
}

/* Write the index anew from memory: header, snapshots, notes, images. */
JET_ERR ss_compact(struct snapstore *ss)
{
    char tmp[PATH_MAX + 8];
    int fd = -1;
    JET_ERR err;
    snprintf(tmp, sizeof tmp, "%s.new", ss->idx_path);
    err = os_open(tmp, O_RDWR | O_CREAT | O_TRUNC, 0600, &fd);
    if (err)
        return err;
    int old_fd = ss->idx_fd;
    uint64_t old_end = ss->idx_end;
    ss->idx_fd = fd;
    ss->idx_end = 0;
    uint8_t r[256];
    memset(r, 0, sizeof r);
    memcpy(r + 12, "JSNAPSIX", 8);
    pg_put32(r + 20, SS_VERSION);
    pg_put32(r + 24, ss->page_size);
    memcpy(r + 28, ss->db_sig, JS_SIG_LEN);
    pg_put32(r + 44, ss->next_id);
    ss_rec_seal(r, R_HEADER, ss_rec_len(36));
    err = ss_idx_append(ss, r, ss_rec_len(36));
    for (size_t i = 0; i < ss->nsnaps && !err; i++) {
        snap_entry *e = ss->snaps[i];
        err = ss_lazy_record(ss, e);   /* before its CREATE: a torn tail keeps neither or both */
        if (!err)
            err = ss_idx_append(ss, r, ss_enc_create(e, r));
        if (!err && e->invalid)
            err = ss_idx_append(ss, r, ss_enc_small(r, R_INVALID, e->id, (uint32_t)e->invalid));
        if (!err && e->note) {
            size_t len = ss_rec_len(8 + e->note_len);
            uint8_t *nr = calloc(1, len);
            if (!nr) {
                err = js_fail(JET_errOutOfMemory, "snapshot note");
                break;
            }
            pg_put32(nr + 12, e->id);
            pg_put32(nr + 16, e->note_len);
            memcpy(nr + 20, e->note, e->note_len);
            ss_rec_seal(nr, R_NOTE, len);
            err = ss_idx_append(ss, nr, len);
            free(nr);
        }
    }
    /* One MAP per snapshot and page; the slot's CRC is not re-read here
     * (0: not recorded), the page's own checksum still guards it. */
    for (size_t i = 0; i < ss->nsnaps && !err; i++) {
        snap_entry *e = ss->snaps[i];
        for (uint32_t p = 0; p < e->meta.pages && !err; p++) {
            if (e->map[p] == SLOT_NONE || e->map[p] == SLOT_PENDING)
                continue;
            size_t len = ss_rec_len(24);
            memset(r, 0, len);
            pg_put64(r + 12, e->map[p]);
            pg_put32(r + 20, p);
            pg_put32(r + 28, 1);
            pg_put32(r + 32, e->id);
            ss_rec_seal(r, R_MAP, len);
            err = ss_idx_append(ss, r, len);
        }
    }
    if (!err)
        err = os_fsync(fd, tmp);
    if (!err)
        err = os_rename(tmp, ss->idx_path);
    if (!err)
        err = os_fsync_dir(ss->dir);
    if (err) {
        os_close(fd);
        (void)os_unlink(tmp, 1);
        ss->idx_fd = old_fd;
        ss->idx_end = old_end;
        return err;
    }
    os_close(old_fd);
    return JET_errSuccess;
}

static JET_ERR open_pages(struct snapstore *ss)
{
    uint64_t size = 0;
    uint32_t ps = ss->page_size;
    JET_ERR err = os_open(ss->pages_path, O_RDWR | O_CREAT, 0600, &ss->pages_fd);
    if (!err)
        err = os_size(ss->pages_fd, ss->pages_path, &size);
    if (err)
        return err;
    uint8_t *h = calloc(1, ps);
    if (!h)
        return js_fail(JET_errOutOfMemory, "snapshot store header");
    if (size < ps) {
        memcpy(h + 4, "JSNAPSPG", 8);
        pg_put32(h + 12, SS_VERSION);
        pg_put32(h + 16, ps);
        memcpy(h + 20, ss->db_sig, JS_SIG_LEN);
        pg_put32(h, js_crc32c(0, h + 4, ps - 4));
        err = os_pwrite(ss->pages_fd, ss->pages_path, h, ps, 0);
        if (!err)
            err = os_fsync(ss->pages_fd, ss->pages_path);
    } else {
        err = os_pread(ss->pages_fd, ss->pages_path, h, ps, 0, NULL);
        if (!err && (memcmp(h + 4, "JSNAPSPG", 8) || pg_u32(h) != js_crc32c(0, h + 4, ps - 4)))
            err = JS_CORRUPT(JET_errDatabaseCorrupted, "%s: bad header", ss->pages_path);
        else if (!err && (pg_u32(h + 16) != ps || memcmp(h + 20, ss->db_sig, JS_SIG_LEN)))
            err = js_fail(JET_errBadDbSignature, "%s belongs to another database", ss->pages_path);
    }
    free(h);
    return err;
}

JET_ERR ss_open(const char *dbdir, uint32_t page_size, const uint8_t db_sig[JS_SIG_LEN], ss_event_fn on_invalid,
                void *ctx, struct snapstore **out)
{
    struct snapstore *ss = calloc(1, sizeof *ss);
    uint8_t *buf = NULL;
    JET_ERR err;
    if (!ss)
        return js_fail(JET_errOutOfMemory, "snapshot store");
    js_rwlock_init(&ss->lock);
    js_mutex_init(&ss->cap_lock);
    ss->pages_fd = ss->idx_fd = -1;
    ss->page_size = page_size;
    memcpy(ss->db_sig, db_sig, JS_SIG_LEN);
    ss->on_invalid = on_invalid;
    ss->ev_ctx = ctx;
    ss->next_id = 1;
    ss->nslots = 1;
    ss->refs_cap = 1024;
    ss->refs = calloc(ss->refs_cap, sizeof *ss->refs);
    ss->scratch = aligned_alloc(4096, page_size);
    if (!ss->refs || !ss->scratch) {
        err = js_fail(JET_errOutOfMemory, "snapshot store");
        goto fail;
    }
    ss->refs[0] = 1;
    snprintf(ss->dir, sizeof ss->dir, "%s/" SS_DIR, dbdir);
    snprintf(ss->pages_path, sizeof ss->pages_path, "%s/" SS_DIR "/" SS_PAGES, dbdir);
    snprintf(ss->idx_path, sizeof ss->idx_path, "%s/" SS_DIR "/" SS_IDX, dbdir);
    err = os_mkdir(ss->dir, 0700, 1);
    if (!err)
        err = open_pages(ss);
    if (!err)
        err = os_open(ss->idx_path, O_RDWR | O_CREAT, 0600, &ss->idx_fd);
    uint64_t size = 0;
    if (!err)
        err = os_size(ss->idx_fd, ss->idx_path, &size);
    if (err)
        goto fail;
    buf = malloc(size ? size : 1);
    if (!buf) {
        err = js_fail(JET_errOutOfMemory, "snapshot index");
        goto fail;
    }
    if (size)
        err = os_pread(ss->idx_fd, ss->idx_path, buf, size, 0, NULL);
    if (!err)
        err = replay(ss, buf, size);
    /* Slots below the high-water mark nobody reads: free again. */
    for (uint64_t s = 1; !err && s < ss->nslots; s++)
        if (!ss->refs[s]) {
            ss->refs[s] = 1;
            ss->live_slots++;
            slot_release(ss, (uint32_t)s);
        }
    if (!err)
        err = ss_compact(ss);
    if (err)
        goto fail;
    free(buf);
    *out = ss;
    return JET_errSuccess;
fail:
    free(buf);
    ss_close(ss);
    return err;
}

JET_ERR ss_settle(struct snapstore *ss, int clean)
{
    JET_ERR err = JET_errSuccess;
    int wrote = 0;
    js_wrlock(&ss->lock);
    for (size_t i = 0; i < ss->nsnaps && !err; i++) {
        snap_entry *e = ss->snaps[i];
        if (!e->npending)
            continue;
        if (!clean) {
            invalidate(ss, e, js_fail(JET_errMissingLogFile, "snapshot %s: pages pending at its take need the log, "
                                                             "and the instance opens without recovery", e->meta.name));
            continue;
        }
        js_mutex_lock(&ss->cap_lock);
        for (uint32_t p = 0; p < e->meta.pages; p++)
            if (e->map[p] == SLOT_PENDING)
                e->map[p] = SLOT_NONE;
        ss_lazy_drop(ss, e);
        js_mutex_unlock(&ss->cap_lock);
        free(e->pend_list);
        e->pend_list = NULL;
        e->npend_list = 0;
        uint8_t r[32];
        size_t len = ss_enc_small(r, R_PEND, e->id, 0);   /* no page pending any more */
        err = ss_idx_append(ss, r, len);
        wrote = 1;
    }
    if (!err && wrote)
        err = os_fsync(ss->idx_fd, ss->idx_path);
    js_rwunlock(&ss->lock);
    return err;
}

void ss_close(struct snapstore *ss)
{
    if (!ss)
        return;
    while (ss->nsnaps)
        ss_entry_free(ss, ss->snaps[ss->nsnaps - 1], 0);
    os_close(ss->pages_fd);
    os_close(ss->idx_fd);
    free(ss->snaps);
    free(ss->refs);
    free(ss->free_slots);
    free(ss->scratch);
    free(ss->mbuf);
    free(ss->unw_pgno);
    free(ss->unw_img);
    js_rwlock_destroy(&ss->lock);
    js_mutex_destroy(&ss->cap_lock);
    free(ss);
}

/* ---------------- copy-on-write ---------------- */

/* Save img (sealed page p) once for the k snapshots who[0..k) (indexes
 * into ss->snaps, ids[] their ids); or, when err is set already, record
 * that for them.  mark/why as in ss_cow_begin. */
static int save_for(struct snapstore *ss, uint32_t p, const uint8_t *img, JET_ERR err, const uint32_t *who,
                    const uint32_t *ids, uint32_t k, uint8_t *mark, JET_ERR *why)
{
    uint32_t slot = 0;
    if (!k)
        return 0;
    if (!err)
        err = ss_save_image(ss, p, img, ids, k, &slot);
    js_mutex_lock(&ss->cap_lock);   /* map entries: ss_before_change reads them */
    for (uint32_t x = 0; x < k; x++) {
        if (err) {
            mark[who[x]] = 2;
            why[who[x]] = err;
            continue;
        }
        ss->snaps[who[x]]->map[p] = slot;
        ss->snaps[who[x]]->saved++;
        if (!mark[who[x]])
            mark[who[x]] = 1;
    }
    js_mutex_unlock(&ss->cap_lock);
    if (err)
        return 0;
    ss->refs[slot] = k;
    return 1;
}

/* The working state of one copy-on-write pass (ss_cow_begin,
 * ss_cow_prepare) over the ns snapshots there were when it began.  Per
 * snapshot (by index): mark 1 an image saved for it in this pass, 2 a
 * save failed (why[j] why).  who/ids: [0, ns) those saving the file's
 * image of a page, [ns, 2ns) those saving the unwritten one. */
typedef struct cow_pass {
    size_t ns;
    uint32_t *ids, *who;
    uint8_t *mark;
    JET_ERR *why;
    int saved_any;
} cow_pass;

/* 0 when there is nothing to do: no snapshot, or no memory to tell which
 * snapshots need the pages, in which case every one that might is
 * invalid rather than silently wrong.  ss->lock held for writing. */
static int cow_pass_init(struct snapstore *ss, cow_pass *c)
{
    memset(c, 0, sizeof *c);
    c->ns = ss->nsnaps;
    if (!c->ns)
        return 0;
    c->ids = malloc(2 * c->ns * sizeof *c->ids);
    c->who = malloc(2 * c->ns * sizeof *c->who);
    c->mark = calloc(c->ns, 1);
    c->why = calloc(c->ns, sizeof *c->why);
    if (c->ids && c->who && c->mark && c->why)
        return 1;
    for (size_t j = 0; j < c->ns; j++)
        invalidate(ss, ss->snaps[j], JET_errOutOfMemory);
    free(c->ids);
    free(c->who);
    free(c->mark);
    free(c->why);
    return 0;
}

/* Page p is about to be overwritten in the file by an image with LSN lsn:
 * save its old image for every snapshot that still reads it there and
 * whose image it is (queued, not yet durable). */
static void cow_page(struct snapstore *ss, db_store *st, cow_pass *c, uint32_t p, uint64_t lsn)
{
    uint32_t ps = ss->page_size, kf = 0, ku = 0, *ids = c->ids, *who = c->who;
    size_t ns = c->ns;
    size_t u = ss->nunw ? unw_find(ss, p) : SIZE_MAX;
    const uint8_t *uimg = u != SIZE_MAX ? ss->unw_img + u * ps : NULL;
    uint64_t ulsn = uimg ? pg_lsn(uimg) : 0;
    size_t got = 0;
    int fbad = 0;
    uint64_t flsn = 0;
    JET_ERR ferr = JET_errSuccess;
    c->saved_any |= ss_lazy_save(ss, p, lsn, c->mark, c->why);   /* pending pages of lazy snapshots */
    for (size_t j = 0; j < ns; j++) {
        snap_entry *e = ss->snaps[j];
        /* A page written with an LSN before S is the snapshot's own
         * version (flushed late): the file keeps serving it. */
        if (e->invalid || c->mark[j] == 2 || p >= e->meta.pages || e->map[p] != SLOT_NONE ||
            ss_before_s(lsn, e->meta.log_position))
            continue;
        who[kf] = (uint32_t)j;
        ids[kf++] = e->id;
    }
    if (!kf)
        return;
    ferr = os_pread(st->fd, st->path, ss->scratch, ps, (uint64_t)p * ps, &got);
    if (!ferr && got < ps)
        memset(ss->scratch + got, 0, ps - got);
    if (!ferr) {
        fbad = pg_verify(ss->scratch, ps, p) == PG_BAD;
        flsn = fbad ? 0 : pg_lsn(ss->scratch);
    }
    /* The unwritten image, where it is before S and newer than the
     * file's (or the file's is torn), is the snapshot's version. */
    for (uint32_t x = 0; uimg && !ferr && x < kf;) {
        snap_entry *e = ss->snaps[who[x]];
        if (ulsn < e->meta.log_position && (fbad || flsn < ulsn)) {
            who[ns + ku] = who[x];
            ids[ns + ku++] = ids[x];
            who[x] = who[--kf];
            ids[x] = ids[kf];
        } else {
            x++;
        }
    }
    if (!ferr && fbad && kf)
        ferr = JS_CORRUPT(JET_errReadVerifyFailure, "page %u of %s: checksum mismatch before saving it", p, st->path);
    c->saved_any |= save_for(ss, p, ss->scratch, ferr, who, ids, kf, c->mark, c->why);
    c->saved_any |= save_for(ss, p, uimg, ferr, who + ns, ids + ns, ku, c->mark, c->why);
}

/* End of a pass: one append of its records and one fsync of each file,
 * durable before the database write; if not, what was saved in it is not
 * known durable: those snapshots are invalid, no other. */
static void cow_pass_done(struct snapstore *ss, cow_pass *c)
{
    JET_ERR err = ss_map_flush(ss);
    if (!err && c->saved_any)
        err = sync_both(ss);
    for (size_t j = 0; j < c->ns; j++) {
        if (c->mark[j] == 2)
            invalidate(ss, ss->snaps[j], c->why[j]);
        else if (c->mark[j] == 1 && err)
            invalidate(ss, ss->snaps[j], err);
    }
    free(c->ids);
    free(c->who);
    free(c->mark);
    free(c->why);
}

void ss_cow_begin(struct snapstore *ss, db_store *st, const uint32_t *pgnos, const uint8_t *pages, uint32_t n)
{
    cow_pass c;
    js_wrlock(&ss->lock);   /* released by ss_cow_end */
    if (!cow_pass_init(ss, &c))
        return;
    for (uint32_t i = 0; i < n; i++)
        cow_page(ss, st, &c, pgnos[i], pg_lsn(pages + (size_t)i * ss->page_size));
    cow_pass_done(ss, &c);
}

int ss_any(struct snapstore *ss)
{
    js_rdlock(&ss->lock);
    int any = 0;
    for (size_t j = 0; j < ss->nsnaps && !any; j++)
        any = !ss->snaps[j]->invalid;
    js_rwunlock(&ss->lock);
    return any;
}

void ss_cow_prepare(struct snapstore *ss, db_store *st, const uint32_t *pgnos, const uint64_t *lsns, size_t n)
{
    cow_pass c;
    js_wrlock(&ss->lock);
    /* A page whose version in the pool is at or after a snapshot's S
     * will be written with an LSN at least that (LSNs only grow), so
     * ss_cow_begin would save the same image for it then: the file's
     * (or the unwritten) page, which nothing writes before this
     * checkpoint's batch (ckpt_lock).  A page still before S is left to
     * ss_cow_begin, which sees the LSN actually written. */
    if (cow_pass_init(ss, &c)) {
        for (size_t i = 0; i < n; i++)
            cow_page(ss, st, &c, pgnos[i], lsns[i]);
        cow_pass_done(ss, &c);
    }
    js_rwunlock(&ss->lock);
}

void ss_cow_end(struct snapstore *ss, const uint32_t *pgnos, const uint8_t *pages, uint32_t n, uint32_t nok,
                JET_ERR err)
{
    if (err || ss->nunw)
        unw_record(ss, pgnos, pages, n, err ? nok : n);
    for (uint32_t k = 0; k < (err ? nok : n); k++)
        ss_lazy_resolve(ss, pgnos[k], pg_lsn(pages + (size_t)k * ss->page_size));
    js_rwunlock(&ss->lock);
}
