/*
 * snaptake.c - taking a snapshot in the store (store.h, ss_begin ..
 * ss_abort): register it, take the dirty pages' images (an instance
 * without a log) or mark them pending (a lazy take, snaplazy.c), and make
 * it durable.  The format is snapstore.c's.
 */
#include "store/snapstore_int.h"

#include <stdlib.h>
#include <string.h>

JET_ERR ss_begin(struct snapstore *ss, const ss_meta *m, uint32_t max, uint32_t *id)
{
    JET_ERR err = JET_errSuccess;
    js_wrlock(&ss->lock);
    if (ss_find_name(ss, m->name))
        err = js_fail(JET_errDatabaseDuplicate, "snapshot %s exists", m->name);
    else if (ss->nsnaps >= max)
        err = js_fail(JET_errOSSnapshotNotAllowed, "snapshot_max (%u) reached", max);
    else if (ss->unw_lost)
        err = js_fail(JET_errOutOfMemory, "the image of a failed page write could not be kept; reopen the instance");
    else {
        snap_entry *e = ss_entry_new(ss, ss->next_id, m);
        if (!e)
            err = js_fail(JET_errOutOfMemory, "snapshot %s", m->name);
        else
            *id = ss->next_id++;
    }
    js_rwunlock(&ss->lock);
    return err;
}

