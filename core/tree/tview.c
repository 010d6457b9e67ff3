/*
 * tview.c - page access for read and write views (see tview.h).
 */
#include "tree/tview.h"
#include "log/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The meta page's bytes in use: the page header and the META_* fields
 * (store.h), the last of which is the u64 META_COUNT. */
#define META_LIVE (META_COUNT + 8u)

void tv_init(tview *v, db_store *st, int writable)
{
    memset(v, 0, sizeof *v);
    v->st = st;
    v->writable = writable;
}

void tv_release(tview *v)
{
    for (size_t i = 0; i < v->npins; i++)
        pool_unpin(&v->st->pool, v->pins[i]);
    free(v->pins);
    for (size_t i = 0; i < v->pages_cap; i++) {
        pool_page_free(&v->st->pool, v->pages[i].data);
        pool_page_free(&v->st->pool, v->pages[i].undo);
    }
    free(v->pages);
    free(v->sp_list);
    db_store *st = v->st;
    int w = v->writable;
    memset(v, 0, sizeof *v);
    v->st = st;
    v->writable = w;
}

static tpage *tv_find(tview *v, uint32_t pgno)
{
    if (!v->pages_cap)
        return NULL;
    size_t mask = v->pages_cap - 1;
    for (size_t i = (pgno * 2654435761u) & mask;; i = (i + 1) & mask) {
        if (v->pages[i].pgno == pgno)
            return &v->pages[i];
        if (v->pages[i].pgno == 0)
            return NULL;
    }
}

static JET_ERR tv_grow(tview *v)
{
    size_t ncap = v->pages_cap ? v->pages_cap * 2 : 64;
    tpage *np = calloc(ncap, sizeof *np);
    if (!np)
        return js_fail(JET_errOutOfMemory, "transaction page table");
    for (size_t i = 0; i < v->pages_cap; i++) {
        if (!v->pages[i].pgno)
            continue;
        size_t j = (v->pages[i].pgno * 2654435761u) & (ncap - 1);
        while (np[j].pgno)
            j = (j + 1) & (ncap - 1);
        np[j] = v->pages[i];
    }
    free(v->pages);
    v->pages = np;
    v->pages_cap = ncap;
    return JET_errSuccess;
}

static tpage *tv_insert(tview *v, uint32_t pgno, JET_ERR *err)
{
    if ((v->npages + 1) * 2 > v->pages_cap && (*err = tv_grow(v)) != JET_errSuccess)
        return NULL;
    size_t mask = v->pages_cap - 1;
    size_t i = (pgno * 2654435761u) & mask;
    while (v->pages[i].pgno)
        i = (i + 1) & mask;
    v->pages[i].pgno = pgno;
    v->npages++;
    return &v->pages[i];
}

static JET_ERR tv_pin(tview *v, uint32_t pgno, frame **out)
{
    if (v->npins == v->pins_cap) {
        size_t ncap = v->pins_cap ? v->pins_cap * 2 : 16;
        frame **np = realloc(v->pins, ncap * sizeof *np);
        if (!np)
            return js_fail(JET_errOutOfMemory, "view pin list");
        v->pins = np;
        v->pins_cap = ncap;
    }
    JET_ERR err = pool_get(v->st, pgno, v->st->recovering, out);
    if (!err)
        v->pins[v->npins++] = *out;
    return err;
}

const uint8_t *tv_read(tview *v, uint32_t pgno, JET_ERR *err)
{
    tpage *tp = tv_find(v, pgno);
    if (tp)
        return tp->data;
    frame *f;
    *err = tv_pin(v, pgno, &f);
    return *err ? NULL : f->data;
}

/* ---------------- savepoints ---------------- */

/* Room for one more page number in sp_list (asked before anything changes,
 * so a failure leaves the view as it was). */
static JET_ERR sp_reserve(tview *v)
{
    if (!v->sp_on || v->sp_n < v->sp_cap)
        return JET_errSuccess;
    size_t ncap = v->sp_cap ? v->sp_cap * 2 : 32;
    uint32_t *nl = realloc(v->sp_list, ncap * sizeof *nl);
    if (!nl)
        return js_fail(JET_errOutOfMemory, "savepoint page list");
    v->sp_list = nl;
    v->sp_cap = ncap;
    return JET_errSuccess;
}

static void sp_note(tview *v, tpage *tp, uint8_t state)
{
    tp->sp_gen = v->sp_gen;
    tp->sp_state = state;
    v->sp_list[v->sp_n++] = tp->pgno;
}

/* Copy the bytes that make src's content into dst: for a B+tree page its
 * header and slot array, and its cells (the free middle is not content). */
