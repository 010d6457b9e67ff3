/*
 * instance.c - create, open (header checks, then recovery), run (the
 * checkpoint and lazy-flush threads, started from checkpoint.c), and close
 * an instance; the instance's state, its fatal state's callbacks and the
 * tree's hooks.
 *
 * States (enum js_instance_state):
 *   STARTING --js_instance_start--> RECOVERING --redo done--> READY
 *   READY --js_close--> STOPPING;  any --fatal I/O error--> FATAL
 * A full disk is not fatal: the state stays READY, writes fail with
 * JET_errLogDiskFull / JET_errDiskFull and resume once space is freed
 * (which errors are sticky and which transient: base.h, instance.h,
 * jetsnap.h).
 * Header state (enum js_db_state): js_create writes just-created; an open
 * writes dirty-shutdown before the first change; a clean close writes
 * clean-shutdown after its final checkpoint.  A restore in progress has
 * being-restored, which open refuses.
 */
#include "instance/instance.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LOG_SIZE_MIN (64ull << 10)
#define LOG_SIZE_MAX (1ull << 30)

void js_params_default(js_params *p)
{
    memset(p, 0, sizeof *p);
    p->page_size = 8192;
    p->log_file_size = 5ull << 20;
    p->commit_mode = JS_COMMIT_DURABLE;
    p->cache_size = 256ull << 20;
    p->checkpoint_ms = 1000;
    p->checkpoint_depth = 256ull << 20;
    p->snapshot_max = 64;
}

const char *js_instance_dir(const js_instance *inst)
{
    return inst ? inst->dir : "";
}

JET_ERR js_cache_info_get(js_instance *inst, js_cache_info *out)
{
    if (!inst || !out)
        return js_fail(JET_errInvalidParameter, "js_cache_info_get: NULL argument");
    pool_usage_info u;
    pool_usage(&inst->store.pool, &u);
    uint64_t ps = inst->store.page_size;
    *out = (js_cache_info){ .limit_bytes = u.cap * ps, .pages_bytes = u.frames * ps, .dirty_bytes = u.dirty * ps,
                            .spare_bytes = u.spares * ps, .memory_bytes = u.handed, .mapped_bytes = u.mapped,
                            .page_size = (uint32_t)ps };
    return JET_errSuccess;
}

int js_instance_state(const js_instance *inst)
{
    js_instance *m = (js_instance *)inst;
    js_mutex_lock(&m->state_lock);
    int st = m->state;
    js_mutex_unlock(&m->state_lock);
    return st;
}

JET_ERR inst_check_usable(js_instance *inst)
{
    if (!inst)
        return js_fail(JET_errNotInitialized, "no instance");
    JET_ERR err = JET_errSuccess;
    js_mutex_lock(&inst->state_lock);
    JET_ERR fatal = health_fatal(&inst->health);
    if (fatal)
        err = js_fail(JET_errInstanceUnavailable, "instance %s is unavailable after %s", inst->dir,
                      js_errname(fatal));
    else if (inst->stopping)
        err = js_fail(JET_errTermInProgress, "instance %s is shutting down", inst->dir);
    else if (inst->state != JS_INST_READY && inst->state != JS_INST_RECOVERING)
        err = js_fail(JET_errNotInitialized, "instance %s is not started", inst->dir);
    js_mutex_unlock(&inst->state_lock);
    return err;
}

/* Before a write transaction takes the writer lock: retry a log write that
 * failed for lack of space, and, when the last checkpoint failed for lack
 * of space, ask for one more and wait for it.  JET_errLogDiskFull or
 * JET_errDiskFull while space is still missing. */
