/*
 * backup.c - online backup (ESE's JetBackup): full, incremental, atomic,
 * and truncate-only, while clients keep writing.
 *
 * Full backup, step by step (DESIGN section 3):
 *   1. validate, mark the job running (one at a time), pin the log so no
 *      generation the job may need is deleted; event 210
 *   2. checkpoint: gen_low = the checkpoint's generation
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
 */
#include "inst.h"
#include "err.h"
#include "manifest.h"
#include "os.h"
#include "page.h"

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

#define BK_BATCH_PAGES 256u
#define BK_WRITEBACK_BYTES (32u << 20)
#define BK_MAX_WRITTEN 4096

typedef struct bk_job {
    js_instance *inst;
    unsigned flags;
    js_status_fn status;
    void *ctx;
    char dest[PATH_MAX];
    char work[PATH_MAX];        /* where this job writes */
    char target[PATH_MAX];      /* the set it adds to (incremental) */
    int created_dest, created_work, work_is_dest;
    uint32_t gen_low, gen_high, copy_from;
    js_progress prog;
    uint64_t last_pct;
    int64_t last_report_ms;
    int64_t start_ms;           /* for backup_max_rate */
    mf_sums *sums;
    mf_info info;
    char truncated[48];         /* status key `truncated` */
    char written[BK_MAX_WRITTEN][24];   /* names written into work */
    size_t nwritten;
    mf_pipe *pipe;              /* SHA-256 on the second core while copying */
} bk_job;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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

/* Keep the copy at or under params.backup_max_rate, so a backup on a busy
 * machine leaves disk bandwidth to clients (pg_basebackup's --max-rate). */
static void bk_throttle(bk_job *j)
{
    uint64_t rate = j->inst->params.backup_max_rate;
    if (!rate)
        return;
    int64_t due_ms = j->start_ms + (int64_t)(j->prog.bytes_done * 1000 / rate);
    int64_t now = mono_ms();
    while (now < due_ms && bk_check_cancel(j) == JET_errSuccess) {
        int64_t step = due_ms - now < 100 ? due_ms - now : 100;
        struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)step * 1000000L };
        nanosleep(&ts, NULL);
        now = mono_ms();
    }
}

/* Progress at every whole percent, and at least every half second. */
static JET_ERR bk_progress(bk_job *j)
{
    bk_throttle(j);
    uint64_t pct = j->prog.bytes_total ? j->prog.bytes_done * 100 / j->prog.bytes_total : 0;
    int64_t now = mono_ms();
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
    pthread_mutex_lock(&inst->state_lock);
    if (inst->backup_cancel)
        err = inst->backup_cancel;
    else if (inst->fatal)
        err = JET_errInstanceUnavailable;
    pthread_mutex_unlock(&inst->state_lock);
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
    pthread_mutex_lock(&inst->log.lock);
    inst->log.pin_gen = gen;
    pthread_mutex_unlock(&inst->log.lock);
}

static JET_ERR bk_note_written(bk_job *j, const char *name)
{
    if (j->nwritten == BK_MAX_WRITTEN)
        return js_fail(JET_errInvalidParameter, "too many files in one backup");
    snprintf(j->written[j->nwritten++], sizeof j->written[0], "%s", name);
    return JET_errSuccess;
}

/* ---------------- validation ---------------- */

static JET_ERR bk_validate_path(bk_job *j, const char *dest)
{
    if (!*dest || dest[0] != '/')
        return js_fail(JET_errInvalidParameter, "backup path \"%s\" is not absolute", dest);
    if (strlen(dest) >= PATH_MAX - 64)
        return js_fail(JET_errInvalidParameter, "backup path is too long");
    if (strchr(dest, '\n'))
        return js_fail(JET_errInvalidParameter, "backup path contains a newline");
    snprintf(j->dest, sizeof j->dest, "%s", dest);
    struct stat st;
    if (stat(dest, &st) < 0) {
        if (errno != ENOENT)
            return os_err(errno, "stat", dest);
        if (!(j->flags & JS_BACKUP_CREATE_DIR))
            return js_fail(JET_errInvalidPath, "%s does not exist (add `create` to make it)", dest);
        return JET_errSuccess;
    }
    if (!S_ISDIR(st.st_mode))
        return js_fail(JET_errInvalidPath, "%s is not a directory", dest);
    char rd[PATH_MAX], ri[PATH_MAX];
    if (realpath(dest, rd) && realpath(j->inst->dir, ri)) {
        size_t n = strlen(ri);
        if (!strcmp(rd, ri) || (!strncmp(rd, ri, n) && rd[n] == '/'))
            return js_fail(JET_errInvalidPath, "%s is inside the instance directory %s", dest, ri);
    }
    return JET_errSuccess;
}