static void copy_live(uint8_t *dst, const uint8_t *src, uint32_t ps)
{
    uint8_t t = pg_type(src);
    if (t == PG_LEAF || t == PG_BRANCH) {
        uint32_t lo = PG_HDR_SIZE + 2u * pg_nslots(src), hi = pg_cell_lo(src);
        if (lo <= hi && hi <= ps) {
            memcpy(dst, src, lo);
            memcpy(dst + hi, src + hi, ps - hi);
            return;
        }
    } else if (t == PG_META) {
        memcpy(dst, src, META_LIVE);
        return;
    }
    memcpy(dst, src, ps);
}

/* First change of an existing private page since the savepoint: keep it. */
static JET_ERR sp_save(tview *v, tpage *tp)
{
    JET_ERR err = sp_reserve(v);
    if (err)
        return err;
    if (!tp->undo && !(tp->undo = pool_page_alloc(&v->st->pool)))
        return js_fail(JET_errOutOfMemory, "savepoint copy of page %u", tp->pgno);
    copy_live(tp->undo, tp->data, v->st->page_size);
    sp_note(v, tp, TP_SP_SAVED);
    return JET_errSuccess;
}

void tv_savepoint(tview *v)
{
    v->sp_on = 1;
    v->sp_gen++;
    v->sp_n = 0;
}

/* Drop a private page from the table (backward-shift deletion, so the
 * linear probing of tv_find still finds every other page). */
static void tv_remove(tview *v, tpage *tp)
{
    size_t mask = v->pages_cap - 1;
    size_t i = (size_t)(tp - v->pages);
    pool_page_free(&v->st->pool, tp->data);
    pool_page_free(&v->st->pool, tp->undo);
    memset(tp, 0, sizeof *tp);
    for (size_t j = (i + 1) & mask; v->pages[j].pgno; j = (j + 1) & mask) {
        size_t k = (v->pages[j].pgno * 2654435761u) & mask;
        /* j stays when its home k lies cyclically in (i, j]. */
        if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
            continue;
        v->pages[i] = v->pages[j];
        memset(&v->pages[j], 0, sizeof v->pages[j]);
        i = j;
    }
    v->npages--;
}

void tv_rollback_savepoint(tview *v)
{
    for (size_t k = 0; k < v->sp_n; k++) {
        tpage *tp = tv_find(v, v->sp_list[k]);
        if (!tp || tp->sp_gen != v->sp_gen)
            continue;
        if (tp->sp_state == TP_SP_SAVED)
            copy_live(tp->data, tp->undo, v->st->page_size);
        else if (tp->sp_state == TP_SP_CREATED)
            tv_remove(v, tp);
    }
    v->sp_n = 0;
    v->sp_gen++;
}

/* ---------------- writing ---------------- */

/* The private copy of pgno, made on first use; *tp_out its entry. */
static uint8_t *write_copy(tview *v, uint32_t pgno, tpage **tp_out, JET_ERR *err)
{
    tpage *tp = tv_find(v, pgno);
    if (tp) {
        if (v->sp_on && tp->sp_gen != v->sp_gen && (*err = sp_save(v, tp)) != JET_errSuccess)
            return NULL;
        *tp_out = tp;
        return tp->data;
    }
    if ((*err = sp_reserve(v)) != JET_errSuccess)
        return NULL;
    frame *f;
    *err = tv_pin(v, pgno, &f);
    if (*err)
        return NULL;
    uint8_t *copy = pool_page_alloc(&v->st->pool);   /* becomes the frame's at commit (txn.c) */
    if (!copy) {
        *err = js_fail(JET_errOutOfMemory, "private copy of page %u", pgno);
        return NULL;
    }
    tp = tv_insert(v, pgno, err);
    if (!tp) {
        pool_page_free(&v->st->pool, copy);
        return NULL;
    }
    /* Whole, free middle included: the page committed from this copy
     * must be byte for byte what redo rebuilds from the file and the
     * log, or a lazy snapshot that read it in memory would change across
     * a crash (tried: copying only the content broke exactly that). */
    memcpy(copy, f->data, v->st->page_size);
    tp->data = copy;
    tp->orig = f;
    if (v->sp_on)
        sp_note(v, tp, TP_SP_CREATED);
    *tp_out = tp;
    return copy;
}

uint8_t *tv_write(tview *v, uint32_t pgno, JET_ERR *err)
{
    tpage *tp = NULL;
    uint8_t *pg = write_copy(v, pgno, &tp, err);
    if (pg)
        tp->whole = 1;   /* changed anywhere: commit compares */
    return pg;
}

uint8_t *tv_write_part(tview *v, uint32_t pgno, JET_ERR *err)
{
    tpage *tp = NULL;
    return write_copy(v, pgno, &tp, err);
}

