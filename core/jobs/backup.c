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
#define BK_NAME_MAX 64

typedef struct bk_job {
    js_instance *inst;
    unsigned flags;
    js_status_fn status;
    void *ctx;
    /* Paths for messages and the fault filter only (see the top). */
    char dest[PATH_MAX];
    char work[PATH_MAX];        /* where this job writes */
    char target[PATH_MAX];      /* the set it adds to (incremental) */
    /* The held directories (-1: not open). */
    int parent_fd;              /* DEST's parent, while DEST is still to be made */
    int dest_fd, work_fd, target_fd;
    char dest_name[BK_NAME_MAX * 4];    /* DEST's name in parent_fd */
    const char *work_name;      /* work's name in dest_fd; NULL: work is DEST */
    struct stat dest_st, work_st;       /* what this job made (created_*) */
    int created_dest, created_work, work_is_dest;
    int wrote_manifests, linked_prev;   /* names this job made in work */
    uint32_t gen_low, gen_high, copy_from;
    js_progress prog;
    uint64_t last_pct;
    int64_t last_report_ms;
    int64_t start_ms;           /* for backup_max_rate */
    mf_sums *sums;
    mf_info info;
    char truncated[48];         /* status key `truncated` */
    char written[BK_MAX_WRITTEN][BK_NAME_MAX];   /* names this job made in work */
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
    if (strlen(name) >= sizeof j->written[0])   /* cleanup must unlink exactly this name */
        return js_fail(JET_errInvalidParameter, "file name too long for a backup set: %s", name);
    snprintf(j->written[j->nwritten++], sizeof j->written[0], "%s", name);
    return JET_errSuccess;
}

/* ---------------- validation ---------------- */

/* 1 when the directory fd is dir (dev, ino) or lies beneath it: walked up
 * through ".." from the descriptor, so no path is resolved. */
