/*
 * backup.c - online backup (ESE's JetBackup): full, incremental, atomic,
 * and truncate-only, while clients keep writing.
 *
 * Full backup, step by step (DESIGN section 3):
 *   1. validate, mark the job running (one at a time), pin the log so no
 *      generation the job may need is deleted; event 210
 *   2. checkpoint: gen_low = the checkpoint's generation (the background
 *      checkpoint's when pages are dirty, see bk_checkpoint)
 *   3. copy jetsnap.edb in batches of 256 pages, each read under the
 *      page-range lock (the flusher waits, so no page is read torn), every
 *      page verified; the copy's header carries gen_low, which marks it as
 *      a raw backup copy that only restore opens
 *   4. roll the log: gen_high = the generation just closed
 *   5. copy and verify generations gen_low..gen_high (header, every block,
 *      the close block's digest, and the chain between them)
 *   6. backup.info and SHA256SUMS (hashed while copying), fsync everything,
 *      publish (atomic: temp -> new, new -> old, old removed)
 *   7. stamp the live header (last_full_backup), flushed at once
 *   8. truncate live generations below min(checkpoint, gen_high + 1),
 *      oldest first, stopping at the first failure; events 224/225
 *   9. event 213.  On any failure before 7: remove what this job wrote,
 *      truncate nothing, event 214 (215 when cancelled).
 * Incremental: steps 4, 5 (from the generation after the set's gen_high),
 * 6 (the new logs are staged, then moved into the set, then the manifests
 * are replaced), 7 (last_incremental_backup) and 8.
 *
 * A job holds its directories; names are resolved once; cleanup removes
 * only what it created, by fd.
 *   - DEST is resolved once, when the job is accepted (bk_validate_path):
 *     beneath a root (fsd's backup_root) by the kernel with openat2
 *     RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS (os_open_beneath), otherwise by
 *     opening its parent and then DEST with O_NOFOLLOW.  A DEST that does
 *     not exist yet is made later with mkdirat on the held parent and
 *     opened with O_NOFOLLOW, and used only if it is an empty directory of
 *     ours (what mkdirat made, unless someone raced us with an empty one).
 *   - The job keeps descriptors of DEST, of the directory it writes in
 *     (DEST itself, DEST/temp, or DEST/.jetsnap-incremental) and of the set
 *     an incremental adds to (DEST or DEST/new).  Every later create, write,
 *     fsync, link, rename, readdir and removal is an *at() call relative to
 *     one of them, so renaming a directory on DEST's path and putting a
 *     symlink in its place, at any moment, cannot make the job read, write
 *     or delete anything outside the directory it was given: it goes on
 *     working in the directory it opened, wherever that now is.
 *   - The strings j->dest, j->work and j->target only name things in
 *     messages and for the fault filter; they are never resolved.
 *   - Cleanup unlinks, relative to the held directory, only the names this
 *     job created there, and removes a directory only if this job made it
 *     and the name still holds that very directory (same device and inode).
 *     The previous set (DEST/old) and a leftover of an interrupted job
 *     (DEST/temp) are removed by os_rmtreeat: opened with O_NOFOLLOW, so a
 *     symlink there is refused, never followed.
 */
#include "jobs/bkjob.h"
#include "base/cachetrail.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>



static JET_ERR bk_report(bk_job *j, int snt)
{
    if (!j->status)
        return JET_errSuccess;
    j->prog.units_total = 100;
    j->prog.units_done = j->prog.bytes_total ? j->prog.bytes_done * 100 / j->prog.bytes_total : 0;
    if (j->prog.units_done > 100)
        j->prog.units_done = 100;
    if (snt == JS_SNT_COMPLETE)
        j->prog.units_done = 100;
    j->prog.gen_low = j->gen_low;
    j->prog.gen_high = j->gen_high;
    if (j->status(j->ctx, JS_SNP_BACKUP, snt, &j->prog) != 0 && snt != JS_SNT_FAIL && snt != JS_SNT_COMPLETE)
        return js_fail(JET_errBackupAbortByServer, "the backup was cancelled by its status callback");
    return JET_errSuccess;
}

static JET_ERR bk_check_cancel(bk_job *j);

/* Sleep until due_ms (monotonic) in steps of at most 250 ms, so a cancel
 * is seen at once and the status callback still hears from the job at
 * least every half second while it holds back. */
static JET_ERR bk_sleep_until(bk_job *j, int64_t due_ms)
{
    int64_t now = js_mono_ms();
    while (now < due_ms) {
        JET_ERR err = bk_check_cancel(j);
        if (!err && now - j->last_report_ms >= 500) {
            j->last_report_ms = now;
            err = bk_report(j, JS_SNT_PROGRESS);
        }
        if (err)
            return err;
        int64_t step = due_ms - now < 250 ? due_ms - now : 250;
        struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)step * 1000000L };
        nanosleep(&ts, NULL);
        now = js_mono_ms();
    }
    return JET_errSuccess;
}