/* Ranges closer than this merge: a run's own header costs 4 bytes, and a
 * shorter table keeps more pages off the comparison. */
#define TP_RANGE_GAP 16u

void tv_wrote(tview *v, uint32_t pgno, uint32_t off, uint32_t len)
{
    tpage *tp = tv_find(v, pgno);
    if (!tp || tp->whole || !len)
        return;
    if (len > v->st->page_size / 4) {
        /* A compaction moves every cell, yet many land where they were:
         * the comparison logs less, and costs little next to the move. */
        tp->whole = 1;
        return;
    }
    uint32_t lo = off, hi = off + len, n = tp->nrng, i = 0, j;
    while (i < n && (uint32_t)tp->rng[i].hi + TP_RANGE_GAP < lo)
        i++;
    /* [i, j): the ranges [lo, hi) overlaps or nearly touches. */
    for (j = i; j < n && tp->rng[j].lo <= hi + TP_RANGE_GAP; j++) {
        if (tp->rng[j].lo < lo)
            lo = tp->rng[j].lo;
        if (tp->rng[j].hi > hi)
            hi = tp->rng[j].hi;
    }
    if (j == i) {
        if (n == TP_RANGES) {
            tp->whole = 1;
            return;
        }
        memmove(&tp->rng[i + 1], &tp->rng[i], (n - i) * sizeof tp->rng[0]);
        tp->nrng++;
    } else if (j > i + 1) {
        memmove(&tp->rng[i + 1], &tp->rng[j], (n - j) * sizeof tp->rng[0]);
        tp->nrng = (uint8_t)(n - (j - i - 1));
    }
    tp->rng[i].lo = (uint16_t)lo;
    tp->rng[i].hi = (uint16_t)hi;
}

/* ---------------- commit's deltas ---------------- */

#define DELTA_RUNS (REC_HDR + 6u)   /* where a delta record's runs start */

/* Append run [start, end) of page to the record at out (runs end at *pos).
 * 0 when the record would pass limit bytes. */
static int put_run(uint8_t *out, uint32_t *pos, const uint8_t *page, uint32_t start, uint32_t end,
                   uint32_t limit)
{
    uint32_t len = end - start;
    if (*pos + 4 + len > limit)
        return 0;
    pg_put16(out + *pos, (uint16_t)start);
    pg_put16(out + *pos + 2, (uint16_t)len);
    memcpy(out + *pos + 4, page + start, len);
    *pos += 4 + len;
    return 1;
}

#define DELTA_STRIDE 64u   /* a multiple of 8, as the page offsets */

/* Runs of the bytes in [from, to) (multiples of 8) where new_ differs from
 * old, appended at *pos (*n counts them).  0 when the record would pass
 * limit bytes. */
static int compare_runs(const uint8_t *old, const uint8_t *new_, uint32_t from, uint32_t to, uint32_t limit,
                        uint8_t *out, uint32_t *pos, uint32_t *n)
{
    uint32_t i = from;
    while (i < to) {
        /* Most of a page is unchanged: skip it 64 bytes at a time (eight
         * words or'ed, no branch per word), then find the changed word. */
        while (i + DELTA_STRIDE <= to) {
            uint64_t x = 0;
            for (uint32_t k = 0; k < DELTA_STRIDE; k += 8)
                x |= pg_u64(old + i + k) ^ pg_u64(new_ + i + k);
            if (x)
                break;
            i += DELTA_STRIDE;
        }
        if (i >= to)
            break;
        if (pg_u64(old + i) == pg_u64(new_ + i)) {
            i += 8;
            continue;
        }
        uint32_t start = i, end = i + 8, gap = 0;
        for (uint32_t j = end; j < to; j += 8) {
            if (pg_u64(old + j) != pg_u64(new_ + j)) {
                end = j + 8;
                gap = 0;
            } else if (++gap > 2) {
                break;
            }
        }
        if (!put_run(out, pos, new_, start, end, limit))
            return 0;
        (*n)++;
        i = end;
    }
    return 1;
}

/* The runs by comparing old and new. */
static uint32_t delta_by_compare(const uint8_t *old, const uint8_t *new_, uint32_t ps, uint8_t *out)
{
    uint32_t n = 0, pos = DELTA_RUNS;
    if (!compare_runs(old, new_, 16, ps, ps / 2, out, &pos, &n))
        return 0;
    pg_put16(out + REC_HDR + 4, (uint16_t)n);
    return pos;
}

/* What a REC_ZIMAGE record's runs are taken against (pages are at most
 * 32 KiB, page.h). */
static const uint8_t zero_page[32768];

