/*
 * txn.c - sessions, transactions, and the commit path.
 *
 * One write transaction at a time (eng->writer_lock, held from begin to
 * commit or rollback).  Its changes are private page copies (tview).  Commit:
 *   1. encode one log record per changed page: an image for a new page
 *      (or when the delta would pass half a page), as the runs of its
 *      bytes that are not zero where that is shorter (REC_ZIMAGE), a byte-range delta
 *      against the committed page otherwise: the ranges the tree reported
 *      as it changed the page (tview.h), or where it did not, what a
 *      comparison with the committed page finds.  No page is logged whole for
 *      the sake of torn writes: the doublewrite buffer (store/dwb.c) covers
 *      those, off the commit path;
 *   2. append the records and a commit record to the log;
 *   3. install the pages into the buffer pool under the exclusive tree latch,
 *      stamped with the commit record's LSN (the private copy is swapped
 *      in as the frame's buffer);
 *   4. release the writer lock, then (durable) wait for the log flush, which
 *      group commit shares with every transaction that committed meanwhile.
 * Rollback drops the private copies: nothing reached the log or the pool.
 * A commit the log refuses (no space: JET_errLogDiskFull, see jetsnap.h)
 * is rolled back the same way; one whose flush fails after step 3 stays
 * installed and is rewritten by the log's retry.
 * Readers outside a write transaction take the tree latch shared for each
 * call, so they only ever see installed (committed) pages.  A read-only
 * transaction holds the latch shared from begin to end: every read in it
 * sees the same commit (a snapshot), and commits wait to install meanwhile.
 */
#include "tree/tree.h"

#include <stdlib.h>
#include <string.h>

struct js_session {
    js_engine *eng;
    atomic_int inside;          /* a thread is executing a call on it */
    int in_txn;
    int readonly;
    tview view;                 /* write transaction's view */
};

struct js_cursor {
    js_session *s;
    uint8_t key[JS_KEY_MAX];
    size_t klen;
    uint8_t *val;
    size_t vcap, vlen;
    int positioned;
};

/* ---------------- session entry ---------------- */

static JET_ERR enter(js_session *s)
{
    if (!s)
        return js_fail(JET_errInvalidParameter, "NULL session");
    if (atomic_exchange(&s->inside, 1))
        return js_fail(JET_errSessionSharingViolation, "session entered by two threads at once");
    js_errclear();
    return JET_errSuccess;
}

static void leave(js_session *s)
{
    atomic_store(&s->inside, 0);
}

void txn_engine_init(js_engine *eng)
{
    js_mutex_init(&eng->writer_lock);
    js_rwlock_init(&eng->tree_latch);
}

void txn_engine_destroy(js_engine *eng)
{
    free(eng->rec_buf);
    eng->rec_buf = NULL;
    js_mutex_destroy(&eng->writer_lock);
    js_rwlock_destroy(&eng->tree_latch);
}

JET_ERR txn_session_new(js_engine *eng, js_session **out)
{
    js_session *s = calloc(1, sizeof *s);
    if (!s)
        return js_fail(JET_errOutOfMemory, "session");
    s->eng = eng;
    tv_init(&s->view, eng->store, 1);
    *out = s;
    return JET_errSuccess;
}

static void txn_end(js_session *s)
{
    tv_release(&s->view);
    if (s->in_txn && !s->readonly)
        js_mutex_unlock(&s->eng->writer_lock);
    if (s->in_txn && s->readonly)
        js_rwunlock(&s->eng->tree_latch);
    s->in_txn = 0;
    s->readonly = 0;
}

void js_session_close(js_session *s)
{
    if (!s)
        return;
    if (s->in_txn)
        txn_end(s);
    js_engine *eng = s->eng;
    free(s);
    eng->hooks.session_closed(eng->hooks.ctx);
}

/* ---------------- transactions ---------------- */

