/*
 * buf.c - the buffer pool and the page-range lock.
 *
 * The pool holds committed page images only (no-steal: a transaction's
 * changes live in its private copies until commit installs them).  Frames
 * are found through a hash table; a clock hand evicts clean, unpinned
 * frames when the pool is at its soft limit.  Dirty frames are never
 * evicted: the checkpoint cleans them, and the pool may grow past its limit
 * meanwhile (it asks for a checkpoint when half the frames are dirty).
 *
 * Locking: pool->lock guards changes to the hash chains and the dirty
 * bits; frame content is guarded by the tree layer's tree_latch (tree.h).  A frame
 * being read from disk has loading set; other threads wait on pool->loaded.
 *
 * Cached pages are found without the lock (pool_pin_fast), because every
 * read of every page goes through here and one mutex made two readers
 * slower than one.  Frames are never freed while the pool lives, only
 * reused, so a lock-free reader may always dereference one.  The race with
 * eviction is settled Dekker-style on two seq_cst atomics: the reader
 * increments pins and then re-reads pgno; the evictor stores an invalid
 * pgno and then re-reads pins.  At least one of them sees the other and
 * backs off (the reader then takes the locked path).
 */
#include "store/store.h"

#include <stdlib.h>
#include <string.h>

/* ---------------- page-range lock ---------------- */

void rl_init(range_lock *rl)
{
    memset(rl, 0, sizeof *rl);
    js_mutex_init(&rl->lock);
    pthread_cond_init(&rl->changed, NULL);
}

void rl_destroy(range_lock *rl)
{
    js_mutex_destroy(&rl->lock);
    pthread_cond_destroy(&rl->changed);
}

static int rl_conflicts(const range_lock *rl, uint64_t lo, uint64_t hi, int writer)
{
    JS_ASSERT_HELD(&((range_lock *)rl)->lock);
    for (int i = 0; i < RL_SLOTS; i++)
        if (rl->used[i] && (rl->writer[i] || writer) && rl->lo[i] < hi && lo < rl->hi[i])
            return 1;
    return 0;
}

int rl_lock(range_lock *rl, uint64_t lo, uint64_t hi, int writer)
{
    js_mutex_lock(&rl->lock);
    for (;;) {
        int slot = -1;
        for (int i = 0; i < RL_SLOTS && slot < 0; i++)
            if (!rl->used[i])
                slot = i;
        if (slot >= 0 && !rl_conflicts(rl, lo, hi, writer)) {
            rl->used[slot] = 1;
            rl->lo[slot] = lo;
            rl->hi[slot] = hi;
            rl->writer[slot] = writer;
            js_mutex_unlock(&rl->lock);
            return slot;
        }
        js_cond_wait(&rl->changed, &rl->lock);
    }
}

void rl_unlock(range_lock *rl, int slot)
{
    js_mutex_lock(&rl->lock);
    rl->used[slot] = 0;
    pthread_cond_broadcast(&rl->changed);
    js_mutex_unlock(&rl->lock);
}

/* ---------------- pool ---------------- */

static size_t pool_bucket(const buf_pool *pool, uint32_t pgno)
{
    return (size_t)((pgno * 2654435761u) % pool->nbuckets);
}

/* What pool_stock_spares keeps ready, in bytes: a growing tree takes a
 * buffer for good with every new page (about 250 per 50 ms tick at 300k
 * SETs/s), and a fresh one costs its first toucher a page fault. */
#define POOL_STOCK_BYTES (4u << 20)

JET_ERR pool_init(buf_pool *pool, uint32_t page_size, uint64_t cache_bytes)
{
    memset(pool, 0, sizeof *pool);
    pool->page_size = page_size;
    pool->cap = cache_bytes / page_size;
    if (pool->cap < 64)
        pool->cap = 64;
    pool->nbuckets = pool->cap * 2 + 1;
    arena_init(&pool->arena);
    pool->hash = arena_alloc(&pool->arena, pool->nbuckets * sizeof *pool->hash);   /* NULL heads */
    pool->frames_cap = pool->cap;
    pool->frames = calloc(pool->frames_cap, sizeof *pool->frames);
    if (!pool->hash || !pool->frames) {
        free(pool->frames);
        arena_destroy(&pool->arena);
        return js_fail(JET_errOutOfMemory, "buffer pool of %zu frames", pool->cap);
    }
    js_mutex_init(&pool->lock);
    js_mutex_init(&pool->spare_lock);
    pthread_cond_init(&pool->loaded, NULL);
    return JET_errSuccess;
}

