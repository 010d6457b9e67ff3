/*
 * test_engine_log.c - the engine's log and files under damage: crash
 * recovery over closed generations, a flipped, missing or foreign
 * generation, a torn tail, a flipped page and header shadow copies,
 * circular logging and no_log, a write cut between the blocks of one
 * record, and the pre-built next generation's written zeros.  (test_engine.c: the model, limits, sessions, bad input, commit
 * modes.)
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "jetsnap.h"
#include "testlib.h"

/* ---------------- crash helpers ---------------- */

static void write_many(js_instance *inst, js_session *s)
{
    char k[32], v[200];
    memset(v, 'v', sizeof v);
    for (int i = 0; i < 4000; i++) {
        snprintf(k, sizeof k, "key%06d", i);
        if (js_put(s, k, strlen(k), v, sizeof v))
            _exit(4);
    }
    /* Make the tail durable, then "crash". */
    if (js_txn_begin(s, 0) || js_put(s, "last", 4, "1", 1) || js_txn_commit(s, JS_COMMIT_FLAG_DURABLE))
        _exit(5);
}

static int count_gens(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "ls '%s' | grep -c '^edb[0-9A-F]\\{8\\}\\.log$'", dir);
    FILE *f = popen(cmd, "r");
    int n = 0;
    cr_assert(f);
    cr_assert_eq(fscanf(f, "%d", &n), 1);
    pclose(f);
    return n;
}

Test(engine, crash_recovery_replays_closed_generations, .timeout = 120)
{
    char *dir = tl_tmpdir("jsengine");
    js_params p = tl_rolling_params();
    OK(js_create(dir, &p));
    tl_in_crashing_child(dir, &p, write_many);
    cr_assert(count_gens(dir) >= 3, "expected several closed generations");
    js_info info;
    OK(js_info_read(dir, &info));
    cr_assert_eq(info.state, JS_DB_DIRTY_SHUTDOWN);
    js_instance *inst;
    js_session *s;
    OK(js_open(dir, &p, &inst));
    OK(js_session_open(inst, &s));
    uint64_t n;
    OK(js_count(s, &n));
    cr_assert_eq(n, 4001);
    js_session_close(s);
    OK(js_close(inst));
    OK(js_info_read(dir, &info));
    cr_assert_eq(info.state, JS_DB_CLEAN_SHUTDOWN);
    cr_assert_eq(tl_rmrf(dir), 0);
    free(dir);
}

Test(engine, flipped_byte_in_closed_generation, .timeout = 120)
{
    char *dir = tl_tmpdir("jsengine");
    js_params p = tl_rolling_params();
    OK(js_create(dir, &p));
    tl_in_crashing_child(dir, &p, write_many);
    char path[600];
    snprintf(path, sizeof path, "%s/edb00000002.log", dir);
    tl_flip_byte(path, 600);
    js_instance *inst;
    JET_ERR e = js_open(dir, &p, &inst);
    cr_assert_eq(e, JET_errLogReadVerifyFailure, "got %s: %s", js_errname(e), js_errdetail());
    cr_assert(strstr(js_errdetail(), "00000002"), "detail does not name the generation: %s", js_errdetail());
    js_check_report rep;
    cr_assert_eq(js_check(dir, &rep), JET_errLogReadVerifyFailure);
    cr_assert_eq(tl_rmrf(dir), 0);
    free(dir);
}

Test(engine, missing_middle_generation, .timeout = 120)
{
    char *dir = tl_tmpdir("jsengine");
    js_params p = tl_rolling_params();
    OK(js_create(dir, &p));
    tl_in_crashing_child(dir, &p, write_many);
    char path[600];
    snprintf(path, sizeof path, "%s/edb00000002.log", dir);
    cr_assert_eq(unlink(path), 0);
    js_instance *inst;
    JET_ERR e = js_open(dir, &p, &inst);
    cr_assert_eq(e, JET_errMissingLogFile, "got %s: %s", js_errname(e), js_errdetail());
    cr_assert_eq(tl_rmrf(dir), 0);
    free(dir);
}

