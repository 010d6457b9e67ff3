/*
 * snaplazy.c - lazy snapshots: the pages dirty in the pool when a snapshot
 * is taken (committed before S, not yet in jetsnap.edb) are not copied at
 * take.  Take only marks them pending and records their numbers durably
 * (a PEND record, snapstore.c); each pending page's version at S is then
 * kept the moment it would be lost:
 *
 *   - before a commit (or recovery's redo) changes the page in the pool
 *     with an LSN at or after S, ss_before_change captures the pool's image
 *     (in memory);
 *   - a checkpoint write of the page with an LSN before S brings the
 *     snapshot's own version to the file: once it landed, the page is
 *     read from the file like any other (resolved);
 *   - a checkpoint write with an LSN at or after S saves the capture in
 *     the store first, durably, with the batch's other saves.
 * Until then a reader gets the capture, else the pool's frame (unchanged
 * since S), else the file (a restart emptied the pool: the file holds it).
 *
 * Why this is durable when take returns, with no page copied: take makes
 * the log durable up to S.  After a crash every pending page without a
 * saved image is, in the file, a version before S (a write at or after S
 * always saves first), and recovery replays the log from its redo point
 * through the page's changes before S, then calls ss_before_change before
 * the first change at or after S: the capture is the version at S again.
 * A page no change at or after S reached is, after replay, its version at
 * S in the pool or the file.  Pages stay pending across restarts until
 * written or saved; the log recovery needs is never truncated (a redo
 * point moves only once a checkpoint wrote every page dirty before it).
 *
 * Locking: cap_lock guards the pending marks of lazy snapshots (their
 * map entries SLOT_PENDING), captures and the snaps array's membership.
 * The hook runs on the commit path holding the tree latch (frame content
 * cannot change under it) and takes only cap_lock, never ss->lock, which
 * a checkpoint holds across its fsync.  A reader holds cap_lock while it
 * copies a pending page's frame: a commit changing that frame captures it
 * first, so it waits.
 */
#include "store/snapstore_int.h"

#include <stdlib.h>
#include <string.h>

static void cap_unref(ss_cap *c)
{
    if (c && !--c->refs)
        free(c);
}

static void unpend(struct snapstore *ss, snap_entry *e, uint32_t p)
{
    JS_ASSERT_HELD(&ss->cap_lock);
    if (e->caps) {
        cap_unref(e->caps[p]);
        e->caps[p] = NULL;
    }
    if (e->npending && !--e->npending)
        atomic_fetch_sub(&ss->lazy_snaps, 1);
}

void ss_lazy_drop(struct snapstore *ss, snap_entry *e)
{
    JS_ASSERT_HELD(&ss->cap_lock);
    for (uint32_t p = 0; e->caps && p < e->meta.pages; p++)
        cap_unref(e->caps[p]);
    free(e->caps);
    e->caps = NULL;
    if (e->npending)
        atomic_fetch_sub(&ss->lazy_snaps, 1);
    e->npending = 0;
}

void ss_lazy_mark(struct snapstore *ss, snap_entry *e, const uint32_t *pgnos, size_t n)
{
    JS_ASSERT_HELD(&ss->cap_lock);
    uint32_t before = e->npending;
    e->lazy = 1;
    for (size_t i = 0; i < n; i++) {
        uint32_t p = pgnos[i];
        if (p < 2 || p >= e->meta.pages || e->map[p] != SLOT_NONE)
            continue;
        e->map[p] = SLOT_PENDING;
        e->npending++;
    }
    if (!before && e->npending)
        atomic_fetch_add(&ss->lazy_snaps, 1);
}

JET_ERR ss_lazy_record(struct snapstore *ss, snap_entry *e)
{
    if (!e->npend_list)
        return JET_errSuccess;
    size_t len = ss_rec_len(8 + 4 * (size_t)e->npend_list);
    uint8_t *r = calloc(1, len);
    if (!r)
        return js_fail(JET_errOutOfMemory, "snapshot pending pages record");
    for (uint32_t i = 0; i < e->npend_list; i++)
        pg_put32(r + 20 + 4 * i, e->pend_list[i]);
    pg_put32(r + 12, e->id);
    pg_put32(r + 16, e->npend_list);
    ss_rec_seal(r, R_PEND, len);
    JET_ERR err = ss_idx_append(ss, r, len);
    free(r);
    return err;
}

/* The image of page p as the pool or the file holds it now, sealed, in a
 * new capture; NULL with *err set on failure. */
static ss_cap *capture(struct snapstore *ss, db_store *st, uint32_t p, JET_ERR *err)
{
    uint32_t ps = ss->page_size;
    ss_cap *c = malloc(sizeof *c + ps);
    if (!c) {
        *err = js_fail(JET_errOutOfMemory, "snapshot: capture of page %u", p);
        return NULL;
    }
    c->refs = 0;
    frame *f = pool_lookup(&st->pool, p);
    if (f) {
        memcpy(c->data, f->data, ps);
        pool_unpin(&st->pool, f);
    } else {
        size_t got = 0;
        *err = db_read(st, (uint64_t)p * ps, c->data, ps, &got);
        if (!*err && got < ps)
            memset(c->data + got, 0, ps - got);
        if (*err) {
            free(c);
            return NULL;
        }
    }
    pg_seal(c->data, ps, p);
    return c;
}

