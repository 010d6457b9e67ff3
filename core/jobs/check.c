/*
 * check.c - offline facts and checks: `jetsnap info` and `jetsnap check` on
 * an instance directory, a backup set (BACKUP, BACKUP/new, BACKUP/old) or a
 * lone .edb file.  Read-only; safe on the files of a mounted instance.
 */
#include "jobs/jobs.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Resolve PATH to (directory or NULL, database file). */
static JET_ERR resolve(const char *path, char *dir, size_t dcap, char *db, size_t bcap, int *is_set)
{
    struct stat st;
    *is_set = 0;
    if (stat(path, &st) < 0)
        return js_fail(JET_errFileNotFound, "%s: no such file or directory", path);
    if (!S_ISDIR(st.st_mode)) {
        dir[0] = '\0';
        snprintf(db, bcap, "%s", path);
        return JET_errSuccess;
    }
    if (mf_find_in_set_dirs(path, JS_DB_FILE, dir, dcap) == 0) {
        char info[PATH_MAX];
        snprintf(db, bcap, "%s/%s", dir, JS_DB_FILE);
        snprintf(info, sizeof info, "%s/backup.info", dir);
        *is_set = stat(info, &st) == 0;
        return JET_errSuccess;
    }
    return js_fail(JET_errFileNotFound, "%s: no " JS_DB_FILE " here (nor in new/ or old/)", path);
}

static uint64_t read_pages_hwm(int fd, const char *path, uint32_t ps)
{
    uint8_t *pg = malloc(ps);
    uint64_t n = 0;
    size_t got = 0;
    if (pg && !os_pread(fd, path, pg, ps, (uint64_t)PG_META_PGNO * ps, &got) && got == ps &&
        pg_verify(pg, ps, PG_META_PGNO) == PG_OK)
        n = pg_u32(pg + META_NEXT);
    free(pg);
    return n;
}

JET_ERR js_info_read(const char *path, js_info *out)
{
    char dir[PATH_MAX], db[PATH_MAX];
    int is_set = 0, fd = -1;
    db_header h;
    memset(out, 0, sizeof *out);
    JET_ERR err = resolve(path, dir, sizeof dir, db, sizeof db, &is_set);
    if (err)
        return err;
    err = os_open(db, O_RDONLY, 0, &fd);
    if (err)
        return err;
    err = dbh_read(fd, db, &h);
    if (err)
        goto out;
    out->state = (int)h.state;
    out->page_size = h.page_size;
    out->pages = read_pages_hwm(fd, db, h.page_size);
    dbh_sig_hex(h.db_sig, out->db_signature);
    dbh_sig_hex(h.log_sig, out->log_signature);
    out->circular_log = (h.flags & DBH_CIRCULAR) != 0;
    out->log_file_size = h.log_file_size;
    out->last_full = h.full;
    out->last_incremental = h.inc;
    out->is_backup_set = is_set;
    if (dir[0]) {
        char ri[PATH_MAX + 32];
        snprintf(ri, sizeof ri, "%s/%s", dir, JS_RESTORE_INFO_FILE);
        FILE *rf = fopen(ri, "re");
        if (rf) {
            if (fscanf(rf, "restored_to: %39s", out->restored_to) != 1)
                out->restored_to[0] = '\0';
            fclose(rf);
        }
        chk_file chk;
        if (chk_read(dir, &chk) == JET_errSuccess)
            out->checkpoint_gen = LSN_GEN(chk.redo_lsn);
        uint32_t lo, hi;
        if (loggen_list(dir, &lo, &hi) == JET_errSuccess) {
            out->log_gen_min = lo;
            out->log_gen_max = hi;
        }
        char cur[PATH_MAX];
        snprintf(cur, sizeof cur, "%s/%s", dir, JS_LOG_FILE);
        int cfd = -1;
        loggen_hdr lh;
        if (os_open(cur, O_RDONLY, 0, &cfd) == JET_errSuccess) {
            if (loggen_read_header(cfd, cur, &lh) == JET_errSuccess) {
                if (!out->log_gen_min)
                    out->log_gen_min = lh.gen;
                if (lh.gen > out->log_gen_max)
                    out->log_gen_max = lh.gen;
            }
            os_close(cfd);
        }
        if (is_set) {
            char info[PATH_MAX], line[256];
            snprintf(info, sizeof info, "%s/backup.info", dir);
            FILE *f = fopen(info, "r");
            while (f && fgets(line, sizeof line, f))
                if (!strncmp(line, "type: ", 6))
                    sscanf(line + 6, "%15s", out->backup_type);
            if (f)
                fclose(f);
        }
    }
    js_errclear();
out:
    os_close(fd);
    return err;
}