Test(engine, foreign_generation_bad_signature, .timeout = 120)
{
    char *a = tl_tmpdir("jsengine"), *b = tl_tmpdir("jsengine");
    js_params p = tl_rolling_params();
    OK(js_create(a, &p));
    OK(js_create(b, &p));
    tl_in_crashing_child(a, &p, write_many);
    tl_in_crashing_child(b, &p, write_many);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "cp '%s/edb00000002.log' '%s/edb00000002.log'", b, a);
    cr_assert_eq(system(cmd), 0);
    js_instance *inst;
    JET_ERR e = js_open(a, &p, &inst);
    cr_assert_eq(e, JET_errBadLogSignature, "got %s: %s", js_errname(e), js_errdetail());
    cr_assert_eq(tl_rmrf(a), 0);
    cr_assert_eq(tl_rmrf(b), 0);
    free(a);
    free(b);
}

static void torn_commit(js_instance *inst, js_session *s)
{
    char k[32];
    for (int i = 0; i < 50; i++) {
        snprintf(k, sizeof k, "acked%03d", i);
        if (js_txn_begin(s, 0) || js_put(s, k, strlen(k), "v", 1) || js_txn_commit(s, JS_COMMIT_FLAG_DURABLE))
            _exit(4);
    }
    /* The next flush writes only its first 700 bytes, then fails. */
    js_fault_arm(JS_FAULT_WRITE, 1, EIO, 700, "edb.log");
    unsigned char big[3000];
    memset(big, 'z', sizeof big);
    if (js_txn_begin(s, 0) || js_put(s, "torn", 4, big, sizeof big))
        _exit(5);
    if (js_txn_commit(s, JS_COMMIT_FLAG_DURABLE) != JET_errLogWriteFail)
        _exit(6);
    if (js_put(s, "after", 5, "x", 1) != JET_errInstanceUnavailable)
        _exit(7);
}

Test(engine, torn_tail_is_recovered, .timeout = 120)
{
    char *dir = tl_tmpdir("jsengine");
    js_params p = tl_rolling_params();
    OK(js_create(dir, &p));
    tl_in_crashing_child(dir, &p, torn_commit);
    js_instance *inst;
    js_session *s;
    OK(js_open(dir, &p, &inst));
    OK(js_session_open(inst, &s));
    uint64_t n;
    OK(js_count(s, &n));
    cr_assert_eq(n, 50, "expected exactly the 50 acknowledged keys, got %llu", (unsigned long long)n);
    void *v;
    size_t vl;
    cr_assert_eq(js_get(s, "torn", 4, &v, &vl), JET_errRecordNotFound);
    OK(js_put(s, "later", 5, "y", 1));   /* the log goes on after the torn tail */
    js_session_close(s);
    OK(js_close(inst));
    OK(js_open(dir, &p, &inst));
    OK(js_session_open(inst, &s));
    OK(js_count(s, &n));
    cr_assert_eq(n, 51);
    js_session_close(s);
    OK(js_close(inst));
    cr_assert_eq(tl_rmrf(dir), 0);
    free(dir);
}

/* ---------------- pages and headers ---------------- */

static void fill_clean(const char *dir, const js_params *p, int n)
{
    js_instance *inst;
    js_session *s;
    char k[32], v[100];
    memset(v, 'q', sizeof v);
    OK(js_open(dir, p, &inst));
    OK(js_session_open(inst, &s));
    for (int i = 0; i < n; i++) {
        snprintf(k, sizeof k, "key%06d", i);
        OK(js_put(s, k, strlen(k), v, sizeof v));
    }
    js_session_close(s);
    OK(js_close(inst));
}

Test(engine, flipped_page_byte_is_reported, .timeout = 120)
{
    char *dir = tl_tmpdir("jsengine");
    js_params p = tl_lazy_params();
    OK(js_create(dir, &p));
    fill_clean(dir, &p, 2000);
    char db[600];
    snprintf(db, sizeof db, "%s/jetsnap.edb", dir);
    tl_flip_byte(db, 5 * 8192 + 300);
    js_check_report rep;
    JET_ERR e = js_check(dir, &rep);
    cr_assert_eq(e, JET_errReadVerifyFailure);
    cr_assert_eq(rep.first_bad_page, 5);
    cr_assert(strstr(js_errdetail(), "page 5 "), "detail: %s", js_errdetail());
    /* A read that reaches the page fails and names it. */
    js_instance *inst;
    js_session *s;
    OK(js_open(dir, &p, &inst));
    OK(js_session_open(inst, &s));
    JET_ERR seen = JET_errSuccess;
    char k[32];
    for (int i = 0; i < 2000 && !seen; i++) {
        void *v;
        size_t vl;
        snprintf(k, sizeof k, "key%06d", i);
        seen = js_get(s, k, strlen(k), &v, &vl);
        if (!seen)
            free(v);
    }
    cr_assert_eq(seen, JET_errReadVerifyFailure);
    cr_assert(strstr(js_errdetail(), "page 5 "), "detail: %s", js_errdetail());
    js_session_close(s);
    OK(js_close(inst));
    cr_assert_eq(tl_rmrf(dir), 0);
    free(dir);
}