static int bk_beneath(int fd, dev_t dev, ino_t ino)
{
    int cur = openat(fd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC), inside = 0;
    for (int depth = 0; cur >= 0 && depth < 4096; depth++) {
        struct stat st, up;
        if (fstat(cur, &st) < 0)
            break;
        if (st.st_dev == dev && st.st_ino == ino) {
            inside = 1;
            break;
        }
        int next = openat(cur, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (next < 0 || fstat(next, &up) < 0 || (up.st_dev == st.st_dev && up.st_ino == st.st_ino)) {
            os_close(next);
            break;   /* the file system's root */
        }
        close(cur);
        cur = next;
    }
    os_close(cur);
    return inside;
}

/* Split path into its parent (into parent, cap bytes) and last component,
 * trailing slashes ignored.  Returns the last component ("" for "/"). */
static const char *bk_split(const char *path, char *parent, size_t cap)
{
    snprintf(parent, cap, "%s", path);
    size_t n = strlen(parent);
    while (n > 1 && parent[n - 1] == '/')
        parent[--n] = '\0';
    char *slash = strrchr(parent, '/');
    if (!slash)
        return "";
    const char *base = path + (slash - parent) + 1;
    if (slash == parent)
        parent[1] = '\0';
    else
        *slash = '\0';
    return base;
}

/* Resolve DEST once.  On success j->dest_fd holds DEST, or (DEST missing,
 * `create` given) j->parent_fd holds its parent and j->dest_name its name. */
static JET_ERR bk_validate_path(bk_job *j, const char *dest, int root_fd, const char *root)
{
    if (!*dest || dest[0] != '/')
        return js_fail(JET_errInvalidParameter, "backup path \"%s\" is not absolute", dest);
    if (strlen(dest) >= PATH_MAX - 64)
        return js_fail(JET_errInvalidParameter, "backup path is too long");
    if (strchr(dest, '\n'))
        return js_fail(JET_errInvalidParameter, "backup path contains a newline");
    snprintf(j->dest, sizeof j->dest, "%s", dest);
    char parent[PATH_MAX], base[sizeof j->dest_name];
    const char *last = bk_split(dest, parent, sizeof parent);
    size_t blen = strcspn(last, "/");
    if (blen >= sizeof base)
        return js_fail(JET_errInvalidParameter, "backup directory name is too long");
    memcpy(base, last, blen);
    base[blen] = '\0';
    int plain = blen && strcmp(base, ".") && strcmp(base, "..");
    JET_ERR err;
    int why = 0;
    if (root_fd >= 0) {
        size_t rlen = strlen(root);
        while (rlen > 1 && root[rlen - 1] == '/')
            rlen--;
        if (!strcmp(root, "/"))
            rlen = 0;
        else if (strncmp(dest, root, rlen) || (dest[rlen] != '/' && dest[rlen] != '\0'))
            return js_fail(JET_errInvalidPath, "%s is outside the backup root %s", dest, root);
        const char *rel = dest + rlen + strspn(dest + rlen, "/");
        err = os_open_beneath(root_fd, rel, dest, &j->dest_fd, &why);
        if (err && why == ENOENT && plain && (j->flags & JS_BACKUP_CREATE_DIR)) {
            /* The parent beneath the root, then DEST made in it. */
            size_t plen = strlen(parent) > rlen ? strlen(parent) - rlen : 0;
            char prel[PATH_MAX];
            snprintf(prel, sizeof prel, "%.*s", (int)plen, parent + rlen);
            err = os_open_beneath(root_fd, prel + strspn(prel, "/"), parent, &j->parent_fd, &why);
            if (err && why == ENOENT)
                return js_fail(JET_errMakeBackupDirectoryFail, "cannot make %s: its parent is missing", dest);
        }
        if (err && why == ENOENT && !(j->flags & JS_BACKUP_CREATE_DIR))
            return js_fail(JET_errInvalidPath, "%s does not exist (add `create` to make it)", dest);
        if (err)
            return err;
    } else if (!plain) {
        /* "/" (or a path ending in . or ..): nothing to refuse a symlink at. */
        err = os_open(dest, O_RDONLY | O_DIRECTORY, 0, &j->dest_fd);
        if (err)
            return js_fail(JET_errInvalidPath, "%s is not a directory: %s", dest, js_errdetail());
    } else {
        err = os_open(parent, O_RDONLY | O_DIRECTORY, 0, &j->parent_fd);
        if (err == JET_errFileNotFound && (j->flags & JS_BACKUP_CREATE_DIR))
            return js_fail(JET_errMakeBackupDirectoryFail, "cannot make %s: its parent is missing", dest);
        if (err)
            return js_fail(JET_errInvalidPath, "%s: its parent is not a directory: %s", dest, js_errdetail());
        int fd = openat(j->parent_fd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0) {
            j->dest_fd = fd;
        } else if (errno == ENOENT) {
            if (!(j->flags & JS_BACKUP_CREATE_DIR))
                return js_fail(JET_errInvalidPath, "%s does not exist (add `create` to make it)", dest);
        } else if (errno == ENOTDIR || errno == ELOOP) {
            return js_fail(JET_errInvalidPath, "%s is not a directory (a symlink is not followed)", dest);
        } else {
            return os_err(errno, "open", dest);
        }
    }
    if (j->dest_fd >= 0) {
        os_close(j->parent_fd);   /* DEST exists: this job never makes or removes it */
        j->parent_fd = -1;
    }
    snprintf(j->dest_name, sizeof j->dest_name, "%s", base);
    struct stat ist;
    if (stat(j->inst->dir, &ist) == 0 && bk_beneath(j->dest_fd >= 0 ? j->dest_fd : j->parent_fd, ist.st_dev, ist.st_ino))
        return js_fail(JET_errInvalidPath, "%s is inside the instance directory %s", dest, j->inst->dir);
    return JET_errSuccess;
}

/* Make dirfd/name (mkdirat) and open what is there now with O_NOFOLLOW: it
 * is used only if it is an empty directory owned by us, so a swap between
 * the two calls can at most hand us an empty directory in the same place.
 * *st receives its identity, which cleanup checks before removing it. */
static JET_ERR bk_make_dir(int dirfd, const char *name, const char *shown, int *fd, struct stat *st)
{
    JET_ERR err = os_mkdirat(dirfd, name, shown, 0700);
    if (err)
        return js_fail(err == JET_errDiskFull ? err : JET_errMakeBackupDirectoryFail, "cannot make %s: %s", shown,
                       js_errdetail());
    *fd = -1;
    err = os_openat(dirfd, name, shown, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0, fd);
    if (!err && (fstat(*fd, st) < 0 || st->st_uid != geteuid() || !os_dir_empty_fd(*fd)))
        err = js_fail(JET_errMakeBackupDirectoryFail, "%s was replaced while it was made", shown);
    if (err) {
        /* What is there now may not be ours: it stays. */
        os_close(*fd);
        *fd = -1;
        return err == JET_errMakeBackupDirectoryFail ? err
                                                     : js_fail(JET_errMakeBackupDirectoryFail, "%s", js_errdetail());
    }
    return JET_errSuccess;
}

/* Remove the directory dirfd/name that this job made, if the name still
 * holds it (made is its identity) and it is empty.  Best effort. */
static void bk_remove_made_dir(int dirfd, const char *name, const struct stat *made)
{
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode) && st.st_dev == made->st_dev &&
        st.st_ino == made->st_ino)
        (void)unlinkat(dirfd, name, AT_REMOVEDIR);
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
    err = os_openat(j->work_fd, JS_DB_FILE, path, O_WRONLY | O_CREAT | O_EXCL, 0600, &fd);
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
        err = os_openat(j->work_fd, name, dst, O_WRONLY | O_CREAT | O_EXCL, 0600, &out_fd);
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