static JET_ERR inst_check_writable(js_instance *inst)
{
    JET_ERR err = log_retry_stalled(&inst->log);
    if (err)
        return err;
    js_mutex_lock(&inst->state_lock);
    if (inst->space_err && !health_fatal(&inst->health) && !inst->stopping) {
        /* Dirty pages cannot leave the pool while checkpoints fail, so do
         * not add to them: have one more checkpoint tried, and wait for it. */
        uint64_t seen = inst->ckpt_done;
        inst->ckpt_requested = 1;
        pthread_cond_broadcast(&inst->ckpt_wake);
        while (inst->ckpt_done == seen && inst->space_err && !health_fatal(&inst->health) && !inst->stopping)
            js_cond_wait(&inst->state_cond, &inst->state_lock);
        err = inst->space_err;
    }
    js_mutex_unlock(&inst->state_lock);
    if (err)
        return js_fail(err, "instance %s: checkpoints fail for lack of space (%s); writes resume once space is freed",
                       inst->dir, js_errname(err));
    return JET_errSuccess;
}

void inst_checkpoint_done(js_instance *inst, JET_ERR err)
{
    js_mutex_lock(&inst->state_lock);
    if (!err)
        inst->space_err = 0;
    else if (err_is_space(err))
        inst->space_err = err;
    inst->ckpt_done++;
    pthread_cond_broadcast(&inst->state_cond);
    js_mutex_unlock(&inst->state_lock);
}

void inst_set_fatal(js_instance *inst, JET_ERR err)
{
    health_set_fatal(&inst->health, err);
}

/* js_health's on_fatal: the first sticky error of any layer lands here. */
static void on_fatal(void *ctx, JET_ERR err)
{
    js_instance *inst = ctx;
    (void)err;
    js_mutex_lock(&inst->state_lock);
    inst->state = JS_INST_FATAL;
    pthread_cond_broadcast(&inst->state_cond);
    js_mutex_unlock(&inst->state_lock);
}

static void on_event(void *ctx, int id, int level, const char *msg)
{
    inst_event(ctx, id, level, "%s", msg);
}

void inst_request_checkpoint(js_instance *inst)
{
    js_mutex_lock(&inst->state_lock);
    inst->ckpt_requested = 1;
    pthread_cond_broadcast(&inst->ckpt_wake);
    js_mutex_unlock(&inst->state_lock);
}

/* The tree's hooks (tree.h). */
static JET_ERR hook_usable(void *ctx)
{
    return inst_check_usable(ctx);
}

static JET_ERR hook_writable(void *ctx)
{
    return inst_check_writable(ctx);
}

static void hook_want_checkpoint(void *ctx)
{
    inst_request_checkpoint(ctx);
}

static void hook_session_closed(void *ctx)
{
    js_instance *inst = ctx;
    js_mutex_lock(&inst->state_lock);
    inst->sessions--;
    pthread_cond_broadcast(&inst->state_cond);
    js_mutex_unlock(&inst->state_lock);
}

JET_ERR js_session_open(js_instance *inst, js_session **out)
{
    if (!inst || !out)
        return js_fail(JET_errInvalidParameter, "NULL argument");
    JET_ERR err = inst_check_usable(inst);
    if (!err)
        err = txn_session_new(&inst->eng, out);
    if (err)
        return err;
    js_mutex_lock(&inst->state_lock);
    inst->sessions++;
    js_mutex_unlock(&inst->state_lock);
    return JET_errSuccess;
}

JET_ERR js_db_read(js_instance *inst, uint64_t off, void *buf, size_t len, size_t *got)
{
    if (!inst || !buf || !got)
        return js_fail(JET_errInvalidParameter, "js_db_read: NULL argument");
    return db_read(&inst->store, off, buf, len, got);
}

JET_ERR js_wait_durable(js_instance *inst, uint64_t pos, uint64_t *durable)
{
    if (durable)
        *durable = 0;
    if (!inst)
        return js_fail(JET_errInvalidParameter, "js_wait_durable: no instance");
    JET_ERR err = pos ? log_flush(&inst->log, pos) : JET_errSuccess;
    /* The flush may have carried commits made after pos, too. */
    if (!err && durable && inst->log.enabled)
        *durable = log_durable_now(&inst->log);
    return err;
}

JET_ERR js_log_roll(js_instance *inst, uint32_t *closed_gen)
{
    JET_ERR err = inst_check_usable(inst);
    return err ? err : log_roll(&inst->log, closed_gen);
}