Test(engine, header_shadow_fallback, .timeout = 60)
{
    char *dir = tl_tmpdir("jsengine");
    js_params p = tl_lazy_params();
    OK(js_create(dir, &p));
    fill_clean(dir, &p, 10);
    char db[600];
    snprintf(db, sizeof db, "%s/jetsnap.edb", dir);
    tl_flip_byte(db, 100);                       /* primary copy damaged */
    js_info info;
    OK(js_info_read(dir, &info));
    cr_assert_eq(info.page_size, 8192);
    js_instance *inst;
    OK(js_open(dir, &p, &inst));              /* reads the shadow, rewrites both */
    OK(js_close(inst));
    js_check_report rep;
    OK(js_check(dir, &rep));
    tl_flip_byte(db, 100);
    tl_flip_byte(db, 8192 + 100);                /* both copies damaged */
    cr_assert_eq(js_open(dir, &p, &inst), JET_errReadVerifyFailure);
    cr_assert_eq(tl_rmrf(dir), 0);
    free(dir);
}

/* ---------------- logging modes ---------------- */

static void roll_a_few(js_instance *inst, js_session *s)
{
    char k[32], v[500];
    memset(v, 'c', sizeof v);
    for (int i = 0; i < 1000; i++) {
        snprintf(k, sizeof k, "c%05d", i);
        cr_assert_eq(js_put(s, k, strlen(k), v, sizeof v), 0);
    }
}

Test(engine, circular_logging_deletes_below_checkpoint, .timeout = 120)
{
    char *dir = tl_tmpdir("jsengine");
    js_params p = tl_rolling_params();
    p.circular_log = 1;
    OK(js_create(dir, &p));
    js_instance *inst;
    js_session *s;
    OK(js_open(dir, &p, &inst));
    OK(js_session_open(inst, &s));
    roll_a_few(inst, s);
    cr_assert(count_gens(dir) >= 3);
    OK(js_checkpoint(inst));
    js_info info;
    OK(js_info_read(dir, &info));
    cr_assert(info.circular_log);
    /* Every closed generation below the checkpoint's is gone, the
     * checkpoint's own (the current one) stays. */
    cr_assert_eq(count_gens(dir), 0, "closed generations left: %d", count_gens(dir));
    cr_assert_eq(info.log_gen_min, info.checkpoint_gen);
    js_session_close(s);
    OK(js_close(inst));
    /* Without circular logging nothing is deleted. */
    char *d2 = tl_tmpdir("jsengine");
    js_params q = tl_rolling_params();
    OK(js_create(d2, &q));
    OK(js_open(d2, &q, &inst));
    OK(js_session_open(inst, &s));
    roll_a_few(inst, s);
    int before = count_gens(d2);
    OK(js_checkpoint(inst));
    cr_assert_eq(count_gens(d2), before);
    js_session_close(s);
    OK(js_close(inst));
    cr_assert_eq(tl_rmrf(dir), 0);
    cr_assert_eq(tl_rmrf(d2), 0);
    free(dir);
    free(d2);
}

static void write_few(js_instance *inst, js_session *s)
{
    if (js_put(s, "a", 1, "b", 1))
        _exit(4);
}

Test(engine, no_log_crash_is_refused, .timeout = 60)
{
    char *dir = tl_tmpdir("jsengine");
    js_params p = tl_lazy_params();
    OK(js_create(dir, &p));
    p.no_log = 1;
    fill_clean(dir, &p, 100);   /* a clean no_log session is fine */
    tl_in_crashing_child(dir, &p, write_few);
    js_instance *inst;
    JET_ERR e = js_open(dir, &p, &inst);
    cr_assert_eq(e, JET_errDatabaseDirtyShutdown, "got %s", js_errname(e));
    p.no_log = 0;
    cr_assert_eq(js_open(dir, &p, &inst), JET_errDatabaseDirtyShutdown);
    cr_assert_eq(tl_rmrf(dir), 0);
    free(dir);
}