/* Keep the copy at or under params.backup_max_rate, so a backup on a busy
 * machine leaves disk bandwidth to clients (pg_basebackup's --max-rate).
 * A hard cap, whatever the pacer decides. */
static JET_ERR bk_throttle(bk_job *j)
{
    uint64_t rate = j->inst->params.backup_max_rate;
    if (!rate)
        return JET_errSuccess;
    return bk_sleep_until(j, j->start_ms + (int64_t)(j->prog.bytes_done * 1000 / rate));
}

/* The pacer (RocksDB's auto-tuned rate limiter is the model).  Every
 * window: when nobody committed durably (the log's flush count did not
 * move) the copy runs at full speed.  Otherwise it is held to at most
 * BK_PACE_BUSY (measured: a 64-128 MiB/s copy leaves 16 durable writers
 * 0.8-1.0x of their throughput, a full-speed one 0.3x, since the copy's
 * CPU and I/O both compete; once log flushes got faster, 50 clients of
 * 100-byte SETs kept 0.64-0.83x at 128 MiB/s, 0.77-0.78x at 96 and
 * 0.82-0.87x at 64), and the committers' recent wait for the log
 * is compared with the lowest seen in this job: above 1.5 times that plus
 * 1 ms the rate is halved (down to BK_PACE_MIN), below it it grows by 1/16.
 * So the pacer can slow the copy but never stop it. */
#define BK_PACE_WINDOW_MS 50
#define BK_PACE_MIN (8ull << 20)
#define BK_PACE_MAX (2048ull << 20)
#define BK_PACE_BUSY (64ull << 20)
#define BK_PACE_FLOOR_US 250u

static void bk_pace_adjust(bk_job *j, int64_t now)
{
    bk_pacer *pc = &j->pacer;
    uint64_t flushes = 0;
    uint32_t lat = log_flush_latency(&j->inst->log, &flushes);
    int64_t span = now - pc->win_ms;
    uint64_t moved = j->prog.bytes_done - pc->win_bytes;
    if (flushes == pc->flushes) {
        pc->rate = 0;
        pc->holding = 0;
    } else {
        if (!pc->base_us || lat < pc->base_us)
            pc->base_us = lat < BK_PACE_FLOOR_US ? BK_PACE_FLOOR_US : lat;
        if (lat > pc->base_us * 3 / 2 + 1000) {
            uint64_t cur = pc->rate ? pc->rate : span > 0 ? moved * 1000 / (uint64_t)span : BK_PACE_MAX;
            pc->rate = cur / 2 < BK_PACE_MIN ? BK_PACE_MIN : cur / 2;
            pc->holding = 1;
        } else if (pc->rate) {
            pc->rate += pc->rate / 16;
        }
        if (!pc->rate || pc->rate > BK_PACE_BUSY) {
            pc->rate = BK_PACE_BUSY;
            pc->holding = 1;
        }
    }
    pc->flushes = flushes;
    pc->win_ms = now;
    pc->win_bytes = j->prog.bytes_done;
}

static JET_ERR bk_pace(bk_job *j)
{
    bk_pacer *pc = &j->pacer;
    int64_t now = js_mono_ms();
    if (!pc->win_ms) {
        (void)log_flush_latency(&j->inst->log, &pc->flushes);
        pc->win_ms = pc->mark_ms = now;
        pc->win_bytes = pc->mark_bytes = j->prog.bytes_done;
    } else if (now - pc->win_ms >= BK_PACE_WINDOW_MS) {
        bk_pace_adjust(j, now);
    }
    j->prog.pace_rate = pc->rate;
    j->prog.pacer_holding = pc->holding;
    JET_ERR err = JET_errSuccess;
    if (pc->rate) {
        err = bk_sleep_until(j, pc->mark_ms + (int64_t)((j->prog.bytes_done - pc->mark_bytes) * 1000 / pc->rate));
        now = js_mono_ms();
    }
    pc->mark_ms = now;
    pc->mark_bytes = j->prog.bytes_done;
    return err;
}

/* After the batch [off, off+len) of a copy is written: its writeback
 * starts, the one BK_FLOW_LAG batches back is waited for and dropped from
 * the page cache (os_writeback_behind).  The copy's dirty data stays at a
 * few batches, so no large fsync ever queues ahead of a log fsync, and a
 * copy the size of the database does not evict the live working set.  The
 * waits run at the copy's idle I/O priority. */
static JET_ERR bk_flow(int fd, const char *path, uint64_t off, uint64_t len)
{
    return os_writeback_behind(fd, path, off, len, (uint64_t)BK_FLOW_LAG * len, 1);
}

