/*
 * checkpoint.c - the checkpoint and the checkpoint file edb.chk.
 *
 * A checkpoint takes its redo point R (the log position) under the writer
 * lock, so R sits between transactions.  It then writes every page that was
 * dirty at R (and, following the WAL rule, flushes the log past any newer
 * page it writes) through the doublewrite buffer (store/dwb.c), fsyncs the
 * database (db_sync), and records R in edb.chk.
 * With R it reads the meta page's high-water mark H: every page below H was
 * allocated by a transaction committed before R, so it was either written
 * by an earlier checkpoint or is dirty at R and written by this one.  After
 * the fsync, H is the written bound (page.h): store.valid_below and edb.chk
 * record it.  (The meta page written may be newer than R, so its own mark
 * is no such bound: a page allocated after R may still be zero on disk.)
 * Recovery starts at R.  Generations below R's are no longer needed for
 * crash recovery: circular logging deletes them here, otherwise a backup
 * truncates them.
 *
 * A checkpoint that fails for lack of space (a page write, the growth of
 * jetsnap.edb, the WAL flush, edb.chk) leaves every page it did not write
 * dirty and edb.chk at the previous redo point, and is simply retried: by
 * the checkpoint thread, and at once when a writer asks (instance.h).  Any
 * other failure is sticky.
 *
 * The checkpoint thread looks every checkpoint_ms and runs one at once when
 * asked (half the pool dirty, a writer waiting for space).  Otherwise it
 * runs one when pages are dirty and ckpt_due says so: the instance went
 * quiet, or it keeps writing and the log since the redo point reached
 * checkpoint_depth, or CKPT_BUSY_LOOKS looks passed.  The flush thread
 * makes lazy commits durable every 50 ms (log_tick).  Both stop when the
 * instance stops or turns fatal.
 *
 * edb.chk format: two 512-byte copies at offsets 0 and 512, each
 *   0 u32 crc (CRC32C of bytes 4..511)  4 "JSNAPCHK"  12 u32 version
 *  16 u64 redo LSN  24 i64 time (ms)  32 u8[16] log signature
 *  48 u32 written bound (page.h; 0 in files written before it existed:
 *         unknown)
 * Written like the database header: copy 0, fsync, copy 1, fsync; read:
 * the first valid copy.
 */
#include "instance/instance.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHK_MAGIC "JSNAPCHK"
#define CKPT_BATCH 256u
#define CKPT_BUSY_LOOKS 30u   /* ckpt_due: the longest a writing instance goes */

static void chk_encode(const chk_file *c, uint8_t *b)
{
    memset(b, 0, 512);
    memcpy(b + 4, CHK_MAGIC, 8);
    pg_put32(b + 12, 1);
    pg_put64(b + 16, c->redo_lsn);
    pg_put64(b + 24, (uint64_t)c->time);
    memcpy(b + 32, c->log_sig, JS_SIG_LEN);
    pg_put32(b + 48, c->valid_below);
    pg_put32(b, js_crc32c(0, b + 4, 508));
}

JET_ERR chk_read(const char *dir, chk_file *out)
{
    char path[PATH_MAX];
    uint8_t b[1024];
    size_t got = 0;
    int fd = -1;
    snprintf(path, sizeof path, "%s/%s", dir, JS_CHK_FILE);
    JET_ERR err = os_open(path, O_RDONLY, 0, &fd);
    if (err)
        return err;
    err = os_pread(fd, path, b, sizeof b, 0, &got);
    os_close(fd);
    if (err)
        return err;
    for (int copy = 0; copy < 2; copy++) {
        const uint8_t *c = b + 512 * copy;
        if ((size_t)(512 * copy + 512) <= got && !memcmp(c + 4, CHK_MAGIC, 8) &&
            pg_u32(c) == js_crc32c(0, c + 4, 508)) {
            out->redo_lsn = pg_u64(c + 16);
            out->time = (int64_t)pg_u64(c + 24);
            memcpy(out->log_sig, c + 32, JS_SIG_LEN);
            out->valid_below = pg_u32(c + 48);
            return JET_errSuccess;
        }
    }
    return JS_CORRUPT(JET_errCheckpointCorrupt, "%s: both copies fail their checksum", path);
}