/* A crash that cuts a log write exactly between two blocks of one record
 * (a kill during a multi-page write does that) leaves a tail that is all
 * valid blocks but ends inside a record.  Recovery must not append there:
 * the next open would find a new record spliced onto half an old one. */
static void cut_between_blocks(js_instance *inst, js_session *s)
{
    char k[32];
    for (int i = 0; i < 10; i++) {
        snprintf(k, sizeof k, "acked%03d", i);
        if (js_txn_begin(s, 0) || js_put(s, k, strlen(k), "v", 1) || js_txn_commit(s, JS_COMMIT_FLAG_DURABLE))
            _exit(4);
    }
    js_fault_arm(JS_FAULT_WRITE, 1, EIO, 1024, "edb.log");   /* two whole blocks, then nothing */
    unsigned char big[6000];
    memset(big, 'z', sizeof big);
    if (js_txn_begin(s, 0) || js_put(s, "cut", 3, big, sizeof big))
        _exit(5);
    if (js_txn_commit(s, JS_COMMIT_FLAG_DURABLE) != JET_errLogWriteFail)
        _exit(6);
}

Test(engine, write_cut_between_blocks_of_a_record, .timeout = 120)
{
    char *dir = tl_tmpdir("jsengine");
    js_params p = tl_rolling_params();
    OK(js_create(dir, &p));
    tl_in_crashing_child(dir, &p, cut_between_blocks);
    js_instance *inst;
    js_session *s;
    OK(js_open(dir, &p, &inst));
    OK(js_session_open(inst, &s));
    uint64_t n;
    OK(js_count(s, &n));
    cr_assert_eq(n, 10);
    OK(js_put(s, "after", 5, "1", 1));
    js_session_close(s);
    OK(js_close(inst));
    OK(js_open(dir, &p, &inst));   /* the log after the cut reads cleanly */
    OK(js_session_open(inst, &s));
    OK(js_count(s, &n));
    cr_assert_eq(n, 11);
    js_session_close(s);
    OK(js_close(inst));
    js_check_report rep;
    OK(js_check(dir, &rep));
    cr_assert_eq(tl_rmrf(dir), 0);
    free(dir);
}

/* Bytes of path not backed by written extents (holes, or blocks fallocate
 * only reserved); -1 when the file system cannot tell (no FIEMAP). */
static long long unwritten_bytes(const char *path)
{
    enum { MAX_EXT = 256 };
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -2;
    struct stat sb;
    struct fiemap *fm = calloc(1, sizeof *fm + MAX_EXT * sizeof(struct fiemap_extent));
    long long covered = 0, result = -1;
    cr_assert(fm);
    fm->fm_length = FIEMAP_MAX_OFFSET;
    fm->fm_extent_count = MAX_EXT;
    if (fstat(fd, &sb) == 0 && ioctl(fd, FS_IOC_FIEMAP, fm) == 0) {
        for (unsigned i = 0; i < fm->fm_mapped_extents; i++) {
            const struct fiemap_extent *e = &fm->fm_extents[i];
            if (!(e->fe_flags & (FIEMAP_EXTENT_UNWRITTEN | FIEMAP_EXTENT_DELALLOC | FIEMAP_EXTENT_UNKNOWN)))
                covered += (long long)e->fe_length;
        }
        result = (long long)sb.st_size - covered;
    }
    free(fm);
    close(fd);
    return result;
}

/* The next generation is pre-built with its zeros written and durable, so
 * a flush of it writes the data alone (no extent conversion, no inode
 * write): edbtmp.log ends up fully backed by written extents.  20 MiB
 * generations take the flush thread several ticks (8 MiB each). */
Test(engine, spare_generation_is_written_not_just_reserved, .timeout = 60)
{
    char *dir = tl_tmpdir("jsengine");
    js_params p = tl_rolling_params();
    p.log_file_size = 20u << 20;
    OK(js_create(dir, &p));
    js_instance *inst;
    js_session *s;
    OK(js_open(dir, &p, &inst));
    OK(js_session_open(inst, &s));
    OK(js_put(s, "a", 1, "b", 1));
    char spare[600];
    snprintf(spare, sizeof spare, "%s/edbtmp.log", dir);
    long long left = -2;
    for (int i = 0; i < 200 && left != 0 && left != -1; i++) {
        usleep(50 * 1000);
        left = unwritten_bytes(spare);
    }
    if (left == -1)
        cr_skip_test("no FIEMAP on this file system");
    cr_assert_eq(left, 0, "edbtmp.log: %lld bytes reserved or missing, not written", left);
    struct stat sb;
    cr_assert_eq(stat(spare, &sb), 0);
    cr_assert_eq((uint64_t)sb.st_size, p.log_file_size);
    js_session_close(s);
    OK(js_close(inst));
    cr_assert_eq(tl_rmrf(dir), 0);
    free(dir);
}

