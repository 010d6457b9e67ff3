/*
 * test_backup_io.c - the backup's I/O path that yields to commits (issue
 * 11, SPEC section 4 "writers are never blocked for the length of the
 * copy"): the copy runs at idle I/O priority, writes back in small waited
 * chunks, drops what it passed through from the page cache, and an
 * automatic pacer slows it while durable commits get slower.
 *
 * Behaviour only, never timings: the pacer never stalls a backup (a backup
 * under a constant durable write load finishes, and the status callback
 * hears from it at least once a second while it copies); the new path
 * still makes sets that restore byte-identically under the monotonic
 * writer; backup_max_rate stays a hard cap (bounded from above only, by a
 * lower bound on the elapsed time that sleeping can only lengthen); a set
 * larger than the hashing pipe's ring round-trips, and damage deep in it
 * is refused by restore with nothing left behind; the copy leaves the
 * page cache of the database as it found it; the daemon's status says
 * whether the pacer is holding back (key `pacer`, appended after the
 * others).  Helpers: tests/lib/bkset.h.
 */
#include <criterion/criterion.h>

#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jetsnap.h"
#include "bkset.h"
#include "daemon/status.h"
#include "proto/proto.h"
#include "testlib.h"

TestSuite(backup_io, .init = tl_bk_setup, .fini = tl_bk_teardown, .timeout = 180);

/* What io_cb saw: reports, the longest silence while copying, the last
 * bytes_done, whether the pacer ever held back. */
typedef struct io_rec {
    int begins, completes, fails, progresses;
    JET_ERR fail_err;
    int64_t last_ms;            /* the previous report */
    int64_t max_gap_ms;         /* longest silence between reports while copying */
    int copying;                /* the previous report was in a copy phase */
    uint64_t bytes_done;
    int held;                   /* pacer_holding was seen */
} io_rec;

static int in_copy_phase(const char *phase)
{
    return phase && (!strcmp(phase, "copy-database") || !strcmp(phase, "copy-logs"));
}

static int io_cb(void *ctx, int snp, int snt, const js_progress *p)
{
    io_rec *r = ctx;
    int64_t now = tl_now_ms();
    (void)snp;
    if (snt == JS_SNT_BEGIN)
        r->begins++;
    else if (snt == JS_SNT_COMPLETE)
        r->completes++;
    else if (snt == JS_SNT_FAIL) {
        r->fails++;
        r->fail_err = p->err;
    } else
        r->progresses++;
    /* A silence counts when it ends in a copy phase it began in. */
    if (r->copying && in_copy_phase(p->phase) && now - r->last_ms > r->max_gap_ms)
        r->max_gap_ms = now - r->last_ms;
    r->copying = in_copy_phase(p->phase);
    r->last_ms = now;
    if (p->bytes_done > r->bytes_done)
        r->bytes_done = p->bytes_done;
    if (p->pacer_holding)
        r->held = 1;
    return 0;
}

/* Durable writers: each commits one small put after another until told to
 * stop, so the log fsyncs all the time. */
#define NWRITERS 4
typedef struct dwriter {
    js_instance *inst;
    int id;
    atomic_int *stop;
    _Atomic uint64_t commits;
    JET_ERR err;
    pthread_t th;
} dwriter;

static void *dwriter_main(void *arg)
{
    dwriter *w = arg;
    js_session *s = NULL;
    char key[48], val[200];
    memset(val, 'v', sizeof val);
    w->err = js_session_open(w->inst, &s);
    for (uint64_t n = 0; !w->err && !atomic_load(w->stop); n++) {
        snprintf(key, sizeof key, "load:%d:%llu", w->id, (unsigned long long)(n % 5000));
        w->err = js_txn_begin(s, 0);
        if (!w->err)
            w->err = js_put(s, key, strlen(key), val, sizeof val);
        if (!w->err)
            w->err = js_txn_commit(s, JS_COMMIT_FLAG_DURABLE);
        if (!w->err)
            atomic_fetch_add(&w->commits, 1);
    }
    if (s)
        js_session_close(s);
    return NULL;
}