uint8_t *pool_page_alloc(buf_pool *pool)
{
    js_mutex_lock(&pool->spare_lock);
    uint8_t *b = pool->spare;
    if (b) {
        memcpy(&pool->spare, b, sizeof pool->spare);
        pool->nspare--;
    }
    js_mutex_unlock(&pool->spare_lock);
    return b ? b : arena_alloc(&pool->arena, pool->page_size);
}

void pool_stock_spares(buf_pool *pool)
{
    size_t want = POOL_STOCK_BYTES / pool->page_size;
    js_mutex_lock(&pool->spare_lock);
    size_t have = pool->nspare;
    js_mutex_unlock(&pool->spare_lock);
    /* Faulted in here, not by a committer: the buffers carved below, and
     * as much again after them for new frames. */
    arena_prefault(&pool->arena, (have < want ? want - have : 0) * pool->page_size + POOL_STOCK_BYTES);
    for (; have < want; have++) {
        uint8_t *b = arena_alloc(&pool->arena, pool->page_size);
        if (!b)
            break;
        pool_page_free(pool, b);
    }
}

void pool_page_free(buf_pool *pool, uint8_t *buf)
{
    if (!buf)
        return;
    js_mutex_lock(&pool->spare_lock);
    memcpy(buf, &pool->spare, sizeof pool->spare);
    pool->spare = buf;
    pool->nspare++;
    js_mutex_unlock(&pool->spare_lock);
}

void pool_destroy(buf_pool *pool)
{
    /* Frames, their buffers, the spares and the hash are the arena's. */
    free(pool->frames);
    arena_destroy(&pool->arena);
    js_mutex_destroy(&pool->lock);
    js_mutex_destroy(&pool->spare_lock);
    pthread_cond_destroy(&pool->loaded);
    memset(pool, 0, sizeof *pool);
}

static frame *pool_find_locked(buf_pool *pool, uint32_t pgno)
{
    JS_ASSERT_HELD(&pool->lock);
    for (frame *f = pool->hash[pool_bucket(pool, pgno)]; f; f = f->hnext)
        if (f->pgno == pgno)
            return f;
    return NULL;
}

/* Unlink f, hashed under pgno, from its chain.  Its own hnext stays, so a
 * lock-free reader standing on f can still walk on. */
static void pool_unhash_locked(buf_pool *pool, frame *f, uint32_t pgno)
{
    JS_ASSERT_HELD(&pool->lock);
    _Atomic(frame *) *pp = &pool->hash[pool_bucket(pool, pgno)];
    while (*pp && *pp != f)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = f->hnext;
}

#define FAST_WALK_MAX 64

/* pgno's frame in its hash chain, walked without the lock and at most
 * FAST_WALK_MAX steps (a chain that moves meanwhile may end the walk
 * early): NULL when not found that way.  Not pinned. */
static frame *chain_find(buf_pool *pool, uint32_t pgno)
{
    int steps = 0;
    for (frame *f = pool->hash[pool_bucket(pool, pgno)]; f && steps < FAST_WALK_MAX; f = f->hnext, steps++)
        if (f->pgno == pgno)
            return f;
    return NULL;
}

/* Pin pgno's frame without the lock; NULL sends the caller to the locked
 * path (not cached, being loaded or evicted, or a chain that moved). */
static frame *pool_pin_fast(buf_pool *pool, uint32_t pgno)
{
    frame *f = chain_find(pool, pgno);
    if (!f)
        return NULL;
    f->pins++;
    if (f->pgno == pgno && !f->loading) {
        f->ref = 1;
        return f;
    }
    f->pins--;
    return NULL;
}

/* A frame for pgno, hashed and pinned: an evicted clean frame when the pool
 * is full, else a new one.  loading is set before the frame is visible.
 * NULL on allocation failure. */
static frame *pool_take_frame_locked(buf_pool *pool, uint32_t pgno, int loading)
{
    JS_ASSERT_HELD(&pool->lock);
    frame *f = NULL;
    if (pool->nframes >= pool->cap) {
        for (size_t tries = 0; tries < pool->nframes * 2 && !f; tries++) {
            frame *c = pool->frames[pool->clock];
            pool->clock = (pool->clock + 1) % pool->nframes;
            if (c->pins || c->dirty || c->writing || c->loading)
                continue;
            if (c->ref) {
                c->ref = 0;
                continue;
            }
            uint32_t old = c->pgno;
            c->pgno = UINT32_MAX;
            if (c->pins) {
                c->pgno = old;   /* a lock-free reader pinned it meanwhile */
                continue;
            }
            pool_unhash_locked(pool, c, old);
            f = c;
        }
    }
    if (!f) {
        if (pool->nframes == pool->frames_cap) {
            size_t ncap = pool->frames_cap * 2;
            frame **nf = realloc(pool->frames, ncap * sizeof *nf);
            if (!nf)
                return NULL;
            pool->frames = nf;
            pool->frames_cap = ncap;
        }
        uint8_t *data = pool_page_alloc(pool);   /* a spare: already in memory */
        f = data ? arena_alloc(&pool->arena, sizeof *f) : NULL;
        if (!f) {
            pool_page_free(pool, data);
            return NULL;
        }
        f->data = data;
        pool->frames[pool->nframes++] = f;
    }
    /* pins: an increment, not a store, so a lock-free reader's transient
     * pin and unpin on this reused frame cannot be lost.  An evicted frame
     * was neither dirty nor writing, so it is on no unwritten list. */
    f->pins++;
    f->dirty = 0;
    f->writing = 0;
    f->ref = 1;
    f->loading = (uint8_t)loading;
    f->pgno = pgno;
    size_t b = pool_bucket(pool, pgno);
    f->hnext = pool->hash[b];
    pool->hash[b] = f;
    return f;
}