JET_ERR js_log_closed_range(js_instance *inst, uint32_t *min_gen, uint32_t *max_gen)
{
    return loggen_list(inst->log.dir, min_gen, max_gen);
}

void js_log_gen_path(js_instance *inst, uint32_t gen, char *out, size_t cap)
{
    loggen_name(out, cap, inst->log.dir, gen);
}

void js_log_archive_pin(js_instance *inst, uint32_t gen)
{
    log_pin_archive(&inst->log, gen);
}

int64_t js_log_first_commit_ms(js_instance *inst)
{
    return log_first_commit_ms(&inst->log);
}

void js_set_event_sink(js_instance *inst, js_event_fn fn, void *ctx)
{
    js_mutex_lock(&inst->state_lock);
    inst->event_fn = fn;
    inst->event_ctx = ctx;
    js_mutex_unlock(&inst->state_lock);
}

void inst_event(js_instance *inst, int id, int level, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    js_mutex_lock(&inst->state_lock);
    js_event_fn fn = inst->event_fn;
    void *ctx = inst->event_ctx;
    js_mutex_unlock(&inst->state_lock);
    if (fn) {
        js_event ev = { .time_ms = js_time_ms(), .id = id, .level = level, .message = msg };
        fn(ctx, &ev);
    }
}

JET_ERR inst_write_header(js_instance *inst)
{
    js_mutex_lock(&inst->hdr_lock);
    int slot = rl_lock(&inst->store.rl, 0, 2, 1);
    JET_ERR err = dbh_write(inst->store.fd, inst->store.path, &inst->hdr);
    rl_unlock(&inst->store.rl, slot);
    js_mutex_unlock(&inst->hdr_lock);
    /* Lack of space leaves the copy being written torn at worst, and the
     * read rule then takes the other one: the caller fails, nothing more. */
    if (err && !err_is_space(err))
        inst_set_fatal(inst, err);
    return err;
}


/* ---------------- create ---------------- */


JET_ERR js_create(const char *dir, const js_params *p)
{
    js_params def;
    if (!p) {
        js_params_default(&def);
        p = &def;
    }
    if (!dir || !*dir)
        return js_fail(JET_errInvalidParameter, "no directory given");
    if (!pg_size_valid(p->page_size))
        return js_fail(JET_errInvalidParameter, "page size %u (must be 4096, 8192, 16384 or 32768)", p->page_size);
    if (p->log_file_size < LOG_SIZE_MIN || p->log_file_size > LOG_SIZE_MAX || p->log_file_size % 4096)
        return js_fail(JET_errInvalidParameter, "log file size %llu (must be 64K..1G, a multiple of 4K)",
                       (unsigned long long)p->log_file_size);
    if (p->log_file_size < 4ull * p->page_size + 8192)
        return js_fail(JET_errInvalidParameter, "log file size %llu is too small for %u-byte pages",
                       (unsigned long long)p->log_file_size, p->page_size);
    JET_ERR err = os_mkdir(dir, 0700, 1);
    if (err)
        return err;
    if (!os_dir_empty(dir, NULL))
        return js_fail(JET_errInvalidPath, "%s is not empty", dir);

    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, JS_DB_FILE);
    int fd = -1;
    uint8_t *pages = NULL;
    err = os_open(path, O_RDWR | O_CREAT | O_EXCL, 0600, &fd);
    if (err)
        return err;
    db_header h = { .page_size = p->page_size, .state = JS_DB_JUST_CREATED,
                    .flags = p->circular_log ? DBH_CIRCULAR : 0, .created = js_time_ms() / 1000,
                    .log_file_size = p->log_file_size };
    dbh_new_signature(h.db_sig);
    dbh_new_signature(h.log_sig);
    pages = aligned_alloc(4096, 3 * (size_t)p->page_size);
    if (!pages) {
        err = js_fail(JET_errOutOfMemory, "new database pages");
        goto out;
    }
    dbh_encode(&h, pages, 0);
    dbh_encode(&h, pages + p->page_size, 1);
    uint8_t *meta = pages + 2 * (size_t)p->page_size;
    pg_init(meta, p->page_size, PG_META_PGNO, PG_META);
    pg_put32(meta + META_NEXT, PG_FIRST_DATA);
    pg_seal(meta, p->page_size, PG_META_PGNO);
    err = os_pwrite(fd, path, pages, 3 * (size_t)p->page_size, 0);
    if (!err)
        err = os_fsync(fd, path);
    if (err)
        goto out;

    /* Generation 1 and a checkpoint pointing at its start. */
    log_state lg;
    log_init(&lg, dir, p->log_file_size, p->page_size, h.log_sig, h.db_sig, 1, NULL);
    err = log_create_gen(&lg, 1, 0, 0, 0);
    if (!err) {
        chk_file chk = { .redo_lsn = log_position_now(&lg), .time = js_time_ms() };
        memcpy(chk.log_sig, h.log_sig, JS_SIG_LEN);
        err = chk_write(dir, &chk);
    }
    log_destroy(&lg);
    if (!err)
        err = os_fsync_dir(dir);
