/*
 * btree.c - the B+tree (see btree.h).
 *
 * Page layout (after the 32-byte page header, see page.h): a slot array of
 * u16 cell offsets in key order growing up from byte 32, cells growing down
 * from the end of the page.  Deleted cells become fragmentation (frag) that
 * a compaction reclaims when an insert needs the room.
 *   leaf cell:   u8 klen, u8 flags (1: overflow), u32 vlen, key, then the
 *                value (inline) or u32 first overflow page
 *   branch cell: u32 child, u8 klen, key; the page's aux is the leftmost
 *                child, cell i's child holds keys >= key i
 * Overflow pages: aux = next page, aux2 = payload bytes, payload after the
 * header.
 * Splits move half the bytes to a new right sibling and push its first key
 * (leaf) or middle key (branch) up; a new root grows the tree.  A leaf that
 * becomes empty is unlinked from its parent and freed, and a root branch
 * left with one child is collapsed, so deletes give pages back to the free
 * list; partially filled pages are not merged.
 */
#include "tree/btree.h"

#include <stdlib.h>
#include <string.h>

#define BT_MAX_DEPTH 32
#define LEAF_FIXED 6u      /* klen, flags, vlen */
#define BRANCH_FIXED 5u    /* child, klen */
#define OVF_FLAG 1u

typedef struct bt_path {
    uint32_t pgno[BT_MAX_DEPTH];
    uint32_t idx[BT_MAX_DEPTH];   /* branch: child index taken; leaf: slot */
    int depth;                    /* number of levels; leaf at depth-1 */
} bt_path;

static uint32_t ps_of(const tview *v) { return v->st->page_size; }

static uint16_t slot(const uint8_t *pg, uint32_t i) { return pg_u16(pg + PG_HDR_SIZE + 2 * i); }

static const uint8_t *cell_key(const uint8_t *pg, uint32_t i, uint32_t *klen)
{
    const uint8_t *c = pg + slot(pg, i);
    if (pg_type(pg) == PG_LEAF) {
        *klen = c[0];
        return c + LEAF_FIXED;
    }
    *klen = c[4];
    return c + BRANCH_FIXED;
}

static uint32_t cell_size_at(const uint8_t *c, uint8_t type)
{
    if (type == PG_BRANCH)
        return BRANCH_FIXED + c[4];
    uint32_t vlen = pg_u32(c + 2);
    return LEAF_FIXED + c[0] + ((c[1] & OVF_FLAG) ? 4 : vlen);
}

/* 8 bytes of a key as a number that orders like the bytes. */
static inline uint64_t key_word(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

/* <0, 0, >0 as memcmp, then the shorter first.  A word at a time, inline:
 * a descent compares a dozen keys per page, and a call to memcmp for each
 * of the short keys most tables have cost more than the compare. */
static int keycmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen, i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t x = key_word(a + i), y = key_word(b + i);
        if (x != y)
            return x < y ? -1 : 1;
    }
    for (; i < n; i++)
        if (a[i] != b[i])
            return a[i] < b[i] ? -1 : 1;
    return alen < blen ? -1 : alen > blen;
}

/* Index of the first slot whose key >= key; *found when equal. */
static uint32_t lower_bound(const uint8_t *pg, const uint8_t *key, size_t klen, int *found)
{
    uint32_t lo = 0, hi = pg_nslots(pg);
    *found = 0;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2, ml;
        const uint8_t *mk = cell_key(pg, mid, &ml);
        int c = keycmp(mk, ml, key, klen);
        if (c < 0)
            lo = mid + 1;
        else {
            if (c == 0)
                *found = 1;
            hi = mid;
        }
    }
    return lo;
}

/* Branch: the child index for key (number of keys <= key). */
static uint32_t branch_child_index(const uint8_t *pg, const uint8_t *key, size_t klen)
{
    int found;
    uint32_t i = lower_bound(pg, key, klen, &found);
    return found ? i + 1 : i;
}

static uint32_t branch_child(const uint8_t *pg, uint32_t ci)
{
    return ci == 0 ? pg_aux(pg) : pg_u32(pg + slot(pg, ci - 1));
}

static uint32_t page_free_contig(const uint8_t *pg)
{
    return pg_cell_lo(pg) - (PG_HDR_SIZE + 2u * pg_nslots(pg));
}