static JET_ERR begin_locked(js_session *s, unsigned flags)
{
    if (s->in_txn)
        return js_fail(JET_errInTransaction, "a transaction is already open on this session");
    js_engine *eng = s->eng;
    JET_ERR err = eng->hooks.usable(eng->hooks.ctx);
    if (err)
        return err;
    if (flags & JS_TXN_READONLY) {
        js_rdlock(&eng->tree_latch);
    } else {
        /* Before the writer lock: the checkpoint this may wait for takes it. */
        err = eng->hooks.writable(eng->hooks.ctx);
        if (err)
            return err;
        js_mutex_lock(&eng->writer_lock);
        /* The instance may have turned fatal or started stopping while we
         * waited for the writer lock. */
        err = eng->hooks.usable(eng->hooks.ctx);
        if (err) {
            js_mutex_unlock(&eng->writer_lock);
            return err;
        }
    }
    s->in_txn = 1;
    s->readonly = (flags & JS_TXN_READONLY) != 0;
    tv_init(&s->view, eng->store, !s->readonly);
    return JET_errSuccess;
}

JET_ERR js_txn_begin(js_session *s, unsigned flags)
{
    JET_ERR err = enter(s);
    if (err)
        return err;
    if (flags & ~JS_TXN_READONLY)
        err = js_fail(JET_errInvalidGrbit, "unknown transaction flags 0x%x", flags);
    else
        err = begin_locked(s, flags);
    leave(s);
    return err;
}

/* One page's log record at r: a delta when it has a committed version and
 * the change is at most half a page, else an image: as the runs of its
 * bytes that are not zero (a new page, a split's halves, a compaction)
 * when that is shorter than the page.  Returns the record's length. */
static uint32_t encode_page_record(const tpage *tp, uint32_t ps, uint8_t *r)
{
    uint32_t len = tp->orig ? tv_encode_delta(tp, ps, r) : 0;
    uint8_t type = REC_DELTA;
    if (!len) {
        len = tv_encode_sparse(tp, ps, r);
        type = REC_ZIMAGE;
    }
    if (!len) {
        memcpy(r + REC_HDR + 4, tp->data, ps);
        len = REC_HDR + 4 + ps;
        type = REC_IMAGE;
    }
    r[0] = type;
    r[1] = 0;
    pg_put16(r + 2, 0);
    pg_put32(r + 4, len - REC_HDR);
    pg_put32(r + REC_HDR, tp->pgno);
    return len;
}

#define REC_BUF_KEEP (2u << 20)   /* bytes of commit records kept between commits */