/* A generation made where no committer waits (creation, and open after a
 * crash that left the current one torn) is written out too, so the first
 * generation's commits do not pay the extent conversion the spare spares
 * the others: with 256 MiB generations its first commits ran at 70% of
 * the later ones' rate. */
Test(engine, first_generation_is_written_not_just_reserved, .timeout = 60)
{
    char *dir = tl_tmpdir("jsengine");
    js_params p = tl_rolling_params();
    p.log_file_size = 8u << 20;
    OK(js_create(dir, &p));
    char cur[600];
    snprintf(cur, sizeof cur, "%s/edb.log", dir);
    long long left = unwritten_bytes(cur);
    if (left == -1)
        cr_skip_test("no FIEMAP on this file system");
    cr_assert_eq(left, 0, "edb.log after create: %lld bytes reserved or missing, not written", left);
    /* A crash tears the log's tail: the open closes generation 1 at its
     * end and makes generation 2, written too. */
    tl_in_crashing_child(dir, &p, torn_commit);
    js_instance *inst;
    OK(js_open(dir, &p, &inst));
    OK(js_close(inst));
    char closed[600];
    snprintf(closed, sizeof closed, "%s/edb00000001.log", dir);
    cr_assert_eq(access(closed, F_OK), 0, "the open did not start a new generation");
    left = unwritten_bytes(cur);
    cr_assert_eq(left, 0, "edb.log after the open: %lld bytes reserved or missing, not written", left);
    cr_assert_eq(tl_rmrf(dir), 0);
    free(dir);
}

/* ---------------- redo of partial page changes ---------------- */

/* Commits log the bytes a change reports (tv_wrote) instead of comparing
 * pages; redo must rebuild exactly the committed state from them.  A
 * seeded run of transactions (puts that replace, grow and split leaves,
 * deletes, changes undone by savepoint rollbacks, whole rollbacks) is
 * replayed from the log after a crash and compared with a model of the
 * same run. */
#define SP_KEYS 2000
#define SP_TXNS 3000

typedef struct sp_entry {
    int present;
    uint32_t len;
    uint32_t fill;   /* value bytes are (fill + i) % 251 */
} sp_entry;

static void sp_value(uint8_t *v, uint32_t len, uint32_t fill)
{
    for (uint32_t i = 0; i < len; i++)
        v[i] = (uint8_t)((fill + i) % 251);
}

/* One seeded run; s NULL: only the model. */
static void sp_run(js_session *s, sp_entry *m)
{
    unsigned seed = 777;
    uint8_t v[600];
    char k[32];
    for (int t = 0; t < SP_TXNS; t++) {
        sp_entry pending[8];
        int ids[8], n = 1 + rand_r(&seed) % 8, commit = rand_r(&seed) % 5 != 0;
        if (s && js_txn_begin(s, 0))
            _exit(10);
        for (int i = 0; i < n; i++) {
            int id = rand_r(&seed) % SP_KEYS, del = rand_r(&seed) % 4 == 0, undo = rand_r(&seed) % 4 == 0;
            sp_entry e = { .present = !del, .len = (uint32_t)(rand_r(&seed) % 400), .fill = (uint32_t)rand_r(&seed) };
            /* A key already touched in this transaction starts from its
             * pending state. */
            sp_entry cur = m[id];
            for (int j = 0; j < i; j++)
                if (ids[j] == id)
                    cur = pending[j];
            int klen = snprintf(k, sizeof k, "sp%06d", id);
            if (s && js_txn_savepoint(s))
                _exit(11);
            if (s && del) {
                JET_ERR err = js_del(s, k, (size_t)klen);
                if (err != (cur.present ? JET_errSuccess : JET_errRecordNotFound))
                    _exit(12);
            } else if (s) {
                sp_value(v, e.len, e.fill);
                if (js_put(s, k, (size_t)klen, v, e.len))
                    _exit(13);
            }
            if (s && undo && js_txn_rollback_savepoint(s))
                _exit(14);
            ids[i] = id;
            pending[i] = undo ? cur : e;
        }
        if (s && (commit ? js_txn_commit(s, JS_COMMIT_FLAG_DURABLE) : js_txn_rollback(s)))
            _exit(15);
        for (int i = 0; commit && i < n; i++)
            m[ids[i]] = pending[i];
    }
}