out:
    free(pages);
    os_close(fd);
    return err;
}

/* ---------------- open ---------------- */

static void inst_free(js_instance *inst)
{
    ss_close(inst->store.snap);
    pool_destroy(&inst->store.pool);
    rl_destroy(&inst->store.rl);
    log_destroy(&inst->log);
    os_close(inst->store.fd);
    dwb_close(&inst->store);
    os_close(inst->lock_fd);   /* releases the flock */
    txn_engine_destroy(&inst->eng);
    js_mutex_destroy(&inst->hdr_lock);
    js_mutex_destroy(&inst->ckpt_lock);
    js_mutex_destroy(&inst->state_lock);
    pthread_cond_destroy(&inst->state_cond);
    pthread_cond_destroy(&inst->ckpt_wake);
    free(inst);
}

static JET_ERR inst_new_common(const char *dir, const js_params *p, int for_restore, js_instance **out);

/* Header states an open refuses (restore accepts the first two). */
static JET_ERR inst_refusal(const db_header *h, const char *dir, const char *db_path, int for_restore)
{
    if (h->backup_gen_low && !for_restore)
        return js_fail(JET_errSoftRecoveryOnBackupDatabase,
                       "%s is a raw backup copy; restore the set with `jetsnap restore`", db_path);
    if (h->state == JS_DB_BEING_RESTORED && !for_restore)
        return js_fail(JET_errRestoreInProgress, "%s: a restore into it did not finish", dir);
    if (h->state == JS_DB_DIRTY_SHUTDOWN && (h->flags & DBH_UNLOGGED) && !for_restore)
        return js_fail(JET_errDatabaseDirtyShutdown,
                       "%s was open without a log (no_log) when it stopped; it cannot be recovered", dir);
    return JET_errSuccess;
}

JET_ERR js_instance_new(const char *dir, const js_params *p, js_instance **out)
{
    return inst_new_common(dir, p, 0, out);
}

JET_ERR inst_new_for_restore(const char *dir, js_instance **out)
{
    js_params p;
    js_params_default(&p);
    p.no_log = 1;
    p.page_size = 0;
    return inst_new_common(dir, &p, 1, out);
}

void inst_discard(js_instance *inst)
{
    inst_free(inst);
}