JET_ERR chk_write(const char *dir, const chk_file *chk)
{
    char path[PATH_MAX];
    uint8_t b[512];
    int fd = -1;
    snprintf(path, sizeof path, "%s/%s", dir, JS_CHK_FILE);
    JET_ERR err = os_open(path, O_RDWR | O_CREAT, 0600, &fd);
    if (err)
        return err;
    chk_encode(chk, b);
    for (int copy = 0; copy < 2 && !err; copy++) {
        err = os_pwrite(fd, path, b, sizeof b, (uint64_t)copy * 512);
        if (!err)
            err = os_fsync(fd, path);
    }
    os_close(fd);
    return err;
}

/* Write pages [i, j) of list (already sorted) as contiguous runs. */
static JET_ERR ckpt_write_batch(js_instance *inst, const uint32_t *list, size_t n, uint64_t redo_lsn, uint8_t *buf)
{
    db_store *st = &inst->store;
    uint32_t ps = st->page_size;
    uint64_t max_lsn = 0;
    size_t m = 0;
    uint32_t pgnos[CKPT_BATCH];
    frame *held[CKPT_BATCH];
    JET_ERR err = JET_errSuccess;

    /* Each copied frame stays pinned until its page is on disk: a clean,
     * unpinned frame may be evicted, and a reader reloading it before the
     * write lands would find the old page (or none) in the file. */
    JS_ASSERT_HELD(&inst->ckpt_lock);
    js_rdlock(&inst->eng.tree_latch);
    for (size_t i = 0; i < n; i++) {
        frame *f = pool_lookup(&st->pool, list[i]);
        if (!f)
            continue;
        if (!f->dirty) {
            pool_unpin(&st->pool, f);
            continue;
        }
        memcpy(buf + (size_t)m * ps, f->data, ps);
        held[m] = f;
        pgnos[m++] = list[i];
        if (pg_lsn(f->data) > max_lsn)
            max_lsn = pg_lsn(f->data);
        pool_clear_dirty(&st->pool, f);
    }
    js_rwunlock(&inst->eng.tree_latch);

    /* WAL rule: a page newer than the redo point may only reach the file
     * once its log records are durable. */
    if (max_lsn >= redo_lsn && inst_logging(inst))
        err = log_flush_all(&inst->log);
    for (size_t i = 0; i < m; i++)
        pg_seal(buf + i * ps, ps, pgnos[i]);
    if (!err)
        err = db_write_batch(st, pgnos, buf, (uint32_t)m);
    for (size_t i = 0; i < m; i++) {
        /* Not written (or maybe not): dirty again, for the next checkpoint.
         * Rewriting a page that did reach the file is harmless. */
        if (err)
            pool_mark_dirty(&st->pool, held[i]);
        pool_unpin(&st->pool, held[i]);
    }
    return err;
}

/* Copy-on-write for the whole checkpoint at once: the old images its
 * pages' first overwrites need are saved before the first batch, with one
 * fsync of each store file, instead of two per batch in db_write_batch,
 * which competed with the commits' log fsyncs.  Only pages whose version
 * in the pool carries an LSN are decided here (a snapshot taken after it
 * was read has its S after it: left to the batch); the rest, and the
 * snapshots taken meanwhile, are saved by their batch as before. */
static void ckpt_cow_prepare(js_instance *inst, const uint32_t *list, size_t n)
{
    db_store *st = &inst->store;
    if (!n || !st->snap || !ss_any(st->snap))
        return;
    uint32_t *pgnos = malloc(n * sizeof *pgnos);
    uint64_t *lsns = malloc(n * sizeof *lsns);
    size_t m = 0;
    if (!pgnos || !lsns)
        goto out_free;   /* the batches save for themselves */
    js_rdlock(&inst->eng.tree_latch);
    for (size_t i = 0; i < n; i++) {
        frame *f = pool_lookup(&st->pool, list[i]);
        if (!f)
            continue;
        uint64_t lsn = pg_lsn(f->data);
        if (f->dirty && (lsn || !inst_logging(inst))) {
            pgnos[m] = list[i];
            lsns[m++] = lsn;
        }
        pool_unpin(&st->pool, f);
    }
    js_rwunlock(&inst->eng.tree_latch);
    ss_cow_prepare(st->snap, st, pgnos, lsns, m);
out_free:
    free(pgnos);
    free(lsns);
}