/* Progress at every whole percent, and at least every half second. */
static JET_ERR bk_progress(bk_job *j)
{
    JET_ERR err = bk_pace(j);
    if (!err)
        err = bk_throttle(j);
    if (err)
        return err;
    uint64_t pct = j->prog.bytes_total ? j->prog.bytes_done * 100 / j->prog.bytes_total : 0;
    int64_t now = js_mono_ms();
    if (pct <= j->last_pct && now - j->last_report_ms < 500)
        return JET_errSuccess;
    j->last_pct = pct;
    j->last_report_ms = now;
    return bk_report(j, JS_SNT_PROGRESS);
}

static JET_ERR bk_phase(bk_job *j, const char *phase)
{
    j->prog.phase = phase;
    j->last_report_ms = 0;
    return bk_progress(j);
}

static JET_ERR bk_check_cancel(bk_job *j)
{
    js_instance *inst = j->inst;
    JET_ERR err = JET_errSuccess;
    js_mutex_lock(&inst->state_lock);
    if (inst->backup_cancel)
        err = inst->backup_cancel;
    else if (health_fatal(&inst->health))
        err = JET_errInstanceUnavailable;
    js_mutex_unlock(&inst->state_lock);
    if (err == JET_errBackupAbortByServer)
        return js_fail(err, "the backup was cancelled");
    if (err == JET_errClientRequestToStopJetService)
        return js_fail(err, "the backup was stopped because the instance is shutting down");
    if (err)
        return js_fail(err, "the instance became unavailable during the backup");
    return JET_errSuccess;
}

static void bk_pin(js_instance *inst, uint32_t gen)
{
    log_pin(&inst->log, gen);
}

/* ---------------- copying ---------------- */

/* Read n pages from page p into buf.  The first read, without the range
 * lock, waits for the disk (at the copy's idle I/O priority: the flusher
 * never waits behind it) and is what the kernel's sequential read-ahead
 * follows, with its large folios (fadvise WILLNEED, used before, reads in
 * single pages and cost more CPU than the read itself); the second, under
 * the lock, copies the same pages again from the page cache, so no page
 * is read while the flusher writes it. */
static JET_ERR bk_read_batch(js_instance *inst, int fd, uint8_t *buf, uint64_t p, uint32_t n, size_t *got)
{
    uint64_t ps = inst->store.page_size;
    JET_ERR err = os_pread(fd, inst->store.path, buf, (size_t)n * ps, p * ps, got);
    if (err)
        return err;
    int slot = rl_lock(&inst->store.rl, p, p + n, 0);
    err = os_pread(fd, inst->store.path, buf, (size_t)n * ps, p * ps, got);
    rl_unlock(&inst->store.rl, slot);
    return err;
}

/* Copy the database, verifying every page; the SHA-256 of the copy and its
 * writes (os_writeback_behind: the copy's dirty data stays at a few
 * batches, so no large fsync ever queues ahead of a log fsync, and the
 * copy evicts nothing) run in the pipeline's threads while the next batch
 * is read.  The reads go through a descriptor of the copy's own, so its
 * read-ahead neither follows nor disturbs the instance's reads, and leave
 * the database's page cache as they found it (cachetrail.h: asked
 * BK_RESIDENT_AHEAD ahead, beyond the kernel's read-ahead of the copy's
 * own reads, up to twice read_ahead_kb; measured: 16 MiB ahead was not
 * enough with the default 8 MiB).
 * Pages below the instance's written bound (page.h; at least the job's own
 * checkpoint's, and a page once valid on disk stays so) must be valid: zero
 * there is corruption.  The copy's header records the bound. */