/* backup.info and SHA256SUMS into work. */
static JET_ERR bk_write_manifests(bk_job *j)
{
    char text[2048], hex[65];
    size_t len = mf_info_render(&j->info, text, sizeof text);
    j->wrote_manifests = 1;
    JET_ERR err = os_write_file_durable_at(j->work_fd, j->work, "backup.info", text, len, 0600);
    if (err)
        return err;
    mf_hash *h = mf_hash_new();
    if (!h)
        return js_fail(JET_errOutOfMemory, "hash");
    mf_hash_update(h, text, len);
    mf_hash_final(h, hex);
    err = mf_sums_set(j->sums, "backup.info", hex);
    if (!err)
        err = mf_sums_writeat(j->work_fd, j->work, j->sums);
    return err;
}

/* ---------------- the job ---------------- */

static JET_ERR bk_prepare_dirs(bk_job *j)
{
    JET_ERR err;
    int incremental = (j->flags & JS_BACKUP_INCREMENTAL) != 0;
    int atomic = (j->flags & JS_BACKUP_ATOMIC) != 0;
    if (j->dest_fd < 0) {
        err = bk_make_dir(j->parent_fd, j->dest_name, j->dest, &j->dest_fd, &j->dest_st);
        if (err)
            return err;
        j->created_dest = 1;
    }
    if (atomic) {
        /* Full or incremental: a whole set is built here, then swapped in. */
        j->work_name = "temp";
        snprintf(j->target, sizeof j->target, "%s/new", j->dest);
    } else if (incremental) {
        j->work_name = ".jetsnap-incremental";
    } else {
        if (!os_dir_empty_fd(j->dest_fd))
            return js_fail(JET_errBackupDirectoryNotEmpty, "%s is not empty (use `atomic`, or an empty directory)",
                           j->dest);
        snprintf(j->work, sizeof j->work, "%s", j->dest);
        j->work_fd = dup(j->dest_fd);
        if (j->work_fd < 0)
            return os_err(errno, "dup", j->dest);
        j->work_is_dest = 1;
        return JET_errSuccess;
    }
    snprintf(j->work, sizeof j->work, "%s/%s", j->dest, j->work_name);
    err = os_rmtreeat(j->dest_fd, j->work_name, j->work);   /* a leftover of an interrupted job */
    if (err)
        return err;
    err = bk_make_dir(j->dest_fd, j->work_name, j->work, &j->work_fd, &j->work_st);
    if (err)
        return err;
    j->created_work = 1;
    return JET_errSuccess;
}

/* Undo a failed job: unlink, in the directory it wrote in, the names it
 * made there, then the directories it made (see the top of the file). */