void ss_capture(struct snapstore *ss, uint32_t id, uint32_t *pgnos, uint8_t *pages, size_t n)
{
    js_wrlock(&ss->lock);
    snap_entry *e = ss_find_id(ss, id);
    if (!e || e->pend_pgno) {
        free(pgnos);
        free(pages);
        goto out;
    }
    e->pend_pgno = pgnos;
    e->pend_buf = pages;
    e->npend = n;
    if (!pages) {
        js_mutex_lock(&ss->cap_lock);
        ss_lazy_mark(ss, e, pgnos, n);
        js_mutex_unlock(&ss->cap_lock);
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        if (pgnos[i] < e->meta.pages && e->map[pgnos[i]] == SLOT_NONE)
            e->map[pgnos[i]] = SLOT_PENDING;
out:
    js_rwunlock(&ss->lock);
}

/* k new slots at the end of store.pages, one after the other, so a take's
 * images go out in one write.  ss->lock held for writing. */
static JET_ERR slots_append(struct snapstore *ss, size_t k, uint32_t *first)
{
    if (ss->nslots + k >= SLOT_PENDING - 1)
        return js_fail(JET_errDiskFull, "%s: too many page images", ss->pages_path);
    if (ss->nslots + k > ss->refs_cap) {
        uint64_t cap = ss->refs_cap ? ss->refs_cap : 1024;
        while (cap < ss->nslots + k)
            cap *= 2;
        uint32_t *n = realloc(ss->refs, cap * sizeof *n);
        if (!n)
            return js_fail(JET_errOutOfMemory, "snapshot store slots");
        memset(n + ss->refs_cap, 0, (cap - ss->refs_cap) * sizeof *n);
        ss->refs = n;
        ss->refs_cap = cap;
    }
    *first = (uint32_t)ss->nslots;
    for (size_t i = 0; i < k; i++)
        ss->refs[ss->nslots + i] = 0;
    ss->nslots += k;
    ss->live_slots += k;
    return JET_errSuccess;
}

/* Drop e after a failed take: its pending marks, its slots, itself. */
static void commit_fail(struct snapstore *ss, snap_entry *e, uint32_t first, size_t k)
{
    js_mutex_lock(&ss->cap_lock);
    ss_lazy_drop(ss, e);
    for (uint32_t p = 0; p < e->meta.pages; p++)
        if (e->map[p] == SLOT_PENDING)
            e->map[p] = SLOT_NONE;
    js_mutex_unlock(&ss->cap_lock);
    for (size_t i = 0; i < k; i++)
        ss_slot_unalloc(ss, first + (uint32_t)i);   /* never mapped: no one else frees them */
    ss_entry_free(ss, e, 1);
}

/* A lazy take: its PEND record (every page pending at take, also those
 * written or saved since: a MAP overrides, and a page written before S
 * may not be durable in the file yet) and its CREATE, one append and one
 * fsync of the index.  Called with ss->lock held for writing; releases it. */
static JET_ERR commit_lazy(struct snapstore *ss, snap_entry *e)
{
    uint8_t r[256];
    size_t len = ss_rec_len(8 + 4 * e->npend), k = 0;
    uint8_t *pr = calloc(1, len);
    JET_ERR err = pr ? JET_errSuccess : js_fail(JET_errOutOfMemory, "snapshot pending pages record");
    for (size_t i = 0; pr && i < e->npend; i++)
        if (e->pend_pgno[i] >= 2 && e->pend_pgno[i] < e->meta.pages)
            pg_put32(pr + 20 + 4 * k++, e->pend_pgno[i]);
    if (!err && k) {
        pg_put32(pr + 12, e->id);
        pg_put32(pr + 16, (uint32_t)k);
        ss_rec_seal(pr, R_PEND, ss_rec_len(8 + 4 * k));
        err = ss_idx_append(ss, pr, ss_rec_len(8 + 4 * k));
    }
    free(pr);
    if (!err)
        err = ss_idx_append(ss, r, ss_enc_create(e, r));
    if (!err)
        err = os_fsync(ss->idx_fd, ss->idx_path);
    if (!err && e->invalid)
        err = e->invalid;
    if (err) {
        commit_fail(ss, e, 0, 0);
    } else {
        e->ready = 1;
        e->pend_list = e->pend_pgno;   /* what the PEND record holds, for compaction */
        e->npend_list = (uint32_t)k;
        for (size_t i = 0, j = 0; i < e->npend; i++)
            if (e->pend_pgno[i] >= 2 && e->pend_pgno[i] < e->meta.pages)
                e->pend_list[j++] = e->pend_pgno[i];
        e->pend_pgno = NULL;
        e->npend = 0;
    }
    js_rwunlock(&ss->lock);
    return err;
}

/* The captured images go to k consecutive new slots in one write and one
 * fsync made without ss->lock (the checkpoint's saves go on meanwhile: a
 * page still pending is not saved for this snapshot, its image is here);
 * then their records and the CREATE, one append, one fsync. */
JET_ERR ss_commit(struct snapstore *ss, uint32_t id)
{
    JET_ERR err = JET_errSuccess;
    uint32_t ps = ss->page_size, first = 0;
    uint8_t r[256];
    size_t k = 0;
    js_wrlock(&ss->lock);
    snap_entry *e = ss_find_id(ss, id);
    if (!e) {
        js_rwunlock(&ss->lock);
        return js_fail(JET_errOSSnapshotInvalidSnapId, "snapshot %u is gone", id);
    }
    if (!e->pend_buf)
        return commit_lazy(ss, e);   /* unlocks */
    for (size_t i = 0; i < e->npend; i++) {
        uint32_t p = e->pend_pgno[i];
        if (p >= e->meta.pages || e->map[p] != SLOT_PENDING)
            continue;
        if (k != i)
            memcpy(e->pend_buf + k * ps, e->pend_buf + i * ps, ps);
        e->pend_pgno[k++] = p;
    }
    err = slots_append(ss, k, &first);
    js_rwunlock(&ss->lock);
    if (err) {
        js_wrlock(&ss->lock);
        commit_fail(ss, e, 0, 0);
        js_rwunlock(&ss->lock);
        return err;
    }
    for (size_t i = 0; i < k; i++)
        pg_seal(e->pend_buf + i * ps, ps, e->pend_pgno[i]);   /* frames are sealed on their way out */
    if (k)
        err = os_pwrite(ss->pages_fd, ss->pages_path, e->pend_buf, k * ps, (uint64_t)first * ps);
    if (!err && k)
        err = os_fsync(ss->pages_fd, ss->pages_path);
    js_wrlock(&ss->lock);
    for (size_t i = 0; i < k && !err; i++)
        err = ss_map_queue(ss, first + (uint32_t)i, e->pend_pgno[i], js_crc32c(0, e->pend_buf + i * ps, ps), &id, 1);
    if (!err)
        err = ss_map_flush(ss);
    ss->mlen = 0;
    if (!err)
        err = ss_idx_append(ss, r, ss_enc_create(e, r));
    if (!err)
        err = os_fsync(ss->idx_fd, ss->idx_path);
    if (!err && e->invalid)
        err = e->invalid;   /* a save for it failed meanwhile */
    if (err) {
        commit_fail(ss, e, first, k);
    } else {
        for (size_t i = 0; i < k; i++) {
            ss->refs[first + i] = 1;
            e->map[e->pend_pgno[i]] = first + (uint32_t)i;
        }
        e->saved += k;
        e->ready = 1;
        free(e->pend_pgno);
        free(e->pend_buf);
        e->pend_pgno = NULL;
        e->pend_buf = NULL;
        e->npend = 0;
    }
    js_rwunlock(&ss->lock);
    return err;
}

void ss_abort(struct snapstore *ss, uint32_t id)
{
    js_wrlock(&ss->lock);
    snap_entry *e = ss_find_id(ss, id);
    if (e)
        commit_fail(ss, e, 0, 0);
    js_rwunlock(&ss->lock);
}