static void writers_start(dwriter *w, js_instance *inst, atomic_int *stop)
{
    atomic_init(stop, 0);
    for (int i = 0; i < NWRITERS; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].inst = inst;
        w[i].id = i;
        w[i].stop = stop;
        atomic_init(&w[i].commits, 0);
        cr_assert_eq(pthread_create(&w[i].th, NULL, dwriter_main, &w[i]), 0);
    }
}

static uint64_t writers_commits(dwriter *w)
{
    uint64_t n = 0;
    for (int i = 0; i < NWRITERS; i++)
        n += atomic_load(&w[i].commits);
    return n;
}

static void writers_stop(dwriter *w, atomic_int *stop)
{
    atomic_store(stop, 1);
    for (int i = 0; i < NWRITERS; i++) {
        pthread_join(w[i].th, NULL);
        cr_assert_eq(w[i].err, JET_errSuccess, "writer %d: %s: %s", i, js_errname(w[i].err), js_errdetail());
    }
}

/* A full backup into set while mw (and any load) writes, checked (the job
 * completed, SHA256SUMS), then restored into target: the copy holds
 * seq:1..M with M between what mw had acknowledged before the job and
 * issued when it returned (a durable commit may precede its ack), and the
 * npre keys of the "pre" prefill; the other keys are the load writers'. */
static void backup_under_load_restores(js_instance *inst, tl_mwriter *mw, const char *set, const char *target,
                                       int npre)
{
    uint64_t acked_before = atomic_load(&mw->acked);
    io_rec rec = { .last_ms = tl_now_ms() };
    OK(js_backup(inst, tl_tp("%s", set), JS_BACKUP_CREATE_DIR, io_cb, &rec));
    uint64_t issued_after = atomic_load(&mw->issued);
    cr_assert_eq(rec.completes, 1);
    tl_assert_set_sums(tl_tp("%s", set));
    tl_restore_ok(tl_tp("%s", set), tl_tp("%s", target), NULL, 0);
    js_instance *r = tl_reopen(tl_tp("%s", target));
    tl_kvdump rd;
    tl_dump_inst(r, &rd);
    size_t load_keys = 0;
    for (size_t i = 0; i < rd.n; i++)
        load_keys += rd.kl[i] > 5 && !memcmp(rd.k[i], "load:", 5);
    uint64_t m = tl_check_monotonic(r, (size_t)npre + load_keys);
    cr_assert_geq(m, acked_before);
    cr_assert_leq(m, issued_after);
    tl_check_fill(r, "pre", 0, npre, 900);
    tl_dump_free(&rd);
    OK(js_close(r));
}

/* The pacer slows the copy while commits are slow, but never stops it: a
 * full backup with durable writers committing all along finishes, reports
 * at least once a second while copying, and the writers go on. */
Test(backup_io, backup_under_constant_write_load_finishes_and_reports)
{
    const char *dir = tl_tp("inst"), *dest = tl_tp("bk");
    js_params p = tl_test_params();
    p.commit_mode = JS_COMMIT_DURABLE;
    js_instance *inst = tl_create_open(dir, &p);
    tl_fill(inst, "pre", 0, 20000, 900);   /* ~20 MB: many batches of the copy */

    dwriter w[NWRITERS];
    atomic_int stop;
    writers_start(w, inst, &stop);
    while (writers_commits(w) < 50)
        usleep(1000);
    io_rec rec = { .last_ms = tl_now_ms() };
    uint64_t before = writers_commits(w);
    OK(js_backup(inst, dest, JS_BACKUP_CREATE_DIR, io_cb, &rec));
    uint64_t during = writers_commits(w) - before;
    writers_stop(w, &stop);

    cr_assert_eq(rec.begins, 1);
    cr_assert_eq(rec.completes, 1);
    cr_assert_eq(rec.fails, 0);
    cr_assert_gt(during, 0, "no durable commit finished during the backup");
    cr_assert_leq(rec.max_gap_ms, 1000, "the job was silent for %lld ms while copying",
                  (long long)rec.max_gap_ms);
    tl_assert_set_sums(dest);
    OK(js_verify(dest, NULL, NULL, NULL));
    tl_restore_ok(dest, tl_tp("r"), NULL, 0);
    js_instance *r = tl_reopen(tl_tp("r"));
    tl_check_fill(r, "pre", 0, 20000, 900);
    OK(js_close(r));
    OK(js_close(inst));
}