/* ---------------- copying ---------------- */

/* Copy the database under the page-range lock, verifying every page; the
 * SHA-256 of the copy runs in the pipeline while the next batch is read.
 * Pages below the instance's written bound (page.h; at least the job's own
 * checkpoint's, and a page once valid on disk stays so) must be valid: zero
 * there is corruption.  The copy's header records the bound. */
static JET_ERR bk_copy_db(bk_job *j, uint64_t npages)
{
    js_instance *inst = j->inst;
    uint32_t ps = inst->page_size;
    uint32_t valid_below = atomic_load(&inst->valid_below);
    if (valid_below > npages)
        valid_below = (uint32_t)npages;   /* a later checkpoint grew the file */
    char path[PATH_MAX], hex[65];
    int fd = -1;
    JET_ERR err;
    snprintf(path, sizeof path, "%s/%s", j->work, JS_DB_FILE);
    err = os_open(path, O_WRONLY | O_CREAT | O_EXCL, 0600, &fd);
    if (err)
        return err;
    err = bk_note_written(j, JS_DB_FILE);
    if (err)
        goto out;
    inst_event(inst, 220, JS_EV_INFO, "copying %s (%llu bytes)", JS_DB_FILE,
               (unsigned long long)(npages * ps));
    for (uint64_t p = 0; p < npages; p += BK_BATCH_PAGES) {
        uint32_t n = npages - p < BK_BATCH_PAGES ? (uint32_t)(npages - p) : BK_BATCH_PAGES;
        uint8_t *buf = mf_pipe_buffer(j->pipe);
        int slot = rl_lock(&inst->rl, p, p + n, 0);
        size_t got = 0;
        err = os_pread(inst->db_fd, inst->db_path, buf, (size_t)n * ps, p * ps, &got);
        rl_unlock(&inst->rl, slot);
        if (err)
            goto out;
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
            pthread_mutex_lock(&inst->hdr_lock);
            hdr = inst->hdr;
            pthread_mutex_unlock(&inst->hdr_lock);
            hdr.backup_gen_low = j->gen_low;
            hdr.backup_gen_high = 0;
            hdr.valid_below = valid_below;
            dbh_encode(&hdr, buf, 0);
            if (n > 1)
                dbh_encode(&hdr, buf + ps, 1);
            j->prog.pages_verified += n > 1 ? 2 : 1;
        }
        err = os_pwrite(fd, path, buf, (size_t)n * ps, p * ps);
        if (err)
            goto out;
        mf_pipe_submit(j->pipe, buf, (size_t)n * ps);
        /* Start writing back what is copied, so the final fsync is short. */
        if (((p + n) * ps) % BK_WRITEBACK_BYTES < (uint64_t)n * ps)
            os_writeback(fd, 0, (p + n) * ps);
        j->prog.bytes_done += (uint64_t)n * ps;
        err = bk_progress(j);
        if (!err)
            err = bk_check_cancel(j);
        if (err)
            goto out;
    }
    err = os_fsync(fd, path);