static JET_ERR inst_new_common(const char *dir, const js_params *p, int for_restore, js_instance **out)
{
    js_params def;
    if (!p) {
        js_params_default(&def);
        p = &def;
    }
    if (!dir || !out)
        return js_fail(JET_errInvalidParameter, "NULL argument");
    js_errclear();
    js_instance *inst = calloc(1, sizeof *inst);
    if (!inst)
        return js_fail(JET_errOutOfMemory, "instance");
    JET_ERR err = JET_errSuccess;
    inst->params = *p;
    if (!inst->params.cache_size)
        inst->params.cache_size = 256ull << 20;
    if (!inst->params.checkpoint_ms)
        inst->params.checkpoint_ms = 1000;
    if (!inst->params.checkpoint_depth)
        inst->params.checkpoint_depth = 256ull << 20;
    inst->lock_fd = inst->store.fd = inst->store.dwb_fd = -1;
    snprintf(inst->dir, sizeof inst->dir, "%s", dir);
    snprintf(inst->store.path, sizeof inst->store.path, "%s/%s", dir, JS_DB_FILE);
    health_init(&inst->health, on_fatal, on_event, inst);
    txn_engine_init(&inst->eng);
    inst->eng.store = &inst->store;
    inst->eng.log = &inst->log;
    inst->eng.health = &inst->health;
    inst->eng.durable = inst->params.commit_mode == JS_COMMIT_DURABLE;
    inst->eng.hooks = (tree_hooks){ .usable = hook_usable, .writable = hook_writable,
                                    .want_checkpoint = hook_want_checkpoint,
                                    .session_closed = hook_session_closed, .ctx = inst };
    /* The log's constants come with the header; until then, a closed log. */
    log_init(&inst->log, dir, 0, 0, inst->hdr.log_sig, inst->hdr.db_sig, !inst->params.no_log, &inst->health);
    js_mutex_init(&inst->hdr_lock);
    js_mutex_init(&inst->ckpt_lock);
    js_mutex_init(&inst->state_lock);
    pthread_cond_init(&inst->state_cond, NULL);
    pthread_cond_init(&inst->ckpt_wake, NULL);
    rl_init(&inst->store.rl);
    inst->state = JS_INST_STARTING;

    struct stat st;
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        err = js_fail(JET_errFileNotFound, "%s: no such instance directory", dir);
        goto fail;
    }
    if (stat(inst->store.path, &st) < 0) {
        err = js_fail(JET_errFileNotFound, "%s: no jetsnap instance here (no " JS_DB_FILE ")", dir);
        goto fail;
    }
    /* Refusals come before the lock file is made, so refusing changes
     * nothing in the directory (a backup set stays a plain set). */
    err = os_open(inst->store.path, O_RDONLY, 0, &inst->store.fd);
    if (!err)
        err = dbh_read(inst->store.fd, inst->store.path, &inst->hdr);
    if (!err)
        err = inst_refusal(&inst->hdr, dir, inst->store.path, for_restore);
    os_close(inst->store.fd);
    inst->store.fd = -1;
    if (err)
        goto fail;
    char lockpath[PATH_MAX];
    snprintf(lockpath, sizeof lockpath, "%s/%s", dir, JS_LOCK_FILE);
    err = os_open(lockpath, O_RDWR | O_CREAT, 0600, &inst->lock_fd);
    if (err)
        goto fail;
    if (flock(inst->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        err = js_fail(JET_errDatabaseInUse, "%s is open in another process", dir);
        goto fail;
    }
    /* Read again under the lock: another process may have changed it. */
    err = os_open(inst->store.path, O_RDWR, 0, &inst->store.fd);
    if (err)
        goto fail;
    err = dbh_read(inst->store.fd, inst->store.path, &inst->hdr);
    if (!err)
        err = inst_refusal(&inst->hdr, dir, inst->store.path, for_restore);
    if (err)
        goto fail;
    inst->store.page_size = inst->hdr.page_size;
    if (p->page_size && p->page_size != inst->store.page_size && p->page_size != 8192) {
        /* 8192 is the default, so it cannot tell "asked for" from "unset". */
        err = js_fail(JET_errPageSizeMismatch, "%s has %u-byte pages, not %u", dir, inst->store.page_size,
                      p->page_size);
        goto fail;
    }
    if (inst->hdr.flags & DBH_CIRCULAR)
        inst->params.circular_log = 1;
    uint64_t fsize = 0;
    err = os_size(inst->store.fd, inst->store.path, &fsize);
    if (err)
        goto fail;
    inst->store.file_pages = fsize / inst->store.page_size;
    memcpy(inst->store.dwb_sig, inst->hdr.db_sig, JS_SIG_LEN);
    err = pool_init(&inst->store.pool, inst->store.page_size, inst->params.cache_size);
    if (err)
        goto fail;
    log_destroy(&inst->log);
    log_init(&inst->log, dir, inst->hdr.log_file_size, inst->store.page_size, inst->hdr.log_sig, inst->hdr.db_sig,
             !inst->params.no_log, &inst->health);
    /* Before recovery's first page write: the snapshots need their old
     * images saved from it on. */
    if (!for_restore) {
        err = snap_store_open(inst, 0);
        if (err)
            goto fail;
    }
    *out = inst;
    return JET_errSuccess;
fail:
    inst_free(inst);
    return err;
}

