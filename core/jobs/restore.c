/*
 * restore.c - hard recovery of a backup set (ESE's JetRestore) and the
 * offline verification of a set.
 *
 * Restore checks everything before it writes anything: the set's
 * SHA256SUMS, the database copy's header against backup.info (signatures,
 * page size, first generation, size), every generation gen_low..gen_high
 * (header, blocks, signature, chain), and that the set holds exactly the
 * generations backup.info names, each listed in SHA256SUMS.  Then it
 * copies the database into TARGET with state being-restored, checking every
 * page it copies against the copy's written bound (page.h), replays the
 * set's generations, then the generations in --logs while they continue the
 * chain (up to --until-gen), writes every page, checks the pages between
 * the copy's bound and the final high-water mark, starts a fresh log
 * generation chained to the last one replayed, writes edb.chk, and only
 * then marks the header clean-shutdown.  An interrupted restore leaves
 * being-restored, which open refuses; a failed one removes what it wrote.
 *
 * A job holds its directories; names are resolved once; cleanup removes
 * only what it created, by fd (the rule of jobs/backup.c):
 *   - the set directory (BACKUP, BACKUP/new or BACKUP/old) is opened once
 *     (mf_open_set) and every file of it is opened relative to that
 *     descriptor with O_NOFOLLOW, so a swap of BACKUP's path cannot mix two
 *     sets or make restore read outside the set;
 *   - TARGET is opened once: its parent, then TARGET with O_NOFOLLOW; a
 *     missing TARGET is made with mkdirat in the held parent and used only
 *     if what is there is an empty directory of ours.  The database copy is
 *     created with openat in it;
 *   - the modules that take a directory path (the instance, redo, edb.chk,
 *     log creation) are handed /proc/self/fd/N of the held descriptor: the
 *     kernel resolves that magic link to the very directory held, wherever
 *     it has been moved, so the replay, the new generation and the final
 *     clean-shutdown header all land in it (messages show the path given);
 *   - a failed restore unlinks, relative to the held TARGET, only the names
 *     restore makes, and removes TARGET only if it made it and the name
 *     still holds that directory.
 */
#include "jobs/jobs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct rs_job {
    js_status_fn status;
    void *ctx;
    js_progress prog;
    uint64_t last_pct;
    const char *last_phase;   /* prog.phase at the last progress report */
} rs_job;

static JET_ERR rs_report(rs_job *r, int snt)
{
    if (!r->status)
        return JET_errSuccess;
    r->prog.units_total = 100;
    r->prog.units_done = r->prog.bytes_total ? r->prog.bytes_done * 100 / r->prog.bytes_total : 0;
    if (r->prog.units_done > 100 || snt == JS_SNT_COMPLETE)
        r->prog.units_done = 100;
    if (r->status(r->ctx, JS_SNP_RESTORE, snt, &r->prog) && snt != JS_SNT_FAIL && snt != JS_SNT_COMPLETE)
        return js_fail(JET_errBackupAbortByServer, "the restore was cancelled by its status callback");
    return JET_errSuccess;
}

/* Report progress when the percentage grew, and once in every phase
 * however little it moves the percentage (a replay of a few records), so
 * the status callback sees each phase. */
static JET_ERR rs_progress(rs_job *r, uint64_t add)
{
    r->prog.bytes_done += add;
    uint64_t pct = r->prog.bytes_total ? r->prog.bytes_done * 100 / r->prog.bytes_total : 0;
    if (pct <= r->last_pct && r->prog.phase == r->last_phase)
        return JET_errSuccess;
    r->last_pct = pct > r->last_pct ? pct : r->last_pct;
    r->last_phase = r->prog.phase;
    return rs_report(r, JS_SNT_PROGRESS);
}

/* The path through which other modules reach the held directory fd. */
static void rs_proc_path(int fd, char *out, size_t cap)
{
    snprintf(out, cap, "/proc/self/fd/%d", fd);
}

/* Replace each proc path (see rs_proc_path) in detail by the path the
 * caller gave, so messages name what the administrator knows. */