static const char *state_name(int st)
{
    switch (st) {
    case JS_DB_JUST_CREATED: return "just-created";
    case JS_DB_DIRTY_SHUTDOWN: return "dirty-shutdown";
    case JS_DB_CLEAN_SHUTDOWN: return "clean-shutdown";
    case JS_DB_BEING_RESTORED: return "being-restored";
    default: return "unknown";
    }
}

static void print_stamp(FILE *f, const char *key, const js_backup_stamp *s)
{
    if (!s->gen_low && !s->gen_high) {
        fprintf(f, "%s: none\n", key);
        return;
    }
    char tbuf[32];
    time_t t = (time_t)s->time;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(tbuf, sizeof tbuf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    fprintf(f, "%s: gen %08X-%08X at %s\n", key, s->gen_low, s->gen_high, tbuf);
}

void js_info_print(const js_info *info, void *file)
{
    FILE *f = file;
    fprintf(f, "state: %s\n", state_name(info->state));
    fprintf(f, "page_size: %u\n", info->page_size);
    fprintf(f, "pages: %" PRIu64 "\n", info->pages);
    fprintf(f, "db_signature: %s\n", info->db_signature);
    fprintf(f, "log_signature: %s\n", info->log_signature);
    fprintf(f, "checkpoint_gen: %08X\n", info->checkpoint_gen);
    fprintf(f, "log_gen_min: %08X\n", info->log_gen_min);
    fprintf(f, "log_gen_max: %08X\n", info->log_gen_max);
    fprintf(f, "circular_log: %s\n", info->circular_log ? "yes" : "no");
    fprintf(f, "log_file_size: %" PRIu64 "\n", info->log_file_size);
    print_stamp(f, "last_full_backup", &info->last_full);
    print_stamp(f, "last_incremental_backup", &info->last_incremental);
    if (info->is_backup_set)
        fprintf(f, "backup_type: %s\n", info->backup_type[0] ? info->backup_type : "unknown");
    if (info->restored_to[0])
        fprintf(f, "restored_to: %s\n", info->restored_to);
}

/* The written bound of a database file (page.h): below it every page must
 * be valid.  chkdir: the directory whose edb.chk may hold the bound of a
 * dirty database (NULL: none). */
static uint32_t written_bound(const db_header *h, uint64_t hwm, const char *chkdir)
{
    uint32_t bound = 0;
    chk_file chk;
    if (h->backup_gen_low)
        return h->valid_below;   /* a raw backup copy; 0: made before the field, unknown */
    if (h->state == JS_DB_BEING_RESTORED)
        return 0;                /* a restore is writing it, or was cut short */
    if (h->state == JS_DB_CLEAN_SHUTDOWN || h->state == JS_DB_JUST_CREATED)
        bound = hwm > UINT32_MAX ? UINT32_MAX : (uint32_t)hwm;
    else if (chkdir && chk_read(chkdir, &chk) == JET_errSuccess && !memcmp(chk.log_sig, h->log_sig, JS_SIG_LEN))
        bound = chk.valid_below;
    js_errclear();
    /* Pages 0..2 (the header twice and the meta page) are written when the
     * file is created. */
    return bound < PG_FIRST_DATA ? PG_FIRST_DATA : bound;
}

static void report_bad(js_check_report *rep, uint32_t pgno, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void report_bad(js_check_report *rep, uint32_t pgno, const char *fmt, ...)
{
    if (!rep->pages_bad) {
        rep->first_bad_page = pgno;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(rep->first_error, sizeof rep->first_error, fmt, ap);
        va_end(ap);
    }
    rep->pages_bad++;
}

/* The pages a crash may have torn that jetsnap.dwb can mend: those with an
 * image in its batches written since its last sync (dwb_scan, the walk
 * the next open's repair makes), sorted. */
typedef struct dwb_pages {
    uint32_t *pgno;
    size_t n, cap;
} dwb_pages;

static JET_ERR note_dwb_page(void *arg, const uint8_t *image, uint32_t pgno)
{
    dwb_pages *d = arg;
    (void)image;
    if (d->n == d->cap) {
        size_t cap = d->cap ? 2 * d->cap : 64;
        uint32_t *p = realloc(d->pgno, cap * sizeof *p);
        if (!p)
            return js_fail(JET_errOutOfMemory, "check: doublewrite buffer pages");
        d->pgno = p;
        d->cap = cap;
    }
    d->pgno[d->n++] = pgno;
    return JET_errSuccess;
}

/* Whether a process holds the instance in dir (its jetsnap.lock). */
static int instance_held(const char *dir)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, JS_LOCK_FILE);
    int fd = open(path, O_RDONLY | O_CLOEXEC), held = 0;
    if (fd >= 0) {
        held = flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK;
        close(fd);   /* closing drops our shared lock, if we got it */
    }
    return held;
}