out:
    mf_pipe_final(j->pipe, hex);   /* also resets the digest after a failure */
    if (!err) {
        err = mf_sums_set(j->sums, JS_DB_FILE, hex);
        inst_event(inst, 221, JS_EV_INFO, "copied %s (%llu pages verified)", JS_DB_FILE,
                   (unsigned long long)j->prog.pages_verified);
    }
    os_close(fd);
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
    log_gen_name(src, sizeof src, inst->dir, g);
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
        err = os_open(dst, O_WRONLY | O_CREAT | O_EXCL, 0600, &out_fd);
    if (err)
        goto out;
    err = bk_note_written(j, name);
    if (err)
        goto out;
    /* Only the blocks through the close block: the rest of a closed
     * generation is unused, and the copy is a valid generation without it. */
    const uint64_t used = (uint64_t)(s.end_blk + 1) * LOG_BLOCK;
    const size_t chunk = (size_t)BK_BATCH_PAGES * inst->page_size;
    for (uint64_t off = 0; off < used;) {
        size_t want = used - off < chunk ? (size_t)(used - off) : chunk, got = 0;
        uint8_t *buf = mf_pipe_buffer(j->pipe);
        err = os_pread(in, src, buf, want, off, &got);
        if (!err && got < want)
            err = js_fail(JET_errLogReadVerifyFailure, "%s ends before its close block", src);
        if (!err)
            err = os_pwrite(out_fd, dst, buf, got, off);
        if (err)
            break;
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
    for (uint32_t g = from; g <= to && !err; g++)
        err = bk_copy_gen(j, g, &ph, &psr, &have_prev);
    return err;
}

/* backup.info and SHA256SUMS into dir. */
static JET_ERR bk_write_manifests(bk_job *j, const char *dir)
{
    char text[2048], hex[65];
    size_t len = mf_info_render(&j->info, text, sizeof text);
    JET_ERR err = os_write_file_durable(dir, "backup.info", text, len, 0600);
    if (err)
        return err;
    mf_hash *h = mf_hash_new();
    if (!h)
        return js_fail(JET_errOutOfMemory, "hash");
    mf_hash_update(h, text, len);
    mf_hash_final(h, hex);
    err = mf_sums_set(j->sums, "backup.info", hex);
    if (!err)
        err = mf_sums_write(dir, j->sums);
    return err;
}

/* ---------------- the job ---------------- */

static JET_ERR bk_prepare_dirs(bk_job *j)
{
    JET_ERR err;
    struct stat st;
    int incremental = (j->flags & JS_BACKUP_INCREMENTAL) != 0;
    int atomic = (j->flags & JS_BACKUP_ATOMIC) != 0;
    if (stat(j->dest, &st) < 0) {
        err = os_mkdir(j->dest, 0700, 0);
        if (err)
            return js_fail(err == JET_errDiskFull ? err : JET_errMakeBackupDirectoryFail,
                           "cannot make %s: %s", j->dest, js_errdetail());
        j->created_dest = 1;
    }
    if (atomic) {
        /* Full or incremental: a whole set is built here, then swapped in. */
        snprintf(j->work, sizeof j->work, "%s/temp", j->dest);
        snprintf(j->target, sizeof j->target, "%s/new", j->dest);
        err = os_rmtree(j->work);   /* a leftover of an interrupted job */
        if (err)
            return err;
    } else if (incremental) {
        snprintf(j->work, sizeof j->work, "%s/.jetsnap-incremental", j->dest);
        snprintf(j->target, sizeof j->target, "%s", j->dest);
        err = os_rmtree(j->work);
        if (err)
            return err;
    } else {
        if (!os_dir_empty(j->dest, NULL))
            return js_fail(JET_errBackupDirectoryNotEmpty, "%s is not empty (use `atomic`, or an empty directory)",
                           j->dest);
        snprintf(j->work, sizeof j->work, "%s", j->dest);
        j->work_is_dest = 1;
        return JET_errSuccess;
    }
    err = os_mkdir(j->work, 0700, 0);
    if (err)
        return js_fail(err == JET_errDiskFull ? err : JET_errMakeBackupDirectoryFail, "cannot make %s: %s",
                       j->work, js_errdetail());
    j->created_work = 1;
    return JET_errSuccess;
}

static void bk_cleanup(bk_job *j)
{
    char path[PATH_MAX];
    if (j->created_work) {
        (void)os_rmtree(j->work);   /* best effort: the job already failed */
    } else if (j->work_is_dest) {
        for (size_t i = 0; i < j->nwritten; i++) {
            snprintf(path, sizeof path, "%s/%s", j->work, j->written[i]);
            unlink(path);
        }
        snprintf(path, sizeof path, "%s/backup.info", j->work);
        unlink(path);
        snprintf(path, sizeof path, "%s/SHA256SUMS", j->work);
        unlink(path);
    }
    if (j->created_dest)
        rmdir(j->dest);
}