static JET_ERR commit_locked(js_session *s, unsigned flags, uint64_t *pos)
{
    js_engine *eng = s->eng;
    tview *v = &s->view;
    uint32_t ps = eng->store->page_size;
    JET_ERR err = JET_errSuccess;
    uint8_t *recs = NULL, *temp_recs = NULL;
    uint32_t *lens = NULL;
    size_t nrec = 0, used = 0;
    int logging = eng->log->enabled;

    JS_ASSERT_HELD(&eng->writer_lock);
    uint64_t commit_lsn = 0, end_lsn = 0;

    if (v->npages == 0)
        goto done;   /* nothing changed: nothing to log */
    if (logging) {
        /* Room for every page whole.  Up to REC_BUF_KEEP it is kept for the
         * next commit (a busy batch's commits are alike): no large malloc,
         * and no fresh pages to fault in, each time. */
        size_t need = v->npages * (REC_HDR + 4 + (size_t)ps);
        if (need > REC_BUF_KEEP) {
            recs = temp_recs = malloc(need);
        } else {
            if (!eng->rec_buf)
                eng->rec_buf = malloc(REC_BUF_KEEP);
            recs = eng->rec_buf;
        }
        lens = malloc(v->npages * sizeof *lens);
        if (!recs || !lens) {
            err = js_fail(JET_errOutOfMemory, "commit records");
            goto done;
        }
        for (size_t i = 0; i < v->pages_cap; i++) {
            tpage *tp = &v->pages[i];
            if (!tp->pgno)
                continue;
            uint32_t len = encode_page_record(tp, ps, recs + used);
            lens[nrec++] = len;
            used += len;
        }
        err = log_append_txn(eng->log, recs, lens, nrec, ++eng->txn_seq, &commit_lsn, &end_lsn);
        if (err)
            goto done;   /* nothing of it counts (log.c): rolled back */
    }

    js_wrlock(&eng->tree_latch);
    for (size_t i = 0; i < v->pages_cap && !err; i++) {
        tpage *tp = &v->pages[i];
        if (!tp->pgno)
            continue;
        ss_before_change(eng->store->snap, eng->store, tp->pgno, commit_lsn);   /* lazy snapshots */
        frame *f = tp->orig;
        if (!f) {
            err = pool_get_for_install(&eng->store->pool, tp->pgno, &f);
            if (err)
                break;
        }
        /* The private copy becomes the frame's page and the frame's old
         * buffer goes with the view: no copy.  Safe under the exclusive
         * latch, since every reader of frame content holds it shared while
         * it reads (tree.h).  Frame buffers need no alignment (no O_DIRECT):
         * malloc's keeps commits off memalign's slow path. */
        uint8_t *old = f->data;
        f->data = tp->data;
        tp->data = old;
        pg_set_lsn(f->data, commit_lsn);
        pool_mark_dirty(&eng->store->pool, f);
        if (!tp->orig)
            pool_unpin(&eng->store->pool, f);
    }
    js_rwunlock(&eng->tree_latch);
    eng->last_commit_ms = js_time_ms();
    if (err)
        health_set_fatal(eng->health, err);   /* logged but not installed: stop here */

done:
    free(temp_recs);
    free(lens);
    txn_end(s);
    if (pos)
        *pos = err ? 0 : end_lsn;
    if (!err && logging && end_lsn) {
        int durable = (flags & JS_COMMIT_FLAG_DURABLE) ||
                      (!(flags & JS_COMMIT_FLAG_LAZY) && eng->durable);
        if (durable)
            err = log_flush(eng->log, end_lsn);
    }
    if (!err && pool_ndirty(&eng->store->pool) > eng->store->pool.cap / 2)
        eng->hooks.want_checkpoint(eng->hooks.ctx);
    return err;
}

JET_ERR js_txn_commit(js_session *s, unsigned flags)
{
    return js_txn_commit_pos(s, flags, NULL);
}

JET_ERR js_txn_commit_pos(js_session *s, unsigned flags, uint64_t *pos)
{
    if (pos)
        *pos = 0;
    JET_ERR err = enter(s);
    if (err)
        return err;
    if (!s->in_txn)
        err = js_fail(JET_errNotInTransaction, "commit without a transaction");
    else if (flags & ~(JS_COMMIT_FLAG_LAZY | JS_COMMIT_FLAG_DURABLE))
        err = js_fail(JET_errInvalidGrbit, "unknown commit flags 0x%x", flags);
    else if (s->readonly)
        txn_end(s);
    else
        err = commit_locked(s, flags, pos);
    leave(s);
    return err;
}

JET_ERR js_txn_rollback(js_session *s)
{
    JET_ERR err = enter(s);
    if (err)
        return err;
    if (!s->in_txn)
        err = js_fail(JET_errNotInTransaction, "rollback without a transaction");
    else
        txn_end(s);
    leave(s);
    return err;
}

static JET_ERR savepoint_op(js_session *s, int rollback)
{
    JET_ERR err = enter(s);
    if (err)
        return err;
    if (!s->in_txn || s->readonly)
        err = js_fail(JET_errNotInTransaction, "savepoint without a write transaction");
    else if (rollback && !s->view.sp_on)
        err = js_fail(JET_errInvalidParameter, "rollback to a savepoint never set");
    else if (rollback)
        tv_rollback_savepoint(&s->view);
    else
        tv_savepoint(&s->view);
    leave(s);
    return err;
}