static JET_ERR bk_copy_db(bk_job *j, uint64_t npages)
{
    js_instance *inst = j->inst;
    uint32_t ps = inst->store.page_size;
    cache_trail trail;
    uint32_t valid_below = atomic_load(&inst->store.valid_below);
    if (valid_below > npages)
        valid_below = (uint32_t)npages;   /* a later checkpoint grew the file */
    char path[PATH_MAX], hex[65];
    int fd = -1, rfd = -1;
    JET_ERR err;
    snprintf(path, sizeof path, "%s/%s", j->work, JS_DB_FILE);
    if (os_reopen(inst->store.fd, inst->store.path, O_RDONLY, &rfd) != JET_errSuccess)
        rfd = -1;   /* no /proc: the instance's own descriptor serves */
    int in = rfd >= 0 ? rfd : inst->store.fd;
    ct_init(&trail, in, npages * ps, BK_RESIDENT_AHEAD, 0);
    err = os_openat(j->work_fd, JS_DB_FILE, path, O_WRONLY | O_CREAT | O_EXCL, 0600, &fd);
    if (err)
        goto out;
    err = bk_note_written(j, JS_DB_FILE);
    if (err)
        goto out;
    inst_event(inst, 220, JS_EV_INFO, "copying %s (%llu bytes)", JS_DB_FILE,
               (unsigned long long)(npages * ps));
    for (uint64_t p = 0; p < npages; p += BK_BATCH_PAGES) {
        uint32_t n = npages - p < BK_BATCH_PAGES ? (uint32_t)(npages - p) : BK_BATCH_PAGES;
        uint8_t *buf = mf_pipe_buffer(j->pipe);
        size_t got = 0;
        err = bk_read_batch(inst, in, buf, p, n, &got);
        if (err)
            goto out;
        ct_read(&trail, p * ps, (uint64_t)n * ps);
        if (got < (size_t)n * ps)
            memset(buf + got, 0, (size_t)n * ps - got);
        /* Pages 0 and 1 are replaced below by a fresh header. */
        uint32_t skip = p == 0 ? (n < 2 ? n : 2) : 0;
        err = db_check_pages(buf + (size_t)skip * ps, ps, (uint32_t)p + skip, n - skip, valid_below, JS_DB_FILE,
                             &j->prog.pages_verified);
        if (err)
            goto out;
        if (p == 0) {
            /* The copy's header marks it a raw backup copy starting at
             * gen_low, so only restore (never a plain open) will use it. */
            db_header hdr;
            js_mutex_lock(&inst->hdr_lock);
            hdr = inst->hdr;
            js_mutex_unlock(&inst->hdr_lock);
            hdr.backup_gen_low = j->gen_low;
            hdr.backup_gen_high = 0;
            hdr.valid_below = valid_below;
            dbh_encode(&hdr, buf, 0);
            if (n > 1)
                dbh_encode(&hdr, buf + ps, 1);
            j->prog.pages_verified += n > 1 ? 2 : 1;
        }
        err = mf_pipe_submit_write(j->pipe, buf, (size_t)n * ps, fd, path, p * ps, (uint64_t)BK_FLOW_LAG * n * ps,
                                   1);
        if (err)
            goto out;
        j->prog.bytes_done += (uint64_t)n * ps;
        err = bk_progress(j);
        if (!err)
            err = bk_check_cancel(j);
        if (err)
            goto out;
    }
    err = mf_pipe_drain(j->pipe);
    if (!err)
        err = os_fsync(fd, path);
    if (!err)
        os_cache_drop(fd, 0, 0);
out:
    ct_finish(&trail);
    if (err)
        mf_pipe_abandon(j->pipe);   /* the writers may still hold fd */
    mf_pipe_final(j->pipe, hex);   /* also resets the digest after a failure */
    if (!err) {
        err = mf_sums_set(j->sums, JS_DB_FILE, hex);
        inst_event(inst, 221, JS_EV_INFO, "copied %s (%llu pages verified)", JS_DB_FILE,
                   (unsigned long long)j->prog.pages_verified);
    }
    os_close(fd);
    os_close(rfd);
    return err;
}

/* Verify generation g in the live directory and copy it into work. */
static JET_ERR bk_copy_gen(bk_job *j, uint32_t g, loggen_hdr *prev_h, loggen_scan_result *prev_s, int *have_prev)
{
    js_instance *inst = j->inst;
    char src[PATH_MAX], dst[PATH_MAX], name[24];
    int in = -1, out_fd = -1;
    JET_ERR err;
    loggen_hdr h;
    loggen_scan_result s;
    loggen_name(src, sizeof src, inst->dir, g);
    snprintf(name, sizeof name, "edb%08X.log", g);
    snprintf(dst, sizeof dst, "%s/%s", j->work, name);
    struct stat st;
    if (stat(src, &st) < 0) {
        inst_event(inst, 459, JS_EV_ERROR, "log file %s is missing", name);
        return js_fail(JET_errMissingFileToBackup, "log generation %08X (%s) is missing", g, src);
    }
    err = loggen_scan(src, 0, 0, NULL, NULL, &h, &s);
    if (err)
        return err;
    if (h.gen != g)
        return JS_CORRUPT(JET_errLogReadVerifyFailure, "generation %08X (%s): its header says generation %08X", g, src,
                          h.gen);
    if (memcmp(h.log_sig, inst->hdr.log_sig, JS_SIG_LEN))
        return js_fail(JET_errBadLogSignature, "generation %08X (%s) belongs to another log stream", g, src);
    if (*have_prev && (h.prev_digest != prev_s->digest || h.prev_blocks != prev_s->end_blk ||
                       h.prev_created != prev_h->created))
        return JS_CORRUPT(JET_errLogReadVerifyFailure, "generation %08X does not continue generation %08X", g, g - 1);
    *prev_h = h;
    *prev_s = s;
    *have_prev = 1;
    j->prog.log_records_verified += s.records;

    err = os_open(src, O_RDONLY, 0, &in);
    if (!err)
        err = os_openat(j->work_fd, name, dst, O_WRONLY | O_CREAT | O_EXCL, 0600, &out_fd);
    if (err)
        goto out;
    err = bk_note_written(j, name);
    if (err)
        goto out;
    /* Only the blocks through the close block: the rest of a closed
     * generation is unused, and the copy is a valid generation without it. */
    const uint64_t used = (uint64_t)(s.end_blk + 1) * LOG_BLOCK;
    const size_t chunk = (size_t)BK_BATCH_PAGES * inst->store.page_size;
    for (uint64_t off = 0; off < used;) {
        size_t want = used - off < chunk ? (size_t)(used - off) : chunk, got = 0;
        uint8_t *buf = mf_pipe_buffer(j->pipe);
        err = os_pread(in, src, buf, want, off, &got);
        if (!err && got < want)
            err = js_fail(JET_errLogReadVerifyFailure, "%s ends before its close block", src);
        if (!err)
            err = os_pwrite(out_fd, dst, buf, got, off);
        if (!err)
            err = bk_flow(out_fd, dst, off, got);
        if (err)
            break;
        os_cache_drop(in, off, got);   /* a closed generation: only backups read it again */
        mf_pipe_submit(j->pipe, buf, got);
        off += got;
        j->prog.bytes_done += got;
        err = bk_progress(j);
        if (!err)
            err = bk_check_cancel(j);
        if (err)
            break;
    }
    if (!err)
        err = os_fsync(out_fd, dst);
    if (!err)
        os_cache_drop(out_fd, 0, 0);
    if (!err && (uint64_t)st.st_size > used)
        j->prog.bytes_done += (uint64_t)st.st_size - used;   /* the unused tail counts as done */
out:;
    char hex[65];
    mf_pipe_final(j->pipe, hex);
    if (!err)
        err = mf_sums_set(j->sums, name, hex);
    os_close(in);
    os_close(out_fd);
    return err;
}