/* The meta page's high-water mark as committed now.  Caller holds
 * writer_lock, so no commit changes it meanwhile. */
static JET_ERR ckpt_read_hwm(js_instance *inst, uint32_t *hwm)
{
    frame *f = NULL;
    JS_ASSERT_HELD(&inst->eng.writer_lock);
    JET_ERR err = pool_get(&inst->store, PG_META_PGNO, 0, &f);
    if (err)
        return err;
    js_rdlock(&inst->eng.tree_latch);
    *hwm = pg_u32(f->data + META_NEXT);
    js_rwunlock(&inst->eng.tree_latch);
    pool_unpin(&inst->store.pool, f);
    return JET_errSuccess;
}

JET_ERR ckpt_run(js_instance *inst)
{
    JET_ERR err = JET_errSuccess;
    uint32_t *list = NULL;
    size_t n = 0;
    uint8_t *buf = NULL;
    uint32_t hwm = 0;

    js_mutex_lock(&inst->ckpt_lock);
    js_mutex_lock(&inst->eng.writer_lock);
    err = ckpt_read_hwm(inst, &hwm);
    if (err) {
        js_mutex_unlock(&inst->eng.writer_lock);
        goto out;
    }
    uint64_t redo = inst_logging(inst) ? log_position_now(&inst->log) : 0;
    err = pool_dirty_list(&inst->store.pool, &list, &n);
    js_mutex_unlock(&inst->eng.writer_lock);
    if (err)
        goto out;

    if (redo) {
        err = log_flush(&inst->log, redo);
        if (err)
            goto out;
    }
    buf = aligned_alloc(4096, (size_t)CKPT_BATCH * inst->store.page_size);
    if (!buf) {
        err = js_fail(JET_errOutOfMemory, "checkpoint buffer");
        goto out;
    }
    ckpt_cow_prepare(inst, list, n);
    int sync_failed = 0;
    for (size_t i = 0; i < n && !err; i += CKPT_BATCH) {
        uint32_t batch = (uint32_t)(n - i < CKPT_BATCH ? n - i : CKPT_BATCH);
        if (dwb_full(&inst->store, batch)) {
            /* The doublewrite buffer is full: make what this checkpoint
             * wrote so far durable first (an fsync after writes, below). */
            err = db_sync(&inst->store);
            sync_failed = err != JET_errSuccess;
        }
        if (!err)
            err = ckpt_write_batch(inst, list + i, batch, redo, buf);
    }
    if (!err && n) {
        err = db_sync(&inst->store);
        sync_failed = err != JET_errSuccess;
    }
    if (err) {
        /* A failed write: the pages of its batch are dirty again, later
         * batches were never taken, and edb.chk keeps the previous redo
         * point, so the log still covers every page; lack of space is
         * retried by the next checkpoint.  A failed fsync, whatever its
         * errno, is sticky: the kernel may drop the pages it could not
         * write, and the pool no longer holds them dirty.  Stop rather
         * than lose them. */
        if (sync_failed || !err_is_space(err))
            inst_set_fatal(inst, err);
        goto out;
    }
    if (hwm > atomic_load(&inst->store.valid_below))
        atomic_store(&inst->store.valid_below, hwm);   /* only this function stores it, under ckpt_lock */
    if (redo) {
        chk_file chk = { .redo_lsn = redo, .valid_below = atomic_load(&inst->store.valid_below),
                         .time = js_time_ms() };
        memcpy(chk.log_sig, inst->hdr.log_sig, JS_SIG_LEN);
        err = chk_write(inst->dir, &chk);
        if (err) {
            /* A copy torn by lack of space fails its checksum and the
             * other one, the previous redo point, is read: still valid. */
            if (!err_is_space(err))
                inst_set_fatal(inst, err);
            goto out;
        }
        inst->ckpt_lsn = redo;
        if (inst->params.circular_log) {
            uint32_t lo, hi;
            /* A failed delete only leaves an extra generation behind (the
             * chain stays contiguous); say so and go on. */
            if (log_delete_below(&inst->log, LSN_GEN(redo), &lo, &hi) != JET_errSuccess)
                inst_event(inst, 227, JS_EV_WARNING, "circular logging could not delete a generation: %s",
                           js_errdetail());
        }
    }
out:
    inst_checkpoint_done(inst, err);
    js_mutex_unlock(&inst->ckpt_lock);
    free(buf);
    free(list);
    return err;
}