static void bk_cleanup(bk_job *j)
{
    static const char *const made[] = { "backup.info", "SHA256SUMS" };
    static const char *const prev[] = { ".prev.info", ".prev.sums" };
    if (j->work_fd >= 0 && (j->created_work || j->work_is_dest)) {
        for (size_t i = 0; i < j->nwritten; i++)
            (void)unlinkat(j->work_fd, j->written[i], 0);   /* best effort: the job already failed */
        for (size_t i = 0; j->wrote_manifests && i < 2; i++)
            (void)unlinkat(j->work_fd, made[i], 0);
        for (size_t i = 0; j->linked_prev && i < 2; i++)
            (void)unlinkat(j->work_fd, prev[i], 0);
    }
    if (j->created_work)
        bk_remove_made_dir(j->dest_fd, j->work_name, &j->work_st);
    if (j->created_dest)
        bk_remove_made_dir(j->parent_fd, j->dest_name, &j->dest_st);
}

/* Publish a set built in DEST/temp (atomic jobs), or make a plain one
 * durable.  Atomic: new -> old, temp -> new, fsync DEST.  Until that fsync
 * succeeds every step is undone on failure, so the previous set stays as it
 * was; after it the new set is the published one and removing DEST/old is
 * housekeeping (a crash that brings old back is harmless: restore prefers
 * new, and the next atomic job removes a leftover old first).  Every step
 * is relative to the held DEST. */
static JET_ERR bk_publish_full(bk_job *j)
{
    JET_ERR err = os_fsync_fd(j->work_fd, j->work);
    if (err || !(j->flags & JS_BACKUP_ATOMIC)) {
        if (!err && j->created_dest) {
            char parent[PATH_MAX];
            snprintf(parent, sizeof parent, "%s/..", j->dest);
            err = os_fsync_fd(j->parent_fd, parent);
        }
        return err;
    }
    char newd[PATH_MAX], oldd[PATH_MAX];
    struct stat st;
    int had_new = 0, moved_new = 0;
    snprintf(newd, sizeof newd, "%s/new", j->dest);
    snprintf(oldd, sizeof oldd, "%s/old", j->dest);
    err = os_rmtreeat(j->dest_fd, "old", oldd);
    if (err)
        return err;
    had_new = fstatat(j->dest_fd, "new", &st, AT_SYMLINK_NOFOLLOW) == 0;
    if (had_new) {
        err = os_renameat(j->dest_fd, "new", j->dest_fd, "old", oldd);
        if (err)
            return err;
    }
    err = os_renameat(j->dest_fd, j->work_name, j->dest_fd, "new", newd);
    if (!err) {
        moved_new = 1;
        err = os_fsync_fd(j->dest_fd, j->dest);
    }
    if (err) {
        /* Undo, best effort: the job has already failed with err. */
        if (moved_new)
            (void)renameat(j->dest_fd, "new", j->dest_fd, j->work_name);
        if (had_new)
            (void)renameat(j->dest_fd, "old", j->dest_fd, "new");
        (void)os_fsync_fd(j->dest_fd, j->dest);
        return err;
    }
    j->created_work = 0;   /* it is the published set now */
    if (had_new && os_rmtreeat(j->dest_fd, "old", oldd) != JET_errSuccess)
        inst_event(j->inst, 227, JS_EV_WARNING, "could not remove the previous set %s: %s", oldd, js_errdetail());
    return JET_errSuccess;
}

/* Atomic incremental: the new set in DEST/temp shares the previous set's
 * files through hard links, so publishing it is the same swap as a full
 * backup.  Only regular files are linked, and each link is recorded as made
 * by this job (cleanup unlinks it from DEST/temp). */