/* Descend from the root towards the leaf for key, recording the path, and
 * stop at depth stop without reading that page (bt_prefetch: the leaf's
 * number only), or at the leaf when stop is negative. */
static JET_ERR descend_to(tview *v, const uint8_t *key, size_t klen, bt_path *path, uint32_t root, int stop)
{
    JET_ERR err = JET_errSuccess;
    uint32_t pgno = root;
    path->depth = 0;
    for (;;) {
        if (path->depth >= BT_MAX_DEPTH)
            return JS_CORRUPT(JET_errDatabaseCorrupted, "tree deeper than %d at page %u", BT_MAX_DEPTH, pgno);
        path->pgno[path->depth] = pgno;
        if (path->depth == stop) {
            path->idx[path->depth++] = 0;
            return JET_errSuccess;
        }
        const uint8_t *pg = tv_read(v, pgno, &err);
        if (!pg)
            return err;
        if (pg_type(pg) == PG_LEAF) {
            path->idx[path->depth++] = 0;
            return JET_errSuccess;
        }
        if (pg_type(pg) != PG_BRANCH)
            return JS_CORRUPT(JET_errDatabaseCorrupted, "page %u in the tree has type %u", pgno, pg_type(pg));
        uint32_t ci = branch_child_index(pg, key, klen);
        path->idx[path->depth++] = ci;
        pgno = branch_child(pg, ci);
    }
}

static JET_ERR descend(tview *v, const uint8_t *key, size_t klen, bt_path *path, uint32_t root)
{
    return descend_to(v, key, klen, path, root, -1);
}

static JET_ERR meta_root(tview *v, uint32_t *root)
{
    JET_ERR err = JET_errSuccess;
    const uint8_t *meta = tv_read(v, PG_META_PGNO, &err);
    if (!meta)
        return err;
    *root = pg_u32(meta + META_ROOT);
    return JET_errSuccess;
}

JET_ERR bt_prefetch(tview *v, const js_keyref *keys, size_t n)
{
    uint32_t root = 0, leaf[BT_PREFETCH_MAX];
    size_t m = 0;
    JET_ERR err = meta_root(v, &root);
    if (err)
        return err;
    if (n > BT_PREFETCH_MAX)
        n = BT_PREFETCH_MAX;
    /* The first key's walk reads its leaf and so learns the leaves'
     * depth; the others stop one page short, at the leaf's number. */
    int leaf_depth = -1;
    bt_path path;
    for (size_t i = 0; i < n; i++) {
        err = descend_to(v, keys[i].key, keys[i].klen, &path, root, leaf_depth);
        if (err)
            return err;
        if (leaf_depth < 0)
            leaf_depth = path.depth - 1;
        else
            leaf[m++] = path.pgno[path.depth - 1];
    }
    for (int stage = POOL_PREFETCH_BUCKET; stage <= POOL_PREFETCH_PAGE; stage++)
        for (size_t j = 0; j < m; j++)
            pool_prefetch(&v->st->pool, leaf[j], stage);
    return JET_errSuccess;
}

static JET_ERR meta_set(tview *v, uint32_t field, uint64_t value, int wide)
{
    JET_ERR err = JET_errSuccess;
    uint8_t *meta = tv_write(v, PG_META_PGNO, &err);
    if (!meta)
        return err;
    if (wide)
        pg_put64(meta + field, value);
    else
        pg_put32(meta + field, (uint32_t)value);
    return JET_errSuccess;
}

static JET_ERR meta_count_add(tview *v, int delta)
{
    JET_ERR err = JET_errSuccess;
    uint8_t *meta = tv_write_part(v, PG_META_PGNO, &err);
    if (!meta)
        return err;
    pg_put64(meta + META_COUNT, pg_u64(meta + META_COUNT) + (uint64_t)(int64_t)delta);
    tv_wrote(v, PG_META_PGNO, META_COUNT, 8);
    return JET_errSuccess;
}

/* ---------------- overflow chains ---------------- */

static uint32_t ovf_payload(const tview *v) { return ps_of(v) - PG_HDR_SIZE; }