/* The frame of pgno, pinned, once no thread is loading it; NULL when the
 * page is not in the pool.  Called and returns with pool->lock held. */
static frame *pool_pin_locked(buf_pool *pool, uint32_t pgno)
{
    JS_ASSERT_HELD(&pool->lock);
    frame *f;
    for (;;) {
        f = pool_find_locked(pool, pgno);
        if (!f || !f->loading)
            break;
        js_cond_wait(&pool->loaded, &pool->lock);
    }
    if (f) {
        f->pins++;
        f->ref = 1;
    }
    return f;
}

JET_ERR pool_get(db_store *st, uint32_t pgno, int allow_zero, frame **out)
{
    buf_pool *pool = &st->pool;
    JET_ERR err = JET_errSuccess;
    frame *f = pool_pin_fast(pool, pgno);
    if (f) {
        *out = f;
        return JET_errSuccess;
    }
    js_mutex_lock(&pool->lock);
    f = pool_pin_locked(pool, pgno);
    if (f) {
        js_mutex_unlock(&pool->lock);
        *out = f;
        return JET_errSuccess;
    }
    f = pool_take_frame_locked(pool, pgno, 1);
    if (!f) {
        js_mutex_unlock(&pool->lock);
        return js_fail(JET_errOutOfMemory, "buffer pool: no frame for page %u", pgno);
    }
    js_mutex_unlock(&pool->lock);

    size_t got = 0;
    int slot = rl_lock(&st->rl, pgno, (uint64_t)pgno + 1, 0);
    err = os_pread(st->fd, st->path, f->data, pool->page_size,
                   (uint64_t)pgno * pool->page_size, &got);
    rl_unlock(&st->rl, slot);
    if (!err) {
        if (got < pool->page_size)
            memset(f->data + got, 0, pool->page_size - got);
        /* A page the tree or the free list names is in use: all zero is
         * damage (page.h), except while redo has yet to write it. */
        char why[64];
        int vst = pg_check(f->data, pool->page_size, pgno, allow_zero ? 0 : UINT32_MAX, why, sizeof why);
        if (vst == PG_BAD)
            err = JS_CORRUPT(JET_errReadVerifyFailure, "page %u of " JS_DB_FILE ": %s", pgno, why);
        else if (vst == PG_ZERO)
            memset(f->data, 0, pool->page_size);
    }

    js_mutex_lock(&pool->lock);
    if (err) {
        /* Invalidate before clearing loading: a lock-free reader must never
         * see this page number on a frame that is not loaded. */
        pool_unhash_locked(pool, f, pgno);
        f->pgno = UINT32_MAX;
        f->pins--;
    }
    f->loading = 0;
    pthread_cond_broadcast(&pool->loaded);
    js_mutex_unlock(&pool->lock);
    if (!err)
        *out = f;
    return err;
}

JET_ERR pool_get_for_install(buf_pool *pool, uint32_t pgno, frame **out)
{
    js_mutex_lock(&pool->lock);
    frame *f = pool_pin_locked(pool, pgno);
    if (!f)
        f = pool_take_frame_locked(pool, pgno, 0);
    js_mutex_unlock(&pool->lock);
    if (!f)
        return js_fail(JET_errOutOfMemory, "buffer pool: no frame for page %u", pgno);
    *out = f;
    return JET_errSuccess;
}

frame *pool_lookup(buf_pool *pool, uint32_t pgno)
{
    js_mutex_lock(&pool->lock);
    frame *f = pool_find_locked(pool, pgno);
    if (f && f->loading)
        f = NULL;
    if (f)
        f->pins++;
    js_mutex_unlock(&pool->lock);
    return f;
}