void ss_before_change(struct snapstore *ss, db_store *st, uint32_t pgno, uint64_t lsn)
{
    if (!ss || !atomic_load(&ss->lazy_snaps))
        return;
    ss_cap *c = NULL;
    JET_ERR err = JET_errSuccess;
    js_mutex_lock(&ss->cap_lock);
    for (size_t j = 0; j < ss->nsnaps; j++) {
        snap_entry *e = ss->snaps[j];
        if (!e->lazy || pgno >= e->meta.pages || e->map[pgno] != SLOT_PENDING ||
            ss_before_s(lsn, e->meta.log_position) || (e->caps && e->caps[pgno]) || e->cap_err)
            continue;
        if (!e->caps && !(e->caps = calloc(e->meta.pages, sizeof *e->caps))) {
            e->cap_err = JET_errOutOfMemory;
            continue;
        }
        if (!c && !err)
            c = capture(ss, st, pgno, &err);
        if (!c) {
            e->cap_err = err;
            continue;
        }
        c->refs++;
        e->caps[pgno] = c;
    }
    if (c && !c->refs)
        free(c);
    js_mutex_unlock(&ss->cap_lock);
}

int ss_lazy_save(struct snapstore *ss, uint32_t p, uint64_t lsn, uint8_t *mark, JET_ERR *why)
{
    size_t ns = ss->nsnaps;
    int saved = 0;
    if (!atomic_load(&ss->lazy_snaps))
        return 0;
    uint32_t ids[64];
    js_mutex_lock(&ss->cap_lock);
    for (size_t j = 0; j < ns; j++) {
        snap_entry *e = ss->snaps[j];
        if (!e->lazy || e->invalid || p >= e->meta.pages || e->map[p] != SLOT_PENDING ||
            ss_before_s(lsn, e->meta.log_position) || mark[j] == 2)
            continue;
        ss_cap *c = e->caps ? e->caps[p] : NULL;
        if (!c) {
            /* A change at or after S always captures first: only a failed
             * capture gets here. */
            mark[j] = 2;
            why[j] = e->cap_err ? e->cap_err
                                : JS_CORRUPT(JET_errDatabaseCorrupted, "snapshot %s: page %u changed uncaptured",
                                             e->meta.name, p);
            continue;
        }
        /* Every snapshot sharing this capture (and needing it) at once. */
        uint32_t k = 0, who[64];
        for (size_t x = j; x < ns && k < 64; x++) {
            snap_entry *o = ss->snaps[x];
            if (o->lazy && !o->invalid && p < o->meta.pages && o->map[p] == SLOT_PENDING && o->caps &&
                o->caps[p] == c && !ss_before_s(lsn, o->meta.log_position) && mark[x] != 2) {
                who[k] = (uint32_t)x;
                ids[k++] = o->id;
            }
        }
        uint32_t slot = 0;
        JET_ERR err = ss_save_image(ss, p, c->data, ids, k, &slot);
        for (uint32_t x = 0; x < k; x++) {
            snap_entry *o = ss->snaps[who[x]];
            if (err) {
                mark[who[x]] = 2;
                why[who[x]] = err;
                continue;
            }
            o->map[p] = slot;
            o->saved++;
            unpend(ss, o, p);
            if (!mark[who[x]])
                mark[who[x]] = 1;
        }
        if (!err) {
            ss->refs[slot] = k;
            saved = 1;
        }
    }
    js_mutex_unlock(&ss->cap_lock);
    return saved;
}

void ss_lazy_resolve(struct snapstore *ss, uint32_t p, uint64_t lsn)
{
    if (!atomic_load(&ss->lazy_snaps))
        return;
    js_mutex_lock(&ss->cap_lock);
    for (size_t j = 0; j < ss->nsnaps; j++) {
        snap_entry *e = ss->snaps[j];
        if (e->lazy && p < e->meta.pages && e->map[p] == SLOT_PENDING && ss_before_s(lsn, e->meta.log_position)) {
            e->map[p] = SLOT_NONE;
            unpend(ss, e, p);
        }
    }
    js_mutex_unlock(&ss->cap_lock);
}

JET_ERR ss_lazy_read(struct snapstore *ss, db_store *st, snap_entry *e, uint32_t q, uint8_t *dst)
{
    JET_ERR err = JET_errSuccess;
    js_mutex_lock(&ss->cap_lock);
    if (e->map[q] != SLOT_PENDING) {
        js_mutex_unlock(&ss->cap_lock);
        return JS_CORRUPT(JET_errDatabaseCorrupted, "snapshot %s: page %u is no longer pending", e->meta.name, q);
    }
    if (e->cap_err) {
        err = js_fail(JET_errDiskIO, "snapshot %s: a page could not be kept: %s (%d)", e->meta.name,
                      js_errname(e->cap_err), e->cap_err);
    } else if (e->caps && e->caps[q]) {
        memcpy(dst, e->caps[q]->data, ss->page_size);
    } else {
        ss_cap *c = capture(ss, st, q, &err);
        if (c) {
            memcpy(dst, c->data, ss->page_size);
            free(c);
        }
    }
    js_mutex_unlock(&ss->cap_lock);
    return err;
}