static JET_ERR ovf_write(tview *v, const uint8_t *val, size_t vlen, uint32_t *first)
{
    JET_ERR err = JET_errSuccess;
    uint32_t cap = ovf_payload(v);
    size_t npages = (vlen + cap - 1) / cap;
    uint8_t *prev = NULL;
    *first = 0;
    for (size_t i = 0; i < npages; i++) {
        uint32_t no;
        uint8_t *pg = tv_alloc(v, PG_OVERFLOW, &no, &err);
        if (!pg)
            return err;
        size_t take = vlen - i * cap < cap ? vlen - i * cap : cap;
        memcpy(pg + PG_HDR_SIZE, val + i * cap, take);
        pg_set_aux2(pg, (uint32_t)take);
        if (prev)
            pg_set_aux(prev, no);
        else
            *first = no;
        prev = pg;
    }
    return JET_errSuccess;
}

static JET_ERR ovf_read(tview *v, uint32_t first, size_t vlen, uint8_t *out)
{
    JET_ERR err = JET_errSuccess;
    size_t done = 0;
    uint32_t no = first;
    while (done < vlen) {
        const uint8_t *pg = no ? tv_read(v, no, &err) : NULL;
        if (!pg)
            return err ? err : JS_CORRUPT(JET_errDatabaseCorrupted, "overflow chain ends early");
        if (pg_type(pg) != PG_OVERFLOW || pg_aux2(pg) > ovf_payload(v) || pg_aux2(pg) > vlen - done)
            return JS_CORRUPT(JET_errDatabaseCorrupted, "page %u is not a valid overflow page", no);
        memcpy(out + done, pg + PG_HDR_SIZE, pg_aux2(pg));
        done += pg_aux2(pg);
        no = pg_aux(pg);
    }
    return JET_errSuccess;
}

static JET_ERR ovf_free(tview *v, uint32_t first)
{
    JET_ERR err = JET_errSuccess;
    uint32_t no = first;
    while (no) {
        const uint8_t *pg = tv_read(v, no, &err);
        if (!pg)
            return err;
        uint32_t next = pg_aux(pg);
        err = tv_free(v, no);
        if (err)
            return err;
        no = next;
    }
    return JET_errSuccess;
}

/* ---------------- page rebuild ---------------- */

typedef struct cellref {
    const uint8_t *p;
    uint32_t len;
} cellref;

/* Rewrite pg (already initialised with its type and aux) from cells. */
static void page_fill(uint8_t *pg, uint32_t page_size, const cellref *cells, uint32_t n)
{
    uint32_t lo = page_size;
    for (uint32_t i = 0; i < n; i++) {
        lo -= cells[i].len;
        memcpy(pg + lo, cells[i].p, cells[i].len);
        pg_put16(pg + PG_HDR_SIZE + 2 * i, (uint16_t)lo);
    }
    pg_set_nslots(pg, (uint16_t)n);
    pg_set_cell_lo(pg, (uint16_t)lo);
    pg_set_frag(pg, 0);
}

/* Rebuild a page in place keeping its number, type, aux and LSN. */
static JET_ERR page_rebuild(tview *v, uint8_t *pg, const cellref *cells, uint32_t n)
{
    uint32_t ps = ps_of(v);
    uint8_t *tmp = malloc(ps);
    if (!tmp)
        return js_fail(JET_errOutOfMemory, "page rebuild");
    memcpy(tmp, pg, ps);
    cellref *rel = malloc((n + 1) * sizeof *rel);
    if (!rel) {
        free(tmp);
        return js_fail(JET_errOutOfMemory, "page rebuild");
    }
    for (uint32_t i = 0; i < n; i++) {
        rel[i].len = cells[i].len;
        /* Cells that point into pg must be read from the copy. */
        if (cells[i].p >= pg && cells[i].p < pg + ps)
            rel[i].p = tmp + (cells[i].p - pg);
        else
            rel[i].p = cells[i].p;
    }
    memset(pg + PG_HDR_SIZE, 0, ps - PG_HDR_SIZE);
    page_fill(pg, ps, rel, n);
    free(rel);
    free(tmp);
    return JET_errSuccess;
}

/* Gather a page's cells with newcell inserted at position at (newcell may be
 * NULL: nothing inserted). */
static cellref *gather(const uint8_t *pg, uint32_t at, const uint8_t *newcell, uint32_t newlen, uint32_t *n)
{
    uint32_t ns = pg_nslots(pg);
    cellref *cells = malloc((ns + 1) * sizeof *cells);
    if (!cells)
        return NULL;
    uint32_t k = 0;
    for (uint32_t i = 0; i <= ns; i++) {
        if (i == at && newcell) {
            cells[k].p = newcell;
            cells[k++].len = newlen;
        }
        if (i < ns) {
            cells[k].p = pg + slot(pg, i);
            cells[k++].len = cell_size_at(pg + slot(pg, i), pg_type(pg));
        }
    }
    *n = k;
    return cells;
}