/* What the checkpoint thread saw at its previous look. */
typedef struct ckpt_pace {
    uint64_t seen_pos;      /* log position */
    uint64_t last_ms;       /* js_mono_ms of the last checkpoint it ran */
} ckpt_pace;

/* Whether a look with dirty pages checkpoints.  A checkpoint writes every
 * dirty page twice (doublewrite buffer, then in place), and under steady
 * writes nearly every page is dirty again a second later.  So, like ESE's
 * checkpoint depth and PostgreSQL's max_wal_size, a writing instance
 * checkpoints when the log since the redo point reaches checkpoint_depth
 * (which bounds recovery), or after CKPT_BUSY_LOOKS looks (which bounds
 * how old the redo point gets); a quiet one (no commit since the previous
 * look) at once, so it is clean within about two periods as before. */
static int ckpt_due(js_instance *inst, ckpt_pace *pace)
{
    if (!inst_logging(inst))
        return 1;   /* no log: the pages are the only copy, write them */
    uint64_t pos = log_position_now(&inst->log);
    int quiet = pos == pace->seen_pos;
    pace->seen_pos = pos;
    if (quiet || js_mono_ms() - pace->last_ms >= (uint64_t)CKPT_BUSY_LOOKS * inst->params.checkpoint_ms)
        return 1;
    js_mutex_lock(&inst->ckpt_lock);
    uint64_t redo = inst->ckpt_lsn;
    js_mutex_unlock(&inst->ckpt_lock);
    uint64_t depth = (uint64_t)(LSN_GEN(pos) - LSN_GEN(redo)) * inst->log.file_size + LSN_OFF(pos);
    depth = depth > LSN_OFF(redo) ? depth - LSN_OFF(redo) : 0;
    return redo == 0 || depth >= inst->params.checkpoint_depth;
}

/* A checkpoint that started once tickets were asked ended with err: the
 * waiters of ckpt_wait holding those tickets get it. */
static void ckpt_serve(js_instance *inst, uint64_t tickets, JET_ERR err)
{
    js_mutex_lock(&inst->state_lock);
    inst->ckpt_serving = 0;
    inst->ckpt_served = tickets;
    inst->ckpt_served_err = err;
    snprintf(inst->ckpt_served_detail, sizeof inst->ckpt_served_detail, "%s", err ? js_errdetail() : "");
    pthread_cond_broadcast(&inst->state_cond);
    js_mutex_unlock(&inst->state_lock);
}

JET_ERR ckpt_wait(js_instance *inst, JET_ERR (*poll)(void *ctx), void *ctx)
{
    JET_ERR err = JET_errSuccess;
    int outcome = 0;
    char detail[sizeof inst->ckpt_served_detail];
    if (!inst->threads_started)
        return ckpt_run(inst);
    js_mutex_lock(&inst->state_lock);
    uint64_t ticket = ++inst->ckpt_tickets;
    pthread_cond_broadcast(&inst->ckpt_wake);
    while (!err && inst->ckpt_served < ticket) {
        /* One under way for us brings its outcome, even a fatal one; with
         * none, a fatal or stopping instance runs no more. */
        int coming = inst->ckpt_serving >= ticket;
        if (!coming && health_fatal(&inst->health)) {
            err = js_fail(JET_errInstanceUnavailable, "instance %s turned unavailable during a checkpoint",
                          inst->dir);
        } else if (!coming && inst->stopping) {
            err = js_fail(JET_errTermInProgress, "instance %s is shutting down", inst->dir);
        } else {
            struct timespec ts = js_deadline_ms(250);
            js_cond_timedwait(&inst->state_cond, &inst->state_lock, &ts);
            if (poll && inst->ckpt_served < ticket) {
                js_mutex_unlock(&inst->state_lock);
                err = poll(ctx);
                js_mutex_lock(&inst->state_lock);
            }
        }
    }
    if (!err && inst->ckpt_served_err) {
        err = inst->ckpt_served_err;
        outcome = 1;
        snprintf(detail, sizeof detail, "%s", inst->ckpt_served_detail);
    }
    js_mutex_unlock(&inst->state_lock);
    if (outcome)
        js_fail(err, "%s", detail);   /* the checkpoint thread's detail, in this thread */
    return err;
}