/* For a database that crashed (dirty, in an instance directory no process
 * holds): the pages jetsnap.dwb beside it holds for the next open's
 * repair.  A running instance's batches are its checkpoint's, which it
 * will mark synced, not repair, so none count.  The buffer only refines
 * the check: when it cannot be read, none count either. */
static void dwb_pages_of(const db_header *h, const char *chkdir, dwb_pages *d)
{
    char path[PATH_MAX];
    dwb_scan_result res;
    if (h->state != JS_DB_DIRTY_SHUTDOWN || !chkdir || h->backup_gen_low || instance_held(chkdir))
        return;
    snprintf(path, sizeof path, "%s/%s", chkdir, JS_DWB_FILE);
    if (dwb_scan(path, h->page_size, h->db_sig, note_dwb_page, d, &res) != JET_errSuccess) {
        js_errclear();
        d->n = 0;
    }
    if (d->n)
        qsort(d->pgno, d->n, sizeof *d->pgno, js_cmp_u32);
}

/* Verify every page of a database file in use (below the meta page's
 * high-water mark or the file's written bound); record the first failure.
 * A page torn by a crash whose image jetsnap.dwb holds is counted apart
 * (pages_repairable): the next open writes the image over it. */
static JET_ERR check_db(const char *db, const char *chkdir, js_check_report *rep)
{
    int fd = -1;
    db_header h;
    uint8_t *buf = NULL;
    dwb_pages mendable = { 0 };
    JET_ERR err = os_open(db, O_RDONLY, 0, &fd);
    if (err)
        return err;
    err = dbh_read(fd, db, &h);
    if (err)
        goto out;
    dwb_pages_of(&h, chkdir, &mendable);
    uint32_t ps = h.page_size;
    uint64_t hwm = read_pages_hwm(fd, db, ps);
    /* A raw backup copy (copied while pages changed) or a database that
     * crashed may hold pages above its written bound that were allocated
     * but not written yet: replay writes them, so they are not damage.
     * Below the bound zero is (page.h).  Checksum failures always are. */
    uint32_t bound = written_bound(&h, hwm, chkdir);
    uint64_t fsize = 0;
    err = os_size(fd, db, &fsize);
    if (err)
        goto out;
    uint64_t npages = fsize / ps;
    if (bound > npages)
        report_bad(rep, (uint32_t)npages, "%s: %u pages in use but the file holds %llu", db, bound,
                   (unsigned long long)npages);
    /* An unreadable meta page or a short file: check every page it holds. */
    if (hwm == 0 || hwm > npages)
        hwm = npages;
    uint64_t end = hwm > bound ? hwm : bound;
    if (end > npages)
        end = npages;
    const uint32_t batch = 256;
    buf = malloc((size_t)batch * ps);
    if (!buf) {
        err = js_fail(JET_errOutOfMemory, "check buffer");
        goto out;
    }
    for (uint64_t p = 0; p < end; p += batch) {
        uint32_t n = end - p < batch ? (uint32_t)(end - p) : batch;
        size_t got = 0;
        err = os_pread(fd, db, buf, (size_t)n * ps, p * ps, &got);
        if (err)
            goto out;
        if (got < (size_t)n * ps)
            memset(buf + got, 0, (size_t)n * ps - got);
        for (uint32_t i = 0; i < n; i++) {
            uint32_t pgno = (uint32_t)(p + i);
            char why[64];
            rep->pages_checked++;
            /* Pages 0 and 1 are the two header copies: one good copy is
             * enough to read, but a bad one is still reported. */
            const uint8_t *pg = buf + (size_t)i * ps;
            if (pg_check(pg, ps, pgno, bound, why, sizeof why) != PG_BAD)
                continue;
            if (pg_verify(pg, ps, pgno) == PG_BAD && mendable.n &&
                bsearch(&pgno, mendable.pgno, mendable.n, sizeof pgno, js_cmp_u32))
                rep->pages_repairable++;
            else
                report_bad(rep, pgno, "page %u of %s: %s", pgno, db, why);
        }
    }
out:
    free(mendable.pgno);
    free(buf);
    os_close(fd);
    return err;
}