/* Put cell at slot position at of page pgno (pg, private), compacting if
 * that makes room, and report the bytes changed (tv_wrote).  Returns 1
 * when it fit, 0 when the page must split. */
static int page_try_insert(tview *v, uint32_t pgno, uint8_t *pg, uint32_t at, const uint8_t *cell, uint32_t len,
                           JET_ERR *err)
{
    uint32_t ns = pg_nslots(pg);
    if (page_free_contig(pg) < len + 2) {
        if (page_free_contig(pg) + pg_frag(pg) < len + 2)
            return 0;
        uint32_t n;
        cellref *cells = gather(pg, 0, NULL, 0, &n);
        if (!cells) {
            *err = js_fail(JET_errOutOfMemory, "compaction");
            return 0;
        }
        *err = page_rebuild(v, pg, cells, n);
        free(cells);
        tv_wrote(v, pgno, 0, ps_of(v));   /* every cell moved: a comparison */
        if (*err)
            return 0;
    }
    uint32_t lo = pg_cell_lo(pg) - len;
    memcpy(pg + lo, cell, len);
    uint8_t *slots = pg + PG_HDR_SIZE;
    memmove(slots + 2 * (at + 1), slots + 2 * at, 2 * (ns - at));
    pg_put16(slots + 2 * at, (uint16_t)lo);
    pg_set_nslots(pg, (uint16_t)(ns + 1));
    pg_set_cell_lo(pg, (uint16_t)lo);
    tv_wrote(v, pgno, 16, PG_HDR_SIZE - 16);
    tv_wrote(v, pgno, PG_HDR_SIZE + 2 * at, 2 * (ns + 1 - at));
    tv_wrote(v, pgno, lo, len);
    return 1;
}

/* Drop slot at of page pgno (pg, private); its cell's bytes become
 * fragmented free space.  Reports the bytes changed (tv_wrote). */
static void page_remove_slot(tview *v, uint32_t pgno, uint8_t *pg, uint32_t at)
{
    uint32_t ns = pg_nslots(pg);
    uint32_t len = cell_size_at(pg + slot(pg, at), pg_type(pg));
    uint8_t *slots = pg + PG_HDR_SIZE;
    memmove(slots + 2 * at, slots + 2 * (at + 1), 2 * (ns - at - 1));
    pg_put16(slots + 2 * (ns - 1), 0);
    pg_set_nslots(pg, (uint16_t)(ns - 1));
    pg_set_frag(pg, (uint16_t)(pg_frag(pg) + len));
    tv_wrote(v, pgno, 16, PG_HDR_SIZE - 16);
    tv_wrote(v, pgno, PG_HDR_SIZE + 2 * at, 2 * (ns - at));
}

/* Split point: the first index of the right half, by bytes. */
static uint32_t split_point(const cellref *cells, uint32_t n)
{
    uint64_t total = 0, acc = 0;
    for (uint32_t i = 0; i < n; i++)
        total += cells[i].len + 2;
    uint32_t i = 0;
    while (i < n - 1 && acc + cells[i].len + 2 <= total / 2)
        acc += cells[i++].len + 2;
    if (i == 0)
        i = 1;
    return i;
}

/* Insert (key, child) into the branch at path level lvl, at child index ci+1
 * (right of the child that split), splitting upwards as needed. */
static JET_ERR insert_into_parent(tview *v, bt_path *path, int lvl, const uint8_t *key, uint32_t klen,
                                  uint32_t right);

static JET_ERR new_root(tview *v, uint32_t left, const uint8_t *key, uint32_t klen, uint32_t right)
{
    JET_ERR err = JET_errSuccess;
    uint32_t no;
    uint8_t *pg = tv_alloc(v, PG_BRANCH, &no, &err);
    if (!pg)
        return err;
    pg_set_aux(pg, left);
    uint8_t cell[BRANCH_FIXED + JS_KEY_MAX];
    pg_put32(cell, right);
    cell[4] = (uint8_t)klen;
    memcpy(cell + BRANCH_FIXED, key, klen);
    page_try_insert(v, no, pg, 0, cell, BRANCH_FIXED + klen, &err);
    if (err)
        return err;
    return meta_set(v, META_ROOT, no, 0);
}