static void rs_unproc(char *detail, size_t cap, const char *proc, const char *shown)
{
    size_t plen = strlen(proc);
    char *at = detail;
    while ((at = strstr(at, proc)) != NULL) {
        if (at[plen] >= '0' && at[plen] <= '9') {   /* fd 1 is not fd 12 */
            at += plen;
            continue;
        }
        char rest[512];
        snprintf(rest, sizeof rest, "%s", at + plen);
        size_t off = (size_t)(at - detail);
        snprintf(at, cap - off, "%s%s", shown, rest);
        at += strlen(shown) < cap - off ? strlen(shown) : cap - off - 1;
    }
}

/* Open TARGET once: its parent (the path as given), then TARGET with
 * O_NOFOLLOW.  *fd -1 when it does not exist yet (*parent_fd and name then
 * say where restore will make it). */
static JET_ERR rs_open_target(const char *target, int *parent_fd, char *name, size_t cap, int *fd)
{
    char parent[PATH_MAX];
    snprintf(parent, sizeof parent, "%s", target);
    size_t n = strlen(parent);
    while (n > 1 && parent[n - 1] == '/')
        parent[--n] = '\0';
    char *slash = strrchr(parent, '/');
    const char *base = slash ? slash + 1 : parent;
    if (!*base || !strcmp(base, ".") || !strcmp(base, "..") || strlen(base) >= cap) {
        /* Nothing to refuse a symlink at (or to make): open it as it is. */
        JET_ERR err = os_open(target, O_RDONLY | O_DIRECTORY, 0, fd);
        return err ? js_fail(JET_errInvalidPath, "restore target %s is not a directory", target) : JET_errSuccess;
    }
    snprintf(name, cap, "%s", base);
    if (!slash)
        snprintf(parent, sizeof parent, ".");
    else if (slash == parent)
        parent[1] = '\0';
    else
        *slash = '\0';
    if (os_open(parent, O_RDONLY | O_DIRECTORY, 0, parent_fd))
        return js_fail(JET_errInvalidPath, "the parent of restore target %s is not a directory", target);
    *fd = openat(*parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (*fd >= 0 || errno == ENOENT)
        return JET_errSuccess;
    if (errno == ENOTDIR || errno == ELOOP)
        return js_fail(JET_errInvalidPath, "restore target %s is not a directory (a symlink is not followed)",
                       target);
    return os_err(errno, "open", target);
}

/* Make TARGET in its held parent and open it (see the top). */
static JET_ERR rs_make_target(int parent_fd, const char *name, const char *target, int *fd, struct stat *st)
{
    JET_ERR err = os_mkdirat(parent_fd, name, target, 0700);
    if (!err)
        err = os_openat(parent_fd, name, target, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0, fd);
    if (!err && (fstat(*fd, st) < 0 || st->st_uid != geteuid() || !os_dir_empty_fd(*fd))) {
        os_close(*fd);
        *fd = -1;
        err = js_fail(JET_errInvalidPath, "restore target %s was replaced while it was made", target);
    }
    return err;
}

/* Every file SHA256SUMS lists must hash to its digest.  The database copy,
 * the one big file, is hashed while it is copied (rs_copy_db) instead of in
 * a pass of its own: *db_hex receives its expected digest. */
static JET_ERR rs_check_sums(rs_job *r, int set_fd, const char *set, char db_hex[65])
{
    mf_sums *sums = calloc(1, sizeof *sums);
    JET_ERR err;
    if (!sums)
        return js_fail(JET_errOutOfMemory, "SHA256SUMS");
    err = mf_sums_readat(set_fd, set, sums);
    if (!err && sums->n == 0)
        err = js_fail(JET_errRestoreOfNonBackupDatabase, "%s/SHA256SUMS is missing or empty", set);
    for (size_t i = 0; i < sums->n && !err; i++) {
        char path[PATH_MAX], hex[65];
        struct stat st;
        const char *name = sums->e[i].name;
        int is_log = !strncmp(name, "edb", 3) && strcmp(name, JS_DB_FILE);
        snprintf(path, sizeof path, "%s/%s", set, name);
        if (!strcmp(name, JS_DB_FILE)) {
            memcpy(db_hex, sums->e[i].hex, 65);
            continue;
        }
        if (fstatat(set_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode)) {
            err = js_fail(is_log ? JET_errMissingRestoreLogFiles : JET_errRestoreOfNonBackupDatabase,
                          "%s is listed in SHA256SUMS but missing", path);
            break;
        }
        err = mf_hash_fileat(set_fd, name, path, hex);
        if (err)
            break;
        if (strcmp(hex, sums->e[i].hex)) {
            if (!strcmp(name, JS_DB_FILE))
                err = JS_CORRUPT(JET_errReadVerifyFailure, "%s does not match its SHA-256 in SHA256SUMS", path);
            else if (is_log)
                err = JS_CORRUPT(JET_errLogReadVerifyFailure, "%s does not match its SHA-256 in SHA256SUMS", path);
            else
                err = JS_CORRUPT(JET_errRestoreOfNonBackupDatabase, "%s does not match its SHA-256 in SHA256SUMS",
                                 path);
            break;
        }
        err = rs_progress(r, (uint64_t)st.st_size);
    }
    if (!err && !db_hex[0])
        err = js_fail(JET_errRestoreOfNonBackupDatabase, "%s/SHA256SUMS does not list " JS_DB_FILE, set);
    free(sums);
    return err;
}

/* backup.info, SHA256SUMS and the files agree: the database copy is the
 * database backup.info names, of the size it names, starting at its
 * gen_low; the set holds no generation outside gen_low..gen_high (a set
 * that goes on past gen_high would restore quietly short of its end); and
 * every generation of the range is listed in SHA256SUMS.  Called once the
 * range itself is known to be complete and chained. */
static JET_ERR rs_check_manifest(int set_fd, const char *set, const mf_info *info, const db_header *hdr)
{
    char path[PATH_MAX], sig[40], setproc[64];
    struct stat st;
    uint32_t lo, hi;
    rs_proc_path(set_fd, setproc, sizeof setproc);
    snprintf(path, sizeof path, "%s/%s", set, JS_DB_FILE);
    dbh_sig_hex(hdr->db_sig, sig);
    if (strcmp(sig, info->db_signature))
        return js_fail(JET_errBadDbSignature, "%s is database %s, but backup.info names database %s", path, sig,
                       info->db_signature[0] ? info->db_signature : "(none)");
    if (hdr->page_size != info->page_size)
        return js_fail(JET_errPageSizeMismatch, "%s has %u-byte pages, but backup.info says %u", path,
                       hdr->page_size, info->page_size);
    if (hdr->backup_gen_low != info->gen_low)
        return js_fail(JET_errInvalidBackup, "%s starts at generation %08X, but backup.info says gen_low %08X", path,
                       hdr->backup_gen_low, info->gen_low);
    if (fstatat(set_fd, JS_DB_FILE, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return os_err(errno, "stat", path);
    if ((uint64_t)st.st_size != info->pages * hdr->page_size)
        return js_fail(JET_errInvalidBackup, "%s holds %llu bytes, but backup.info says %llu pages of %u bytes",
                       path, (unsigned long long)st.st_size, (unsigned long long)info->pages, hdr->page_size);
    JET_ERR err = loggen_list(setproc, &lo, &hi);
    if (err)
        return err;
    if (lo && (lo < info->gen_low || hi > info->gen_high))
        return js_fail(JET_errInvalidBackup,
                       "%s holds generation %08X, outside backup.info's gen_low..gen_high %08X-%08X", set,
                       lo < info->gen_low ? lo : hi, info->gen_low, info->gen_high);
    mf_sums *sums = calloc(1, sizeof *sums);
    uint32_t range = info->gen_high - info->gen_low + 1;
    uint8_t *listed = calloc(range, 1);
    if (!sums || !listed) {
        err = js_fail(JET_errOutOfMemory, "SHA256SUMS");
        goto out;
    }
    err = mf_sums_readat(set_fd, set, sums);
    for (size_t i = 0; i < sums->n && !err; i++) {
        unsigned g;
        char tail[8];
        if (strlen(sums->e[i].name) == 15 && sscanf(sums->e[i].name, "edb%8X%5s", &g, tail) == 2 &&
            !strcmp(tail, ".log") && g >= info->gen_low && g <= info->gen_high)
            listed[g - info->gen_low] = 1;
    }
    for (uint32_t k = 0; k < range && !err; k++)
        if (!listed[k])
            err = js_fail(JET_errInvalidBackup, "%s holds generation %08X, but its SHA256SUMS does not list it", set,
                          info->gen_low + k);
out:
    free(listed);
    free(sums);
    return err;
}

/* The database copy and the generations of the set agree. */
static JET_ERR rs_check_set(int set_fd, const char *set, const mf_info *info, uint32_t until_gen, db_header *hdr)
{
    char path[PATH_MAX], setproc[64];
    int fd = -1;
    rs_proc_path(set_fd, setproc, sizeof setproc);
    snprintf(path, sizeof path, "%s/%s", set, JS_DB_FILE);
    JET_ERR err = os_openat(set_fd, JS_DB_FILE, path, O_RDONLY | O_NOFOLLOW, 0, &fd);
    if (!err)
        err = dbh_read(fd, path, hdr);
    os_close(fd);
    if (err)
        return err;
    char sig[40];
    dbh_sig_hex(hdr->log_sig, sig);
    if (!hdr->backup_gen_low)
        return js_fail(JET_errRestoreOfNonBackupDatabase, "%s is not a backup copy", path);
    if (strcmp(sig, info->log_signature))
        return js_fail(JET_errBadLogSignature, "%s belongs to another log stream than backup.info", path);
    if (hdr->backup_gen_low < info->gen_low)
        return js_fail(JET_errStartingRestoreLogTooHigh,
                       "the database copy needs generation %08X but the set starts at %08X", hdr->backup_gen_low,
                       info->gen_low);
    if (info->gen_high < info->full_gen_high)
        return js_fail(JET_errEndingRestoreLogTooLow,
                       "the database copy needs generations through %08X but the set ends at %08X",
                       info->full_gen_high, info->gen_high);
    if (until_gen && until_gen < info->full_gen_high)
        return js_fail(JET_errEndingRestoreLogTooLow,
                       "--until-gen %08X is below generation %08X, which the database copy needs", until_gen,
                       info->full_gen_high);
    loggen_hdr h, ph;
    loggen_scan_result s, ps;
    memset(&ph, 0, sizeof ph);
    memset(&ps, 0, sizeof ps);
    for (uint32_t g = info->gen_low; g <= info->gen_high; g++) {
        struct stat st;
        char name[24];
        snprintf(name, sizeof name, "edb%08X.log", g);
        if (fstatat(set_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
            return js_fail(JET_errMissingRestoreLogFiles, "log generation %08X is missing from the set (%s)", g, set);
        /* loggen reads by path: through the held set directory. */
        loggen_name(path, sizeof path, setproc, g);
        err = loggen_scan(path, 0, 0, NULL, NULL, &h, &s);
        if (err)
            return err;
        if (memcmp(h.log_sig, hdr->log_sig, JS_SIG_LEN))
            return js_fail(JET_errBadLogSignature, "%s belongs to another log stream", path);
        if (h.gen != g)
            return js_fail(JET_errGivenLogFileIsNotContiguous, "%s holds generation %08X", path, h.gen);
        if (g > info->gen_low &&
            (h.prev_digest != ps.digest || h.prev_blocks != ps.end_blk || h.prev_created != ph.created))
            return js_fail(JET_errGivenLogFileIsNotContiguous, "generation %08X does not continue generation %08X",
                           g, g - 1);
        ph = h;
        ps = s;
    }
    return rs_check_manifest(set_fd, set, info, hdr);
}

/* Copy the database copy into TARGET, hashing it on the second core as it
 * goes; a digest that does not match SHA256SUMS fails the restore (which
 * then removes what it wrote).  The header is replaced in the very first
 * write by one saying being-restored, so a restore interrupted at any later
 * moment leaves a database that open refuses. */
static JET_ERR rs_copy_db(rs_job *r, int set_fd, const char *set, int target_fd, const char *target,
                          const db_header *restoring, uint32_t valid_below, const char want_hex[65])
{
    uint32_t ps = restoring->page_size;
    char src[PATH_MAX], dst[PATH_MAX], hex[65];
    int in = -1, out = -1;
    const size_t chunk = 4u << 20;   /* measured cold: 4 MiB beat 2 and 8 */
    mf_pipe *pipe = mf_pipe_new(chunk);
    JET_ERR err;
    snprintf(src, sizeof src, "%s/%s", set, JS_DB_FILE);
    snprintf(dst, sizeof dst, "%s/%s", target, JS_DB_FILE);
    if (!pipe)
        return js_fail(JET_errOutOfMemory, "hashing pipeline");
    err = os_openat(set_fd, JS_DB_FILE, src, O_RDONLY | O_NOFOLLOW, 0, &in);
    if (!err)
        err = os_openat(target_fd, JS_DB_FILE, dst, O_RDWR | O_CREAT | O_EXCL, 0600, &out);
    if (!err) {
        uint8_t *hdr = malloc(2 * (size_t)ps);
        if (!hdr) {
            err = js_fail(JET_errOutOfMemory, "header pages");
        } else {
            dbh_encode(restoring, hdr, 0);
            dbh_encode(restoring, hdr + ps, 1);
            err = os_pwrite(out, dst, hdr, 2 * (size_t)ps, 0);
            free(hdr);
        }
    }
    for (uint64_t off = 0; !err;) {
        size_t got = 0;
        uint8_t *buf = mf_pipe_buffer(pipe);
        /* The kernel's sequential read-ahead, with its large folios, keeps
         * the disk busy ahead of the copy (fadvise WILLNEED reads in single
         * pages, at more CPU than the read); the set's chunk is dropped
         * once read, which also kept those reads fastest (measured on the
         * backup's copy). */
        err = os_pread(in, src, buf, chunk, off, &got);
        if (!err)
            os_cache_drop(in, off, got);
        if (err || got == 0)
            break;
        /* The hash covers the bytes as stored in the set; the copy keeps
         * the being-restored header written above. */
        uint64_t skip = off == 0 ? (got < 2 * (size_t)ps ? got : 2 * (size_t)ps) : 0;
        /* Every page copied is checked (page.h); the two header pages are
         * replaced.  A torn tail page counts as damage too. */
        if (got % ps)
            err = JS_CORRUPT(JET_errReadVerifyFailure, "%s ends inside page %llu", src,
                             (unsigned long long)((off + got) / ps));
        if (!err)
            err = db_check_pages(buf + skip, ps, (uint32_t)((off + skip) / ps), (uint32_t)((got - skip) / ps),
                                 valid_below, src, &r->prog.pages_verified);
        if (err)
            break;
        /* Written by the pipe's writers and written back as it goes (a
         * few chunks behind), so the disk writes while the next chunks are
         * read and the final fsync is short; the restored file stays
         * cached for the instance.  The first chunk, whose header pages
         * stay as written above, is written here. */
        if (skip) {
            mf_pipe_submit(pipe, buf, got);
            if (got > skip)
                err = os_pwrite(out, dst, buf + skip, got - skip, off + skip);
        } else {
            err = mf_pipe_submit_write(pipe, buf, got, out, dst, off, 8 * (uint64_t)chunk, 0);
        }
        off += got;
        if (!err)
            err = rs_progress(r, got);
    }
    if (!err)
        err = mf_pipe_drain(pipe);
    if (!err)
        err = os_fsync(out, dst);
    if (err)
        mf_pipe_abandon(pipe);   /* the writers may still hold out */
    mf_pipe_final(pipe, hex);
    if (!err && strcmp(hex, want_hex))
        err = JS_CORRUPT(JET_errReadVerifyFailure, "%s does not match its SHA-256 in SHA256SUMS", src);
    mf_pipe_free(pipe);
    os_close(in);
    os_close(out);
    return err;
}

/* Sizes of the set's files, for progress: the database copy, the logs. */
static void rs_size_set(int set_fd, uint64_t *db_bytes, uint64_t *log_bytes)
{
    struct stat st;
    int rd = openat(set_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = rd < 0 ? NULL : fdopendir(rd);
    if (!d)
        os_close(rd);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' || fstatat(set_fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
            !S_ISREG(st.st_mode))
            continue;
        if (!strcmp(de->d_name, JS_DB_FILE))
            *db_bytes = (uint64_t)st.st_size;
        else
            *log_bytes += (uint64_t)st.st_size;
    }
    if (d)
        closedir(d);
}

/* Replay the set's generations, then (roll-forward) those of logs_dir, into
 * the restore's private instance; *last: the result of the last replay that
 * reached a generation.  until_us: a commit after it ends the replay, which
 * must not happen before the set's consistent point (full_gen_high). */
static JET_ERR rs_replay(rs_job *r, js_instance *inst, const char *setproc, const js_restore_opts *o,
                         const mf_info *info, redo_result *rr, redo_result *rr2, redo_result **last)
{
    /* until_gen may stop inside the set (never below what the database copy
     * needs: rs_check_set refused that). */
    uint32_t until_gen = o->until_gen;
    uint32_t set_end = until_gen && until_gen < info->gen_high ? until_gen : info->gen_high;
    JET_ERR err = inst_redo(inst, setproc, LSN_MAKE(info->gen_low, 0), set_end, o->until_us, 0, NULL, rr);
    if (!err && rr->stopped_at_time && rr->last_gen <= info->full_gen_high)
        err = js_fail(JET_errEndingRestoreLogTooLow, "--until-time is before the backup's consistent point "
                      "(generation %08X holds a later commit)", rr->last_gen);
    if (!err && !rr->stopped_at_time && rr->last_gen != set_end)
        err = js_fail(JET_errMissingRestoreLogFiles, "replay of the set stopped at generation %08X, before %08X",
                      rr->last_gen, set_end);
    if (err)
        return err;
    r->prog.log_records_verified += rr->txns_applied;
    *last = rr;
    if (o->logs_dir && !rr->stopped_at_time && (!until_gen || until_gen > info->gen_high)) {
        err = inst_redo(inst, o->logs_dir, LSN_MAKE(info->gen_high + 1, 0), until_gen, o->until_us,
                        !o->logs_strict, rr, rr2);
        if (err)
            return err;
        if (rr2->last_gen)
            *last = rr2;
    }
    r->prog.gen_high = (*last)->last_gen;
    return JET_errSuccess;
}

/* TARGET/restore.info: `restored_to: TIME` (the last transaction applied,
 * RFC 3339 UTC with microseconds), read back by js_info_read. */
static JET_ERR rs_note_restored_to(int target_fd, const char *target, const redo_result *rr, const redo_result *rr2,
                                   const redo_result *last)
{
    int64_t us = last->last_commit_us;
    if (last == rr2 && !us)
        us = rr->last_commit_us;
    char line[96];
    int n;
    if (us > 0) {
        time_t secs = (time_t)(us / 1000000);
        struct tm tm;
        gmtime_r(&secs, &tm);
        n = snprintf(line, sizeof line, "restored_to: %04d-%02d-%02dT%02d:%02d:%02d.%06dZ\n", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(us % 1000000));
    } else {
        n = snprintf(line, sizeof line, "restored_to: -\n");
    }
    return os_write_file_durable_at(target_fd, target, JS_RESTORE_INFO_FILE, line, (size_t)n, 0644);
}

/* A failed restore leaves nothing that could be mistaken for an instance:
 * the names it makes go (relative to the held TARGET), and TARGET is left
 * as found: removed when it made it (tparent_fd >= 0) and the name still
 * holds that directory.  Best effort, keeping the job's error detail. */
static void rs_undo(int target_fd, int tparent_fd, const char *tname, const struct stat *made)
{
    struct stat st;
    const char *names[] = { JS_DB_FILE, JS_CHK_FILE, JS_LOG_FILE, JS_LOG_TMP_FILE, JS_LOCK_FILE, JS_RESTORE_INFO_FILE,
                            JS_DWB_FILE };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        (void)os_unlinkat_quiet(target_fd, names[i], 0);
    if (tparent_fd >= 0 && fstatat(tparent_fd, tname, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_dev == made->st_dev &&
        st.st_ino == made->st_ino)
        (void)os_unlinkat_quiet(tparent_fd, tname, AT_REMOVEDIR);
}

JET_ERR js_restore(const char *backup, const char *target, const char *logs_dir,
                   uint32_t until_gen, js_status_fn status, void *ctx)
{
    js_restore_opts o = { .logs_dir = logs_dir, .until_gen = until_gen };
    return js_restore_to(backup, target, &o, status, ctx);
}

JET_ERR js_restore_to(const char *backup, const char *target, const js_restore_opts *o, js_status_fn status,
                      void *ctx)
{
    const char *logs_dir = o->logs_dir;
    uint32_t until_gen = o->until_gen;
    char set[PATH_MAX], setproc[64] = "", tproc[64] = "", tname[256] = "";
    mf_info info;
    db_header hdr;
    rs_job r = { .status = status, .ctx = ctx };
    js_instance *inst = NULL;
    int wrote = 0, created = 0, set_fd = -1, tparent_fd = -1, target_fd = -1;
    struct stat st, made;
    JET_ERR err;
    js_errclear();
    r.prog.phase = "verify";
    r.prog.message = "";
    r.prog.truncated = "none";
    if (!backup || !target)
        return js_fail(JET_errInvalidParameter, "restore needs a backup set and a target");
    /* Both directories are resolved here, once, and held to the end. */
    err = mf_open_set(backup, &set_fd, set, sizeof set);
    if (!err)
        err = mf_info_readat(set_fd, set, &info);
    if (!err)
        err = rs_open_target(target, &tparent_fd, tname, sizeof tname, &target_fd);
    if (!err && target_fd >= 0 && !os_dir_empty_fd(target_fd))
        err = js_fail(JET_errInvalidPath, "restore target %s is not empty", target);
    if (!err && logs_dir && (stat(logs_dir, &st) < 0 || !S_ISDIR(st.st_mode)))
        err = js_fail(JET_errInvalidPath, "--logs %s is not a directory", logs_dir);
    if (err)
        goto refused;
    rs_proc_path(set_fd, setproc, sizeof setproc);
    r.prog.gen_low = info.gen_low;
    r.prog.gen_high = info.gen_high;
    /* Progress: hashing the logs, copying (and hashing) the database, then
     * replaying the logs. */
    uint64_t db_bytes = 0, log_bytes = 0;
    rs_size_set(set_fd, &db_bytes, &log_bytes);
    r.prog.bytes_total = db_bytes + 2 * log_bytes;
    err = rs_report(&r, JS_SNT_BEGIN);
    char db_hex[65] = "";
    if (!err)
        err = rs_check_sums(&r, set_fd, set, db_hex);
    if (!err)
        err = rs_check_set(set_fd, set, &info, until_gen, &hdr);
    if (err)
        goto fail;

    /* Checks passed: from here on TARGET is written. */
    r.prog.phase = "copy-database";
    if (target_fd < 0) {
        err = rs_make_target(tparent_fd, tname, target, &target_fd, &made);
        if (err)
            goto fail;
        created = 1;
    }
    rs_proc_path(target_fd, tproc, sizeof tproc);
    wrote = 1;
    db_header restoring = hdr;
    restoring.state = JS_DB_BEING_RESTORED;
    restoring.backup_gen_low = restoring.backup_gen_high = 0;
    restoring.valid_below = 0;
    err = rs_copy_db(&r, set_fd, set, target_fd, target, &restoring, hdr.valid_below, db_hex);
    if (err)
        goto fail;

    r.prog.phase = "replay";
    err = inst_new_for_restore(tproc, &inst);
    redo_result rr, rr2, *last = NULL;
    if (!err)
        err = rs_replay(&r, inst, setproc, o, &info, &rr, &rr2, &last);
    if (!err)
        err = rs_progress(&r, log_bytes);
    if (err)
        goto fail;

    r.prog.phase = "flush";
    /* Every page below the final high-water mark is in use.  Those below
     * the copy's bound (within the file) were checked as they were copied;
     * the others must have been written by replay, or been valid in the
     * copy: a short re-read of that range, not of the whole file. */
    uint64_t checked = hdr.valid_below < info.pages ? hdr.valid_below : info.pages;
    err = inst_finish_restore(inst, last, checked > PG_META_PGNO ? (uint32_t)checked : PG_META_PGNO);
    if (!err)
        err = rs_note_restored_to(target_fd, target, &rr, &rr2, last);
    if (!err)
        err = os_fsync_fd(target_fd, target);
    if (err)
        goto fail;
    inst_discard(inst);
    os_close(set_fd);
    os_close(target_fd);
    os_close(tparent_fd);
    r.prog.phase = "done";
    (void)rs_report(&r, JS_SNT_COMPLETE);
    return JET_errSuccess;
fail:;
    char detail[512];
    snprintf(detail, sizeof detail, "%s", js_errdetail());
    if (tproc[0])
        rs_unproc(detail, sizeof detail, tproc, target);
    rs_unproc(detail, sizeof detail, setproc, set);
    if (inst)
        inst_discard(inst);
    if (wrote)
        rs_undo(target_fd, created ? tparent_fd : -1, tname, &made);
    os_close(set_fd);
    os_close(target_fd);
    os_close(tparent_fd);
    r.prog.err = err;
    r.prog.message = detail;
    (void)rs_report(&r, JS_SNT_FAIL);
    return js_fail(err, "%s", detail);
refused:
    os_close(set_fd);
    os_close(target_fd);
    os_close(tparent_fd);
    return err;
}

JET_ERR js_verify(const char *backup, js_check_report *rep_out, js_status_fn status, void *ctx)
{
    js_check_report local;
    js_check_report *rep = rep_out ? rep_out : &local;
    char set[PATH_MAX], setproc[64], tmpl[PATH_MAX];
    mf_info info;
    int set_fd = -1;
    /* The set is resolved once: the check and the trial restore read the
     * same directory through its descriptor. */
    JET_ERR err = mf_open_set(backup, &set_fd, set, sizeof set);
    if (err)
        return err;
    rs_proc_path(set_fd, setproc, sizeof setproc);
    err = mf_info_readat(set_fd, set, &info);
    if (!err) {
        err = js_check(setproc, rep);
        rs_unproc(rep->first_error, sizeof rep->first_error, setproc, set);
    }
    if (err)
        goto out;
    const char *tmpdir = getenv("TMPDIR");
    snprintf(tmpl, sizeof tmpl, "%s/jetsnap-verify-XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
    err = os_mkdtemp(tmpl);
    if (err)
        goto out;
    char target[PATH_MAX];
    snprintf(target, sizeof target, "%s/restore", tmpl);
    err = js_restore(setproc, target, NULL, 0, status, ctx);
    if (!err) {
        js_instance *inst = NULL;
        js_params p;
        js_params_default(&p);
        p.page_size = 0;
        err = js_open(target, &p, &inst);
        if (!err)
            err = js_close(inst);
    }
    char detail[512];
    snprintf(detail, sizeof detail, "%s", js_errdetail());
    (void)os_rmtree(tmpl);
    if (err)
        err = js_fail(err, "trial restore failed: %s", detail);
out:
    if (err) {
        char d2[512];
        snprintf(d2, sizeof d2, "%s", js_errdetail());
        rs_unproc(d2, sizeof d2, setproc, set);
        js_fail(err, "%s", d2);
    }
    os_close(set_fd);
    return err;
}