static JET_ERR bk_share_previous_set(bk_job *j)
{
    int rd = openat(j->target_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = rd < 0 ? NULL : fdopendir(rd);
    if (!d) {
        JET_ERR e = os_err(errno, "opendir", j->target);
        os_close(rd);
        return e;
    }
    JET_ERR err = JET_errSuccess;
    struct dirent *de;
    while (!err && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' || !strcmp(de->d_name, "backup.info") || !strcmp(de->d_name, "SHA256SUMS"))
            continue;
        char to[PATH_MAX];
        struct stat st;
        if (fstatat(j->target_fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (fstatat(j->work_fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0)
            continue;   /* this job's own copy of a generation wins */
        snprintf(to, sizeof to, "%s/%s", j->work, de->d_name);
        err = bk_note_written(j, de->d_name);
        if (!err)
            err = os_linkat(j->target_fd, de->d_name, j->work_fd, de->d_name, to);
    }
    closedir(d);
    return err;
}

/* Plain incremental: move the staged logs and manifests into DEST.  Every
 * step before the final fsync is undone on failure (the previous manifests
 * are kept as hard links for that), so a failed job leaves DEST as it was. */
static JET_ERR bk_publish_incremental(bk_job *j)
{
    char to[PATH_MAX], t_info[PATH_MAX], t_sums[PATH_MAX], shown[PATH_MAX];
    size_t moved = 0;
    int info_moved = 0, sums_moved = 0;
    snprintf(t_info, sizeof t_info, "%s/backup.info", j->target);
    snprintf(t_sums, sizeof t_sums, "%s/SHA256SUMS", j->target);
    JET_ERR err = bk_write_manifests(j);
    if (!err) {
        j->linked_prev = 1;
        snprintf(shown, sizeof shown, "%s/.prev.info", j->work);
        err = os_linkat(j->target_fd, "backup.info", j->work_fd, ".prev.info", shown);
    }
    if (!err) {
        snprintf(shown, sizeof shown, "%s/.prev.sums", j->work);
        err = os_linkat(j->target_fd, "SHA256SUMS", j->work_fd, ".prev.sums", shown);
    }
    for (; !err && moved < j->nwritten; moved++) {
        snprintf(to, sizeof to, "%s/%s", j->target, j->written[moved]);
        err = os_renameat(j->work_fd, j->written[moved], j->target_fd, j->written[moved], to);
        if (err)
            break;
    }
    if (!err) {
        err = os_renameat(j->work_fd, "SHA256SUMS", j->target_fd, "SHA256SUMS", t_sums);
        sums_moved = !err;
    }
    if (!err) {
        err = os_renameat(j->work_fd, "backup.info", j->target_fd, "backup.info", t_info);
        info_moved = !err;
    }
    if (!err)
        err = os_fsync_fd(j->target_fd, j->target);
    if (err) {
        /* Undo, best effort: the job has already failed with err.  Only the
         * names this job moved into the set are touched. */
        if (info_moved)
            (void)renameat(j->work_fd, ".prev.info", j->target_fd, "backup.info");
        if (sums_moved)
            (void)renameat(j->work_fd, ".prev.sums", j->target_fd, "SHA256SUMS");
        for (size_t i = 0; i < moved; i++)
            (void)unlinkat(j->target_fd, j->written[i], 0);
        (void)os_fsync_fd(j->target_fd, j->target);
        return err;
    }
    /* Published: the staging directory holds only the two links now. */
    (void)unlinkat(j->work_fd, ".prev.info", 0);
    (void)unlinkat(j->work_fd, ".prev.sums", 0);
    j->linked_prev = 0;
    j->nwritten = 0;
    j->wrote_manifests = 0;
    bk_remove_made_dir(j->dest_fd, j->work_name, &j->work_st);
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

static JET_ERR bk_validate(bk_job *j, const char *dest, int root_fd, const char *root)
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
    j->start_ms = mono_ms();
    j->prog.message = "";
    j->prog.truncated = "none";
    snprintf(j->truncated, sizeof j->truncated, "none");
    int incremental = (flags & JS_BACKUP_INCREMENTAL) != 0;
    JET_ERR err = bk_validate(j, dest, root_fd, root);
    if (err) {
        bk_free(j);
        return err;
    }
    pthread_mutex_lock(&inst->state_lock);
    if (inst->backup_running) {
        pthread_mutex_unlock(&inst->state_lock);
        bk_free(j);
        return js_fail(JET_errBackupInProgress, "a backup is already running on %s", inst->dir);
    }
    inst->backup_running = 1;
    inst->backup_cancel = 0;
    pthread_mutex_unlock(&inst->state_lock);

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
    bk_free(j);
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