/* Split the page at path level lvl, which must take cell at slot at. */
static JET_ERR split_and_insert(tview *v, bt_path *path, int lvl, uint32_t at, const uint8_t *cell, uint32_t len)
{
    JET_ERR err = JET_errSuccess;
    uint32_t ps = ps_of(v);
    uint8_t *pg = tv_write(v, path->pgno[lvl], &err);
    if (!pg)
        return err;
    uint8_t type = pg_type(pg);
    uint8_t *old = malloc(ps);
    cellref *cells = NULL;
    uint32_t n = 0;
    if (!old)
        return js_fail(JET_errOutOfMemory, "split");
    memcpy(old, pg, ps);
    uint8_t *ncell = malloc(len);
    if (!ncell) {
        free(old);
        return js_fail(JET_errOutOfMemory, "split");
    }
    memcpy(ncell, cell, len);
    cells = gather(old, at, ncell, len, &n);
    if (!cells) {
        err = js_fail(JET_errOutOfMemory, "split");
        goto out;
    }
    uint32_t sp = split_point(cells, n);
    uint32_t rno;
    uint8_t *right = tv_alloc(v, type, &rno, &err);
    if (!right)
        goto out;
    uint8_t sep[JS_KEY_MAX];
    uint32_t seplen;
    if (type == PG_LEAF) {
        memset(pg + PG_HDR_SIZE, 0, ps - PG_HDR_SIZE);
        page_fill(pg, ps, cells, sp);
        page_fill(right, ps, cells + sp, n - sp);
        seplen = cells[sp].p[0];
        memcpy(sep, cells[sp].p + LEAF_FIXED, seplen);
    } else {
        /* The middle cell moves up; its child becomes the right page's
         * leftmost child. */
        if (sp >= n - 1)
            sp = n - 2;
        const uint8_t *mid = cells[sp].p;
        seplen = mid[4];
        memcpy(sep, mid + BRANCH_FIXED, seplen);
        pg_set_aux(right, pg_u32(mid));
        memset(pg + PG_HDR_SIZE, 0, ps - PG_HDR_SIZE);
        page_fill(pg, ps, cells, sp);
        page_fill(right, ps, cells + sp + 1, n - sp - 1);
    }
    if (lvl == 0)
        err = new_root(v, path->pgno[0], sep, seplen, rno);
    else
        err = insert_into_parent(v, path, lvl - 1, sep, seplen, rno);
out:
    free(cells);
    free(ncell);
    free(old);
    return err;
}

static JET_ERR insert_into_parent(tview *v, bt_path *path, int lvl, const uint8_t *key, uint32_t klen,
                                  uint32_t right)
{
    JET_ERR err = JET_errSuccess;
    uint8_t *pg = tv_write(v, path->pgno[lvl], &err);
    if (!pg)
        return err;
    uint8_t cell[BRANCH_FIXED + JS_KEY_MAX];
    pg_put32(cell, right);
    cell[4] = (uint8_t)klen;
    memcpy(cell + BRANCH_FIXED, key, klen);
    uint32_t at = path->idx[lvl];   /* child ci split: new cell goes at slot ci */
    if (page_try_insert(v, path->pgno[lvl], pg, at, cell, BRANCH_FIXED + klen, &err) || err)
        return err;
    return split_and_insert(v, path, lvl, at, cell, BRANCH_FIXED + klen);
}