JET_ERR js_txn_savepoint(js_session *s)
{
    return savepoint_op(s, 0);
}

JET_ERR js_txn_rollback_savepoint(js_session *s)
{
    return savepoint_op(s, 1);
}

/* ---------------- data calls ---------------- */

static JET_ERR check_key(const void *key, size_t klen)
{
    if (!key || klen == 0)
        return js_fail(JET_errInvalidParameter, "empty key");
    if (klen > JS_KEY_MAX)
        return js_fail(JET_errKeyTooBig, "key of %zu bytes (at most %u)", klen, JS_KEY_MAX);
    return JET_errSuccess;
}

/* Run a write operation in the open transaction, or in its own. */
static JET_ERR write_op(js_session *s, int del, const void *key, size_t klen, const void *val, size_t vlen)
{
    JET_ERR err = enter(s);
    if (err)
        return err;
    int implicit = !s->in_txn;
    if (!err)
        err = check_key(key, klen);
    if (!err && !del && vlen > JS_VALUE_MAX)
        err = js_fail(JET_errRecordTooBig, "value of %zu bytes (at most %u)", vlen, JS_VALUE_MAX);
    if (!err && !del && vlen && !val)
        err = js_fail(JET_errInvalidParameter, "NULL value");
    if (!err && s->in_txn && s->readonly)
        err = js_fail(JET_errInvalidParameter, "write in a read-only transaction");
    if (err)
        goto out;
    if (implicit) {
        err = begin_locked(s, 0);
        if (err)
            goto out;
    }
    err = del ? bt_del(&s->view, key, klen) : bt_put(&s->view, key, klen, val, vlen);
    if (implicit) {
        if (err)
            txn_end(s);
        else
            err = commit_locked(s, 0, NULL);
    } else if (err && err != JET_errRecordNotFound) {
        /* A half-applied change must not be committed: put the pages back
         * as of the savepoint, or without one drop the transaction, and
         * tell the caller. */
        if (s->view.sp_on)
            tv_rollback_savepoint(&s->view);
        else
            txn_end(s);
    }
out:
    leave(s);
    return err;
}

JET_ERR js_put(js_session *s, const void *key, size_t klen, const void *val, size_t vlen)
{
    return write_op(s, 0, key, klen, val, vlen);
}

JET_ERR js_del(js_session *s, const void *key, size_t klen)
{
    return write_op(s, 1, key, klen, NULL, 0);
}

/* Read calls: inside a write transaction through its view, else through a
 * fresh read view under the shared tree latch. */
typedef JET_ERR (*read_fn)(tview *v, void *arg);

static JET_ERR read_op(js_session *s, read_fn fn, void *arg)
{
    JET_ERR err = enter(s);
    if (err)
        return err;
    err = s->eng->hooks.usable(s->eng->hooks.ctx);
    if (err)
        goto out;
    if (s->in_txn && !s->readonly) {
        err = fn(&s->view, arg);
    } else {
        /* A read-only transaction already holds the latch. */
        int own_latch = !s->in_txn;
        tview rv;
        tv_init(&rv, s->eng->store, 0);
        if (own_latch)
            js_rdlock(&s->eng->tree_latch);
        err = fn(&rv, arg);
        tv_release(&rv);
        if (own_latch)
            js_rwunlock(&s->eng->tree_latch);
    }
out:
    leave(s);
    return err;
}

struct get_arg { const void *key; size_t klen; void **val; size_t *vlen; };

static JET_ERR get_fn(tview *v, void *p)
{
    struct get_arg *a = p;
    uint8_t *val = NULL;
    JET_ERR err = bt_get(v, a->key, a->klen, &val, a->vlen);
    if (!err)
        *a->val = val;
    return err;
}