static void *ckpt_thread_main(void *arg)
{
    js_instance *inst = arg;
    JET_ERR last = JET_errSuccess;   /* said once per spell of lack of space */
    ckpt_pace pace = { .seen_pos = 0, .last_ms = js_mono_ms() };
    js_mutex_lock(&inst->state_lock);
    while (!inst->stopping && !health_fatal(&inst->health)) {
        struct timespec ts = js_deadline_ms(inst->params.checkpoint_ms);
        if (!inst->ckpt_requested && inst->ckpt_tickets == inst->ckpt_served)
            js_cond_timedwait(&inst->ckpt_wake, &inst->state_lock, &ts);
        if (inst->stopping || health_fatal(&inst->health))
            break;
        int asked = inst->ckpt_requested;
        inst->ckpt_requested = 0;
        int retry = inst->space_err != 0;
        uint64_t tickets = inst->ckpt_tickets;
        int waited_for = tickets != inst->ckpt_served;
        if (waited_for)
            inst->ckpt_serving = tickets;
        js_mutex_unlock(&inst->state_lock);
        if ((pool_ndirty(&inst->store.pool) && (asked || ckpt_due(inst, &pace))) || retry || waited_for) {
            JET_ERR err = ckpt_run(inst);
            ckpt_serve(inst, tickets, err);
            pace.last_ms = js_mono_ms();
            /* While the disk stays full every writer asks for another try:
             * say it when it starts and when it ends, not at every try. */
            if (err && (!err_is_space(err) || err != last))
                inst_event(inst, 0, err_is_space(err) ? JS_EV_WARNING : JS_EV_ERROR,
                           "checkpoint failed: %s (%d): %s", js_errname(err), err, js_errdetail());
            else if (!err && err_is_space(last))
                inst_event(inst, 0, JS_EV_INFO, "checkpoint succeeded again: space was freed");
            last = err;
        }
        js_mutex_lock(&inst->state_lock);
    }
    /* Writers waiting for a checkpoint (inst_check_writable) get no more. */
    pthread_cond_broadcast(&inst->state_cond);
    js_mutex_unlock(&inst->state_lock);
    return NULL;
}

/* Lazy commits: flushed within 100 ms.  Also keeps the pool's spare
 * buffers stocked (pool_stock_spares), off the commit path. */
static void *flush_thread_main(void *arg)
{
    js_instance *inst = arg;
    js_mutex_lock(&inst->state_lock);
    while (!inst->stopping && !health_fatal(&inst->health)) {
        struct timespec ts = js_deadline_ms(50);
        js_cond_timedwait(&inst->ckpt_wake, &inst->state_lock, &ts);
        if (inst->stopping || health_fatal(&inst->health))
            break;
        js_mutex_unlock(&inst->state_lock);
        log_tick(&inst->log);
        pool_stock_spares(&inst->store.pool);
        js_mutex_lock(&inst->state_lock);
    }
    js_mutex_unlock(&inst->state_lock);
    return NULL;
}

JET_ERR ckpt_start_threads(js_instance *inst)
{
    if (pthread_create(&inst->ckpt_thread, NULL, ckpt_thread_main, inst) != 0)
        return js_fail(JET_errOutOfMemory, "cannot start the instance threads");
    if (pthread_create(&inst->flush_thread, NULL, flush_thread_main, inst) != 0) {
        /* The checkpoint thread runs: stop it before failing. */
        js_mutex_lock(&inst->state_lock);
        inst->stopping = 1;
        pthread_cond_broadcast(&inst->ckpt_wake);
        js_mutex_unlock(&inst->state_lock);
        pthread_join(inst->ckpt_thread, NULL);
        return js_fail(JET_errOutOfMemory, "cannot start the instance threads");
    }
    inst->threads_started = 1;
    return JET_errSuccess;
}

void ckpt_join_threads(js_instance *inst)
{
    if (!inst->threads_started)
        return;
    pthread_join(inst->ckpt_thread, NULL);
    pthread_join(inst->flush_thread, NULL);
    inst->threads_started = 0;
}

JET_ERR js_checkpoint(js_instance *inst)
{
    JET_ERR err = inst_check_usable(inst);
    return err ? err : ckpt_run(inst);
}