/* Publish a set built in DEST/temp (atomic jobs), or make a plain one
 * durable.  Atomic: new -> old, temp -> new, fsync DEST.  Until that fsync
 * succeeds every step is undone on failure, so the previous set stays as it
 * was; after it the new set is the published one and removing DEST/old is
 * housekeeping (a crash that brings old back is harmless: restore prefers
 * new, and the next atomic job removes a leftover old first). */
static JET_ERR bk_publish_full(bk_job *j)
{
    JET_ERR err = os_fsync_dir(j->work);
    if (err || !(j->flags & JS_BACKUP_ATOMIC)) {
        if (!err && j->created_dest) {
            char parent[PATH_MAX];
            snprintf(parent, sizeof parent, "%s/..", j->dest);
            err = os_fsync_dir(parent);
        }
        return err;
    }
    char newd[PATH_MAX], oldd[PATH_MAX];
    struct stat st;
    int had_new = 0, moved_new = 0;
    snprintf(newd, sizeof newd, "%s/new", j->dest);
    snprintf(oldd, sizeof oldd, "%s/old", j->dest);
    err = os_rmtree(oldd);
    if (err)
        return err;
    had_new = stat(newd, &st) == 0;
    if (had_new) {
        err = os_rename(newd, oldd);
        if (err)
            return err;
    }
    err = os_rename(j->work, newd);
    if (!err) {
        moved_new = 1;
        err = os_fsync_dir(j->dest);
    }
    if (err) {
        /* Undo, best effort: the job has already failed with err. */
        if (moved_new)
            (void)os_rename(newd, j->work);
        if (had_new)
            (void)os_rename(oldd, newd);
        (void)os_fsync_dir(j->dest);
        return err;
    }
    j->created_work = 0;   /* it is the published set now */
    if (had_new && os_rmtree(oldd) != JET_errSuccess)
        inst_event(j->inst, 227, JS_EV_WARNING, "could not remove the previous set %s: %s", oldd, js_errdetail());
    return JET_errSuccess;
}

/* Atomic incremental: the new set in DEST/temp shares the previous set's
 * files through hard links (copies where links are impossible), so
 * publishing it is the same swap as a full backup. */
static JET_ERR bk_share_previous_set(bk_job *j)
{
    DIR *d = opendir(j->target);
    if (!d)
        return os_err(errno, "opendir", j->target);
    JET_ERR err = JET_errSuccess;
    struct dirent *de;
    while (!err && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' || !strcmp(de->d_name, "backup.info") || !strcmp(de->d_name, "SHA256SUMS"))
            continue;
        char from[PATH_MAX], to[PATH_MAX];
        struct stat st;
        snprintf(from, sizeof from, "%s/%s", j->target, de->d_name);
        snprintf(to, sizeof to, "%s/%s", j->work, de->d_name);
        if (stat(to, &st) == 0)
            continue;   /* this job's own copy of a generation wins */
        err = os_link(from, to);
    }
    closedir(d);
    return err;
}

/* Plain incremental: move the staged logs and manifests into DEST.  Every
 * step before the final fsync is undone on failure (the previous manifests
 * are kept as hard links for that), so a failed job leaves DEST as it was. */
