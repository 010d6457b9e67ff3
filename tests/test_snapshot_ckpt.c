/*
 * test_snapshot_ckpt.c - snapshots and the checkpoint's page writes: the
 * old images a checkpoint's overwrites need are saved before its first
 * batch, with one fsync of each store file for the whole checkpoint, and
 * a snapshot taken at any point of a checkpoint (after its LSN reads,
 * after its early saves, between a batch's copy and its write) keeps
 * exactly its image.
 */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "bkset.h"
#include "snapimg.h"
#include "testlib.h"
#include "instance/instance.h"
#include "store/store.h"

static js_params ckpt_params(void)
{
    js_params p = tl_test_params();
    p.cache_size = 64 << 20;         /* no checkpoint asked for by a full pool */
    p.commit_mode = JS_COMMIT_DURABLE;
    return p;
}

TestSuite(snapshot_ckpt, .init = tl_bk_setup, .fini = tl_bk_teardown, .timeout = 240);

/* As ckpt_write_batch, ckpt_lock held: copy the n pages of list from their
 * frames into a new buffer and clean them; the frames stay pinned in
 * held until batch_land. */
static uint8_t *batch_copy(js_instance *inst, const uint32_t *list, size_t n, frame **held)
{
    db_store *st = &inst->store;
    uint32_t ps = st->page_size;
    uint8_t *buf = malloc(n * ps);
    cr_assert(buf);
    js_rdlock(&inst->eng.tree_latch);
    for (size_t i = 0; i < n; i++) {
        held[i] = pool_lookup(&st->pool, list[i]);
        cr_assert_not_null(held[i]);
        memcpy(buf + i * ps, held[i]->data, ps);
        pool_clear_dirty(&st->pool, held[i]);
    }
    js_rwunlock(&inst->eng.tree_latch);
    return buf;
}

/* The rest of the batch: seal, write (db_write_batch), unpin. */
static void batch_land(js_instance *inst, const uint32_t *list, size_t n, uint8_t *buf, frame **held)
{
    db_store *st = &inst->store;
    uint32_t ps = st->page_size;
    for (size_t i = 0; i < n; i++)
        pg_seal(buf + i * ps, ps, list[i]);
    OK(db_write_batch(st, list, buf, (uint32_t)n));
    for (size_t i = 0; i < n; i++)
        pool_unpin(&st->pool, held[i]);
}

Test(snapshot_ckpt, take_between_a_checkpoint_copy_and_its_write_keeps_the_copied_pages)
{
    js_params p = ckpt_params();
    js_instance *inst = tl_create_open(tl_tp("db"), &p);
    db_store *st = &inst->store;
    tl_fill(inst, "w0", 0, 600, 500);
    OK(js_snapshot_take(inst, "open-the-store", NULL));
    OK(js_snapshot_delete(inst, "open-the-store"));
    OK(js_checkpoint(inst));
    tl_fill(inst, "w0", 0, 300, 620);      /* dirty: the batch */

    js_mutex_lock(&inst->ckpt_lock);       /* as ckpt_write_batch: copy, clean */
    uint32_t *list = NULL;
    size_t n = 0;
    OK(pool_dirty_list(&st->pool, &list, &n));
    cr_assert(n > 10);
    frame **held = calloc(n, sizeof *held);
    cr_assert(held);
    uint8_t *buf = batch_copy(inst, list, n, held);
    OK(log_flush_all(&inst->log));
    OK(js_snapshot_take(inst, "s1", NULL));   /* the batch copied, not written */
    unsigned char h0[32];
    tl_snap_hash(inst, "s1", h0);
    batch_land(inst, list, n, buf, held);
    js_mutex_unlock(&inst->ckpt_lock);
    tl_snap_expect(inst, "s1", h0, "the image changed when the checkpoint's write landed");
    tl_fill(inst, "w0", 0, 300, 540);
    OK(js_checkpoint(inst));
    tl_snap_expect(inst, "s1", h0, "the image changed at the next checkpoint");
    free(buf);
    free(held);
    free(list);
    OK(js_close(inst));
}

/* The old images a checkpoint's overwrites need are saved before its first
 * batch: one fsync of each store file for the whole checkpoint, however
 * many batches it writes, and the image is the one taken. */