JET_ERR js_get(js_session *s, const void *key, size_t klen, void **val, size_t *vlen)
{
    if (!val || !vlen)
        return js_fail(JET_errInvalidParameter, "NULL output");
    JET_ERR err = check_key(key, klen);
    if (err)
        return err;
    struct get_arg a = { key, klen, val, vlen };
    return read_op(s, get_fn, &a);
}

struct prefetch_arg { const js_keyref *keys; size_t n; };

static JET_ERR prefetch_fn(tview *v, void *p)
{
    struct prefetch_arg *a = p;
    return bt_prefetch(v, a->keys, a->n);
}

JET_ERR js_prefetch(js_session *s, const js_keyref *keys, size_t n)
{
    if (n == 0)
        return JET_errSuccess;
    if (!keys)
        return js_fail(JET_errInvalidParameter, "NULL keys");
    struct prefetch_arg a = { keys, n };
    return read_op(s, prefetch_fn, &a);
}

static JET_ERR count_fn(tview *v, void *p)
{
    return bt_count(v, p);
}

JET_ERR js_count(js_session *s, uint64_t *count)
{
    if (!count)
        return js_fail(JET_errInvalidParameter, "NULL output");
    return read_op(s, count_fn, count);
}

/* ---------------- cursors ---------------- */

JET_ERR js_cursor_open(js_session *s, js_cursor **out)
{
    if (!s || !out)
        return js_fail(JET_errInvalidParameter, "NULL argument");
    js_cursor *c = calloc(1, sizeof *c);
    if (!c)
        return js_fail(JET_errOutOfMemory, "cursor");
    c->s = s;
    *out = c;
    return JET_errSuccess;
}

struct seek_arg { js_cursor *c; const uint8_t *key; size_t klen; int after; };

static JET_ERR seek_fn(tview *v, void *p)
{
    struct seek_arg *a = p;
    js_cursor *c = a->c;
    uint8_t k[JS_KEY_MAX];
    size_t kl = 0;
    JET_ERR err = bt_seek(v, a->key, a->klen, a->after, k, &kl, &c->val, &c->vcap, &c->vlen);
    if (!err) {
        memcpy(c->key, k, kl);
        c->klen = kl;
    }
    return err;
}

JET_ERR js_cursor_seek(js_cursor *c, const void *key, size_t klen)
{
    if (!c || (klen && !key) || klen > JS_KEY_MAX)
        return js_fail(JET_errInvalidParameter, "bad cursor seek argument");
    struct seek_arg a = { c, key, klen, 0 };
    JET_ERR err = read_op(c->s, seek_fn, &a);
    c->positioned = (err == JET_errSuccess);
    return err;
}

JET_ERR js_cursor_next(js_cursor *c)
{
    if (!c)
        return js_fail(JET_errInvalidParameter, "NULL cursor");
    if (!c->positioned)
        return js_fail(JET_errRecordNotFound, "cursor is not on a key");
    uint8_t k[JS_KEY_MAX];
    memcpy(k, c->key, c->klen);
    struct seek_arg a = { c, k, c->klen, 1 };
    JET_ERR err = read_op(c->s, seek_fn, &a);
    c->positioned = (err == JET_errSuccess);
    return err;
}

JET_ERR js_cursor_key(js_cursor *c, const void **key, size_t *klen)
{
    if (!c || !c->positioned || !key || !klen)
        return js_fail(JET_errRecordNotFound, "cursor is not on a key");
    *key = c->key;
    *klen = c->klen;
    return JET_errSuccess;
}

JET_ERR js_cursor_value(js_cursor *c, const void **val, size_t *vlen)
{
    if (!c || !c->positioned || !val || !vlen)
        return js_fail(JET_errRecordNotFound, "cursor is not on a key");
    *val = c->val ? c->val : (const void *)c->key;
    *vlen = c->vlen;
    return JET_errSuccess;
}

void js_cursor_close(js_cursor *c)
{
    if (!c)
        return;
    free(c->val);
    free(c);
}