static JET_ERR bk_publish_incremental(bk_job *j)
{
    char from[PATH_MAX], to[PATH_MAX], prev_info[PATH_MAX], prev_sums[PATH_MAX];
    char t_info[PATH_MAX], t_sums[PATH_MAX];
    size_t moved = 0;
    int info_moved = 0, sums_moved = 0;
    snprintf(prev_info, sizeof prev_info, "%s/.prev.info", j->work);
    snprintf(prev_sums, sizeof prev_sums, "%s/.prev.sums", j->work);
    snprintf(t_info, sizeof t_info, "%s/backup.info", j->target);
    snprintf(t_sums, sizeof t_sums, "%s/SHA256SUMS", j->target);
    JET_ERR err = bk_write_manifests(j, j->work);
    if (!err)
        err = os_link(t_info, prev_info);
    if (!err)
        err = os_link(t_sums, prev_sums);
    for (; !err && moved < j->nwritten; moved++) {
        snprintf(from, sizeof from, "%s/%s", j->work, j->written[moved]);
        snprintf(to, sizeof to, "%s/%s", j->target, j->written[moved]);
        err = os_rename(from, to);
        if (err)
            break;
    }
    if (!err) {
        snprintf(from, sizeof from, "%s/SHA256SUMS", j->work);
        err = os_rename(from, t_sums);
        sums_moved = !err;
    }
    if (!err) {
        snprintf(from, sizeof from, "%s/backup.info", j->work);
        err = os_rename(from, t_info);
        info_moved = !err;
    }
    if (!err)
        err = os_fsync_dir(j->target);
    if (err) {
        /* Undo, best effort: the job has already failed with err. */
        if (info_moved)
            (void)os_rename(prev_info, t_info);
        if (sums_moved)
            (void)os_rename(prev_sums, t_sums);
        for (size_t i = 0; i < moved; i++) {
            snprintf(to, sizeof to, "%s/%s", j->target, j->written[i]);
            unlink(to);
        }
        (void)os_fsync_dir(j->target);
        return err;
    }
    if (os_rmtree(j->work) == JET_errSuccess)
        j->created_work = 0;
    return JET_errSuccess;
}