static JET_ERR bk_copy_logs(bk_job *j, uint32_t from, uint32_t to)
{
    loggen_hdr ph;
    loggen_scan_result psr;
    int have_prev = 0;
    JET_ERR err = bk_phase(j, "copy-logs");
    if (err)
        return err;
    inst_event(j->inst, 223, JS_EV_INFO, "copying log files edb%08X.log-edb%08X.log", from, to);
    int prio = os_io_priority_idle();
    for (uint32_t g = from; g <= to && !err; g++)
        err = bk_copy_gen(j, g, &ph, &psr, &have_prev);
    os_io_priority_restore(prio);
    return err;
}

/* ---------------- the job ---------------- */

static JET_ERR bk_truncate(bk_job *j, uint32_t below)
{
    uint32_t lo = 0, hi = 0;
    JET_ERR err = bk_phase(j, "truncate");
    if (err)
        return err;
    uint32_t unarchived = log_archive_pin(&j->inst->log);
    if (!j->inst->params.circular_log)
        err = log_delete_below(&j->inst->log, below, &lo, &hi);
    if (unarchived && unarchived < below)
        inst_event(j->inst, 228, JS_EV_INFO, "log truncation stops below edb%08X.log: not yet archived",
                   unarchived);
    if (lo) {
        inst_event(j->inst, 224, JS_EV_INFO, "deleting log files edb%08X.log to edb%08X.log", lo, hi);
        j->prog.gen_low = lo;
    } else {
        inst_event(j->inst, 225, JS_EV_INFO, "no log files can be truncated");
    }
    snprintf(j->truncated, sizeof j->truncated, lo ? "edb%08X.log-edb%08X.log" : "none", lo, hi);
    if (err)
        inst_event(j->inst, 227, JS_EV_WARNING, "log truncation stopped: %s", js_errdetail());
    return JET_errSuccess;   /* a failed delete leaves a longer, still contiguous chain */
}

static JET_ERR bk_validate(bk_job *j, const char *dest, int root_fd, const char *root)
{
    js_instance *inst = j->inst;
    unsigned known = JS_BACKUP_ATOMIC | JS_BACKUP_INCREMENTAL | JS_BACKUP_CREATE_DIR;
    if (j->flags & ~known)
        return js_fail(JET_errInvalidGrbit, "unknown backup flags 0x%x", j->flags & ~known);
    if (!dest && (j->flags & (JS_BACKUP_ATOMIC | JS_BACKUP_INCREMENTAL)))
        return js_fail(JET_errInvalidGrbit, "a truncate-only job takes no atomic or incremental flag");
    js_mutex_lock(&inst->state_lock);
    int state = inst->state, stopping = inst->stopping;
    JET_ERR fatal = health_fatal(&inst->health);
    js_mutex_unlock(&inst->state_lock);
    if (stopping)
        return js_fail(JET_errTermInProgress, "the instance is shutting down");
    if (fatal)
        return js_fail(JET_errInstanceUnavailable, "the instance is unavailable after %s", js_errname(fatal));
    if (state == JS_INST_STARTING || state == JS_INST_RECOVERING)
        return js_fail(JET_errBackupNotAllowedYet, "the instance is still starting or recovering");
    if (state != JS_INST_READY)
        return js_fail(JET_errNotInitialized, "the instance is not open");
    if (!inst_logging(inst))
        return js_fail(JET_errLoggingDisabled, "the instance runs without a log (no_log): backups are impossible");
    if ((j->flags & JS_BACKUP_INCREMENTAL) && inst->params.circular_log)
        return js_fail(JET_errInvalidBackup, "incremental backups are refused under circular logging");
    if (dest)
        return bk_validate_path(j, dest, root_fd, root);
    return JET_errSuccess;
}