static void sp_crash_body(js_instance *inst, js_session *s)
{
    (void)inst;
    sp_entry *m = calloc(SP_KEYS, sizeof *m);
    if (!m)
        _exit(16);
    sp_run(s, m);
    _exit(0);   /* every transaction was durable: redo must give them all */
}

Test(engine, redo_of_reported_ranges_matches_the_model, .timeout = 300)
{
    char *dir = tl_tmpdir("jsengine");
    js_params p = tl_rolling_params();
    OK(js_create(dir, &p));
    tl_in_crashing_child(dir, &p, sp_crash_body);
    sp_entry *m = calloc(SP_KEYS, sizeof *m);
    cr_assert(m);
    sp_run(NULL, m);
    js_instance *inst;
    js_session *s;
    OK(js_open(dir, &p, &inst));
    OK(js_session_open(inst, &s));
    uint8_t want[600];
    char k[32];
    uint64_t present = 0, count = 0;
    for (int id = 0; id < SP_KEYS; id++) {
        int klen = snprintf(k, sizeof k, "sp%06d", id);
        void *got = NULL;
        size_t glen = 0;
        JET_ERR err = js_get(s, k, (size_t)klen, &got, &glen);
        if (!m[id].present) {
            cr_assert_eq(err, JET_errRecordNotFound, "key %d: %s, the model has none", id, js_errname(err));
            continue;
        }
        present++;
        cr_assert_eq(err, JET_errSuccess, "key %d: %s %s", id, js_errname(err), js_errdetail());
        sp_value(want, m[id].len, m[id].fill);
        cr_assert_eq(glen, m[id].len, "key %d: %zu bytes, the model %u", id, glen, m[id].len);
        cr_assert(glen == 0 || !memcmp(got, want, glen), "key %d: value differs from the model", id);
        free(got);
    }
    OK(js_count(s, &count));
    cr_assert_eq(count, present);
    cr_assert(present > SP_KEYS / 2, "the run left only %llu keys", (unsigned long long)present);
    js_session_close(s);
    OK(js_close(inst));
    js_check_report rep;
    OK(js_check(dir, &rep));
    free(m);
    cr_assert_eq(tl_rmrf(dir), 0);
    free(dir);
}

/* Pages changed all over (a split's two halves, a new page) are logged as
 * their bytes that are not zero (REC_ZIMAGE), not whole: a transaction that
 * fills about 120 half-full 4 KiB leaves with 230 KB of records logs
 * little more than those records (whole images: about 480 KB). */
Test(engine, split_pages_are_logged_without_their_free_space, .timeout = 60)
{
    char *dir = tl_tmpdir("jsengine");
    js_params p = tl_rolling_params();
    p.log_file_size = 16u << 20;   /* one generation holds it all */
    OK(js_create(dir, &p));
    js_instance *inst;
    js_session *s;
    OK(js_open(dir, &p, &inst));
    OK(js_session_open(inst, &s));
    uint64_t before = 0, after = 0;
    OK(js_txn_begin(s, 0));
    OK(js_put(s, "a", 1, "b", 1));
    OK(js_txn_commit_pos(s, JS_COMMIT_FLAG_DURABLE, &before));
    char k[32], v[100];
    memset(v, 'v', sizeof v);
    size_t data = 0;
    OK(js_txn_begin(s, 0));
    for (int i = 0; i < 2000; i++) {
        int kl = snprintf(k, sizeof k, "k%06d", i);
        OK(js_put(s, k, (size_t)kl, v, sizeof v));
        data += (size_t)kl + sizeof v;
    }
    OK(js_txn_commit_pos(s, JS_COMMIT_FLAG_DURABLE, &after));
    cr_assert_eq(after >> 32, before >> 32, "the log rolled in between");
    uint64_t logged = (after & 0xffffffffu) - (before & 0xffffffffu);
    cr_assert_lt(logged, data * 14 / 10, "%llu bytes logged for %zu bytes of keys and values",
                 (unsigned long long)logged, data);
    js_session_close(s);
    OK(js_close(inst));
    /* Redo of such records: redo_of_reported_ranges_matches_the_model
     * (its puts split leaves too). */
    cr_assert_eq(tl_rmrf(dir), 0);
    free(dir);
}