void pool_usage(buf_pool *pool, pool_usage_info *out)
{
    js_mutex_lock(&pool->lock);
    out->frames = pool->nframes;
    out->dirty = pool->ndirty;
    out->cap = pool->cap;
    js_mutex_unlock(&pool->lock);
    js_mutex_lock(&pool->spare_lock);
    out->spares = pool->nspare;
    js_mutex_unlock(&pool->spare_lock);
    arena_usage(&pool->arena, &out->mapped, &out->handed);
}

void pool_prefetch(buf_pool *pool, uint32_t pgno, int stage)
{
    _Atomic(frame *) *head = &pool->hash[pool_bucket(pool, pgno)];
    if (stage == POOL_PREFETCH_BUCKET) {
        __builtin_prefetch((const void *)head);
        return;
    }
    if (stage == POOL_PREFETCH_FRAME) {
        frame *first = *head;
        if (first)
            __builtin_prefetch(first);
        return;
    }
    /* No pin: an evicted frame's buffer only holds another page, and a
     * prefetch of it is harmless (frames and buffers are never unmapped
     * while the pool lives). */
    frame *f = chain_find(pool, pgno);
    if (f && !f->loading) {
        const uint8_t *d = f->data;
        /* The whole page: a write copies it.  At most 8 KiB, so that a
         * group of prefetches stays well inside the L2 cache. */
        uint32_t upto = pool->page_size < 8192 ? pool->page_size : 8192;
        for (uint32_t off = 0; off < upto; off += 64)
            __builtin_prefetch(d + off);
    }
}

void pool_unpin(buf_pool *pool, frame *f)
{
    (void)pool;
    f->pins--;
}

/* The unwritten list holds exactly the frames that are dirty or writing. */
static void unwritten_add_locked(buf_pool *pool, frame *f)
{
    JS_ASSERT_HELD(&pool->lock);
    f->uprev = NULL;
    f->unext = pool->unwritten;
    if (pool->unwritten)
        pool->unwritten->uprev = f;
    pool->unwritten = f;
    pool->nunwritten++;
}

static void unwritten_remove_locked(buf_pool *pool, frame *f)
{
    JS_ASSERT_HELD(&pool->lock);
    if (f->uprev)
        f->uprev->unext = f->unext;
    else
        pool->unwritten = f->unext;
    if (f->unext)
        f->unext->uprev = f->uprev;
    f->uprev = f->unext = NULL;
    pool->nunwritten--;
}

void pool_mark_dirty(buf_pool *pool, frame *f)
{
    js_mutex_lock(&pool->lock);
    if (!f->dirty) {
        if (!f->writing)
            unwritten_add_locked(pool, f);
        f->dirty = 1;
        pool->ndirty++;
    }
    js_mutex_unlock(&pool->lock);
}

void pool_clear_dirty(buf_pool *pool, frame *f)
{
    js_mutex_lock(&pool->lock);
    if (f->dirty) {
        f->dirty = 0;
        f->writing = 1;
        pool->ndirty--;
    }
    js_mutex_unlock(&pool->lock);
}

void pool_written(buf_pool *pool, const uint32_t *pgnos, uint32_t n)
{
    js_mutex_lock(&pool->lock);
    for (uint32_t i = 0; i < n; i++) {
        frame *f = pool_find_locked(pool, pgnos[i]);
        if (f && f->writing) {
            f->writing = 0;
            if (!f->dirty)
                unwritten_remove_locked(pool, f);
        }
    }
    js_mutex_unlock(&pool->lock);
}

size_t pool_ndirty(buf_pool *pool)
{
    js_mutex_lock(&pool->lock);
    size_t n = pool->ndirty;
    js_mutex_unlock(&pool->lock);
    return n;
}

static JET_ERR pool_list(buf_pool *pool, int writing, uint32_t **out, size_t *n)
{
    js_mutex_lock(&pool->lock);
    size_t cnt = 0;
    uint32_t *list = malloc((pool->nunwritten + 1) * sizeof *list);
    if (list)
        for (frame *f = pool->unwritten; f; f = f->unext)
            if (f->dirty || writing)
                list[cnt++] = f->pgno;
    js_mutex_unlock(&pool->lock);
    if (!list)
        return js_fail(JET_errOutOfMemory, "dirty page list");
    qsort(list, cnt, sizeof *list, js_cmp_u32);
    *out = list;
    *n = cnt;
    return JET_errSuccess;
}

JET_ERR pool_dirty_list(buf_pool *pool, uint32_t **out, size_t *n)
{
    return pool_list(pool, 0, out, n);
}

JET_ERR pool_unwritten_list(buf_pool *pool, uint32_t **out, size_t *n)
{
    return pool_list(pool, 1, out, n);
}