/* Incremental preconditions: a previous full backup, a set to add to, and
 * every generation since that set still on disk. */
static JET_ERR bk_incremental_plan(bk_job *j)
{
    js_instance *inst = j->inst;
    if (!inst->hdr.full.gen_low) {
        inst_event(inst, 206, JS_EV_ERROR, "an incremental backup needs a previous full backup");
        return js_fail(JET_errMissingFullBackup, "this instance has no full backup yet");
    }
    snprintf(j->target, sizeof j->target, "%s%s", j->dest, (j->flags & JS_BACKUP_ATOMIC) ? "/new" : "");
    JET_ERR err = JET_errRestoreOfNonBackupDatabase;
    if (j->dest_fd >= 0)
        j->target_fd = (j->flags & JS_BACKUP_ATOMIC)
                           ? openat(j->dest_fd, "new", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                           : dup(j->dest_fd);
    if (j->target_fd >= 0)
        err = mf_info_readat(j->target_fd, j->target, &j->info);
    if (err) {
        inst_event(inst, 206, JS_EV_ERROR, "%s holds no full backup to add to", j->target);
        return js_fail(JET_errMissingFullBackup, "%s holds no full backup to add to", j->target);
    }
    char sig[40];
    dbh_sig_hex(inst->hdr.db_sig, sig);
    if (strcmp(sig, j->info.db_signature)) {
        inst_event(inst, 206, JS_EV_ERROR, "%s holds a backup of another database", j->target);
        return js_fail(JET_errMissingFullBackup, "%s holds a backup of another database", j->target);
    }
    j->copy_from = j->info.gen_high + 1;
    uint32_t cur = LSN_GEN(log_position_now(&inst->log));
    /* Every closed generation since the set must still be here (the
     * current one is closed by this job's roll). */
    for (uint32_t g = j->copy_from; g < cur; g++) {
        char path[PATH_MAX];
        struct stat st;
        loggen_name(path, sizeof path, inst->dir, g);
        if (stat(path, &st) != 0) {
            inst_event(inst, 459, JS_EV_ERROR, "log file edb%08X.log is missing", g);
            return js_fail(JET_errMissingFileToBackup,
                           "log generation %08X, needed since the set's last generation %08X, is gone", g,
                           j->info.gen_high);
        }
    }
    if (j->copy_from > cur)
        return js_fail(JET_errInvalidBackup, "%s already holds generation %08X, past the current one", j->target,
                       j->info.gen_high);
    return JET_errSuccess;
}

/* Roll the log (every generation the set needs is then closed), then copy
 * and verify generations from..gen_high. */
static JET_ERR bk_roll_and_copy(bk_job *j, uint32_t from)
{
    JET_ERR err = bk_phase(j, "roll-log");
    if (!err)
        err = log_roll(&j->inst->log, &j->gen_high);
    if (err)
        return err;
    j->prog.bytes_total = j->prog.bytes_done + (uint64_t)(j->gen_high - from + 1) * j->inst->log.file_size;
    err = bk_copy_logs(j, from, j->gen_high);
    if (!err)
        err = bk_phase(j, "manifest");
    return err;
}

/* Step 2, the checkpoint that sets gen_low.  The job has the checkpoint
 * thread run it and waits for its outcome (ckpt_wait), rather than running
 * a second one beside the thread's: an extra checkpoint writes the dirty
 * pages and fsyncs jetsnap.edb at normal priority, a burst every durable
 * commit queues behind (measured: when the background checkpoint still ran
 * every second, checkpoints forced every 300 ms cost 16 durable writers as
 * much as back-to-back backups did).  It starts after the job began;
 * meanwhile the job reports progress and can be cancelled.  gen_low is read
 * and pinned under ckpt_lock, so no checkpoint deletes a generation in
 * between. */
static JET_ERR bk_checkpoint_poll(void *ctx)
{
    bk_job *j = ctx;
    JET_ERR err = bk_check_cancel(j);
    return err ? err : bk_progress(j);
}

static JET_ERR bk_checkpoint(bk_job *j)
{
    js_instance *inst = j->inst;
    JET_ERR err = ckpt_wait(inst, bk_checkpoint_poll, j);
    if (err)
        return err;
    js_mutex_lock(&inst->ckpt_lock);
    j->gen_low = LSN_GEN(inst->ckpt_lsn);
    bk_pin(inst, j->gen_low);
    js_mutex_unlock(&inst->ckpt_lock);
    return JET_errSuccess;
}

static JET_ERR bk_run_full(bk_job *j)
{
    js_instance *inst = j->inst;
    JET_ERR err = bk_phase(j, "checkpoint");
    if (err)
        return err;
    uint32_t cur = LSN_GEN(log_position_now(&inst->log));
    bk_pin(inst, cur);
    err = bk_checkpoint(j);
    if (err)
        return err;
    uint64_t fsize = 0;
    err = os_size(inst->store.fd, inst->store.path, &fsize);
    if (err)
        return err;
    uint64_t npages = fsize / inst->store.page_size;
    j->prog.bytes_total = fsize + (uint64_t)(cur - j->gen_low + 1) * inst->log.file_size;
    err = bk_prepare_dirs(j);
    if (!err)
        err = bk_phase(j, "copy-database");
    if (!err) {
        /* The copy's own I/O yields to everyone else's (the log's fsyncs
         * first); the checkpoint and the roll above keep their priority,
         * since writers may wait for them. */
        int prio = os_io_priority_idle();
        err = bk_copy_db(j, npages);
        os_io_priority_restore(prio);
    }
    if (!err)
        err = bk_roll_and_copy(j, j->gen_low);
    if (err)
        return err;
    mf_info *i = &j->info;
    memset(i, 0, sizeof *i);
    snprintf(i->type, sizeof i->type, "full");
    mf_now_rfc3339(i->created);
    i->gen_low = j->gen_low;
    i->gen_high = j->gen_high;
    i->full_gen_high = j->gen_high;
    dbh_sig_hex(inst->hdr.db_sig, i->db_signature);
    dbh_sig_hex(inst->hdr.log_sig, i->log_signature);
    i->page_size = inst->store.page_size;
    i->pages = npages;
    i->pages_verified = j->prog.pages_verified;
    i->log_records_verified = j->prog.log_records_verified;
    i->version = 1;
    err = bk_write_manifests(j);
    if (!err)
        err = bk_phase(j, "publish");
    if (!err)
        err = bk_publish_full(j);
    return err;
}

static JET_ERR bk_run_incremental(bk_job *j)
{
    js_instance *inst = j->inst;
    JET_ERR err;
    bk_pin(inst, j->copy_from);
    j->gen_low = j->copy_from;
    /* The set's digests, extended by bk_copy_gen as each generation is
     * copied and hashed. */
    err = mf_sums_readat(j->target_fd, j->target, j->sums);
    if (!err)
        err = bk_prepare_dirs(j);
    if (!err)
        err = bk_roll_and_copy(j, j->copy_from);
    if (err)
        return err;
    mf_info *i = &j->info;
    i->parent_high = i->gen_high;
    i->gen_high = j->gen_high;
    snprintf(i->type, sizeof i->type, "incremental");
    mf_now_rfc3339(i->created);
    i->log_records_verified += j->prog.log_records_verified;
    err = bk_phase(j, "publish");
    if (err)
        return err;
    if (j->flags & JS_BACKUP_ATOMIC) {
        err = bk_share_previous_set(j);
        if (!err)
            err = bk_write_manifests(j);
        if (!err)
            err = bk_publish_full(j);
        return err;
    }
    return bk_publish_incremental(j);
}

static JET_ERR bk_stamp(bk_job *j, int incremental)
{
    js_instance *inst = j->inst;
    js_mutex_lock(&inst->hdr_lock);
    js_backup_stamp st = { .gen_low = j->gen_low, .gen_high = j->gen_high, .time = time(NULL) };
    if (incremental) {
        inst->hdr.inc = st;
    } else {
        inst->hdr.full = st;
        memset(&inst->hdr.inc, 0, sizeof inst->hdr.inc);
    }
    js_mutex_unlock(&inst->hdr_lock);
    return inst_write_header(inst);
}

/* The job is over: let the next one start and wake js_close. */
static void bk_job_end(js_instance *inst)
{
    js_mutex_lock(&inst->state_lock);
    inst->backup_running = 0;
    inst->backup_cancel = 0;
    pthread_cond_broadcast(&inst->state_cond);
    js_mutex_unlock(&inst->state_lock);
}

static void bk_free(bk_job *j)
{
    os_close(j->parent_fd);
    os_close(j->dest_fd);
    os_close(j->work_fd);
    os_close(j->target_fd);
    free(j->sums);
    mf_pipe_free(j->pipe);
    free(j);
}

JET_ERR js_backup(js_instance *inst, const char *dest, unsigned flags, js_status_fn status, void *ctx)
{
    return js_backup_beneath(inst, -1, NULL, dest, flags, status, ctx);
}

JET_ERR js_backup_beneath(js_instance *inst, int root_fd, const char *root, const char *dest, unsigned flags,
                          js_status_fn status, void *ctx)
{
    if (!inst)
        return js_fail(JET_errNotInitialized, "no instance");
    js_errclear();
    if (root_fd >= 0 && (!root || root[0] != '/'))
        return js_fail(JET_errInvalidParameter, "a backup root needs its absolute path");
    bk_job *j = calloc(1, sizeof *j);
    if (!j)
        return js_fail(JET_errOutOfMemory, "backup job");
    j->parent_fd = j->dest_fd = j->work_fd = j->target_fd = -1;
    j->inst = inst;
    j->flags = flags;
    j->status = status;
    j->ctx = ctx;
    j->prog.phase = "checkpoint";
    j->start_ms = js_mono_ms();
    j->prog.message = "";
    j->prog.truncated = "none";
    snprintf(j->truncated, sizeof j->truncated, "none");
    int incremental = (flags & JS_BACKUP_INCREMENTAL) != 0;
    JET_ERR err = bk_validate(j, dest, root_fd, root);
    if (err) {
        bk_free(j);
        return err;
    }
    js_mutex_lock(&inst->state_lock);
    if (inst->backup_running) {
        js_mutex_unlock(&inst->state_lock);
        bk_free(j);
        return js_fail(JET_errBackupInProgress, "a backup is already running on %s", inst->dir);
    }
    inst->backup_running = 1;
    inst->backup_cancel = 0;
    js_mutex_unlock(&inst->state_lock);

    /* Refusals that depend on DEST and the log are decided before the job
     * begins, so a caller that does not wait sees them as refusals. */
    if (dest && incremental)
        err = bk_incremental_plan(j);
    else if (dest && !(flags & JS_BACKUP_ATOMIC) && j->dest_fd >= 0 && !os_dir_empty_fd(j->dest_fd))
        err = js_fail(JET_errBackupDirectoryNotEmpty, "%s is not empty (use `atomic`, or an empty directory)", dest);
    if (err) {
        bk_job_end(inst);
        bk_free(j);
        return err;
    }

    j->sums = calloc(1, sizeof *j->sums);
    j->pipe = mf_pipe_new((size_t)BK_BATCH_PAGES * inst->store.page_size);
    if (!j->sums || !j->pipe) {
        err = js_fail(JET_errOutOfMemory, "backup buffers");
        goto done;
    }
    mf_pipe_yield_cpu(j->pipe);
    if (dest)
        inst_event(inst, incremental ? 211 : 210, JS_EV_INFO, "%s backup to %s started",
                   incremental ? "incremental" : "full", dest);
    else
        inst_event(inst, 210, JS_EV_INFO, "log truncation (backup without a destination) started");
    err = bk_report(j, JS_SNT_BEGIN);
    if (err)
        goto done;

    uint32_t below;
    if (!dest) {
        err = bk_phase(j, "checkpoint");
        if (!err)
            err = ckpt_run(inst);
        below = LSN_GEN(inst->ckpt_lsn);
    } else {
        err = incremental ? bk_run_incremental(j) : bk_run_full(j);
        if (!err)
            err = bk_stamp(j, incremental);
        uint32_t ck = LSN_GEN(inst->ckpt_lsn);
        below = ck < j->gen_high + 1 ? ck : j->gen_high + 1;
    }
    bk_pin(inst, 0);
    if (!err)
        err = bk_truncate(j, below);
    j->prog.truncated = j->truncated;
done:
    bk_pin(inst, 0);
    if (err) {
        char detail[512];
        snprintf(detail, sizeof detail, "%s", js_errdetail());
        bk_cleanup(j);
        int cancelled = err == JET_errBackupAbortByServer;
        inst_event(inst, cancelled ? 215 : 214, cancelled ? JS_EV_WARNING : JS_EV_ERROR,
                   "backup %s: %s (%d): %s", cancelled ? "cancelled" : "failed", js_errname(err), err, detail);
        j->prog.err = err;
        j->prog.message = detail;
        (void)bk_report(j, JS_SNT_FAIL);
        js_fail(err, "%s", detail);
    } else {
        j->prog.phase = "done";
        inst_event(inst, 213, JS_EV_INFO, "backup completed: generations %08X-%08X, %llu pages and %llu log records verified",
                   j->gen_low, j->gen_high, (unsigned long long)j->prog.pages_verified,
                   (unsigned long long)j->prog.log_records_verified);
        (void)bk_report(j, JS_SNT_COMPLETE);
    }
    bk_job_end(inst);
    bk_free(j);
    return err;
}

JET_ERR js_backup_cancel(js_instance *inst)
{
    if (!inst)
        return js_fail(JET_errNotInitialized, "no instance");
    JET_ERR err = JET_errSuccess;
    js_mutex_lock(&inst->state_lock);
    if (!inst->backup_running)
        err = js_fail(JET_errInvalidParameter, "no backup is running");
    else if (!inst->backup_cancel)
        inst->backup_cancel = JET_errBackupAbortByServer;
    js_mutex_unlock(&inst->state_lock);
    return err;
}