JET_ERR js_instance_start(js_instance *inst)
{
    if (!inst)
        return js_fail(JET_errInvalidParameter, "NULL instance");
    JET_ERR err = JET_errSuccess;
    js_mutex_lock(&inst->state_lock);
    if (inst->state != JS_INST_STARTING) {
        js_mutex_unlock(&inst->state_lock);
        return js_fail(JET_errInvalidParameter, "instance already started");
    }
    inst->state = JS_INST_RECOVERING;
    js_mutex_unlock(&inst->state_lock);

    /* Before anything reads a page: a page a crash tore in the middle of a
     * checkpoint's write gets its image back from the doublewrite buffer. */
    uint32_t repaired = 0, first = 0;
    err = dwb_repair(&inst->store, &repaired, &first);
    if (err)
        goto fail;
    if (repaired)
        inst_event(inst, 0, JS_EV_WARNING, "%u page(s) of " JS_DB_FILE " torn by a crash (the first: page %u) "
                   "repaired from " JS_DWB_FILE, repaired, first);
    err = dwb_start(&inst->store);
    if (err)
        goto fail;

    if (!inst->params.no_log) {
        chk_file chk;
        uint64_t start = 0;
        err = chk_read(inst->dir, &chk);
        if (!err && !memcmp(chk.log_sig, inst->hdr.log_sig, JS_SIG_LEN))
            start = chk.redo_lsn;
        else if (!err)
            err = js_fail(JET_errBadLogSignature, "%s/" JS_CHK_FILE " belongs to another log stream", inst->dir);
        else if (err == JET_errFileNotFound || err == JET_errCheckpointCorrupt)
            err = JET_errSuccess;   /* replay from the oldest generation present */
        if (err)
            goto fail;
        redo_result rr;
        err = inst_redo(inst, inst->dir, start, 0, 0, 0, NULL, &rr);
        if (err)
            goto fail;
        if (rr.txns_applied)
            inst_event(inst, 301, JS_EV_INFO, "recovery replayed %llu transactions through generation %08X",
                       (unsigned long long)rr.txns_applied, rr.last_gen);
        err = log_resume(&inst->log, &rr);
        /* archive_timeout counts from the open generation's first commit,
         * which a restart forgets; one resumed with records in it gets its
         * creation time instead, a bound that only brings the roll sooner. */
        if (!err && rr.have_current && inst->log.gen == rr.cur_hdr.gen && rr.cur_scan.records) {
            js_mutex_lock(&inst->log.lock);
            inst->log.first_commit_ms = rr.cur_hdr.created;
            js_mutex_unlock(&inst->log.lock);
        }
        if (!err && rr.unfinished)
            err = log_abort_unfinished(&inst->log);
        if (err)
            goto fail;
    }
    inst->hdr.state = JS_DB_DIRTY_SHUTDOWN;
    if (inst->params.no_log)
        inst->hdr.flags |= DBH_UNLOGGED;
    else
        inst->hdr.flags &= ~DBH_UNLOGGED;
    if (inst->params.circular_log)
        inst->hdr.flags |= DBH_CIRCULAR;
    err = inst_write_header(inst);
    if (err)
        goto fail;
    js_mutex_lock(&inst->state_lock);
    inst->state = JS_INST_READY;
    js_mutex_unlock(&inst->state_lock);
    err = ckpt_run(inst);
    if (err)
        goto fail;
    err = ckpt_start_threads(inst);
    if (err)
        goto fail;
    return JET_errSuccess;
fail:
    /* Through the one fatal state, with its broadcast (a failed start is
     * fatal whatever err is, lack of space included). */
    health_set_fatal(&inst->health, err);
    js_mutex_lock(&inst->state_lock);
    inst->state = JS_INST_FATAL;
    js_mutex_unlock(&inst->state_lock);
    return err;
}