/* The set a backup makes through the new path (chunked writeback, cache
 * drops, pacer) restores to exactly what was acknowledged, under the
 * monotonic writer; a quiet backup's database copy is byte for byte the
 * live file beyond its two header pages, and restores key for key. */
Test(backup_io, new_path_restores_byte_identically_under_monotonic_writer)
{
    const char *dir = tl_tp("inst");
    js_params p = tl_test_params();
    js_instance *inst = tl_create_open(dir, &p);
    tl_fill(inst, "pre", 0, 6000, 900);

    tl_mwriter mw;
    tl_mwriter_start(&mw, inst, UINT64_MAX, 1, -1);
    while (atomic_load(&mw.acked) < 100)
        usleep(1000);
    dwriter w[NWRITERS];
    atomic_int stop;
    writers_start(w, inst, &stop);
    backup_under_load_restores(inst, &mw, "bk1", "r1", 6000);
    writers_stop(w, &stop);
    tl_mwriter_stop(&mw);

    /* Quiet: the copy is the live file, byte for byte, past the header. */
    OK(js_checkpoint(inst));
    tl_kvdump live, restored;
    tl_dump_inst(inst, &live);
    OK(js_backup(inst, tl_tp("bk2"), JS_BACKUP_CREATE_DIR, NULL, NULL));
    size_t llen = 0, clen = 0;
    char *lf = tl_slurp(tl_tp("inst/jetsnap.edb"), &llen);
    char *cf = tl_slurp(tl_tp("bk2/jetsnap.edb"), &clen);
    cr_assert_not_null(lf);
    cr_assert_not_null(cf);
    cr_assert_eq(clen, llen, "the copy has %zu bytes, the live file %zu", clen, llen);
    cr_assert(clen > 2 * 4096u && !memcmp(lf + 2 * 4096, cf + 2 * 4096, clen - 2 * 4096),
              "the copy differs from the live file past its header pages");
    free(lf);
    free(cf);
    OK(js_close(inst));
    tl_restore_ok(tl_tp("bk2"), tl_tp("r2"), NULL, 0);
    tl_dump_dir(tl_tp("r2"), &restored);
    ASSERT_DUMP_EQ(&live, &restored, "quiet backup vs its restore");
    tl_dump_free(&live);
    tl_dump_free(&restored);
}

/* With a short checkpoint period and pages dirty, the job takes the
 * background checkpoint as its own (no extra burst of page writes): under
 * durable writers and the monotonic writer it still finishes, its set
 * passes sha256sum -c, and it restores to a prefix of what was
 * acknowledged, with the prefill intact. */
Test(backup_io, background_checkpoint_as_the_jobs_own_restores_correctly)
{
    const char *dir = tl_tp("inst");
    js_params p = tl_test_params();
    p.checkpoint_ms = 200;
    js_instance *inst = tl_create_open(dir, &p);
    tl_fill(inst, "pre", 0, 3000, 900);
    tl_mwriter mw;
    tl_mwriter_start(&mw, inst, UINT64_MAX, 1, -1);
    while (atomic_load(&mw.acked) < 100)
        usleep(1000);
    dwriter w[NWRITERS];
    atomic_int stop;
    writers_start(w, inst, &stop);
    for (int round = 0; round < 3; round++) {
        char set[32], target[32];
        snprintf(set, sizeof set, "bk%d", round);
        snprintf(target, sizeof target, "r%d", round);
        backup_under_load_restores(inst, &mw, set, target, 3000);
    }
    writers_stop(w, &stop);
    tl_mwriter_stop(&mw);
    OK(js_close(inst));
}

/* A set larger than the hashing pipe's ring of buffers (backup's 2 MiB
 * and restore's 4 MiB buffers, four of each, go round more than once):
 * the backup's SHA256SUMS match the files, it restores to the same data,
 * and a page damaged deep in the database copy is still refused with its
 * ESE error, by the page check (SHA256SUMS fixed up) and by the digest (left as it
 * was), with nothing left in TARGET either way. */