/* Verify every log generation in dir and their chain. */
static JET_ERR check_logs(const char *dir, const uint8_t *log_sig, js_check_report *rep)
{
    uint32_t lo, hi;
    char path[PATH_MAX];
    JET_ERR err = loggen_list(dir, &lo, &hi), first = JET_errSuccess;
    if (err)
        return err;
    loggen_hdr h, prev_h;
    loggen_scan_result s, prev_s;
    memset(&prev_h, 0, sizeof prev_h);
    memset(&prev_s, 0, sizeof prev_s);
    int have_prev = 0;
    snprintf(path, sizeof path, "%s/%s", dir, JS_LOG_FILE);
    struct stat st;
    int have_cur = stat(path, &st) == 0;
    uint32_t last = hi;
    if (!lo && !have_cur)
        return JET_errSuccess;
    for (uint32_t g = lo ? lo : 1; ; g++) {
        int is_cur = 0;
        loggen_name(path, sizeof path, dir, g);
        if (g > last || stat(path, &st) != 0) {
            if (g <= last) {
                rep->log_files_bad++;
                if (!first)
                    first = js_fail(JET_errMissingLogFile, "log generation %08X is missing from %s", g, dir);
                continue;
            }
            if (!have_cur)
                break;
            snprintf(path, sizeof path, "%s/%s", dir, JS_LOG_FILE);
            is_cur = 1;
        }
        err = loggen_scan(path, is_cur, 0, NULL, NULL, &h, &s);
        rep->log_files_checked++;
        if (!err && memcmp(h.log_sig, log_sig, JS_SIG_LEN))
            err = js_fail(JET_errBadLogSignature, "%s belongs to another log stream", path);
        if (!err && h.gen != g && !is_cur)
            err = JS_CORRUPT(JET_errLogReadVerifyFailure, "%s holds generation %08X", path, h.gen);
        if (!err && have_prev && prev_h.gen + 1 == h.gen &&
            (h.prev_digest != prev_s.digest || h.prev_blocks != prev_s.end_blk || h.prev_created != prev_h.created))
            err = JS_CORRUPT(JET_errLogReadVerifyFailure, "generation %08X does not continue generation %08X",
                             h.gen, prev_h.gen);
        if (err) {
            rep->log_files_bad++;
            if (!first) {
                first = err;
                snprintf(rep->first_error, sizeof rep->first_error, "%s", js_errdetail());
            }
            have_prev = 0;
        } else {
            rep->log_blocks_checked += s.blocks;
            rep->log_records_checked += s.records;
            prev_h = h;
            prev_s = s;
            have_prev = 1;
        }
        if (is_cur)
            break;
    }
    return first;
}

JET_ERR js_check(const char *path, js_check_report *rep_out)
{
    js_check_report local;
    js_check_report *rep = rep_out ? rep_out : &local;
    char dir[PATH_MAX], db[PATH_MAX];
    int is_set = 0;
    memset(rep, 0, sizeof *rep);
    JET_ERR err = resolve(path, dir, sizeof dir, db, sizeof db, &is_set);
    if (err)
        return err;
    /* A lone .edb's edb.chk is the one beside it. */
    char chkdir[PATH_MAX];
    snprintf(chkdir, sizeof chkdir, "%s", dir[0] ? dir : db);
    err = check_db(db, dir[0] ? dir : dirname(chkdir), rep);
    if (err)
        return err;
    JET_ERR first = JET_errSuccess;
    if (rep->pages_bad)
        first = js_fail(JET_errReadVerifyFailure, "%s", rep->first_error);
    if (dir[0]) {
        int fd = -1;
        db_header h;
        err = os_open(db, O_RDONLY, 0, &fd);
        if (!err)
            err = dbh_read(fd, db, &h);
        os_close(fd);
        if (err)
            return err;
        char saved[256];
        snprintf(saved, sizeof saved, "%s", rep->first_error);
        err = check_logs(dir, h.log_sig, rep);
        if (err && !first)
            first = err;
        else
            snprintf(rep->first_error, sizeof rep->first_error, "%s", saved);
    }
    if (first)
        js_fail(first, "%s", rep->first_error);
    return first;
}