JET_ERR bt_put(tview *v, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
    JET_ERR err = JET_errSuccess;
    uint32_t ps = ps_of(v);
    uint32_t root = 0;
    uint8_t *cell = NULL;
    err = meta_root(v, &root);
    if (err)
        return err;
    if (!root) {
        uint32_t no;
        if (!tv_alloc(v, PG_LEAF, &no, &err))
            return err;
        err = meta_set(v, META_ROOT, no, 0);
        if (err)
            return err;
        root = no;
    }
    bt_path path;
    err = descend(v, key, klen, &path, root);
    if (err)
        return err;
    int lvl = path.depth - 1;
    /* Its changes are reported (page_remove_slot, page_try_insert): a
     * split rewrites it through tv_write. */
    uint8_t *leaf = tv_write_part(v, path.pgno[lvl], &err);
    if (!leaf)
        return err;
    int found;
    uint32_t at = lower_bound(leaf, key, klen, &found);
    if (found) {
        const uint8_t *c = leaf + slot(leaf, at);
        if (c[1] & OVF_FLAG) {
            err = ovf_free(v, pg_u32(c + LEAF_FIXED + c[0]));
            if (err)
                return err;
        }
        page_remove_slot(v, path.pgno[lvl], leaf, at);
    } else {
        err = meta_count_add(v, 1);
        if (err)
            return err;
    }
    /* Inline while a leaf still holds at least four such cells. */
    uint32_t inline_max = (ps - PG_HDR_SIZE) / 4 - 2;
    int overflow = LEAF_FIXED + klen + vlen > inline_max;
    uint32_t len = (uint32_t)(LEAF_FIXED + klen + (overflow ? 4 : vlen));
    cell = malloc(len);
    if (!cell)
        return js_fail(JET_errOutOfMemory, "cell of %u bytes", len);
    cell[0] = (uint8_t)klen;
    cell[1] = overflow ? OVF_FLAG : 0;
    pg_put32(cell + 2, (uint32_t)vlen);
    memcpy(cell + LEAF_FIXED, key, klen);
    if (overflow) {
        uint32_t first;
        err = ovf_write(v, val, vlen, &first);
        if (err)
            goto out;
        pg_put32(cell + LEAF_FIXED + klen, first);
    } else if (vlen) {
        memcpy(cell + LEAF_FIXED + klen, val, vlen);
    }
    path.idx[lvl] = at;
    if (!page_try_insert(v, path.pgno[lvl], leaf, at, cell, len, &err) && !err)
        err = split_and_insert(v, &path, lvl, at, cell, len);
out:
    free(cell);
    return err;
}

/* Unlink child index ci from the branch at level lvl; an emptied branch is
 * unlinked from its own parent in turn, and a root left with one child is
 * collapsed. */
static JET_ERR remove_child(tview *v, bt_path *path, int lvl)
{
    JET_ERR err = JET_errSuccess;
    uint8_t *pg = tv_write(v, path->pgno[lvl], &err);
    if (!pg)
        return err;
    uint32_t ci = path->idx[lvl];
    uint32_t ns = pg_nslots(pg);
    if (ns == 0) {
        /* Its only child is gone: the branch itself goes. */
        if (lvl == 0) {
            err = meta_set(v, META_ROOT, 0, 0);
        } else {
            err = remove_child(v, path, lvl - 1);
        }
        if (!err)
            err = tv_free(v, path->pgno[lvl]);
        return err;
    }
    if (ci == 0) {
        pg_set_aux(pg, pg_u32(pg + slot(pg, 0)));
        page_remove_slot(v, path->pgno[lvl], pg, 0);
    } else {
        page_remove_slot(v, path->pgno[lvl], pg, ci - 1);
    }
    if (lvl == 0 && pg_nslots(pg) == 0) {
        err = meta_set(v, META_ROOT, pg_aux(pg), 0);
        if (!err)
            err = tv_free(v, path->pgno[0]);
    }
    return err;
}

/* Descend to the leaf for key: *leaf and *at are the first slot >= key,
 * *found tells whether it is key itself.  An empty tree gives
 * JET_errRecordNotFound with the caller's detail. */
static JET_ERR find_leaf(tview *v, const uint8_t *key, size_t klen, const char *missing, bt_path *path,
                         const uint8_t **leaf, uint32_t *at, int *found)
{
    uint32_t root = 0;
    JET_ERR err = meta_root(v, &root);
    if (err)
        return err;
    if (!root)
        return js_fail(JET_errRecordNotFound, "%s", missing);
    err = descend(v, key, klen, path, root);
    if (err)
        return err;
    *leaf = tv_read(v, path->pgno[path->depth - 1], &err);
    if (!*leaf)
        return err;
    *at = lower_bound(*leaf, key, klen, found);
    return JET_errSuccess;
}