Test(backup_io, large_set_round_trip_and_deep_damage_refused)
{
    const char *dir = tl_tp("inst"), *set = tl_tp("bk");
    js_params p = tl_test_params();
    js_instance *inst = tl_create_open(dir, &p);
    tl_fill(inst, "big", 0, 24000, 900);
    OK(js_checkpoint(inst));
    tl_kvdump live, restored;
    tl_dump_inst(inst, &live);
    OK(js_backup(inst, set, JS_BACKUP_CREATE_DIR, NULL, NULL));
    OK(js_close(inst));
    tl_assert_set_sums(set);
    char db[PATH_MAX];
    snprintf(db, sizeof db, "%s/jetsnap.edb", set);
    size_t len = 0;
    char *whole = tl_slurp(db, &len);
    cr_assert_not_null(whole);
    free(whole);
    cr_assert_gt(len, (size_t)16 << 20, "the set's database copy (%zu bytes) is too small to wrap the ring", len);

    tl_restore_ok(set, tl_tp("r1"), NULL, 0);
    tl_dump_dir(tl_tp("r1"), &restored);
    ASSERT_DUMP_EQ(&live, &restored, "large set vs its restore");
    tl_dump_free(&restored);
    tl_dump_free(&live);

    /* A byte of a page near the end of the copy, past the first 16 MiB. */
    off_t at = (off_t)(len - len / 8) / 4096 * 4096 + 777;
    tl_flip_byte(db, at);
    FAILS_WITH(js_restore(set, tl_tp("r2"), NULL, 0, NULL, NULL), JET_errReadVerifyFailure);
    cr_assert_not_null(strstr(js_errdetail(), "jetsnap.edb"), "detail '%s'", js_errdetail());
    cr_assert(!tl_exists(tl_tp("r2")), "a failed restore left its target behind");
    tl_regen_sums(set);
    FAILS_WITH(js_restore(set, tl_tp("r3"), NULL, 0, NULL, NULL), JET_errReadVerifyFailure);
    char want[32];
    snprintf(want, sizeof want, "page %llu", (unsigned long long)(at / 4096));
    cr_assert_not_null(strstr(js_errdetail(), want), "detail '%s' names no %s", js_errdetail(), want);
    cr_assert(!tl_exists(tl_tp("r3")), "a failed restore left its target behind");
}

/* The copy reads through the kernel's read-ahead, so it must ask what the
 * page cache held before its own read-ahead got there: a database the
 * instance had cached stays cached, one it had not is dropped again, both
 * well past the first 64 MiB the job asks about before it starts; the
 * set's own copy is not left in the page cache either. */
Test(backup_io, copy_leaves_the_page_cache_as_it_found_it)
{
    const char *dir = tl_tp("inst");
    js_params p = tl_test_params();
    js_instance *inst = tl_create_open(dir, &p);
    tl_fill(inst, "big", 0, 100000, 900);
    OK(js_checkpoint(inst));
    char db[PATH_MAX], copy[PATH_MAX];
    snprintf(db, sizeof db, "%s/jetsnap.edb", dir);
    struct stat st;
    cr_assert_eq(stat(db, &st), 0);
    cr_assert_gt(st.st_size, (off_t)(80 << 20), "the database (%lld bytes) is too small to pass 64 MiB well",
                 (long long)st.st_size);

    tl_set_cached(db, 1);
    double before = tl_cached_share(db);
    cr_assert_gt(before, 0.95, "reading the database cached only %.0f%% of it", before * 100);
    OK(js_backup(inst, tl_tp("warm"), JS_BACKUP_CREATE_DIR, NULL, NULL));
    double warm = tl_cached_share(db);
    cr_expect_gt(warm, 0.9, "a backup dropped a cached database: %.0f%% left in the page cache", warm * 100);

    tl_set_cached(db, 0);
    before = tl_cached_share(db);
    cr_assert_lt(before, 0.05, "dropping the database left %.0f%% of it cached", before * 100);
    OK(js_backup(inst, tl_tp("cold"), JS_BACKUP_CREATE_DIR, NULL, NULL));
    double cold = tl_cached_share(db);
    cr_expect_lt(cold, 0.1, "a backup left %.0f%% of a cold database in the page cache", cold * 100);
    snprintf(copy, sizeof copy, "%s/jetsnap.edb", tl_tp("cold"));
    double set = tl_cached_share(copy);
    cr_expect_lt(set, 0.1, "the backup left %.0f%% of its copy in the page cache", set * 100);
    OK(js_close(inst));
    tl_assert_set_sums(tl_tp("warm"));
    tl_assert_set_sums(tl_tp("cold"));
}