uint32_t tv_encode_sparse(const tpage *tp, uint32_t ps, uint8_t *out)
{
    uint32_t n = 0, pos = DELTA_RUNS;
    if (ps > sizeof zero_page || !compare_runs(zero_page, tp->data, 16, ps, REC_HDR + 4 + ps - 1, out, &pos, &n))
        return 0;
    pg_put16(out + REC_HDR + 4, (uint16_t)n);
    return pos;
}

#ifdef JS_VERIFY_RANGES
/* Debug builds (SANITIZE=1): a byte changed outside the ranges would be
 * lost by redo; stop at once, naming it, rather than log an incomplete
 * delta. */
static void verify_ranges(const tpage *tp, uint32_t ps)
{
    const uint8_t *old = tp->orig->data;
    uint32_t r = 0;
    for (uint32_t b = 16; b < ps; b++) {
        while (r < tp->nrng && tp->rng[r].hi <= b)
            r++;
        int inside = r < tp->nrng && tp->rng[r].lo <= b;
        if (!inside && old[b] != tp->data[b]) {
            fprintf(stderr, "tview: page %u byte %u changed outside its %u ranges\n", tp->pgno, b, tp->nrng);
            abort();
        }
    }
}
#endif

uint32_t tv_encode_delta(const tpage *tp, uint32_t ps, uint8_t *out)
{
    if (tp->whole)
        return delta_by_compare(tp->orig->data, tp->data, ps, out);
#ifdef JS_VERIFY_RANGES
    verify_ranges(tp, ps);
#endif
    /* Only the reported ranges are compared (their bytes are in the
     * cache: just written, and their committed ones just copied): what a
     * change wrote back as it was, like the slots a replaced record's
     * removal and insertion shift down and up again, is not logged. */
    uint32_t n = 0, pos = DELTA_RUNS;
    for (uint32_t r = 0; r < tp->nrng; r++) {
        uint32_t start = tp->rng[r].lo < 16 ? 16 : tp->rng[r].lo & ~7u;
        uint32_t end = ((uint32_t)tp->rng[r].hi + 7) & ~7u;
        end = end > ps ? ps : end;
        if (start < end && !compare_runs(tp->orig->data, tp->data, start, end, ps / 2, out, &pos, &n))
            return 0;
    }
    pg_put16(out + REC_HDR + 4, (uint16_t)n);
    return pos;
}

uint8_t *tv_alloc(tview *v, uint8_t type, uint32_t *pgno, JET_ERR *err)
{
    uint32_t ps = v->st->page_size;
    uint8_t *meta = tv_write(v, PG_META_PGNO, err);
    if (!meta)
        return NULL;
    uint32_t head = pg_u32(meta + META_FREE);
    uint32_t no;
    uint8_t *pg;
    if (head) {
        /* Reuse a freed page: it keeps its committed frame as the base so the
         * change is logged relative to it like any other page. */
        pg = tv_write(v, head, err);
        if (!pg)
            return NULL;
        if (pg_type(pg) != PG_FREE) {
            *err = JS_CORRUPT(JET_errDatabaseCorrupted, "free list head %u is not a free page", head);
            return NULL;
        }
        pg_put32(meta + META_FREE, pg_aux(pg));
        no = head;
    } else {
        no = pg_u32(meta + META_NEXT);
        if (no == UINT32_MAX) {
            *err = js_fail(JET_errDiskFull, "database reached the largest page number");
            return NULL;
        }
        if ((*err = sp_reserve(v)) != JET_errSuccess)
            return NULL;
        tpage *tp = tv_insert(v, no, err);
        if (!tp)
            return NULL;
        tp->data = pool_page_alloc(&v->st->pool);
        if (!tp->data) {
            *err = js_fail(JET_errOutOfMemory, "new page %u", no);
            tp->pgno = 0;
            v->npages--;
            return NULL;
        }
        tp->orig = NULL;
        if (v->sp_on)
            sp_note(v, tp, TP_SP_CREATED);
        pg_put32(meta + META_NEXT, no + 1);
        pg = tp->data;
    }
    uint64_t lsn = head ? pg_lsn(pg) : 0;
    pg_init(pg, ps, no, type);
    pg_set_lsn(pg, lsn);
    *pgno = no;
    return pg;
}

JET_ERR tv_free(tview *v, uint32_t pgno)
{
    JET_ERR err = JET_errSuccess;
    uint8_t *meta = tv_write(v, PG_META_PGNO, &err);
    if (!meta)
        return err;
    uint8_t *pg = tv_write(v, pgno, &err);
    if (!pg)
        return err;
    /* Only the header changes, so the logged delta stays small. */
    pg[16] = PG_FREE;
    pg_set_aux(pg, pg_u32(meta + META_FREE));
    pg_put32(meta + META_FREE, pgno);
    return JET_errSuccess;
}