JET_ERR bt_del(tview *v, const uint8_t *key, size_t klen)
{
    bt_path path;
    const uint8_t *rleaf;
    uint32_t at;
    int found;
    JET_ERR err = find_leaf(v, key, klen, "key not found", &path, &rleaf, &at, &found);
    if (err)
        return err;
    int lvl = path.depth - 1;
    if (!found)
        return js_fail(JET_errRecordNotFound, "key not found");
    uint8_t *leaf = tv_write_part(v, path.pgno[lvl], &err);   /* page_remove_slot reports */
    if (!leaf)
        return err;
    const uint8_t *c = leaf + slot(leaf, at);
    if (c[1] & OVF_FLAG) {
        err = ovf_free(v, pg_u32(c + LEAF_FIXED + c[0]));
        if (err)
            return err;
    }
    page_remove_slot(v, path.pgno[lvl], leaf, at);
    err = meta_count_add(v, -1);
    if (err)
        return err;
    if (pg_nslots(leaf) == 0 && lvl > 0) {
        err = remove_child(v, &path, lvl - 1);
        if (!err)
            err = tv_free(v, path.pgno[lvl]);
    }
    return err;
}

static JET_ERR leaf_value(tview *v, const uint8_t *c, uint8_t **buf, size_t *cap, size_t *vlen)
{
    uint32_t len = pg_u32(c + 2);
    if (len > JS_VALUE_MAX)
        return JS_CORRUPT(JET_errDatabaseCorrupted, "value length %u over the limit", len);
    if (!*buf || *cap < (size_t)len + 1) {
        uint8_t *nb = realloc(*buf, (size_t)len + 1);
        if (!nb)
            return js_fail(JET_errOutOfMemory, "value of %u bytes", len);
        *buf = nb;
        *cap = (size_t)len + 1;
    }
    *vlen = len;
    if (c[1] & OVF_FLAG)
        return ovf_read(v, pg_u32(c + LEAF_FIXED + c[0]), len, *buf);
    memcpy(*buf, c + LEAF_FIXED + c[0], len);
    return JET_errSuccess;
}

JET_ERR bt_get(tview *v, const uint8_t *key, size_t klen, uint8_t **val, size_t *vlen)
{
    bt_path path;
    const uint8_t *leaf;
    uint32_t at;
    int found;
    JET_ERR err = find_leaf(v, key, klen, "key not found", &path, &leaf, &at, &found);
    if (err)
        return err;
    if (!found)
        return js_fail(JET_errRecordNotFound, "key not found");
    uint8_t *buf = NULL;
    size_t cap = 0;
    err = leaf_value(v, leaf + slot(leaf, at), &buf, &cap, vlen);
    if (err) {
        free(buf);
        return err;
    }
    *val = buf;
    return JET_errSuccess;
}

JET_ERR bt_seek(tview *v, const uint8_t *key, size_t klen, int after,
                uint8_t *kout, size_t *kout_len, uint8_t **vbuf, size_t *vcap, size_t *vlen)
{
    bt_path path;
    const uint8_t *leaf;
    uint32_t at;
    int found;
    JET_ERR err = find_leaf(v, key, klen, "no key at or after the position", &path, &leaf, &at, &found);
    if (err)
        return err;
    int lvl = path.depth - 1;
    if (found && after)
        at++;
    while (at >= pg_nslots(leaf)) {
        /* Past this leaf: climb to the first level with a right sibling,
         * then take leftmost children down to a leaf. */
        int l = lvl - 1;
        const uint8_t *br = NULL;
        for (; l >= 0; l--) {
            br = tv_read(v, path.pgno[l], &err);
            if (!br)
                return err;
            if (path.idx[l] < pg_nslots(br))
                break;
        }
        if (l < 0)
            return js_fail(JET_errRecordNotFound, "no key at or after the position");
        path.idx[l]++;
        uint32_t child = branch_child(br, path.idx[l]);
        for (int d = l + 1; d <= lvl; d++) {
            const uint8_t *pg = tv_read(v, child, &err);
            if (!pg)
                return err;
            path.pgno[d] = child;
            path.idx[d] = 0;
            if (d < lvl)
                child = pg_aux(pg);
        }
        leaf = tv_read(v, path.pgno[lvl], &err);
        if (!leaf)
            return err;
        at = 0;
    }
    uint32_t kl;
    const uint8_t *k = cell_key(leaf, at, &kl);
    memcpy(kout, k, kl);
    *kout_len = kl;
    return leaf_value(v, leaf + slot(leaf, at), vbuf, vcap, vlen);
}

JET_ERR bt_count(tview *v, uint64_t *count)
{
    JET_ERR err = JET_errSuccess;
    const uint8_t *meta = tv_read(v, PG_META_PGNO, &err);
    if (!meta)
        return err;
    *count = pg_u64(meta + META_COUNT);
    return JET_errSuccess;
}