/* backup_max_rate is a hard cap whatever the pacer decides: the job cannot
 * have copied faster than the rate, except for the batch it copies before
 * its first wait.  Checked as a lower bound on the elapsed time, which a
 * slow machine only makes longer. */
Test(backup_io, backup_max_rate_is_still_a_hard_cap)
{
    const char *dir = tl_tp("inst");
    js_params p = tl_test_params();
    p.backup_max_rate = 4u << 20;
    js_instance *inst = tl_create_open(dir, &p);
    tl_fill(inst, "pre", 0, 8000, 900);   /* ~8 MB: about two seconds at the cap */

    dwriter w[NWRITERS];
    atomic_int stop;
    writers_start(w, inst, &stop);
    io_rec rec = { .last_ms = tl_now_ms() };
    int64_t t0 = tl_now_ms();
    OK(js_backup(inst, tl_tp("bk"), JS_BACKUP_CREATE_DIR, io_cb, &rec));
    int64_t elapsed = tl_now_ms() - t0;
    writers_stop(w, &stop);
    cr_assert_eq(rec.completes, 1);
    tl_assert_set_sums(tl_tp("bk"));

    const uint64_t batch = 256u * 4096u;   /* BK_BATCH_PAGES pages of 4 KiB */
    cr_assert_gt(rec.bytes_done, 2 * batch);
    int64_t floor_ms = (int64_t)((rec.bytes_done - batch) * 1000 / p.backup_max_rate);
    cr_assert_geq(elapsed, floor_ms, "%llu bytes in %lld ms: faster than backup_max_rate %llu B/s",
                  (unsigned long long)rec.bytes_done, (long long)elapsed,
                  (unsigned long long)p.backup_max_rate);
    /* Sleeping under the cap, the job still reports at least once a second. */
    cr_assert_leq(rec.max_gap_ms, 1000, "the job was silent for %lld ms while held to the cap",
                  (long long)rec.max_gap_ms);
    OK(js_close(inst));
}

/* The status key `pacer`: the last key, "off" unless a running job's
 * pacer is holding back, "-" before any job. */
Test(backup_io, status_shows_whether_the_pacer_holds_back)
{
    struct st_status *st = st_new();
    char buf[ST_RENDER_MAX];
    const char *val[PST_NKEYS];
    cr_assert_not_null(st);
    cr_assert_str_eq(proto_st_keys[PST_NKEYS - 1], "archive_last_error");   /* appended after pacer (issue 13) */
    cr_assert_str_eq(proto_st_keys[PST_PACER + 1], "archive_last_gen");
    st_set_recovering(st, 0);
    st_render(st, buf, sizeof buf);
    proto_status_parse(buf, val);
    cr_expect_str_eq(val[PST_PACER], "");

    st_job_begin(st, "full", "/b", "");
    js_progress p = { .units_total = 100, .phase = "copy-database", .bytes_done = 1, .bytes_total = 2 };
    st_job_progress(st, &p);
    st_render(st, buf, sizeof buf);
    cr_expect(strstr(buf, "\npacer: off\n") != NULL, "%s", buf);
    p.pacer_holding = 1;
    p.pace_rate = 8u << 20;
    st_job_progress(st, &p);
    st_render(st, buf, sizeof buf);
    cr_expect(strstr(buf, "\npacer: holding\narchive_last_gen: ") != NULL,
              "pacer should come right before the archive keys:\n%s", buf);
    st_job_end(st, JET_errSuccess, "", "none");
    st_render(st, buf, sizeof buf);
    cr_expect(strstr(buf, "\npacer: off\n") != NULL, "%s", buf);
    st_free(st);
}