static JET_ERR bk_truncate(bk_job *j, uint32_t below)
{
    uint32_t lo = 0, hi = 0;
    JET_ERR err = bk_phase(j, "truncate");
    if (err)
        return err;
    if (!j->inst->params.circular_log)
        err = log_delete_below(j->inst, below, &lo, &hi);
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

static JET_ERR bk_validate(bk_job *j, const char *dest)
{
    js_instance *inst = j->inst;
    unsigned known = JS_BACKUP_ATOMIC | JS_BACKUP_INCREMENTAL | JS_BACKUP_CREATE_DIR;
    if (j->flags & ~known)
        return js_fail(JET_errInvalidGrbit, "unknown backup flags 0x%x", j->flags & ~known);
    if (!dest && (j->flags & (JS_BACKUP_ATOMIC | JS_BACKUP_INCREMENTAL)))
        return js_fail(JET_errInvalidGrbit, "a truncate-only job takes no atomic or incremental flag");
    pthread_mutex_lock(&inst->state_lock);
    int state = inst->state, stopping = inst->stopping;
    JET_ERR fatal = inst->fatal;
    pthread_mutex_unlock(&inst->state_lock);
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
        return bk_validate_path(j, dest);
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
    JET_ERR err = mf_info_read(j->target, &j->info);
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
    pthread_mutex_lock(&inst->log.lock);
    uint32_t cur = LSN_GEN(log_position(&inst->log));
    pthread_mutex_unlock(&inst->log.lock);
    /* Every closed generation since the set must still be here (the
     * current one is closed by this job's roll). */
    for (uint32_t g = j->copy_from; g < cur; g++) {
        char path[PATH_MAX];
        struct stat st;
        log_gen_name(path, sizeof path, inst->dir, g);
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
        err = log_roll(j->inst, &j->gen_high);
    if (err)
        return err;
    j->prog.bytes_total = j->prog.bytes_done + (uint64_t)(j->gen_high - from + 1) * j->inst->log.file_size;
    err = bk_copy_logs(j, from, j->gen_high);
    if (!err)
        err = bk_phase(j, "manifest");
    return err;
}

static JET_ERR bk_run_full(bk_job *j)
{
    js_instance *inst = j->inst;
    JET_ERR err = bk_phase(j, "checkpoint");
    if (err)
        return err;
    pthread_mutex_lock(&inst->log.lock);
    uint32_t cur = LSN_GEN(log_position(&inst->log));
    pthread_mutex_unlock(&inst->log.lock);
    bk_pin(inst, cur);
    err = ckpt_run(inst);
    if (err)
        return err;
    j->gen_low = LSN_GEN(inst->ckpt_lsn);
    bk_pin(inst, j->gen_low);
    uint64_t fsize = 0;
    err = os_size(inst->db_fd, inst->db_path, &fsize);
    if (err)
        return err;
    uint64_t npages = fsize / inst->page_size;
    j->prog.bytes_total = fsize + (uint64_t)(cur - j->gen_low + 1) * inst->log.file_size;
    err = bk_prepare_dirs(j);
    if (!err)
        err = bk_phase(j, "copy-database");
    if (!err)
        err = bk_copy_db(j, npages);
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
    i->page_size = inst->page_size;
    i->pages = npages;
    i->pages_verified = j->prog.pages_verified;
    i->log_records_verified = j->prog.log_records_verified;
    i->version = 1;
    err = bk_write_manifests(j, j->work);
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
    err = mf_sums_read(j->target, j->sums);
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
            err = bk_write_manifests(j, j->work);
        if (!err)
            err = bk_publish_full(j);
        return err;
    }
    return bk_publish_incremental(j);
}

static JET_ERR bk_stamp(bk_job *j, int incremental)
{
    js_instance *inst = j->inst;
    pthread_mutex_lock(&inst->hdr_lock);
    js_backup_stamp st = { .gen_low = j->gen_low, .gen_high = j->gen_high, .time = time(NULL) };
    if (incremental) {
        inst->hdr.inc = st;
    } else {
        inst->hdr.full = st;
        memset(&inst->hdr.inc, 0, sizeof inst->hdr.inc);
    }
    pthread_mutex_unlock(&inst->hdr_lock);
    return inst_write_header(inst);
}

/* The job is over: let the next one start and wake js_close. */
static void bk_job_end(js_instance *inst)
{
    pthread_mutex_lock(&inst->state_lock);
    inst->backup_running = 0;
    inst->backup_cancel = 0;
    pthread_cond_broadcast(&inst->state_cond);
    pthread_mutex_unlock(&inst->state_lock);
}

JET_ERR js_backup(js_instance *inst, const char *dest, unsigned flags, js_status_fn status, void *ctx)
{
    if (!inst)
        return js_fail(JET_errNotInitialized, "no instance");
    js_errclear();
    bk_job *j = calloc(1, sizeof *j);
    if (!j)
        return js_fail(JET_errOutOfMemory, "backup job");
    j->inst = inst;
    j->flags = flags;
    j->status = status;
    j->ctx = ctx;
    j->prog.phase = "checkpoint";
    j->start_ms = mono_ms();
    j->prog.message = "";
    j->prog.truncated = "none";
    snprintf(j->truncated, sizeof j->truncated, "none");
    int incremental = (flags & JS_BACKUP_INCREMENTAL) != 0;
    JET_ERR err = bk_validate(j, dest);
    if (err) {
        free(j);
        return err;
    }
    pthread_mutex_lock(&inst->state_lock);
    if (inst->backup_running) {
        pthread_mutex_unlock(&inst->state_lock);
        free(j);
        return js_fail(JET_errBackupInProgress, "a backup is already running on %s", inst->dir);
    }
    inst->backup_running = 1;
    inst->backup_cancel = 0;
    pthread_mutex_unlock(&inst->state_lock);

    /* Refusals that depend on DEST and the log are decided before the job
     * begins, so a caller that does not wait sees them as refusals. */
    if (dest && incremental)
        err = bk_incremental_plan(j);
    else if (dest && !(flags & JS_BACKUP_ATOMIC) && !os_dir_empty(dest, NULL))
        err = js_fail(JET_errBackupDirectoryNotEmpty, "%s is not empty (use `atomic`, or an empty directory)", dest);
    if (err) {
        bk_job_end(inst);
        free(j);
        return err;
    }

    j->sums = calloc(1, sizeof *j->sums);
    j->pipe = mf_pipe_new((size_t)BK_BATCH_PAGES * inst->page_size);
    if (!j->sums || !j->pipe) {
        err = js_fail(JET_errOutOfMemory, "backup buffers");
        goto done;
    }
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
    free(j->sums);
    mf_pipe_free(j->pipe);
    free(j);
    return err;
}

JET_ERR js_backup_cancel(js_instance *inst)
{
    if (!inst)
        return js_fail(JET_errNotInitialized, "no instance");
    JET_ERR err = JET_errSuccess;
    pthread_mutex_lock(&inst->state_lock);
    if (!inst->backup_running)
        err = js_fail(JET_errInvalidParameter, "no backup is running");
    else if (!inst->backup_cancel)
        inst->backup_cancel = JET_errBackupAbortByServer;
    pthread_mutex_unlock(&inst->state_lock);
    return err;
}