JET_ERR js_open(const char *dir, const js_params *p, js_instance **out)
{
    js_instance *inst = NULL;
    JET_ERR err = js_instance_new(dir, p, &inst);
    if (err)
        return err;
    err = js_instance_start(inst);
    if (err) {
        char detail[512];
        snprintf(detail, sizeof detail, "%s", js_errdetail());
        inst_free(inst);
        js_fail(err, "%s", detail);
        return err;
    }
    *out = inst;
    return JET_errSuccess;
}

JET_ERR js_close(js_instance *inst)
{
    if (!inst)
        return JET_errSuccess;
    JET_ERR err = JET_errSuccess;
    js_mutex_lock(&inst->state_lock);
    int started = inst->state == JS_INST_READY || inst->state == JS_INST_FATAL;
    inst->stopping = 1;
    if (inst->backup_running && !inst->backup_cancel)
        inst->backup_cancel = JET_errClientRequestToStopJetService;
    while (inst->backup_running)
        js_cond_wait(&inst->state_cond, &inst->state_lock);
    if (inst->state == JS_INST_READY)
        inst->state = JS_INST_STOPPING;
    int fatal = health_fatal(&inst->health) != 0;
    pthread_cond_broadcast(&inst->ckpt_wake);
    js_mutex_unlock(&inst->state_lock);
    ckpt_join_threads(inst);
    if (started && !fatal && inst->hdr.state == JS_DB_DIRTY_SHUTDOWN) {
        err = ckpt_run(inst);
        if (!err) {
            inst->hdr.consistent_lsn = inst_logging(inst) ? log_position_now(&inst->log) : 0;
            inst->hdr.state = JS_DB_CLEAN_SHUTDOWN;
            inst->hdr.flags &= ~DBH_UNLOGGED;
            err = inst_write_header(inst);
        }
    }
    inst_free(inst);
    return err;
}

JET_ERR inst_redo(js_instance *inst, const char *logdir, uint64_t start_lsn, uint32_t until_gen, int64_t until_us,
                  int stop_at_gap, const redo_result *chain_from, redo_result *res)
{
    return redo_run(&inst->store, inst->hdr.log_sig, logdir, start_lsn, until_gen, until_us, stop_at_gap, chain_from,
                    res);
}

JET_ERR inst_finish_restore(js_instance *inst, const redo_result *last, uint32_t verify_from)
{
    JET_ERR err = ckpt_run(inst);   /* no log open: writes every page and fsyncs */
    if (!err)
        err = db_verify_range(&inst->store, verify_from, atomic_load(&inst->store.valid_below));
    if (!err)
        err = log_create_gen(&inst->log, last->last_gen + 1, last->last_hdr.created, last->last_scan.digest,
                             last->last_scan.end_blk);
    if (err)
        return err;
    chk_file chk = { .redo_lsn = log_position_now(&inst->log), .valid_below = atomic_load(&inst->store.valid_below) };
    memcpy(chk.log_sig, inst->hdr.log_sig, JS_SIG_LEN);
    err = chk_write(inst->dir, &chk);
    if (err)
        return err;
    inst->hdr.state = JS_DB_CLEAN_SHUTDOWN;
    inst->hdr.backup_gen_low = inst->hdr.backup_gen_high = 0;
    inst->hdr.flags &= ~DBH_UNLOGGED;
    inst->hdr.consistent_lsn = chk.redo_lsn;
    memset(&inst->hdr.full, 0, sizeof inst->hdr.full);
    memset(&inst->hdr.inc, 0, sizeof inst->hdr.inc);
    return dbh_write(inst->store.fd, inst->store.path, &inst->hdr);
}
