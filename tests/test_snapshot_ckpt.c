/*
 * test_snapshot_ckpt.c - snapshots and the checkpoint's page writes: a
 * snapshot taken between a batch's copy and its write keeps exactly its
 * image.
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

Test(snapshot_ckpt, take_between_a_checkpoint_copy_and_its_write_keeps_the_copied_pages)
{
    js_params p = ckpt_params();
    js_instance *inst = tl_create_open(tl_tp("db"), &p);
    db_store *st = &inst->store;
    uint32_t ps = st->page_size;
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
    uint8_t *buf = malloc(n * ps);
    frame **held = calloc(n, sizeof *held);
    cr_assert(buf && held);
    js_rdlock(&inst->eng.tree_latch);
    for (size_t i = 0; i < n; i++) {
        held[i] = pool_lookup(&st->pool, list[i]);
        cr_assert_not_null(held[i]);
        memcpy(buf + i * ps, held[i]->data, ps);
        pool_clear_dirty(&st->pool, held[i]);
    }
    js_rwunlock(&inst->eng.tree_latch);
    OK(log_flush_all(&inst->log));
    OK(js_snapshot_take(inst, "s1", NULL));   /* the batch copied, not written */
    unsigned char h0[32], h[32];
    tl_snap_hash(inst, "s1", h0);
    for (size_t i = 0; i < n; i++)
        pg_seal(buf + i * ps, ps, list[i]);
    OK(db_write_batch(st, list, buf, (uint32_t)n));
    for (size_t i = 0; i < n; i++)
        pool_unpin(&st->pool, held[i]);
    js_mutex_unlock(&inst->ckpt_lock);
    tl_snap_hash(inst, "s1", h);
    cr_assert(!memcmp(h0, h, 32), "the image changed when the checkpoint's write landed");
    tl_fill(inst, "w0", 0, 300, 540);
    OK(js_checkpoint(inst));
    tl_snap_hash(inst, "s1", h);
    cr_assert(!memcmp(h0, h, 32), "the image changed at the next checkpoint");
    free(buf);
    free(held);
    free(list);
    OK(js_close(inst));
}