Test(snapshot_ckpt, a_checkpoint_of_many_batches_saves_with_one_fsync_per_store_file)
{
    js_params p = ckpt_params();
    js_instance *inst = tl_create_open(tl_tp("db"), &p);
    tl_fill(inst, "w0", 0, 3000, 1500);   /* about 1,500 pages of 4 KiB */
    OK(js_checkpoint(inst));
    OK(js_snapshot_take(inst, "s1", NULL));
    unsigned char h0[32];
    tl_snap_hash(inst, "s1", h0);
    tl_fill(inst, "w0", 0, 3000, 1400);   /* every page of them rewritten */
    size_t ndirty = pool_ndirty(&inst->store.pool);
    cr_assert_gt(ndirty, 3 * 256, "only %zu dirty pages: fewer than four batches", ndirty);
    js_fault_arm(JS_FAULT_FSYNC, 0, 0, -1, "snapshots/store.");   /* count the store's fsyncs */
    uint64_t before = js_fault_count(JS_FAULT_FSYNC);
    OK(js_checkpoint(inst));
    uint64_t fsyncs = js_fault_count(JS_FAULT_FSYNC) - before;
    js_fault_reset();
    cr_assert_eq(fsyncs, 2, "%llu fsyncs of the store for one checkpoint of %zu pages",
                 (unsigned long long)fsyncs, ndirty);
    js_snapshot_info info;
    OK(js_snapshot_stat(inst, "s1", &info));
    cr_assert(info.valid);
    cr_assert_geq(info.bytes_held, (uint64_t)3 * 256 * p.page_size, "only %llu bytes saved",
                  (unsigned long long)info.bytes_held);
    tl_snap_expect(inst, "s1", h0, "the image changed when the checkpoint wrote over its pages");
    tl_check_fill(inst, "w0", 0, 3000, 1400);
    OK(js_close(inst));
    inst = tl_reopen(tl_tp("db"));
    tl_snap_expect(inst, "s1", h0, "the image changed across a restart");
    OK(js_close(inst));
}

/* The checkpoint's early saves read each page's LSN before it locks the
 * store: a snapshot taken in between (its S after those LSNs) must get no
 * early save, and its pages are decided by the batch's write as before;
 * the snapshot held before keeps its early saves. */
Test(snapshot_ckpt, take_between_a_checkpoints_early_saves_and_its_lsn_reads)
{
    js_params p = ckpt_params();
    js_instance *inst = tl_create_open(tl_tp("db"), &p);
    db_store *st = &inst->store;
    uint32_t ps = st->page_size;
    tl_fill(inst, "w0", 0, 600, 500);
    OK(js_checkpoint(inst));
    OK(js_snapshot_take(inst, "s1", NULL));
    unsigned char h1[32], h2[32];
    tl_snap_hash(inst, "s1", h1);
    tl_fill(inst, "w0", 0, 600, 620);        /* dirty, at or after s1's S */

    js_mutex_lock(&inst->ckpt_lock);         /* as ckpt_run: LSNs, early saves, batch */
    uint32_t *list = NULL;
    size_t n = 0;
    OK(pool_dirty_list(&st->pool, &list, &n));
    cr_assert(n > 10);
    uint64_t *lsns = malloc(n * sizeof *lsns);
    frame **held = calloc(n, sizeof *held);
    cr_assert(lsns && held);
    js_rdlock(&inst->eng.tree_latch);
    for (size_t i = 0; i < n; i++) {
        frame *f = pool_lookup(&st->pool, list[i]);
        cr_assert_not_null(f);
        lsns[i] = pg_lsn(f->data);
        pool_unpin(&st->pool, f);
    }
    js_rwunlock(&inst->eng.tree_latch);
    OK(js_snapshot_take(inst, "s2", NULL));   /* its S after every LSN read */
    tl_snap_hash(inst, "s2", h2);
    ss_cow_prepare(st->snap, st, list, lsns, n);
    js_snapshot_info info;
    OK(js_snapshot_stat(inst, "s2", &info));
    cr_assert(info.valid, "s2 invalid after the early saves: %d", info.invalid_err);
    cr_assert_eq(info.bytes_held, 0, "early saves for a snapshot taken after the LSNs were read");
    OK(js_snapshot_stat(inst, "s1", &info));
    cr_assert_geq(info.bytes_held, (uint64_t)n * ps, "s1's pages not saved early");
    uint8_t *buf = batch_copy(inst, list, n, held);
    OK(log_flush_all(&inst->log));
    batch_land(inst, list, n, buf, held);
    OK(db_sync(st));
    js_mutex_unlock(&inst->ckpt_lock);

    tl_snap_expect(inst, "s1", h1, "s1 changed when the batch landed");
    tl_snap_expect(inst, "s2", h2, "s2 changed when the batch landed");
    tl_fill(inst, "w0", 0, 600, 540);
    OK(js_checkpoint(inst));
    tl_snap_expect(inst, "s1", h1, "s1 changed at the next checkpoint");
    tl_snap_expect(inst, "s2", h2, "s2 changed at the next checkpoint");
    free(lsns);
    free(buf);
    free(held);
    free(list);
    OK(js_close(inst));
}
